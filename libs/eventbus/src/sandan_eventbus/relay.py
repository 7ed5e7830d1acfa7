"""The outbox relay: the event store's notification log, published to Kafka.

Commands only ever write the store. The relay reads notifications after its last recorded position,
maps each stored event to its public contract (or skips internal ones), publishes the batch with an
idempotent producer (acks=all), and only then records the new position in the same store. A crash
between publish and record re-publishes the same events with the same deterministic event ids
(`event_id_of`), which consumers recognise as duplicates: at-least-once, in order per key, never a dual
write.

The relay never stalls on one event. A failure is either an outage (store or broker unreachable, timeouts,
a leader moving: `outages.py`), which pauses the relay and retries the batch for as long as it lasts (the
service NOT_SERVING meanwhile), or this event's own: it cannot be mapped or encoded (the contract refuses it),
or the broker refuses the record (larger than the topic's `max.message.bytes`, an invalid topic). Such an event
is **set aside**: recorded with its error (the error's type and a bounded message, never the event's content) in
the service's store, in the same transaction as the position that moves past it, counted
(`sandan_relay_set_aside_events`), logged, and reported on the health name `publishing`; the rest flow, and the
service stays SERVING. A restart does not try it again: it waits, listed by `set_aside_events`, until an operator
re-drives it (`redrive`, once its cause is fixed), which publishes it alone and records who asked and the outcome.

A record the broker refuses may have been refused with the whole producer batch it travelled in (the broker checks
a batch's size), so each refused record is tried once more alone, and only a record refused alone is set aside.
A refusal by the broker also leaves the idempotent producer's sequence numbers for that partition ahead of the
broker's (aiokafka, unlike the Java client, does not rewind them): every later batch there fails with
OutOfOrderSequenceNumber. So after one the producer takes a new producer id (`renew_producer_id`), and the records
that failed that way are sent again, alone and in order: the partition keeps its order.

What consumers see: a set-aside event is a gap in its aggregate's facts, and its re-drive publishes it later,
after facts of the same aggregate that followed it (Kafka's order is the order of publishing). Consumers do not
check versions; they act on each fact against their own state: a fact naming something they never heard of
(e.g. an order's withdrawal whose posting was set aside) is refused as NotFound and dead-lettered by the inbox,
to be re-driven after the set-aside event; scoring skips an order's facts seen without its opening, so points they
would have earned are missing until a rebuild that reads them in order. Re-drive the set-aside event first, then
the dead letters it caused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pydantic
from aiokafka import errors as kafka_errors
from aiokafka.producer.transaction_manager import (
    NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID,
    PidAndEpoch,
    TransactionManager,
)
from aiokafka.util import create_future
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import Notification, Tracking
from faststream.kafka import KafkaBroker
from opentelemetry.trace import Span
from tenacity import AsyncRetrying, RetryCallState, RetryError, retry_if_exception_type

from sandan_contracts import Event, encode
from sandan_contracts.cloudevents import headers as cloudevent_headers
from sandan_contracts.envelope import headers as event_headers
from sandan_eventbus import metrics, tracing
from sandan_eventbus.errors import InvalidArgument
from sandan_eventbus.outages import backoff, describe, is_outage
from sandan_eventbus.readiness import Readiness
from sandan_eventbus.store import ServiceApplication
from sandan_eventbus.trace import Trace, TracingMapper

log = logging.getLogger(__name__)

# Published event ids: `<service>:<uuid5 of the stored event's aggregate id, version and time>`. Stable (a
# re-published event keeps its id, so consumers deduplicate it) and unique beyond one store: a notification id
# alone ("dispatch:12") is reused by a store recreated or restored from a backup, and by every test stack on a
# shared broker, and consumers that deduplicate by event id (scoring, notify) would drop the second fact.
EVENT_IDS = uuid.UUID("5b1f0c3e-8a57-4d2e-9d06-3c1f5e0a7b42")

# The broker or the producer refuses this record, however healthy the broker is: trying again changes nothing.
REFUSED_RECORD: tuple[type[Exception], ...] = (
    kafka_errors.MessageSizeTooLargeError,  # larger than max.message.bytes (broker) or max_request_size (client)
    kafka_errors.RecordTooLargeError,
    kafka_errors.RecordListTooLargeError,
    kafka_errors.InvalidTopicError,
    kafka_errors.CorruptRecordException,
    kafka_errors.InvalidTimestampError,  # outside the topic's message.timestamp.difference.max.ms
)
# Kafka's legal topic names. The producer would wait for metadata of any other name until it times out (an
# UnknownTopicOrPartition, which reads as an outage), so an illegal one is refused here, as the broker would.
TOPIC_NAME = re.compile(r"^(?!\.{1,2}$)[A-Za-z0-9._-]{1,249}$")
ERROR_CHARS = 300
SET_ASIDE, PUBLISHED = "set_aside", "published"


def event_id_of(service: str, originator_id: uuid.UUID, version: int, timestamp: datetime) -> str:
    return f"{service}:{uuid.uuid5(EVENT_IDS, f'{originator_id}:{version}:{timestamp.isoformat()}')}"


def refuses_record(error: BaseException) -> bool:
    return isinstance(error, REFUSED_RECORD)


def renew_producer_id(broker: Any) -> bool:
    """Make the broker's idempotent producer ask for a new producer id before its next batch, every partition's
    sequence starting at 0 again (batches already sent keep theirs). False when `broker` holds no such producer.

    Reaches into aiokafka (its TransactionManager, as of aiokafka 0.14): the sender asks for a producer id whenever
    it has none, which is how it starts."""
    fast = getattr(getattr(broker, "config", None), "producer", None)
    txn = getattr(getattr(getattr(fast, "_producer", None), "producer", None), "_txn_manager", None)
    if not isinstance(txn, TransactionManager) or txn.transactional_id is not None:
        return False
    txn._pid_and_epoch = PidAndEpoch(NO_PRODUCER_ID, NO_PRODUCER_EPOCH)
    txn._pid_waiter = create_future()
    txn._sequence_numbers.clear()
    return True


def _out_of_sequence(error: BaseException) -> bool:
    return isinstance(error, kafka_errors.OutOfOrderSequenceNumber)


def safe_error(error: BaseException) -> str:
    """The error's type and a bounded message that cannot quote the event: it is stored, served and logged.

    A contract's validation error names the fields and what is wrong, never their values; Kafka's errors and a
    missing attribute (a mapping bug) say nothing of the event; any other error is named by its type alone."""
    if isinstance(error, pydantic.ValidationError):
        problems = "; ".join(f"{'.'.join(str(part) for part in e['loc']) or '-'}: {e['type']}"
                             for e in error.errors(include_url=False, include_input=False, include_context=False))
        return f"{type(error).__name__}: {error.error_count()} error(s): {problems}"[:ERROR_CHARS]
    if isinstance(error, kafka_errors.KafkaError | AttributeError | UnicodeError):
        return describe(error, ERROR_CHARS)[:ERROR_CHARS]
    return type(error).__name__


# ---- what was set aside, in the service's own store ---------------------------------------------------------
@dataclass(frozen=True)
class Redrive:
    at: datetime
    operator: str  # who asked, as stored; never logged
    reason: str
    outcome: str  # published | set_aside (failed again)
    error: str


@dataclass(frozen=True)
class SetAsideEvent:
    """One stored event the relay could not publish. Ids and errors only: nothing of the event's content."""

    notification_id: int
    event_id: str
    event_type: str  # the stored event's class, e.g. "Demand.Posted"
    topic: str  # where it was to be published ("" when it could not be mapped)
    error: str
    attempts: int  # the first try, and each re-drive
    first_at: datetime
    last_at: datetime
    status: str  # set_aside | published (a re-drive published it)
    redrives: tuple[Redrive, ...] = ()


