"""The authentication interceptor with real signed tokens, a real JWKS endpoint and a real gRPC server."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sandan_contracts.access import ACCESS, parse
from sandan_eventbus.auth import current
from sandan_eventbus.auth.devissuer import LocalIssuer
from sandan_eventbus.auth.interceptor import AuthInterceptor
from sandan_eventbus.auth.principal import Principal
from sandan_eventbus.auth.tokens import InvalidToken, KeySet, TokenVerifier
from sandan_eventbus.rpc import add_health
from sandan_eventbus.security import OidcSettings, load

UNARY = "/sandan.intake.v1.Intake/PostDemand"  # resident, grid_worker, branch_secretary
STREAM = "/sandan.scoring.v1.Scoring/Rebuild"  # operator
UNLISTED = "/sandan.intake.v1.Intake/NoSuchMethod"


@pytest.fixture(scope="module")
def issuer() -> Iterator[LocalIssuer]:
    found = LocalIssuer()
    yield found
    found.close()


class Seen:
    def __init__(self) -> None:
        self.calls: list[Principal] = []


def _generic(seen: Seen) -> list[grpc.GenericRpcHandler]:
    async def unary(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        seen.calls.append(current())
        return b"ok:" + request

    async def stream(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        seen.calls.append(current())
        for i in range(3):
            yield f"{i}:{current().subject}".encode()

    ident = lambda b: b  # noqa: E731
    return [
        grpc.method_handlers_generic_handler("sandan.intake.v1.Intake", {
            "PostDemand": grpc.unary_unary_rpc_method_handler(unary, ident, ident),
            "NoSuchMethod": grpc.unary_unary_rpc_method_handler(unary, ident, ident)}),
        grpc.method_handlers_generic_handler("sandan.scoring.v1.Scoring", {
            "Rebuild": grpc.unary_stream_rpc_method_handler(stream, ident, ident)}),
    ]


@pytest.fixture
async def server(issuer: LocalIssuer) -> AsyncIterator[tuple[str, Seen, TokenVerifier]]:
    seen = Seen()
    verifier = TokenVerifier(issuer.issuer, KeySet(issuer.issuer, refresh_cooldown=1.0))
    srv = grpc.aio.server(interceptors=[AuthInterceptor(verifier)])
    srv.add_generic_rpc_handlers(_generic(seen))
    add_health(srv)
    port = srv.add_insecure_port("127.0.0.1:0")
    await srv.start()
    try:
        yield f"127.0.0.1:{port}", seen, verifier
    finally:
        await srv.stop(0)


async def _unary(address: str, token: str | None, method: str = UNARY) -> tuple[grpc.StatusCode, bytes | None]:
    async with grpc.aio.insecure_channel(address) as channel:
        call = channel.unary_unary(method)
        metadata = (("authorization", f"Bearer {token}"),) if token else ()
        try:
            return grpc.StatusCode.OK, await call(b"x", metadata=metadata, timeout=10)
        except grpc.aio.AioRpcError as error:
            return error.code(), None


async def _stream(address: str, token: str | None) -> tuple[grpc.StatusCode, list[bytes]]:
    async with grpc.aio.insecure_channel(address) as channel:
        call = channel.unary_stream(STREAM)
        metadata = (("authorization", f"Bearer {token}"),) if token else ()
        got: list[bytes] = []
        try:
            async for reply in call(b"x", metadata=metadata, timeout=10):
                got.append(reply)
        except grpc.aio.AioRpcError as error:
            return error.code(), got
        return grpc.StatusCode.OK, got


async def test_a_call_without_a_token_is_unauthenticated_and_runs_nothing(server: Any) -> None:
    address, seen, _ = server
    assert await _unary(address, None) == (grpc.StatusCode.UNAUTHENTICATED, None)
    assert await _stream(address, None) == (grpc.StatusCode.UNAUTHENTICATED, [])
    assert seen.calls == []


async def test_the_health_check_needs_no_token(server: Any) -> None:
    address, _, _ = server
    async with grpc.aio.insecure_channel(address) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_an_allowed_role_runs_with_its_principal(server: Any, issuer: LocalIssuer) -> None:
    address, seen, _ = server
    token = issuer.token("sub-1", ["member", "grid_worker"], community_id="c1", grid_id="g1")
    assert await _unary(address, token) == (grpc.StatusCode.OK, b"ok:x")
    principal = seen.calls[-1]
    assert principal.subject == "sub-1" and principal.acting_role == "grid_worker"
    assert principal.community_id == "c1" and principal.grid_id == "g1"
    code, replies = await _stream(address, issuer.token("op-1", ["operator"]))
    assert code == grpc.StatusCode.OK and replies == [b"0:op-1", b"1:op-1", b"2:op-1"]


async def test_a_role_outside_the_row_is_denied_for_unary_and_streaming_methods(server: Any,
                                                                                issuer: LocalIssuer) -> None:
    address, seen, _ = server
    member = issuer.token("m-1", ["member"])
    assert (await _unary(address, member))[0] == grpc.StatusCode.PERMISSION_DENIED
    assert (await _stream(address, member))[0] == grpc.StatusCode.PERMISSION_DENIED
    # a method with no row in the matrix is refused to every role (default deny)
    everyone = issuer.token("all", list(ACCESS.roles))
    assert (await _unary(address, everyone, UNLISTED))[0] == grpc.StatusCode.PERMISSION_DENIED
    assert seen.calls == []


def _bad_tokens(issuer: LocalIssuer) -> dict[str, str]:
    roles = ["resident"]
    now = int(time.time())
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    good = issuer.token("s", roles)
    head, body, sig = good.split(".")
    return {
        "expired": issuer.token("s", roles, exp=now - 120, iat=now - 600),
        "not yet valid": issuer.token("s", roles, nbf=now + 600),
        "other audience": issuer.token("s", roles, aud="someone-else"),
        "other issuer": issuer.token("s", roles, iss="http://evil.example/realms/test"),
        "unknown kid": issuer.token("s", roles, kid="no-such-kid"),
        "signed by a stranger": issuer.token("s", roles, key=stranger),
        "tampered": f"{head}.{body[:-2]}AA.{sig}",
        "alg none": jwt.encode({"sub": "s", "iss": issuer.url, "aud": "sandan", "exp": now + 60}, None,
                               algorithm="none"),
        "hs256 with a public key": jwt.encode({"sub": "s", "iss": issuer.url, "aud": "sandan", "exp": now + 60,
                                               "iat": now}, "a-shared-secret-long-enough-for-hs256!", algorithm="HS256",
                                              headers={"kid": issuer.jwks()["keys"][0]["kid"]}),
        "no sub": issuer.token("", roles, sub=None),
        "no exp": issuer.token("s", roles, exp=None),
        "garbage": "not-a-jwt",
    }


async def test_bad_tokens_are_unauthenticated(server: Any, issuer: LocalIssuer) -> None:
    address, seen, _ = server
    for what, token in _bad_tokens(issuer).items():
        assert (await _unary(address, token))[0] == grpc.StatusCode.UNAUTHENTICATED, what
    assert seen.calls == []


async def test_keys_rotate_and_unknown_kids_do_not_fetch_per_request(server: Any, issuer: LocalIssuer) -> None:
    address, seen, verifier = server
    assert (await _unary(address, issuer.token("a", ["resident"])))[0] == grpc.StatusCode.OK
    fetches = verifier.keys.fetches
    # a flood of tokens naming random kids fetches the key set at most once per cooldown
    for _ in range(20):
        token = issuer.token("a", ["resident"], kid=uuid.uuid4().hex)
        assert (await _unary(address, token))[0] == grpc.StatusCode.UNAUTHENTICATED
    assert verifier.keys.fetches - fetches <= 1
    # the issuer rotates its key: a token signed with the new key verifies once the cooldown has passed
    issuer.rotate()
    time.sleep(1.1)
    assert (await _unary(address, issuer.token("b", ["resident"])))[0] == grpc.StatusCode.OK
    assert seen.calls[-1].subject == "b"


def test_the_verifier_checks_claims_without_a_server(issuer: LocalIssuer) -> None:
    verifier = TokenVerifier(issuer.issuer)
    claims = verifier.verify(issuer.token("x", ["member"], member_id="m1"))
    assert Principal.from_claims(claims).member_id == "m1"
    with pytest.raises(InvalidToken):
        verifier.verify(issuer.token("x", ["member"], aud="other"))


def test_keys_are_found_through_the_configured_discovery_url(issuer: LocalIssuer,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """SANDAN_OIDC_DISCOVERY_URL: the issuer's public address does not answer from here (nothing listens on it);
    the discovery document is read at the configured address and the keys at the jwks_uri it names. The tokens'
    `iss` must still be SANDAN_OIDC_ISSUER."""
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        public = f"http://127.0.0.1:{s.getsockname()[1]}/realms/public"
    monkeypatch.setenv("SANDAN_OIDC_ISSUER", public)
    monkeypatch.setenv("SANDAN_OIDC_DISCOVERY_URL", issuer.url + "/.well-known/openid-configuration")
    for name in ("SANDAN_OIDC_JWKS_URL", "SANDAN_OIDC_CA_FILE"):
        monkeypatch.delenv(name, raising=False)
    verifier = load(OidcSettings).verifier()
    assert verifier.issuer.discovery == issuer.url + "/.well-known/openid-configuration"
    before = issuer.requests
    claims = verifier.verify(issuer.token("x", ["member"], iss=public))
    assert claims["iss"] == public and verifier.keys.fetches == 1
    assert issuer.requests - before == 2  # the discovery document, then the keys
    with pytest.raises(InvalidToken, match="another issuer"):  # signed by the right key, naming the wrong issuer
        verifier.verify(issuer.token("x", ["member"]))
    # without it, the document is read under the issuer, which does not answer here: no keys, the token refused
    monkeypatch.delenv("SANDAN_OIDC_DISCOVERY_URL")
    default = load(OidcSettings).verifier()
    assert default.issuer.discovery == public + "/.well-known/openid-configuration"
    with pytest.raises(InvalidToken, match="kid names no key"):
        default.verify(issuer.token("x", ["member"], iss=public))
    # a configured JWKS URL needs no discovery document at all
    monkeypatch.setenv("SANDAN_OIDC_DISCOVERY_URL", issuer.url + "/.well-known/openid-configuration")
    monkeypatch.setenv("SANDAN_OIDC_JWKS_URL", issuer.url + "/jwks")
    before = issuer.requests
    load(OidcSettings).verifier().verify(issuer.token("x", ["member"], iss=public))
    assert issuer.requests - before == 1


def test_unknown_roles_in_a_token_are_dropped_and_unknown_roles_in_the_matrix_are_refused() -> None:
    principal = Principal.from_claims({"sub": "s", "realm_access": {"roles": ["member", "root", 7]}},
                                      frozenset(ACCESS.roles))
    assert principal.roles == frozenset({"member"})
    with pytest.raises(ValueError, match="unknown roles"):
        parse({"roles": {"a": ""}, "svc.S": {"M": {"roles": ["b"]}}})


def test_a_resident_account_is_bound_to_a_resident_id_every_service_derives_alike() -> None:
    claims = {"sub": "kc-sub-1", "iss": "https://id.example/realms/sandan", "realm_access": {"roles": ["resident"]}}
    one, again = Principal.from_claims(claims), Principal.from_claims(dict(claims))
    assert one.resident_id and one.resident_id == again.resident_id
    assert Principal.from_claims({**claims, "sub": "kc-sub-2"}).resident_id != one.resident_id
    assert Principal.from_claims({**claims, "iss": "https://other.example"}).resident_id != one.resident_id
    assert Principal.from_claims({**claims, "resident_id": "r-set-by-issuer"}).resident_id == "r-set-by-issuer"
    assert Principal.from_claims({**claims, "realm_access": {"roles": ["member"]}}).resident_id is None
