"""The metrics module: gRPC calls counted by method and code in front of the chain (refusals included), streams,
the port setting, the HTTP endpoint, and the inbox's dead-letter reasons."""

from __future__ import annotations

import asyncio
import socket
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY

from sandan_eventbus import edge, metrics
from sandan_eventbus.config import ConfigError

HEALTH = "grpc.health.v1.Health"


def watched() -> float:
    return sum(REGISTRY.get_sample_value("grpc_server_handled_total", {
        "grpc_service": HEALTH, "grpc_method": "Watch", "grpc_type": "server_stream", "grpc_code": code}) or 0.0
        for code in ("CANCELLED", "OK", "UNKNOWN"))


def handled(method: str, code: str) -> float:
    return REGISTRY.get_sample_value("grpc_server_handled_total", {
        "grpc_service": HEALTH, "grpc_method": method, "grpc_type": "unary", "grpc_code": code}) or 0.0


async def test_grpc_calls_are_counted_and_timed_by_method_and_code() -> None:
    server = edge.server("metrics-test", outer=[metrics.GrpcMetrics()])
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    await servicer.set("known", health_pb2.HealthCheckResponse.SERVING)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    ok, not_found = handled("Check", "OK"), handled("Check", "NOT_FOUND")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            await stub.Check(health_pb2.HealthCheckRequest(service="known"))
            with pytest.raises(grpc.aio.AioRpcError):  # the servicer aborts: NOT_FOUND
                await stub.Check(health_pb2.HealthCheckRequest(service="unknown"))
            with pytest.raises(grpc.aio.AioRpcError):  # no such method: not counted (names would be unbounded)
                await channel.unary_unary("/nope.v1.Nope/Nothing")(b"")
    finally:
        await server.stop(None)
    assert handled("Check", "OK") == ok + 1
    assert handled("Check", "NOT_FOUND") == not_found + 1
    assert REGISTRY.get_sample_value("grpc_server_handling_seconds_count", {
        "grpc_service": HEALTH, "grpc_method": "Check", "grpc_type": "unary", "grpc_code": "OK"}) >= 1
    assert REGISTRY.get_sample_value("grpc_server_handled_total", {
        "grpc_service": "nope.v1.Nope", "grpc_method": "Nothing", "grpc_type": "unary",
        "grpc_code": "UNIMPLEMENTED"}) is None


async def test_a_stream_counts_when_it_ends() -> None:
    server = edge.server("metrics-test", outer=[metrics.GrpcMetrics()])
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    before = watched()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stream = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))
            await stream.read()
            stream.cancel()
            await asyncio.sleep(0.2)
    finally:
        await server.stop(None)
    # a stream counts when it ends (here cancelled by the client), with its whole life as duration
    assert watched() == before + 1


def test_the_port_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROBE_METRICS_PORT", raising=False)
    assert metrics.port("probe") == 0
    monkeypatch.setenv("PROBE_METRICS_PORT", "")
    assert metrics.port("probe") == 0
    monkeypatch.setenv("PROBE_METRICS_PORT", "9464")
    assert metrics.port("probe") == 9464
    for bad in ("http", "-1", "70000"):
        monkeypatch.setenv("PROBE_METRICS_PORT", bad)
        with pytest.raises(ConfigError, match="PROBE_METRICS_PORT"):
            metrics.port("probe")


def test_the_endpoint_serves_the_registry_and_stops() -> None:
    assert metrics.serve("probe", 0) is None  # 0: no server
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    served = metrics.serve("probe", free, "127.0.0.1")
    assert served is not None and served.port == free
    try:
        metrics.relay_backlog(7)
        with urllib.request.urlopen(f"http://127.0.0.1:{free}/metrics", timeout=5) as reply:
            text = reply.read().decode()
        assert "sandan_relay_backlog_events 7.0" in text
        assert "process_resident_memory_bytes" in text or "python_info" in text
    finally:
        served.stop()


def test_dead_letter_reasons_are_bounded() -> None:
    metrics.inbox_subscribed(["probe.topic.v1"])
    value = lambda reason: REGISTRY.get_sample_value(  # noqa: E731
        "sandan_dead_letters_total", {"topic": "probe.topic.v1", "reason": reason})
    assert value("undecodable") == 0.0 and value("refused") == 0.0 and value("failed") == 0.0
    metrics.dead_lettered("probe.topic.v1", "undecodable: not JSON")
    metrics.dead_lettered("probe.topic.v1", "refused: NotFound: order o-1 is unknown")
    metrics.dead_lettered("probe.topic.v1", "failed 5 times: boom")
    metrics.dead_lettered("probe.topic.v1", "fold failed: KeyError: 'x'")  # scoring's words
    assert (value("undecodable"), value("refused"), value("failed")) == (1.0, 1.0, 2.0)
