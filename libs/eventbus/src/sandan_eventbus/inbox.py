"""Tracked Kafka consumers: each message is applied at most once in effect, and none is lost.

For each message the position `kafka:<topic>:<partition>` / offset+1 is saved in the service's event
store in the same transaction as the events the message caused. A redelivered message finds its
position already recorded and changes nothing. The Kafka offset is committed (acked) only after that
transaction, so a crash before it means redelivery, never loss.

A message that cannot be decoded (malformed, unknown type or version) goes to its topic's dead-letter
topic with the error in headers, its position is recorded, and consumption continues. A handler that
keeps failing for another reason (a bug, a store outage) is retried with backoff, then dead-lettered.
A domain refusal (the fact no longer applies, e.g. withdrawing a completed demand) is recorded as
processed with no effect.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from aiokafka import ConsumerRecord
from eventsourcing.persistence import IntegrityError, Tracking
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage

from sandan_contracts import TOPICS, Envelope, Event, decode
from sandan_eventbus.errors import DomainError
from sandan_eventbus.store import ServiceApplication
from sandan_eventbus.trace import traced

log = logging.getLogger(__name__)

# A handler decides what a fact means for this service and returns the aggregates it changed.
# It runs in a worker thread (eventsourcing is synchronous) and must not save them itself.
Handler = Callable[[Envelope, Event], Iterable[Any]]


def tracking_for(record: ConsumerRecord[Any, Any]) -> Tracking:
    return Tracking(f"kafka:{record.topic}:{record.partition}", record.offset + 1)


class Inbox:
    def __init__(
        self,
        app: ServiceApplication,
        broker: KafkaBroker,
        group_id: str,
        handlers: dict[str, Handler],
        *,
        on_saved: Callable[[], None] = lambda: None,
        max_attempts: int = 5,
        backoff_seconds: float = 0.2,
    ) -> None:
        self.app = app
        self.broker = broker
        self.group_id = group_id
        self.handlers = handlers
        self.on_saved = on_saved
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.processed = 0
        self.duplicates = 0
        self.dead_lettered = 0

    def subscribe(self) -> None:
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
            )
            subscriber(self._receiver(topic))

    def _receiver(self, topic: str) -> Callable[[KafkaMessage], Any]:
        async def receive(msg: KafkaMessage) -> None:
            await self.receive(topic, msg.raw_message)  # type: ignore[arg-type]
            await msg.ack()

        receive.__name__ = f"receive_{topic.replace('.', '_')}"
        return receive

    async def receive(self, topic: str, record: ConsumerRecord[Any, Any]) -> None:
        """Apply one record; returns once its effect (or its dead letter) is durable."""
        tracking = tracking_for(record)
        if await asyncio.to_thread(self.app.already_processed, tracking):
            self.duplicates += 1
            return
        try:
            envelope, event = decode(record.value or b"")
        except ValueError as exc:
            await self._dead_letter(topic, record, f"undecodable: {exc}")
            await self._record_only(tracking)
            return
        handler = self.handlers[topic]
        for attempt in range(1, self.max_attempts + 1):
            try:
                with traced(envelope.correlation_id, envelope.event_id):
                    await asyncio.to_thread(self._apply, handler, envelope, event, tracking)
                self.processed += 1
                self.on_saved()
                return
            except IntegrityError:
                if await asyncio.to_thread(self.app.already_processed, tracking):
                    self.duplicates += 1
                    return
                error = "concurrent write to the same aggregate"
            except Exception as exc:  # a bug or an outage: retry, then dead-letter
                log.warning("handler failed", exc_info=True,
                            extra={"fields": {"topic": topic, "offset": record.offset, "attempt": attempt}})
                error = f"{type(exc).__name__}: {exc}"
            if attempt < self.max_attempts:
                delay = self.backoff_seconds * 2 ** (attempt - 1)
                await asyncio.sleep(delay * (0.5 + random.random()))  # noqa: S311 - jitter, not crypto
        await self._dead_letter(topic, record, f"failed {self.max_attempts} times: {error}")
        await self._record_only(tracking)

    def _apply(self, handler: Handler, envelope: Envelope, event: Event, tracking: Tracking) -> None:
        try:
            changed = list(handler(envelope, event))
        except DomainError as refusal:
            log.info("fact refused by the domain; recorded with no effect",
                     extra={"fields": {"type": envelope.type, "event_id": envelope.event_id,
                                       "reason": str(refusal)}})
            changed = []
        self.app.save_tracked(*changed, tracking=tracking)

    async def _record_only(self, tracking: Tracking) -> None:
        try:
            await asyncio.to_thread(self.app.save_tracked, tracking=tracking)
        except IntegrityError:
            pass  # recorded by an earlier delivery

    async def _dead_letter(self, topic: str, record: ConsumerRecord[Any, Any], error: str) -> None:
        dlq = TOPICS[topic].dead_letter
        assert dlq is not None, f"{topic} has no dead-letter topic"
        headers = {
            "dlq.error": error[:2000],
            "dlq.source.topic": record.topic,
            "dlq.source.partition": str(record.partition),
            "dlq.source.offset": str(record.offset),
            "dlq.consumer.group": self.group_id,
            "dlq.at": datetime.now(UTC).isoformat(),
        }
        await self.broker.publish(record.value or b"", dlq, key=record.key, headers=headers)
        self.dead_lettered += 1
        log.error("message dead-lettered", extra={"fields": {"topic": topic, "offset": record.offset,
                                                              "dlq": dlq, "error": error[:300]}})
