"""(g) Published events carry no personal data: no field named like it, and no unconstrained free text.

Residents' names, phones, addresses, ID cards, descriptions and comments stay in intake's store; members'
contacts in dispatch's. Receivers that need them make an authorised gRPC call.
"""

from __future__ import annotations

import re

import pytest
from pydantic import BaseModel

from sandan_contracts import EVENT_TYPES
from sandan_contracts.schemas import message_schema

PERSONAL = ("name", "phone", "mobile", "address", "description", "comment", "note", "remark",
            "id_card", "idcard", "id_number", "email", "wechat", "birth")

# (event type, field) -> why it is allowed
ALLOWED_NAMES = {
    ("UnitReported", "unit_name"): "an organisation's public name, not a person's",
}
# String fields without a pattern/enum/format can carry anything a person types.
ALLOWED_FREE_TEXT = {
    ("UnitReported", "unit_name"): "an organisation's public name, max 100 chars",
    ("ActivityScheduled", "title"): "the organising unit's public title of an activity, max 100 chars",
}


def _tokens(field: str) -> list[str]:
    return [t for t in re.split(r"[_\W]+", field.lower()) if t]


def personal_fields(model: type[BaseModel]) -> list[str]:
    """Fields named like personal data. A bool flag (has_comment) only says such data exists elsewhere."""
    found = []
    for field, info in model.model_fields.items():
        if info.annotation is bool:
            continue
        lowered = field.lower()
        if any(word in _tokens(field) or word in lowered for word in PERSONAL):
            found.append(field)
    return found


def free_text_fields(cls) -> list[str]:
    data = message_schema(cls)["properties"]["data"]
    found = []
    for field, prop in data["properties"].items():
        variants = prop.get("anyOf", [prop])
        for variant in variants:
            target = variant.get("items", variant) if variant.get("type") == "array" else variant
            if target.get("type") == "string" and not ({"pattern", "enum", "const", "format"} & set(target)):
                found.append(field)
                break
    return found


@pytest.mark.parametrize("cls", list(EVENT_TYPES.values()), ids=lambda c: c.TYPE)
def test_no_field_named_like_personal_data(cls) -> None:
    flagged = [f for f in personal_fields(cls) if (cls.TYPE, f) not in ALLOWED_NAMES]
    assert flagged == [], f"{cls.TYPE} publishes {flagged}: personal data must stay behind the owning service"


@pytest.mark.parametrize("cls", list(EVENT_TYPES.values()), ids=lambda c: c.TYPE)
def test_no_unconstrained_free_text(cls) -> None:
    flagged = [f for f in free_text_fields(cls) if (cls.TYPE, f) not in ALLOWED_FREE_TEXT]
    assert flagged == [], f"{cls.TYPE}.{flagged} is free text: use an Id, a Code or an enum"


def test_allow_lists_do_not_rot() -> None:
    known = {(c.TYPE, f) for c in EVENT_TYPES.values() for f in c.model_fields}
    assert set(ALLOWED_NAMES) <= known
    assert set(ALLOWED_FREE_TEXT) <= known


def test_the_detectors_catch_personal_fields() -> None:
    from typing import ClassVar

    from sandan_contracts.events.base import Event, Id

    class Leaky(Event):
        TYPE: ClassVar[str] = "Leaky"
        TOPIC: ClassVar[str] = "probe.leaks.v1"
        KEY: ClassVar[str] = "demand_id"
        demand_id: Id
        resident_name: str
        phoneNumber: str
        home_address: str | None = None
        description: str = ""
        comment_text: str = ""
        id_card: str = ""
        has_comment: bool = False

    assert personal_fields(Leaky) == ["resident_name", "phoneNumber", "home_address", "description",
                                      "comment_text", "id_card"]
    assert free_text_fields(Leaky) == ["resident_name", "phoneNumber", "home_address", "description",
                                       "comment_text", "id_card"]
