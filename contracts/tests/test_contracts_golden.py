"""(c) Golden messages: frozen samples of every event, decoded and schema-validated in CI.

A golden file is never regenerated: it is what a v1 producer once wrote, so a model change that cannot read it
any more is a breaking change. `<Type>.v<version>.json` is the canonical sample of each event;
`<Type>.v<version>.<variant>.json` are extra samples (e.g. a newer producer's unknown fields).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import jsonschema
import pytest
from contracts_support import committed_schema, golden_files, validator

from sandan_contracts import EVENT_TYPES, Envelope, decode, encode, topic_for
from sandan_contracts.events import DemandPosted
from sandan_contracts.schemas import SCHEMA_DIR

GOLDEN = golden_files()


def _type_and_version(path: Path) -> tuple[str, int]:
    type_name, version = path.name.split(".")[:2]
    return type_name, int(version.removeprefix("v"))


def test_every_event_has_a_canonical_golden_file() -> None:
    canonical = {_type_and_version(p) for p in GOLDEN if len(p.name.split(".")) == 3}
    assert canonical == set(EVENT_TYPES)


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.name)
def test_golden_decodes_to_the_right_model(path: Path) -> None:
    type_name, version = _type_and_version(path)
    envelope, event = decode(path.read_bytes())
    assert type(event) is EVENT_TYPES[(type_name, version)]
    assert (envelope.type, envelope.schema_version) == (type_name, version)
    assert envelope.key == event.key()
    assert envelope.occurred_at.utcoffset().total_seconds() == 0
    assert envelope.producer == topic_for(event).owner  # one writer per topic
    assert envelope.event_id.startswith(f"{envelope.producer}:")


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.name)
def test_golden_validates_against_its_committed_schema(path: Path) -> None:
    type_name, version = _type_and_version(path)
    cls = EVENT_TYPES[(type_name, version)]
    message = json.loads(path.read_text("utf-8"))
    validator(committed_schema(cls.TOPIC, type_name, version)).validate(message)


@pytest.mark.parametrize("path", [p for p in GOLDEN if len(p.name.split(".")) == 3], ids=lambda p: p.name)
def test_canonical_golden_is_what_encode_writes(path: Path) -> None:
    """Re-encoding the decoded event gives back the golden message: nothing is lost or renamed."""
    golden = json.loads(path.read_text("utf-8"))
    envelope, event = decode(path.read_bytes())
    again = encode(
        event,
        event_id=envelope.event_id,
        producer=envelope.producer,
        occurred_at=envelope.occurred_at,
        correlation_id=envelope.correlation_id,
        causation_id=envelope.causation_id,
    )
    written = json.loads(again)
    # Fields added to the model since the golden was frozen (additive, optional: README "Versioning rules") are
    # written at their defaults; anything else must come back exactly as it was.
    for name in set(written["data"]) - set(golden["data"]):
        field = type(event).model_fields[name]
        assert not field.is_required(), f"{path.name}: {name} is new and required"
        assert written["data"].pop(name) == field.get_default(call_default_factory=True), name
    assert written == golden


def test_special_care_reads_the_same_from_old_tags_and_the_new_flag() -> None:
    """Producers now send `care_tags: []` and `special_care`; readers take `special_care or bool(care_tags)`, so
    a fact written before the change means what the same fact written after it means."""
    for type_name in ("DemandPosted", "OrderOpened"):
        old = decode(next(p for p in GOLDEN if p.name == f"{type_name}.v1.json").read_bytes())[1]
        new = decode(next(p for p in GOLDEN if p.name == f"{type_name}.v1.special-care.json").read_bytes())[1]
        assert (old.care_tags, old.special_care) == (["elderly_alone"], False)
        assert (new.care_tags, new.special_care) == ([], True)
        assert (old.special_care or bool(old.care_tags)) == (new.special_care or bool(new.care_tags)) is True


def test_unknown_fields_are_ignored_by_the_tolerant_reader() -> None:
    path = next(p for p in GOLDEN if p.name == "DemandPosted.v1.unknown-fields.json")
    raw = json.loads(path.read_text("utf-8"))
    extra_envelope = set(raw) - set(Envelope.model_fields)
    extra_data = set(raw["data"]) - set(DemandPosted.model_fields)
    assert extra_envelope and extra_data, "the fixture must carry unknown fields in both places"

    _, event = decode(path.read_bytes())
    assert isinstance(event, DemandPosted)
    assert not extra_data & set(event.model_dump())
    assert event.deadline_seconds == raw["data"]["deadline_seconds"]
    # the committed schema is open too, so a schema-validating reader is just as tolerant
    validator(committed_schema(DemandPosted.TOPIC, "DemandPosted", 1)).validate(raw)


def test_schemas_reject_what_decode_rejects() -> None:
    """The JSON Schema is not just decoration: it rejects the same bad messages for non-Python readers."""
    message = json.loads(next(p for p in GOLDEN if p.name == "ServiceRated.v1.json").read_text("utf-8"))
    check = validator(committed_schema("intake.demands.v1", "ServiceRated", 1))
    for mutate in (
        lambda m: m["data"].update(stars=6),
        lambda m: m["data"].pop("stars"),
        lambda m: m.update(type="DemandPosted"),
        lambda m: m.update(schema_version=2),
        lambda m: m.update(occurred_at="yesterday"),
        lambda m: m["data"].update(demand_id="has space"),
        lambda m: m.pop("correlation_id"),
    ):
        bad = json.loads(json.dumps(message))
        mutate(bad)
        with pytest.raises(jsonschema.ValidationError):
            check.validate(bad)
        with pytest.raises(ValueError):
            decode(json.dumps(bad).encode())


def test_golden_timestamps_are_utc_z() -> None:
    for path in GOLDEN:
        message = json.loads(path.read_text("utf-8"))
        stamps = [message["occurred_at"]] + [v for k, v in message["data"].items() if k.endswith("_at")]
        for stamp in stamps:
            assert stamp.endswith("Z"), f"{path.name}: {stamp}"
            assert datetime.fromisoformat(stamp).utcoffset().total_seconds() == 0


def test_schema_dir_has_no_orphans() -> None:
    topics = {p.name for p in SCHEMA_DIR.iterdir() if p.is_dir()}
    assert topics == {cls.TOPIC for cls in EVENT_TYPES.values()}


def test_a_fact_names_who_caused_it_by_an_opaque_subject_and_reads_the_same_without() -> None:
    with_actor = next(p for p in GOLDEN if p.name == "DemandPosted.v1.with-actor.json")
    without = next(p for p in GOLDEN if p.name == "DemandPosted.v1.json")
    envelope, event = decode(with_actor.read_bytes())
    assert envelope.actor == "9b2f6c1e-4d3a-4f7b-8e21-0c5d7a9f3b64"
    assert decode(without.read_bytes())[0].actor is None
    assert event == decode(without.read_bytes())[1]
    for bad in ("", "a b", "名字", "x" * 201):
        raw = json.loads(with_actor.read_text("utf-8"))
        raw["actor"] = bad
        with pytest.raises(ValueError, match="actor"):
            decode(json.dumps(raw).encode())
