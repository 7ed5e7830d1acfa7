"""Offline checks of the Kubernetes manifests in deploy/k8s (no cluster, no network).

Overlays are rendered by a small kustomize subset implemented here (the features the manifests use, and a
test that fails when a kustomization uses any other); when `kubectl` or `kustomize` is on PATH, the real
render is compared with it. Strimzi and CloudNativePG resources are validated against their CRDs' OpenAPI
schemas from ../shared/crds, closed against unknown fields (the API server would silently prune a typo).
"""

from __future__ import annotations

import base64
import copy
import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = {"county": K8S / "overlays" / "county", "local": K8S / "overlays" / "local"}
CRDS = ROOT.parent / "shared" / "crds"
SECRETS_EXAMPLE = K8S / "secrets.example.yaml"

SERVICES = {"intake": 50051, "dispatch": 50052, "scoring": 50053, "notify": 50054}
SINGLE_REPLICA = {"scoring", "notify"}  # scoring: one fold; notify: two replicas would send twice

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
             "generatorOptions"}
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
                by = MERGE_KEYS[k]
                merged = [dict(item) for item in out[k]]
                for item in v:
                    match = next((i for i, m in enumerate(merged) if m.get(by) == item.get(by)), None)
                    if match is None:
                        merged.append(item)
                    else:
                        merged[match] = merge_patch(merged[match], item, strategic)
                out[k] = merged
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
            elif op["op"] == "replace":
                node[index] = copy.deepcopy(op["value"])
            elif op["op"] == "remove":
                del node[index]
            else:
                raise AssertionError(f"unsupported JSON patch op {op['op']}")
        else:
            if op["op"] in ("add", "replace"):
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
    if "name" in target and not re.fullmatch(target["name"], doc["metadata"]["name"]):
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
    """No stray manifest: every YAML is a kustomization, referenced by one, or the documented secrets example."""
    used = {SECRETS_EXAMPLE}
    for directory in kustomization_dirs():
        kz = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
        used.add(directory / "kustomization.yaml")
        used |= {(directory / e).resolve() for e in kz.get("resources", []) if (directory / e).is_file()}
        used |= {(directory / p["path"]).resolve() for p in kz.get("patches", []) if "path" in p}
    assert sorted(set(all_yaml()) - used) == []


