"""(b) The compatibility checker, on schemas derived from real pydantic models defined here."""

from __future__ import annotations

import enum
from typing import ClassVar, Literal

import pytest
from pydantic import BaseModel, Field

from sandan_contracts import EVENT_TYPES
from sandan_contracts.events.base import Event, Id, UtcDatetime
from sandan_contracts.schemas import compatibility_problems, load_committed, message_schema, relative_path


def schema(model: type[BaseModel]) -> dict:
    if issubclass(model, Event):
        return message_schema(model)  # the full message, as committed
    return model.model_json_schema()


def problems(old: type[BaseModel], new: type[BaseModel]) -> list[str]:
    return compatibility_problems(schema(old), schema(new))


# ---- a synthetic event, version by version ----------------------------------------------------------------
class _Probe(Event):
    TYPE: ClassVar[str] = "ProbeHappened"
    TOPIC: ClassVar[str] = "probe.things.v1"
    KEY: ClassVar[str] = "thing_id"


class V1(_Probe):
    thing_id: Id
    count: int = Field(ge=0, le=100)
    size: Literal["small", "medium", "large"]
    note_code: str = Field(max_length=40)
    seen_at: UtcDatetime
    owner_id: Id | None = None


class RemovedField(_Probe):
    thing_id: Id
    count: int = Field(ge=0, le=100)
    size: Literal["small", "medium", "large"]
    seen_at: UtcDatetime
    owner_id: Id | None = None


class RetypedField(_Probe):
    thing_id: Id
    count: str  # was int
    size: Literal["small", "medium", "large"]
    note_code: str = Field(max_length=40)
    seen_at: UtcDatetime
    owner_id: Id | None = None


class AddedRequired(V1):
    weight_kg: float


class RemovedEnumValue(_Probe):
    thing_id: Id
    count: int = Field(ge=0, le=100)
    size: Literal["small", "medium"]
    note_code: str = Field(max_length=40)
    seen_at: UtcDatetime
    owner_id: Id | None = None


class AddedOptional(V1):
    colour: Literal["red", "blue"] | None = None
    tags: list[str] = Field(default_factory=list)
    urgent: bool = False


class WidenedEnumAndLimits(_Probe):
    thing_id: Id
    count: int = Field(ge=0, le=1000)
    size: Literal["small", "medium", "large", "huge"]
    note_code: str = Field(max_length=80)
    seen_at: UtcDatetime
    owner_id: Id | None = None


class NarrowedMaxLength(_Probe):
    thing_id: Id
    count: int = Field(ge=0, le=100)
    size: Literal["small", "medium", "large"]
    note_code: str = Field(max_length=20)
    seen_at: UtcDatetime
    owner_id: Id | None = None


class NarrowedRange(_Probe):
    thing_id: Id
    count: int = Field(ge=1, le=50)
    size: Literal["small", "medium", "large"]
    note_code: str = Field(max_length=40)
    seen_at: UtcDatetime
    owner_id: Id | None = None


class NotNullableAnyMore(_Probe):
    thing_id: Id
    count: int = Field(ge=0, le=100)
    size: Literal["small", "medium", "large"]
    note_code: str = Field(max_length=40)
    seen_at: UtcDatetime
    owner_id: Id = "nobody"


class NowRequired(_Probe):
    thing_id: Id
    count: int = Field(ge=0, le=100)
    size: Literal["small", "medium", "large"]
    note_code: str = Field(max_length=40)
    seen_at: UtcDatetime
    owner_id: Id | None


class PlainString(_Probe):
    thing_id: Id
    count: int = Field(ge=0, le=100)
    size: Literal["small", "medium", "large"]
    note_code: str = Field(max_length=40)
    seen_at: str  # was a date-time
    owner_id: Id | None = None


class TypeRenamed(_Probe):
    TYPE: ClassVar[str] = "ProbeOccurred"
    thing_id: Id
    count: int = Field(ge=0, le=100)
    size: Literal["small", "medium", "large"]
    note_code: str = Field(max_length=40)
    seen_at: UtcDatetime
    owner_id: Id | None = None


def test_identical_models_are_compatible() -> None:
    assert problems(V1, V1) == []


def test_removing_a_field_is_breaking() -> None:
    assert problems(V1, RemovedField) == ["data.note_code: property removed"]


def test_retyping_a_field_is_breaking() -> None:
    assert problems(V1, RetypedField) == ["data.count: type changed from integer to string"]


def test_adding_a_required_field_is_breaking() -> None:
    assert problems(V1, AddedRequired) == ["data.weight_kg: new required property"]


def test_removing_an_enum_value_is_breaking() -> None:
    assert problems(V1, RemovedEnumValue) == ['data.size: enum values removed: "large" no longer allowed']


