"""Verifying bearer tokens (JWT access tokens from an OpenID Connect issuer, e.g. Keycloak).

Checks: signature against the issuer's JWKS, a `kid` that names one of its keys, pinned algorithms, `iss`,
`aud`, `exp`, `nbf`, `iat` (with a small leeway for clock skew) and `sub`. Keys are fetched from the issuer's
discovery document (read under the issuer or at a configured discovery URL; or from a configured JWKS URL),
cached, and fetched again when a token names an unknown `kid` (keys rotate), but at most once per
`refresh_cooldown` seconds, so tokens with random `kid`s cannot turn into a fetch per request. Any conforming
issuer works; nothing here is Keycloak-specific.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

log = logging.getLogger(__name__)

ALGORITHMS = ("RS256", "ES256", "PS256")


class InvalidToken(Exception):
    """The token is not acceptable; the message says why (never the token itself)."""


@dataclass(frozen=True)
class Issuer:
    url: str  # the `iss` the tokens carry, e.g. http://127.0.0.1:8180/realms/sandan
    audience: str = "sandan"
    jwks_url: str = ""  # default: from the discovery document
    algorithms: tuple[str, ...] = ALGORITHMS
    leeway_seconds: float = 30.0
    discovery_url: str = ""  # where the discovery document is read (default: <url>/.well-known/openid-configuration)

    @property
    def discovery(self) -> str:
        """Where this process reads the issuer's discovery document: `discovery_url` when the issuer's public
        address is not reachable from inside (a back-channel address), else the standard path under `url`."""
        return self.discovery_url or self.url.rstrip("/") + "/.well-known/openid-configuration"


class KeySet:
    """The issuer's public keys by `kid`, fetched lazily and refreshed on an unknown `kid` (throttled)."""

    def __init__(self, issuer: Issuer, *, refresh_cooldown: float = 10.0, timeout: float = 5.0,
                 verify_tls: bool | str = True) -> None:
        self.issuer = issuer
        self.refresh_cooldown = refresh_cooldown
        self.timeout = timeout
        self.verify_tls = verify_tls
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._lock = threading.Lock()
        self.fetches = 0

    def cached(self, kid: str) -> jwt.PyJWK | None:
        return self._keys.get(kid)

    def get(self, kid: str) -> jwt.PyJWK:
        """The key for `kid`, fetching the set again if it is unknown and the cooldown allows (blocking)."""
        key = self._keys.get(kid)
        if key is not None:
            return key
        with self._lock:
            key = self._keys.get(kid)
            if key is None and time.monotonic() - self._fetched_at >= self.refresh_cooldown:
                self._fetch()
                key = self._keys.get(kid)
        if key is None:
            raise InvalidToken("the token's kid names no key of the issuer")
        return key

    def _fetch(self) -> None:
        self._fetched_at = time.monotonic()
        self.fetches += 1
        try:
            with httpx.Client(timeout=self.timeout, verify=self.verify_tls) as client:
                url = self.issuer.jwks_url or self._discover(client)
                reply = client.get(url)
                reply.raise_for_status()
                keys = jwt.PyJWKSet.from_dict(reply.json()).keys
        except (httpx.HTTPError, ValueError, jwt.PyJWKSetError) as exc:
            log.warning("cannot fetch the issuer's keys", extra={"fields": {"issuer": self.issuer.url,
                                                                             "error": str(exc)[:200]}})
            return  # keep the keys we had; the token is refused if its kid is not among them
        self._keys = {k.key_id: k for k in keys if k.key_id}

    def _discover(self, client: httpx.Client) -> str:
        reply = client.get(self.issuer.discovery)
        reply.raise_for_status()
        found = reply.json().get("jwks_uri")
        if not isinstance(found, str) or not found:
            raise ValueError("the discovery document has no jwks_uri")
        return found


class TokenVerifier:
    def __init__(self, issuer: Issuer, keys: KeySet | None = None) -> None:
        self.issuer = issuer
        self.keys = keys or KeySet(issuer)

    def _header(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("not a JWT") from None
        if header.get("alg") not in self.issuer.algorithms:
            raise InvalidToken("algorithm not allowed")
        if not isinstance(header.get("kid"), str) or not header["kid"]:
            raise InvalidToken("the token has no kid")
        return header

    def verify(self, token: str) -> Mapping[str, Any]:
        """The token's claims, or InvalidToken. May fetch keys (blocking): call it off the event loop."""
        header = self._header(token)
        return self._decode(token, self.keys.get(header["kid"]))

    async def verify_async(self, token: str) -> Mapping[str, Any]:
        """Verify on the event loop when the key is cached (CPU only); fetch keys in a worker thread."""
        header = self._header(token)
        key = self.keys.cached(header["kid"])
        if key is None:
            key = await asyncio.to_thread(self.keys.get, header["kid"])
        return self._decode(token, key)

    def _decode(self, token: str, key: jwt.PyJWK) -> Mapping[str, Any]:
        try:
            return jwt.decode(
                token, key=key, algorithms=list(self.issuer.algorithms), audience=self.issuer.audience,
                issuer=self.issuer.url, leeway=self.issuer.leeway_seconds,
                options={"require": ["exp", "iat", "iss", "sub", "aud"], "verify_nbf": True},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("the token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("the token is not for this audience") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("the token is from another issuer") from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"the token has no {exc.claim} claim") from None
        except jwt.PyJWTError:
            raise InvalidToken("the token's signature or claims are invalid") from None
