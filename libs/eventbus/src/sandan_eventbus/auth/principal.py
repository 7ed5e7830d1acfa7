"""Who is calling: the principal a verified token names, and where they may act.

Pure (no gRPC, no HTTP): applications import it to check scope. The gRPC edge puts the caller's principal in a
context variable for the duration of the call (`acting_as`); commands read it with `current()` and check scope
with `Scopes` (sandan_eventbus.auth.scopes).
"""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sandan_eventbus.errors import PermissionDenied

__all__ = ["SYSTEM", "PermissionDenied", "Principal", "acting_as", "acting_for", "current", "on_behalf_of"]

# The claims that say where a person acts, and the record they are bound to (Keycloak user attributes mapped
# into the token; see deploy/keycloak/).
PLACE_CLAIMS = ("county_id", "town_id", "community_id", "grid_id", "unit_id")
BINDING_CLAIMS = ("member_id", "resident_id")
# A resident with an account is the resident record named by their token: `resident_id` when the issuer sets
# it, else an id derived from the issuer and subject, the same in every service (no attribute to keep in sync,
# and a resident can register themselves). Fixed forever: resident ids derived from it are stored.
RESIDENT_NAMESPACE = uuid.UUID("3c9a7e52-0b6d-4f1e-a8d4-5e2f7b1c9a06")


def resident_id_for(issuer: str, subject: str) -> str:
    return str(uuid.uuid5(RESIDENT_NAMESPACE, f"{issuer}|{subject}"))


@dataclass(frozen=True)
class Principal:
    subject: str  # the token's `sub`: opaque, never a name
    roles: frozenset[str]
    client_id: str = ""  # the OAuth client the token was issued to (`azp`)
    county_id: str | None = None
    town_id: str | None = None
    community_id: str | None = None
    grid_id: str | None = None
    unit_id: str | None = None
    member_id: str | None = None
    resident_id: str | None = None
    # The role this call is allowed under (the first of the caller's roles the method's matrix row names).
    acting_role: str = ""
    claims: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def has(self, *roles: str) -> bool:
        return not self.roles.isdisjoint(roles)

    @property
    def is_system(self) -> bool:
        return self is SYSTEM

    def as_role(self, role: str) -> Principal:
        return Principal(**{**self.__dict__, "acting_role": role})

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any], known_roles: frozenset[str] | None = None) -> Principal:
        """Read a verified token's claims. Roles from `realm_access.roles` (Keycloak) or a top-level `roles`
        list; unknown roles are dropped. A missing or malformed place claim is simply absent (no scope)."""
        raw_roles = (claims.get("realm_access") or {}).get("roles") if isinstance(claims.get("realm_access"),
                                                                                dict) else None
        if raw_roles is None:
            raw_roles = claims.get("roles") or []
        roles = frozenset(r for r in raw_roles if isinstance(r, str) and (known_roles is None or r in known_roles))

        def text(name: str) -> str | None:
            value = claims.get(name)
            if isinstance(value, list) and len(value) == 1:  # Keycloak multivalued attributes arrive as lists
                value = value[0]
            return value if isinstance(value, str) and value else None

        places = {name: text(name) for name in (*PLACE_CLAIMS, *BINDING_CLAIMS)}
        if "resident" in roles and places["resident_id"] is None:
            places["resident_id"] = resident_id_for(str(claims.get("iss", "")), str(claims["sub"]))
        return cls(subject=str(claims["sub"]), roles=roles, client_id=text("azp") or text("client_id") or "",
                   claims=dict(claims), **places)


# Internal work with no caller (consumers reacting to facts, sweeps, start-up): passes every scope check.
SYSTEM = Principal(subject="system", roles=frozenset(), acting_role="system")

_current: contextvars.ContextVar[Principal] = contextvars.ContextVar("sandan_principal", default=SYSTEM)
_for: contextvars.ContextVar[str | None] = contextvars.ContextVar("sandan_on_behalf_of", default=None)


def current() -> Principal:
    return _current.get()


@contextmanager
def acting_as(principal: Principal) -> Iterator[Principal]:
    token = _current.set(principal)
    try:
        yield principal
    finally:
        _current.reset(token)


def on_behalf_of() -> str | None:
    return _for.get()


@contextmanager
def acting_for(resident_id: str | None) -> Iterator[None]:
    """Events stored inside record that the caller acted for this resident (a grid worker, a hotline)."""
    token = _for.set(resident_id)
    try:
        yield
    finally:
        _for.reset(token)
