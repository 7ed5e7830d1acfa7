"""The people behind the integration tests' calls: Keycloak accounts with the roles and places of each test's
community, signed in through the real Keycloak (the `keycloak` fixture), and the service settings that make the
processes trust it.

Every call a test makes carries a person's token: `stack.intake_stub(c.secretary)`. A person is created once
(lazily, on first use) and their token is cached until shortly before it expires (Keycloak's tokens live 300 s),
then they sign in again. Residents with an account have no resident id of their own choosing: it is derived from
the issuer and their token's subject (`resident_id_for`), and they register themselves.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import grpc
import jwt

from sandan_eventbus.auth.client import AioBearerAuth, BearerAuth, ClientCredentials, TokenSource
from sandan_eventbus.auth.keycloak import KeycloakAdmin, Person
from sandan_eventbus.auth.principal import resident_id_for
from sandan_eventbus.channels import aio_channel

COUNTY, TOWN, OTHER_TOWN = "taihe", "chengjiang", "majiazhou"
EARLY_SECONDS = 60  # sign in again this long before a token expires: a slow test never sends a stale one
# notify's own identity in the local realm (deploy/local/keycloak/sandan-realm.json): it reads contacts as itself
NOTIFY_IDENTITY = {"SANDAN_OIDC_CLIENT_ID": "sandan-notify", "SANDAN_OIDC_CLIENT_SECRET": "local-notify-secret"}


def identity_env(issuer: str, places_file: Path, *, calls_others: bool = False) -> dict[str, str]:
    """What a service process needs to verify callers (the issuer), plaintext gRPC (a local run), where offices
    reach (the places file) and, for notify, its own identity for calling intake and dispatch."""
    env = {"SANDAN_OIDC_ISSUER": issuer, "SANDAN_OIDC_AUDIENCE": "sandan", "SANDAN_GRPC_PLAINTEXT": "allow",
           "SANDAN_PLACES_FILE": str(places_file)}
    return env | (NOTIFY_IDENTITY if calls_others else {})


class Identity(Protocol):
    """Someone who calls: a signed-in person (`Caller`) or a client acting as itself (`ServiceAccount`)."""

    @property
    def roles(self) -> tuple[str, ...]: ...

    def token(self) -> str: ...

    def metadata(self, correlation_id: str | None = None) -> tuple[tuple[str, str], ...]: ...


class CommunityPool:
    """Community ids declared in the places file before the services start (a town office's reach is read from it),
    handed out one per test community. Every community is in the town `chengjiang` of the county `taihe`."""

    def __init__(self, prefix: str, size: int = 400) -> None:
        self.prefix = prefix
        self.ids = [f"{prefix}{uuid.uuid4().hex[:8]}" for _ in range(size)]
        self._next = iter(self.ids)
        self._lock = threading.Lock()

    def take(self) -> str:
        with self._lock:
            try:
                return next(self._next)
            except StopIteration:
                raise AssertionError("the stack's community pool is used up: declare more") from None

    def tag(self, community_id: str) -> str:
        return community_id.removeprefix(self.prefix)

    def toml(self, county: str = "", town: str = "", community: Callable[[str], str] = lambda _: "") -> str:
        """The places file (`[county]`, `[towns.*]`, `[communities.*]`), which is also notify's office directory:
        `county`, `town` and `community(id)` add lines (addresses) to those tables."""
        tables = [f'[county]\nid = "{COUNTY}"\nname = "泰和县委组织部"\n{county}',
                  f'[towns.{TOWN}]\nname = "澄江镇党委"\n{town}', f'[towns.{OTHER_TOWN}]\nname = "马市镇党委"\n']
        tables += [f'[communities.{c}]\nname = "{c} 社区党委"\ntown = "{TOWN}"\n{community(c)}' for c in self.ids]
        return "\n".join(tables)


@dataclass(eq=False)
class Caller:
    """A signed-in person (a token source for `AioBearerAuth` / `BearerAuth`)."""

    people: People
    person: Person
    subject: str  # the token's `sub`: Keycloak's user id

    @property
    def roles(self) -> tuple[str, ...]:
        return self.person.roles

    @property
    def attributes(self) -> dict[str, str]:
        return self.person.attributes

    @property
    def resident_id(self) -> str:
        """A resident's id: their issuer's claim if it has one, else derived from issuer and subject."""
        return self.attributes.get("resident_id") or resident_id_for(self.people.issuer, self.subject)

    def token(self) -> str:
        return self.people.token_of(self)

    def metadata(self, correlation_id: str | None = None) -> tuple[tuple[str, str], ...]:
        """Per-call metadata: this person's token, and a correlation id if given."""
        found: tuple[tuple[str, str], ...] = (("authorization", f"Bearer {self.token()}"),)
        return found + ((("x-correlation-id", correlation_id),) if correlation_id else ())


@dataclass
class People:
    admin: KeycloakAdmin
    issuer: str
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    _callers: dict[str, Caller] = field(default_factory=dict)
    _tokens: dict[str, tuple[str, float]] = field(default_factory=dict)
    _clients: dict[str, ServiceAccount] = field(default_factory=dict)
    _locks: dict[str, threading.Lock] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _lock_for(self, key: str) -> threading.Lock:
        # one lock per person: people are created and signed in from worker threads, each once
        with self._lock:
            return self._locks.setdefault(key, threading.Lock())

    def person(self, key: str, roles: Iterable[str], **attributes: str) -> Caller:
        """The person named `key` in this run (created in Keycloak on first use, with these roles and places)."""
        with self._lock_for(f"person:{key}"):
            if key not in self._callers:
                person = self.admin.create(f"it-{self.run}-{key}"[:255], tuple(roles), **attributes)
                self._callers[key] = Caller(self, person, person.user_id)
            return self._callers[key]

    async def people(self, wanted: dict[str, tuple[Iterable[str], dict[str, str]]]) -> dict[str, Caller]:
        """Several people at once (Keycloak hashes each password: creating them side by side is faster)."""
        keys = list(wanted)

        def signed_in(key: str) -> Caller:
            caller = self.person(key, wanted[key][0], **wanted[key][1])
            caller.token()
            return caller

        made = await asyncio.gather(*(asyncio.to_thread(signed_in, k) for k in keys))
        return dict(zip(keys, made, strict=True))

    def token_of(self, caller: Caller) -> str:
        with self._lock_for(f"token:{caller.subject}"):
            cached = self._tokens.get(caller.subject)
            if cached and time.time() < cached[1]:
                return cached[0]
            value = self.admin.sign_in(caller.person)
            expires = float(jwt.decode(value, options={"verify_signature": False})["exp"])
            self._tokens[caller.subject] = (value, expires - EARLY_SECONDS)
            return value

    # ---- the offices and the county's IT: one each per run ----------------------------------------------------
    def county_office(self) -> Caller:
        return self.person("county", ["county_office"], county_id=COUNTY)

    def town_office(self, town: str = TOWN) -> Caller:
        return self.person(f"town-{town}", ["town_office"], town_id=town)

    def operator(self) -> Caller:
        return self.person("operator", ["operator"])

    def client(self, client_id: str) -> ServiceAccount:
        """A realm client acting as itself, e.g. `sandan-notify` (role service_notify), `sandan-partner`."""
        with self._lock:
            if client_id not in self._clients:
                secret, role = CLIENTS[client_id]
                self._clients[client_id] = ServiceAccount(self.issuer, client_id, secret, (role,))
            return self._clients[client_id]


class ServiceAccount:
    """A client of the realm acting as itself (client credentials): a service, the gateway, a partner agency."""

    def __init__(self, issuer: str, client_id: str, secret: str, roles: tuple[str, ...]) -> None:
        self.client_id, self._roles = client_id, roles
        self._source = ClientCredentials.for_issuer(issuer, client_id, secret, early=EARLY_SECONDS)

    @property
    def roles(self) -> tuple[str, ...]:
        return self._roles

    def token(self) -> str:
        return self._source.token()

    def metadata(self, correlation_id: str | None = None) -> tuple[tuple[str, str], ...]:
        found: tuple[tuple[str, str], ...] = (("authorization", f"Bearer {self.token()}"),)
        return found + ((("x-correlation-id", correlation_id),) if correlation_id else ())


# The realm's confidential clients (deploy/local/keycloak/sandan-realm.json) and the role each one's token carries.
CLIENTS = {"sandan-notify": ("local-notify-secret", "service_notify"),
           "sandan-gateway": ("local-gateway-secret", "service_gateway"),
           "sandan-partner": ("local-partner-secret", "partner"),
           "sandan-intake": ("local-intake-secret", "service_intake"),
           "sandan-dispatch": ("local-dispatch-secret", "service_dispatch"),
           "sandan-scoring": ("local-scoring-secret", "service_scoring")}


def aio_channel_as(address: str, caller: TokenSource | None) -> grpc.aio.Channel:
    """An asyncio channel as the shipped clients make them (retry policy), carrying `caller`'s token on every call;
    `None`: no token at all (what an anonymous caller sends). Through `channels.aio_channel`, which files the token
    interceptor for streaming calls too (grpc.aio alone would use it for unary calls only: Rebuild went without)."""
    return aio_channel(address, interceptors=[AioBearerAuth(caller)] if caller is not None else ())


def channel_as(address: str, caller: TokenSource | None) -> grpc.Channel:
    """A blocking channel carrying `caller`'s token (no retry policy: the fuzz sees every code)."""
    channel = grpc.insecure_channel(address)
    return grpc.intercept_channel(channel, BearerAuth(caller)) if caller is not None else channel
