"""Offline checks of docker-compose.yml (no Docker engine here: the file is parsed, not run).

Every service gets the settings its settings.py requires, images are pinned, every file and service it refers
to exists, PostgreSQL URLs carry no password, and the services' OpenID Connect settings agree with Keycloak's
and with the local realm it imports. gRPC is plaintext (allowed explicitly), everyone reads the local places
file, only the callers (notify, the gateway) hold a client secret, and the gateway serves the pages on :8000,
reading the issuer's discovery document at Keycloak's internal address (no forwarder to its public one).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from tests.deploy.settings_env import required_variables

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
SERVICES = {"intake": 50051, "dispatch": 50052, "scoring": 50053, "notify": 50054}
# Names notify's settings.py requires only under a condition (as in test_k8s_manifests.py).
CONDITIONAL = {"NOTIFY_SMTP_HOST": None, "NOTIFY_SMTP_FROM": "NOTIFY_SMTP_HOST",
               "NOTIFY_WECHAT_TEMPLATE_ID": "NOTIFY_WECHAT_URL"}


def _env(name: str) -> dict[str, str]:
    env = COMPOSE["services"][name].get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _required(service: str) -> set[str]:
    return required_variables(service)


CALLERS = {"notify", "gateway"}  # their code calls other services as themselves (tests/deploy/test_k8s_manifests.py)


def test_the_stack_has_its_parts() -> None:
    assert {*SERVICES, "gateway", "kafka", "postgres", "keycloak", "topics"} <= \
        set(COMPOSE["services"])


@pytest.mark.parametrize("name", sorted(COMPOSE["services"]))
def test_images_are_pinned_and_files_exist(name: str) -> None:
    service = COMPOSE["services"][name]
    if "build" in service:
        build = service["build"]
        context = ROOT / build["context"]
        assert context.is_dir() and (context / build["dockerfile"]).is_file(), f"{name}: build files"
    else:
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {image} has no tag"
        assert re.fullmatch(r"\d+\.\d+(\.\d+)?([-.][\w.]+)?", tag), f"{name}: {image} is not pinned to a release"
    for volume in service.get("volumes", []):
        source = volume.split(":", 1)[0]
        if source.startswith((".", "/")):
            assert (ROOT / source).exists(), f"{name}: mounts missing {source}"
        else:
            assert source in (COMPOSE.get("volumes") or {}), f"{name}: undeclared volume {source}"
    for dependency in service.get("depends_on", {}):
        assert dependency in COMPOSE["services"], f"{name}: depends on unknown {dependency}"
        if "healthy" in str(service["depends_on"][dependency]):
            assert "healthcheck" in COMPOSE["services"][dependency], f"{dependency} has no healthcheck"


@pytest.mark.parametrize("service", SERVICES)
def test_services_get_their_required_settings(service: str) -> None:
    env = _env(service)
    required = _required(service)
    assert "KAFKA_BOOTSTRAP_SERVERS" in required  # the regex still finds settings.py's required(...) calls
    for name in sorted(required):
        if name in CONDITIONAL:
            condition = CONDITIONAL[name]
            if condition and env.get(condition):
                assert env.get(name), f"{service}: {name} is required once {condition} is set"
            continue
        assert env.get(name, "").strip(), f"{service}: required {name} is not set"
    assert env[next(k for k in env if k.endswith("_GRPC_ADDRESS"))] == f"0.0.0.0:{SERVICES[service]}"
    assert env["KAFKA_BOOTSTRAP_SERVERS"].split(":")[0] == "kafka"
    ports = [p.split(":")[0] for p in COMPOSE["services"][service].get("ports", [])]
    assert ports == [str(SERVICES[service])]
    if service == "notify":
        for peer in ("intake", "dispatch"):
            assert env[f"NOTIFY_{peer.upper()}_ADDRESS"] == f"{peer}:{SERVICES[peer]}"


@pytest.mark.parametrize("service", [*SERVICES, "gateway"])
def test_database_urls_carry_no_password(service: str) -> None:
    env = _env(service)
    postgres = _env("postgres")
    urls = {k: v for k, v in env.items() if v.startswith("postgresql://")}
    assert urls, f"{service}: no PostgreSQL URL"
    for name, url in urls.items():
        parsed = urlparse(url)
        assert parsed.password is None, f"{service}: {name} has a password in it"
        assert parsed.hostname == "postgres" and parsed.username == postgres["POSTGRES_USER"]
    assert env["PGPASSWORD"] == postgres["POSTGRES_PASSWORD"]


def test_keycloak_is_the_pinned_release_with_the_local_realm() -> None:
    keycloak = COMPOSE["services"]["keycloak"]
    (version,) = re.findall(r"^VERSION=(\S+)$", (ROOT / "deploy/local/keycloak.sh").read_text(encoding="utf-8"),
                            re.M)
    assert keycloak["image"] == f"quay.io/keycloak/keycloak:{version}"
    k8s = (ROOT / "deploy/k8s/platform/keycloak.yaml").read_text(encoding="utf-8")
    assert f"image: quay.io/keycloak/keycloak:{version}" in k8s, "compose and k8s run the same release"
    assert "--import-realm" in keycloak["command"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in keycloak["volumes"]}
    assert mounts["/opt/keycloak/data/import/sandan-realm.json"] == "./deploy/local/keycloak/sandan-realm.json"


@pytest.mark.parametrize("service", [*SERVICES, "gateway"])
def test_services_trust_keycloak_and_hold_their_client(service: str) -> None:
    realm = json.loads((ROOT / "deploy/local/keycloak/sandan-realm.json").read_text(encoding="utf-8"))
    keycloak = _env("keycloak")
    env = _env(service)
    assert env["SANDAN_OIDC_ISSUER"] == f"{keycloak['KC_HOSTNAME']}/realms/{realm['realm']}"
    assert keycloak["KC_HOSTNAME_BACKCHANNEL_DYNAMIC"] == "true", "containers fetch from keycloak:8080"
    published = {p.split(":")[1]: p.split(":")[0] for p in COMPOSE["services"]["keycloak"]["ports"]}
    assert urlparse(keycloak["KC_HOSTNAME"]).port == int(published["8080"]), "the issuer is reachable from the host"
    base = f"http://keycloak:8080/realms/{realm['realm']}/protocol/openid-connect"
    assert (env["SANDAN_OIDC_JWKS_URL"], env["SANDAN_OIDC_TOKEN_URL"]) == (f"{base}/certs", f"{base}/token")
    discovery = f"http://keycloak:8080/realms/{realm['realm']}/.well-known/openid-configuration"
    assert env["SANDAN_OIDC_DISCOVERY_URL"] == discovery
    assert env["SANDAN_OIDC_AUDIENCE"] == "sandan"
    assert "keycloak" in COMPOSE["services"][service].get("depends_on", {})
    if service not in CALLERS:  # calls no one: no client secret to leak
        assert "SANDAN_OIDC_CLIENT_ID" not in env and "SANDAN_OIDC_CLIENT_SECRET" not in env
        return
    clients = {c["clientId"]: c for c in realm["clients"]}
    client = clients[env["SANDAN_OIDC_CLIENT_ID"]]
    assert env["SANDAN_OIDC_CLIENT_ID"] == f"sandan-{service}" and client["serviceAccountsEnabled"]
    assert env["SANDAN_OIDC_CLIENT_SECRET"] == client["secret"]


def test_intake_gets_its_key_encryption_keys_as_a_mounted_file() -> None:
    from sandan_intake.keys import Keyring

    env = _env("intake")
    mounts = {v.split(":")[1]: v.split(":")[0] for v in COMPOSE["services"]["intake"]["volumes"]}
    source = ROOT / mounts[env["INTAKE_KEK_FILE"]]
    assert Keyring.parse(source.read_text(encoding="utf-8")).ids == ("dev",)  # the published local value


def test_dispatch_gets_its_own_key_encryption_keys_as_a_mounted_file() -> None:
    from sandan_dispatch.keys import Keyring as DispatchKeyring
    from sandan_intake.keys import Keyring as IntakeKeyring

    env = _env("dispatch")
    assert "DISPATCH_KEK" not in env
    source = ROOT / _mounts("dispatch")[env["DISPATCH_KEK_FILE"]]
    dispatch = DispatchKeyring.parse(source.read_text(encoding="utf-8"))
    assert dispatch.ids == ("dev-dispatch",)  # the published local value
    intake = IntakeKeyring.parse((ROOT / _mounts("intake")[_env("intake")["INTAKE_KEK_FILE"]]).read_text("utf-8"))
    assert not {k for _, k in dispatch.keks} & {k for _, k in intake.keks}  # never intake's key


def _mounts(service: str) -> dict[str, str]:
    return {v.split(":")[1]: v.split(":")[0] for v in COMPOSE["services"][service].get("volumes", [])}


@pytest.mark.parametrize("service", [*SERVICES, "gateway"])
def test_plaintext_grpc_is_allowed_and_places_are_mounted(service: str) -> None:
    from sandan_eventbus.auth.scopes import Places

    env = _env(service)
    assert env["SANDAN_GRPC_PLAINTEXT"] == "allow"
    assert not [k for k in env if k.startswith("SANDAN_GRPC_TLS_")]
    source = _mounts(service)[env["SANDAN_PLACES_FILE"]]
    assert source == "./deploy/local/places.toml" and Places.parse((ROOT / source).read_text(encoding="utf-8"))


def test_the_gateway_serves_the_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    from sandan_eventbus.security import GrpcTlsSettings, OidcSettings, load
    from sandan_gateway.open311 import Partners
    from sandan_gateway.settings import Settings

    env = _env("gateway")
    for name in [n for n in __import__("os").environ if n.startswith(("GATEWAY_", "SANDAN_", "KAFKA_"))]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings, oidc, tls = load(Settings), load(OidcSettings), load(GrpcTlsSettings)
    assert (settings.http_host, settings.http_port) == ("0.0.0.0", 8000)
    assert COMPOSE["services"]["gateway"]["ports"] == [f"{settings.http_port}:{settings.http_port}"]
    for service, port in SERVICES.items():
        assert getattr(settings, f"{service}_address") == f"{service}:{port}"
        assert service in COMPOSE["services"]["gateway"]["depends_on"]
    assert tls.channel_credentials() is None  # plaintext, allowed
    assert len(settings.signing_secret()) >= 32
    realm = json.loads((ROOT / "deploy/local/keycloak/sandan-realm.json").read_text(encoding="utf-8"))
    web = {c["clientId"]: c for c in realm["clients"]}[settings.web_client_id]
    assert settings.web_secret() == web["secret"] and f"{settings.public_url}/*" in web["redirectUris"]
    assert oidc.client_id == "sandan-gateway"
    keys = ROOT / _mounts("gateway")[settings.open311_keys_file]
    assert Partners.from_file(str(keys)).partners
    assert settings.session_url.startswith("postgresql://") and settings.live == "on"


def test_the_gateway_reads_the_discovery_document_at_keycloaks_internal_address() -> None:
    """The issuer's public address (localhost:8180, the host's port of Keycloak) is not Keycloak inside a
    container: the gateway reads the discovery document at keycloak:8080 (SANDAN_OIDC_DISCOVERY_URL), whose
    document names the public issuer (KC_HOSTNAME) and, with the dynamic back-channel, keycloak:8080's token and
    keys endpoints. No forwarding container is needed."""
    env = _env("gateway")
    issuer, discovery = urlparse(env["SANDAN_OIDC_ISSUER"]), urlparse(env["SANDAN_OIDC_DISCOVERY_URL"])
    assert issuer.hostname == "localhost"
    published = {p.split(":")[1]: p.split(":")[0] for p in COMPOSE["services"]["keycloak"]["ports"]}
    assert (discovery.hostname, str(discovery.port)) == ("keycloak", next(k for k, v in published.items()
                                                                          if v == str(issuer.port)))
    assert discovery.path == issuer.path + "/.well-known/openid-configuration"
    assert _env("keycloak")["KC_HOSTNAME_BACKCHANNEL_DYNAMIC"] == "true"
    assert "gateway-issuer" not in COMPOSE["services"]
    assert not [n for n, svc in COMPOSE["services"].items() if svc.get("network_mode", "").startswith("service:")]
