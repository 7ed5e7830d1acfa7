"""scoring's publisher: one id per fact forever, each fact on the points topic once, and no single item (nor an
outage) stalls the rest.

The store is real (SQLite, and PostgreSQL where marked); the broker is a stand-in that keeps what was published
and can refuse, fail or be away on demand (the real broker's part is in tests/integration/test_scoring.py).
Facts go in the way live folding takes them (`_apply_live`), so ids, levels and messages are the service's own.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError, UnsupportedVersionError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.exc import OperationalError

from sandan_contracts import Event, decode
from sandan_contracts import events as c
from sandan_eventbus.readiness import Readiness
from sandan_eventbus.trace import Actor
from sandan_scoring import engine
from sandan_scoring.engine import Paused, Scorer
from sandan_scoring.rules import RuleBook
from sandan_scoring.store import ScoringStore
from services.scoring.tests.support import HAND_COUNTY_DIGEST, Events, FakeBroker, Sent, hand_county, replaying

Q = "2026Q2"
# Callers as the gRPC edge names them (sandan_eventbus.trace.current_actor): a Keycloak subject, the acting role
OFFICE = Actor("5d0c6f2e-8a41-4b7e-9c3d-2f1e0a9b8c7d", "county_office")
OTHER_OFFICE = Actor("a1b2c3d4-0000-4f00-8000-123456789abc", "county_office")
OPERATOR = Actor("0e9d8c7b-6a5f-4e3d-8c2b-1a0f9e8d7c6b", "operator")
NOTICES = [f"community-c1-{Q}-2026.1", f"unit-u1-{Q}-2026.1"]


class Crash(BaseException):
    """The process dies here (nothing after it runs; what was stored stays)."""


async def scorer_on(url: str, broker: FakeBroker, readiness: Readiness | None = None) -> Scorer:
    store = ScoringStore(url)
    scorer = Scorer(store, RuleBook(), "unused:9092", broker, "2026.1", readiness=readiness)  # type: ignore[arg-type]
    generation, _ = store.current()
    if generation == 0:
        store.swap_in(1, "2026.1", [], {})
    await scorer.load_publishing_state()
    scorer._go_live(scorer.ledger, 1, {})
    return scorer


async def feed(scorer: Scorer, ev: Events, *events: Event, event_id: str | None = None) -> None:
    """The events, as live folding receives them (one batch, partition 0 of each topic)."""
    batches: dict[TopicPartition, list[Any]] = {}
    for event in events:
        tp = TopicPartition(event.TOPIC, 0)
        offset = scorer.positions.get((event.TOPIC, 0), 0) + len(batches.get(tp, []))
        batches.setdefault(tp, []).append(Record(event.TOPIC, 0, offset, event.key().encode(),
                                                 ev.raw(event, event_id=event_id)))
    await scorer._apply_live(batches)


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes


def reported(member: str = "m1") -> Event:
    return c.MemberReported(member_id=member, community_id="c1", unit_id="u1", grid_id="g1")


_demands = iter(range(1, 1_000_000))
_activities = iter(range(1, 1_000_000))


def rated(stars: int, member: str = "m1") -> Event:
    return c.ServiceRated(demand_id=f"d{next(_demands)}", member_id=member, stars=stars)


def checked_in(member: str = "m1") -> Event:
    return c.MemberCheckedIn(activity_id=f"a{next(_activities)}", community_id="c1", member_id=member, unit_id="u1")


@pytest.fixture
async def setup(store_url: str) -> AsyncIterator[tuple[Scorer, FakeBroker, Events, str]]:
    broker = FakeBroker()
    scorer = await scorer_on(store_url, broker)
    yield scorer, broker, Events(), store_url
    scorer.store.engine.dispose()


@pytest.fixture(autouse=True)
def quick_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Paused, "START", 0.01)
    monkeypatch.setattr(Paused, "CAP", 0.05)


# ---- a published id names one fact forever -------------------------------------------------------------------------
async def test_up_down_and_up_again_are_three_changes_with_three_ids(setup) -> None:  # type: ignore[no-untyped-def]
    """2★→3★, 3★→2★, 2★→3★ in one quarter: the third change once got the first one's id (and then the whole
    pending batch looped on the unique constraint)."""
    scorer, broker, ev, _ = setup
    await feed(scorer, ev, reported(), *[rated(5) for _ in range(3)], checked_in(), checked_in())  # 31 points
    await scorer.publish_pending()
    await feed(scorer, ev, *[checked_in() for _ in range(4)])  # 63 points: 3★
    await scorer.publish_pending()
    await feed(scorer, ev, rated(1))  # average 4.0: 2★
    await scorer.publish_pending()
    await feed(scorer, ev, rated(5))  # average 4.2, 68 points: 3★
    await scorer.publish_pending()
    changes = [(s.event.previous_stars, s.event.stars) for s in broker.stars()]
    assert changes == [(0, 2), (2, 3), (3, 2), (2, 3)]
    ids = [s.event_id for s in broker.points()]
    assert len(ids) == len(set(ids))  # each fact once, each with its own id
    assert await scorer.publish_pending() == 0  # nothing left: no batch published again
    assert scorer.store.unpublished(ids) == set()


OPS = {
    "rate5": lambda: [rated(5)], "rate4": lambda: [rated(4)], "rate1": lambda: [rated(1)],
    "checkin": lambda: [checked_in()], "checkins": lambda: [checked_in() for _ in range(4)],
}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.sampled_from(sorted(OPS)), min_size=1, max_size=3), min_size=1, max_size=14))
def test_any_sequence_of_ups_and_downs_publishes_each_fact_once_under_its_own_id(steps: list[list[str]]) -> None:
    async def run() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            broker = FakeBroker()
            scorer = await scorer_on(f"sqlite:///{tmp}/scoring.db", broker)
            ev = Events()
            await feed(scorer, ev, reported())
            for step in steps:
                await feed(scorer, ev, *[e for op in step for e in OPS[op]()])
                await scorer.publish_pending()
            ids = [s.event_id for s in broker.points()]
            assert len(ids) == len(set(ids))
            # the entries published are exactly the ledger's, and the changes chain from 0 to today's level
            entries = {s.event.entry_id for s in broker.points() if s.headers["type"] != "StarRatingChanged"}
            assert entries == set(scorer.ledger.entries)
            level = 0
            for s in broker.stars():
                assert s.event.previous_stars == level and s.event.stars != level
                level = s.event.stars
            assert level == scorer.ledger.member_quarter("m1", Q)[3]
            scorer.store.engine.dispose()

    asyncio.run(run())


async def test_a_change_recorded_but_not_published_goes_out_after_a_crash_with_the_same_bytes(setup) -> None:  # type: ignore[no-untyped-def]
    scorer, broker, ev, url = setup
    await feed(scorer, ev, reported(), *[rated(5) for _ in range(3)], checked_in(), checked_in())
    broker.refuse = lambda s: Crash() if s.headers["type"] == "StarRatingChanged" else None  # type: ignore[assignment,return-value]
    with pytest.raises(Crash):
        await scorer.publish_pending()
    recorded = scorer.store.unpublished_star_changes()
    assert len(recorded) == 1 and broker.stars() == []
    # restarted: the same ledger (a restore re-folds it), the stored outbox
    broker.refuse = lambda s: None  # type: ignore[assignment]
    again = await scorer_on(url, broker)
    again._go_live(scorer.ledger, 1, scorer.positions)
    await again.publish_pending()
    assert [s.body for s in broker.stars()] == [recorded[0].body]
    assert again.store.unpublished_star_changes() == []
    assert await again.publish_pending() == 0  # the level was recorded: no second change
    again.store.engine.dispose()


async def test_published_but_not_marked_is_published_again_after_a_crash_with_the_same_bytes(setup) -> None:  # type: ignore[no-untyped-def]
    scorer, broker, ev, url = setup
    await feed(scorer, ev, reported(), *[rated(5) for _ in range(3)], checked_in(), checked_in())
    mark = scorer.store.mark_published
    scorer.store.mark_published = lambda ids: (_ for _ in ()).throw(Crash())  # type: ignore[method-assign]
    with pytest.raises(Crash):
        await scorer.publish_pending()
    scorer.store.mark_published = mark  # type: ignore[method-assign]
    first = {s.event_id: s.body for s in broker.points()}
    assert len(first) == 6  # 3 five-star bonuses, 2 check-ins, 1 star change
    again = await scorer_on(url, broker)
    again._go_live(scorer.ledger, 1, scorer.positions)
    await again.publish_pending()
    second = broker.points()[len(first):]
    assert {s.event_id: s.body for s in second} == first  # re-published after the crash: the same bytes
    assert await again.publish_pending() == 0
    again.store.engine.dispose()


async def test_an_id_already_marked_never_makes_the_batch_loop(setup) -> None:  # type: ignore[no-untyped-def]
    scorer, _, ev, _ = setup
    await feed(scorer, ev, reported(), checked_in(), checked_in())
    already = next(iter(scorer.pending))
    scorer.store.mark_published([f"scoring:{already}"])  # e.g. marked by a process that crashed right after
    assert await scorer.publish_pending() == 2
    assert await scorer.publish_pending() == 0


# ---- a publisher never stalls on one item ----------------------------------------------------------------------------
async def test_an_entry_the_contract_refuses_is_set_aside_and_the_rest_flow(setup) -> None:  # type: ignore[no-untyped-def]
    """A source event id with a space is a valid envelope (a free string) but not a valid `Ref`: the entry's
    PointsAwarded cannot be encoded, ever. It is set aside with its error; everything else is published."""
    scorer, _, ev, _ = setup
    await feed(scorer, ev, reported())
    await feed(scorer, ev, rated(5), event_id="intake 7")
    await feed(scorer, ev, checked_in(), checked_in())
    assert await scorer.publish_pending() == 2
    state = scorer.publishing_state()
    assert [(i.kind, i.attempts) for i in state.set_aside] == [("entry", 1)]
    assert state.set_aside[0].error.startswith("ValidationError") and state.pending == 0
    await feed(scorer, ev, checked_in())
    assert await scorer.publish_pending() == 1  # later entries flow; the set-aside one is not retried
    assert [i.event_id for i in scorer.store.set_aside_items()] == [state.set_aside[0].event_id]


@pytest.mark.parametrize("how", ["refused at once", "refused on acknowledgement"])
async def test_a_message_the_broker_refuses_is_set_aside_and_the_rest_flow(setup, how: str) -> None:  # type: ignore[no-untyped-def]
    scorer, broker, ev, _ = setup
    await feed(scorer, ev, reported(), reported("m2"), checked_in("m1"), checked_in("m2"))
    refuse = lambda s: MessageSizeTooLargeError() if s.key == b"m2" else None  # noqa: E731
    if how == "refused at once":
        broker.refuse = refuse  # type: ignore[assignment]
    else:
        broker.fail_ack = lambda s: UnsupportedVersionError() if s.key == b"m2" else None  # type: ignore[assignment]
    assert await scorer.publish_pending() == 1
    assert [s.key for s in broker.points()] == [b"m1"]
    assert [i.kind for i in scorer.publishing_state().set_aside] == ["entry"]


async def test_set_aside_items_are_tried_again_after_a_restart(setup) -> None:  # type: ignore[no-untyped-def]
    scorer, broker, ev, url = setup
    await feed(scorer, ev, reported(), checked_in())
    broker.refuse = lambda s: MessageSizeTooLargeError()  # type: ignore[assignment]
    await scorer.publish_pending()
    assert len(scorer.store.set_aside_items()) == 1
    broker.refuse = lambda s: None  # type: ignore[assignment]  # fixed (a deploy): the next start publishes it
    again = await scorer_on(url, broker)
    again._go_live(scorer.ledger, 1, scorer.positions)
    assert await again.publish_pending() == 1
    assert again.store.set_aside_items() == [] and again.publishing_state().set_aside == []
    again.store.engine.dispose()


# ---- outages pause, then everything goes once -------------------------------------------------------------------
async def test_a_broker_outage_pauses_publishing_and_nothing_is_set_aside_or_lost(setup) -> None:  # type: ignore[no-untyped-def]
    scorer, broker, ev, _ = setup
    changes: list[bool] = []
    scorer.readiness.listen(changes.append)
    await feed(scorer, ev, reported(), checked_in(), checked_in())
    broker.away = True
    stop = asyncio.Event()
    task = asyncio.create_task(scorer.run_publisher(stop))
    while scorer.publishing_paused.attempts < 3:
        await asyncio.sleep(0.01)
    assert not scorer.readiness.ready and "publishing" in scorer.publishing_state().paused
    broker.away = False
    while scorer.publishing_state().pending or not scorer.readiness.ready:
        await asyncio.sleep(0.01)
    stop.set()
    await task
    assert len(broker.points()) == 2 and scorer.publishing_state().set_aside == []
    assert changes == [False, True]


async def test_a_store_outage_while_marking_publishes_nothing_twice(setup) -> None:  # type: ignore[no-untyped-def]
    scorer, broker, ev, _ = setup
    await feed(scorer, ev, reported(), checked_in(), checked_in())
    mark, failures = scorer.store.mark_published, [0]

    def away_then_back(ids: list[str]) -> None:
        if failures[0] < 3:
            failures[0] += 1
            raise OperationalError("INSERT", {}, ConnectionRefusedError("the store is away"))
        mark(ids)

    scorer.store.mark_published = away_then_back  # type: ignore[method-assign]
    stop = asyncio.Event()
    task = asyncio.create_task(scorer.run_publisher(stop))
    while failures[0] < 3 or scorer.publishing_state().unmarked or not scorer.readiness.ready:
        await asyncio.sleep(0.01)
    stop.set()
    await task
    ids = [s.event_id for s in broker.points()]
    assert len(ids) == 2 == len(set(ids))  # published once; only the marking was repeated
    assert scorer.store.unpublished(ids) == set()


# ---- live folding waits out a store outage ----------------------------------------------------------------------
async def test_live_folding_waits_out_a_store_outage_and_loses_nothing(setup, caplog) -> None:  # type: ignore[no-untyped-def]
    scorer, broker, ev, _ = setup
    changes: list[bool] = []
    scorer.readiness.listen(changes.append)
    commit, failures = scorer.store.commit_batch, [0]

    def away_then_back(*args: Any) -> None:
        if failures[0] < 5:
            failures[0] += 1
            raise OperationalError("INSERT", {}, ConnectionRefusedError("the store is away"))
        commit(*args)

    scorer.store.commit_batch = away_then_back  # type: ignore[method-assign]
    caplog.set_level(logging.INFO, logger=engine.__name__)
    await feed(scorer, ev, reported(), checked_in(), checked_in())
    assert failures[0] == 5 and changes == [False, True]
    assert scorer.positions == {("dispatch.roster.v1", 0): 1, ("dispatch.activities.v1", 0): 2}
    assert scorer.store.positions(1) == scorer.positions
    assert scorer.store.entry_ids(1) == set(scorer.ledger.entries) and len(scorer.ledger.entries) == 2
    assert broker.sent == []  # nothing dead-lettered
    lines = [r.getMessage() for r in caplog.records if r.name == engine.__name__]
    assert lines == ["scoring live folding paused: waiting for the store or the broker",
                     "scoring live folding resumed"]


def test_paused_backoff_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Paused, "START", 0.5)
    monkeypatch.setattr(Paused, "CAP", 30.0)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(engine.asyncio, "sleep", sleep)
    paused = Paused("publishing", Readiness("scoring"))

    async def run() -> None:
        for _ in range(12):
            await paused.failed(OperationalError("SELECT", {}, ConnectionRefusedError()))

    asyncio.run(run())
    assert waits[0] <= 0.5 and max(waits) <= 30.0 and waits[-1] >= 24.0  # doubling, then at most the cap
    assert all(b >= a * 0.8 for a, b in itertools.pairwise(waits))


# ---- quarterly notices ------------------------------------------------------------------------------------------
async def test_notices_are_published_once_and_a_refused_one_is_set_aside(setup) -> None:  # type: ignore[no-untyped-def]
    scorer, broker, ev, _ = setup
    await feed(scorer, ev, reported(), checked_in())
    broker.refuse = lambda s: (MessageSizeTooLargeError()  # type: ignore[assignment]
                               if s.topic == "scoring.notices.v1" and s.key.startswith(b"unit-") else None)
    bodies = await scorer.publish_notices(Q)
    assert [b["notice_id"] for b in bodies] == [f"community-c1-{Q}-2026.1"]  # the unit's notice was set aside
    notices = [s for s in broker.sent if s.topic == "scoring.notices.v1"]
    assert [s.event_id for s in notices] == [f"scoring:community-c1-{Q}-2026.1"]
    assert [(i.event_id, i.kind) for i in scorer.publishing_state().set_aside] == [(f"scoring:unit-u1-{Q}-2026.1",
                                                                                  "notice")]
    broker.refuse = lambda s: None  # type: ignore[assignment]
    await scorer.publish_notices(Q)  # asked again: the one published is not published twice
    assert [s.event_id for s in broker.sent if s.topic == "scoring.notices.v1"] == \
        [f"scoring:community-c1-{Q}-2026.1", f"scoring:unit-u1-{Q}-2026.1"]
    assert scorer.publishing_state().set_aside == [] and scorer.store.set_aside_items() == []


def notices_sent(broker: FakeBroker) -> list[Sent]:
    return [s for s in broker.sent if s.topic == "scoring.notices.v1"]


async def test_a_notice_is_announced_as_caused_by_who_published_it(setup) -> None:  # type: ignore[no-untyped-def]
    """The envelope carries the caller's opaque subject (as intake's and dispatch's facts do), and nothing else of
    them; the store keeps subject and role with the notice and its message, the bytes that were sent."""
    scorer, broker, ev, _ = setup
    await feed(scorer, ev, reported(), checked_in())
    before = await scorer.digest()
    assert [b["notice_id"] for b in await scorer.publish_notices(Q, OFFICE)] == NOTICES
    sent = notices_sent(broker)
    assert [s.event_id for s in sent] == [f"scoring:{n}" for n in NOTICES]
    for s, notice_id in zip(sent, NOTICES, strict=True):
        envelope = json.loads(s.body)
        assert envelope["actor"] == OFFICE.subject  # a plain string: the subject only
        assert set(envelope) == {"event_id", "type", "schema_version", "occurred_at", "producer", "key",
                                 "correlation_id", "causation_id", "actor", "data"}
        assert decode(s.body)[0].actor == OFFICE.subject  # and the contract reads it back
        stored = scorer.store.stored_notice(notice_id)
        assert stored is not None and stored.actor == OFFICE and stored.message == s.body
    assert await scorer.digest() == before  # notices are not state the digest covers
    [request] = scorer.store.requests()
    assert (request.action, request.subject, request.role, request.quarter, request.rule_set_version,
            request.outcome, request.detail) == ("PublishQuarterlyNotices", OFFICE.subject, "county_office", Q,
                                                 "2026.1", "done", "published 2, already published 0, set aside 0")


async def test_a_quarter_published_twice_by_two_people_publishes_nothing_new_and_records_both(setup) -> None:  # type: ignore[no-untyped-def]
    scorer, broker, ev, _ = setup
    await feed(scorer, ev, reported(), checked_in())
    await scorer.publish_notices(Q, OFFICE)
    first = [s.body for s in notices_sent(broker)]
    await feed(scorer, ev, checked_in())  # the ledger moved on; the notices' ids name what was published
    again = await scorer.publish_notices(Q, OTHER_OFFICE)
    assert [b["notice_id"] for b in again] == NOTICES
    assert [b["summary"]["hours"] for b in again] == [json.loads(m)["data"]["summary"]["hours"] for m in first]
    assert [s.body for s in notices_sent(broker)] == first  # nothing sent again
    assert all(scorer.store.stored_notice(n).actor == OFFICE for n in NOTICES)  # type: ignore[union-attr]
    assert [(r.subject, r.role, r.outcome, r.detail) for r in scorer.store.requests()] == [
        (OFFICE.subject, "county_office", "done", "published 2, already published 0, set aside 0"),
        (OTHER_OFFICE.subject, "county_office", "done", "published 0, already published 2, set aside 0")]


async def test_a_notice_published_but_not_marked_goes_out_again_with_the_same_bytes(setup, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The process dies after the broker took the first notice, before it was marked: asked again after the
    restart (by someone else, later), that notice goes out with the bytes stored the first time (the first
    caller's, the first time); the next one, never stored, is the new caller's."""
    scorer, broker, ev, url = setup
    await feed(scorer, ev, reported(), checked_in())
    mark = scorer.store.mark_published
    scorer.store.mark_published = lambda ids: (_ for _ in ()).throw(Crash())  # type: ignore[method-assign]
    with pytest.raises(Crash):
        await scorer.publish_notices(Q, OFFICE)
    [first] = notices_sent(broker)
    assert [r.outcome for r in scorer.store.requests()] == ["running"]  # it never ended
    scorer.store.mark_published = mark  # type: ignore[method-assign]
    again = await scorer_on(url, broker)
    replaying(monkeypatch, ev.log)
    await again.restore()  # the log re-folded, as the store has it; the request left running is interrupted
    assert set(again.ledger.entries) == set(scorer.ledger.entries)
    await asyncio.sleep(0.01)  # a different now: bytes made now would differ
    await again.publish_notices(Q, OTHER_OFFICE)
    community, unit = notices_sent(broker)[1:]
    assert community.body == first.body and decode(community.body)[0].actor == OFFICE.subject
    assert decode(unit.body)[0].actor == OTHER_OFFICE.subject
    assert again.store.unpublished([f"scoring:{n}" for n in NOTICES]) == set()
    assert [(r.subject, r.outcome) for r in again.store.requests()] == [
        (OFFICE.subject, "interrupted"), (OTHER_OFFICE.subject, "done")]
    again.store.engine.dispose()