def test_topics_yaml_is_generated_from_the_registry() -> None:
    spec = importlib.util.spec_from_file_location("sandan_k8s_generate", K8S / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    committed = (K8S / "base" / "topics.yaml").read_text(encoding="utf-8")
    assert committed == module.render(), "base/topics.yaml is stale: run .venv/bin/python deploy/k8s/generate.py"


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
    assert set(workloads) == set(SERVICES) and set(services) == set(SERVICES)
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
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert c[probe]["grpc"]["port"] == port, f"{name}: {probe} must be a gRPC probe on {port}"
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
    text = (ROOT / "services" / service / "src" / f"sandan_{service}" / "settings.py").read_text(encoding="utf-8")
    return set(re.findall(r"""\brequired\(\s*["']([A-Z0-9_]+)["']""", text))


def _secrets_for(overlay: str) -> dict[str, dict[str, str]]:
    """Secret name -> {key: value}: generated in the overlay, else the documented example (values unknown)."""
    docs = RENDERED[overlay] + ([] if overlay == "local" else load_docs(SECRETS_EXAMPLE))
    out = {}
    for d in docs:
        if d["kind"] == "Secret":
            values = {k: base64.b64decode(v).decode() for k, v in d.get("data", {}).items()}
            out[d["metadata"]["name"]] = {**values, **d.get("stringData", {})}
    return out


def _environment(overlay: str, service: str) -> dict[str, str]:
    """The container's environment as Kubernetes builds it ($(VAR) expanded; secret values as in _secrets_for)."""
    docs = _index(RENDERED[overlay])
    secrets = _secrets_for(overlay)
    kind = "StatefulSet" if ("StatefulSet", service) in docs else "Deployment"
    (c,) = pod_spec(docs[(kind, service)])["containers"]
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
    assert set(CONDITIONAL) <= _settings_required("notify")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_point_at_the_platform(overlay: str) -> None:
    """Bootstrap servers, database hosts, roles and passwords line up with the Kafka and CNPG resources."""
    docs = RENDERED[overlay]
    (kafka,) = [d for d in docs if d["kind"] == "Kafka"]
    (pg,) = [d for d in docs if d["kind"] == "Cluster"]
    plain = next(lst for lst in kafka["spec"]["kafka"]["listeners"] if lst["type"] == "internal" and not lst["tls"])
    roles = {r["name"]: r["passwordSecret"]["name"] for r in pg["spec"]["managed"]["roles"]}
    databases = {d["spec"]["name"]: d["spec"] for d in docs if d["kind"] == "Database"}
    secrets = _secrets_for(overlay)
    for service in SERVICES:
        env = _environment(overlay, service)
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == f"{kafka['metadata']['name']}-kafka-bootstrap:{plain['port']}"
        url_var = "SCORING_DATABASE_URL" if service == "scoring" else f"{service.upper()}_EVENTSTORE_URL"
        m = re.fullmatch(r"postgresql://([^:]+):([^@]+)@([^:/]+):5432/(\w+)", env[url_var])
        assert m, f"{service}: {url_var} {env[url_var]!r}"
        user, password, host, dbname = m.groups()
        assert host == f"{pg['metadata']['name']}-rw"
        assert databases[dbname]["owner"] == user and databases[dbname]["cluster"]["name"] == pg["metadata"]["name"]
        secret = secrets[roles[user]]
        assert secret["username"] == user and secret["password"] == password, f"{service}: role password source"
    for secret_name in roles.values():
        assert secret_name in secrets


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


def _custom_resources() -> list[tuple[str, dict]]:
    """Every Strimzi/CNPG resource: as written (base, platform) and as each overlay renders it."""
    found = []
    for name, docs in RENDERED.items():
        found += [(f"{name}:{d['kind']}/{d['metadata']['name']}", d) for d in docs]
    for path in (K8S / "base", K8S / "platform"):
        found += [(f"{path.name}:{d['kind']}/{d['metadata']['name']}", d) for d in render(path)]
    return [(label, d) for label, d in found if d["apiVersion"].split("/")[0].endswith(("strimzi.io", "cnpg.io"))]


def test_custom_resources_validate_against_their_crds() -> None:
    if not CRDS.is_dir():
        pytest.skip(f"CRD schemas not found at {CRDS} (a checkout without ../shared): CR schema check skipped")
    schemas = _crd_schemas()
    resources = _custom_resources()
    kinds = {d["kind"] for _, d in resources}
    assert {"Kafka", "KafkaNodePool", "KafkaTopic", "Cluster", "Database"} <= kinds
    errors = []
    for label, doc in resources:
        schema = schemas.get((doc["apiVersion"], doc["kind"]))
        if schema is None:
            errors.append(f"{label}: {doc['apiVersion']} {doc['kind']} is not served by the CRDs in {CRDS}")
            continue
        for error in jsonschema.Draft7Validator(schema).iter_errors(doc):
            errors.append(f"{label}: {'/'.join(map(str, error.absolute_path))}: {error.message}")
    assert not errors, "\n".join(errors)


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
        pytest.skip("neither kustomize nor kubectl on PATH: the render is checked by the test's subset only")
    result = subprocess.run([*command, str(OVERLAYS[overlay])], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    real = _index([d for d in yaml.safe_load_all(result.stdout) if d])
    ours = _index(RENDERED[overlay])
    assert sorted(real) == sorted(ours)
    for k in real:
        assert real[k] == ours[k], f"{overlay}: {k} renders differently from {' '.join(command)}"
