"""The replay's header shortcut: a message is skipped unparsed only when its type header names a contract
type the fold never uses."""

from __future__ import annotations

import pytest

from sandan_scoring.facts import KNOWN_TYPES, used_by_fold


@pytest.mark.parametrize("header", [b"ServiceCompleted", "OrderOpened", b"ServiceRated", b"MemberCheckedIn"])
def test_types_the_fold_uses_are_read(header: bytes | str) -> None:
    assert used_by_fold(header)


@pytest.mark.parametrize("header", [b"DemandPosted", b"CompletionConfirmed", "ActivityScheduled", b"GridGroupFormed"])
def test_contract_types_the_fold_ignores_are_skipped(header: bytes | str) -> None:
    assert not used_by_fold(header)


@pytest.mark.parametrize("header", [None, b"DemandTeleported", b""])
def test_absent_or_unknown_headers_fall_through_to_the_full_decode(header: bytes | None) -> None:
    assert used_by_fold(header)


def test_every_type_the_fold_uses_is_a_contract_type() -> None:
    from sandan_contracts import EVENT_TYPES

    assert {t for t, _ in EVENT_TYPES} >= KNOWN_TYPES
