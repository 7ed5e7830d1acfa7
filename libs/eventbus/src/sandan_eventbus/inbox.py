"""Tracked Kafka consumers: each message is applied at most once in effect, and none is lost.

For each message the position `kafka:<topic>:<partition>` / offset+1 is saved in the service's event
store in the same transaction as the events the message caused. A redelivered message finds its
position already recorded and changes nothing. The Kafka offset is committed (acked) only once the
message's outcome is durable, so a crash before that means redelivery, never loss.

Every message ends in exactly one of these outcomes, and only the first three let the offset move past it:
- applied (or found already applied): its effects and its position are saved together;
- refused: the fact came too late for the state it names (`FailedPrecondition`, `AlreadyExists`: e.g. a
  withdrawal that raced the service's completion); its position is recorded with no effect and the refusal is
  logged. Such a refusal is the domain's final answer, not a failure, and needs no one's attention;
- dead-lettered: a failure that would fail again and needs attention: undecodable, a fact naming something
  this service does not know or a value its domain refuses (`NotFound`, `InvalidArgument`: the stores
  disagree), a handler that keeps raising on this input. It is published to `<topic>.dlq` with the error in
  headers, then its position is recorded; `sandan_eventbus.deadletters` re-drives it once the cause is fixed;
- held: an outage (store or broker unreachable, timeouts; see `outages.py`) pauses this consumer, retrying
  with capped backoff for as long as it lasts, and the service reports not ready meanwhile. Every step is
  retried this way (the "already processed?" check, publishing a dead letter, recording its position), so
  no error leaves a message unaccounted for. A delivery waits at most `hold_seconds`; then the consumer
  seeks back to the message and polls again, which keeps it in its group (Kafka's max poll interval) and
  delivers the same message again, still paused.

A watchdog (`watch`, run by the runtime) looks at every consumer each `watch_seconds`: per partition it consumes,
the lag (end offset minus the position: the group's committed offset, or the last message this inbox finished
when that is further) goes to `sandan_inbox_lag_messages`, so the gauge rises while a consumer is stuck or slow,
not only when a message arrives. A consumer that has had lag for `stuck_seconds` while none of its positions moved
(a handler that hangs, a consumer task that died, no partitions assigned while the group has lag) is stuck: the
service reports not ready under its own part, `progress:<topic>`, until a position moves again; one log line
names the group and topic when it starts, one when it ends. An idle consumer (no lag) is never stuck, and time
spent waiting out an outage (this consumer paused on it, or the broker not answering the watchdog) does not
count: that outage is its own reason, reported by the inbox or the runtime's probe. A consumer with no partitions
assigned judges the group's positions on the whole topic: with several replicas, one holding none of a topic's
partitions reports the group stuck too when the replica holding them is.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import MessageSizeTooLargeError
from eventsourcing.persistence import IntegrityError, Tracking
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from opentelemetry import trace
from tenacity import AsyncRetrying, RetryError, retry_if_exception, stop_after_attempt

from sandan_contracts import TOPICS, Envelope, Event, cloudevents, decode
from sandan_eventbus import metrics, tracing
from sandan_eventbus.errors import DomainError, InvalidArgument, NotFound
from sandan_eventbus.outages import backoff, describe, is_outage
from sandan_eventbus.readiness import Readiness
from sandan_eventbus.store import ServiceApplication
from sandan_eventbus.trace import traced

log = logging.getLogger(__name__)
T = TypeVar("T")

# A handler decides what a fact means for this service and returns the aggregates it changed.
# It runs in a worker thread (eventsourcing is synchronous) and must not save them itself.
Handler = Callable[[Envelope, Event], Iterable[Any]]
# Records one re-drive attempt: (outcome, detail) -> the aggregates to save (runs in the worker thread).
Audit = Callable[[str, str], Iterable[Any]]

# A dead letter too large for its topic (the source was near the broker's limit and the headers pushed it
# over) is published cut to this size, marked dlq.truncated, so it is still seen and never blocks the topic.
TRUNCATED_BYTES = 64 * 1024
MAX_POLL_INTERVAL_MS = 300_000


class Outcome(enum.StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    REFUSED = "refused"
    DEAD_LETTERED = "dead_lettered"
    HELD = "held"  # an outage outlasted this delivery: not acknowledged, delivered again


class Held(Exception):
    """An outage outlasted one delivery's wait; the message must be delivered again."""


