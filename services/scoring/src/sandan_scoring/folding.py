"""Applying records to a ledger: through the native kernel when it is installed, else in Python.

The rules live in `fold.py` (Python) and are the reference. The kernel (`services/scoring/kernel`, Rust)
applies the same rules to the same `Ledger` containers in about half the time, which is what lets a
whole-log rebuild keep up with the broker; anything it does not fully understand (an unusual encoding, a
type the fold does not use, an invalid record) it hands back to the Python path, record by record, in
order. Tests fold the same logs both ways and compare every container.

`SCORING_KERNEL` picks: `auto` (default: native when installed), `native` (required), `python`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from types import ModuleType
from typing import Any

from sandan_scoring.facts import read_fact
from sandan_scoring.fold import CheckIn, Entry, Ledger, OrderFacts, Rating

Records = list[tuple[str, bytes | None]]


def _load_kernel(choice: str) -> ModuleType | None:
    if choice not in ("auto", "native", "python"):
        raise ValueError(f"SCORING_KERNEL must be auto, native or python, not {choice!r}")
    if choice == "python":
        return None
    try:
        import sandan_kernel
    except ImportError:
        if choice == "native":
            raise ImportError("SCORING_KERNEL=native but sandan_kernel is not installed "
                              "(pip install services/scoring/kernel)") from None
        return None
    return sandan_kernel


KERNEL = _load_kernel(os.environ.get("SCORING_KERNEL", "auto"))


def folder(ledger: Ledger, fallback: Callable[[int, str, bytes | None], None] | None = None,
           skip: frozenset[bytes] = frozenset(), *, native: bool | None = None) -> Any:
    """A native `Folder` bound to `ledger` (None without the kernel). `fallback(index, topic, value)` gets
    the records the kernel leaves to Python; by default they are folded in Python and invalid ones dropped.
    `native` overrides SCORING_KERNEL (tests compare both)."""
    kernel = KERNEL if native is None else (_load_kernel("native") if native else None)
    if kernel is None:
        return None
    return kernel.Folder(ledger, fallback or python_fallback(ledger), Entry, OrderFacts, Rating, CheckIn, skip)


def python_fallback(ledger: Ledger, on_invalid: Callable[[int, str], None] | None = None
                    ) -> Callable[[int, str, bytes | None], None]:
    """Fold one record through the Python reference; report it to `on_invalid` when it cannot be used."""

    def fold_one(i: int, topic: str, value: bytes | None) -> None:
        try:
            fact = read_fact(topic, value or b"")
        except ValueError as exc:
            if on_invalid is not None:
                on_invalid(i, str(exc))
            return
        if fact is not None:
            try:
                ledger.apply(fact)
            except Exception as exc:  # a fact the checks let through but the fold cannot use
                if on_invalid is not None:
                    on_invalid(i, f"fold failed: {type(exc).__name__}: {exc}")

    return fold_one


def fold_records(ledger: Ledger, records: Records, on_invalid: Callable[[int, str], None] | None = None,
                 *, native: bool | None = None) -> None:
    """Apply (topic, value) pairs to the ledger, in order. A record that cannot be decoded or folded never
    stops the fold: live folding dead-letters it (`on_invalid(index, error)`); a replay skips it (it was
    dead-lettered when it was first read live). `native` overrides SCORING_KERNEL (tests compare both)."""
    fold_one = python_fallback(ledger, on_invalid)
    native_folder = folder(ledger, fold_one, native=native)
    if native_folder is not None:
        native_folder.fold(records)
        return
    for i, (topic, value) in enumerate(records):
        fold_one(i, topic, value)