async def test_a_notice_stored_before_messages_were_kept_is_published_from_what_was_stored(setup) -> None:  # type: ignore[no-untyped-def]
    """Saved by an older version and never published: sent from its stored body and time, with no actor (none was
    recorded), and sent again with the same bytes."""
    scorer, broker, ev, _ = setup
    await feed(scorer, ev, reported(), checked_in())
    body = {"notice_id": NOTICES[0], "scope": "community", "scope_id": "c1", "quarter": Q,
            "rule_set_version": "2026.1", "summary": {"members_active": 7, "services_completed": 0, "hours": 0.0,
                                                      "response_rate": None, "completion_rate": None,
                                                      "satisfaction_rate": None, "overdue": 0, "escalated": 0},
            "ranking": []}
    scorer.store.save_notice(NOTICES[0], "community", "c1", Q, "2026.1", body, at=ev.now)
    mark = scorer.store.mark_published
    scorer.store.mark_published = lambda ids: (_ for _ in ()).throw(Crash())  # type: ignore[method-assign]
    with pytest.raises(Crash):
        await scorer.publish_notices(Q, OFFICE)
    scorer.store.mark_published = mark  # type: ignore[method-assign]
    await scorer.publish_notices(Q, OFFICE)
    first, again = (s for s in notices_sent(broker) if s.event_id == f"scoring:{NOTICES[0]}")
    envelope, notice = decode(first.body)
    assert again.body == first.body
    assert (envelope.actor, envelope.occurred_at, notice.summary.members_active) == (None, ev.now, 7)


