"""Facts read from the source topics, decoded fast but never leniently.

Replay speed matters (a rebuild reads the whole log), so the common path is `json.loads` plus precompiled
checks; anything they do not certainly accept falls back to the contract's full pydantic decode, which
either accepts it (then its normalised fields are used) or raises ValueError (the caller dead-letters it).

One definition of "valid": the fast checks are *derived from the contract's models* (the envelope and every
event type the fold reads), field by field: lengths, patterns, literals, numeric ranges, list lengths, UTC
times, required fields. They accept a subset of what the contract accepts (only the types JSON gives
directly: no "4" for 4, no true for 1), so `read_fact` raises exactly when `sandan_contracts.decode` does.
A field shape the derivation does not know fails at import, so a contract change cannot slip past it.
Unknown fields are ignored, as the contract's tolerant reader does.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import annotated_types as at
import orjson
from pydantic import AwareDatetime, StringConstraints
from pydantic.fields import FieldInfo

from sandan_contracts import EVENT_TYPES, decode
from sandan_contracts.envelope import Envelope
from sandan_contracts.events.base import UtcDatetime

SOURCE_TOPICS = ("dispatch.roster.v1", "dispatch.orders.v1", "intake.demands.v1", "dispatch.activities.v1")

KNOWN_TYPES = frozenset({
    "MemberReported", "OrderOpened", "OrderDispatched", "OrderOffered", "OrderAccepted", "OrderDeclined",
    "ServiceCompleted", "OrderEscalated", "OrderOverdue", "OrderCancelled", "OrderReopened", "ServiceRated",
    "MemberCheckedIn"})
CONTRACT_TYPES = frozenset(t for t, _ in EVENT_TYPES)
# Contract types the fold never uses, as the bytes a message's `type` carries: skipped unparsed on replay.
SKIPPED_TYPES = frozenset(t.encode() for t in CONTRACT_TYPES - KNOWN_TYPES)

_ZERO = timedelta(0)
# The canonical UTC forms the contract's encoder writes; any other form (which the contract may still
# accept) goes to the full decode. ASCII digits only: `\d` would match other scripts' digits.
_UTC_FORM = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:Z|\+00:00)").fullmatch


class _Refused(Exception):
    """The fast path is not certain: the full decode judges."""


Check = Callable[[Any], bool]
_TIME = object()  # marks a UTC time field: checked and handed on parsed, as the contract's decode does
_UTC_CHECKS = list(typing.get_args(UtcDatetime)[1:])  # what makes an AwareDatetime the contract's UtcDatetime


def _string(constraints: list[Any]) -> Check:
    low, high, pattern = 0, None, None
    for c in constraints:
        if isinstance(c, StringConstraints):
            low = c.min_length if c.min_length is not None else low
            high = c.max_length if c.max_length is not None else high
            pattern = c.pattern
            if c.strip_whitespace or c.to_upper or c.to_lower or c.strict or c.ascii_only:
                raise TypeError(f"no fast check for {c!r}")
        elif isinstance(c, at.MinLen):
            low = c.min_length
        elif isinstance(c, at.MaxLen):
            high = c.max_length
        else:
            raise TypeError(f"no fast check for {c!r}")
    most = high if high is not None else 1 << 62
    if pattern is not None:
        # pydantic's (Rust) `$` matches only at the very end; fullmatch says the same in Python.
        match = re.compile(str(pattern).removeprefix("^").removesuffix("$")).fullmatch
        return lambda v: type(v) is str and low <= len(v) <= most and match(v) is not None
    return lambda v: type(v) is str and low <= len(v) <= most


def _bounds(constraints: list[Any]) -> tuple[float | None, float | None, float | None, float | None]:
    gt = ge = lt = le = None
    for c in constraints:
        if isinstance(c, at.Gt):
            gt = c.gt
        elif isinstance(c, at.Ge):
            ge = c.ge
        elif isinstance(c, at.Lt):
            lt = c.lt
        elif isinstance(c, at.Le):
            le = c.le
        else:
            raise TypeError(f"no fast check for {c!r}")
    return gt, ge, lt, le  # type: ignore[return-value]


def _in_bounds(gt: Any, ge: Any, lt: Any, le: Any) -> Check:
    return lambda v: ((gt is None or v > gt) and (ge is None or v >= ge)
                      and (lt is None or v < lt) and (le is None or v <= le))


def _check(annotation: Any, constraints: list[Any]) -> Check | object:
    """The fast check of one field, from its annotation and constraints (pydantic's metadata)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        base, *more = typing.get_args(annotation)
        return _check(base, [*more, *constraints])
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if len(options) != 2 or type(None) not in options:
            raise TypeError(f"no fast check for {annotation!r}")
        # X | None: the constraints (e.g. a max_length) apply to the X
        inner = _check(next(o for o in options if o is not type(None)), constraints)
        if inner is _TIME:
            raise TypeError("no fast check for an optional time")
        return lambda v: v is None or inner(v)  # type: ignore[operator]
    if origin is typing.Literal:
        allowed = frozenset(typing.get_args(annotation))
        if not all(type(a) is str for a in allowed) or constraints:
            raise TypeError(f"no fast check for {annotation!r}")
        return lambda v: type(v) is str and v in allowed
    if origin is list:
        (item,) = typing.get_args(annotation)
        each = _check(item, [])
        if each is _TIME:
            raise TypeError("no fast check for a list of times")
        most = None
        for c in constraints:
            if not isinstance(c, at.MaxLen):
                raise TypeError(f"no fast check for {c!r}")
            most = c.max_length
        return lambda v: (type(v) is list and (most is None or len(v) <= most)
                          and all(each(x) for x in v))  # type: ignore[operator]
    if annotation is AwareDatetime:
        if constraints != _UTC_CHECKS:  # the contract's UtcDatetime and nothing else
            raise TypeError(f"no fast check for {constraints!r}")
        return _TIME
    if annotation is str:
        return _string(constraints)
    if annotation is bool and not constraints:
        return lambda v: type(v) is bool
    if annotation is int:
        inside = _in_bounds(*_bounds(constraints))
        return lambda v: type(v) is int and inside(v)
    if annotation is float:
        inside = _in_bounds(*_bounds(constraints))
        return lambda v: (type(v) is float or type(v) is int) and inside(v)  # JSON 2 is a valid float 2.0
    if origin is dict and not constraints:
        return lambda v: type(v) is dict
    raise TypeError(f"no fast check for {annotation!r}")


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    check: Check | None  # None: a UTC time
    required: bool
    default: Any
    factory: Callable[[], Any] | None


_ABSENT = object()


def _fields(model_fields: dict[str, FieldInfo]) -> tuple[_Field, ...]:
    out = []
    for name, info in model_fields.items():
        check = _check(info.annotation, list(info.metadata))
        factory = info.default_factory
        out.append(_Field(name, None if check is _TIME else check, info.is_required(),  # type: ignore[arg-type]
                          None if factory is not None or info.is_required() else info.default,
                          factory))  # type: ignore[arg-type]
    return tuple(out)


def _fill(data: dict[str, Any], fields: tuple[_Field, ...]) -> None:
    """Check every declared field of `data` in place (UTC times are replaced by their parsed value, absent
    optional fields get their default, as the contract's decode would give them). Raises _Refused."""
    for f in fields:
        value = data.get(f.name, _ABSENT)
        if value is _ABSENT:
            if f.required:
                raise _Refused
            data[f.name] = f.factory() if f.factory is not None else f.default
        elif f.check is None:
            data[f.name] = _utc(value)
        elif not f.check(value):
            raise _Refused


def _utc(value: Any) -> datetime:
    if type(value) is not str or _UTC_FORM(value) is None:
        raise _Refused
    parsed = datetime.fromisoformat(value)  # a ValueError (e.g. 30 February) also sends it to the full decode
    if parsed.tzinfo is not UTC and parsed.utcoffset() != _ZERO:
        raise _Refused
    return parsed


# The envelope's fields except `data`, `occurred_at` and `type` (handled on their own below).
_ENVELOPE = tuple(f for f in _fields(Envelope.model_fields) if f.name not in ("data", "occurred_at", "type"))
# Per (type, version) the fold reads: its fields' checks and the field carrying the message key.
_SPEC: dict[tuple[str, int], tuple[tuple[_Field, ...], str]] = {
    key: (_fields(model.model_fields), model.KEY) for key, model in EVENT_TYPES.items() if key[0] in KNOWN_TYPES}


def type_of(raw: bytes) -> bytes | None:
    """The envelope's "type" read straight from the bytes, only in the shape the contract's encoder writes
    (`{"event_id":"...","type":"...",`); None otherwise, and then the full decoder judges the message (a
    `"type"` key found anywhere else, e.g. inside `data`, must not decide what a replay skips)."""
    if not raw.startswith(b'{"event_id":"'):
        return None
    end = raw.find(b'"', 13, 260)
    if end < 0 or raw[end - 1] == 0x5C:  # an escaped quote: not the plain shape
        return None
    if not raw.startswith(b',"type":"', end + 1):
        return None
    start = end + 10
    stop = raw.find(b'"', start, start + 100)
    return raw[start:stop] if stop >= 0 else None


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
    """A fact the fold uses, or None for a valid event it does not use. Raises ValueError when the contract
    refuses the message."""
    try:
        env = orjson.loads(raw)
        version = env["schema_version"]
        spec = _SPEC.get((env["type"], version)) if type(version) is int else None
        if spec is None:
            raise _Refused  # a type the fold does not use (or no type at all): the contract judges
        for f in _ENVELOPE:
            value = env.get(f.name, _ABSENT)
            if value is _ABSENT:
                if f.required:
                    raise _Refused
            elif not f.check(value):  # type: ignore[misc]
                raise _Refused
        occurred_at = _utc(env["occurred_at"])
        data = env["data"]
        if type(data) is not dict:
            raise _Refused
        fields, key_field = spec
        _fill(data, fields)
        if data[key_field] != env["key"]:
            raise _Refused
        return Fact(topic, env["type"], env["event_id"], env["key"], occurred_at, data, env["correlation_id"])
    except (_Refused, KeyError, TypeError, ValueError, AttributeError):
        return _slow(topic, raw)


def _slow(topic: str, raw: bytes) -> Fact | None:
    envelope, event = decode(raw)  # raises ValueError on anything invalid
    if envelope.type not in KNOWN_TYPES:
        return None
    data = event.model_dump()  # python mode: due_at as a datetime, like the fast path
    return Fact(topic, envelope.type, envelope.event_id, envelope.key, envelope.occurred_at, data,
                envelope.correlation_id)
