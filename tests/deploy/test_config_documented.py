"""Every environment variable the code reads is documented, and the deployment files set none it does not read.

The names the code reads are found in services/*/src and libs/*/src: string constants that look like this
project's variables (passed to required(...)/optional(...)/os.environ.get(...), click's envvar=, or assigned to
a constant that is), pydantic-settings classes (env_prefix + each field), and the `<SERVICE>_...` f-string
families (expanded for the four services). Documented means the full name appears in README.md or a
services/*/README.md. The other direction: every variable docker-compose.yml and deploy/k8s give our containers
is one the code (or libpq) reads; the shared contact tokens in particular are gone for good.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
SERVICES = ("intake", "dispatch", "scoring", "notify")
ENV_LIKE = re.compile(r"(?:SANDAN|INTAKE|DISPATCH|SCORING|NOTIFY|GATEWAY|KAFKA)_[A-Z0-9_]*[A-Z0-9]|PG[A-Z]+|LOG_LEVEL")
# Constants that look like variables but are not read from the environment (each must still exist in the code).
NOT_ENV: set[str] = set()
# `f"{service.upper()}_SUFFIX"` families the code builds; any other f-string family fails the test below.
FAMILIES = {"_GRPC_MAX_IN_FLIGHT", "_METRICS_PORT"}
# Read by libpq itself (every PostgreSQL connection of the process), not by our code.
LIBPQ = {"PGSSLMODE", "PGSSLROOTCERT", "PGSSLCERT", "PGSSLKEY"}


def _sources() -> list[Path]:
    return sorted([*ROOT.glob("services/*/src/**/*.py"), *ROOT.glob("libs/*/src/**/*.py")])


def _settings_fields(node: ast.ClassDef) -> list[str]:
    prefix = None
    for statement in node.body:
        if isinstance(statement, ast.Assign) and any(getattr(t, "id", "") == "model_config"
                                                     for t in statement.targets):
            for keyword in getattr(statement.value, "keywords", []):
                if keyword.arg == "env_prefix" and isinstance(keyword.value, ast.Constant):
                    prefix = keyword.value.value
    if prefix is None:
        return []
    names = []
    for s in node.body:
        if not isinstance(s, ast.AnnAssign) or not isinstance(s.target, ast.Name) or s.target.id.startswith("_"):
            continue
        # Field(validation_alias="NAME") / Field(alias="NAME"): the variable is the alias, not prefix + field
        aliases = [k.value.value for k in getattr(s.value, "keywords", [])
                   if k.arg in ("validation_alias", "alias") and isinstance(k.value, ast.Constant)]
        names.append(aliases[0] if aliases else prefix + s.target.id.upper())
    return names


def read_by_code() -> tuple[dict[str, str], set[str], set[str]]:
    """(name -> the file reading it, f-string families found, NOT_ENV constants found)."""
    found: dict[str, str] = {}
    families: set[str] = set()
    not_env: set[str] = set()
    for path in _sources():
        where = str(path.relative_to(ROOT))
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and ENV_LIKE.fullmatch(node.value):
                if node.value in NOT_ENV:
                    not_env.add(node.value)
                else:
                    found.setdefault(node.value, where)
            elif isinstance(node, ast.ClassDef):
                for name in _settings_fields(node):
                    found.setdefault(name, where)
            elif isinstance(node, ast.JoinedStr) and len(node.values) == 2:
                head, tail = node.values
                if (isinstance(head, ast.FormattedValue) and isinstance(tail, ast.Constant)
                        and re.fullmatch(r"_[A-Z0-9_]+", str(tail.value)) and "upper" in ast.unparse(head)):
                    families.add(tail.value)
                    for service in SERVICES:
                        found.setdefault(service.upper() + tail.value, where)
    return found, families, not_env


READ, FOUND_FAMILIES, FOUND_NOT_ENV = read_by_code()


def documentation() -> str:
    return "\n".join(p.read_text(encoding="utf-8")
                     for p in [ROOT / "README.md", *sorted(ROOT.glob("services/*/README.md"))])


def test_the_scan_finds_what_it_should() -> None:
    # known readers of each kind: required(...), os.environ.get, pydantic-settings, click envvar, f-string families
    assert {"KAFKA_BOOTSTRAP_SERVERS", "INTAKE_KEK_FILE", "SANDAN_DB_PASSWORD_FILE", "SANDAN_OIDC_ISSUER",
            "SANDAN_GRPC_PLAINTEXT", "KAFKA_SASL_PASSWORD_FILE", "GATEWAY_SESSION_URL", "SANDAN_TOKEN",
            "NOTIFY_GRPC_MAX_IN_FLIGHT", "PGPASSWORD"} <= set(READ)
    assert FOUND_FAMILIES == FAMILIES, "a new `<SERVICE>_...` family: add it to FAMILIES (and document it)"
    assert FOUND_NOT_ENV == NOT_ENV, "NOT_ENV names a constant the code no longer has"


@pytest.mark.parametrize("name", sorted(READ))
def test_every_variable_the_code_reads_is_documented(name: str) -> None:
    assert re.search(rf"(?<![A-Z0-9_]){name}(?![A-Z0-9_])", documentation()), (
        f"{name} (read in {READ[name]}) is in neither README.md's configuration table nor a services/*/README.md")


# ------------------------------------------------------------------------------- what the deployments set


def _compose_env() -> dict[str, set[str]]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    out = {}
    for name in (*SERVICES, "gateway"):
        env = compose["services"][name].get("environment", {})
        out[name] = set(env if isinstance(env, dict) else (e.split("=", 1)[0] for e in env))
    return out


def _k8s_env() -> dict[str, set[str]]:
    """Per workload: names from its containers' env and the ConfigMaps it takes whole (envFrom), across base/ and
    the overlays' ConfigMap patches; and the notify-channels Secret's keys as the overlays and example set them."""
    config_maps: dict[str, set[str]] = {}
    secrets: dict[str, set[str]] = {}
    paths = [*K8S.glob("base/*.yaml"), *K8S.glob("overlays/*/*.yaml"), K8S / "secrets.example.yaml"]
    workloads = []
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if not isinstance(doc, dict) or "kind" not in doc:
                continue
            if doc["kind"] == "ConfigMap":
                config_maps.setdefault(doc["metadata"]["name"], set()).update(
                    k for k, v in (doc.get("data") or {}).items() if v is not None)
            elif doc["kind"] == "Secret":
                secrets.setdefault(doc["metadata"]["name"], set()).update(doc.get("stringData") or {})
            elif doc["kind"] in ("Deployment", "StatefulSet") and path.parent.name == "base":
                workloads.append(doc)
    local = yaml.safe_load((K8S / "overlays/local/kustomization.yaml").read_text(encoding="utf-8"))
    for gen in local.get("secretGenerator", []):
        secrets.setdefault(gen["name"], set()).update(line.split("=", 1)[0] for line in gen.get("literals", []))
    out = {}
    for w in workloads:
        names: set[str] = set()
        for c in w["spec"]["template"]["spec"]["containers"]:
            names |= {e["name"] for e in c.get("env", [])}
            for source in c.get("envFrom", []):
                if "configMapRef" in source:
                    names |= config_maps[source["configMapRef"]["name"]]
                else:
                    names |= secrets[source["secretRef"]["name"]]
        out[w["metadata"]["name"]] = names
    return out


@pytest.mark.parametrize("where", ["compose", "k8s"])
def test_deployments_set_only_variables_the_code_reads(where: str) -> None:
    env = _compose_env() if where == "compose" else _k8s_env()
    assert set(env) == {*SERVICES, "gateway"}
    stale = {f"{workload}: {name}" for workload, names in env.items() for name in names
             if name not in READ and name not in LIBPQ}
    assert not stale, f"set in {where} but read by no code: {sorted(stale)}"


def test_no_shared_contact_tokens_remain() -> None:
    """The shared contact tokens are gone from the code: nothing may set or document them any more."""
    places = [K8S, ROOT / "docker-compose.yml", ROOT / "deploy" / "compose", ROOT / "README.md",
              *sorted((ROOT / "services").glob("*/README.md"))]
    found = []
    for place in places:
        for path in ([place] if place.is_file() else sorted(place.rglob("*"))):
            text = path.read_text(encoding="utf-8") if path.suffix in (".yaml", ".yml", ".md", ".py", ".json",
                                                                      ".toml") and path.is_file() else ""
            if re.search(r"CONTACT_TOKEN|contact-token", text):
                found.append(str(path.relative_to(ROOT)))
    assert found == []
    assert not [n for n in READ if "CONTACT_TOKEN" in n], "the code reads a contact token again"
