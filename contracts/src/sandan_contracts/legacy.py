"""Records written before `special_care`, rewritten without their care tags: the one-off copy of an event topic
to its `.v2` (contracts/README.md, "Old records with care tags"). Pure functions over a record's value and
headers; the operator's copy loop around them is in that section.

Which special care a resident needs is sensitive personal information (PIPL art. 28). Readers already take
`special_care or bool(care_tags)`, so a copy saying `special_care: true, care_tags: []` means the same to every
reader and names no group.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

# The events that carried the deprecated field.
TAGGED_TYPES = frozenset({"DemandPosted", "OrderOpened"})
COPIED_FROM = "sandan_copied_from"  # header on a copied record: "<old topic>:<partition>:<offset>", to resume


def without_care_tags(value: bytes | None) -> bytes | None:
    """The value with its care tags removed (`care_tags: []`, `special_care: true`), every other field and their
    order kept; None when there are none to remove (copy the record as it is, byte for byte), including values
    that are no event at all (not this copy's business)."""
    try:
        envelope = json.loads(value or b"")
        data = envelope["data"]
        tagged = envelope["type"] in TAGGED_TYPES and bool(data.get("care_tags"))
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    if not tagged:
        return None
    data["care_tags"], data["special_care"] = [], True
    # compact and unescaped, as the encoder writes (the readers' fast paths expect that shape)
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()


def moved_headers(headers: Iterable[tuple[str, bytes]], old_topic: str, new_topic: str, partition: int,
                  offset: int) -> list[tuple[str, bytes]]:
    """The record's headers on the new topic: `ce_dataschema` names the new topic's schema (the only header that
    names the topic), and `sandan_copied_from` says which record it is a copy of."""
    out = []
    for name, value in headers:
        if name == COPIED_FROM:
            continue  # a copy of a copy names its own source
        if name == "ce_dataschema":
            value = value.replace(f"/{old_topic}/".encode(), f"/{new_topic}/".encode())
        out.append((name, value))
    return [*out, (COPIED_FROM, f"{old_topic}:{partition}:{offset}".encode())]
