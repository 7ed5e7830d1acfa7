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

from sandan_contracts import EVENT_TYPES, Event, decode
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


_ABSENT = object()
_UTC_CHECKS = list(typing.get_args(UtcDatetime)[1:])  # what makes an AwareDatetime the contract's UtcDatetime


def _utc(value: Any) -> datetime:
    if type(value) is not str or _UTC_FORM(value) is None:
        raise _Refused
    parsed = datetime.fromisoformat(value)  # a ValueError (e.g. 30 February) also sends it to the full decode
    if parsed.tzinfo is not UTC and parsed.utcoffset() != _ZERO:
        raise _Refused
    return parsed


# ---- the checks, derived from the contract's models ---------------------------------------------------------
# Each field's check is derived from its annotation and constraints (pydantic's metadata) as one Python
# expression; each type's expressions become one straight-line function, compiled once at import. (The same
# checks as closures, one call per field, took about a third longer: this runs once per replayed event.)
class _Source:
    """The generated functions' source, and the values they refer to by name (patterns, literal sets)."""

    def __init__(self) -> None:
        self.names: dict[str, Any] = {"_ABSENT": _ABSENT, "_Refused": _Refused, "_utc": _utc}

    def const(self, value: Any) -> str:
        name = f"_k{len(self.names)}"
        self.names[name] = value
        return name


def _string(constraints: list[Any], v: str, src: _Source) -> str:
    low, high, pattern = 0, None, None
    for c in constraints:
        if isinstance(c, StringConstraints):
            if c.strip_whitespace or c.to_upper or c.to_lower or c.strict or c.ascii_only:
                raise TypeError(f"no fast check for {c!r}")
            low = c.min_length if c.min_length is not None else low
            high = c.max_length if c.max_length is not None else high
            pattern = c.pattern
        elif isinstance(c, at.MinLen):
            low = c.min_length
        elif isinstance(c, at.MaxLen):
            high = c.max_length
        else:
            raise TypeError(f"no fast check for {c!r}")
    parts = [f"type({v}) is str", f"{low} <= len({v})" if high is None else f"{low} <= len({v}) <= {high}"]
    if pattern is not None:
        # pydantic's (Rust) `$` matches only at the very end; fullmatch says the same in Python.
        match = re.compile(str(pattern).removeprefix("^").removesuffix("$")).fullmatch
        parts.append(f"{src.const(match)}({v}) is not None")
    return "(" + " and ".join(parts) + ")"


def _bounds(constraints: list[Any], v: str) -> list[str]:
    out = []
    for c in constraints:
        if isinstance(c, at.Gt):
            out.append(f"{v} > {c.gt!r}")
        elif isinstance(c, at.Ge):
            out.append(f"{v} >= {c.ge!r}")
        elif isinstance(c, at.Lt):
            out.append(f"{v} < {c.lt!r}")
        elif isinstance(c, at.Le):
            out.append(f"{v} <= {c.le!r}")
        else:
            raise TypeError(f"no fast check for {c!r}")
    return out


