"""The committed AsyncAPI 3.0 document is what the registry and the schemas generate, and it is valid.

Validity: against the AsyncAPI 3.0.0 JSON Schema, vendored from the npm package `@asyncapi/specs` 6.11.1
(`schemas/3.0.0-without-$id.json`, Apache-2.0) as `asyncapi-3.0.0.schema.json`; plus what that schema cannot see:
every `$ref` resolves (inside the document, or to a committed schema file beside it), every topic and event is
there with its key, partitions, retention and dead-letter topic.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from sandan_contracts import EVENT_TYPES, TOPICS
from sandan_contracts.asyncapi import DOCUMENT, generate, render
from sandan_contracts.cloudevents import ce_type
from sandan_contracts.schemas import SCHEMA_DIR, relative_path, schema_id

ASYNCAPI_SCHEMA = Path(__file__).with_name("asyncapi-3.0.0.schema.json")


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads(ASYNCAPI_SCHEMA.read_text("utf-8")))


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return json.loads(DOCUMENT.read_text("utf-8"))


def test_the_committed_document_is_fresh() -> None:
    assert DOCUMENT.read_text("utf-8") == render(generate()), "run `python -m sandan_contracts.asyncapi`"


def test_the_check_command_agrees() -> None:
    done = subprocess.run([sys.executable, "-m", "sandan_contracts.asyncapi", "--check"], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_it_is_valid_asyncapi_3(doc: dict[str, Any], validator: jsonschema.Draft7Validator) -> None:
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in validator.iter_errors(doc)]
    assert not errors, "\n".join(errors)
    assert doc["asyncapi"] == "3.0.0" and doc["info"]["title"] and doc["info"]["version"]


def test_the_validator_does_catch_a_broken_document(doc: dict[str, Any],
                                                    validator: jsonschema.Draft7Validator) -> None:
    broken = copy.deepcopy(doc)
    broken["operations"]["send.intake.demands.v1"]["action"] = "publish"  # AsyncAPI 2 wording
    del broken["servers"]["local"]["protocol"]
    assert len(list(validator.iter_errors(broken))) >= 2


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [node["$ref"]] if isinstance(node.get("$ref"), str) else [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_every_ref_resolves(doc: dict[str, Any]) -> None:
    refs = _refs(doc)
    assert refs
    for ref in refs:
        if ref.startswith("#/"):
            node: Any = doc
            for part in ref[2:].split("/"):
                node = node[part.replace("~1", "/").replace("~0", "~")]
        else:  # a schema file beside the document: a static file, the same layout as the schemas' $id
            target = DOCUMENT.parent / ref
            assert target.is_file(), ref
            assert json.loads(target.read_text("utf-8"))["$id"].endswith("/" + ref)


def test_every_topic_and_event_is_described(doc: dict[str, Any]) -> None:
    assert set(doc["channels"]) == set(TOPICS)
    for name, topic in TOPICS.items():
        channel = doc["channels"][name]
        kafka = channel["bindings"]["kafka"]
        assert channel["address"] == name and kafka["partitions"] == topic.partitions
        assert kafka["topicConfiguration"]["retention.ms"] == topic.retention_ms
        assert channel.get("x-sandan-dead-letter") == topic.dead_letter
        assert doc["operations"][f"send.{name}"]["channel"] == {"$ref": f"#/channels/{name}"}
    for cls in EVENT_TYPES.values():
        message = doc["components"]["messages"][f"{cls.TYPE}.v{cls.VERSION}"]
        assert f"{cls.TYPE}.v{cls.VERSION}" in doc["channels"][cls.TOPIC]["messages"]
        assert message["payload"]["schema"] == {"$ref": f"schemas/{relative_path(cls)}"}
        assert (SCHEMA_DIR / relative_path(cls)).is_file()
        headers = message["headers"]["properties"]
        assert headers["ce_type"]["const"] == ce_type(cls.TOPIC, cls.TYPE, cls.VERSION)
        assert headers["ce_dataschema"]["const"] == schema_id(cls)
        assert message["bindings"]["kafka"]["key"]["description"] == f"data.{cls.KEY}"


def test_the_examples_match_their_headers_schema(doc: dict[str, Any]) -> None:
    for message in doc["components"]["messages"].values():
        for example in message.get("examples", []):
            jsonschema.validate(example["headers"], message["headers"])
            target = DOCUMENT.parent / message["payload"]["schema"]["$ref"]
            jsonschema.Draft202012Validator(json.loads(target.read_text("utf-8"))).validate(example["payload"])
