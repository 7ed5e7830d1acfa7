"""Offline checks of the Kubernetes manifests in deploy/k8s (no cluster, no network).

Overlays are rendered by a small kustomize subset implemented here (the features the manifests use, and a
test that fails when a kustomization uses any other), and compared with the real render of `kustomize` or
`kubectl kustomize` (which CI must have: that test fails without either). Every object is validated: built-in
kinds against the Kubernetes JSON schemas `kubernetes-validate` bundles (strict: unknown fields fail), Strimzi,
CloudNativePG and Barman Cloud resources against their CRDs' OpenAPI schemas vendored in tests/deploy/crds (the
same files as ../shared/crds where that exists), closed against unknown fields (the API server would silently
prune a typo). Kafka users and their ACLs are checked against the topic registry and the
services' code, the network policies by evaluating the flows the design needs and some it must not allow. The
services' gRPC is TLS (plaintext only in the local overlay, allowed explicitly), their probes speak it, every
service and the gateway read the same places file, and only the services whose code calls others hold a client
secret.
"""

from __future__ import annotations

import ast
import base64
import copy
import importlib
import importlib.util
import ipaddress
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import jsonschema
import pytest
import yaml

from tests.deploy.settings_env import default_of, required_variables, variables

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = {"county": K8S / "overlays" / "county", "local": K8S / "overlays" / "local"}
CRDS = Path(__file__).resolve().parent / "crds"  # vendored: CI's clean clone has no ../shared
SHARED_CRDS = ROOT.parent / "shared" / "crds"
MIRROR = K8S / "platform" / "mirror"  # optional (not in the overlays): MirrorMaker 2 at a second site
COMPOSE = ROOT / "docker-compose.yml"
# The oldest Kubernetes the README supports: built-in objects must be valid there (and in the newest bundled).
KUBERNETES_VERSIONS = ("1.27.0", "1.37.0")
SECRETS_EXAMPLE = K8S / "secrets.example.yaml"
PARTNERS = K8S / "partners"
KEYCLOAK_SCRIPT = ROOT / "deploy" / "local" / "keycloak.sh"

SERVICES = {"intake": 50051, "dispatch": 50052, "scoring": 50053, "notify": 50054}
SINGLE_REPLICA = {"scoring", "notify"}  # scoring: one fold; notify: two replicas would send twice
GATEWAY_PORT = 8000
METRICS_PORT = 9464  # the services' /metrics (deploy/k8s/observability scrapes the port named `metrics`)
WORKLOADS = {*SERVICES, "gateway"}  # ours (Keycloak is the platform's)
CERT_MANAGER = K8S / "cert-manager"
PROBE = "/etc/sandan-probe/grpc-probe.py"

# Names settings.py asks for with required(...) only under a condition; checked below by their condition.
CONDITIONAL = {
    "NOTIFY_SMTP_HOST": None,  # read only when NOTIFY_SMTP_HOST is non-empty (e-mail enabled)
    "NOTIFY_SMTP_FROM": "NOTIFY_SMTP_HOST",
    "NOTIFY_WECHAT_TEMPLATE_ID": "NOTIFY_WECHAT_URL",
}
NOTIFY_CHANNELS = ("NOTIFY_SMTP_HOST", "NOTIFY_WEBHOOK_SECRET", "NOTIFY_SMS_URL", "NOTIFY_WECHAT_URL",
                   "NOTIFY_CONSOLE")


# ---------------------------------------------------------------------------------------------- loading


def load_docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


def kustomization_dirs() -> list[Path]:
    return sorted(p.parent for p in K8S.rglob("kustomization.yaml"))


def all_yaml() -> list[Path]:
    return sorted(K8S.rglob("*.yaml"))


def key(doc: dict) -> tuple[str, str]:
    return doc["kind"], doc["metadata"]["name"]


# ------------------------------------------------------------------------------- a small kustomize subset

SUPPORTED = {"apiVersion", "kind", "namespace", "resources", "images", "replicas", "patches", "secretGenerator",
             "configMapGenerator", "generatorOptions"}
# Lists that strategic merge merges by a key in built-in kinds (everything else is replaced, as in JSON merge).
MERGE_KEYS = {"containers": "name", "initContainers": "name", "env": "name", "volumes": "name",
              "volumeMounts": "mountPath", "ports": "containerPort"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}


def _builtin(doc: dict) -> bool:
    group = doc["apiVersion"].rpartition("/")[0]
    return "." not in group


def merge_patch(target, patch, strategic: bool):
    if isinstance(patch, dict) and isinstance(target, dict):
        out = dict(target)
        for k, v in patch.items():
            if v is None:
                out.pop(k, None)
            elif k in out and strategic and k in MERGE_KEYS and isinstance(v, list) and isinstance(out[k], list):
                # a container's ports merge by containerPort, a Service's by port
                by = "port" if k == "ports" and not any("containerPort" in i for i in v) else MERGE_KEYS[k]
                merged = [dict(item) for item in out[k]]
                added = []
                for item in v:
                    match = next((i for i, m in enumerate(merged) if m.get(by) == item.get(by)), None)
                    if match is None:
                        added.append(item)
                    else:
                        merged[match] = merge_patch(merged[match], item, strategic)
                out[k] = added + merged  # kustomize puts the patch's new items first
            else:
                out[k] = merge_patch(out.get(k), v, strategic)
        return out
    return copy.deepcopy(patch)


def _pointer(path: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in path.lstrip("/").split("/")]


def json_patch(doc: dict, ops: list[dict]) -> dict:
    doc = copy.deepcopy(doc)
    for op in ops:
        *parents, last = _pointer(op["path"])
        node = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            index = len(node) if last == "-" else int(last)
            if op["op"] == "add":
                node.insert(index, copy.deepcopy(op["value"]))
            elif op["op"] == "test":
                assert node[index] == op["value"], f"JSON patch test failed at {op['path']}"
            elif op["op"] == "replace":
                node[index] = copy.deepcopy(op["value"])
            elif op["op"] == "remove":
                del node[index]
            else:
                raise AssertionError(f"unsupported JSON patch op {op['op']}")
        else:
            if op["op"] == "test":
                assert node.get(last) == op["value"], f"JSON patch test failed at {op['path']}"
            elif op["op"] in ("add", "replace"):
                assert op["op"] == "add" or last in node, f"replace of a missing path {op['path']}"
                node[last] = copy.deepcopy(op["value"])
            elif op["op"] == "remove":
                del node[last]
            else:
                raise AssertionError(f"unsupported JSON patch op {op['op']}")
    return doc


def _matches(doc: dict, target: dict) -> bool:
    group = doc["apiVersion"].rpartition("/")[0]
    if "group" in target and target["group"] != group:
        return False
    if "kind" in target and target["kind"] != doc["kind"]:
        return False
    if "name" in target and not re.fullmatch(f"(?:{target['name']})", doc["metadata"]["name"]):
        return False
    for term in filter(None, target.get("labelSelector", "").split(",")):
        k, _, v = term.partition("=")
        if (doc["metadata"].get("labels") or {}).get(k.strip()) != v.strip():
            return False
    return True


def render(directory: Path) -> list[dict]:
    kz = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
    unsupported = set(kz) - SUPPORTED
    assert not unsupported, f"{directory}: the test's kustomize subset lacks {sorted(unsupported)}"
    docs: list[dict] = []
    for entry in kz.get("resources", []):
        path = directory / entry
        docs += render(path) if path.is_dir() else load_docs(path)
    options = kz.get("generatorOptions", {})
    for gen in kz.get("secretGenerator", []):
        assert options.get("disableNameSuffixHash"), "the subset renders generators without name hashes only"
        assert set(gen) <= {"name", "type", "literals", "options"}, gen
        data = dict(line.split("=", 1) for line in gen.get("literals", []))
        labels = {**options.get("labels", {}), **gen.get("options", {}).get("labels", {})}
        secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": gen["name"]},
                  "type": gen.get("type", "Opaque"),
                  "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}
        if labels:
            secret["metadata"]["labels"] = labels
        docs.append(secret)
    for gen in kz.get("configMapGenerator", []):
        assert options.get("disableNameSuffixHash"), "the subset renders generators without name hashes only"
        assert set(gen) <= {"name", "files", "literals", "behavior"}, gen
        data = dict(line.split("=", 1) for line in gen.get("literals", []))
        for entry in gen.get("files", []):
            name, _, path = entry.rpartition("=")
            data[name or Path(path).name] = (directory / path).read_text(encoding="utf-8")
        config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": gen["name"]}, "data": data}
        if options.get("labels"):
            config_map["metadata"]["labels"] = dict(options["labels"])
        behavior = gen.get("behavior", "create")
        if behavior == "create":
            docs.append(config_map)
        else:
            (i,) = [i for i, d in enumerate(docs) if key(d) == ("ConfigMap", gen["name"])]
            assert behavior in ("replace", "merge"), behavior
            if behavior == "merge":
                config_map["data"] = {**docs[i].get("data", {}), **data}
            config_map["metadata"] = {**docs[i]["metadata"], "labels": {**docs[i]["metadata"].get("labels", {}),
                                                                         **options.get("labels", {})}}
            docs[i] = config_map
    by_key = {key(d): i for i, d in enumerate(docs)}
    assert len(by_key) == len(docs), f"{directory}: duplicate resources"
    for entry in kz.get("patches", []):
        body = yaml.safe_load(entry["patch"]) if "patch" in entry else None
        patches = [body] if body is not None else load_docs(directory / entry["path"])
        if "target" in entry:
            assert len(patches) == 1
            patch = patches[0]
            hits = [i for i, d in enumerate(docs) if _matches(d, entry["target"])]
            assert hits, f"{directory}: patch target {entry['target']} matches nothing"
            for i in hits:
                docs[i] = (json_patch(docs[i], patch) if isinstance(patch, list)
                           else merge_patch(docs[i], {k: v for k, v in patch.items() if k != "metadata"},
                                            _builtin(docs[i])))
        else:
            for patch in patches:
                i = by_key.get(key(patch))
                assert i is not None, f"{directory}: patch for missing {key(patch)}"
                body = {k: v for k, v in patch.items() if k not in ("apiVersion", "kind", "metadata")}
                docs[i] = merge_patch(docs[i], body, _builtin(docs[i]))
    for image in kz.get("images", []):
        for doc in docs:
            for c in pod_spec(doc).get("containers", []) if pod_spec(doc) else []:
                name, _, tag = c["image"].partition(":")
                if name == image["name"]:
                    c["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag)}".rstrip(":")
    for replica in kz.get("replicas", []):
        hits = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")
                and d["metadata"]["name"] == replica["name"]]
        assert hits, f"{directory}: replicas for missing {replica['name']}"
        for d in hits:
            d["spec"]["replicas"] = replica["count"]
    if "namespace" in kz:
        for doc in docs:
            if doc["kind"] not in CLUSTER_SCOPED:
                doc["metadata"]["namespace"] = kz["namespace"]
    return docs


