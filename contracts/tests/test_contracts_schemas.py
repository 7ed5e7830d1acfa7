"""(a) The committed JSON Schemas are exactly what the models generate, and the check command agrees."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sandan_contracts import EVENT_TYPES
from sandan_contracts.schemas import (
    SCHEMA_DIR,
    check,
    committed_at,
    generate,
    load_committed,
    message_schema,
    relative_path,
    render,
    write,
)


def test_committed_schemas_equal_generated() -> None:
    committed = load_committed()
    generated = {rel: render(schema) for rel, schema in generate().items()}
    assert sorted(committed) == sorted(generated), "run `python -m sandan_contracts.schemas write`"
    for rel, text in generated.items():
        assert committed[rel] == text, f"{rel} is stale: run `python -m sandan_contracts.schemas write`"


def test_one_schema_per_event_at_topic_type_version() -> None:
    expected = {f"{cls.TOPIC}/{cls.TYPE}.v{cls.VERSION}.json" for cls in EVENT_TYPES.values()}
    assert set(load_committed()) == expected
    assert len(expected) == len(EVENT_TYPES)


@pytest.mark.parametrize("cls", list(EVENT_TYPES.values()), ids=lambda c: c.TYPE)
def test_schema_is_the_envelope_around_the_event(cls) -> None:
    schema = json.loads((SCHEMA_DIR / relative_path(cls)).read_text("utf-8"))
    props = schema["properties"]
    assert props["type"]["const"] == cls.TYPE
    assert props["schema_version"]["const"] == cls.VERSION
    assert set(props) == {"event_id", "type", "schema_version", "occurred_at", "producer", "key",
                          "correlation_id", "causation_id", "actor", "data"}
    assert "actor" not in schema["required"]  # optional: facts published before it, and by no person, lack it
    assert props["data"]["title"] == cls.__name__
    assert set(props["data"]["properties"]) == set(cls.model_fields)
    assert schema["x-topic"] == cls.TOPIC and schema["x-key"] == cls.KEY


def test_check_passes_on_the_committed_files() -> None:
    assert check(load_committed(), generate()) == []


def test_check_command_exits_zero_when_up_to_date() -> None:
    run = subprocess.run([sys.executable, "-m", "sandan_contracts.schemas", "check"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_check_reports_a_stale_file_and_a_breaking_edit() -> None:
    committed = load_committed()
    rel = "intake.demands.v1/ServiceRated.v1.json"

    stale = dict(committed)
    stale[rel] = committed[rel].replace('"Stars"', '"Star rating"')  # documentation-only difference
    problems = check(stale, generate())
    assert problems == [f"{rel}: differs from the models (run `python -m sandan_contracts.schemas write`)"]

    # pretend the committed schema allowed up to 10 stars: the models now narrow it -> breaking
    wider = json.loads(committed[rel])
    wider["properties"]["data"]["properties"]["stars"]["maximum"] = 10
    problems = check({**committed, rel: render(wider)}, generate())
    assert any("data.stars: maximum narrowed from 10 to 5 [breaking]" in p for p in problems), problems


def test_check_reports_removed_events_and_new_versions_on_the_same_topic() -> None:
    committed = load_committed()
    gone = "intake.demands.v1/DemandExpired.v1.json"
    problems = check({**committed, gone: committed["intake.demands.v1/DemandPosted.v1.json"]}, generate())
    assert problems == [f"{gone}: event removed (the committed schema has no model any more) [breaking]"]

    older = {k: v for k, v in committed.items() if k != "intake.demands.v1/ServiceRated.v1.json"}
    older["intake.demands.v1/ServiceRated.v0.json"] = committed["intake.demands.v1/ServiceRated.v1.json"]
    problems = check(older, generate())
    assert any("new schema_version of ServiceRated" in p and p.endswith("[breaking]") for p in problems)


def test_write_produces_the_committed_tree(tmp_path: Path) -> None:
    (tmp_path / "old.topic.v1").mkdir()
    (tmp_path / "old.topic.v1" / "Gone.v1.json").write_text("{}")
    changed = write(tmp_path)
    assert "old.topic.v1/Gone.v1.json" in changed
    assert not (tmp_path / "old.topic.v1").exists()
    assert load_committed(tmp_path) == load_committed()
    assert write(tmp_path) == []  # idempotent


def test_message_schema_is_deterministic() -> None:
    cls = EVENT_TYPES[("DemandPosted", 1)]
    assert render(message_schema(cls)) == render(message_schema(cls))


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_check_against_a_git_ref_catches_a_breaking_change_after_write(tmp_path: Path) -> None:
    """`write` makes the files match the models; `--base` still compares with what was released."""
    schemas = tmp_path / "pkg" / "schemas"
    write(schemas)
    released = schemas / "intake.demands.v1" / "ServiceRated.v1.json"
    wider = json.loads(released.read_text("utf-8"))
    wider["properties"]["data"]["properties"]["stars"]["maximum"] = 10
    released.write_text(render(wider), "utf-8")

    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
                       cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "released")
    write(schemas)  # the developer regenerated: the working tree matches the models again

    assert check(load_committed(schemas), generate()) == []
    base = committed_at("HEAD", schemas)
    assert sorted(base) == sorted(load_committed(schemas))
    problems = check(base, generate(), label="HEAD")
    assert problems == ["intake.demands.v1/ServiceRated.v1.json: data.stars: maximum narrowed from 10 to 5 [breaking]"]
