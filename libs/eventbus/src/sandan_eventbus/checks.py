"""The input policy, in one place: every value a request or a command brings is checked here, with the shapes the
published contract accepts, so that nothing a service stores can fail to publish. Pure: domain modules use it.

Free text is NFC-normalised and stripped; control characters (C0, DEL, C1; newline and tab are allowed only in
multi-line text) and bidirectional override/isolate characters (U+202A-U+202E, U+2066-U+2069) are refused.
Refusals are `InvalidArgument` naming the field, and never repeat the input (at most a short prefix, `quote`).

Every string field of every gRPC request, by name (the same name means the same thing in every service). The gRPC
edge (`sandan_eventbus.edge`) enforces the character policy and the "at most" column on every request before a
servicer runs; the services check the shape, what is required, and the finer bounds.

| field | kind | at most |
|---|---|---|
| activity_id, community_id, grid_id, item_id, menu_item_id, member_id, unit_id, scope_id, recipient_id | id | 64 |
| demand_id | id (intake: a uuid it issued) | 64 |
| order_id | uuid (issued by dispatch) | 64 |
| before | a page cursor: the last id of the previous page (ListResidentDemands: a demand id) | 64 |
| resident_id | uuid (issued by intake's RegisterResident) | 64 |
| client_request_id | single-line text, 1-100 | 100 |
| category, team, theme, reason, template | code | 40 |
| urgency, channel, dispatched_by, status, recipient_kind, language | choice | 40 |
| rule_set_version | version | 40 |
| quarter | `2026Q4` | 6 |
| source_event_id | ref (an event id) | 200 |
| starts_at, ends_at | RFC 3339 timestamp | 40 |
| quiet_start, quiet_end | `HH:MM` | 5 |
| name, unit_name, title, other_text | single-line text | 100 |
| address | single-line text | 200 |
| description (5-500), comment, notes, note | multi-line text | 500, 300, 1000, 500 |
| phone | `+`, digits, spaces, `-` (3-30) | 30 |
| email, contact_email | e-mail address | 254 |
| wechat_openid | letters, digits, `_`, `-` (6-64) | 64 |
| webhook_url | http(s) URL without credentials | 500 |
| teams, skills, care_tags, joint_meeting_units, channels | lists of codes/ids/choices | 10, 20, 10, 50, 5 items |
| public_name | single-line text (a member's display name on the public notice board) | 20 |
| member_ids, unit_ids | lists of ids (PublicNames) | 500 items |

A field not named here gets `DEFAULT_LIMIT` (single-line, 200).
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pydantic import StringConstraints

from sandan_contracts.events.base import Code, Id, Ref, Version
from sandan_eventbus.errors import InvalidArgument

T = TypeVar("T")

# ---- characters ---------------------------------------------------------------------------------------
# C0 controls, DEL, C1 controls; bidi embeddings/overrides (U+202A-U+202E) and isolates (U+2066-U+2069), which
# can make displayed text read differently from what is stored.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_MULTILINE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_BIDI = re.compile(r"[\u202a-\u202e\u2066-\u2069]")
QUOTE_CHARS = 40


def quote(value: object, limit: int = QUOTE_CHARS) -> str:
    """A value as an error message may show it: at most `limit` characters, control characters escaped."""
    text = str(value)
    short = text[:limit] + ("…" if len(text) > limit else "")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", short)


def check_characters(field: str, value: str, *, multiline: bool = False) -> str:
    """Refuse control and bidi override characters, naming the first one and where it is (never the text)."""
    control = (_CONTROL_MULTILINE if multiline else _CONTROL).search(value)
    if control:
        allowed = " (newline and tab are allowed)" if multiline else ""
        raise InvalidArgument(field, f"must not contain control characters{allowed}: "
                                     f"U+{ord(control.group()):04X} at position {control.start()}")
    bidi = _BIDI.search(value)
    if bidi:
        raise InvalidArgument(field, "must not contain bidirectional override or isolate characters: "
                                     f"U+{ord(bidi.group()):04X} at position {bidi.start()}")
    return value


def normalised(value: str) -> str:
    """NFC, so the same words typed on different keyboards are stored (and compared) as the same text."""
    return value if value.isascii() else unicodedata.normalize("NFC", value)


def check_text(field: str, value: str | None, low: int, high: int, *, multiline: bool = False) -> str:
    """Free text: NFC-normalised, stripped, no control or bidi override characters, `low` to `high` characters."""
    raw = value or ""
    if len(raw) > 4 * high + 64:  # far over the limit: refuse before normalising a megabyte
        raise InvalidArgument(field, f"must be {low} to {high} characters")
    text = check_characters(field, normalised(raw), multiline=multiline).strip()  # checked before strip()
    if not low <= len(text) <= high:
        raise InvalidArgument(field, f"must be {low} to {high} characters")
    return text


# ---- contract shapes ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Shape:
    """A string type of the contract: its pattern and length bounds, read from the contract's own annotation."""

    pattern: re.Pattern[str]
    min_length: int
    max_length: int

    @classmethod
    def of(cls, annotated: Any) -> Shape:
        constraints = next(m for m in annotated.__metadata__ if isinstance(m, StringConstraints))
        # fullmatch without the anchors: Python's `$` also matches before a final newline, the contract's does not
        pattern = constraints.pattern.removeprefix("^").removesuffix("$")
        return cls(re.compile(pattern), constraints.min_length or 0, constraints.max_length or 0)

    def matches(self, value: str | None) -> bool:
        return (isinstance(value, str) and self.min_length <= len(value) <= self.max_length
                and self.pattern.fullmatch(value) is not None)


