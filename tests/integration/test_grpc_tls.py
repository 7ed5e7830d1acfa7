"""gRPC over TLS with a throwaway CA: a call goes through over TLS (and mutual TLS), plaintext and strangers
do not, and a service refuses to start in plaintext unless plaintext is explicitly allowed."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sandan_eventbus import healthcheck
from sandan_eventbus.config import ConfigError
from sandan_eventbus.rpc import add_health
from sandan_eventbus.security import GrpcTlsSettings
from tests.kafka_tls import make_ca, make_server_cert


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("pki")
    ca_file, ca, ca_key = make_ca(work, "sandan-test-ca")
    other_ca_file, _, _ = make_ca(work, "stranger-ca")
    cert, key = make_server_cert(work, ca, ca_key)  # also good for client auth (EKU client + server)
    return {"ca": ca_file, "other_ca": other_ca_file, "cert": cert, "key": key}


async def _serve(settings: GrpcTlsSettings) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server()
    add_health(server)
    port = settings.bind(server, "127.0.0.1:0")
    await server.start()
    return server, f"localhost:{port}"


async def _check(address: str, credentials: grpc.ChannelCredentials | None) -> grpc.StatusCode:
    channel = (grpc.aio.secure_channel(address, credentials) if credentials
               else grpc.aio.insecure_channel(address))
    async with channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        except grpc.aio.AioRpcError as error:
            return error.code()
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    return grpc.StatusCode.OK


@pytest.fixture
async def tls_server(pki: dict[str, Path]) -> AsyncIterator[str]:
    server, address = await _serve(GrpcTlsSettings(tls_cert_file=str(pki["cert"]), tls_key_file=str(pki["key"])))
    yield address
    await server.stop(0)


async def test_a_call_goes_over_tls_and_plaintext_or_a_stranger_ca_does_not(tls_server: str,
                                                                           pki: dict[str, Path]) -> None:
    client = GrpcTlsSettings(tls_ca_file=str(pki["ca"]))
    assert await _check(tls_server, client.channel_credentials()) == grpc.StatusCode.OK
    assert await _check(tls_server, None) == grpc.StatusCode.UNAVAILABLE
    stranger = GrpcTlsSettings(tls_ca_file=str(pki["other_ca"]))
    assert await _check(tls_server, stranger.channel_credentials()) == grpc.StatusCode.UNAVAILABLE


async def test_mutual_tls_refuses_a_client_without_a_certificate(pki: dict[str, Path]) -> None:
    server, address = await _serve(GrpcTlsSettings(tls_cert_file=str(pki["cert"]), tls_key_file=str(pki["key"]),
                                                   tls_client_ca_file=str(pki["ca"])))
    try:
        with_cert = GrpcTlsSettings(tls_ca_file=str(pki["ca"]), tls_cert_file=str(pki["cert"]),
                                    tls_key_file=str(pki["key"]))
        assert await _check(address, with_cert.channel_credentials()) == grpc.StatusCode.OK
        without = GrpcTlsSettings(tls_ca_file=str(pki["ca"]))
        assert await _check(address, without.channel_credentials()) == grpc.StatusCode.UNAVAILABLE
    finally:
        await server.stop(0)


async def test_plaintext_only_when_explicitly_allowed() -> None:
    server = grpc.aio.server()
    with pytest.raises(ConfigError, match="SANDAN_GRPC_PLAINTEXT=allow"):
        GrpcTlsSettings().bind(server, "127.0.0.1:0")
    with pytest.raises(ConfigError, match="SANDAN_GRPC_TLS_CA_FILE"):
        GrpcTlsSettings().channel_credentials()
    assert GrpcTlsSettings(plaintext="allow").bind(server, "127.0.0.1:0") > 0
    assert GrpcTlsSettings(plaintext="allow").channel_credentials() is None
    with pytest.raises(ValueError, match="go together"):
        GrpcTlsSettings(tls_cert_file="/x.pem")


async def test_the_shipped_health_check_speaks_tls_when_a_ca_is_configured(tls_server: str, pki: dict[str, Path],
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    port = tls_server.rpartition(":")[2]
    check = functools.partial(asyncio.to_thread, healthcheck.check, f"0.0.0.0:{port}")  # as bound in a container
    assert not await check()  # plaintext against a TLS server
    monkeypatch.setenv("SANDAN_GRPC_TLS_CA_FILE", str(pki["ca"]))
    assert await check(server_name="localhost")  # a name the certificate holds
    assert not await check(server_name="intake")  # ... and one it does not
    monkeypatch.setenv("SANDAN_GRPC_TLS_CA_FILE", str(pki["other_ca"]))
    assert not await check(server_name="localhost")  # a stranger's CA
