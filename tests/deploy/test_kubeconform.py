"""The rendered overlays checked by the real `kubeconform` binary, offline: a second validator next to the Python
checks of test_k8s_manifests.py, whose rendering (RENDERED) and CRD schemas (_crd_schemas) this reuses.

Schemas come from two local folders only: the Kubernetes JSON schemas the `kubernetes-validate` package bundles
(strict variants) for built-in kinds, and the vendored CRDs in tests/deploy/crds as JSON schema files (each served
version's openAPIV3Schema, closed against unknown fields) for custom resources. Kinds whose CRD is not vendored
(NOT_VENDORED) are skipped by name; a schema missing for anything else is an error (no -ignore-missing-schemas),
and kubeconform must count every rendered object valid. Downloads are made to fail (a proxy nobody listens on).

kubeconform must be installed (CI: .ci/run); without it these tests fail, they do not skip.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.test_k8s_manifests import KUBERNETES_VERSIONS, NOT_VENDORED, OVERLAYS, RENDERED, _crd_schemas, key

INSTALL = "go install github.com/yannh/kubeconform/cmd/kubeconform@v0.7.0"
# kubeconform's Go templates (pkg/registry/registry.go): ResourceKind is the kind in lower case, KindSuffix
# "-<group's first label>-<version>" (or "-v1" for the core group), Group the whole group, ResourceAPIVersion the
# version. Built-in kinds: kubernetes-validate's file names (deployment-apps-v1.json, configmap-v1.json).
BUILT_IN_TEMPLATE = ("{{ .NormalizedKubernetesVersion }}-local{{ .StrictSuffix }}/"
                     "{{ .ResourceKind }}{{ .KindSuffix }}.json")
CRD_TEMPLATE = "{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json"
DEFINITIONS = "/api/_definitions.json"  # what kubernetes-validate's schemas reference, relative to their $id
NO_NETWORK = "http://127.0.0.1:9"  # as HTTP(S)_PROXY: any schema download fails at once


def _kubeconform() -> str:
    path = shutil.which("kubeconform")
    if path is None:  # a real component these tests need: fail loudly, never skip
        pytest.fail(f"kubeconform is not on PATH, so the rendered manifests were not checked by it; install it: "
                    f"`{INSTALL}` (then $(go env GOPATH)/bin on PATH; .ci/run installs it to /usr/local/bin)")
    return path


def _standalone(schema: dict, definitions: dict) -> dict:
    """`schema` with the definitions it refers to, directly or not, inside it (#/$defs/<name>)."""
    needed: dict[str, dict] = {}

    def inline(node):
        if isinstance(node, list):
            return [inline(v) for v in node]
        if not isinstance(node, dict):
            return node
        node = {k: inline(v) for k, v in node.items()}
        if isinstance(node.get("$ref"), str):  # (not a property named "$ref")
            ref = node["$ref"].removeprefix(DEFINITIONS)
            assert ref.startswith("#/$defs/"), f"unexpected reference {node['$ref']}"
            name = ref.removeprefix("#/$defs/")
            if name not in needed:
                needed[name] = {}  # placeholder: definitions may refer to each other
                needed[name] = inline(definitions[name])
            node["$ref"] = ref
        return node

    out = inline(schema)
    assert "$defs" not in out
    return {**out, "$defs": needed}


def _schema_file(api_version: str, kind: str) -> str:
    """The file kubeconform looks for: {{ .ResourceKind }}{{ .KindSuffix }}.json."""
    group, _, version = api_version.rpartition("/")
    return f"{kind.lower()}-{group.split('.')[0] + '-' if group else ''}{version}.json"


@pytest.fixture(scope="module")
def schema_locations(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """kubeconform's two -schema-location templates, both local folders.

    Custom resources: tests/deploy/crds as <group>/<kind>_<version>.json, looked up first (a custom kind is never
    taken for a built-in one). Built-in kinds: kubernetes-validate's strict schemas of each version, of the kinds
    rendered. They refer to https://kubernetes.io/api/_definitions.json (by their $id), which that package
    resolves from memory and kubeconform would download; so they are written standalone, with the definitions
    they need inside (as kubeconform's own schema registry has them; also quicker than 1 MB of definitions for
    each kind)."""
    import kubernetes_validate

    crds = tmp_path_factory.mktemp("crd-schemas")
    for (api_version, kind), schema in _crd_schemas().items():
        group, version = api_version.split("/")
        path = crds / group / f"{kind.lower()}_{version}.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(schema), encoding="utf-8")
    bundle = Path(kubernetes_validate.__file__).resolve().parent / "kubernetes-json-schema"
    files = {_schema_file(d["apiVersion"], d["kind"]) for docs in RENDERED.values() for d in docs}
    built_in = tmp_path_factory.mktemp("kubernetes-schemas")
    for version in KUBERNETES_VERSIONS:
        bundled = bundle / f"v{version}-local-strict"
        assert bundled.is_dir(), f"kubernetes-validate bundles no strict schemas for Kubernetes {version}"
        definitions = json.loads((bundled / "_definitions.json").read_text(encoding="utf-8"))["$defs"]
        (built_in / bundled.name).mkdir()
        for name in files:  # custom kinds have none here
            if (bundled / name).is_file():
                schema = json.loads((bundled / name).read_text(encoding="utf-8"))
                (built_in / bundled.name / name).write_text(json.dumps(_standalone(schema, definitions)), "utf-8")
    return [str(crds / CRD_TEMPLATE), str(built_in / BUILT_IN_TEMPLATE)]


def _skipped(doc: dict) -> bool:
    return (doc["apiVersion"], doc["kind"]) in NOT_VENDORED


def _kubeconform_report(docs: list[dict], folder: Path, schema_locations: list[str], version: str) -> dict:
    """kubeconform over `docs`, one JSON file each: its JSON report (every resource listed: -verbose) and exit code."""
    command = [_kubeconform(), "-strict", "-summary", "-output", "json", "-verbose", "-kubernetes-version", version]
    for location in schema_locations:
        command += ["-schema-location", location]
    if NOT_VENDORED:  # exactly these, by group/version/kind
        command += ["-skip", ",".join(f"{api_version}/{kind}" for api_version, kind in sorted(NOT_VENDORED))]
    folder.mkdir()
    for i, doc in enumerate(docs):
        (folder / f"{i:03d}-{doc['kind']}-{doc['metadata']['name']}.json").write_text(json.dumps(doc), "utf-8")
    env = {**os.environ, "HTTPS_PROXY": NO_NETWORK, "HTTP_PROXY": NO_NETWORK, "NO_PROXY": ""}
    result = subprocess.run([*command, str(folder)], capture_output=True, text=True, timeout=120, env=env)
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"kubeconform printed no JSON report (exit {result.returncode}):\n{result.stdout}{result.stderr}")
    return {**report, "returncode": result.returncode}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kubeconform_validates_every_rendered_object(overlay: str, version: str, schema_locations: list[str],
                                                     tmp_path: Path) -> None:
    docs = RENDERED[overlay]
    report = _kubeconform_report(docs, tmp_path / overlay, schema_locations, version)
    problems = [f"{r['kind']}/{r['name']}: {r['status']}: {r.get('msg', '')}" for r in report["resources"]
                if r["status"] not in ("statusValid", "statusSkipped")]
    assert report["returncode"] == 0 and not problems, "\n".join(problems) or str(report)
    skipped = [d for d in docs if _skipped(d)]
    assert report["summary"] == {"valid": len(docs) - len(skipped), "invalid": 0, "errors": 0,
                                 "skipped": len(skipped)}, f"{len(docs)} objects rendered"
    valid = sorted((r["kind"], r["name"]) for r in report["resources"] if r["status"] == "statusValid")
    assert valid == sorted(key(d) for d in docs if not _skipped(d))


def test_kubeconform_reports_misspelt_fields(schema_locations: list[str], tmp_path: Path) -> None:
    """It can fail: an unknown field in a Deployment's container and one in a KafkaTopic's spec (both of which the
    API server would prune silently) are invalid, and the same objects without the typo valid."""
    rendered = {key(d): d for d in RENDERED["county"]}
    deployment = rendered[("Deployment", "intake")]
    topic = next(d for (kind, _), d in rendered.items() if kind == "KafkaTopic")
    bad_deployment = copy.deepcopy(deployment)
    bad_deployment["metadata"]["name"] = "intake-typo"
    bad_deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicey"] = "Always"
    bad_topic = copy.deepcopy(topic)
    bad_topic["metadata"]["name"] = "topic-typo"
    bad_topic["spec"]["partitons"] = bad_topic["spec"]["partitions"]
    report = _kubeconform_report([deployment, topic, bad_deployment, bad_topic], tmp_path / "typos",
                                 schema_locations, KUBERNETES_VERSIONS[0])
    assert report["returncode"] != 0
    assert report["summary"] == {"valid": 2, "invalid": 2, "errors": 0, "skipped": 0}, str(report)
    results = {r["name"]: r for r in report["resources"]}
    assert results[deployment["metadata"]["name"]]["status"] == "statusValid"
    assert results[topic["metadata"]["name"]]["status"] == "statusValid"
    assert results["intake-typo"]["status"] == "statusInvalid" and "imagePullPolicey" in results["intake-typo"]["msg"]
    assert results["topic-typo"]["status"] == "statusInvalid" and "partitons" in results["topic-typo"]["msg"]
