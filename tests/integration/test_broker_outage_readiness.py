"""Readiness around a broker outage: a service with a consumer reports NOT_SERVING while its broker is down (the
runtime's probe) and SERVING once it is back, while `liveness` stays SERVING throughout; the outage is not taken
for a stuck consumer, and the consumer applies what is published after it.

The broker is this test's own (deploy/local/kafka.sh on private ports and state, killed with SIGKILL and started
again): the shared one is never stopped."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY

from sandan_contracts import encode
from sandan_contracts.envelope import Envelope
from sandan_contracts.events import DemandWithdrawn, Event
from sandan_eventbus.inbox import Inbox
from sandan_eventbus.kafka import make_broker
from sandan_eventbus.runtime import LIVENESS, ServiceRuntime
from sandan_eventbus.security import GrpcTlsSettings, OidcSettings
from sandan_eventbus.store import ServiceApplication
from tests.integration.test_outage import PrivateBroker, broker  # noqa: F401  (the private broker fixture)

pytestmark = pytest.mark.kafka

TOPIC = "intake.demands.v1"
OIDC = OidcSettings(issuer="http://127.0.0.1:9/realms/unused")  # health checks carry no token
PLAINTEXT = GrpcTlsSettings(plaintext="allow")


class OutageApp(ServiceApplication):
    name = "brokeroutage"


def fact(n: int) -> bytes:
    return encode(DemandWithdrawn(demand_id=f"d-{n}", reason="x"), event_id=f"intake:{n}", producer="intake",
                  occurred_at=datetime.now(UTC), correlation_id="outage", causation_id=None)


async def health(address: str, service: str = "") -> str:
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=2)
        except grpc.aio.AioRpcError as exc:
            return exc.code().name
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


async def until(what: str, condition: Callable[[], Any], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f}s")
        await asyncio.sleep(0.2)


async def test_readiness_is_not_serving_while_the_broker_is_down_and_serving_once_it_is_back(
        broker: PrivateBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:  # noqa: F811
    caplog.set_level(logging.INFO, logger="sandan_eventbus")
    applied: list[str] = []

    def handler(envelope: Envelope, _: Event) -> list[Any]:
        applied.append(envelope.event_id)
        return []

    group = f"outage-{uuid.uuid4().hex[:8]}"
    service_broker = make_broker("broker-outage-test", broker.bootstrap)
    inbox = Inbox(OutageApp(f"sqlite:///{tmp_path}/events.db"), service_broker, group, {TOPIC: handler},
                  backoff_seconds=0.05, stuck_seconds=3, watch_seconds=0.5)
    runtime = ServiceRuntime(name="broker-outage-test", broker=service_broker, relay=None, inbox=inbox,
                             grpc_address="127.0.0.1:0", register_servicers=lambda server: ["svc.v1.S"],
                             bootstrap=broker.bootstrap, probe_seconds=1, oidc=OIDC, tls=PLAINTEXT)
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop))
    try:
        await asyncio.wait_for(runtime.ready.wait(), 120)
        address = f"127.0.0.1:{runtime.bound_port}"
        await service_broker.publish(fact(1), TOPIC, key=b"k")
        await until("the first record applied", lambda: applied == ["intake:1"], 60)
        assert await health(address) == "SERVING"

        await asyncio.to_thread(broker.kill)
        await until("not ready while the broker is down", lambda: _is(health(address), "NOT_SERVING"), 30)
        assert await health(address, "svc.v1.S") == "NOT_SERVING"
        assert await health(address, LIVENESS) == "SERVING"  # waiting out an outage: not to be restarted
        assert runtime.readiness.is_down("broker")
        await asyncio.sleep(5)  # longer than the stuck threshold: the outage is not a stuck consumer
        assert await health(address) == "NOT_SERVING" and await health(address, LIVENESS) == "SERVING"

        await asyncio.to_thread(broker.start)
        await until("ready once the broker is back", lambda: _is(health(address), "SERVING"), 120)
        assert runtime.readiness.ready and await health(address, LIVENESS) == "SERVING"
        # the consumer works again: what is published now is applied, and nothing waits
        await service_broker.publish(fact(2), TOPIC, key=b"k")
        await until("the second record applied", lambda: applied == ["intake:1", "intake:2"], 120)
        await until("lag 0", lambda: _total_lag(group) == 0, 30)
        assert await health(address) == "SERVING"
        assert not [r for r in caplog.records if r.getMessage().startswith("consumer stuck")], \
            "the broker outage was taken for a stuck consumer"
        assert [r.fields["component"] for r in caplog.records  # type: ignore[attr-defined]
                if r.getMessage() == "service not ready"] == ["broker"]
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def _is(status: Any, expected: str) -> bool:
    return await status == expected


def _total_lag(group: str) -> float | None:
    values = [s.value for metric in REGISTRY.collect() if metric.name == "sandan_inbox_lag_messages"
              for s in metric.samples if s.labels.get("group") == group]
    return sum(values) if values else None
