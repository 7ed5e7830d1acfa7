"""The outbox relay: the event store's notification log, published to Kafka.

Commands only ever write the store. The relay reads notifications after its last recorded position,
maps each stored event to its public contract (or skips internal ones), publishes the batch with an
idempotent producer (acks=all), and only then records the new position in the same store. A crash
between publish and record re-publishes the same events with the same deterministic event ids
(`<app name>:<notification id>`), which consumers recognise as duplicates: at-least-once, in order
per key, never a dual write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventsourcing.persistence import Tracking
from faststream.kafka import KafkaBroker
from opentelemetry.trace import Span
from tenacity import AsyncRetrying, RetryCallState, RetryError, retry_if_exception_type

from sandan_contracts import Event, encode
from sandan_contracts.cloudevents import headers as cloudevent_headers
from sandan_contracts.envelope import headers as event_headers
from sandan_eventbus import metrics, tracing
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


def event_id_of(service: str, originator_id: uuid.UUID, version: int, timestamp: datetime) -> str:
    return f"{service}:{uuid.uuid5(EVENT_IDS, f'{originator_id}:{version}:{timestamp.isoformat()}')}"


@dataclass(frozen=True)
class _Pending:
    notification_id: int
    event_id: str
    contract: Event | None
    trace: Trace | None
    occurred_at: datetime


ToContract = Callable[[Any], Event | None]
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

    def wake(self) -> None:
        """Called after a command saved events, so they go out without waiting for the next poll."""
        self._wake.set()

    def position(self) -> int:
        return self.app.tracking_recorder.max_tracking_id(RELAY_TRACKING) or 0

    def _pending(self, after: int) -> list[_Pending]:
        mapper = self.app.mapper
        assert isinstance(mapper, TracingMapper)
        notifications = self.app.recorder.select_notifications(start=after + 1, limit=self.batch_size)
        out = []
        for n in notifications:
            domain_event = mapper.to_domain_event(n)
            out.append(_Pending(n.id, event_id_of(self.app.name, n.originator_id, n.originator_version,
                                                  domain_event.timestamp),
                                self.to_contract(domain_event), mapper.trace_of(n), domain_event.timestamp))
        return out

    async def publish_once(self) -> int:
        """Publish one batch; returns how many notifications it moved past."""
        after = await asyncio.to_thread(self.position)
        pending = await asyncio.to_thread(self._pending, after)
        if not pending:
            return 0
        futures = []
        spans: list[Span] = []
        try:
            for p in pending:
                contract = p.contract
                if contract is None:
                    continue  # internal event: stays in the store
                event_id = p.event_id
                correlation_id = p.trace.correlation_id if p.trace else event_id
                body = encode(
                    contract,
                    event_id=event_id,
                    producer=self.app.name,
                    occurred_at=p.occurred_at,
                    correlation_id=correlation_id,
                    causation_id=p.trace.causation_id if p.trace else None,
                    actor=p.trace.actor.subject if p.trace and p.trace.actor else None,  # opaque: never a name
                )
                # the child of the span current when the event was stored: the record carries it (traceparent)
                span = tracing.producer_span(contract.TOPIC, p.trace.traceparent if p.trace else None,
                                             p.trace.tracestate if p.trace else None, event_id=event_id,
                                             correlation_id=correlation_id)
                spans.append(span)
                futures.append(await self.broker.publish(
                    body, contract.TOPIC, key=contract.key().encode(),
                    headers={k: v.decode() for k, v in [*event_headers(contract), *cloudevent_headers(body)]}
                    | tracing.kafka_headers(span),
                    no_confirm=True,
                ))
            await asyncio.gather(*futures)
        finally:
            for span in spans:
                span.end()
        last = pending[-1].notification_id
        await asyncio.to_thread(self.app.tracking_recorder.insert_tracking, Tracking(RELAY_TRACKING, last))
        self.published += len(futures)
        return len(pending)

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
        with capped backoff for as long as it lasts; the service reports not ready meanwhile."""

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
