"""The runtime in-process: readiness reaches gRPC health ("" and service names) while `liveness` stays SERVING,
and a stop arriving while the broker cannot be reached (refused, or accepting and never answering) ends
`run` instead of waiting on the broker."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sandan_eventbus.config import ConfigError
from sandan_eventbus.healthcheck import check
from sandan_eventbus.kafka import make_broker
from sandan_eventbus.runtime import LIVENESS, ServiceRuntime
from sandan_eventbus.security import GrpcTlsSettings, OidcSettings

# Health checks need no token, so the issuer is never asked; plaintext is allowed for the test.
OIDC = OidcSettings(issuer="http://127.0.0.1:9/realms/unused")
PLAINTEXT = GrpcTlsSettings(plaintext="allow")


async def status(address: str, service: str) -> str:
    async with grpc.aio.insecure_channel(address) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service),
                                                                timeout=3)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


async def eventually(address: str, service: str, expected: str) -> None:
    for _ in range(100):
        if await status(address, service) == expected:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{service or '<overall>'} never became {expected}")


@pytest.mark.kafka
async def test_readiness_reaches_health_and_liveness_stays_serving(kafka_bootstrap: str) -> None:
    runtime = ServiceRuntime(name="probe-test", broker=make_broker("runtime-test", kafka_bootstrap), relay=None,
                             inbox=None, grpc_address="127.0.0.1:0", register_servicers=lambda server: ["svc.v1.S"],
                             oidc=OIDC, tls=PLAINTEXT)
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop))
    try:
        await asyncio.wait_for(runtime.ready.wait(), 60)
        address = f"127.0.0.1:{runtime.bound_port}"
        for name in ("", "svc.v1.S", LIVENESS):
            assert await status(address, name) == "SERVING"

        runtime.readiness.set("scorer", False, "ledger store unreachable")  # any part may report
        await eventually(address, "", "NOT_SERVING")
        assert await status(address, "svc.v1.S") == "NOT_SERVING"
        assert await status(address, LIVENESS) == "SERVING"
        # the container probe: `healthcheck` (readiness) fails, `healthcheck liveness` passes
        assert not await asyncio.to_thread(check, address)
        assert await asyncio.to_thread(check, address, 3.0, LIVENESS)

        runtime.readiness.set("scorer", True)
        await eventually(address, "", "SERVING")
        assert await status(address, "svc.v1.S") == "SERVING"
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


@pytest.fixture
def black_hole() -> Iterator[str]:
    """A port that accepts connections and never answers: a broker hung mid-start looks like this."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield f"127.0.0.1:{s.getsockname()[1]}"


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


@pytest.mark.parametrize("unreachable", ["refused", "silent"])
async def test_a_stop_while_the_broker_cannot_be_reached_ends_the_start(unreachable: str,
                                                                        request: pytest.FixtureRequest) -> None:
    bootstrap = closed_port() if unreachable == "refused" else request.getfixturevalue("black_hole")
    runtime = ServiceRuntime(name="start-test", broker=make_broker("runtime-start", bootstrap), relay=None,
                             inbox=None, grpc_address="127.0.0.1:0", register_servicers=lambda server: [],
                             oidc=OIDC, tls=PLAINTEXT)
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop))
    await asyncio.sleep(2)  # trying to connect
    assert not task.done()
    stop.set()
    await asyncio.wait_for(task, 10)  # returns; before this work it waited on the broker for good
    assert not runtime.ready.is_set() and runtime.bound_port == 0


def test_a_service_does_not_start_without_an_issuer_or_a_way_to_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SANDAN_OIDC_ISSUER", "SANDAN_GRPC_PLAINTEXT", "SANDAN_GRPC_TLS_CERT_FILE"):
        monkeypatch.delenv(name, raising=False)

    def build() -> ServiceRuntime:
        return ServiceRuntime(name="no-issuer", broker=make_broker("no-issuer", "127.0.0.1:9"), relay=None,
                              inbox=None, grpc_address="127.0.0.1:0", register_servicers=lambda server: [])

    with pytest.raises(ConfigError, match="SANDAN_OIDC_ISSUER"):
        build()
    monkeypatch.setenv("SANDAN_OIDC_ISSUER", "http://127.0.0.1:9/realms/x")
    monkeypatch.setenv("SANDAN_GRPC_PLAINTEXT", "yes please")
    with pytest.raises(ConfigError, match="SANDAN_GRPC_PLAINTEXT"):
        build()