class SetAsideEvents(Aggregate):
    """The events this service's relay set aside, and their re-drives: one per store, read whole (it stays small:
    setting aside is for the exceptional event). Its own events are internal (no contract maps them)."""

    @staticmethod
    def create_id(service: str) -> uuid.UUID:
        return uuid.uuid5(EVENT_IDS, f"relay-set-aside:{service}")

    @event("Started")
    def __init__(self, service: str) -> None:
        self.service = service
        self.items: dict[int, SetAsideEvent] = {}

    @event("Recorded")
    def record(self, notification_id: int, event_id: str, event_type: str, topic: str, error: str,
               at: datetime) -> None:
        self.items[notification_id] = SetAsideEvent(notification_id, event_id, event_type, topic, error, 1, at, at,
                                                    SET_ASIDE)

    @event("Redriven")
    def redriven(self, notification_id: int, at: datetime, operator: str, reason: str, outcome: str,
                 error: str) -> None:
        item = self.items[notification_id]
        self.items[notification_id] = replace(
            item, status=PUBLISHED if outcome == PUBLISHED else item.status, error=error or item.error,
            attempts=item.attempts + 1, last_at=at, redrives=(*item.redrives, Redrive(at, operator, reason, outcome,
                                                                                        error)))

    def waiting(self) -> int:
        return sum(1 for item in self.items.values() if item.status == SET_ASIDE)


