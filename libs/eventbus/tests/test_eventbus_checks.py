"""The input policy: one definition of valid text and ids, derived from the contract, documented in one table."""

from __future__ import annotations

import re
import uuid

import pytest
from google.protobuf.descriptor import FieldDescriptor

from sandan_contracts.rpc import dispatch_pb2, intake_pb2, notify_pb2, scoring_pb2
from sandan_eventbus import checks
from sandan_eventbus.checks import (
    LIMITS,
    check_characters,
    check_code,
    check_id,
    check_ref,
    check_text,
    check_uuid,
    check_version,
    quote,
)
from sandan_eventbus.errors import InvalidArgument

SERVICES = [d.services_by_name[n] for d, n in ((intake_pb2.DESCRIPTOR, "Intake"), (dispatch_pb2.DESCRIPTOR, "Dispatch"),
                                                (scoring_pb2.DESCRIPTOR, "Scoring"), (notify_pb2.DESCRIPTOR, "Notify"))]


def request_string_fields() -> set[str]:
    names: set[str] = set()

    def walk(message: object) -> None:
        for field in message.fields:  # type: ignore[attr-defined]
            if field.type == FieldDescriptor.TYPE_STRING:
                names.add(field.name)
            elif field.type == FieldDescriptor.TYPE_MESSAGE:
                walk(field.message_type)

    for service in SERVICES:
        for method in service.methods:
            walk(method.input_type)
    return names


def refusal(call: object) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as info:
        call()  # type: ignore[operator]
    return info.value


def test_every_string_field_of_every_request_has_a_documented_maximum() -> None:
    fields = request_string_fields()
    assert fields - set(LIMITS) == set(), "add the new fields to checks.LIMITS and to the table in its docstring"
    documented = set(re.findall(r"\b[a-z][a-z_]*[a-z]\b", checks.__doc__.split("| field |", 1)[1]))
    assert set(LIMITS) - documented == set(), "the docstring table must name every field LIMITS names"


def test_text_is_nfc_normalised_and_stripped() -> None:
    decomposed = "Zhe\u0301n  "  # e + combining acute accent
    assert check_text("name", decomposed, 1, 100) == "Zh\u00e9n"
    assert check_text("name", "王秀英", 1, 100) == "王秀英"


@pytest.mark.parametrize("bad", ["a\x00b", "line\nbreak", "tab\there", "bell\x07", "del\x7f", "c1\x85", "cr\rx"])
def test_control_characters_are_refused_naming_the_field_never_the_text(bad: str) -> None:
    error = refusal(lambda: check_text("unit_name", bad, 1, 100))
    assert error.field == "unit_name"
    control = next(c for c in bad if not c.isprintable())
    assert "control characters" in str(error) and f"U+{ord(control):04X} at position {bad.index(control)}" in str(error)
    assert bad not in str(error)


def test_multiline_text_allows_newline_and_tab_only() -> None:
    assert check_text("notes", "first\n\tsecond", 0, 1000, multiline=True) == "first\n\tsecond"
    for bad in ("nul\x00", "cr\r\n", "vt\x0b"):
        assert refusal(lambda bad=bad: check_text("notes", bad, 0, 1000, multiline=True)).field == "notes"


@pytest.mark.parametrize("mark", ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068",
                                  "\u2069"])
def test_bidi_overrides_and_isolates_are_refused(mark: str) -> None:
    error = refusal(lambda: check_characters("title", f"invoice{mark}fdp.exe"))
    assert error.field == "title" and f"U+{ord(mark):04X} at position 7" in str(error)


def test_a_huge_text_is_refused_by_length_without_normalising_it() -> None:
    error = refusal(lambda: check_text("title", "e\u0301" * 1_000_000, 1, 100))
    assert str(error) == "title: must be 1 to 100 characters"


def test_ids_and_codes_take_the_contracts_shapes() -> None:
    assert checks.ID.max_length == 64 and checks.CODE.max_length == 40 and checks.REF.max_length == 200
    assert check_id("member_id", "m-1.a:b_c") == "m-1.a:b_c"
    # Python's `$` would accept a final newline; the contract's pattern does not, and neither may we
    for bad in ("m1\n", "", "-m1", "m 1", "m" * 65, "成员"):
        assert refusal(lambda bad=bad: check_id("member_id", bad)).field == "member_id"
    for bad in ("Medical", "legal aid", "x" * 41, "medical\n"):
        assert refusal(lambda bad=bad: check_code("team", bad)).field == "team"
    assert check_version("rule_set_version", "2026.1") == "2026.1"
    assert check_ref("source_event_id", "intake:12") == "intake:12"


def test_ids_issued_as_uuids() -> None:
    issued = uuid.uuid4()
    assert check_uuid("resident_id", str(issued)) == issued
    error = refusal(lambda: check_uuid("resident_id", "m-liu", "a resident id (a uuid issued by intake)"))
    assert str(error) == "resident_id: must be a resident id (a uuid issued by intake)"
    assert refusal(lambda: check_uuid("order_id", "0" * 100_000)).field == "order_id"


def test_quote_shows_a_short_prefix_with_controls_escaped() -> None:
    assert quote("x" * 1_000_000) == "x" * 40 + "…"
    assert quote("a\x00b") == "a\\x00b"
    assert quote("short") == "short"
