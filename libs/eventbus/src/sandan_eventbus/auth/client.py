"""Calling as someone: service identities (OAuth 2 client credentials) and the bearer metadata on gRPC calls.

A service calls another as itself: `ClientCredentials` gets an access token from the issuer's token endpoint
with the service's client id and secret, caches it until shortly before it expires, and `BearerAuth` (a gRPC
client interceptor, for sync and asyncio channels) adds it to every call. A person's token (the gateway
forwarding a signed-in person's token) is sent the same way with `StaticToken`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
import httpx


class TokenSource(Protocol):
    def token(self) -> str: ...


class TokenUnavailable(Exception):
    """The issuer did not give a token (down, or the client's credentials were refused)."""


@dataclass(frozen=True)
class StaticToken:
    value: str

    def token(self) -> str:
        return self.value


class ClientCredentials:
    """The client credentials grant, cached: one token request per token lifetime (minus `early` seconds)."""

    def __init__(self, token_url: str, client_id: str, client_secret: str, *, timeout: float = 5.0,
                 early: float = 30.0, verify_tls: bool | str = True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self._secret = client_secret
        self.timeout = timeout
        self.early = early
        self.verify_tls = verify_tls
        self.clock = clock
        self._cached: tuple[str, float] | None = None
        self._lock = threading.Lock()

    @classmethod
    def for_issuer(cls, issuer_url: str, client_id: str, client_secret: str, **kwargs: Any) -> ClientCredentials:
        """Keycloak's token endpoint under the issuer (`<issuer>/protocol/openid-connect/token`); other issuers
        name theirs in the discovery document, and `token_url` is then given directly."""
        return cls(issuer_url.rstrip("/") + "/protocol/openid-connect/token", client_id, client_secret, **kwargs)

    def token(self) -> str:
        with self._lock:
            if self._cached and self.clock() < self._cached[1]:
                return self._cached[0]
            try:
                reply = httpx.post(self.token_url, data={"grant_type": "client_credentials"},
                                   auth=(self.client_id, self._secret), timeout=self.timeout, verify=self.verify_tls)
                reply.raise_for_status()
                body = reply.json()
                value, lifetime = str(body["access_token"]), float(body.get("expires_in", 60))
            except (httpx.HTTPError, KeyError, ValueError) as exc:
                raise TokenUnavailable(f"no token for {self.client_id}: {type(exc).__name__}") from None
            self._cached = (value, self.clock() + max(1.0, lifetime - self.early))
            return value


def _with_token(details: Any, source: TokenSource) -> Any:
    metadata = [(k, v) for k, v in (details.metadata or ()) if k.lower() != "authorization"]
    metadata.append(("authorization", f"Bearer {source.token()}"))
    return details._replace(metadata=metadata) if hasattr(details, "_replace") else _Details(details, metadata)


class _Details(grpc.ClientCallDetails):
    def __init__(self, base: Any, metadata: list[tuple[str, str]]) -> None:
        self.method = base.method
        self.timeout = base.timeout
        self.metadata = metadata
        self.credentials = base.credentials
        self.wait_for_ready = getattr(base, "wait_for_ready", None)
        self.compression = getattr(base, "compression", None)


class BearerAuth(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Adds `authorization: Bearer <token>` to every call of a synchronous channel."""

    def __init__(self, source: TokenSource) -> None:
        self.source = source

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(_with_token(details, self.source), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(_with_token(details, self.source), request)


class _AioDetails(grpc.aio.ClientCallDetails):
    pass


def _aio_with_token(details: grpc.aio.ClientCallDetails, source: TokenSource) -> grpc.aio.ClientCallDetails:
    metadata = grpc.aio.Metadata(*[(k, v) for k, v in (details.metadata or ()) if k.lower() != "authorization"])
    metadata.add("authorization", f"Bearer {source.token()}")
    return _AioDetails(details.method, details.timeout, metadata, details.credentials, details.wait_for_ready)


class AioBearerAuth(grpc.aio.UnaryUnaryClientInterceptor, grpc.aio.UnaryStreamClientInterceptor):
    """Adds `authorization: Bearer <token>` to every call of an asyncio channel. The token source must not
    block for long (ClientCredentials fetches at most once per token lifetime)."""

    def __init__(self, source: TokenSource) -> None:
        self.source = source

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_aio_with_token(details, self.source), request)

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_aio_with_token(details, self.source), request)
