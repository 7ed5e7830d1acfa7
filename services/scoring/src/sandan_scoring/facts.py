"""Facts read from the source topics, decoded fast.

Replay speed matters (a rebuild reads the whole log), so the common path is `json.loads` plus type checks
of the fields the fold uses; anything unexpected falls back to the contract's full pydantic decode, which
either accepts it (then its normalised fields are used) or raises ValueError (the caller dead-letters it).
The fast path checks types, the key, UTC times and ranges, but not id *patterns*: producers validated
those against the same contract when they wrote, and checking them again would halve replay speed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from sandan_contracts import EVENT_TYPES, decode

SOURCE_TOPICS = ("dispatch.roster.v1", "dispatch.orders.v1", "intake.demands.v1", "dispatch.activities.v1")

# The fields each type must carry for the fold, with their Python types.
_NEEDS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "MemberReported": {"member_id": str, "community_id": str, "unit_id": str},
    "OrderOpened": {"order_id": str, "demand_id": str, "community_id": str, "category": str, "care_tags": list,
                    "due_at": str},  # due_at is handed to the fold parsed, as an aware datetime
    "OrderDispatched": {"order_id": str, "member_id": str},
    "OrderOffered": {"order_id": str},
    "OrderAccepted": {"order_id": str, "member_id": str},
    "OrderDeclined": {"order_id": str, "member_id": str},
    "ServiceCompleted": {"order_id": str, "member_id": str, "hours": (int, float)},
    "OrderEscalated": {"order_id": str, "due_at": str},
    "OrderOverdue": {"order_id": str, "status": str},
    "OrderCancelled": {"order_id": str},
    "OrderReopened": {"order_id": str, "due_at": str},
    "ServiceRated": {"demand_id": str, "stars": int},
    "MemberCheckedIn": {"activity_id": str, "member_id": str, "unit_id": str, "community_id": str},
}
KNOWN_TYPES = frozenset(_NEEDS)
_ZERO = timedelta(0)
# Optional ids that must be a string when present.
_OPTIONAL_IDS: dict[str, tuple[str, ...]] = {
    "ServiceRated": ("member_id",), "OrderOverdue": ("member_id",), "OrderReopened": ("previous_member_id",)}
_KEY_FIELD = {t: EVENT_TYPES[(t, 1)].KEY for t in _NEEDS}
_DUE = frozenset(t for t, needs in _NEEDS.items() if "due_at" in needs)
# Per type, everything the fast path checks, precomputed (this runs once per replayed event).
_SPEC: dict[str, tuple[tuple[tuple[str, Any], ...], tuple[str, ...], str, bool]] = {
    t: (tuple(needs.items()), _OPTIONAL_IDS.get(t, ()), _KEY_FIELD[t], t in _DUE) for t, needs in _NEEDS.items()}
_NONE_OR_STR = (str, type(None))
CONTRACT_TYPES = frozenset(t for t, _ in EVENT_TYPES)


# Contract types the fold never uses, as the bytes a message's `type` carries: skipped unparsed on replay.
SKIPPED_TYPES = frozenset(t.encode() for t in CONTRACT_TYPES - KNOWN_TYPES)


def type_of(raw: bytes) -> bytes | None:
    """The envelope's "type" read straight from the bytes (the contract's encoder writes compact JSON with
    `type` near the start); None when not found, and then the full decoder judges the message."""
    start = raw.find(b'"type":"', 0, 300)
    if start < 0:
        return None
    start += 8
    return raw[start:raw.find(b'"', start)]


def used_by_fold(type_name: bytes | str | None) -> bool:
    """From a type name alone: may the fold need the message? (True when absent or unknown to the contract,
    so the full decode can judge it.)"""
    if type_name is None:
        return True
    return (type_name.encode() if isinstance(type_name, str) else type_name) not in SKIPPED_TYPES


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs ~1 µs, paid per replayed event
class Fact:
    topic: str
    type: str
    event_id: str
    key: str
    occurred_at: datetime
    data: dict[str, Any]
    correlation_id: str = ""
    quarter: str = ""  # set by the fold, once


def read_fact(topic: str, raw: bytes) -> Fact | None:
    """A fact the fold uses, or None for a valid event it does not use. Raises ValueError when invalid."""
    try:
        env = orjson.loads(raw)
        type_name = env["type"]
        if env["schema_version"] != 1 or type(env["event_id"]) is not str:
            raise TypeError
        spec = _SPEC.get(type_name)
        data = env["data"]
        if spec is not None:
            needs, optional_ids, key_field, has_due = spec
            for field, kind in needs:
                if not isinstance(data[field], kind):
                    raise TypeError
            for field in optional_ids:
                if not isinstance(data.get(field), _NONE_OR_STR):
                    raise TypeError
            if data[key_field] != env["key"]:
                raise TypeError
            occurred_at = datetime.fromisoformat(env["occurred_at"])
            if occurred_at.tzinfo is not UTC and occurred_at.utcoffset() != _ZERO:
                raise TypeError
            if has_due:
                due_at = datetime.fromisoformat(data["due_at"])
                if due_at.tzinfo is not UTC and due_at.utcoffset() != _ZERO:
                    raise TypeError
                data["due_at"] = due_at
            if type_name == "ServiceRated" and not 1 <= data["stars"] <= 5:
                raise TypeError
            if type_name == "ServiceCompleted" and not 0 < data["hours"] <= 72:
                raise TypeError
            return Fact(topic, type_name, env["event_id"], env["key"], occurred_at, data, env["correlation_id"])
    except (KeyError, TypeError, ValueError, AttributeError):
        return _slow(topic, raw)
    # A type the fold does not use: only make sure the contract knows it.
    if (type_name, 1) not in EVENT_TYPES:
        return _slow(topic, raw)
    return None


def _slow(topic: str, raw: bytes) -> Fact | None:
    envelope, event = decode(raw)  # raises ValueError on anything invalid
    if envelope.type not in KNOWN_TYPES:
        return None
    data = event.model_dump()  # python mode: due_at as a datetime, like the fast path
    return Fact(topic, envelope.type, envelope.event_id, envelope.key, envelope.occurred_at, data,
                envelope.correlation_id)