def pod_spec(doc: dict) -> dict | None:
    if doc["kind"] in ("Deployment", "StatefulSet", "Job", "DaemonSet"):
        return doc["spec"]["template"]["spec"]
    return None


RENDERED = {name: render(path) for name, path in OVERLAYS.items()}


def _index(docs: list[dict]) -> dict[tuple[str, str], dict]:
    return {key(d): d for d in docs}


# --------------------------------------------------------------------------------------------- the files


@pytest.mark.parametrize("path", all_yaml(), ids=lambda p: str(p.relative_to(K8S)))
def test_every_yaml_parses(path: Path) -> None:
    docs = load_docs(path)
    assert docs, f"{path} is empty"


@pytest.mark.parametrize("directory", kustomization_dirs(), ids=lambda p: str(p.relative_to(K8S)))
def test_kustomization_references_exist(directory: Path) -> None:
    kz = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
    assert kz["kind"] == "Kustomization"
    referenced = list(kz.get("resources", [])) + [p["path"] for p in kz.get("patches", []) if "path" in p]
    for gen in kz.get("secretGenerator", []) + kz.get("configMapGenerator", []):
        referenced += [f.partition("=")[2] or f for f in gen.get("files", []) + gen.get("envs", [])]
    for entry in referenced:
        path = directory / entry
        assert path.exists(), f"{directory / 'kustomization.yaml'} references missing {entry}"
        if path.is_dir():
            assert (path / "kustomization.yaml").is_file(), f"{path} has no kustomization.yaml"


def test_every_manifest_file_is_used() -> None:
    """No stray manifest: every YAML is a kustomization, referenced by one, the documented secrets example or a
    generated template (partners/)."""
    used = {SECRETS_EXAMPLE, *PARTNERS.glob("*.yaml")}
    for directory in kustomization_dirs():
        kz = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
        used.add(directory / "kustomization.yaml")
        used |= {(directory / e).resolve() for e in kz.get("resources", []) if (directory / e).is_file()}
        used |= {(directory / p["path"]).resolve() for p in kz.get("patches", []) if "path" in p}
    assert sorted(set(all_yaml()) - used) == []


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GENERATE = _load("sandan_k8s_generate", K8S / "generate.py")
REALM = _load("sandan_keycloak_realm", ROOT / "deploy" / "keycloak" / "realm.py")


def test_generated_files_are_fresh() -> None:
    """topics.yaml, kafka-users.yaml and the partner template from the registry; the realm copies kustomize reads."""
    outputs = GENERATE.outputs()
    assert {K8S / "base" / "topics.yaml", K8S / "base" / "kafka-users.yaml"} <= set(outputs)
    for path, text in outputs.items():
        assert path.read_text(encoding="utf-8") == text, f"{path} is stale: run .venv/bin/python deploy/k8s/generate.py"
    for path, local in REALM.TARGETS:
        assert path.read_text(encoding="utf-8") == REALM.render(local), \
            f"{path} is stale: run .venv/bin/python deploy/keycloak/realm.py"


def test_no_secret_values_committed_outside_the_local_overlay() -> None:
    for path in all_yaml():
        for doc in load_docs(path):
            if isinstance(doc, dict) and doc.get("kind") == "Secret":
                assert path == SECRETS_EXAMPLE, f"{path}: Secrets belong in secrets.example.yaml (placeholders)"
                values = {**doc.get("stringData", {})}
                values.pop("username", None)
                assert set(values.values()) == {"CHANGE-ME"}, f"{path}: {doc['metadata']['name']} has a value"