# ---- who asked for a rebuild or a what-if ---------------------------------------------------------------------------
async def test_a_rebuild_is_recorded_with_who_asked_and_how_it_ended(setup, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    scorer, _, _, _ = setup
    acted = Events(actor="f3c1e9a0-5b7d-4c2e-9a61-0d8e4b2f7c15")  # facts a person caused: the same digest
    hand_county(acted)
    replaying(monkeypatch, acted.log)
    done = await scorer.rebuild(None, actor=OPERATOR)
    assert done.digest == HAND_COUNTY_DIGEST["2026.1"] == await scorer.digest()
    [request] = scorer.store.requests()
    assert (request.action, request.subject, request.role, request.rule_set_version, request.outcome) == (
        "Rebuild", OPERATOR.subject, "operator", "2026.1", "done")
    assert request.detail == f"{len(acted.log)} events in {done.seconds:.3f} s; digest {done.digest}"
    assert request.finished_at is not None and request.finished_at >= request.started_at
    replaying(monkeypatch, [], KafkaConnectionError("the broker is not reachable"))
    with pytest.raises(KafkaConnectionError):
        await scorer.rebuild("2026.2", actor=OPERATOR)
    failed = scorer.store.requests()[-1]
    assert (failed.subject, failed.rule_set_version, failed.outcome) == (OPERATOR.subject, "2026.2", "failed")
    assert failed.detail.startswith("KafkaConnectionError")
    assert scorer.ledger.rules.version == "2026.1" and await scorer.digest() == done.digest  # nothing swapped


async def test_a_what_if_is_recorded_with_who_asked_and_the_ledger_is_untouched(setup, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    scorer, _, ev, _ = setup
    await feed(scorer, ev, reported(), checked_in())
    replaying(monkeypatch, ev.log)
    before = await scorer.digest()
    current, candidate = await scorer.what_if("2026.2", actor=OFFICE, quarter=Q)
    assert current is scorer.ledger and candidate.rules.version == "2026.2" and await scorer.digest() == before
    [request] = scorer.store.requests()
    assert (request.action, request.subject, request.role, request.rule_set_version, request.quarter,
            request.outcome) == ("WhatIf", OFFICE.subject, "county_office", "2026.2", Q, "done")
    assert request.detail == f"compared with 2026.1: {len(current.entries)} entries now, {len(candidate.entries)}"
    assert scorer.store.current() == (1, "2026.1")  # no ledger stored
