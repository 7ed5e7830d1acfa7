"""Published event ids: stable for one stored event, never reused by another store (a recreated or restored one,
or another stack on the same broker), because consumers deduplicate by them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from sandan_eventbus.relay import event_id_of

T0 = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def test_the_same_stored_event_always_gets_the_same_id() -> None:
    order = uuid.uuid4()
    assert event_id_of("dispatch", order, 5, T0) == event_id_of("dispatch", order, 5, T0)
    assert event_id_of("dispatch", order, 5, T0).startswith("dispatch:")


def test_a_store_restored_from_a_backup_does_not_reuse_the_id_of_a_published_fact() -> None:
    # the same aggregate and version, written again after a restore: another fact, at another time
    order = uuid.uuid4()
    assert event_id_of("dispatch", order, 5, T0) != event_id_of("dispatch", order, 5, T0 + timedelta(minutes=3))


@given(st.lists(st.tuples(st.uuids(), st.integers(1, 1000)), min_size=2, max_size=50, unique=True))
def test_distinct_stored_events_get_distinct_ids(events: list[tuple[uuid.UUID, int]]) -> None:
    ids = [event_id_of("intake", originator, version, T0) for originator, version in events]
    assert len(set(ids)) == len(ids)
    assert all(len(i) <= 200 for i in ids)  # the envelope's limit
