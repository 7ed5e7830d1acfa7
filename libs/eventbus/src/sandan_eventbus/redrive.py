"""Dead letters of one consuming service, and their re-drive: the `sandan.ops.v1.DeadLetters` gRPC service.

Each consuming service serves it for its own consumer group. Dead letters are read from `<topic>.dlq` (only
those whose `dlq.consumer.group` header is this group) and named by their place there. A re-drive decodes a
dead letter again and applies it through the inbox's handler with a tracking name of its own,
`redrive:<source topic>:<partition>:<offset>`, so it is applied once however often it is re-driven (and
whichever copy, should the same message have been dead-lettered twice). Every attempt is recorded in the
service's event store (a `Redrives` aggregate per dead letter: who, when, which, outcome), in the same
transaction as the effects when it applies. A dead letter that fails again stays on its topic, unchanged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import unicodedata
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from eventsourcing.domain import Aggregate, event

from sandan_contracts import TOPICS
from sandan_contracts.rpc import ops_pb2 as pb
from sandan_contracts.rpc import ops_pb2_grpc
from sandan_eventbus.auth.principal import current as current_principal
from sandan_eventbus.inbox import TRUNCATED_BYTES, Inbox
from sandan_eventbus.kafka import aiokafka_kwargs, partitions_of
from sandan_eventbus.outages import describe, is_outage

log = logging.getLogger(__name__)

SERVICE_NAME = "sandan.ops.v1.DeadLetters"
OPERATOR_HEADER = "x-operator"
DEFAULT_LIMIT, MAX_LIMIT, MAX_PER_REDRIVE = 100, 1000, 100
READ_TIMEOUT_SECONDS = 30.0


class Redrives(Aggregate):
    """The re-drive attempts of one dead letter (keyed by its source position), oldest first."""

    @staticmethod
    def create_id(key: str) -> uuid.UUID:
        return uuid.uuid5(uuid.NAMESPACE_URL, f"sandan:{key}")

    @event("Started")
    def __init__(self, key: str) -> None:
        self.key = key
        self.attempts: list[dict[str, Any]] = []
        self.applied = False

    @event("Attempted")
    def attempt(self, at: datetime, operator: str, reason: str, dead_letter: str, outcome: str,
                detail: str) -> None:
        self.attempts.append({"at": at, "operator": operator, "reason": reason, "dead_letter": dead_letter,
                              "outcome": outcome, "detail": detail})
        if outcome == "applied":
            self.applied = True


@dataclass(frozen=True)
class Letter:
    """One record of a dead-letter topic, its headers read."""

    topic: str
    partition: int
    offset: int
    key: str
    value: bytes
    headers: dict[str, str]

    @classmethod
    def of(cls, record: ConsumerRecord[Any, Any]) -> Letter:
        headers = {k: v.decode(errors="replace") for k, v in (record.headers or ())}
        key = record.key.decode(errors="replace") if record.key else ""
        return cls(record.topic, record.partition, record.offset, key, record.value or b"", headers)

    @property
    def ref(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"

    @property
    def group(self) -> str:
        return self.headers.get("dlq.consumer.group", "")

    @property
    def source(self) -> tuple[str, int, int]:
        h = self.headers
        return h.get("dlq.source.topic", ""), int(h.get("dlq.source.partition", "-1")), \
            int(h.get("dlq.source.offset", "-1"))

    @property
    def redrive_key(self) -> str:
        topic, partition, offset = self.source
        return f"redrive:{topic}:{partition}:{offset}"

    def to_pb(self, attempts: list[dict[str, Any]], applied: bool, with_payload: bool = False) -> pb.DeadLetter:
        topic, partition, offset = self.source
        event_type, event_id = _envelope_names(self.value)
        truncated = "dlq.truncated" in self.headers
        return pb.DeadLetter(
            ref=pb.DeadLetterRef(topic=self.topic, partition=self.partition, offset=self.offset),
            source_topic=topic, source_partition=partition, source_offset=offset, consumer_group=self.group,
            error=self.headers.get("dlq.error", ""), dead_lettered_at=self.headers.get("dlq.at", ""),
            key=self.key[:200], event_type=event_type, event_id=event_id,
            size=int(self.headers["dlq.truncated"]) if truncated else len(self.value), truncated=truncated,
            status="applied" if applied else "dead",
            attempts=[_attempt_pb(a) for a in attempts],
            payload=self.value[:TRUNCATED_BYTES] if with_payload else b"")


def _attempt_pb(a: dict[str, Any]) -> pb.RedriveAttempt:
    topic, partition, offset = a["dead_letter"].rsplit(":", 2)
    at = a["at"]
    return pb.RedriveAttempt(at=at.astimezone(UTC).isoformat() if isinstance(at, datetime) else str(at),
                             operator=a["operator"], reason=a["reason"], outcome=a["outcome"], detail=a["detail"],
                             dead_letter=pb.DeadLetterRef(topic=topic, partition=int(partition), offset=int(offset)))


def _envelope_names(value: bytes) -> tuple[str, str]:
    """The envelope's type and event id when the payload is a JSON object (it may be anything)."""
    try:
        body = json.loads(value)
    except (ValueError, RecursionError):
        return "", ""
    if not isinstance(body, dict):
        return "", ""
    return tuple(v[:100] if isinstance(v, str) else "" for v in (body.get("type"), body.get("event_id")))  # type: ignore[return-value]