# ----------------------------------------------------------------------------------- the rendered overlays


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_topics_match_the_registry(overlay: str) -> None:
    from sandan_contracts.topics import TOPICS

    docs = RENDERED[overlay]
    kafka = [d for d in docs if d["kind"] == "Kafka"]
    assert len(kafka) == 1
    pool_replicas = sum(d["spec"]["replicas"] for d in docs if d["kind"] == "KafkaNodePool"
                        and "broker" in d["spec"]["roles"])
    topics = {d["spec"]["topicName"]: d for d in docs if d["kind"] == "KafkaTopic"}
    assert set(topics) == set(TOPICS)
    for name, topic in TOPICS.items():
        doc = topics[name]
        assert doc["metadata"]["labels"]["strimzi.io/cluster"] == kafka[0]["metadata"]["name"]
        assert doc["spec"]["partitions"] == topic.partitions
        assert doc["spec"]["config"]["retention.ms"] == topic.config["retention.ms"]
        assert doc["spec"]["config"]["cleanup.policy"] == topic.config["cleanup.policy"]
        replicas, min_isr = doc["spec"]["replicas"], int(doc["spec"]["config"]["min.insync.replicas"])
        assert replicas <= pool_replicas, f"{name}: {replicas} replicas on {pool_replicas} brokers"
        # acks=all producers are refused when fewer than min.insync.replicas replicas exist.
        assert 1 <= min_isr <= replicas
        if overlay == "county":
            assert replicas == 3 and min_isr == 2, f"{name}: county topics survive one broker loss"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_workloads_are_well_formed(overlay: str) -> None:
    docs = RENDERED[overlay]
    workloads = {d["metadata"]["name"]: d for d in docs if d["kind"] in ("Deployment", "StatefulSet")}
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    accounts = {d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount"}
    assert set(workloads) == {*WORKLOADS, "keycloak"} and set(services) == {*WORKLOADS, "keycloak"}
    for name, port in SERVICES.items():
        w, svc = workloads[name], services[name]
        labels = w["spec"]["template"]["metadata"]["labels"]
        assert w["spec"]["selector"]["matchLabels"].items() <= labels.items(), f"{name}: selector misses pods"
        assert svc["spec"]["selector"].items() <= labels.items(), f"{name}: Service selects no pod"
        others = [o for o, ow in workloads.items() if o != name
                  and svc["spec"]["selector"].items() <= ow["spec"]["template"]["metadata"]["labels"].items()]
        assert not others, f"Service {name} also selects {others}"
        spec = pod_spec(w)
        assert spec["serviceAccountName"] == name and name in accounts
        assert spec["automountServiceAccountToken"] is False
        pod_sc = spec["securityContext"]
        assert pod_sc["runAsNonRoot"] is True and pod_sc["runAsUser"] == 10001
        (c,) = spec["containers"]
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert port in ports.values(), f"{name}: container port {port} (Dockerfile EXPOSE)"
        for sp in svc["spec"]["ports"]:
            target = sp.get("targetPort", sp["port"])
            assert (ports.get(target) if isinstance(target, str) else target) in ports.values(), \
                f"{name}: Service targetPort {target} is no container port"
        # gRPC health over TLS through base/grpc-probe.py (kubelet's gRPC probe speaks plaintext only): the port,
        # and the name the certificate is checked for
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            command = c[probe]["exec"]["command"]
            assert command[:4] == ["python", PROBE, str(port), name], f"{name}: {probe} must ask gRPC health on {port}"
            assert c[probe]["timeoutSeconds"] >= 5, f"{name}: {probe}: a Python probe needs time to start"
        # readiness goes NOT_SERVING during an outage (the service waits it out); liveness must not, or
        # Kubernetes would restart a pod that is only waiting
        assert c["livenessProbe"]["exec"]["command"][4:] == ["liveness"], f"{name}: liveness asks 'liveness'"
        assert c["readinessProbe"]["exec"]["command"][4:] == [], f"{name}: readiness asks the default"
        assert c["startupProbe"]["exec"]["command"][4:] == [], f"{name}: start-up asks the default"
        assert _mounted_config(overlay, name)[PROBE] == ("sandan-probe", "grpc-probe.py")
        # Prometheus scrapes the container port named `metrics` (observability/podmonitors.yaml)
        assert ports["metrics"] == METRICS_PORT
        assert _environment(overlay, name)[f"{name.upper()}_METRICS_PORT"] == str(METRICS_PORT)
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert sc.get("runAsNonRoot", pod_sc["runAsNonRoot"]) and sc.get("runAsUser", 10001) == 10001
        mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        assert "emptyDir" in volumes[mounts["/tmp"]], f"{name}: /tmp must be a writable emptyDir"
        for part in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(c["resources"][part]), f"{name}: resources.{part}"
        if name in SINGLE_REPLICA:
            assert w["spec"]["replicas"] == 1
            assert w["kind"] == "StatefulSet" or w["spec"]["strategy"]["type"] == "Recreate"


def _settings_required(service: str) -> set[str]:
    return required_variables(service)


def _operator_secrets(docs: list[dict]) -> dict[str, dict[str, str]]:
    """The Secrets the operators write for the resources in `docs` (their values are made in the cluster)."""
    out: dict[str, dict[str, str]] = {}

    def made(name: str, *keys: str) -> None:
        out[name] = {k: f"<{k} of {name}, made by the operator>" for k in keys}

    for d in docs:
        name = d["metadata"]["name"]
        if d["kind"] == "KafkaUser":  # Strimzi's user operator: SCRAM credentials
            made(name, "password", "sasl.jaas.config")
        elif d["kind"] == "Kafka":  # Strimzi's cluster CA (public part)
            made(f"{name}-cluster-ca-cert", "ca.crt", "ca.p12", "ca.password")
        elif d["kind"] == "Cluster" and d["apiVersion"].startswith("postgresql.cnpg.io/"):
            made(f"{name}-ca", "ca.crt", "ca.key")  # CloudNativePG's server CA
            initdb = d["spec"].get("bootstrap", {}).get("initdb")
            if initdb and "secret" not in initdb:  # the application owner's credentials
                made(f"{name}-app", "username", "password", "dbname", "host", "port", "uri", "jdbc-uri", "pgpass")
    return out


def _secrets_for(overlay: str) -> dict[str, dict[str, str]]:
    """Secret name -> {key: value}: generated in the overlay, else the documented example (values unknown), and
    those the operators make."""
    docs = RENDERED[overlay] + ([] if overlay == "local" else load_docs(SECRETS_EXAMPLE))
    out = _operator_secrets(RENDERED[overlay])
    for d in docs:
        if d["kind"] == "Secret":
            values = {k: base64.b64decode(v).decode() for k, v in d.get("data", {}).items()}
            assert d["metadata"]["name"] not in out, f"{d['metadata']['name']} is the operators' Secret"
            out[d["metadata"]["name"]] = {**values, **d.get("stringData", {})}
    return out


def _workload(overlay: str, name: str) -> dict:
    (w,) = [d for d in RENDERED[overlay]
            if d["kind"] in ("Deployment", "StatefulSet") and d["metadata"]["name"] == name]
    return w


def _sources(overlay: str, name: str) -> dict[str, tuple[str, ...]]:
    """Where each env var of a workload's (first) container comes from: ("value", v), ("secret", name, key) or
    ("configmap", name, key)."""
    docs = _index(RENDERED[overlay])
    (c, *_) = pod_spec(_workload(overlay, name))["containers"]
    out: dict[str, tuple[str, ...]] = {}
    for source in c.get("envFrom", []):
        if "configMapRef" in source:
            ref = source["configMapRef"]["name"]
            out.update({k: ("configmap", ref, k) for k in docs[("ConfigMap", ref)].get("data", {})})
        else:
            ref = source["secretRef"]["name"]
            out.update({k: ("secret", ref, k) for k in _secrets_for(overlay)[ref]})
    for var in c.get("env", []):
        if "value" in var:
            out[var["name"]] = ("value", var["value"])
        else:
            ref = var["valueFrom"].get("secretKeyRef") or var["valueFrom"]["configMapKeyRef"]
            kind = "secret" if "secretKeyRef" in var["valueFrom"] else "configmap"
            out[var["name"]] = (kind, ref["name"], ref["key"])
    return out


def _mounted_files(overlay: str, name: str) -> dict[str, tuple[str, str]]:
    """Files of a workload's (first) container that come from Secrets: path -> (secret name, key)."""
    spec = pod_spec(_workload(overlay, name))
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    files: dict[str, tuple[str, str]] = {}
    for mount in spec["containers"][0].get("volumeMounts", []):
        volume = volumes[mount["volumeName"] if "volumeName" in mount else mount["name"]]
        sources = ([volume["secret"] | {"name": volume["secret"]["secretName"]}] if "secret" in volume else
                   [src["secret"] for src in volume.get("projected", {}).get("sources", []) if "secret" in src])
        for secret in sources:
            items = secret.get("items") or [{"key": k, "path": k}
                                            for k in _secrets_for(overlay).get(secret["name"], {})]
            for item in items:
                files[f"{mount['mountPath'].rstrip('/')}/{item['path']}"] = (secret["name"], item["key"])
    return files


def _mounted_config(overlay: str, name: str) -> dict[str, tuple[str, str]]:
    """Files of a workload's (first) container that come from ConfigMaps: path -> (config map name, key)."""
    docs = _index(RENDERED[overlay])
    spec = pod_spec(_workload(overlay, name))
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    files: dict[str, tuple[str, str]] = {}
    for mount in spec["containers"][0].get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if "configMap" in volume:
            ref = volume["configMap"]["name"]
            items = volume["configMap"].get("items") or [{"key": k, "path": k}
                                                           for k in docs[("ConfigMap", ref)]["data"]]
            for item in items:
                files[f"{mount['mountPath'].rstrip('/')}/{item['path']}"] = (ref, item["key"])
    return files


def _environment(overlay: str, service: str) -> dict[str, str]:
    """The container's environment as Kubernetes builds it ($(VAR) expanded; secret values as in _secrets_for)."""
    docs = _index(RENDERED[overlay])
    secrets = _secrets_for(overlay)
    kind = "StatefulSet" if ("StatefulSet", service) in docs else "Deployment"
    (c,) = [c for c in pod_spec(docs[(kind, service)])["containers"] if c["name"] == service]
    env: dict[str, str] = {}
    for source in c.get("envFrom", []):
        if "configMapRef" in source:
            ref = source["configMapRef"]["name"]
            assert ("ConfigMap", ref) in docs, f"{service}: ConfigMap {ref} is not in the {overlay} overlay"
            env.update(docs[("ConfigMap", ref)].get("data", {}))
        else:
            ref = source["secretRef"]["name"]
            assert ref in secrets, f"{service}: Secret {ref} is neither generated nor in secrets.example.yaml"
            env.update(secrets[ref])
    for var in c.get("env", []):
        if "value" in var:
            for ref in re.findall(r"\$\(([A-Za-z0-9_]+)\)", var["value"]):
                assert ref in env, f"{service}: {var['name']} uses $({ref}) before it is set"
            value = re.sub(r"\$\(([A-Za-z0-9_]+)\)", lambda m: env[m.group(1)], var["value"])
        elif "secretKeyRef" in var["valueFrom"]:
            ref = var["valueFrom"]["secretKeyRef"]
            assert ref["key"] in secrets.get(ref["name"], {}), f"{service}: Secret {ref['name']}/{ref['key']} missing"
            value = secrets[ref["name"]][ref["key"]]
        else:
            ref = var["valueFrom"]["configMapKeyRef"]
            value = docs[("ConfigMap", ref["name"])]["data"][ref["key"]]
        env[var["name"]] = value
    return env


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", SERVICES)
def test_required_settings_are_provided(overlay: str, service: str) -> None:
    required = _settings_required(service)
    assert "KAFKA_BOOTSTRAP_SERVERS" in required  # the regex still finds settings.py's required(...) calls
    env = _environment(overlay, service)
    for name in sorted(required):
        if name in CONDITIONAL:
            condition = CONDITIONAL[name]
            if condition and env.get(condition, "").strip():
                assert env.get(name, "").strip(), f"{service}: {name} is required once {condition} is set"
            continue
        assert env.get(name, "").strip(), f"{overlay}/{service}: required {name} is not provided"
    grpc_address = next((v for k, v in env.items() if k.endswith("_GRPC_ADDRESS")), "")
    assert grpc_address == f"0.0.0.0:{SERVICES[service]}", f"{service}: gRPC must listen on the pod's interfaces"
    if service == "notify":
        assert any(env.get(n, "").strip() for n in NOTIFY_CHANNELS), "notify refuses to start without a channel"
        for peer in ("intake", "dispatch"):
            assert env[f"NOTIFY_{peer.upper()}_ADDRESS"] == f"{peer}:{SERVICES[peer]}"


def test_conditional_names_are_still_in_settings() -> None:
    assert set(CONDITIONAL) <= variables("notify")


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", sorted(WORKLOADS))
def test_services_reach_postgresql_with_separate_credentials_over_verified_tls(overlay: str, service: str) -> None:
    """The URL names host, role and database only; the password comes from the role's Secret (the one
    CloudNativePG sets it from), and the server is verified against the cluster's CA."""
    docs = RENDERED[overlay]
    (pg,) = [d for d in docs if d["kind"] == "Cluster" and d["metadata"]["name"] == "sandan-pg"]
    roles = {r["name"]: r["passwordSecret"]["name"] for r in pg["spec"]["managed"]["roles"]}
    databases = {d["spec"]["name"]: d["spec"] for d in docs if d["kind"] == "Database"}
    env, sources = _environment(overlay, service), _sources(overlay, service)
    url_var = {"scoring": "SCORING_DATABASE_URL", "gateway": "GATEWAY_SESSION_URL"}.get(
        service, f"{service.upper()}_EVENTSTORE_URL")
    m = re.fullmatch(r"postgresql://([a-z]+)@([^:/]+):5432/(\w+)", env[url_var])
    assert m, f"{service}: {url_var} {env[url_var]!r} must name host, role and database only (no password)"
    user, host, dbname = m.groups()
    assert host == f"{pg['metadata']['name']}-rw"
    assert databases[dbname]["owner"] == user and databases[dbname]["cluster"]["name"] == pg["metadata"]["name"]
    assert sources["PGPASSWORD"] == ("secret", roles[user], "password"), f"{service}: the role's own Secret"
    assert _secrets_for(overlay)[roles[user]]["username"] == user
    assert "SANDAN_DB_PASSWORD" not in env
    assert env["PGSSLMODE"] == "verify-full"
    assert _mounted_files(overlay, service)[env["PGSSLROOTCERT"]] == (f"{pg['metadata']['name']}-ca", "ca.crt")
    assert pg["spec"]["postgresql"]["pg_hba"][0] == "hostnossl all all all reject", "TLS only, server side too"


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", sorted(WORKLOADS))
def test_services_reach_kafka_as_their_kafka_user(overlay: str, service: str) -> None:
    docs = RENDERED[overlay]
    (kafka,) = [d for d in docs if d["kind"] == "Kafka"]
    listeners = {lst["name"]: lst for lst in kafka["spec"]["kafka"]["listeners"]}
    assert kafka["spec"]["kafka"]["authorization"]["type"] == "simple"
    for lst in listeners.values():
        assert lst["tls"] is True and lst["authentication"]["type"] == "scram-sha-512", f"{lst['name']}: open"
    tls = listeners["tls"]
    assert tls["type"] == "internal"
    assert "userOperator" in kafka["spec"]["entityOperator"], "KafkaUsers need Strimzi's user operator"
    env, sources = _environment(overlay, service), _sources(overlay, service)
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == f"{kafka['metadata']['name']}-kafka-bootstrap:{tls['port']}"
    assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    user = GENERATE.user_name(service)
    users = {d["metadata"]["name"]: d for d in docs if d["kind"] == "KafkaUser"}
    assert env["KAFKA_SASL_USERNAME"] == user and user in users
    assert users[user]["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    assert sources["KAFKA_SASL_PASSWORD"] == ("secret", user, "password")
    assert _mounted_files(overlay, service)[env["KAFKA_SSL_CA_FILE"]] == \
        (f"{kafka['metadata']['name']}-cluster-ca-cert", "ca.crt")
    # the settings the service will build from this environment are valid (the files are in the pod only)
    from sandan_eventbus.kafka import KafkaSettings

    settings = KafkaSettings.model_construct(**{k[len("KAFKA_"):].lower(): v for k, v in env.items()
                                                if k.startswith("KAFKA_")})
    assert settings.security_protocol == "SASL_SSL" and settings.sasl_username == user


# ------------------------------------------------------------------------------------- CRD schema checks


def _closed(schema):
    """Unknown fields fail instead of being pruned (unless the schema preserves them)."""
    if isinstance(schema, dict):
        schema = {k: _closed(v) for k, v in schema.items()}
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_closed(v) for v in schema]
    return schema


def _crd_schemas() -> dict[tuple[str, str], dict]:
    out = {}
    for path in sorted(CRDS.rglob("*.yaml")):
        for crd in load_docs(path):
            if crd.get("kind") != "CustomResourceDefinition":
                continue
            for version in crd["spec"]["versions"]:
                if version.get("served"):
                    api = f"{crd['spec']['group']}/{version['name']}"
                    schema = _closed(version["schema"]["openAPIV3Schema"])
                    schema["properties"]["metadata"] = {"type": "object"}  # validated by the API server itself
                    out[(api, crd["spec"]["names"]["kind"])] = schema
    return out


def _every_object() -> list[tuple[str, dict]]:
    """Every object: as each overlay renders it, as written (base, platform, the optional mirror, cert-manager),
    the partner template and the documented Secrets."""
    found = []
    for name, docs in RENDERED.items():
        found += [(f"{name}:{d['kind']}/{d['metadata']['name']}", d) for d in docs]
    for path in (K8S / "base", K8S / "platform", MIRROR, CERT_MANAGER):
        found += [(f"{path.name}:{d['kind']}/{d['metadata']['name']}", d) for d in render(path)]
    for path in [*sorted(PARTNERS.glob("*.yaml")), SECRETS_EXAMPLE]:
        found += [(f"{path.name}:{d['kind']}/{d['metadata']['name']}", d) for d in load_docs(path)]
    return found


def _custom_resources() -> list[tuple[str, dict]]:
    """Every Strimzi/CNPG (and Barman Cloud plugin) resource."""
    return [(label, d) for label, d in _every_object()
            if d["apiVersion"].split("/")[0].endswith(("strimzi.io", "cnpg.io"))]


# Kinds whose CRD could not be vendored, and why; checked by hand below instead (test_the_mirror_...).
NOT_VENDORED = {
    ("kafka.strimzi.io/v1", "KafkaMirrorMaker2"): "Strimzi's CRD is neither in ../shared/crds nor in any package "
                                                  "reachable offline (GitHub is not; the Maven jar has no CRDs)",
}


def test_the_vendored_crds_are_the_shared_ones() -> None:
    """tests/deploy/crds is a copy of the CRDs in ../shared/crds (plus the Barman Cloud plugin's ObjectStore, from
    its Go module): where ../shared exists, the copies must not drift from it."""
    if not SHARED_CRDS.is_dir():
        pytest.skip(f"{SHARED_CRDS} is not here (CI's clean clone): the vendored copies are used as they are")
    for vendored in sorted(CRDS.rglob("*.yaml")):
        shared = SHARED_CRDS / vendored.relative_to(CRDS)
        if shared.exists():
            assert vendored.read_bytes() == shared.read_bytes(), f"{vendored} differs from {shared}: copy it again"
        else:
            assert vendored.parent.name == "barman-cloud", f"{vendored} has no counterpart in {SHARED_CRDS}"


def test_custom_resources_validate_against_their_crds() -> None:
    schemas = _crd_schemas()
    resources = _custom_resources()
    kinds = {d["kind"] for _, d in resources}
    assert {"Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser", "Cluster", "Database", "ScheduledBackup",
            "ObjectStore", "KafkaMirrorMaker2"} <= kinds
    errors = []
    for label, doc in resources:
        schema = schemas.get((doc["apiVersion"], doc["kind"]))
        if schema is None:
            if (doc["apiVersion"], doc["kind"]) not in NOT_VENDORED:
                errors.append(f"{label}: {doc['apiVersion']} {doc['kind']} is not served by the CRDs in {CRDS}")
            continue
        for error in jsonschema.Draft7Validator(schema).iter_errors(doc):
            errors.append(f"{label}: {'/'.join(map(str, error.absolute_path))}: {error.message}")
    assert not errors, "\n".join(errors)


def _is_builtin_kind(doc: dict) -> bool:
    """Kubernetes' own API groups: the core group, apps, policy, ... and *.k8s.io (networking, rbac)."""
    group = doc["apiVersion"].rpartition("/")[0]
    return "." not in group or group.endswith(".k8s.io")


def _kubernetes_errors(doc: dict, version: str) -> list[str]:
    import kubernetes_validate

    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{'/'.join(map(str, error.path))}: {error.message}"]
    except kubernetes_validate.SchemaNotFoundError:
        return [f"{doc['apiVersion']} {doc['kind']} does not exist in Kubernetes {version}"]
    return []


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_built_in_objects_validate_against_the_kubernetes_schemas(version: str) -> None:
    """Deployments, StatefulSets, Services, NetworkPolicies, PDBs, Ingresses, ConfigMaps, Secrets, ... against
    the schemas kubernetes-validate bundles (offline), strict: an unknown field is an error, not pruned."""
    objects = [(label, d) for label, d in _every_object() if _is_builtin_kind(d)]
    kinds = {d["kind"] for _, d in objects}
    assert {"Deployment", "StatefulSet", "Service", "NetworkPolicy", "PodDisruptionBudget", "Ingress",
            "ConfigMap", "Secret", "ServiceAccount"} <= kinds
    errors = [f"{label}: {e}" for label, d in objects for e in _kubernetes_errors(d, version)]
    assert not errors, "\n".join(errors)


def test_the_kubernetes_validation_catches_a_typo() -> None:
    (deployment,) = [d for d in RENDERED["county"] if key(d) == ("Deployment", "intake")]
    typo = copy.deepcopy(deployment)
    typo["spec"]["template"]["spec"]["containers"][0]["imagePullPolicey"] = "Always"
    assert _kubernetes_errors(deployment, KUBERNETES_VERSIONS[0]) == []
    assert _kubernetes_errors(typo, KUBERNETES_VERSIONS[0])


# ------------------------------------------------------------------------------- backups and the Kafka log

BARMAN = "barman-cloud.cloudnative-pg.io"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_postgres_cluster_archives_its_wal_and_is_backed_up_nightly(overlay: str) -> None:
    """County: each CloudNativePG cluster archives WAL through the Barman Cloud plugin to an ObjectStore of its
    own (credentials from the documented Secret) and has a ScheduledBackup by the plugin. Locally (no object
    store) archiving is off and the schedules are suspended."""
    docs = RENDERED[overlay]
    clusters = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Cluster"}
    stores = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ObjectStore"}
    schedules = {d["spec"]["cluster"]["name"]: d for d in docs if d["kind"] == "ScheduledBackup"}
    assert set(clusters) == {"sandan-pg", "sandan-keycloak-db"} and set(schedules) == set(clusters)
    for name, cluster in clusters.items():
        schedule = schedules[name]
        assert schedule["spec"]["method"] == "plugin"
        assert schedule["spec"]["pluginConfiguration"]["name"] == BARMAN
        if overlay == "local":
            assert "plugins" not in cluster["spec"] and schedule["spec"]["suspend"] is True
            continue
        assert not schedule["spec"].get("suspend") and schedule["spec"]["immediate"] is True
        (plugin,) = cluster["spec"]["plugins"]
        assert plugin["name"] == BARMAN and plugin["isWALArchiver"] is True
        store = stores[plugin["parameters"]["barmanObjectName"]]
        assert store["spec"]["configuration"]["serverName"] == name  # one folder per cluster
        assert re.fullmatch(r"[1-9][0-9]*d", store["spec"]["retentionPolicy"])
        secrets = _secrets_for(overlay)
        for ref in store["spec"]["configuration"]["s3Credentials"].values():
            assert ref["key"] in secrets.get(ref["name"], {}), f"{name}: {ref} is not a documented Secret key"
    paths = [s["spec"]["configuration"]["destinationPath"] for s in stores.values()]
    assert len(set(paths)) == len(paths), "each cluster backs up to a folder of its own"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_kafka_log_is_protected(overlay: str) -> None:
    """The topics are what scoring rebuilds from: in the county 3 replicas, 2 in sync for acks=all, no unclean
    leader election (the per-topic replicas and min.insync.replicas: test_topics_match_the_registry)."""
    (kafka,) = [d for d in RENDERED[overlay] if d["kind"] == "Kafka"]
    config = kafka["spec"]["kafka"]["config"]
    assert config["unclean.leader.election.enable"] is False
    if overlay == "county":
        assert config["default.replication.factor"] == 3 and config["min.insync.replicas"] == 2
        assert config["offsets.topic.replication.factor"] == 3 and config["transaction.state.log.min.isr"] == 2
        for topic in (d for d in RENDERED[overlay] if d["kind"] == "KafkaTopic"):
            assert topic["spec"]["config"].get("unclean.leader.election.enable", False) in (False, "false")


def _compose_image(service: str) -> str:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"][service]["image"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kafka_and_postgres_versions_are_pinned_as_in_compose(overlay: str) -> None:
    """The operators' resources pin the same Kafka and PostgreSQL releases the compose stack runs, so a local
    run tests what the cluster deploys and an operator upgrade does not silently move either."""
    kafka_release = _compose_image("kafka").rpartition(":")[2]  # apache/kafka:4.1.1
    postgres_release = _compose_image("postgres").rpartition(":")[2].split("-")[0]  # postgres:16.11-alpine
    (kafka,) = [d for d in RENDERED[overlay] if d["kind"] == "Kafka"]
    assert kafka["spec"]["kafka"]["version"] == kafka_release
    assert kafka["spec"]["kafka"]["metadataVersion"].startswith(kafka_release.rpartition(".")[0] + "-IV")
    for cluster in (d for d in RENDERED[overlay] if d["kind"] == "Cluster"):
        image = cluster["spec"]["imageName"]
        assert image.startswith("ghcr.io/cloudnative-pg/postgresql:"), image
        assert image.rpartition(":")[2].split("-")[0] == postgres_release, \
            f"{cluster['metadata']['name']}: {image} is not PostgreSQL {postgres_release} (docker-compose.yml)"
    (mirror,) = [d for d in render(MIRROR) if d["kind"] == "KafkaMirrorMaker2"]
    assert mirror["spec"]["version"] == kafka_release


def test_the_mirror_copies_every_public_topic_under_its_own_name() -> None:
    """KafkaMirrorMaker2 (its CRD is not vendored, NOT_VENDORED): by hand, the fields a DR copy depends on."""
    from sandan_contracts.topics import TOPICS

    (mirror,) = [d for d in render(MIRROR) if d["kind"] == "KafkaMirrorMaker2"]
    assert mirror["apiVersion"] == "kafka.strimzi.io/v1"
    spec = mirror["spec"]
    (flow,) = spec["mirrors"]
    assert flow["source"]["alias"] == "sandan" != spec["target"]["alias"]
    assert {"alias", "bootstrapServers", "groupId", "configStorageTopic", "offsetStorageTopic",
            "statusStorageTopic"} <= set(spec["target"])
    for side in (flow["source"], spec["target"]):
        assert side["bootstrapServers"].endswith(":9094" if side is flow["source"] else ":9093")
        assert side["authentication"]["type"] == "scram-sha-512" and side["tls"]["trustedCertificates"]
    connector = flow["sourceConnector"]["config"]
    assert connector["replication.policy.class"].endswith(".IdentityReplicationPolicy")  # the same topic names
    assert connector["offset-syncs.topic.location"] == "target"  # the source is only read (partner ACLs)
    assert connector["replication.factor"] == 3
    include, exclude = re.compile(flow["topicsPattern"]), re.compile(flow["topicsExcludePattern"])
    mirrored = {t for t in TOPICS if include.fullmatch(t) and not exclude.fullmatch(t)}
    assert mirrored == {t for t in TOPICS if not t.endswith(".dlq")}
    # the source user is the partners' read-only template: it reads exactly what is mirrored
    partner = GENERATE.partner_user(flow["source"]["authentication"]["username"])
    assert set(_topic_ops(partner)) == mirrored


# --------------------------------------------------------------------------- the subset vs. real kustomize


def _kustomize_command() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_subset_renders_like_kustomize(overlay: str) -> None:
    command = _kustomize_command()
    if command is None:
        message = ("neither kustomize nor kubectl is on PATH, so the overlays were not rendered by real kustomize; "
                   "install it: `go install sigs.k8s.io/kustomize/kustomize/v5@v5.8.1` (then $(go env GOPATH)/bin "
                   "on PATH), or Debian's kubectl")
        if os.environ.get("SANDAN_UNIT_ONLY") == "1":
            pytest.skip(message)
        pytest.fail(message)
    result = subprocess.run([*command, str(OVERLAYS[overlay])], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    real = _index([d for d in yaml.safe_load_all(result.stdout) if d])
    for doc in real.values():  # kubectl wraps long base64 values in lines; the API server ignores the breaks
        if doc["kind"] == "Secret":
            doc["data"] = {k: "".join(v.split()) for k, v in doc.get("data", {}).items()}
    ours = _index(RENDERED[overlay])
    assert sorted(real) == sorted(ours)
    for k in real:
        assert real[k] == ours[k], f"{overlay}: {k} renders differently from {' '.join(command)}"


# ------------------------------------------------------------------------------------- Kafka users and ACLs


def _acls(user: dict) -> dict[tuple[str, str, str], set[str]]:
    """(resource type, name, pattern) -> operations; only `allow` rules exist (a deny would need a reason)."""
    out: dict[tuple[str, str, str], set[str]] = {}
    for acl in user["spec"]["authorization"]["acls"]:
        assert acl.get("type", "allow") == "allow" and acl.get("host", "*") == "*"
        r = acl["resource"]
        out.setdefault((r["type"], r["name"], r.get("patternType", "literal")), set()).update(acl["operations"])
    return out


def _topic_ops(user: dict) -> dict[str, set[str]]:
    acls = _acls(user)
    assert all(p == "literal" for t, _, p in acls if t == "topic"), "topic ACLs name topics exactly"
    return {name: ops for (t, name, _), ops in acls.items() if t == "topic"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kafka_users_allow_exactly_what_each_service_writes_and_reads(overlay: str) -> None:
    from sandan_contracts.topics import TOPICS

    users = {d["metadata"]["name"]: d for d in RENDERED[overlay] if d["kind"] == "KafkaUser"}
    assert set(users) == {GENERATE.user_name(s) for s in WORKLOADS}
    # the gateway's live updates: read-only, exactly the topics live.py follows, no group (manual assignment)
    from sandan_gateway.live import TOPICS as LIVE_TOPICS

    gateway = users[GENERATE.user_name("gateway")]
    assert set(GENERATE.GATEWAY_READS) == set(LIVE_TOPICS), "deploy/k8s/generate.py GATEWAY_READS is out of date"
    assert _topic_ops(gateway) == {t: {"Read", "Describe"} for t in LIVE_TOPICS}
    assert {t for t, _, _ in _acls(gateway)} == {"topic"}, "the gateway commits nothing: no group ACL"
    live = (ROOT / "services/gateway/src/sandan_gateway/live.py").read_text(encoding="utf-8")
    assert "consumer.assign(" in live and "group_id" not in live, "the gateway's consumer uses no group"
    writers: dict[str, set[str]] = {t: set() for t in TOPICS}
    for service in SERVICES:
        user = users[GENERATE.user_name(service)]
        assert user["spec"]["authentication"]["type"] == "scram-sha-512"
        ops = _topic_ops(user)
        reads = set(GENERATE.READS[service])
        dead_letters = {TOPICS[t].dead_letter for t in reads}
        owned = {t.name for t in TOPICS.values() if t.owner == service and t.dead_letter}
        assert {t for t, o in ops.items() if "Write" in o} == owned | dead_letters, service
        assert {t for t, o in ops.items() if "Read" in o} == reads | dead_letters, service
        assert all(o <= {"Read", "Write", "Describe"} for o in ops.values()), f"{service}: no admin rights"
        groups = {(name, p): o for (t, name, p), o in _acls(user).items() if t == "group"}
        assert groups == {(GENERATE.group_prefix(service), "prefix"): {"Read", "Describe"}}
        assert {t for t, _, _ in _acls(user)} == {"topic", "group"}, f"{service}: no cluster or transactional ACLs"
        for topic, o in ops.items():
            if "Write" in o:
                writers[topic].add(service)
    for name, topic in TOPICS.items():
        if topic.dead_letter:  # an event log: its owner, and only it, writes it
            assert writers[name] == {topic.owner}, f"{name}: written by {writers[name]}"
        else:  # a dead-letter topic: written by the consumers of its source
            source = name.removesuffix(".dlq")
            assert writers[name] == {s for s in SERVICES if source in GENERATE.READS[s]}, name


def _subscriptions(service: str) -> set[str]:
    """The topics a service's inbox consumes, read from its __main__.py (the Inbox(...) call's handlers)."""
    module = importlib.import_module(f"sandan_{service}.__main__")
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "Inbox"]
    assert len(calls) == 1, f"{service}: expected one Inbox(...) in __main__.py; update this test with the wiring"
    call = calls[0]
    handlers = call.args[3] if len(call.args) > 3 else next(k.value for k in call.keywords if k.arg == "handlers")
    if isinstance(handlers, ast.Name):
        (handlers,) = [n.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
                       and any(getattr(t, "id", "") == handlers.id for t in n.targets)]

    def value(node: ast.expr) -> object:
        return eval(compile(ast.Expression(node), "<handlers>", "eval"), vars(module))

    if isinstance(handlers, ast.Dict):
        return {value(k) for k in handlers.keys if k is not None}
    if isinstance(handlers, ast.DictComp):
        (generator,) = handlers.generators
        return set(value(generator.iter))
    raise AssertionError(f"{service}: cannot read the handlers of Inbox(...): {ast.unparse(handlers)}")


@pytest.mark.parametrize("service", SERVICES)
def test_the_read_map_matches_the_services_code(service: str) -> None:
    if service == "scoring":  # reads the source topics with its own consumers (no inbox, no group)
        from sandan_scoring.facts import SOURCE_TOPICS

        consumed = set(SOURCE_TOPICS)
        engine = (ROOT / "services" / "scoring" / "src" / "sandan_scoring" / "engine.py").read_text(encoding="utf-8")
        assert "TOPICS[record.topic].dead_letter" in engine, "scoring dead-letters to the source topic's .dlq"
    else:
        consumed = _subscriptions(service)
    assert consumed == set(GENERATE.READS[service]), f"deploy/k8s/generate.py READS[{service!r}] is out of date"


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", ["intake", "dispatch", "notify"])
def test_consumer_groups_are_inside_the_acl_prefix(overlay: str, service: str) -> None:
    name = f"{service.upper()}_CONSUMER_GROUP"
    default = default_of(service, name)
    prefix = GENERATE.group_prefix(service)
    assert default.startswith(prefix)
    assert _environment(overlay, service).get(name, default).startswith(prefix)


def test_scoring_replay_groups_are_inside_the_acl_prefix() -> None:
    text = (ROOT / "services" / "scoring" / "src" / "sandan_scoring" / "fastreplay.py").read_text(encoding="utf-8")
    groups = re.findall(r'group = f"([a-z-]+)\{', text)
    assert groups and all(g.startswith(GENERATE.group_prefix("scoring")) for g in groups)


def test_the_partner_template_is_read_only() -> None:
    from sandan_contracts.topics import TOPICS

    (user,) = load_docs(PARTNERS / "partner-example.yaml")
    name = user["metadata"]["name"]
    ops = _topic_ops(user)
    public = {t.name for t in TOPICS.values() if t.dead_letter}
    assert set(ops) == public and not any(t.endswith(".dlq") for t in ops)
    assert all(o == {"Read", "Describe"} for o in ops.values()), "read-only"
    assert {(t, n, p) for t, n, p in _acls(user) if t != "topic"} == {("group", name, "prefix")}
    assert user["spec"]["authentication"]["type"] == "scram-sha-512"
    for bad in ("sandan-intake", "Upper", "a" * 60):
        with pytest.raises(ValueError):
            GENERATE.partner_user(bad)
    assert GENERATE.partner_user("taihe-civil-affairs")["metadata"]["name"] == "taihe-civil-affairs"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_partners_have_an_external_listener(overlay: str) -> None:
    (kafka,) = [d for d in RENDERED[overlay] if d["kind"] == "Kafka"]
    external = [lst for lst in kafka["spec"]["kafka"]["listeners"] if lst["type"] != "internal"]
    assert [lst["type"] for lst in external] == ["loadbalancer" if overlay == "county" else "nodeport"]
    assert external[0]["tls"] and external[0]["authentication"]["type"] == "scram-sha-512"
    internal = [lst for lst in kafka["spec"]["kafka"]["listeners"] if lst["type"] == "internal"]
    peers = [p["podSelector"]["matchLabels"] for lst in internal for p in lst["networkPolicyPeers"]]
    assert peers == [{"app.kubernetes.io/name": s} for s in [*SERVICES, "gateway"]], \
        "only the four services and the gateway reach the cluster"


# ----------------------------------------------------------------------------------------- Keycloak, OIDC


def _keycloak_version() -> str:
    (version,) = re.findall(r"^VERSION=(\S+)$", KEYCLOAK_SCRIPT.read_text(encoding="utf-8"), re.M)
    return version


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_keycloak_runs_pinned_with_its_own_database(overlay: str) -> None:
    docs = RENDERED[overlay]
    spec = pod_spec(_workload(overlay, "keycloak"))
    image = f"quay.io/keycloak/keycloak:{_keycloak_version()}"  # the version deploy/local/keycloak.sh runs
    assert [c["image"] for c in spec["initContainers"] + spec["containers"]] == [image, image]
    (c,) = spec["containers"]
    assert c["args"][:2] == ["start", "--optimized"] and "--import-realm" in c["args"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True and spec["securityContext"]["runAsNonRoot"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    env, sources = _environment(overlay, "keycloak"), _sources(overlay, "keycloak")
    tls = bool(env.get("KC_HTTPS_CERTIFICATE_FILE"))
    assert tls == (overlay == "county") and env["KC_HTTP_ENABLED"] == ("false" if tls else "true")
    for probe, path in (("startupProbe", "/health/started"), ("readinessProbe", "/health/ready"),
                        ("livenessProbe", "/health/live")):
        get = c[probe]["httpGet"]
        assert (get["path"], ports[get["port"]], get["scheme"]) == (path, 9000, "HTTPS" if tls else "HTTP")
    assert env["KC_HEALTH_ENABLED"] == "true" and env["KC_DB"] == "postgres"
    if tls:
        files = _mounted_files(overlay, "keycloak")
        assert files[env["KC_HTTPS_CERTIFICATE_FILE"]] == ("keycloak-tls", "tls.crt")
        assert files[env["KC_HTTPS_CERTIFICATE_KEY_FILE"]] == ("keycloak-tls", "tls.key")
    # its own CloudNativePG cluster, over verified TLS, with the role CloudNativePG made
    (db,) = [d for d in docs if d["kind"] == "Cluster" and d["metadata"]["name"] == env["KC_DB_URL_HOST"][:-3]]
    assert env["KC_DB_URL_HOST"] == f"{db['metadata']['name']}-rw" and db["metadata"]["name"] != "sandan-pg"
    assert env["KC_DB_URL_DATABASE"] == db["spec"]["bootstrap"]["initdb"]["database"]
    assert sources["KC_DB_USERNAME"] == ("secret", f"{db['metadata']['name']}-app", "username")
    assert sources["KC_DB_PASSWORD"] == ("secret", f"{db['metadata']['name']}-app", "password")
    root = re.search(r"sslrootcert=([^&]+)", env["KC_DB_URL_PROPERTIES"]).group(1)
    assert "sslmode=verify-full" in env["KC_DB_URL_PROPERTIES"]
    assert _mounted_files(overlay, "keycloak")[root] == (f"{db['metadata']['name']}-ca", "ca.crt")
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert {"/opt/keycloak/lib/quarkus", "/opt/keycloak/data", "/tmp"} <= mounts  # writable emptyDirs


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_keycloak_imports_the_generated_realm_with_every_placeholder_set(overlay: str) -> None:
    docs = _index(RENDERED[overlay])
    spec = pod_spec(_workload(overlay, "keycloak"))
    (realm_volume,) = [v for v in spec["volumes"] if "configMap" in v]
    mount = next(m for m in spec["containers"][0]["volumeMounts"] if m["name"] == realm_volume["name"])
    assert mount["mountPath"] == "/opt/keycloak/data/import"
    (text,) = docs[("ConfigMap", realm_volume["configMap"]["name"])]["data"].values()
    assert text == REALM.render(overlay == "local"), "the realm file for this overlay, as realm.py writes it"
    env = _environment(overlay, "keycloak")
    placeholders = set(re.findall(r"\$\{(SANDAN_[A-Z_]+)\}", text))
    assert placeholders == ({f"SANDAN_{c.upper()}_CLIENT_SECRET" for c in REALM.SECRET_ENV} | {"SANDAN_WEB_URL"}
                            if overlay == "county" else set())
    missing = {p for p in placeholders if not env.get(p)}
    assert not missing, f"Keycloak's environment lacks {sorted(missing)} for the realm import"


def callers() -> set[str]:
    """The services (and the gateway) whose code calls others as themselves: OidcSettings.identity(), i.e. client
    credentials. Only they get SANDAN_OIDC_CLIENT_ID/_SECRET."""
    found = set()
    for name in WORKLOADS:
        source = "\n".join(p.read_text(encoding="utf-8")
                           for p in (ROOT / "services" / name / "src").rglob("*.py"))
        if ".identity()" in source:
            found.add(name)
    return found


def test_the_callers_are_notify_and_the_gateway() -> None:
    """When this changes (a service starts calling another), give it its client Secret in base/ and compose."""
    assert callers() == {"notify", "gateway"}


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", sorted(WORKLOADS))
def test_services_trust_the_realm_issuer(overlay: str, service: str) -> None:
    realm = json.loads(REALM.render(overlay == "local"))
    keycloak = _environment(overlay, "keycloak")
    env, sources = _environment(overlay, service), _sources(overlay, service)
    issuer = f"{keycloak['KC_HOSTNAME']}/realms/{realm['realm']}"
    assert env["SANDAN_OIDC_ISSUER"] == issuer, "tokens name Keycloak's public address (KC_HOSTNAME)"
    assert keycloak["KC_HOSTNAME_BACKCHANNEL_DYNAMIC"] == "true", "services fetch from inside the cluster"
    assert env["SANDAN_OIDC_AUDIENCE"] == REALM.AUDIENCE
    (svc,) = [d for d in RENDERED[overlay] if d["kind"] == "Service" and d["metadata"]["name"] == "keycloak"]
    scheme = "https" if keycloak.get("KC_HTTPS_CERTIFICATE_FILE") else "http"
    port = {p["name"]: p["port"] for p in svc["spec"]["ports"]}[scheme]
    base = f"{scheme}://keycloak:{port}/realms/{realm['realm']}/protocol/openid-connect"
    assert (env["SANDAN_OIDC_JWKS_URL"], env["SANDAN_OIDC_TOKEN_URL"]) == (f"{base}/certs", f"{base}/token")
    discovery = f"{scheme}://keycloak:{port}/realms/{realm['realm']}/.well-known/openid-configuration"
    assert env["SANDAN_OIDC_DISCOVERY_URL"] == discovery, "the discovery document from inside (back-channel)"
    if scheme == "https":
        assert _mounted_files(overlay, service)[env["SANDAN_OIDC_CA_FILE"]] == ("keycloak-tls", "ca.crt")
    else:
        assert "SANDAN_OIDC_CA_FILE" not in env
    if service not in callers():  # calls no one: holds no client secret (least privilege)
        assert "SANDAN_OIDC_CLIENT_ID" not in env and "SANDAN_OIDC_CLIENT_SECRET" not in env
        assert not [k for k in sources if "SECRET" in k], f"{service}: a secret it has no use for"
        return
    clients = {c["clientId"]: c for c in realm["clients"]}
    client = clients[env["SANDAN_OIDC_CLIENT_ID"]]
    assert env["SANDAN_OIDC_CLIENT_ID"] == f"sandan-{service}" and client["serviceAccountsEnabled"]
    # one Secret per client, read by the service and by Keycloak's realm import alike
    assert sources["SANDAN_OIDC_CLIENT_SECRET"] == ("secret", f"sandan-oidc-{service}", "client-secret")
    assert _sources(overlay, "keycloak")[f"SANDAN_{service.upper()}_CLIENT_SECRET"] == \
        sources["SANDAN_OIDC_CLIENT_SECRET"]
    if overlay == "local":  # the fixed development secret is the one in the local realm
        assert env["SANDAN_OIDC_CLIENT_SECRET"] == client["secret"]


# -------------------------------------------------------------------------------- network policies, PDBs


@dataclass(frozen=True)
class Peer:
    """A pod (labels, namespace) or an address outside the cluster (ip)."""
    name: str
    labels: dict = field(default_factory=dict, hash=False)
    namespace: str = "sandan"
    ip: str = ""


NAMESPACE_LABELS = {"sandan": {}, "kube-system": {}, "cnpg-system": {}, "ingress": {"sandan.io/edge": "true"},
                    "monitoring": {}, "elsewhere": {}}


_OPERATORS = {"In": lambda labels, key, values: labels.get(key) in values,
              "NotIn": lambda labels, key, values: labels.get(key) not in values,
              "Exists": lambda labels, key, values: key in labels,
              "DoesNotExist": lambda labels, key, values: key not in labels}


def _selects(selector: dict | None, labels: dict) -> bool:
    selector = selector or {}
    return selector.get("matchLabels", {}).items() <= labels.items() and all(
        _OPERATORS[e["operator"]](labels, e["key"], e.get("values", [])) for e in selector.get("matchExpressions", []))


def _peer_matches(entry: dict, peer: Peer, policy_namespace: str) -> bool:
    if "ipBlock" in entry:
        if not peer.ip:
            return False  # pods' addresses are the cluster's own, which the blocks here never target
        ip = ipaddress.ip_address(peer.ip)
        block = entry["ipBlock"]
        return ip in ipaddress.ip_network(block["cidr"]) and not any(
            ip in ipaddress.ip_network(e) for e in block.get("except", []))
    if peer.ip:
        return False
    if "namespaceSelector" in entry:
        labels = {**NAMESPACE_LABELS[peer.namespace], "kubernetes.io/metadata.name": peer.namespace}
        if not _selects(entry["namespaceSelector"], labels):
            return False
    elif peer.namespace != policy_namespace:
        return False
    return "podSelector" not in entry or _selects(entry["podSelector"], peer.labels)


def _rule_allows(rule: dict, direction: str, peer: Peer, port: int, protocol: str) -> bool:
    ports = rule.get("ports")
    if ports and not any(p["port"] == port and p.get("protocol", "TCP") == protocol for p in ports):
        return False
    peers = rule.get("from" if direction == "ingress" else "to")
    return not peers or any(_peer_matches(e, peer, "sandan") for e in peers)


def _strimzi_policies(kafka: dict) -> list[dict]:
    """What Strimzi's cluster operator generates for the Kafka pods: each listener open to its
    networkPolicyPeers (or anyone), the control plane (9090) and replication (9091) to the cluster's pods."""
    name = kafka["metadata"]["name"]
    own = [{"podSelector": {"matchLabels": {"strimzi.io/cluster": name}}},
           {"podSelector": {"matchLabels": {"strimzi.io/kind": "cluster-operator"}}}]
    rules = [{"from": own, "ports": [{"port": 9090}, {"port": 9091}]}]
    for lst in kafka["spec"]["kafka"]["listeners"]:
        rule: dict = {"ports": [{"port": lst["port"]}]}
        if lst.get("networkPolicyPeers"):
            rule["from"] = lst["networkPolicyPeers"]
        rules.append(rule)
    if kafka["spec"]["kafka"].get("metricsConfig"):
        rules.append({"ports": [{"port": 9404}]})  # the metrics port, open to any peer
    return [{"metadata": {"name": f"{name}-network-policy-kafka (Strimzi's)"},
             "spec": {"podSelector": {"matchLabels": {"strimzi.io/cluster": name, "strimzi.io/kind": "Kafka",
                                                      "strimzi.io/name": f"{name}-kafka"}},
                      "policyTypes": ["Ingress"], "ingress": rules}}]


class Network:
    def __init__(self, overlay: str) -> None:
        docs = RENDERED[overlay]
        (kafka,) = [d for d in docs if d["kind"] == "Kafka"]
        self.policies = [d for d in docs if d["kind"] == "NetworkPolicy"] + _strimzi_policies(kafka)
        self.pods = {d["metadata"]["name"]: Peer(d["metadata"]["name"], d["spec"]["template"]["metadata"]["labels"])
                     for d in docs if d["kind"] in ("Deployment", "StatefulSet")}
        broker_pools = [p for p in docs if p["kind"] == "KafkaNodePool" and "broker" in p["spec"]["roles"]]
        cluster = kafka["metadata"]["name"]
        self.pods |= {
            "broker": Peer("broker", {"strimzi.io/cluster": cluster, "strimzi.io/kind": "Kafka",
                                      "strimzi.io/name": f"{cluster}-kafka", "strimzi.io/broker-role": "true",
                                      "strimzi.io/pool-name": broker_pools[0]["metadata"]["name"]}),
            "entity-operator": Peer("entity-operator", {"strimzi.io/cluster": cluster, "strimzi.io/kind": "Kafka",
                                                        "strimzi.io/name": f"{cluster}-entity-operator"}),
            "kafka-exporter": Peer("kafka-exporter", {"strimzi.io/cluster": cluster, "strimzi.io/kind": "Kafka",
                                                      "strimzi.io/name": f"{cluster}-kafka-exporter"}),
            "cluster-operator": Peer("cluster-operator", {"strimzi.io/kind": "cluster-operator",
                                                          "name": "strimzi-cluster-operator"}),
            "kube-dns": Peer("kube-dns", {"k8s-app": "kube-dns"}, "kube-system"),
            "cnpg-operator": Peer("cnpg-operator", {"app.kubernetes.io/name": "cloudnative-pg"}, "cnpg-system"),
            "edge": Peer("edge", {"app": "ingress-controller"}, "ingress"),
            "prometheus": Peer("prometheus", {"app.kubernetes.io/name": "prometheus"}, "monitoring"),
            "stranger": Peer("stranger", {"app.kubernetes.io/name": "intake"}, "elsewhere"),  # same labels, wrong ns
            "internet": Peer("internet", ip="203.0.113.7"),
            "private-host": Peer("private-host", ip="10.20.30.40"),
        }
        for d in docs:
            if d["kind"] == "Cluster" and d["apiVersion"].startswith("postgresql.cnpg.io/"):
                name = d["metadata"]["name"]
                self.pods[name] = Peer(name, {"cnpg.io/cluster": name, "cnpg.io/podRole": "instance"})

    def _side(self, pod: Peer, direction: str, other: Peer, port: int, protocol: str) -> bool:
        if pod.ip or pod.namespace != "sandan":
            return True  # no policies of ours there
        kind = direction.capitalize()
        selecting = [p for p in self.policies if kind in p["spec"]["policyTypes"]
                     and _selects(p["spec"]["podSelector"], pod.labels)]
        return not selecting or any(_rule_allows(r, direction, other, port, protocol)
                                    for p in selecting for r in p["spec"].get(direction, []))

    def allows(self, src: str, dst: str, port: int, protocol: str = "TCP") -> bool:
        a, b = self.pods[src], self.pods[dst]
        return self._side(a, "egress", b, port, protocol) and self._side(b, "ingress", a, port, protocol)


def _flows(overlay: str) -> tuple[list[tuple], list[tuple]]:
    kc = 8443 if overlay == "county" else 8080
    allowed = [("notify", "intake", 50051), ("notify", "dispatch", 50052),
               ("gateway", "keycloak", kc), ("edge", "keycloak", kc), ("edge", "gateway", 8000),
               ("keycloak", "sandan-keycloak-db", 5432), ("keycloak", "keycloak", 7800),
               ("sandan-pg", "sandan-pg", 5432), ("cnpg-operator", "sandan-pg", 8000),
               ("cnpg-operator", "sandan-keycloak-db", 8000), ("broker", "broker", 9090), ("broker", "broker", 9091),
               ("entity-operator", "broker", 9091), ("cluster-operator", "broker", 9091),
               ("notify", "internet", 443), ("notify", "internet", 587),
               ("internet", "broker", 9094), ("keycloak", "kube-dns", 53, "UDP"),
               ("gateway", "sandan-pg", 5432), ("gateway", "broker", 9093),
               ("gateway", "kube-dns", 53, "UDP"),
               # Prometheus: the brokers' metrics, the Kafka Exporter (which reads the brokers), PostgreSQL's
               ("prometheus", "broker", 9404), ("prometheus", "kafka-exporter", 9404),
               ("kafka-exporter", "broker", 9091), ("prometheus", "sandan-pg", 9187),
               ("prometheus", "sandan-keycloak-db", 9187)]
    denied = [("intake", "scoring", 50053), ("intake", "notify", 50054), ("intake", "dispatch", 50052),
              ("dispatch", "intake", 50051), ("scoring", "intake", 50051), ("keycloak", "broker", 9093),
              ("keycloak", "sandan-pg", 5432), ("gateway", "sandan-keycloak-db", 5432), ("gateway", "broker", 9094),
              ("gateway", "internet", 443), ("internet", "gateway", GATEWAY_PORT), ("gateway", "edge", 443),
              ("prometheus", "sandan-pg", 5432), ("prometheus", "broker", 9093), ("stranger", "sandan-pg", 9187),
              ("stranger", "kafka-exporter", 9404),
              ("stranger", "gateway", GATEWAY_PORT), ("intake", "gateway", GATEWAY_PORT),
              ("gateway", "private-host", 443),
              ("stranger", "intake", 50051), ("stranger", "broker", 9093), ("stranger", "sandan-pg", 5432),
              ("stranger", "keycloak", kc), ("edge", "intake", 50051), ("edge", "broker", 9093),
              ("intake", "internet", 443), ("scoring", "internet", 443), ("keycloak", "internet", 443),
              ("notify", "private-host", 443), ("notify", "internet", 80), ("broker", "broker", 9092)]
    for service, port in SERVICES.items():
        allowed += [(service, "broker", 9093), (service, "sandan-pg", 5432), (service, "keycloak", kc),
                    (service, "kube-dns", 53, "UDP"), (service, "kube-dns", 53, "TCP"), ("gateway", service, port)]
        if overlay == "county":  # Keycloak's plain HTTP port exists only in the local overlay
            denied += [(service, "keycloak", 8080), ("gateway", "keycloak", 8080), ("edge", "keycloak", 8080)]
        denied += [(service, "sandan-keycloak-db", 5432), (service, "broker", 9094), ("internet", service, port),
                   ("stranger", service, METRICS_PORT), ("edge", service, METRICS_PORT), ("prometheus", service, port)]
        allowed += [("prometheus", service, METRICS_PORT)]
    allowed += [("prometheus", "gateway", METRICS_PORT)]
    denied += [("stranger", "gateway", METRICS_PORT), ("edge", "gateway", METRICS_PORT),
               ("prometheus", "gateway", GATEWAY_PORT)]
    return allowed, denied


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_allow_the_designed_flows_only(overlay: str) -> None:
    net = Network(overlay)
    (deny,) = [p for p in net.policies if p["metadata"]["name"] == "default-deny-all"]
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    allowed, denied = _flows(overlay)
    wrong = [f"{f} should be allowed" for f in allowed if not net.allows(*f)]
    wrong += [f"{f} should be denied" for f in denied if net.allows(*f)]
    assert not wrong, "\n".join(wrong)
    for p in net.policies:  # no policy selects nothing (a typo in a label would)
        assert any(_selects(p["spec"]["podSelector"], pod.labels) for pod in net.pods.values()
                   if pod.namespace == "sandan" and not pod.ip), p["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_workload_has_a_disruption_budget_that_lets_nodes_drain(overlay: str) -> None:
    docs = RENDERED[overlay]
    budgets = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    workloads = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
    assert {w["metadata"]["name"] for w in workloads} == {*WORKLOADS, "keycloak"}
    for w in workloads:
        labels = w["spec"]["template"]["metadata"]["labels"]
        (budget,) = [b for b in budgets if _selects(b["spec"]["selector"], labels)]
        replicas = w["spec"].get("replicas", 1)
        spec = budget["spec"]
        if "maxUnavailable" in spec:
            assert spec["maxUnavailable"] >= 1
        else:
            assert spec["minAvailable"] < replicas, f"{w['metadata']['name']}: a drain could never evict it"
        assert spec.get("unhealthyPodEvictionPolicy") == "AlwaysAllow"
    for b in budgets:
        assert any(_selects(b["spec"]["selector"], w["spec"]["template"]["metadata"]["labels"]) for w in workloads)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_intake_reads_its_key_encryption_keys_from_a_mounted_secret(overlay: str) -> None:
    """Residents' data keys are wrapped by the KEKs: a file from the Secret sandan-intake-kek (never an environment
    variable), without which intake refuses to start."""
    env, sources = _environment(overlay, "intake"), _sources(overlay, "intake")
    assert "INTAKE_KEK" not in env
    assert _mounted_files(overlay, "intake")[env["INTAKE_KEK_FILE"]] == ("sandan-intake-kek", "keyring")
    assert sources["INTAKE_KEK_FILE"][0] == "configmap"
    assert int(env["INTAKE_RETENTION_DAYS"]) >= 1
    keyring = _secrets_for(overlay)["sandan-intake-kek"]["keyring"]
    if overlay == "local":  # a generated development value: one the service accepts
        from sandan_intake.keys import Keyring

        assert Keyring.parse(keyring).ids == ("dev",)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_dispatch_reads_its_own_key_encryption_keys_from_a_mounted_secret(overlay: str) -> None:
    """The demands' data keys (sealing the notes about services) are wrapped by dispatch's own KEKs: a file from the
    Secret sandan-dispatch-kek, never an environment variable and never intake's Secret."""
    env, sources = _environment(overlay, "dispatch"), _sources(overlay, "dispatch")
    assert "DISPATCH_KEK" not in env
    assert _mounted_files(overlay, "dispatch")[env["DISPATCH_KEK_FILE"]] == ("sandan-dispatch-kek", "keyring")
    assert sources["DISPATCH_KEK_FILE"][0] == "configmap"
    assert ("sandan-dispatch-kek", "keyring") not in _mounted_files(overlay, "intake").values()
    secrets = _secrets_for(overlay)
    keyring = secrets["sandan-dispatch-kek"]["keyring"]
    if overlay == "local":  # a generated development value: one the service accepts, and not intake's
        from sandan_dispatch.keys import Keyring

        assert Keyring.parse(keyring).ids == ("dev-dispatch",)
        assert keyring.split(":", 1)[1] not in secrets["sandan-intake-kek"]["keyring"]


# ------------------------------------------------------------------------------ gRPC TLS, places, the gateway


def _cert_manager_docs() -> list[dict]:
    return render(CERT_MANAGER)


def _grpc_dns_names() -> set[str]:
    (cert,) = [d for d in _cert_manager_docs() if d["kind"] == "Certificate"
               and d["spec"]["secretName"] == "sandan-grpc-tls"]
    return set(cert["spec"]["dnsNames"])


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", SERVICES)
def test_services_serve_grpc_over_tls_except_locally(overlay: str, service: str) -> None:
    """Every service binds with the certificate from sandan-grpc-tls and checks the others with its CA; only the
    local overlay serves plaintext, and says so (SANDAN_GRPC_PLAINTEXT=allow, which the runtime refuses otherwise)."""
    from sandan_eventbus.security import GrpcTlsSettings

    env = _environment(overlay, service)
    grpc_vars = {k: v for k, v in env.items() if k.startswith("SANDAN_GRPC_")}
    if overlay == "local":
        assert grpc_vars == {"SANDAN_GRPC_PLAINTEXT": "allow"}
        return
    assert "SANDAN_GRPC_PLAINTEXT" not in env, "plaintext gRPC outside the local overlay"
    files = _mounted_files(overlay, service)
    assert files[env["SANDAN_GRPC_TLS_CERT_FILE"]] == ("sandan-grpc-tls", "tls.crt")
    assert files[env["SANDAN_GRPC_TLS_KEY_FILE"]] == ("sandan-grpc-tls", "tls.key")
    assert files[env["SANDAN_GRPC_TLS_CA_FILE"]] == ("sandan-grpc-tls", "ca.crt")
    settings = GrpcTlsSettings.model_validate({k[len("SANDAN_GRPC_"):].lower(): v for k, v in grpc_vars.items()})
    assert settings.tls_cert_file and not settings.plaintext_allowed
    # the names callers use and the probe checks are on the certificate cert-manager makes
    names = _grpc_dns_names()
    assert service in names
    probe = pod_spec(_workload(overlay, service))["containers"][0]["readinessProbe"]["exec"]["command"]
    assert probe[3] in names
    if service == "notify":
        for peer in ("intake", "dispatch"):
            assert env[f"NOTIFY_{peer.upper()}_ADDRESS"].split(":")[0] in names


def test_the_grpc_certificate_is_issued_by_a_ca_of_its_own() -> None:
    docs = _cert_manager_docs()
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    assert all(d["metadata"]["namespace"] == "sandan" for d in docs)
    (cert,) = [d for d in docs if d["kind"] == "Certificate" and d["spec"]["secretName"] == "sandan-grpc-tls"]
    issuer = by_name[("Issuer", cert["spec"]["issuerRef"]["name"])]
    ca = by_name[("Certificate", issuer["spec"]["ca"]["secretName"])]
    assert ca["spec"]["isCA"] is True and ca["spec"]["secretName"] == issuer["spec"]["ca"]["secretName"]
    assert "selfSigned" in by_name[("Issuer", ca["spec"]["issuerRef"]["name"])]["spec"]
    assert "server auth" in cert["spec"]["usages"] and not cert["spec"].get("isCA")
    for service in SERVICES:
        names = {service, f"{service}.sandan.svc", f"{service}.sandan.svc.cluster.local"}
        assert names <= set(cert["spec"]["dnsNames"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_gateway_calls_the_services_as_their_certificate_names_them(overlay: str) -> None:
    from sandan_eventbus.security import GrpcTlsSettings

    env = _environment(overlay, "gateway")
    for service, port in SERVICES.items():
        assert env[f"GATEWAY_{service.upper()}_ADDRESS"] == f"{service}:{port}"
    grpc_vars = {k[len("SANDAN_GRPC_"):].lower(): v for k, v in env.items() if k.startswith("SANDAN_GRPC_")}
    settings = GrpcTlsSettings.model_validate(grpc_vars)
    if overlay == "local":
        assert settings.plaintext_allowed and not settings.tls_ca_file
        return
    assert not settings.plaintext_allowed
    assert not settings.tls_cert_file and not settings.tls_key_file, "the gateway holds no service's key"
    files = _mounted_files(overlay, "gateway")
    assert files[settings.tls_ca_file] == ("sandan-grpc-tls", "ca.crt")
    assert not [f for f, (secret, key) in files.items() if secret == "sandan-grpc-tls" and key != "ca.crt"]


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", sorted(WORKLOADS))
def test_everyone_reads_the_same_places_file(overlay: str, service: str) -> None:
    from sandan_eventbus.auth.scopes import Places
    from sandan_gateway.places import Directory

    env = _environment(overlay, service)
    name, key = _mounted_config(overlay, service)[env["SANDAN_PLACES_FILE"]]
    text = _index(RENDERED[overlay])[("ConfigMap", name)]["data"][key]
    assert Places.parse(text).county_id and Directory.parse(text).communities
    expected = {"local": K8S / "base" / "places.toml", "county": K8S / "overlays" / "county" / "places.toml"}
    assert text == expected[overlay].read_text(encoding="utf-8")


def test_the_example_places_are_the_local_ones() -> None:
    assert (K8S / "base" / "places.toml").read_text(encoding="utf-8") == \
        (ROOT / "deploy" / "local" / "places.toml").read_text(encoding="utf-8")


def _loaded_settings(env: dict[str, str], cls: type, monkeypatch: pytest.MonkeyPatch):
    from sandan_eventbus.security import load

    for name in list(os.environ):
        if name.startswith(("GATEWAY_", "SANDAN_", "KAFKA_")):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load(cls)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_gateway_is_configured(overlay: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from sandan_eventbus.security import OidcSettings
    from sandan_gateway.settings import Settings

    docs = _index(RENDERED[overlay])
    env, sources = _environment(overlay, "gateway"), _sources(overlay, "gateway")
    settings = _loaded_settings(env, Settings, monkeypatch)
    assert (settings.http_host, settings.http_port) == ("0.0.0.0", GATEWAY_PORT)
    assert settings.live == "on" and settings.session_url.startswith("postgresql://")
    if overlay == "local":  # the county's values are placeholders here
        assert len(settings.signing_secret()) >= 32 and settings.web_secret()
    assert sources["GATEWAY_SESSION_SECRET"] == ("secret", "sandan-gateway-session", "secret")
    assert sources["GATEWAY_WEB_CLIENT_SECRET"] == ("secret", "sandan-oidc-web", "client-secret")
    assert _sources(overlay, "keycloak")["SANDAN_WEB_CLIENT_SECRET"] == sources["GATEWAY_WEB_CLIENT_SECRET"]
    assert _mounted_files(overlay, "gateway")[settings.open311_keys_file] == ("sandan-open311-keys", "keys.toml")
    oidc = _loaded_settings(env, OidcSettings, monkeypatch)
    assert oidc.client_id == "sandan-gateway" and oidc.client_secret
    realm = json.loads(REALM.render(overlay == "local"))
    (web,) = [c for c in realm["clients"] if c["clientId"] == settings.web_client_id]
    keycloak = _environment(overlay, "keycloak")
    if overlay == "county":  # the realm's redirect URIs come from SANDAN_WEB_URL: the gateway's public address
        assert settings.public_url == keycloak["SANDAN_WEB_URL"] and settings.secure_cookies
        assert any(u.startswith("${SANDAN_WEB_URL}") for u in web["redirectUris"])
    else:
        assert f"{settings.public_url}/*" in web["redirectUris"]
        from sandan_gateway.open311 import Partners

        keys = _secrets_for(overlay)["sandan-open311-keys"]["keys.toml"]
        path = Path(os.environ.get("TMPDIR", "/tmp")) / f"sandan-open311-{os.getpid()}.toml"
        path.write_text(keys, encoding="utf-8")
        try:
            assert Partners.from_file(str(path)).partners
        finally:
            path.unlink()
    # the container: HTTP probes on /healthz, the port the Service targets, hardened like the services
    w = _workload(overlay, "gateway")
    spec = pod_spec(w)
    c = spec["containers"][0]
    assert c["name"] == "gateway" and spec["serviceAccountName"] == "gateway"
    assert spec["automountServiceAccountToken"] is False and spec["securityContext"]["runAsNonRoot"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": GATEWAY_PORT, "metrics": METRICS_PORT}  # people; Prometheus (observability/)
    assert _environment(overlay, "gateway")["GATEWAY_METRICS_PORT"] == str(METRICS_PORT)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
    healthcheck = (ROOT / "services/gateway/src/sandan_gateway/healthcheck.py").read_text(encoding="utf-8")
    assert "/healthz" in healthcheck
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"] and sc["capabilities"]["drop"] == ["ALL"]
    assert {"cpu", "memory"} <= set(c["resources"]["limits"])
    svc = docs[("Service", "gateway")]
    assert [(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [(GATEWAY_PORT, "http")]
    assert w["spec"]["replicas"] == (2 if overlay == "county" else 1)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_gateway_reads_the_discovery_document_inside_the_cluster(overlay: str) -> None:
    """The issuer's public address (locally http://localhost:8080, the port-forward's) need not be reachable from
    the gateway's pod: it reads the discovery document at Keycloak's Service (SANDAN_OIDC_DISCOVERY_URL), which
    names the public issuer and authorization endpoint and the internal token and keys endpoints. The pod has
    the gateway's container only (no forwarder)."""
    env = _environment(overlay, "gateway")
    issuer = urlparse(env["SANDAN_OIDC_ISSUER"])
    discovery = urlparse(env["SANDAN_OIDC_DISCOVERY_URL"])
    assert discovery.hostname == "keycloak" and discovery.path == issuer.path + "/.well-known/openid-configuration"
    if overlay == "local":
        assert issuer.hostname == "localhost"
    spec = pod_spec(_workload(overlay, "gateway"))
    assert [c["name"] for c in spec["containers"]] == ["gateway"]
    assert not [d for d in RENDERED[overlay] if "loopback" in d["metadata"]["name"]]


def test_the_county_ingress_serves_the_public_addresses() -> None:
    docs = _index(RENDERED["county"])
    keycloak = _environment("county", "keycloak")
    gateway = _environment("county", "gateway")
    ingresses = [d for d in RENDERED["county"] if d["kind"] == "Ingress"]
    routes = {}
    for ing in ingresses:
        tls_hosts = {h for t in ing["spec"]["tls"] for h in t["hosts"]}
        for rule in ing["spec"]["rules"]:
            assert rule["host"] in tls_hosts, f"{rule['host']}: no TLS"
            (path,) = rule["http"]["paths"]
            backend = path["backend"]["service"]
            svc = docs[("Service", backend["name"])]
            assert backend["port"]["name"] in {p["name"] for p in svc["spec"]["ports"]}
            routes[rule["host"]] = backend["name"]
    assert routes == {urlparse(keycloak["KC_HOSTNAME"]).hostname: "keycloak",
                      urlparse(gateway["GATEWAY_PUBLIC_URL"]).hostname: "gateway"}


# ----------------------------------------------------------------------------------------- the helper scripts


def _health_server(tls: tuple[bytes, bytes] | None):
    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    server = grpc.server(__import__("concurrent.futures").futures.ThreadPoolExecutor(2))
    servicer = health.HealthServicer()
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    servicer.set("liveness", health_pb2.HealthCheckResponse.SERVING)
    servicer.set("other", health_pb2.HealthCheckResponse.NOT_SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    if tls:
        port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(tls[1], tls[0])]))
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def _self_signed(tmp: Path, name: str) -> tuple[bytes, bytes]:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    (tmp / "ca.crt").write_bytes(pem)
    return pem, key_pem


def _probe(port: int, *args: str, ca: str = "") -> int:
    import sys

    env = {k: v for k, v in os.environ.items() if k != "SANDAN_GRPC_TLS_CA_FILE"}
    if ca:
        env["SANDAN_GRPC_TLS_CA_FILE"] = ca
    return subprocess.run([sys.executable, str(K8S / "base" / "grpc-probe.py"), str(port), *args], env=env,
                          capture_output=True, timeout=30).returncode


def test_the_grpc_probe_asks_health_over_tls_and_plaintext(tmp_path: Path) -> None:
    server, port = _health_server(_self_signed(tmp_path, "intake"))
    try:
        ca = str(tmp_path / "ca.crt")
        assert _probe(port, "intake", ca=ca) == 0
        assert _probe(port, "intake", "liveness", ca=ca) == 0
        assert _probe(port, "intake", "other", ca=ca) == 1
        assert _probe(port, "dispatch", ca=ca) == 1, "the certificate's name is checked"
        assert _probe(port, "intake") == 1, "no plaintext to a TLS port"
    finally:
        server.stop(None)
    server, port = _health_server(None)
    try:
        assert _probe(port, "intake") == 0
    finally:
        server.stop(None)
    assert _probe(port, "intake") == 1  # stopped
    assert _probe(port) == 2  # usage
