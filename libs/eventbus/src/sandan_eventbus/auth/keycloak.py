"""People for the local stack: create Keycloak users with roles and places, and sign them in (not for production).

The demo and the integration tests use it against the local Keycloak (deploy/local/keycloak.sh): the realm's
admin REST API creates a user with realm roles and the attributes that say where they act, and the local-only
`sandan-cli` client signs them in with the password grant. Production signs people in through the web client
(authorisation code + PKCE) and never uses this module.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

LOCAL_ISSUER = "http://127.0.0.1:8180/realms/sandan"


@dataclass
class Person:
    username: str
    password: str
    roles: tuple[str, ...]
    attributes: dict[str, str] = field(default_factory=dict)
    user_id: str = ""


class KeycloakAdmin:
    def __init__(self, issuer: str = LOCAL_ISSUER, admin_user: str = "admin", admin_password: str = "admin",  # noqa: S107 - local bootstrap admin
                 timeout: float = 30.0) -> None:
        self.issuer = issuer.rstrip("/")
        base, _, realm = self.issuer.rpartition("/realms/")
        self.base, self.realm = base, realm
        self.admin_user, self.admin_password = admin_user, admin_password
        self.http = httpx.Client(timeout=timeout)
        self._admin_token: tuple[str, float] | None = None
        self._role_cache: dict[str, dict[str, Any]] = {}

    def close(self) -> None:
        self.http.close()

    def _token(self) -> str:
        if self._admin_token and time.monotonic() < self._admin_token[1]:
            return self._admin_token[0]
        reply = self.http.post(f"{self.base}/realms/master/protocol/openid-connect/token", data={
            "grant_type": "password", "client_id": "admin-cli", "username": self.admin_user,
            "password": self.admin_password})
        reply.raise_for_status()
        body = reply.json()
        self._admin_token = (body["access_token"], time.monotonic() + float(body.get("expires_in", 60)) - 10)
        return self._admin_token[0]

    def _admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        reply = self.http.request(method, f"{self.base}/admin/realms/{self.realm}{path}",
                                  headers={"authorization": f"Bearer {self._token()}"}, **kwargs)
        reply.raise_for_status()
        return reply

    def _role(self, name: str) -> dict[str, Any]:
        if name not in self._role_cache:
            self._role_cache[name] = self._admin("GET", f"/roles/{name}").json()
        return self._role_cache[name]

    def create(self, username: str, roles: tuple[str, ...] | list[str], password: str | None = None,
               **attributes: str) -> Person:
        """A user with these realm roles and place attributes (community_id="...", member_id="..."); an existing
        user of that name is replaced, so the demo can run again."""
        person = Person(username, password or secrets.token_urlsafe(12), tuple(roles), dict(attributes))
        found = self._admin("GET", "/users", params={"username": username, "exact": "true"}).json()
        for old in found:
            self._admin("DELETE", f"/users/{old['id']}")
        self._admin("POST", "/users", json={
            "username": username, "enabled": True, "emailVerified": True, "firstName": username,
            "lastName": "sandan", "email": f"{username}@example.invalid",
            "attributes": {k: [v] for k, v in attributes.items()},
            "credentials": [{"type": "password", "value": person.password, "temporary": False}],
            "requiredActions": []})
        person.user_id = self._admin("GET", "/users", params={"username": username, "exact": "true"}).json()[0]["id"]
        if roles:
            self._admin("POST", f"/users/{person.user_id}/role-mappings/realm", json=[self._role(r) for r in roles])
        return person

    def sign_in(self, person: Person, client_id: str = "sandan-cli") -> str:
        """An access token for the person (password grant on the local-only client)."""
        reply = self.http.post(f"{self.issuer}/protocol/openid-connect/token", data={
            "grant_type": "password", "client_id": client_id, "username": person.username,
            "password": person.password})
        reply.raise_for_status()
        return str(reply.json()["access_token"])

    def service_token(self, client_id: str, client_secret: str) -> str:
        reply = self.http.post(f"{self.issuer}/protocol/openid-connect/token",
                               data={"grant_type": "client_credentials"}, auth=(client_id, client_secret))
        reply.raise_for_status()
        return str(reply.json()["access_token"])