ID, CODE, VERSION, REF = Shape.of(Id), Shape.of(Code), Shape.of(Version), Shape.of(Ref)


def _shaped(shape: Shape, field: str, value: str | None, message: str) -> str:
    if not shape.matches(value):
        raise InvalidArgument(field, message)
    return value  # type: ignore[return-value]  # matches() proved it is a str


def check_id(field: str, value: str | None) -> str:
    return _shaped(ID, field, value, "must be an id: 1-64 letters, digits, '_', '.', ':' or '-'")


def check_code(field: str, value: str | None) -> str:
    return _shaped(CODE, field, value, "must be a lowercase code like medical or legal_aid")


def check_version(field: str, value: str | None) -> str:
    return _shaped(VERSION, field, value, "must be a version: 1-40 letters, digits, '_', '.' or '-'")


def check_ref(field: str, value: str | None) -> str:
    return _shaped(REF, field, value, "must be an event id: 1-200 letters, digits, '_', '.', ':' or '-'")


def check_uuid(field: str, value: str | uuid.UUID | None, what: str = "a uuid") -> uuid.UUID:
    """An id this system issues as a uuid (a demand, an order, a resident): refused if it cannot be one."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        if not isinstance(value, str) or len(value) > 45:  # the longest spelling uuid.UUID accepts
            raise ValueError(value)
        return uuid.UUID(value)
    except ValueError:
        raise InvalidArgument(field, f"must be {what}") from None


def check_choice(field: str, value: str | None, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise InvalidArgument(field, f"must be one of {', '.join(choices)}")
    return value


def check_many(field: str, values: Iterable[T], limit: int, check: Callable[[str, T], T]) -> list[T]:
    """A list: at most `limit` entries, each checked (a stored fact the relay could not publish would stall it)."""
    items = list(values)
    if len(items) > limit:
        raise InvalidArgument(field, f"at most {limit} entries")
    return [check(field, v) for v in items]


def check_utc(field: str, value: datetime) -> datetime:
    """An aware timestamp, normalised to UTC (the contract publishes UTC only)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidArgument(field, "must include a UTC offset (e.g. Z or +08:00)")
    return value.astimezone(UTC)


