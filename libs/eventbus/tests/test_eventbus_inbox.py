"""The inbox's outcomes without a broker: outages pause and never dead-letter, failures that would fail again
are dead-lettered, and no failing step leaves a message unaccounted for. A fake broker records what would be
published; the store is real (SQLite) with failures injected around it."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg
import psycopg_pool
import pytest
from aiokafka import ConsumerRecord
from aiokafka.errors import CommitFailedError, KafkaConnectionError, KafkaTimeoutError, NotLeaderForPartitionError
from eventsourcing import persistence
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError

from sandan_contracts import encode
from sandan_contracts.envelope import Envelope
from sandan_contracts.events import DemandWithdrawn, Event
from sandan_eventbus.errors import FailedPrecondition, InvalidArgument, NotFound
from sandan_eventbus.inbox import Inbox, Outcome, tracking_for
from sandan_eventbus.outages import is_outage
from sandan_eventbus.readiness import Readiness
from sandan_eventbus.relay import Relay
from sandan_eventbus.store import ServiceApplication

TOPIC = "intake.demands.v1"


class Note(Aggregate):
    @event("Written")
    def __init__(self, demand_id: str) -> None:
        self.demand_id = demand_id
        self.seen: list[str] = []

    @event("Seen")
    def see(self, what: str) -> None:
        self.seen.append(what)


class UnitApp(ServiceApplication):
    name = "inboxunit"


class FakeBroker:
    """Records publishes; `failures` of them raise first (an unreachable broker)."""

    def __init__(self) -> None:
        self.published: list[tuple[str, bytes, dict[str, str]]] = []
        self.failures: list[BaseException] = []

    async def publish(self, value: bytes, topic: str, *, key: bytes | None = None,
                      headers: dict[str, str] | None = None, no_confirm: bool = False, **_: Any) -> Any:
        if self.failures:
            raise self.failures.pop(0)
        self.published.append((topic, value, headers or {}))
        if no_confirm:  # the relay gathers the delivery futures
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        return None


def record(offset: int, value: bytes, partition: int = 0) -> ConsumerRecord[Any, Any]:
    return ConsumerRecord(topic=TOPIC, partition=partition, offset=offset, timestamp=0, timestamp_type=0,
                          key=b"k", value=value, checksum=None, serialized_key_size=1,
                          serialized_value_size=len(value), headers=())


def fact(demand_id: str, n: int = 1) -> bytes:
    return encode(DemandWithdrawn(demand_id=demand_id, reason="x"), event_id=f"intake:{n}", producer="intake",
                  occurred_at=datetime.now(UTC), correlation_id="walk", causation_id=None)


class Failing:
    """Wraps a store method: raises the queued errors first, then calls through."""

    def __init__(self, original: Any, *errors: BaseException) -> None:
        self.original = original
        self.errors = list(errors)
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.original(*args, **kwargs)


@pytest.fixture
def app(tmp_path) -> UnitApp:  # type: ignore[no-untyped-def]
    return UnitApp(f"sqlite:///{tmp_path}/inbox.db")


def make_inbox(app: UnitApp, broker: FakeBroker, handler: Any, **kwargs: Any) -> Inbox:
    options = {"backoff_seconds": 0.01, "max_backoff_seconds": 0.05, "hold_seconds": 5.0, **kwargs}
    return Inbox(app, broker, "unit", {TOPIC: handler}, **options)  # type: ignore[arg-type]


def seeing(app: UnitApp, note: Note) -> Any:
    def handler(envelope: Envelope, _: Event) -> list[Any]:
        target = app.repository.get(note.id)
        target.see(envelope.event_id)
        return [target]

    return handler


OUTAGE = persistence.OperationalError("connection refused")


async def test_a_store_outage_pauses_the_consumer_and_applies_once_when_the_store_is_back(
        app: UnitApp, caplog: pytest.LogCaptureFixture) -> None:
    note = Note("d1")
    app.save(note)
    broker = FakeBroker()
    inbox = make_inbox(app, broker, seeing(app, note))
    changes: list[bool] = []
    inbox.readiness.listen(changes.append)
    save = Failing(app.save_tracked, *[OUTAGE] * 6)
    app.save_tracked = save  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO, logger="sandan_eventbus.readiness"):
        assert await inbox.receive(TOPIC, record(0, fact("d1"))) is Outcome.APPLIED
    assert save.calls == 7
    assert app.repository.get(note.id).seen == ["intake:1"]
    assert broker.published == [] and inbox.dead_lettered == 0
    assert changes == [False, True] and inbox.readiness.ready
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["service not ready", "service ready again"]


async def test_an_outage_longer_than_one_delivery_holds_the_message_and_records_nothing(app: UnitApp) -> None:
    note = Note("d2")
    app.save(note)
    broker = FakeBroker()
    inbox = make_inbox(app, broker, seeing(app, note), hold_seconds=0.2)
    app.save_tracked = Failing(app.save_tracked, *[OUTAGE] * 1000)  # type: ignore[method-assign]
    assert await inbox.receive(TOPIC, record(0, fact("d2"))) is Outcome.HELD
    assert not inbox.readiness.ready and inbox.readiness.down()[0].component == f"inbox:{TOPIC}"
    assert broker.published == [] and not app.already_processed(tracking_for(record(0, b"")))

    # delivered again once the store is back: applied, once
    del app.save_tracked
    assert await inbox.receive(TOPIC, record(0, fact("d2"))) is Outcome.APPLIED
    assert await inbox.receive(TOPIC, record(0, fact("d2"))) is Outcome.DUPLICATE
    assert app.repository.get(note.id).seen == ["intake:1"] and inbox.readiness.ready


async def test_an_error_in_the_already_processed_check_is_retried_not_skipped(app: UnitApp) -> None:
    note = Note("d3")
    app.save(note)
    inbox = make_inbox(app, FakeBroker(), seeing(app, note))
    app.already_processed = Failing(app.already_processed, RuntimeError("driver bug"),  # type: ignore[method-assign]
                                    psycopg_pool.PoolTimeout("no connection"))
    assert await inbox.receive(TOPIC, record(0, fact("d3"))) is Outcome.APPLIED
    assert app.repository.get(note.id).seen == ["intake:1"]


async def test_a_dead_letter_waits_for_the_broker_and_is_published_once(app: UnitApp) -> None:
    broker = FakeBroker()
    broker.failures = [KafkaConnectionError(), KafkaTimeoutError()]
    inbox = make_inbox(app, broker, lambda e, f: [])
    assert await inbox.receive(TOPIC, record(5, b"{not json")) is Outcome.DEAD_LETTERED
    assert [(t, v) for t, v, _ in broker.published] == [(f"{TOPIC}.dlq", b"{not json")]
    headers = broker.published[0][2]
    assert headers["dlq.source.offset"] == "5" and headers["dlq.consumer.group"] == "unit"
    assert "undecodable" in headers["dlq.error"]
    assert app.already_processed(tracking_for(record(5, b"")))


async def test_recording_a_dead_letter_through_an_outage_never_publishes_it_twice(app: UnitApp) -> None:
    broker = FakeBroker()
    inbox = make_inbox(app, broker, lambda e, f: [], hold_seconds=0.2)
    app.save_tracked = Failing(app.save_tracked, *[OUTAGE] * 1000)  # type: ignore[method-assign]
    assert await inbox.receive(TOPIC, record(6, b"junk")) is Outcome.HELD
    del app.save_tracked
    assert await inbox.receive(TOPIC, record(6, b"junk")) is Outcome.DEAD_LETTERED
    assert len(broker.published) == 1 and app.already_processed(tracking_for(record(6, b"")))


async def test_a_refusal_is_recorded_with_no_effect_and_not_dead_lettered(app: UnitApp) -> None:
    broker = FakeBroker()
    calls = 0

    def refuse(envelope: Envelope, _: Event) -> list[Any]:
        nonlocal calls
        calls += 1
        raise FailedPrecondition("order is completed")

    inbox = make_inbox(app, broker, refuse)
    assert await inbox.receive(TOPIC, record(7, fact("d7"))) is Outcome.REFUSED
    assert calls == 1 and broker.published == [] and inbox.refused == 1
    assert await inbox.receive(TOPIC, record(7, fact("d7"))) is Outcome.DUPLICATE  # position recorded


@pytest.mark.parametrize("refusal", [NotFound("demand d9 not found"), InvalidArgument("hours", "too many")])
async def test_a_fact_naming_the_unknown_is_dead_lettered_at_once_and_changes_nothing(
        app: UnitApp, refusal: Exception) -> None:
    broker = FakeBroker()
    calls = 0

    def unknown(envelope: Envelope, _: Event) -> list[Any]:
        nonlocal calls
        calls += 1
        raise refusal

    inbox = make_inbox(app, broker, unknown, max_attempts=3)
    assert await inbox.receive(TOPIC, record(9, fact("d9"))) is Outcome.DEAD_LETTERED
    assert calls == 1 and inbox.refused == 0
    assert broker.published[0][2]["dlq.error"].startswith("refused: ")
    assert await inbox.receive(TOPIC, record(9, fact("d9"))) is Outcome.DUPLICATE  # its position is recorded


async def test_a_bug_on_this_input_is_tried_a_few_times_then_dead_lettered(app: UnitApp) -> None:
    broker = FakeBroker()
    calls = 0

    def broken(envelope: Envelope, _: Event) -> list[Any]:
        nonlocal calls
        calls += 1
        raise KeyError("member")

    inbox = make_inbox(app, broker, broken, max_attempts=3)
    assert await inbox.receive(TOPIC, record(8, fact("d8"))) is Outcome.DEAD_LETTERED
    assert calls == 3 and "failed 3 times: KeyError" in broker.published[0][2]["dlq.error"]
    assert inbox.readiness.ready  # a bad message is not an outage


async def test_a_concurrent_write_is_tried_again_and_applies(app: UnitApp) -> None:
    note = Note("d9")
    app.save(note)
    inbox = make_inbox(app, FakeBroker(), seeing(app, note))
    app.save_tracked = Failing(app.save_tracked, IntegrityError("version taken"))  # type: ignore[method-assign]
    assert await inbox.receive(TOPIC, record(9, fact("d9"))) is Outcome.APPLIED
    assert app.repository.get(note.id).seen == ["intake:1"]


class FakeMessage:
    def __init__(self, raw: ConsumerRecord[Any, Any], commit_error: BaseException | None = None) -> None:
        self.raw_message = raw
        self.acked = self.nacked = 0
        self.commit_error = commit_error

    async def ack(self) -> None:
        if self.commit_error:
            raise self.commit_error
        self.acked += 1

    async def nack(self) -> None:
        self.nacked += 1


async def test_the_receiver_commits_only_durable_outcomes_and_seeks_back_to_held_ones(app: UnitApp) -> None:
    note = Note("d10")
    app.save(note)
    inbox = make_inbox(app, FakeBroker(), seeing(app, note), hold_seconds=0.1)
    receive = inbox._receiver(TOPIC)
    app.save_tracked = Failing(app.save_tracked, *[OUTAGE] * 1000)  # type: ignore[method-assign]
    held = FakeMessage(record(10, fact("d10")))
    await receive(held)
    assert (held.acked, held.nacked) == (0, 1)
    del app.save_tracked
    again = FakeMessage(record(10, fact("d10")), commit_error=CommitFailedError("rebalanced"))
    await receive(again)  # the commit fails (a rebalance): the effect is durable, a redelivery is a no-op
    done = FakeMessage(record(10, fact("d10")))
    await receive(done)
    assert (done.acked, done.nacked) == (1, 0)
    assert app.repository.get(note.id).seen == ["intake:1"]


@pytest.mark.parametrize("error", [
    persistence.OperationalError("x"), persistence.InterfaceError("x"),
    persistence.ConnectionUnavailableError("x"), psycopg.OperationalError("x"), psycopg_pool.PoolTimeout("x"),
    sqlite3.OperationalError("database is locked"), KafkaConnectionError(), KafkaTimeoutError(),
    NotLeaderForPartitionError(), ConnectionRefusedError(), TimeoutError(),
])
def test_outages_are_recognised(error: BaseException) -> None:
    assert is_outage(error)


def test_an_outage_wrapped_by_a_handler_is_still_an_outage() -> None:
    try:
        try:
            raise psycopg.OperationalError("server closed the connection")
        except psycopg.OperationalError as inner:
            raise RuntimeError("lookup failed") from inner
    except RuntimeError as outer:
        assert is_outage(outer)


@pytest.mark.parametrize("error", [ValueError("bad"), KeyError("k"), FailedPrecondition("no"),
                                   IntegrityError("dup"), persistence.ProgrammingError("syntax"),
                                   CommitFailedError("rebalanced")])
def test_failures_that_would_fail_again_are_not_outages(error: BaseException) -> None:
    assert not is_outage(error)


def test_readiness_logs_once_per_change_of_the_whole_and_names_the_first_part(
        caplog: pytest.LogCaptureFixture) -> None:
    readiness = Readiness("svc")
    seen: list[bool] = []
    readiness.listen(seen.append)
    with caplog.at_level(logging.INFO, logger="sandan_eventbus.readiness"):
        readiness.set("inbox:t", True)  # ready already: nothing
        readiness.set("store", False, "PoolTimeout")
        readiness.set("inbox:t", False, "OperationalError")
        readiness.set("store", False, "again")
        readiness.set("store", True)
        assert not readiness.ready and [d.component for d in readiness.down()] == ["inbox:t"]
        readiness.set("inbox:t", True)
    assert readiness.ready and seen == [False, True]
    messages = [(r.getMessage(), getattr(r, "fields", {}).get("component")) for r in caplog.records]
    assert messages == [("service not ready", "store"), ("service ready again", "inbox:t")]


async def test_the_relay_waits_out_an_outage_not_ready_and_publishes_after(app: UnitApp) -> None:
    app.save(Note(f"r-{uuid.uuid4().hex[:6]}"))
    broker = FakeBroker()
    broker.failures = [KafkaConnectionError(), KafkaConnectionError()]
    relay = Relay(app, broker, lambda e: DemandWithdrawn(demand_id=e.demand_id, reason="x"),  # type: ignore[arg-type]
                  backoff_seconds=0.01, max_backoff_seconds=0.02)
    changes: list[bool] = []
    relay.readiness.listen(changes.append)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    for _ in range(200):
        if relay.published:
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert relay.published == 1 and [t for t, _, _ in broker.published] == [TOPIC]
    assert changes == [False, True] and relay.position() == 1