class Unapplicable(Exception):
    """The domain refused a fact as naming something unknown here, or as malformed: dead-letter it."""

    def __init__(self, refusal: DomainError) -> None:
        super().__init__(str(refusal))
        self.refusal = refusal


def tracking_for(record: ConsumerRecord[Any, Any]) -> Tracking:
    return Tracking(f"kafka:{record.topic}:{record.partition}", record.offset + 1)


def _any_error(_: BaseException) -> bool:
    return True


@dataclass
class Progress:
    """What the watchdog last saw of one consumer (one topic)."""

    positions: dict[int, int] = field(default_factory=dict)  # partition -> next offset to apply
    lag: dict[int, int] = field(default_factory=dict)  # partition -> records behind its end
    moved_at: float = field(default_factory=time.monotonic)  # a position last moved, or the clock restarted
    stuck_since: float | None = None  # time.monotonic() when reported stuck; None while progressing

    @property
    def behind(self) -> int:
        return sum(self.lag.values())


class Inbox:
    def __init__(
        self,
        app: ServiceApplication,
        broker: KafkaBroker,
        group_id: str,
        handlers: dict[str, Handler],
        *,
        on_saved: Callable[[], None] = lambda: None,
        readiness: Readiness | None = None,
        max_attempts: int = 5,
        backoff_seconds: float = 0.2,
        max_backoff_seconds: float = 10.0,
        hold_seconds: float = 60.0,
        commit_timeout_seconds: float = 10.0,
        stuck_seconds: float = 60.0,
        watch_seconds: float = 5.0,
    ) -> None:
        self.app = app
        self.broker = broker
        self.group_id = group_id
        self.handlers = handlers
        self.on_saved = on_saved
        # the runtime replaces this with the service's own, so the inbox's outages reach its health
        self.readiness = readiness or Readiness(group_id)
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.hold_seconds = hold_seconds
        self.commit_timeout_seconds = commit_timeout_seconds
        self.stuck_seconds = stuck_seconds
        self.watch_seconds = watch_seconds
        self.processed = 0
        self.duplicates = 0
        self.refused = 0
        self.dead_lettered = 0
        self.held = 0
        # dead letters published whose position is not recorded yet: a held redelivery does not publish twice
        self._published_letters: set[tuple[str, int, int]] = set()
        self._subscribers: dict[str, Any] = {}  # topic -> its faststream subscriber (its consumer once started)
        self._finished: dict[tuple[str, int], int] = {}  # (topic, partition) -> next offset, per outcome here
        self.progress: dict[str, Progress] = {}  # topic -> what the watchdog last saw

    def subscribe(self) -> None:
        metrics.inbox_subscribed(self.handlers)
        for topic in self.handlers:
            if topic not in TOPICS:
                raise ValueError(f"{topic} is not in the topic registry")
            subscriber = self.broker.subscriber(
                topic,
                group_id=self.group_id,
                auto_offset_reset="earliest",
                ack_policy=AckPolicy.MANUAL,
                session_timeout_ms=10_000,
                heartbeat_interval_ms=1_000,
                # a delivery waits at most hold_seconds plus one store call (about a minute): well inside
                max_poll_interval_ms=MAX_POLL_INTERVAL_MS,
            )
            subscriber(self._receiver(topic))
            self._subscribers[topic] = subscriber

    def _receiver(self, topic: str) -> Callable[[KafkaMessage], Any]:
        async def receive(msg: KafkaMessage) -> None:
            outcome = await self.receive(topic, msg.raw_message)  # type: ignore[arg-type]
            metrics.consumed(self.group_id, topic, msg.raw_message, outcome, getattr(msg, "consumer", None))
            if outcome is not Outcome.HELD:  # its outcome is durable: the partition moved on
                where = (topic, msg.raw_message.partition)
                self._finished[where] = max(self._finished.get(where, 0), msg.raw_message.offset + 1)
            if outcome is Outcome.HELD:
                await msg.nack()  # seek back to it: the next poll delivers it again
                return
            await self._commit(msg)

        receive.__name__ = f"receive_{topic.replace('.', '_')}"
        return receive

    async def _commit(self, msg: KafkaMessage) -> None:
        try:
            await asyncio.wait_for(msg.ack(), self.commit_timeout_seconds)
        except Exception as exc:  # broker away or a rebalance: the outcome is durable, a redelivery is a no-op
            log.warning("offset commit failed; a redelivery will find the message recorded",
                        extra={"fields": {"error": describe(exc)}})

    # --- one message --------------------------------------------------------------------------
    async def receive(self, topic: str, record: ConsumerRecord[Any, Any]) -> Outcome:
        """Apply one record; returns once its outcome is durable, or HELD when an outage outlasted the wait.

        Runs under a consumer span, the child of the record's `traceparent` header (a new trace without one, or
        with a malformed one): the events it causes are stored with it, and published as its children."""
        with tracing.consuming(topic, getattr(record, "headers", None), group=self.group_id,
                               partition=record.partition, offset=record.offset) as span:
            outcome = await self._receive(topic, record)
            span.set_attribute("sandan.outcome", outcome.value)
            return outcome

    async def _receive(self, topic: str, record: ConsumerRecord[Any, Any]) -> Outcome:
        component = f"inbox:{topic}"
        deadline = time.monotonic() + self.hold_seconds
        tracking = tracking_for(record)
        try:
            if await self._until_done(component, deadline, self._in_thread(self.app.already_processed, tracking)):
                self.duplicates += 1
                return Outcome.DUPLICATE
            try:
                envelope, event = decode(record.value or b"")
            except ValueError as exc:
                await self._dead_letter(component, deadline, topic, record, tracking, f"undecodable: {exc}")
                return Outcome.DEAD_LETTERED
            trace.get_current_span().set_attributes({"messaging.message.id": envelope.event_id,
                                                     "sandan.correlation_id": envelope.correlation_id})
            return await self._apply(component, deadline, topic, record, envelope, event, tracking)
        except Held:
            self.held += 1
            return Outcome.HELD

    async def _apply(self, component: str, deadline: float, topic: str, record: ConsumerRecord[Any, Any],
                     envelope: Envelope, event: Event, tracking: Tracking) -> Outcome:
        save = self._in_thread(self._apply_once, self.handlers[topic], envelope, event, tracking)

        async def attempt() -> Outcome:
            try:
                with traced(envelope.correlation_id, envelope.event_id):
                    refusal = await self._until_done(component, deadline, save, retry_on=is_outage)
            except IntegrityError:
                if await self._until_done(component, deadline, self._in_thread(self.app.already_processed, tracking)):
                    return Outcome.DUPLICATE
                raise
            if isinstance(refusal, (NotFound, InvalidArgument)):
                raise Unapplicable(refusal)
            if refusal is not None:
                self.refused += 1
                log.info("fact refused by the domain; recorded with no effect", extra={"fields": {
                    "topic": topic, "type": envelope.type, "event_id": envelope.event_id,
                    "reason": describe(refusal)}})
                return Outcome.REFUSED
            self.processed += 1
            self.on_saved()
            return Outcome.APPLIED

        def failed(error: BaseException | None, number: int) -> None:
            log.warning("handler failed; trying again", exc_info=error,
                        extra={"fields": {"topic": topic, "offset": record.offset, "attempt": number}})

        try:
            outcome = await attempt()  # the usual case, without retry machinery
        except Held:
            raise
        except Unapplicable as unknown:  # deterministic: trying again cannot help
            await self._dead_letter(component, deadline, topic, record, tracking,
                                    f"refused: {describe(unknown.refusal, 1000)}")
            return Outcome.DEAD_LETTERED
        except Exception as first:
            failed(first, 1)
            # A conflict (another writer saved the same aggregate) or a fluke is tried again a few times.
            # Outages never get here: _until_done waits them out.
            attempts = AsyncRetrying(
                stop=stop_after_attempt(self.max_attempts - 1),
                wait=backoff(self.backoff_seconds, 2.0),
                retry=retry_if_exception(lambda e: not isinstance(e, Held)),
                before_sleep=lambda state: failed(state.outcome.exception() if state.outcome else None,
                                                  state.attempt_number + 1),
                reraise=True,
            )
            try:
                if self.max_attempts <= 1:
                    raise first
                await asyncio.sleep(self.backoff_seconds)
                outcome = await attempts(attempt)
            except Held:
                raise
            except IntegrityError:
                error = f"failed {self.max_attempts} times: concurrent write to the same aggregate"
            except Exception as exc:
                error = f"failed {self.max_attempts} times: {describe(exc, 1000)}"
            else:
                return self._counted(outcome)
            await self._dead_letter(component, deadline, topic, record, tracking, error)
            return Outcome.DEAD_LETTERED
        return self._counted(outcome)

    def _counted(self, outcome: Outcome) -> Outcome:
        if outcome is Outcome.DUPLICATE:
            self.duplicates += 1
        return outcome

    def _apply_once(self, handler: Handler, envelope: Envelope, event: Event,
                    tracking: Tracking) -> DomainError | None:
        """Run the handler and save its changes with the position; a late fact's refusal saves the position
        alone; a fact naming the unknown is returned unsaved (the caller dead-letters it)."""
        try:
            changed = list(handler(envelope, event))
        except (NotFound, InvalidArgument) as unknown:
            return unknown
        except DomainError as refusal:
            self.app.save_tracked(tracking=tracking)  # the fact does not apply here: recorded, no effect
            return refusal
        self.app.save_tracked(*changed, tracking=tracking)
        return None

    def _save(self, handler: Handler, envelope: Envelope, event: Event, tracking: Tracking,
              also: Callable[[], Iterable[Any]] = tuple) -> None:
        changed = list(handler(envelope, event))
        self.app.save_tracked(*changed, *also(), tracking=tracking)

    def _record_only(self, tracking: Tracking) -> None:
        try:
            self.app.save_tracked(tracking=tracking)
        except IntegrityError:
            pass  # recorded by an earlier delivery

    # --- re-drive ----------------------------------------------------------------------------
    async def reapply(self, topic: str, value: bytes, tracking_name: str, audit: Audit) -> tuple[str, str]:
        """Apply a dead letter's message again through this inbox's handler, at most once under
        `tracking_name` (one name per dead letter: eventsourcing tracks the highest id per name, so the
        Kafka positions cannot serve). `audit(outcome, detail)` returns the aggregates recording this
        attempt: saved with its effects when it applies, alone otherwise. Returns (outcome, detail):
        applied | already_applied | undecodable | refused | failed. Outages raise (nothing was recorded)."""
        tracking = Tracking(tracking_name, 1)
        if await asyncio.to_thread(self.app.already_processed, tracking):
            outcome, detail = "already_applied", ""
        else:
            try:
                envelope, event = decode(value)
            except ValueError as exc:
                outcome, detail = "undecodable", describe(exc, 500)
            else:
                outcome, detail = await self._reapply(topic, envelope, event, tracking, audit)
                if outcome == "applied":
                    return outcome, detail
        # the attempt alone; re-read and saved again should a concurrent re-drive have recorded one first
        await asyncio.to_thread(self.app.retrying, lambda: self.app.save_tracked(*audit(outcome, detail),
                                                                                 tracking=None))
        return outcome, detail

    async def _reapply(self, topic: str, envelope: Envelope, event: Event, tracking: Tracking,
                       audit: Audit) -> tuple[str, str]:
        attempts = AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=backoff(self.backoff_seconds, 2.0),
            retry=retry_if_exception(lambda e: not (isinstance(e, DomainError) or is_outage(e))),
            reraise=True,
        )
        try:
            async for attempt in attempts:
                with attempt:
                    try:
                        with traced(envelope.correlation_id, envelope.event_id):
                            await asyncio.to_thread(self._save, self.handlers[topic], envelope, event, tracking,
                                                    lambda: audit("applied", ""))
                    except IntegrityError:
                        if await asyncio.to_thread(self.app.already_processed, tracking):
                            return "already_applied", "applied by a concurrent re-drive"
                        raise
        except DomainError as refusal:
            return "refused", describe(refusal, 500)
        except Exception as exc:
            if is_outage(exc):
                raise
            return "failed", describe(exc, 500)
        self.processed += 1
        self.on_saved()
        return "applied", ""

    # --- dead letters -------------------------------------------------------------------------
    async def _dead_letter(self, component: str, deadline: float, topic: str, record: ConsumerRecord[Any, Any],
                           tracking: Tracking, error: str) -> None:
        """Publish the dead letter, then record the position: both retried through any outage."""
        source = (record.topic, record.partition, record.offset)
        if source not in self._published_letters:
            await self._until_done(component, deadline, lambda: self._publish_dead_letter(topic, record, error))
            self._published_letters.add(source)
        await self._until_done(component, deadline, self._in_thread(self._record_only, tracking))
        self._published_letters.discard(source)
        self.dead_lettered += 1
        metrics.dead_lettered(topic, error)
        log.error("message dead-lettered", extra={"fields": {
            "topic": topic, "partition": record.partition, "offset": record.offset,
            "dlq": TOPICS[topic].dead_letter, "error": error[:300]}})

    async def _publish_dead_letter(self, topic: str, record: ConsumerRecord[Any, Any], error: str) -> None:
        dlq = TOPICS[topic].dead_letter
        assert dlq is not None, f"{topic} has no dead-letter topic"
        headers = {
            **cloudevents.carried(record.headers),  # what it was, for a CloudEvents reader (when it said so)
            "dlq.error": error[:2000],
            "dlq.source.topic": record.topic,
            "dlq.source.partition": str(record.partition),
            "dlq.source.offset": str(record.offset),
            "dlq.consumer.group": self.group_id,
            "dlq.at": datetime.now(UTC).isoformat(),
            **tracing.kafka_headers(trace.get_current_span()),  # the consumer span that gave up on it
        }
        value = record.value or b""
        try:
            await self.broker.publish(value, dlq, key=record.key, headers=headers)
        except MessageSizeTooLargeError:
            await self.broker.publish(value[:TRUNCATED_BYTES], dlq, key=record.key,
                                      headers={**headers, "dlq.truncated": str(len(value))})

    # --- waiting out outages ------------------------------------------------------------------
    @staticmethod
    def _in_thread(fn: Callable[..., T], *args: Any) -> Callable[[], Awaitable[T]]:
        return lambda: asyncio.to_thread(fn, *args)

    async def _until_done(self, component: str, deadline: float, call: Callable[[], Awaitable[T]],
                          retry_on: Callable[[BaseException], bool] = _any_error) -> T:
        """Run `call` until it succeeds, pausing through failures `retry_on` accepts (capped backoff).

        The consumer reports not ready while it waits; past `deadline` it raises Held. A failure
        `retry_on` refuses propagates at once. Infrastructure steps retry on anything: an error there is
        not this message's fault, and giving up would skip it.
        """
        try:
            result = await call()  # the usual case, without retry machinery
        except Exception as first:
            if not retry_on(first):
                raise
            self._paused(component, first, 1)
            retrying = AsyncRetrying(
                retry=retry_if_exception(retry_on),
                wait=backoff(self.backoff_seconds, self.max_backoff_seconds),
                stop=lambda _: time.monotonic() >= deadline,
                before_sleep=lambda state: self._paused(
                    component, state.outcome.exception() if state.outcome else None, state.attempt_number + 1),
            )
            async def again() -> T:  # a coroutine function, so tenacity awaits it
                return await call()

            try:
                await asyncio.sleep(self.backoff_seconds)
                result = await retrying(again)
            except RetryError as waited:
                raise Held(component) from waited.last_attempt.exception()
        self.readiness.set(component, True)
        return result

    def _paused(self, component: str, error: BaseException | None, attempt: int) -> None:
        assert error is not None
        if attempt == 1 and not is_outage(error):
            log.warning("inbox step failed; retrying", exc_info=error, extra={"fields": {"component": component}})
        self.readiness.set(component, False, describe(error))


    # --- the progress watchdog ----------------------------------------------------------------
    async def watch(self, stop: asyncio.Event) -> None:
        """Until `stop`: every `watch_seconds`, each consumer's lag (the gauge) and whether it is stuck (readiness)."""
        while not stop.is_set():
            for topic in self.handlers:
                try:
                    await self.check(topic)
                except Exception:  # the watchdog must outlive any surprise, or the gauge freezes again
                    log.exception("consumer progress check failed", extra={"fields": {
                        "group": self.group_id, "topic": topic}})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.watch_seconds)

    async def check(self, topic: str) -> Progress:
        """Look at `topic`'s consumer once: refresh its lag and report it stuck or progressing."""
        progress = self.progress.setdefault(topic, Progress())
        consumer = getattr(self._subscribers.get(topic), "consumer", None)
        now = time.monotonic()
        if consumer is None:  # not started, or stopped: nothing to judge
            progress.moved_at = now
            return progress
        try:
            assigned, positions, lag = await asyncio.wait_for(self._measure(consumer, topic),
                                                              max(self.watch_seconds, 5.0))
        except Exception as exc:  # the broker does not answer (the runtime's probe reports that): unknown
            log.debug("consumer progress unknown", extra={"fields": {
                "group": self.group_id, "topic": topic, "error": describe(exc)}})
            progress.moved_at = now  # an outage's time is not a stuck consumer's
            return progress
        metrics.inbox_lag(self.group_id, topic, {p: lag[p] for p in assigned})
        moved = any(at != progress.positions[p] for p, at in positions.items() if p in progress.positions)
        if (moved or not any(lag.values()) or positions.keys() != progress.positions.keys()
                or self.readiness.is_down(f"inbox:{topic}")):
            # moved, or nothing waits: the clock starts when records wait; a rebalance, or a pause on an outage
            # this consumer reports itself: it waits anew
            progress.moved_at = now
        progress.positions, progress.lag = positions, lag
        if progress.stuck_since is None:
            if progress.behind and now - progress.moved_at >= self.stuck_seconds:
                self._stuck(topic, progress, now)
        elif moved or not progress.behind:
            self._progressing(topic, progress, now)
        return progress

    async def _measure(self, consumer: Any, topic: str) -> tuple[list[int], dict[int, int], dict[int, int]]:
        """(partitions assigned, position and lag of each partition judged). With none assigned (a rebalance,
        or out of the group) the whole topic's, from the group's committed offsets."""
        assigned = sorted(tp.partition for tp in consumer.assignment() if tp.topic == topic)
        judged = assigned or sorted(consumer.partitions_for_topic(topic) or ())
        partitions = [TopicPartition(topic, p) for p in judged]
        if not partitions:
            return [], {}, {}
        ends = await consumer.end_offsets(partitions)
        committed = await asyncio.gather(*(consumer.committed(tp) for tp in partitions))
        known = {tp.partition: max((o for o in (c, self._finished.get((topic, tp.partition))) if o is not None),
                                   default=None) for tp, c in zip(partitions, committed, strict=True)}
        unknown = [tp for tp in partitions if known[tp.partition] is None]
        starts = await consumer.beginning_offsets(unknown) if unknown else {}  # never committed: from the start
        positions = {tp.partition: known[tp.partition] if known[tp.partition] is not None else starts[tp]
                     for tp in partitions}
        lag = {tp.partition: max(ends[tp] - positions[tp.partition], 0) for tp in partitions}
        return assigned, positions, lag

    def _stuck(self, topic: str, progress: Progress, now: float) -> None:
        progress.stuck_since = now
        idle = round(now - progress.moved_at)
        behind = {p: n for p, n in progress.lag.items() if n}
        log.warning("consumer stuck: lag and no progress", extra={"fields": {
            "group": self.group_id, "topic": topic, "behind": progress.behind, "partitions": sorted(behind),
            "no_progress_seconds": idle}})
        self.readiness.set(f"progress:{topic}", False,
                           f"consumer group {self.group_id} on {topic}: {progress.behind} behind, "
                           f"nothing applied for {idle} s")

    def _progressing(self, topic: str, progress: Progress, now: float) -> None:
        since, progress.stuck_since = progress.stuck_since, None
        log.info("consumer progressing again", extra={"fields": {
            "group": self.group_id, "topic": topic, "behind": progress.behind,
            "stuck_seconds": round(now - since, 1) if since is not None else None}})
        self.readiness.set(f"progress:{topic}", True)