# ---- contacts (personal data, kept by the owning service, never published) ---------------------------
_PHONE = re.compile(r"\+?[0-9][0-9 -]{2,29}")
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s.]+")
_OPENID = re.compile(r"[A-Za-z0-9_-]{6,64}")


def check_phone(field: str, value: str) -> str:
    if not _PHONE.fullmatch(value):
        raise InvalidArgument(field, "must be 3 to 30 digits, spaces or '-', optionally after '+'")
    return value


def check_email(field: str, value: str) -> str:
    if len(value) > 254 or not _EMAIL.fullmatch(value):
        raise InvalidArgument(field, "must be an email address like name@example.org")
    return value


def check_openid(field: str, value: str) -> str:
    if not _OPENID.fullmatch(value):
        raise InvalidArgument(field, "must be 6 to 64 letters, digits, '_' or '-'")
    return value


def check_webhook_url(field: str, value: str) -> str:
    try:
        parts = urlsplit(value)
        ok = (len(value) <= 500 and value.isprintable() and not any(ch.isspace() for ch in value)
              and parts.scheme in ("http", "https") and bool(parts.hostname)
              and parts.username is None and parts.password is None)
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError:
        ok = False
    if not ok:
        raise InvalidArgument(field, "must be an http or https URL without credentials, at most 500 characters")
    return value


# ---- the edge's table (see the module docstring) ----------------------------------------------------
@dataclass(frozen=True)
class Limit:
    """What the gRPC edge enforces on a string field before any servicer runs."""

    max_chars: int
    multiline: bool = False
    max_items: int | None = None  # for repeated fields


DEFAULT_LIMIT = Limit(200)
_IDS = ("activity_id", "community_id", "grid_id", "item_id", "menu_item_id", "member_id", "unit_id", "scope_id",
        "recipient_id", "demand_id", "order_id", "resident_id", "before")
_WORDS = ("category", "team", "theme", "reason", "template", "urgency", "channel", "dispatched_by", "status",
          "recipient_kind", "language", "rule_set_version")
LIMITS: dict[str, Limit] = {
    **{name: Limit(ID.max_length) for name in _IDS},
    **{name: Limit(CODE.max_length) for name in _WORDS},
    "client_request_id": Limit(100), "quarter": Limit(6), "source_event_id": Limit(REF.max_length),
    "starts_at": Limit(40), "ends_at": Limit(40), "quiet_start": Limit(5), "quiet_end": Limit(5),
    "name": Limit(100), "unit_name": Limit(100), "title": Limit(100), "other_text": Limit(100), "address": Limit(200),
    "description": Limit(500, multiline=True), "comment": Limit(300, multiline=True),
    "notes": Limit(1000, multiline=True), "note": Limit(500, multiline=True),
    "phone": Limit(30), "email": Limit(254), "contact_email": Limit(254), "wechat_openid": Limit(64),
    "webhook_url": Limit(500),
    "teams": Limit(CODE.max_length, max_items=10), "skills": Limit(CODE.max_length, max_items=20),
    "care_tags": Limit(CODE.max_length, max_items=10), "channels": Limit(CODE.max_length, max_items=5),
    "joint_meeting_units": Limit(ID.max_length, max_items=50),
    "public_name": Limit(20),
    "member_ids": Limit(ID.max_length, max_items=500), "unit_ids": Limit(ID.max_length, max_items=500),
}


def limit_of(field_name: str) -> Limit:
    return LIMITS.get(field_name, DEFAULT_LIMIT)


def check_request_text(path: str, value: str, limit: Limit) -> str:
    """The edge's check of one string of a request: NFC, the character policy, the maximum. Returns the NFC text."""
    if len(value) > 4 * limit.max_chars + 64:  # refuse a megabyte before normalising it
        raise InvalidArgument(path, f"must be at most {limit.max_chars} characters")
    text = normalised(value)
    check_characters(path, text, multiline=limit.multiline)
    if len(text) > limit.max_chars:
        raise InvalidArgument(path, f"must be at most {limit.max_chars} characters")
    return text
