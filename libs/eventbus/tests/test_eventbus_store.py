"""The event store base: traces stored beside events, tracking saved atomically, on every backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError, Tracking

from sandan_eventbus.store import ServiceApplication
from sandan_eventbus.trace import TracingMapper, traced


class Counter(Aggregate):
    @event("Started")
    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0

    @event("Incremented")
    def increment(self, by: int) -> None:
        self.count += by


class CounterApp(ServiceApplication):
    name = "countertest"


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    if request.param == "memory":
        yield "memory://"
    elif request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/events.db"
    else:
        yield request.getfixturevalue("postgres_schema_url")  # root conftest: a schema of its own


def test_the_current_trace_is_stored_beside_each_event_and_not_replayed(store_url: str) -> None:
    app = CounterApp(store_url)
    counter = Counter("hours")
    with traced("walk-1", "intake:7"):
        counter.increment(by=2)
        app.save(counter)
    counter.increment(by=3)
    app.save(counter)  # outside any trace

    notifications = app.recorder.select_notifications(start=1, limit=10)
    mapper = app.mapper
    assert isinstance(mapper, TracingMapper)
    traces = [mapper.trace_of(n) for n in notifications]
    assert [(t.correlation_id, t.causation_id) if t else None for t in traces] == [
        ("walk-1", "intake:7"), ("walk-1", "intake:7"), None]
    replayed = app.repository.get(counter.id)
    assert replayed.count == 5 and not hasattr(replayed, "__trace__")


def test_tracking_is_saved_with_the_events_and_a_second_time_is_refused(store_url: str) -> None:
    app = CounterApp(store_url)
    counter = Counter("visits")
    counter.increment(by=1)
    tracking = Tracking("kafka:intake.demands.v1:0", 42)
    app.save_tracked(counter, tracking=tracking)
    assert app.already_processed(tracking)

    again = app.repository.get(counter.id)
    again.increment(by=1)
    with pytest.raises(IntegrityError):
        app.save_tracked(again, tracking=tracking)
    assert app.repository.get(counter.id).count == 1  # the duplicate changed nothing
    assert not app.already_processed(Tracking("kafka:intake.demands.v1:0", 43))


def test_retrying_rereads_after_a_concurrent_write(store_url: str) -> None:
    app = CounterApp(store_url)
    counter = Counter("claims")
    app.save(counter)
    stale = app.repository.get(counter.id)
    fresh = app.repository.get(counter.id)
    fresh.increment(by=1)
    app.save(fresh)
    attempts = []

    def command() -> int:
        target = stale if not attempts else app.repository.get(counter.id)
        attempts.append(target.version)
        target.increment(by=10)
        app.save(target)
        return target.count

    assert app.retrying(command) == 11
    assert len(attempts) == 2
