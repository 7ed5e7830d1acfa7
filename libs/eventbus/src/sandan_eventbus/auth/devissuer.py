"""A small OpenID Connect issuer for unit tests (not for production use).

It signs real RS256 tokens and serves its discovery document and JWKS over HTTP on 127.0.0.1, so tests go
through the same verification path as production (JWKS fetched, cached, refreshed on an unknown `kid`). Keys
can be rotated. The integration tests and the demo use the real Keycloak instead (deploy/local/keycloak.sh).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from sandan_eventbus.auth.interceptor import AuthInterceptor
from sandan_eventbus.auth.tokens import Issuer, KeySet, TokenVerifier


class LocalIssuer:
    def __init__(self, audience: str = "sandan") -> None:
        self.audience = audience
        self._keys: list[tuple[str, rsa.RSAPrivateKey]] = []
        self.rotate()
        self.requests = 0
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                issuer.requests += 1
                if self.path.endswith("/.well-known/openid-configuration"):
                    body = {"issuer": issuer.url, "jwks_uri": issuer.url + "/jwks",
                            "token_endpoint": issuer.url + "/protocol/openid-connect/token"}
                elif self.path.endswith("/jwks"):
                    body = issuer.jwks()
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/realms/test"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def issuer(self) -> Issuer:
        return Issuer(self.url, audience=self.audience)

    def guards(self) -> list[AuthInterceptor]:
        """The authentication interceptor trusting this issuer, for a test server: edge.server(name, guards=...)."""
        return [AuthInterceptor(TokenVerifier(self.issuer, KeySet(self.issuer, refresh_cooldown=0.5)))]

    def metadata(self, subject: str = "", roles: tuple[str, ...] | list[str] = (), **claims: Any,
                 ) -> tuple[tuple[str, str]]:
        """Call metadata carrying a fresh token: stub.Method(request, metadata=issuer.metadata(...))."""
        return (("authorization", f"Bearer {self.token(subject, roles, **claims)}"),)

    def rotate(self) -> str:
        """A new signing key (the old ones stay published); returns its kid."""
        kid = uuid.uuid4().hex[:16]
        self._keys.append((kid, rsa.generate_private_key(public_exponent=65537, key_size=2048)))
        return kid

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, key in self._keys:
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": keys}

    def token(self, subject: str = "", roles: tuple[str, ...] | list[str] = (), *, ttl: float = 300,
              kid: str | None = None, key: rsa.RSAPrivateKey | None = None, **claims: Any) -> str:
        """A signed access token. `claims` override anything (iss, aud, exp, nbf...), to build bad ones."""
        now = int(time.time())
        body: dict[str, Any] = {"iss": self.url, "aud": self.audience, "sub": subject or str(uuid.uuid4()),
                                "iat": now, "nbf": now, "exp": now + int(ttl), "azp": "sandan-test",
                                "realm_access": {"roles": list(roles)}}
        body.update(claims)
        use_kid, use_key = self._keys[-1]
        if kid is not None:
            use_kid = kid
        return jwt.encode(body, key or use_key, algorithm="RS256", headers={"kid": use_kid})

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