class DeadLetterReader:
    """Reads dead-letter topics from the broker: no consumer group, nothing committed."""

    def __init__(self, bootstrap: str, client_id: str) -> None:
        self.bootstrap = bootstrap
        self.client_id = client_id

    async def _consumer(self) -> AIOKafkaConsumer:
        # the service's own connection settings (TLS, SASL) with its bootstrap servers
        consumer = AIOKafkaConsumer(**aiokafka_kwargs(self.bootstrap), enable_auto_commit=False,
                                    client_id=self.client_id, request_timeout_ms=10_000)
        await consumer.start()
        return consumer

    async def scan(self, topics: Iterable[str]) -> list[Letter]:
        """Every record of `topics` up to their current ends."""
        consumer = await self._consumer()
        try:
            partitions = await partitions_of(consumer, list(topics))
            consumer.assign(partitions)
            ends = await consumer.end_offsets(partitions)
            await consumer.seek_to_beginning(*partitions)
            letters: list[Letter] = []
            remaining = {tp for tp in partitions if await consumer.position(tp) < ends[tp]}
            while remaining:
                batches = await consumer.getmany(*remaining, timeout_ms=500)
                for tp, records in batches.items():
                    letters += [Letter.of(r) for r in records if r.offset < ends[tp]]
                for tp in list(remaining):
                    if await consumer.position(tp) >= ends[tp]:
                        remaining.discard(tp)
            return letters
        finally:
            await consumer.stop()

    async def get(self, topic: str, partition: int, offset: int) -> Letter | None:
        consumer = await self._consumer()
        try:
            tp = TopicPartition(topic, partition)
            if tp not in await partitions_of(consumer, [topic]):
                return None
            consumer.assign([tp])
            end = (await consumer.end_offsets([tp]))[tp]
            if offset >= end:
                return None
            consumer.seek(tp, offset)
            while await consumer.position(tp) <= offset:
                for record in (await consumer.getmany(tp, timeout_ms=500)).get(tp, []):
                    if record.offset == offset:
                        return Letter.of(record)
                    if record.offset > offset:
                        return None  # gone (retention) or never a record (a transaction marker)
            return None
        finally:
            await consumer.stop()


def clean_text(text: str, limit: int) -> str:
    """Operator-stated text for the audit: NFC, no control characters, bounded."""
    text = unicodedata.normalize("NFC", text)
    return "".join(ch for ch in text if unicodedata.category(ch)[0] != "C").strip()[:limit]


