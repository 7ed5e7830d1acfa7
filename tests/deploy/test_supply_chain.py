"""The images' supply chain, offline: every Dockerfile installs with constraints.txt, every base image is pinned
by digest or overridable to be (a release passes --build-arg PYTHON_IMAGE=...@sha256:...), each image names its
SBOM and scripts/sbom.sh writes it as valid CycloneDX listing exactly the pinned packages; the audit's list of
accepted vulnerabilities is well formed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("intake", "dispatch", "scoring", "notify", "gateway")
DOCKERFILES = {s: ROOT / "services" / s / "Dockerfile" for s in SERVICES}


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


SBOM_REQUIREMENTS = _load("sandan_sbom_requirements", ROOT / "scripts" / "sbom_requirements.py")
AUDIT = _load("sandan_audit", ROOT / "scripts" / "audit.py")


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, pending = [], ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") and not pending:
            continue
        pending += line.rstrip("\\").strip() + " " if line.rstrip().endswith("\\") else line.strip()
        if not line.rstrip().endswith("\\"):
            if pending:
                word, _, rest = pending.partition(" ")
                out.append((word.upper(), rest.strip()))
            pending = ""
    return out


def unpinned_bases(text: str) -> list[str]:
    """The FROM lines whose image is neither pinned by digest nor an ARG (so a release can pin it), nor a stage."""
    steps = instructions(text)
    global_args = {}
    for word, rest in steps:
        if word == "FROM":
            break
        if word == "ARG":
            name, _, default = rest.partition("=")
            global_args[name.strip()] = default.strip()
    stages: set[str] = set()
    bad = []
    for word, rest in steps:
        if word != "FROM":
            continue
        parts = [p for p in rest.split() if not p.startswith("--")]
        image = parts[0]
        if len(parts) >= 3 and parts[1].upper() == "AS":
            stages.add(parts[2])
        if image in stages or "@sha256:" in image:
            continue
        arg = re.fullmatch(r"\$\{?(\w+)\}?", image)
        if arg and arg.group(1) in global_args:
            continue  # overridable: --build-arg pins it (its default may be a tag, for local builds)
        bad.append(rest)
    return bad


def test_the_rule_for_base_images() -> None:
    assert unpinned_bases("FROM python:3.11-slim\n") == ["python:3.11-slim"]
    assert unpinned_bases("FROM python:3.11-slim@sha256:" + "0" * 64 + "\n") == []
    assert unpinned_bases("ARG PYTHON_IMAGE=python:3.11-slim-bookworm\nFROM ${PYTHON_IMAGE}\n") == []
    assert unpinned_bases("FROM ${PYTHON_IMAGE}\n") == ["${PYTHON_IMAGE}"]  # an ARG declared nowhere
    assert unpinned_bases("ARG X=a\nFROM $X AS build\nFROM build\n") == []
    assert unpinned_bases("ARG X=a\nFROM $X AS build\nFROM rust:1 AS other\n") == ["rust:1 AS other"]


@pytest.mark.parametrize("service", SERVICES)
def test_base_images_are_pinned_or_overridable(service: str) -> None:
    text = DOCKERFILES[service].read_text(encoding="utf-8")
    assert unpinned_bases(text) == []
    # the default is the same Debian release everywhere (scoring's kernel wheel is built for it)
    assert "ARG PYTHON_IMAGE=python:3.11-slim-bookworm" in text


def stages(steps: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """The instructions of each build stage, from its FROM on (the last one is the image that ships)."""
    starts = [i for i, (word, _) in enumerate(steps) if word == "FROM"]
    return [steps[a:b] for a, b in zip(starts, [*starts[1:], len(steps)], strict=True)]


def unconstrained_installs(text: str) -> list[str]:
    """Every `pip install` (in any stage, however chained) not given the constraints file its stage copied in."""
    bad = []
    for stage in stages(instructions(text)):
        copied: list[str] = []  # where this stage has constraints.txt, so far
        for word, rest in stage:
            if word == "COPY" and rest.split()[0] == "constraints.txt":
                copied.append(rest.split()[-1])
            if word != "RUN":
                continue
            for command in re.split(r"&&|;|\|\|", rest):
                if "pip install" in command and not any(f"-c {target}" in command for target in copied):
                    bad.append(command.strip())
    return bad


def test_the_rule_for_installs() -> None:
    ok = "FROM a\nCOPY constraints.txt /c.txt\nRUN pip install -c /c.txt x && python -m pip install -c /c.txt y\n"
    assert unconstrained_installs(ok) == []
    assert unconstrained_installs("FROM a\nRUN pip install x\n") == ["pip install x"]
    # a later command of the same RUN, and a build stage, count as much as the image that ships
    assert unconstrained_installs(ok.replace("pip install -c /c.txt y", "pip install y")) == ["python -m pip install y"]
    build = "FROM b AS build\nRUN /opt/v/bin/pip install -q maturin\n"
    assert unconstrained_installs(build + ok) == ["/opt/v/bin/pip install -q maturin"]
    # the constraints copied into another stage do not constrain this one
    assert unconstrained_installs(ok + "FROM c\nRUN pip install -c /c.txt z\n") == ["pip install -c /c.txt z"]


@pytest.mark.parametrize("service", SERVICES)
def test_every_dockerfile_installs_with_the_constraints(service: str) -> None:
    text = DOCKERFILES[service].read_text(encoding="utf-8")
    final = stages(instructions(text))[-1]  # the image that ships
    assert [rest for word, rest in final if word == "RUN" and "pip install" in rest], \
        f"{service}: no pip install in its image"
    assert unconstrained_installs(text) == [], f"{service}: installs without -c <its copy of constraints.txt>"


@pytest.mark.parametrize("service", SERVICES)
def test_each_image_names_its_sbom(service: str) -> None:
    steps = instructions(DOCKERFILES[service].read_text(encoding="utf-8"))
    labels = [rest for word, rest in steps if word == "LABEL"]
    assert f'io.sandan.sbom="dist/sbom/{service}.cdx.json"' in labels


def test_the_sbom_lists_every_pinned_package_as_valid_cyclonedx(tmp_path: Path) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    result = subprocess.run(["bash", str(ROOT / "scripts" / "sbom.sh")], capture_output=True, text=True,
                            timeout=600, env={**os.environ, "SBOM_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    pins = SBOM_REQUIREMENTS.pins()
    validator = JsonStrictValidator(SchemaVersion.V1_6)
    for service in SERVICES:
        text = (tmp_path / f"{service}.cdx.json").read_text(encoding="utf-8")
        assert validator.validate_str(text) is None, f"{service}: not valid CycloneDX 1.6"
        bom = json.loads(text)
        assert bom["bomFormat"] == "CycloneDX" and bom["metadata"]["component"]["name"] == f"sandan-{service}"
        listed = {SBOM_REQUIREMENTS.canonical(c["name"]): c["version"] for c in bom["components"]}
        assert all(c["purl"].startswith("pkg:pypi/") for c in bom["components"])
        expected = SBOM_REQUIREMENTS.closure(service)
        assert listed == expected and expected, service
        assert all(pins[name][1] == version for name, version in listed.items())  # the pinned versions
        assert {"grpcio", "protobuf", "pydantic"} <= set(listed)
    assert "confluent-kafka" in {SBOM_REQUIREMENTS.canonical(c["name"]) for c in
                                 json.loads((tmp_path / "scoring.cdx.json").read_text())["components"]}


def test_the_accepted_vulnerabilities_each_have_a_reason(tmp_path: Path) -> None:
    AUDIT.accepted()  # the committed file parses
    good = tmp_path / "good"
    good.write_text("# a comment\n\nPYSEC-2024-1  # no user reaches the parser; bump with 2.1\n", encoding="utf-8")
    assert AUDIT.accepted(good) == {"PYSEC-2024-1": "no user reaches the parser; bump with 2.1"}
    bad = tmp_path / "bad"
    bad.write_text("GHSA-xxxx-yyyy-zzzz\n", encoding="utf-8")
    with pytest.raises(SystemExit):
        AUDIT.accepted(bad)