def _expr(annotation: Any, constraints: list[Any], v: str, src: _Source) -> str | None:
    """The check of one value named `v`, as an expression; None for the contract's UTC time (parsed apart)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        base, *more = typing.get_args(annotation)
        return _expr(base, [*more, *constraints], v, src)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if len(options) != 2 or type(None) not in options:
            raise TypeError(f"no fast check for {annotation!r}")
        # X | None: the constraints (e.g. a max_length) apply to the X
        inner = _expr(next(o for o in options if o is not type(None)), constraints, v, src)
        if inner is None:
            raise TypeError("no fast check for an optional time")
        return f"({v} is None or {inner})"
    if origin is typing.Literal:
        allowed = frozenset(typing.get_args(annotation))
        if not all(type(a) is str for a in allowed) or constraints:
            raise TypeError(f"no fast check for {annotation!r}")
        return f"(type({v}) is str and {v} in {src.const(allowed)})"
    if origin is list:
        (item,) = typing.get_args(annotation)
        x = f"{v}_"
        each = _expr(item, [], x, src)
        if each is None:
            raise TypeError("no fast check for a list of times")
        parts = [f"type({v}) is list"]
        for c in constraints:
            if not isinstance(c, at.MaxLen):
                raise TypeError(f"no fast check for {c!r}")
            parts.append(f"len({v}) <= {c.max_length}")
        parts.append(f"all({each} for {x} in {v})")
        return "(" + " and ".join(parts) + ")"
    if annotation is AwareDatetime:
        if constraints != _UTC_CHECKS:  # the contract's UtcDatetime and nothing else
            raise TypeError(f"no fast check for {constraints!r}")
        return None
    if annotation is str:
        return _string(constraints, v, src)
    if annotation is bool and not constraints:
        return f"type({v}) is bool"
    if annotation is int:
        return "(" + " and ".join([f"type({v}) is int", *_bounds(constraints, v)]) + ")"
    if annotation is float:  # JSON 2 is a valid float 2.0; JSON true is not
        return "(" + " and ".join([f"(type({v}) is float or type({v}) is int)", *_bounds(constraints, v)]) + ")"
    if origin is dict and not constraints:
        return f"type({v}) is dict"
    raise TypeError(f"no fast check for {annotation!r}")


def _field_lines(node: str, fields: dict[str, FieldInfo], src: _Source, skip: tuple[str, ...] = ()) -> list[str]:
    """Lines checking each field of the dict `node` in place: a UTC time is replaced by its parsed value, an
    absent optional field gets its default (as the contract's decode gives them). They raise _Refused."""
    lines = []
    for name, info in fields.items():
        if name in skip:
            continue
        check = _expr(info.annotation, list(info.metadata), "v", src)
        field = f"{node}[{name!r}]"
        if info.is_required():  # absent: a KeyError sends the message to the full decode too
            lines.append(f"v = {field}")
            lines.append(f"{field} = _utc(v)" if check is None else f"if not {check}: raise _Refused")
            continue
        default = (f"{src.const(info.default_factory)}()" if info.default_factory is not None
                   else src.const(info.default))
        lines += [f"v = {node}.get({name!r}, _ABSENT)", f"if v is _ABSENT: {field} = {default}",
                  f"else: {field} = _utc(v)" if check is None else f"elif not {check}: raise _Refused"]
    return lines


def _reader(model: type[Event], src: _Source) -> Callable[[dict[str, Any]], tuple[datetime, dict[str, Any]]]:
    """One function checking a whole message of `model`'s type: (occurred_at, data) or _Refused."""
    lines = _field_lines("env", Envelope.model_fields, src, skip=("type", "schema_version", "occurred_at", "data"))
    lines += ["at = _utc(env['occurred_at'])", "data = env['data']", "if type(data) is not dict: raise _Refused"]
    lines += _field_lines("data", model.model_fields, src)
    lines += [f"if data[{model.KEY!r}] != env['key']: raise _Refused", "return at, data"]
    source = "def read(env):\n" + "".join(f"    {line}\n" for line in lines)
    scope = dict(src.names)
    exec(compile(source, f"<fast checks of {model.TYPE}>", "exec"), scope)  # noqa: S102 - our own source
    read = scope["read"]
    read.__doc__ = source  # what it checks, readable
    return read  # type: ignore[no-any-return]


# Per (type, version) the fold reads: the function that checks a whole message of that type.
_READERS = {key: _reader(model, _Source()) for key, model in EVENT_TYPES.items() if key[0] in KNOWN_TYPES}


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
        read = _READERS.get((env["type"], version)) if type(version) is int else None
        if read is None:
            raise _Refused  # a type the fold does not use (or no type at all): the contract judges
        occurred_at, data = read(env)
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
