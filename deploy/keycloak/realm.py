"""Generate sandan's Keycloak realm from the role matrix: `python deploy/keycloak/realm.py [--check]`.

Writes two files, both committed (a test regenerates them and fails on any difference), and copies of each
where Kubernetes' kustomize can read them (it loads files only from inside a kustomization's folder):
- deploy/keycloak/sandan-realm.json: the realm for production (k8s, compose). Client secrets and the web
  address are `${ENV}` placeholders that Keycloak expands when it imports the file; no users but the services'.
- deploy/local/keycloak/sandan-realm.json: the same realm for the local stack, with fixed development secrets
  and `sandan-cli`, a public client with the password grant that the demo and the tests use to sign their
  people in (not for production: the password grant is deprecated by OAuth 2.1 and disabled in the other file).
- deploy/k8s/platform/keycloak/sandan-realm.json and deploy/k8s/overlays/local/keycloak/sandan-realm.json: the
  same two, imported by the Keycloak Deployment from a ConfigMap.

The realm holds: one realm role per role of the matrix (sandan_contracts/rpc/access.toml), the user attributes
that say where a person acts (declared in the user profile, editable by admins only: Keycloak 24+ silently
drops undeclared attributes), a client scope that maps them into access tokens with the audience `sandan`,
the web client (authorisation code + PKCE), one confidential client per service (client credentials, with its
service role), and a read-only partner client.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sandan_contracts.access import ACCESS

HERE = Path(__file__).resolve().parent
PRODUCTION = HERE / "sandan-realm.json"
LOCAL = HERE.parent / "local" / "keycloak" / "sandan-realm.json"
K8S_PRODUCTION = HERE.parent / "k8s" / "platform" / "keycloak" / "sandan-realm.json"
K8S_LOCAL = HERE.parent / "k8s" / "overlays" / "local" / "keycloak" / "sandan-realm.json"
TARGETS = ((PRODUCTION, False), (LOCAL, True), (K8S_PRODUCTION, False), (K8S_LOCAL, True))

REALM = "sandan"
AUDIENCE = "sandan"
ATTRIBUTES = ("county_id", "town_id", "community_id", "grid_id", "unit_id", "member_id", "resident_id")
SERVICES = ("intake", "dispatch", "scoring", "notify", "gateway")
# Where each service client's secret comes from when the production file is imported.
SECRET_ENV = {**{s: f"SANDAN_{s.upper()}_CLIENT_SECRET" for s in SERVICES},
              "web": "SANDAN_WEB_CLIENT_SECRET", "partner": "SANDAN_PARTNER_CLIENT_SECRET"}
LOCAL_WEB_URL = "http://127.0.0.1:8000"


def local_secret(client: str) -> str:
    return f"local-{client}-secret"  # not for production: fixed development secrets


def user_profile() -> dict[str, Any]:
    admin_only = {"view": ["admin"], "edit": ["admin"]}
    own = {"view": ["admin", "user"], "edit": ["admin", "user"]}
    attributes: list[dict[str, Any]] = [
        {"name": "username", "displayName": "${username}", "permissions": {"view": ["admin", "user"],
                                                                           "edit": ["admin"]},
         "validations": {"length": {"min": 3, "max": 255}, "username-prohibited-characters": {},
                         "up-username-not-idn-homograph": {}}},
        {"name": "email", "displayName": "${email}", "permissions": {"view": ["admin", "user"], "edit": ["admin"]},
         "validations": {"email": {}, "length": {"max": 255}}},
        {"name": "firstName", "displayName": "${firstName}",
         "permissions": own, "validations": {"length": {"max": 255}}},
        {"name": "lastName", "displayName": "${lastName}",
         "permissions": own, "validations": {"length": {"max": 255}}},
    ]
    for name in ATTRIBUTES:
        attributes.append({"name": name, "displayName": name, "permissions": admin_only, "multivalued": False,
                           "validations": {"length": {"max": 64},
                                           "pattern": {"pattern": "^[A-Za-z0-9][A-Za-z0-9_.:-]*$",
                                                       "error-message": "an opaque id"}}})
    return {"attributes": attributes, "groups": []}


def places_scope() -> dict[str, Any]:
    mappers: list[dict[str, Any]] = [{
        "name": "audience sandan", "protocol": "openid-connect", "protocolMapper": "oidc-audience-mapper",
        "config": {"included.custom.audience": AUDIENCE, "access.token.claim": "true", "id.token.claim": "false",
                   "introspection.token.claim": "true"}}]
    for name in ATTRIBUTES:
        mappers.append({
            "name": name, "protocol": "openid-connect", "protocolMapper": "oidc-usermodel-attribute-mapper",
            "config": {"user.attribute": name, "claim.name": name, "jsonType.label": "String",
                       "access.token.claim": "true", "id.token.claim": "true", "userinfo.token.claim": "true",
                       "introspection.token.claim": "true", "multivalued": "false"}})
    return {"name": "sandan", "description": "audience sandan; where the person acts (attributes as claims)",
            "protocol": "openid-connect",
            "attributes": {"include.in.token.scope": "false", "display.on.consent.screen": "false"},
            "protocolMappers": mappers}


def _client(client_id: str, secret: str, **extra: Any) -> dict[str, Any]:
    base = {"clientId": client_id, "enabled": True, "protocol": "openid-connect", "publicClient": False,
            "clientAuthenticatorType": "client-secret", "secret": secret, "standardFlowEnabled": False,
            "implicitFlowEnabled": False, "directAccessGrantsEnabled": False, "serviceAccountsEnabled": False,
            "frontchannelLogout": False, "fullScopeAllowed": True,
            "defaultClientScopes": ["sandan", "roles", "basic"], "optionalClientScopes": []}
    base.update(extra)
    return base


def realm(local: bool) -> dict[str, Any]:
    secret = local_secret if local else (lambda c: "${" + SECRET_ENV[c] + "}")
    web_url = LOCAL_WEB_URL if local else "${SANDAN_WEB_URL}"
    clients = [
        _client("sandan-web", secret("web"), name="sandan pages (the gateway signs people in)",
                standardFlowEnabled=True, redirectUris=[f"{web_url}/*"], webOrigins=[web_url],
                attributes={"pkce.code.challenge.method": "S256", "post.logout.redirect.uris": f"{web_url}/*"},
                defaultClientScopes=["sandan", "roles", "basic", "profile"]),
        *[_client(f"sandan-{s}", secret(s), name=f"the {s} service", serviceAccountsEnabled=True)
          for s in SERVICES],
        _client("sandan-partner", secret("partner"), name="a partner agency (read-only)",
                serviceAccountsEnabled=True),
    ]
    if local:
        clients.append({
            "clientId": "sandan-cli", "name": "local demo and tests only (password grant; not for production)",
            "enabled": True, "protocol": "openid-connect", "publicClient": True, "standardFlowEnabled": False,
            "directAccessGrantsEnabled": True, "serviceAccountsEnabled": False, "fullScopeAllowed": True,
            "defaultClientScopes": ["sandan", "roles", "basic"], "optionalClientScopes": []})
    service_users = [
        {"username": f"service-account-sandan-{s}", "enabled": True, "serviceAccountClientId": f"sandan-{s}",
         "realmRoles": [f"service_{s}"]} for s in SERVICES
    ] + [{"username": "service-account-sandan-partner", "enabled": True, "serviceAccountClientId": "sandan-partner",
          "realmRoles": ["partner"]}]
    return {
        "realm": REALM, "enabled": True, "displayName": "sandan 三单",
        "sslRequired": "external" if local else "all",
        "registrationAllowed": False, "loginWithEmailAllowed": False, "duplicateEmailsAllowed": True,
        "resetPasswordAllowed": False, "editUsernameAllowed": False, "bruteForceProtected": True,
        "accessTokenLifespan": 300, "ssoSessionIdleTimeout": 1800, "ssoSessionMaxLifespan": 36000,
        "internationalizationEnabled": True, "supportedLocales": ["zh-CN", "en"], "defaultLocale": "zh-CN",
        "roles": {"realm": [{"name": role, "description": text} for role, text in ACCESS.roles.items()]},
        "clientScopes": [places_scope(),
                         {"name": "roles", "protocol": "openid-connect",
                          "attributes": {"include.in.token.scope": "false", "display.on.consent.screen": "false"},
                          "protocolMappers": [{"name": "realm roles", "protocol": "openid-connect",
                                               "protocolMapper": "oidc-usermodel-realm-role-mapper",
                                               "config": {"claim.name": "realm_access.roles", "multivalued": "true",
                                                          "jsonType.label": "String", "access.token.claim": "true",
                                                          "id.token.claim": "false",
                                                          "introspection.token.claim": "true"}}]},
                         {"name": "basic", "protocol": "openid-connect",
                          "attributes": {"include.in.token.scope": "false", "display.on.consent.screen": "false"},
                          "protocolMappers": [{"name": "sub", "protocol": "openid-connect",
                                               "protocolMapper": "oidc-sub-mapper",
                                               "config": {"access.token.claim": "true",
                                                          "introspection.token.claim": "true"}}]},
                         {"name": "profile", "protocol": "openid-connect",
                          "attributes": {"include.in.token.scope": "true", "display.on.consent.screen": "false"},
                          "protocolMappers": [{"name": "username", "protocol": "openid-connect",
                                               "protocolMapper": "oidc-usermodel-attribute-mapper",
                                               "config": {"user.attribute": "username",
                                                          "claim.name": "preferred_username",
                                                          "jsonType.label": "String", "id.token.claim": "true",
                                                          "access.token.claim": "false",
                                                          "userinfo.token.claim": "true"}}]}],
        "defaultDefaultClientScopes": ["sandan", "roles", "basic"],
        "defaultOptionalClientScopes": [],
        "clients": clients,
        "users": service_users,
        "components": {"org.keycloak.userprofile.UserProfileProvider": [{
            "providerId": "declarative-user-profile", "subComponents": {},
            "config": {"kc.user.profile.config": [json.dumps(user_profile(), ensure_ascii=False)]}}]},
    }


def render(local: bool) -> str:
    return json.dumps(realm(local), ensure_ascii=False, indent=2) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed files are stale")
    args = parser.parse_args()
    stale = []
    for path, local in TARGETS:
        text = render(local)
        if args.check:
            if not path.exists() or path.read_text("utf-8") != text:
                stale.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, "utf-8")
    if stale:
        sys.exit(f"stale, run python deploy/keycloak/realm.py: {', '.join(stale)}")


if __name__ == "__main__":
    main()