class DeadLettersServicer(ops_pb2_grpc.DeadLettersServicer):
    def __init__(self, inbox: Inbox, bootstrap: str) -> None:
        self.inbox = inbox
        self.reader = DeadLetterReader(bootstrap, f"{inbox.group_id}-deadletters")
        self.dead_letter_topics = {TOPICS[t].dead_letter: t for t in inbox.handlers if TOPICS[t].dead_letter}

    # --- reading ------------------------------------------------------------------------------
    def _history(self, key: str) -> tuple[list[dict[str, Any]], bool]:
        try:
            audit = self.inbox.app.repository.get(Redrives.create_id(key))
        except Exception as exc:  # AggregateNotFoundError: never re-driven; outages propagate
            if is_outage(exc):
                raise
            return [], False
        return list(audit.attempts), bool(audit.applied)

    async def _read(self, context: grpc.aio.ServicerContext, coro: Any) -> Any:
        try:
            return await asyncio.wait_for(coro, READ_TIMEOUT_SECONDS)
        except LookupError as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc)[:300])
        except Exception as exc:
            if not is_outage(exc):
                raise
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"broker or store unreachable: {describe(exc)}")
        raise AssertionError("unreachable: abort raises")

    async def List(self, request: pb.ListDeadLettersRequest,
                   context: grpc.aio.ServicerContext) -> pb.DeadLetterList:
        limit = request.limit or DEFAULT_LIMIT
        if not 1 <= limit <= MAX_LIMIT:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"limit: 1 to {MAX_LIMIT}")
        topics = list(self.dead_letter_topics)
        if request.source_topic:
            if request.source_topic not in self.inbox.handlers:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                    f"source_topic: this service consumes {', '.join(sorted(self.inbox.handlers))}")
            topics = [TOPICS[request.source_topic].dead_letter]  # type: ignore[list-item]

        async def collect() -> list[pb.DeadLetter]:
            letters = [x for x in await self.reader.scan(topics) if x.group == self.inbox.group_id]
            letters.sort(key=lambda x: x.headers.get("dlq.at", ""), reverse=True)
            out: list[pb.DeadLetter] = []
            for letter in letters:
                attempts, applied = await asyncio.to_thread(self._history, letter.redrive_key)
                if applied and not request.include_applied:
                    continue
                out.append(letter.to_pb(attempts, applied))
                if len(out) >= limit:
                    break
            return out

        return pb.DeadLetterList(dead_letters=await self._read(context, collect()))

    async def Get(self, request: pb.DeadLetterRef,
                  context: grpc.aio.ServicerContext) -> pb.DeadLetter:
        letter = await self._letter(request, context)
        attempts, applied = await self._read(context, asyncio.to_thread(self._history, letter.redrive_key))
        return letter.to_pb(attempts, applied, with_payload=True)

    async def _letter(self, ref: pb.DeadLetterRef, context: grpc.aio.ServicerContext) -> Letter:
        if ref.topic not in self.dead_letter_topics:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"topic: one of {', '.join(sorted(self.dead_letter_topics))}")
        letter = await self._read(context, self.reader.get(ref.topic, ref.partition, ref.offset))
        if letter is None or letter.group != self.inbox.group_id:
            await context.abort(grpc.StatusCode.NOT_FOUND,
                                f"no dead letter of {self.inbox.group_id} at {ref.topic}:{ref.partition}:{ref.offset}")
        return letter

    # --- re-driving ---------------------------------------------------------------------------
    async def Redrive(self, request: pb.RedriveRequest,
                      context: grpc.aio.ServicerContext) -> pb.RedriveReply:
        operator = operator_of(request.operator, context)
        if not operator:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "operator: say who asks for the re-drive")
        if not 1 <= len(request.dead_letters) <= MAX_PER_REDRIVE:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"dead_letters: 1 to {MAX_PER_REDRIVE}")
        reason = clean_text(request.reason, 500)
        results = []
        for ref in request.dead_letters:
            outcome, detail = await self._redrive_one(ref, operator, reason, context)
            results.append(pb.RedriveResult(dead_letter=ref, outcome=outcome, detail=detail))
        return pb.RedriveReply(results=results)

    async def _redrive_one(self, ref: pb.DeadLetterRef, operator: str, reason: str,
                           context: grpc.aio.ServicerContext) -> tuple[str, str]:
        if ref.topic not in self.dead_letter_topics:
            return "not_found", f"not a dead-letter topic of {self.inbox.group_id}"
        letter = await self._read(context, self.reader.get(ref.topic, ref.partition, ref.offset))
        if letter is None:
            return "not_found", ""
        if letter.group != self.inbox.group_id:
            return "other_consumer", f"dead-lettered by {letter.group[:100]}"
        source_topic = letter.source[0]
        if source_topic not in self.inbox.handlers or TOPICS[source_topic].dead_letter != letter.topic:
            return "not_found", "its source topic is not one this service consumes"
        at = datetime.now(UTC)

        def audit(outcome: str, detail: str) -> list[Redrives]:
            key = letter.redrive_key
            try:
                record = self.inbox.app.repository.get(Redrives.create_id(key))
            except Exception as exc:
                if is_outage(exc):
                    raise
                record = Redrives(key)
            record.attempt(at, operator, reason, letter.ref, outcome, detail)
            return [record]

        try:
            outcome, detail = await self.inbox.reapply(source_topic, letter.value, letter.redrive_key, audit)
        except Exception as exc:
            if not is_outage(exc):
                raise
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"store or broker unreachable: {describe(exc)}")
            raise AssertionError("unreachable: abort raises") from exc
        log.info("dead letter re-driven", extra={"fields": {
            "dead_letter": letter.ref, "source": letter.redrive_key, "outcome": outcome}})
        return outcome, detail


def operator_of(stated: str, context: grpc.aio.ServicerContext) -> str:
    """Who asks for a re-drive: the verified caller (the operator's token subject); a stated name (the request's
    field or the operator header) only where there is no caller (the servicer called in-process, without the
    interceptor). Empty when nobody is named."""
    caller = current_principal()
    if not caller.is_system:
        return caller.subject
    return clean_text(stated or _metadata(context, OPERATOR_HEADER), 100)


def _metadata(context: grpc.aio.ServicerContext, key: str) -> str:
    for k, v in context.invocation_metadata() or ():
        if k == key and isinstance(v, str):
            return v
    return ""


def add_to_server(server: grpc.aio.Server, inbox: Inbox, bootstrap: str) -> list[str]:
    ops_pb2_grpc.add_DeadLettersServicer_to_server(DeadLettersServicer(inbox, bootstrap), server)
    return [SERVICE_NAME]
