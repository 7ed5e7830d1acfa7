"""The CloudEvents Kafka binding headers of a sandan message: one mapping, read back by the CloudEvents SDK."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary
from cloudevents.core.formats.json import JSONFormat
from contracts_support import golden_files

from sandan_contracts import EVENT_TYPES, Envelope, encode
from sandan_contracts.cloudevents import attributes, ce_type, headers, topic_family
from sandan_contracts.events import DemandWithdrawn, StarRatingChanged
from sandan_contracts.schemas import schema_id, schema_path

WHEN = datetime(2025, 3, 14, 1, 30, 0, 250_000, tzinfo=UTC)


def _message() -> bytes:
    event = DemandWithdrawn(demand_id="d-1", reason="resident_cancelled")
    return encode(event, event_id="intake:12", producer="intake", occurred_at=WHEN, correlation_id="c-9",
                  causation_id=None)


def test_the_mapping_of_one_message() -> None:
    raw = _message()
    assert dict(headers(raw)) == {
        "ce_specversion": b"1.0",
        "ce_id": b"intake:12",
        "ce_source": b"/sandan/intake",
        "ce_type": b"cn.sandan.intake.demands.DemandWithdrawn.v1",
        "ce_time": b"2025-03-14T01:30:00.250000Z",
        "ce_subject": b"d-1",
        "ce_dataschema": b"https://sandan.example.org/schemas/intake.demands.v1/DemandWithdrawn.v1.json",
        "content-type": b"application/json",
    }
    # the envelope parsed or its bytes: the same headers; ce_time is the value's occurred_at, character for character
    assert headers(Envelope.model_validate_json(raw)) == headers(raw)
    assert dict(headers(raw))["ce_time"].decode() == json.loads(raw)["occurred_at"]


def test_type_names_the_family_the_event_and_its_version() -> None:
    assert topic_family("scoring.points.v12") == "scoring.points"
    assert ce_type(StarRatingChanged.TOPIC, "StarRatingChanged", 1) == "cn.sandan.scoring.points.StarRatingChanged.v1"
    # (type, schema_version) is unique across topics, so is ce_type
    types = {ce_type(cls.TOPIC, cls.TYPE, cls.VERSION) for cls in EVENT_TYPES.values()}
    assert len(types) == len(EVENT_TYPES)


def test_every_dataschema_is_a_committed_schema_file_with_that_id() -> None:
    for cls in EVENT_TYPES.values():
        path = schema_path(schema_id(cls))
        assert json.loads(path.read_text("utf-8"))["$id"] == schema_id(cls)
    with pytest.raises(ValueError):
        schema_path("https://sandan.example.org/schemas/../../etc/passwd")


@pytest.mark.parametrize("path", golden_files(), ids=lambda p: p.name)
def test_the_cloudevents_sdk_reads_every_golden_message(path) -> None:
    raw = path.read_bytes()
    envelope = Envelope.model_validate_json(raw)
    record = KafkaMessage(headers={k: v for k, v in [("type", b"x"), *headers(raw)]}, key=envelope.key.encode(),
                          value=raw)
    event = from_binary(record, JSONFormat())
    assert event.get_id() == envelope.event_id
    assert event.get_type() == attributes(raw)["type"]
    assert event.get_source() == f"/sandan/{envelope.producer}"
    assert event.get_time() == envelope.occurred_at
    assert event.get_subject() == envelope.key
    assert event.get_data() == json.loads(raw)  # data is the whole envelope, unchanged
