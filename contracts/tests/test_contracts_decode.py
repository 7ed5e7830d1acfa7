"""(d) `decode` rejects every malformed message with ValueError (a consumer dead-letters it)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from contracts_support import GOLDEN_DIR

from sandan_contracts import decode
from sandan_contracts.envelope import UnknownEvent


def golden(name: str) -> dict[str, Any]:
    return json.loads((GOLDEN_DIR / f"{name}.v1.json").read_text("utf-8"))


def encoded(message: dict[str, Any]) -> bytes:
    return json.dumps(message, ensure_ascii=False).encode()


def changed(name: str, change: Callable[[dict[str, Any]], object]) -> bytes:
    message = golden(name)
    change(message)
    return encoded(message)


def test_the_unmodified_samples_decode() -> None:
    for name in ("DemandPosted", "ServiceRated", "OrderEscalated"):
        decode(encoded(golden(name)))


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b'{"event_id": "intake:12",', b"not json", b"\xff\xfe\x00", b"[]", b"null", b"42", b'"text"'],
    ids=["empty", "open-brace", "truncated", "words", "not-utf8", "array", "null", "number", "string"],
)
def test_malformed_json(raw: bytes) -> None:
    with pytest.raises(ValueError):
        decode(raw)


def test_unknown_type() -> None:
    with pytest.raises(UnknownEvent, match="DemandTeleported"):
        decode(changed("DemandPosted", lambda m: m.update(type="DemandTeleported")))
    assert issubclass(UnknownEvent, ValueError)


@pytest.mark.parametrize("version", [2, 99])
def test_unknown_schema_version(version: int) -> None:
    with pytest.raises(UnknownEvent, match=f"v{version}"):
        decode(changed("DemandPosted", lambda m: m.update(schema_version=version)))


def test_schema_version_zero_is_invalid() -> None:
    with pytest.raises(ValueError):
        decode(changed("DemandPosted", lambda m: m.update(schema_version=0)))


def test_key_mismatch() -> None:
    with pytest.raises(ValueError, match="does not match"):
        decode(changed("DemandPosted", lambda m: m.update(key="d-someone-else")))


def test_data_of_another_type_under_this_type() -> None:
    """An OrderAccepted body labelled DemandPosted fails on the missing fields, not silently."""
    with pytest.raises(ValueError):
        decode(changed("DemandPosted", lambda m: m.update(data=golden("OrderAccepted")["data"])))


@pytest.mark.parametrize(
    "stamp",
    ["2025-03-14T09:30:00+08:00", "2025-03-14T01:30:00-05:00", "2025-03-14T01:30:00", "2025-03-14", "yesterday"],
    ids=["beijing", "minus-five", "naive", "date-only", "words"],
)
def test_occurred_at_must_be_utc(stamp: str) -> None:
    with pytest.raises(ValueError):
        decode(changed("DemandPosted", lambda m: m.update(occurred_at=stamp)))


def test_event_timestamps_must_be_utc_too() -> None:
    with pytest.raises(ValueError, match="UTC"):
        decode(changed("DemandPosted", lambda m: m["data"].update(due_at="2025-03-15T09:30:00+08:00")))


def test_plus_zero_offset_is_utc() -> None:
    envelope, _ = decode(changed("DemandPosted", lambda m: m.update(occurred_at="2025-03-14T01:30:00+00:00")))
    assert envelope.occurred_at.utcoffset().total_seconds() == 0


@pytest.mark.parametrize(
    ("name", "field", "value"),
    [
        ("ServiceRated", "stars", 6),
        ("ServiceRated", "stars", 0),
        ("ServiceRated", "stars", "five"),
        ("DemandPosted", "deadline_seconds", 0),
        ("DemandPosted", "deadline_seconds", 91 * 24 * 3600),
        ("DemandPosted", "urgency", "asap"),
        ("DemandPosted", "channel", "carrier_pigeon"),
        ("DemandPosted", "care_tags", ["elderly_alone", "unknown_group"]),
        ("DemandPosted", "care_tags", ["elderly_alone"] * 5),
        ("DemandPosted", "category", "Elderly Care"),
        ("DemandPosted", "grid_id", ""),
        ("DemandPosted", "grid_id", "g" * 65),
        ("DemandPosted", "community_id", "泰和县"),
        ("RedoRequested", "redo_count", 0),
        ("RedoRequested", "redo_count", 11),
        ("DemandTextsShredded", "cause", "forgotten"),
        ("DemandTextsShredded", "cause", None),
        ("ServiceCompleted", "hours", 0),
        ("ServiceCompleted", "hours", 72.5),
        ("OrderDispatched", "dispatched_by", "mayor"),
        ("OrderAccepted", "via", "telepathy"),
        ("OrderEscalated", "to_level", "province"),
        ("OrderEscalated", "reason", ""),
        ("OrderEscalated", "joint_meeting_units", [f"360826-u-{i:04d}" for i in range(51)]),
        ("UnitReported", "unit_name", "x" * 101),
        ("MemberReported", "teams", ["t"] * 11),
    ],
)
def test_out_of_range_values(name: str, field: str, value: object) -> None:
    with pytest.raises(ValueError):
        decode(changed(name, lambda m: m["data"].update({field: value})))


@pytest.mark.parametrize("field", ["event_id", "type", "schema_version", "occurred_at", "producer", "key",
                                   "correlation_id", "data"])
def test_missing_envelope_field(field: str) -> None:
    with pytest.raises(ValueError):
        decode(changed("OrderOpened", lambda m: m.pop(field)))


def test_missing_required_data_field() -> None:
    with pytest.raises(ValueError):
        decode(changed("OrderOpened", lambda m: m["data"].pop("due_at")))