def test_an_additive_optional_field_is_fine() -> None:
    assert problems(V1, AddedOptional) == []


def test_widening_an_enum_or_a_limit_is_fine_but_narrowing_back_is_not() -> None:
    assert problems(V1, WidenedEnumAndLimits) == []
    assert sorted(problems(WidenedEnumAndLimits, V1)) == [
        "data.count: maximum narrowed from 1000 to 100",
        "data.note_code: maxLength narrowed from 80 to 40",
        'data.size: enum values removed: "huge" no longer allowed',
    ]


def test_narrowing_constraints_is_breaking() -> None:
    assert problems(V1, NarrowedMaxLength) == ["data.note_code: maxLength narrowed from 40 to 20"]
    assert sorted(problems(V1, NarrowedRange)) == [
        "data.count: maximum narrowed from 100 to 50",
        "data.count: minimum narrowed from 0 to 1",
    ]


def test_nullability_is_part_of_the_type() -> None:
    assert problems(V1, NotNullableAnyMore) == ["data.owner_id: type changed from null|string to string"]
    assert problems(NotNullableAnyMore, V1) == ["data.owner_id: type changed from string to null|string"]


def test_an_optional_field_becoming_required_is_breaking() -> None:
    assert problems(V1, NowRequired) == ["data.owner_id: property is now required"]
    assert problems(NowRequired, V1) == []  # relaxing is fine


def test_format_is_part_of_the_type() -> None:
    assert problems(V1, PlainString) == ["data.seen_at: format changed from 'date-time' to None"]


def test_the_type_const_is_checked() -> None:
    assert problems(V1, TypeRenamed) == ['type: const changed: "ProbeHappened" no longer allowed']


# ---- $ref / $defs, as pydantic emits them for nested models and Enum classes ---------------------------
class Colour(enum.StrEnum):
    RED = "red"
    GREEN = "green"
    BLUE = "blue"


class FewerColours(enum.StrEnum):
    RED = "red"
    GREEN = "green"


class Place(BaseModel):
    grid_id: str
    floor: int


class PlaceWithoutFloor(BaseModel):
    grid_id: str


class PlaceWithFloorText(BaseModel):
    grid_id: str
    floor: str


class Refs1(BaseModel):
    colour: Colour
    place: Place
    previous: Place | None = None
    places: list[Place] = []


class Refs2FewerColours(BaseModel):
    colour: FewerColours
    place: Place
    previous: Place | None = None
    places: list[Place] = []


class Refs2NestedRemoved(BaseModel):
    colour: Colour
    place: PlaceWithoutFloor
    previous: PlaceWithoutFloor | None = None
    places: list[PlaceWithoutFloor] = []


class Refs2NestedRetyped(BaseModel):
    colour: Colour
    place: Place
    previous: Place | None = None
    places: list[PlaceWithFloorText] = []


def test_models_really_use_refs() -> None:
    s = schema(Refs1)
    assert set(s["$defs"]) == {"Colour", "Place"}
    assert s["properties"]["previous"]["anyOf"][0] == {"$ref": "#/$defs/Place"}


def test_enum_values_removed_behind_a_ref() -> None:
    assert problems(Refs1, Refs2FewerColours) == ['colour: enum values removed: "blue" no longer allowed']


def test_nested_property_removed_behind_refs_and_nullable_and_arrays() -> None:
    assert problems(Refs1, Refs2NestedRemoved) == [
        "place.floor: property removed",
        "previous.floor: property removed",
        "places[].floor: property removed",
    ]


def test_nested_retype_inside_array_items() -> None:
    assert problems(Refs1, Refs2NestedRetyped) == ["places[].floor: type changed from integer to string"]


class Tree(BaseModel):
    label: str
    children: list[Tree] = []


class Tree2(BaseModel):
    label: int
    children: list[Tree2] = []


def test_recursive_definitions_terminate() -> None:
    assert problems(Tree, Tree) == []
    assert problems(Tree, Tree2) == ["label: type changed from string to integer"]


class UnionOld(BaseModel):
    value: int | str


class UnionNarrowed(BaseModel):
    value: int


class UnionReordered(BaseModel):
    value: str | int


def test_general_unions() -> None:
    assert problems(UnionOld, UnionNarrowed) == ["value: type changed from integer|string to integer"]
    assert problems(UnionOld, UnionReordered) == []


# ---- the real contract --------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", list(EVENT_TYPES.values()), ids=lambda c: c.TYPE)
def test_every_committed_event_schema_is_compatible_with_itself(cls) -> None:
    import json

    committed = json.loads(load_committed()[relative_path(cls)])
    assert compatibility_problems(committed, message_schema(cls)) == []


def test_problems_name_the_path_for_humans() -> None:
    found = problems(V1, RemovedField)
    assert all(": " in p and p.split(":")[0].startswith("data.") for p in found)
