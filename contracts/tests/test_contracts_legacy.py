"""The one-off copy of records written before `special_care`: tags removed, the meaning and everything else kept."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from contracts_support import GOLDEN_DIR

from sandan_contracts import cloudevents, decode, encode
from sandan_contracts.events import EVENT_TYPES, DemandPosted, ServiceRated
from sandan_contracts.legacy import COPIED_FROM, TAGGED_TYPES, moved_headers, without_care_tags

AT = datetime(2025, 3, 14, 1, 30, tzinfo=UTC)
TAGS = ["elderly_alone", "left_behind_child", "disabled", "student_hardship"]


def posted(tags: list[str], special_care: bool = False) -> bytes:
    return encode(DemandPosted(demand_id="d-1", community_id="c-1", grid_id="g-1", category="medical",
                               urgency="normal", care_tags=tags, special_care=special_care, channel="app",
                               due_at=AT, deadline_seconds=3600),
                  event_id="intake:7", producer="intake", occurred_at=AT, correlation_id="c-9", causation_id=None)


@pytest.mark.parametrize("golden", ["DemandPosted.v1.json", "DemandPosted.v1.with-actor.json",
                                    "DemandPosted.v1.unknown-fields.json", "OrderOpened.v1.json"])
def test_an_old_tagged_record_keeps_its_meaning_and_everything_else(golden: str) -> None:
    raw = (GOLDEN_DIR / golden).read_bytes()
    before_envelope, before = decode(raw)
    assert before.care_tags and not before.special_care  # written before the flag
    copied = without_care_tags(raw)
    assert copied is not None
    envelope, event = decode(copied)  # the contract reads the copy
    assert (event.care_tags, event.special_care) == ([], True)
    assert event.special_care == (before.special_care or bool(before.care_tags))  # what every reader took
    assert event.model_dump(exclude={"care_tags", "special_care"}) == before.model_dump(
        exclude={"care_tags", "special_care"})
    assert envelope.model_dump(exclude={"data"}) == before_envelope.model_dump(exclude={"data"})
    old, new = json.loads(raw), json.loads(copied)
    assert [k for k in new if k != "data"] == [k for k in old if k != "data"]  # order kept
    assert {k: v for k, v in new["data"].items() if k not in ("care_tags", "special_care")} == {
        k: v for k, v in old["data"].items() if k not in ("care_tags", "special_care")}  # unknown fields too
    assert not [tag for tag in TAGS if tag.encode() in copied]


def test_every_tag_and_both_tagged_types_are_removed_in_the_encoders_shape() -> None:
    for tags in ([TAGS[0]], TAGS, TAGS[::-1]):
        copied = without_care_tags(posted(tags, special_care=True))
        assert copied == posted([], special_care=True)  # byte for byte what the encoder writes now
    assert {t for (t, _), model in EVENT_TYPES.items() if "care_tags" in model.model_fields} == TAGGED_TYPES


@pytest.mark.parametrize("value", [
    posted([]),  # written since: nothing to remove
    posted([], special_care=True),
    encode(ServiceRated(demand_id="d-1", stars=4), event_id="intake:8", producer="intake", occurred_at=AT,
           correlation_id="c-9", causation_id=None),
    b'{"type":"DemandPosted","data":{"care_tags":"elderly_alone"},', b"not json", b"[]", b"", None,
    b'{"type":"DemandPosted","data":[]}', b'{"data":{"care_tags":["disabled"]}}',
])
def test_anything_else_is_copied_as_it_is(value: bytes | None) -> None:
    assert without_care_tags(value) is None


def test_the_headers_name_the_new_topic_and_the_source_record() -> None:
    trace = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    headers = [*cloudevents.headers(posted(["disabled"])), ("traceparent", trace)]
    moved = moved_headers(headers, "intake.demands.v1", "intake.demands.v2", 3, 41)
    assert dict(moved)["ce_dataschema"] == (
        b"https://sandan.example.org/schemas/intake.demands.v2/DemandPosted.v1.json")
    assert [(k, v) for k, v in moved if k not in ("ce_dataschema", COPIED_FROM)] == [
        (k, v) for k, v in headers if k != "ce_dataschema"]
    assert moved[-1] == (COPIED_FROM, b"intake.demands.v1:3:41")
    again = moved_headers(moved, "intake.demands.v2", "intake.demands.v3", 0, 5)  # a copy of a copy
    assert [v for k, v in again if k == COPIED_FROM] == [b"intake.demands.v2:0:5"]
