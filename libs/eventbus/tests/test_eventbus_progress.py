"""The inbox's progress watchdog against the real broker, through the runtime's gRPC health: a consumer with lag
that applies nothing for `stuck_seconds` (a handler that hangs, a consumer task that died) makes the service
NOT_SERVING under its own reason while `liveness` stays SERVING, and SERVING again once it moves; the lag gauge
follows the backlog while nothing is consumed; an idle consumer (no lag) is never stuck. Without a broker, a
consumer with no partitions assigned while its group has lag, and time spent waiting out an outage.

Each test consumes a private topic (registered for the test, deleted after it), so only its own records count."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faststream.kafka import KafkaBroker
from prometheus_client import REGISTRY

from sandan_contracts import TOPICS, encode
from sandan_contracts.envelope import Envelope
from sandan_contracts.events import DemandWithdrawn, Event
from sandan_contracts.topics import Topic
from sandan_eventbus.inbox import Inbox
from sandan_eventbus.kafka import make_broker
from sandan_eventbus.runtime import LIVENESS, ServiceRuntime
from sandan_eventbus.security import GrpcTlsSettings, OidcSettings
from sandan_eventbus.store import ServiceApplication

# Health checks need no token, so the issuer is never asked; plaintext is allowed for the test.
OIDC = OidcSettings(issuer="http://127.0.0.1:9/realms/unused")
PLAINTEXT = GrpcTlsSettings(plaintext="allow")
STUCK_SECONDS = 2.0
WATCH_SECONDS = 0.5
PARTITIONS = 3


class ProgressApp(ServiceApplication):
    name = "progresstest"


def fact(n: int) -> bytes:
    return encode(DemandWithdrawn(demand_id=f"d-{n}", reason="x"), event_id=f"intake:{n}", producer="intake",
                  occurred_at=datetime.now(UTC), correlation_id="progress", causation_id=None)


def lag(group: str, topic: str, partition: int) -> float | None:
    return REGISTRY.get_sample_value("sandan_inbox_lag_messages",
                                     {"group": group, "topic": topic, "partition": str(partition)})


async def status(address: str, service: str = "") -> str:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    async with grpc.aio.insecure_channel(address) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service),
                                                                timeout=3)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


async def until(what: str, condition: Callable[[], Any], timeout: float) -> float:
    """Poll `condition` (sync or async) until true; returns the seconds it took."""
    began = time.monotonic()
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return time.monotonic() - began
        if time.monotonic() - began > timeout:
            raise AssertionError(f"{what}: not within {timeout:.0f}s")
        await asyncio.sleep(0.1)


@dataclass
class Service:
    runtime: ServiceRuntime
    inbox: Inbox
    broker: KafkaBroker
    topic: str
    address: str

    @property
    def group(self) -> str:
        return self.inbox.group_id

    async def publish(self, *numbers: int, partition: int = 0) -> None:
        for n in numbers:
            await self.broker.publish(fact(n), self.topic, key=b"k", partition=partition)

    async def health(self) -> str:
        return await status(self.address)

    def lag(self, partition: int = 0) -> float | None:
        return lag(self.group, self.topic, partition)


def private_topic(monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"test.progress.{uuid.uuid4().hex[:10]}"
    monkeypatch.setitem(TOPICS, name, Topic(name=name, owner="test", key="k", partitions=PARTITIONS,
                                            retention_ms=3_600_000, description="the watchdog's test topic"))
    return name


@contextlib.asynccontextmanager
async def running(bootstrap: str, tmp_path: Path, topic: str, handler: Callable[[Envelope, Event], Any],
                  ) -> AsyncIterator[Service]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
        app = ProgressApp(f"sqlite:///{tmp_path}/{uuid.uuid4().hex[:6]}.db")
        broker = make_broker("progress-test", bootstrap)
        inbox = Inbox(app, broker, f"progress-{uuid.uuid4().hex[:8]}", {topic: handler}, backoff_seconds=0.05,
                      stuck_seconds=STUCK_SECONDS, watch_seconds=WATCH_SECONDS)
        runtime = ServiceRuntime(name="progress-test", broker=broker, relay=None, inbox=inbox,
                                 grpc_address="127.0.0.1:0", register_servicers=lambda server: ["svc.v1.S"],
                                 bootstrap=bootstrap, oidc=OIDC, tls=PLAINTEXT)
        stop = asyncio.Event()
        task = asyncio.create_task(runtime.run(stop))
        try:
            await asyncio.wait_for(runtime.ready.wait(), 90)
            svc = Service(runtime, inbox, broker, topic, f"127.0.0.1:{runtime.bound_port}")
            # the consumer joined its group and was given the partitions: the watchdog reports their lag
            await until("partitions assigned", lambda: all(lag(inbox.group_id, topic, p) is not None
                                                           for p in range(PARTITIONS)), 60)
            yield svc
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
    finally:
        with contextlib.suppress(Exception):
            await admin.delete_topics([topic])
        await admin.close()


@pytest.mark.kafka
async def test_a_handler_that_hangs_with_messages_behind_it_makes_the_service_not_ready_until_it_moves(
        kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sandan_eventbus")
    topic = private_topic(monkeypatch)
    entered, release = threading.Event(), threading.Event()
    applied: list[str] = []

    def handler(envelope: Envelope, _: Event) -> list[Any]:
        entered.set()
        if not release.wait(120):  # never hold a worker thread past the test
            raise TimeoutError("never released")
        applied.append(envelope.event_id)
        return []

    async with running(kafka_bootstrap, tmp_path, topic, handler) as svc:
        assert await svc.health() == "SERVING"
        published_at = time.monotonic()
        await svc.publish(*range(5))
        await until("the handler hangs on the first record", entered.is_set, 30)

        # NOT_SERVING within the threshold and a few seconds; liveness stays SERVING (k8s must not kill it)
        await until("not ready", lambda: _is(svc.health(), "NOT_SERVING"), STUCK_SECONDS + 8)
        assert time.monotonic() - published_at >= STUCK_SECONDS - WATCH_SECONDS  # not before the threshold
        assert await status(svc.address, LIVENESS) == "SERVING"
        assert await status(svc.address, "svc.v1.S") == "NOT_SERVING"
        (down,) = [d for d in svc.runtime.readiness.down() if d.component == f"progress:{topic}"]
        assert svc.group in down.reason and topic in down.reason and "5 behind" in down.reason
        # the gauge shows the backlog though nothing was consumed since: all 5 on partition 0, none elsewhere
        assert (svc.lag(0), svc.lag(1), svc.lag(2)) == (5, 0, 0)
        stuck_lines = [r for r in caplog.records if r.getMessage() == "consumer stuck: lag and no progress"]
        assert len(stuck_lines) == 1
        assert stuck_lines[0].fields["group"] == svc.group and stuck_lines[0].fields["topic"] == topic  # type: ignore[attr-defined]

        # another part recovering does not clear it: the reasons are separate
        svc.runtime.readiness.set("store", False, "the store does not answer")
        svc.runtime.readiness.set("store", True)
        await asyncio.sleep(3 * WATCH_SECONDS)
        assert await svc.health() == "NOT_SERVING"
        assert svc.runtime.readiness.is_down(f"progress:{topic}") and not svc.runtime.readiness.is_down("store")
        assert len([r for r in caplog.records if r.getMessage() == "consumer stuck: lag and no progress"]) == 1

        # released: it works through the backlog, SERVING again, lag 0
        release.set()
        await until("ready again", lambda: _is(svc.health(), "SERVING"), 30)
        await until("all applied", lambda: len(applied) == 5, 30)
        await until("lag 0", lambda: svc.lag(0) == 0, 10)
        assert svc.runtime.readiness.ready
        again = [r for r in caplog.records if r.getMessage() == "consumer progressing again"]
        assert len(again) == 1 and again[0].fields["group"] == svc.group  # type: ignore[attr-defined]
        assert applied == [f"intake:{n}" for n in range(5)]


@pytest.mark.kafka
async def test_a_consumer_whose_task_died_is_reported_stuck_once_records_wait(
        kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    topic = private_topic(monkeypatch)
    async with running(kafka_bootstrap, tmp_path, topic, lambda envelope, event: []) as svc:
        await svc.publish(1)
        await until("first applied", lambda: svc.inbox.processed == 1, 30)
        for task in svc.inbox._subscribers[topic].tasks:  # the consume loop ends (its consumer stays in the group)
            task.cancel()
        await asyncio.sleep(STUCK_SECONDS + 1)
        assert await svc.health() == "SERVING"  # nothing waits: not stuck
        published_at = time.monotonic()
        await svc.publish(2, 3, 4, partition=1)
        await until("not ready", lambda: _is(svc.health(), "NOT_SERVING"), STUCK_SECONDS + 8)
        # the clock starts when records wait, not when the consumer last moved (an idle consumer is not late)
        assert time.monotonic() - published_at >= STUCK_SECONDS - WATCH_SECONDS
        assert svc.runtime.readiness.is_down(f"progress:{topic}")
        await until("the gauge counts all three", lambda: svc.lag(1) == 3, 5)
        assert svc.lag(0) == 0 and svc.inbox.processed == 1
        assert await status(svc.address, LIVENESS) == "SERVING"


@pytest.mark.kafka
async def test_an_idle_consumer_with_no_lag_stays_serving(kafka_bootstrap: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    topic = private_topic(monkeypatch)
    async with running(kafka_bootstrap, tmp_path, topic, lambda envelope, event: []) as svc:
        await svc.publish(1, 2)
        await until("both applied", lambda: svc.inbox.processed == 2, 30)
        await until("lag 0", lambda: svc.lag(0) == 0, 10)
        seen: set[str] = set()
        ends = time.monotonic() + 3 * STUCK_SECONDS + 1
        while time.monotonic() < ends:  # idle well past the threshold
            seen.add(await svc.health())
            await asyncio.sleep(0.2)
        assert seen == {"SERVING"}
        progress = svc.inbox.progress[topic]
        assert progress.behind == 0 and progress.stuck_since is None
        assert progress.positions == {0: 2, 1: 0, 2: 0}  # the watchdog did look: it saw both applied
        assert (svc.lag(0), svc.lag(1), svc.lag(2)) == (0, 0, 0)


async def _is(health: Any, expected: str) -> bool:
    return await health == expected


# --- without a broker: what the watchdog judges ----------------------------------------------------------------
class FakeConsumer:
    """The few consumer calls the watchdog makes: assignment, end and committed offsets."""

    def __init__(self, topic: str, ends: dict[int, int], committed: dict[int, int | None],
                 assigned: tuple[int, ...] = ()) -> None:
        self.topic, self.ends, self.committed_offsets, self.assigned = topic, ends, committed, assigned
        self.broken: BaseException | None = None

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(self.topic, p) for p in self.assigned}

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(self.ends)

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        if self.broken is not None:
            raise self.broken
        return {tp: self.ends[tp.partition] for tp in partitions}

    async def committed(self, tp: TopicPartition) -> int | None:
        return self.committed_offsets[tp.partition]

    async def beginning_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: 0 for tp in partitions}


class Subscriber:
    def __init__(self, consumer: FakeConsumer) -> None:
        self.consumer = consumer


def watched(tmp_path: Path, consumer: FakeConsumer) -> Inbox:
    inbox = Inbox(ProgressApp(f"sqlite:///{tmp_path}/unit.db"), None, "unit-group",  # type: ignore[arg-type]
                  {consumer.topic: lambda envelope, event: []}, stuck_seconds=0.3)
    inbox._subscribers[consumer.topic] = Subscriber(consumer)
    return inbox


async def test_no_partitions_assigned_while_the_group_has_lag_is_stuck_until_the_group_moves(tmp_path: Path) -> None:
    consumer = FakeConsumer("intake.demands.v1", ends={0: 10, 1: 4}, committed={0: 3, 1: None})
    inbox = watched(tmp_path, consumer)
    first = await inbox.check(consumer.topic)
    assert first.lag == {0: 7, 1: 4} and first.stuck_since is None  # judged on the group's committed offsets
    await asyncio.sleep(0.4)
    assert (await inbox.check(consumer.topic)).stuck_since is not None
    assert inbox.readiness.is_down(f"progress:{consumer.topic}")
    assert lag("unit-group", consumer.topic, 0) is None  # none consumed here: no series of this process
    consumer.committed_offsets[0] = 5  # the group moved (another replica, or this one rejoined)
    assert (await inbox.check(consumer.topic)).stuck_since is None
    assert inbox.readiness.ready


async def test_time_waiting_out_an_outage_is_not_counted_as_stuck(tmp_path: Path) -> None:
    consumer = FakeConsumer("dispatch.orders.v1", ends={0: 10}, committed={0: 3}, assigned=(0,))
    inbox = watched(tmp_path, consumer)
    await inbox.check(consumer.topic)
    assert lag("unit-group", consumer.topic, 0) == 7
    # the inbox paused on a store outage (its own reason), then the broker does not answer the watchdog
    inbox.readiness.set(f"inbox:{consumer.topic}", False, "store unreachable")
    for _ in range(3):
        await asyncio.sleep(0.15)
        assert (await inbox.check(consumer.topic)).stuck_since is None
    inbox.readiness.set(f"inbox:{consumer.topic}", True)
    consumer.broken = ConnectionError("broker away")
    for _ in range(3):
        await asyncio.sleep(0.15)
        assert (await inbox.check(consumer.topic)).stuck_since is None
    consumer.broken = None
    assert (await inbox.check(consumer.topic)).stuck_since is None  # the clock restarted after the outage
    assert inbox.readiness.ready
    await asyncio.sleep(0.4)
    assert (await inbox.check(consumer.topic)).stuck_since is not None  # still nothing moves: now it is stuck
    # a rebalance that moves the partition away removes this process's series
    consumer.assigned = ()
    await inbox.check(consumer.topic)
    assert lag("unit-group", consumer.topic, 0) is None