@dataclass(frozen=True)
class RedriveResult:
    notification_id: int
    outcome: str  # published | set_aside (failed again: still set aside) | already_published | not_found
    error: str = ""


# ---- publishing ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Pending:
    notification_id: int
    event_id: str
    event_type: str
    contract: Event | None
    trace: Trace | None
    occurred_at: datetime
    refusal: str | None = None  # it could not be mapped: set aside


@dataclass(frozen=True)
class _Record:
    """One record ready to go: encoded, keyed, with its headers."""

    pending: _Pending
    topic: str
    key: bytes
    body: bytes
    headers: dict[str, str]
    correlation_id: str


@dataclass(frozen=True)
class _Aside:
    pending: _Pending
    topic: str
    error: str


ToContract = Callable[[Any], Event | None]
SetAsideListener = Callable[[int], None]
RELAY_TRACKING = "relay"
BACKLOG_EVERY_SECONDS = 2.0  # how often the relay measures its backlog (two store queries)


class Relay:
    def __init__(self, app: ServiceApplication, broker: KafkaBroker, to_contract: ToContract,
                 *, batch_size: int = 200, idle_seconds: float = 0.1, readiness: Readiness | None = None,
                 backoff_seconds: float = 0.5, max_backoff_seconds: float = 10.0) -> None:
        self.app = app
        self.broker = broker
        self.to_contract = to_contract
        self.batch_size = min(batch_size, app.log_section_size)
        self.idle_seconds = idle_seconds
        self.published = 0
        # the runtime replaces this with the service's own, so a stalled relay reaches its health
        self.readiness = readiness or Readiness(app.name)
        self.backoff = backoff(backoff_seconds, max_backoff_seconds)
        self._wake = asyncio.Event()
        self._ledger_id = SetAsideEvents.create_id(app.name)
        self.set_aside: int | None = None  # events set aside and not re-driven (None: not read yet)
        self._set_aside_listeners: list[SetAsideListener] = []

    def wake(self) -> None:
        """Called after a command saved events, so they go out without waiting for the next poll."""
        self._wake.set()

    def position(self) -> int:
        return self.app.tracking_recorder.max_tracking_id(RELAY_TRACKING) or 0

    # ---- reading and mapping ---------------------------------------------------------------------------
    def _map(self, n: Notification) -> _Pending:
        """The stored event and its contract; an event that cannot be read or mapped comes back with a refusal."""
        mapper = self.app.mapper
        assert isinstance(mapper, TracingMapper)
        event_type = n.topic.rpartition(":")[2][:100]
        if n.originator_id == self._ledger_id:  # the relay's own record: internal, and never the service's to map
            return _Pending(n.id, "", event_type, None, None, datetime.now(UTC))
        try:
            domain_event = mapper.to_domain_event(n)
        except Exception as exc:
            if is_outage(exc):
                raise
            return _Pending(n.id, f"{self.app.name}:notification:{n.id}", event_type, None, None, datetime.now(UTC),
                            safe_error(exc))
        event_id = event_id_of(self.app.name, n.originator_id, n.originator_version, domain_event.timestamp)
        trace = mapper.trace_of(n)
        try:
            contract = self.to_contract(domain_event)
        except Exception as exc:
            if is_outage(exc):
                raise
            return _Pending(n.id, event_id, event_type, None, trace, domain_event.timestamp, safe_error(exc))
        return _Pending(n.id, event_id, event_type, contract, trace, domain_event.timestamp)

    def _pending(self, after: int) -> list[_Pending]:
        notifications = self.app.recorder.select_notifications(start=after + 1, limit=self.batch_size)
        return [self._map(n) for n in notifications]

    def _record(self, p: _Pending) -> _Record:
        """Encode one event (raises when the contract refuses it)."""
        contract = p.contract
        assert contract is not None
        if not TOPIC_NAME.match(contract.TOPIC):
            raise kafka_errors.InvalidTopicError("not a legal topic name")
        correlation_id = p.trace.correlation_id if p.trace else p.event_id
        body = encode(
            contract,
            event_id=p.event_id,
            producer=self.app.name,
            occurred_at=p.occurred_at,
            correlation_id=correlation_id,
            causation_id=p.trace.causation_id if p.trace else None,
            actor=p.trace.actor.subject if p.trace and p.trace.actor else None,  # opaque: never a name
        )
        headers = {k: v.decode() for k, v in [*event_headers(contract), *cloudevent_headers(body)]}
        return _Record(p, contract.TOPIC, contract.key().encode(), body, headers, correlation_id)

    async def _send(self, record: _Record, spans: list[Span]) -> asyncio.Future[Any]:
        """Hand one record to the producer; the future completes when the broker has it (acks=all)."""
        p = record.pending
        # the child of the span current when the event was stored: the record carries it (traceparent)
        span = tracing.producer_span(record.topic, p.trace.traceparent if p.trace else None,
                                     p.trace.tracestate if p.trace else None, event_id=p.event_id,
                                     correlation_id=record.correlation_id)
        spans.append(span)
        return await self.broker.publish(record.body, record.topic, key=record.key,
                                         headers=record.headers | tracing.kafka_headers(span), no_confirm=True)

    async def _send_alone(self, record: _Record) -> None:
        """Publish one record and wait for the broker: alone in its producer batch, so a refusal is its own."""
        spans: list[Span] = []
        try:
            future = await self._send(record, spans)  # refused here: the producer never sent it
            try:
                await future
            except Exception as exc:
                if refuses_record(exc) or _out_of_sequence(exc):
                    self._renew_producer_id(exc)
                raise
        finally:
            for span in spans:
                span.end()

    def _renew_producer_id(self, error: BaseException) -> None:
        renewed = renew_producer_id(self.broker)
        log.warning("relay: the broker refused a record; the producer takes a new producer id", extra={"fields": {
            "service": self.app.name, "error": describe(error), "renewed": renewed}})

    async def _publish(self, records: list[_Record]) -> tuple[int, list[_Aside]]:
        """Publish the batch; (how many were published, those the broker refused alone). Any other failure
        (an outage) raises: nothing of the batch is recorded, and it goes out again."""
        futures: list[tuple[_Record, asyncio.Future[Any]]] = []
        refused: list[_Record] = []
        spans: list[Span] = []
        try:
            for record in records:
                try:
                    futures.append((record, await self._send(record, spans)))
                except Exception as exc:  # refused at once (e.g. larger than the producer's max_request_size)
                    if not refuses_record(exc):
                        raise
                    refused.append(record)
            results = await asyncio.gather(*(f for _, f in futures), return_exceptions=True)
        finally:
            for span in spans:
                span.end()
        published = 0
        failures = [r for r in results if isinstance(r, BaseException)]
        sequence_broken = next((r for r in failures if refuses_record(r) or _out_of_sequence(r)), None)
        if sequence_broken is not None:
            self._renew_producer_id(sequence_broken)
        for (record, _), result in zip(futures, results, strict=True):
            if not isinstance(result, BaseException):
                published += 1
            elif isinstance(result, Exception) and (refuses_record(result) or _out_of_sequence(result)):
                refused.append(record)  # refused, or sent after a refused batch: each is tried again alone
            else:
                raise result
        aside: list[_Aside] = []
        for record in sorted(refused, key=lambda r: r.pending.notification_id):
            try:
                await self._send_alone(record)
            except Exception as exc:
                if not refuses_record(exc):
                    raise
                aside.append(_Aside(record.pending, record.topic, safe_error(exc)))
                continue
            published += 1  # it was only refused with others in its producer batch
        return published, aside

    async def publish_once(self) -> int:
        """Publish one batch; returns how many notifications it moved past (set-aside ones included)."""
        after = await asyncio.to_thread(self.position)
        pending = await asyncio.to_thread(self._pending, after)
        if not pending:
            return 0
        records: list[_Record] = []
        aside: list[_Aside] = []
        for p in pending:
            if p.refusal is not None:
                aside.append(_Aside(p, "", p.refusal))
            elif p.contract is not None:  # None: an internal event, it stays in the store
                try:
                    records.append(self._record(p))
                except Exception as exc:  # the contract or the envelope refuses this event: it will again
                    aside.append(_Aside(p, p.contract.TOPIC, safe_error(exc)))
        published, refused = await self._publish(records)
        aside += refused
        last = pending[-1].notification_id
        waiting = await asyncio.to_thread(self._move_past, last,
                                          sorted(aside, key=lambda a: a.pending.notification_id))
        if waiting is not None:
            self._count(waiting)
        self.published += published
        return len(pending)

    def _move_past(self, last: int, aside: list[_Aside]) -> int | None:
        """Record the new position, and the events set aside on the way, in one transaction; how many wait set
        aside now (None: nothing was set aside)."""
        if not aside:
            self.app.tracking_recorder.insert_tracking(Tracking(RELAY_TRACKING, last))
            return None

        def record() -> SetAsideEvents:
            ledger = self._ledger() or SetAsideEvents(self.app.name)
            now = datetime.now(UTC)
            for a in aside:
                p = a.pending
                ledger.record(p.notification_id, p.event_id, p.event_type, a.topic, a.error, now)
            self.app.save_tracked(ledger, tracking=Tracking(RELAY_TRACKING, last))
            return ledger

        ledger = self.app.retrying(record)  # a re-drive may have saved the ledger meanwhile: read it again
        for a in aside:
            log.error("relay: an event set aside; the rest flow", extra={"fields": {
                "service": self.app.name, "notification_id": a.pending.notification_id,
                "event_id": a.pending.event_id, "event_type": a.pending.event_type, "topic": a.topic,
                "error": a.error, "set_aside": ledger.waiting()}})
        return ledger.waiting()

    # ---- set aside: listed, counted, re-driven -------------------------------------------------------------
    def _ledger(self) -> SetAsideEvents | None:
        try:
            return self.app.repository.get(self._ledger_id)
        except AggregateNotFoundError:  # nothing was ever set aside
            return None

    def set_aside_events(self, include_published: bool = False) -> list[SetAsideEvent]:
        """The events set aside, oldest first (also those a re-drive published, with `include_published`)."""
        ledger = self._ledger()
        items = sorted(ledger.items.values(), key=lambda i: i.notification_id) if ledger else []
        return [i for i in items if include_published or i.status == SET_ASIDE]

    def listen_set_aside(self, listener: SetAsideListener) -> None:
        """Call `listener(count)` whenever the number of events set aside is known anew (in the event loop)."""
        self._set_aside_listeners.append(listener)
        if self.set_aside is not None:
            listener(self.set_aside)

    def _count(self, waiting: int) -> None:
        self.set_aside = waiting
        metrics.relay_set_aside(self.app.name, waiting)
        for listener in self._set_aside_listeners:
            listener(waiting)

    async def _load_set_aside(self) -> None:
        waiting = len(await asyncio.to_thread(self.set_aside_events))
        if waiting:
            log.warning("relay: events set aside wait for a re-drive", extra={"fields": {
                "service": self.app.name, "set_aside": waiting}})
        self._count(waiting)

    async def redrive(self, notification_ids: Iterable[int] | None = None, *, operator: str,
                      reason: str = "") -> list[RedriveResult]:
        """Try set-aside events again (all of them by default), oldest first, each published alone.

        Published: it is no longer set aside. Refused again: it stays set aside with the new error. Each attempt is
        recorded with who asked (`operator`, required) and why. An outage raises, with nothing recorded for the
        event it stopped at: ask again."""
        operator, reason = operator.strip()[:100], reason.strip()[:300]
        if not operator:
            raise InvalidArgument("operator", "say who asks for the re-drive")
        ledger = await asyncio.to_thread(self._ledger)
        items = ledger.items if ledger else {}
        wanted = sorted(set(notification_ids) if notification_ids is not None else
                        {i.notification_id for i in items.values() if i.status == SET_ASIDE})
        results = []
        for nid in wanted:
            item = items.get(nid)
            if item is None:
                results.append(RedriveResult(nid, "not_found"))
                continue
            if item.status == PUBLISHED:
                results.append(RedriveResult(nid, "already_published"))
                continue
            error = await self._publish_alone(nid)
            outcome = SET_ASIDE if error else PUBLISHED
            waiting = await asyncio.to_thread(self._record_redrive, nid, operator, reason, outcome, error)
            log.info("relay: a set-aside event re-driven", extra={"fields": {
                "service": self.app.name, "notification_id": nid, "event_id": item.event_id, "outcome": outcome,
                "error": error, "set_aside": waiting}})
            self._count(waiting)
            if not error:
                self.published += 1
            results.append(RedriveResult(nid, outcome, error))
        return results

    async def _publish_alone(self, notification_id: int) -> str:
        """Publish one stored event alone: "" when the broker has it, else why it was refused (outages raise)."""
        found = await asyncio.to_thread(self.app.recorder.select_notifications, start=notification_id, limit=1,
                                        stop=notification_id)
        if not found:
            return "the stored event is gone"
        p = await asyncio.to_thread(self._map, found[0])
        if p.refusal is not None:
            return p.refusal
        if p.contract is None:
            return "no contract maps this event any more"
        try:
            record = self._record(p)
        except Exception as exc:
            return safe_error(exc)
        try:
            await self._send_alone(record)
        except Exception as exc:
            if not refuses_record(exc):
                raise
            return safe_error(exc)
        return ""

    def _record_redrive(self, notification_id: int, operator: str, reason: str, outcome: str, error: str) -> int:
        def record() -> SetAsideEvents:
            ledger = self._ledger()
            assert ledger is not None
            ledger.redriven(notification_id, datetime.now(UTC), operator, reason, outcome, error)
            self.app.save(ledger)
            return ledger

        return self.app.retrying(record).waiting()

    # ---- the loop ------------------------------------------------------------------------------------------
    def backlog(self) -> int:
        """Stored events not yet published (internal ones included: the relay moves past them too)."""
        return (self.app.recorder.max_notification_id() or 0) - self.position()

    async def _measure_backlog(self) -> None:
        try:
            metrics.relay_backlog(await asyncio.to_thread(self.backlog))
        except Exception as exc:  # the store away: the next batch's retry reports it
            log.debug("relay backlog not measured", extra={"fields": {"error": describe(exc)}})

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until `stop`. A failure (store or broker away, mostly) keeps the position and is retried
        with capped backoff for as long as it lasts; the service reports not ready meanwhile. An event that
        fails on its own is set aside instead (see the module's docstring)."""

        def failed(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            assert error is not None
            if state.attempt_number == 1 and not is_outage(error):
                log.error("relay batch failed; retrying", exc_info=error)
            self.readiness.set("relay", False, describe(error))

        async def sleep(seconds: float) -> None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), seconds)

        measured = 0.0
        while not stop.is_set():
            retrying = AsyncRetrying(retry=retry_if_exception_type(Exception), wait=self.backoff, sleep=sleep,
                                     stop=lambda _: stop.is_set(), before_sleep=failed)
            try:
                async for attempt in retrying:
                    with attempt:
                        if self.set_aside is None:
                            await self._load_set_aside()
                        started, published = time.perf_counter(), self.published
                        moved = await self.publish_once()
                        if moved:
                            metrics.relay_batch(time.perf_counter() - started, self.published - published)
            except RetryError:
                return  # stopping
            self.readiness.set("relay", True)
            if time.monotonic() - measured >= BACKLOG_EVERY_SECONDS:
                measured = time.monotonic()
                await self._measure_backlog()
            if moved:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.idle_seconds)
