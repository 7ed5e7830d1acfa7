"""The envelope every message on every topic carries, and the one codec for it.

Wire format (JSON, UTF-8):
    {"event_id": ..., "type": ..., "schema_version": 1, "occurred_at": "...Z", "producer": ...,
     "key": ..., "correlation_id": ..., "causation_id": ..., ["actor": ...,] "data": {...the event's fields...}}
The same `type` and `schema_version` are also sent as Kafka headers so a router need not parse the body.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sandan_contracts.events import Event, event_class
from sandan_contracts.events.base import Id, Subject, UtcDatetime


class Envelope(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: str = Field(min_length=1, max_length=200)
    type: str = Field(min_length=1, max_length=80)
    schema_version: int = Field(ge=1)
    occurred_at: UtcDatetime
    producer: str = Field(min_length=1, max_length=80)
    key: Id
    correlation_id: str = Field(min_length=1, max_length=200)
    causation_id: str | None = Field(default=None, max_length=200)
    # Who caused the fact: the opaque subject id of the caller's token (never a name); absent for facts no person
    # caused (a consumer's reaction, a sweep) and for every fact published before actors were recorded.
    actor: Subject | None = None
    data: dict[str, Any]


class UnknownEvent(ValueError):
    """The message names a (type, schema_version) this contract does not know."""


def encode(
    event: Event,
    *,
    event_id: str,
    producer: str,
    occurred_at: datetime,
    correlation_id: str,
    causation_id: str | None,
    actor: str | None = None,
) -> bytes:
    if occurred_at.tzinfo is None:
        raise ValueError("occurred_at must be timezone-aware")
    envelope = Envelope(
        event_id=event_id,
        type=event.TYPE,
        schema_version=event.VERSION,
        occurred_at=occurred_at.astimezone(UTC),
        producer=producer,
        key=event.key(),
        correlation_id=correlation_id,
        causation_id=causation_id,
        actor=actor,
        data=event.model_dump(mode="json"),
    )
    # `actor` is left out when absent, so facts no person caused keep the bytes they always had.
    return envelope.model_dump_json(exclude={"actor"} if actor is None else None).encode()


def decode(raw: bytes) -> tuple[Envelope, Event]:
    """Parse and validate a message. Raises ValueError (ValidationError, UnknownEvent) on bad input."""
    try:
        envelope = Envelope.model_validate_json(raw)
    except ValidationError:
        raise
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:  # pragma: no cover - pydantic wraps these
        raise ValueError(f"not a JSON envelope: {exc}") from exc
    try:
        model = event_class(envelope.type, envelope.schema_version)
    except KeyError:
        raise UnknownEvent(f"unknown event type {envelope.type!r} v{envelope.schema_version}") from None
    event = model.model_validate(envelope.data)
    if event.key() != envelope.key:
        raise ValueError(f"envelope key {envelope.key!r} does not match {model.KEY}={event.key()!r}")
    return envelope, event


def headers(event: Event) -> list[tuple[str, bytes]]:
    return [("type", event.TYPE.encode()), ("schema_version", str(event.VERSION).encode())]
