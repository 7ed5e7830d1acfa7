"""The relay never stalls on one event: an event the broker refuses (larger than its topic's max.message.bytes) or
the contract refuses is set aside with its error, counted and listed, and the rest flow in order; the service stays
SERVING (its health name `publishing` says something waits); a restart does not try it again; a re-drive after the
cause is fixed publishes it once and records who asked. An outage still pauses the relay."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaTimeoutError
from eventsourcing.domain import Aggregate, event
from prometheus_client import REGISTRY

from sandan_contracts.events import DemandWithdrawn, Event
from sandan_eventbus.devtools import Received, read_topic
from sandan_eventbus.errors import InvalidArgument
from sandan_eventbus.kafka import aiokafka_kwargs, make_broker
from sandan_eventbus.relay import PUBLISHED, SET_ASIDE, RedriveResult, Relay
from sandan_eventbus.runtime import LIVENESS, PUBLISHING, ServiceRuntime
from sandan_eventbus.security import GrpcTlsSettings, OidcSettings
from sandan_eventbus.store import ServiceApplication

OIDC = OidcSettings(issuer="http://127.0.0.1:9/realms/unused")  # health checks need no token
PLAINTEXT = GrpcTlsSettings(plaintext="allow")


class Parcel(Aggregate):
    @event("Packed")
    def __init__(self, key: str, label: str, size: int) -> None:
        self.key, self.label, self.size = key, label, size


class Bulky(Event):
    """A test-only contract: published to a private topic, as large as the stored event says."""

    TYPE: ClassVar[str] = "RelayTestBulky"
    TOPIC: ClassVar[str] = "unset"
    KEY: ClassVar[str] = "parcel_id"
    parcel_id: str
    label: str
    padding: str = ""


def contract_for(topic: str) -> type[Bulky]:
    class OnTopic(Bulky):
        TOPIC: ClassVar[str] = topic

    return OnTopic


def sample(metric: str, service: str) -> float | None:
    return REGISTRY.get_sample_value(metric, {"service": service})


async def health(address: str, name: str) -> str:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    async with grpc.aio.insecure_channel(address) as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=name),
                                                                    timeout=3)
        except grpc.aio.AioRpcError as error:
            return error.code().name  # NOT_FOUND: the name was never set
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


async def until(condition: Any, what: str, seconds: float = 60) -> None:
    for _ in range(int(seconds / 0.1)):
        if await condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"never: {what}")


class Running:
    """One service runtime with the relay, as a service runs it (health, readiness, the relay's loop)."""

    def __init__(self, relay: Relay, bootstrap: str) -> None:
        self.runtime = ServiceRuntime(name=relay.app.name, broker=relay.broker, relay=relay, inbox=None,
                                      grpc_address="127.0.0.1:0", register_servicers=lambda server: ["svc.v1.S"],
                                      oidc=OIDC, tls=PLAINTEXT, metrics_port=0, bootstrap=bootstrap)
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Running:
        self.task = asyncio.create_task(self.runtime.run(self.stop))
        await asyncio.wait_for(self.runtime.ready.wait(), 60)
        return self

    async def __aexit__(self, *_: object) -> None:
        self.stop.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, 30)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.runtime.bound_port}"


@pytest.fixture
async def admin(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(client_id="relay-set-aside-test", **aiokafka_kwargs(kafka_bootstrap))
    await client.start()
    try:
        yield client
    finally:
        await client.close()


async def private_topic(admin: AIOKafkaAdminClient, max_message_bytes: int) -> str:
    name = f"relaytest.small-{uuid.uuid4().hex[:10]}.v1"
    await admin.create_topics([NewTopic(name, 1, 1, topic_configs={"max.message.bytes": str(max_message_bytes)})])
    for _ in range(100):
        if name in await admin.list_topics():
            return name
        await asyncio.sleep(0.1)
    raise AssertionError(f"topic {name} not created")


async def records_of(bootstrap: str, topic: str, count: int) -> list[Received]:
    """The topic's records once it holds `count` (and a moment more, to see one too many)."""
    found = await read_topic(bootstrap, topic, until=lambda f: len(f) >= count, timeout=20)
    assert len(found) >= count, f"{topic}: {len(found)} records, expected {count}"
    more = await read_topic(bootstrap, topic, until=lambda f: len(f) > count, timeout=1)
    return more


# (max.message.bytes, size of the big event): below the producer's 16 KiB batch size, the refused record shares a
# producer batch with good ones (the broker refuses the whole batch: each is tried alone); above it, it goes alone.
@pytest.mark.kafka
@pytest.mark.parametrize(("limit", "big"), [(2_000, 5_000), (20_000, 40_000)], ids=["shared-batch", "own-batch"])
async def test_an_event_too_large_for_its_topic_is_set_aside_and_the_rest_flow(
        kafka_bootstrap: str, admin: AIOKafkaAdminClient, tmp_path: Any, limit: int, big: int) -> None:
    topic = await private_topic(admin, limit)
    contract = contract_for(topic)

    def to_contract(e: Any) -> Event | None:
        return contract(parcel_id=e.key, label=e.label, padding="x" * e.size)

    class Store(ServiceApplication):
        name = f"setaside{uuid.uuid4().hex[:8]}"

    url = f"sqlite:///{tmp_path}/relay.db"
    app = Store(url)
    key = f"k-{uuid.uuid4().hex[:8]}"  # one aggregate's key: the big event sits between two of its facts
    for label, size in (("first", 10), ("big", big), ("third", 10)):
        app.save(Parcel(key, label, size))
    service = Store.name
    try:
        relay = Relay(app, make_broker("relay-set-aside", kafka_bootstrap), to_contract)
        async with Running(relay, kafka_bootstrap) as running:
            async def moved_past_all() -> bool:
                return relay.set_aside == 1 and await asyncio.to_thread(relay.backlog) == 0
            await until(moved_past_all, "the relay moved past the three events")
            await until(lambda: _is(health(running.address, PUBLISHING), "NOT_SERVING"), "publishing NOT_SERVING")
            assert await health(running.address, "") == "SERVING"  # ready: the rest flows
            assert await health(running.address, "svc.v1.S") == "SERVING"
            assert await health(running.address, LIVENESS) == "SERVING"
            assert relay.readiness.ready

        found = await records_of(kafka_bootstrap, topic, 2)
        assert [r.envelope.data["label"] for r in found if r.envelope] == ["first", "third"]
        assert {r.key for r in found} == {key}
        aside = await asyncio.to_thread(relay.set_aside_events)
        assert [(a.notification_id, a.status, a.topic, a.event_type) for a in aside] == \
            [(2, SET_ASIDE, topic, "Parcel.Packed")]
        assert aside[0].error.startswith("MessageSizeTooLargeError")
        assert "xxxx" not in aside[0].error
        assert aside[0].event_id.startswith(f"{service}:")
        assert sample("sandan_relay_set_aside_events", service) == 1
        assert relay.published == 2

        # a restart (a new application on the same store) does not try it again, and later events flow
        app2 = Store(url)
        app2.save(Parcel(key, "fourth", 10))
        relay2 = Relay(app2, make_broker("relay-set-aside-2", kafka_bootstrap), to_contract)
        async with Running(relay2, kafka_bootstrap) as running:
            async def moved_past_four() -> bool:
                return relay2.published == 1 and await asyncio.to_thread(relay2.backlog) == 0
            await until(moved_past_four, "the restarted relay moved past the fourth event")
            await until(lambda: _is(health(running.address, PUBLISHING), "NOT_SERVING"), "publishing NOT_SERVING")
            assert relay2.set_aside == 1 and sample("sandan_relay_set_aside_events", service) == 1
            assert [a.notification_id for a in await asyncio.to_thread(relay2.set_aside_events)] == [2]
            found = await records_of(kafka_bootstrap, topic, 3)
            assert [r.envelope.data["label"] for r in found if r.envelope] == ["first", "third", "fourth"]

            # a re-drive needs to say who asks; once the topic takes larger records it publishes the event once
            with pytest.raises(InvalidArgument, match="operator"):
                await relay2.redrive(operator="  ")
            assert await relay2.redrive(operator="ops: test", reason="still too large") == \
                [RedriveResult(2, SET_ASIDE, aside[0].error)]
            await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                                      configs={"max.message.bytes": str(big * 4)})])
            results = await relay2.redrive(operator="ops: test", reason="topic limit raised")
            assert results == [RedriveResult(2, PUBLISHED)]
            await until(lambda: _is(health(running.address, PUBLISHING), "SERVING"), "publishing SERVING")
            assert sample("sandan_relay_set_aside_events", service) == 0
            # once published, it is not published again
            assert await relay2.redrive([2, 99], operator="ops: test") == \
                [RedriveResult(2, "already_published"), RedriveResult(99, "not_found")]
            assert await relay2.redrive(operator="ops: test") == []

        found = await records_of(kafka_bootstrap, topic, 4)
        assert [r.envelope.data["label"] for r in found if r.envelope] == ["first", "third", "fourth", "big"]
        assert found[3].envelope is not None and found[3].envelope.event_id == aside[0].event_id
        assert await asyncio.to_thread(relay2.set_aside_events) == []
        (item,) = await asyncio.to_thread(relay2.set_aside_events, True)
        assert item.status == PUBLISHED and item.attempts == 3
        assert [(r.operator, r.reason, r.outcome) for r in item.redrives] == \
            [("ops: test", "still too large", SET_ASIDE), ("ops: test", "topic limit raised", PUBLISHED)]
    finally:
        await admin.delete_topics([topic])


async def _is(check: Any, expected: str) -> bool:
    return await check == expected


# ---- without a broker: mapping refusals, outages ---------------------------------------------------------------
class Sent:
    def __init__(self) -> None:
        self.records: list[tuple[str, bytes]] = []
        self.fail_with: Exception | None = None

    async def publish(self, body: bytes, topic: str, **_: Any) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.fail_with is not None:
            future.set_exception(self.fail_with)
        else:
            self.records.append((topic, body))
            future.set_result(None)
        return future


class Withdrawals(ServiceApplication):
    name = "setasidemap"


class Withdrawal(Aggregate):
    @event("Made")
    def __init__(self, demand_id: str, reason: str) -> None:
        self.demand_id, self.reason = demand_id, reason


def withdrawn(e: Any) -> Event | None:
    return DemandWithdrawn(demand_id=e.demand_id, reason=e.reason)  # the contract checks the reason code


async def test_an_event_the_contract_refuses_is_set_aside_without_its_content() -> None:
    app = Withdrawals()
    for reason in ("changed_mind", "Wang Fang moved away", "duplicate"):  # the second is no reason code
        app.save(Withdrawal("d-1", reason))
    broker = Sent()
    relay = Relay(app, broker, withdrawn)  # type: ignore[arg-type]
    assert await relay.publish_once() == 3
    assert relay.position() == 3 and relay.published == 2
    assert [b'"changed_mind"' in body or b'"duplicate"' in body for _, body in broker.records] == [True, True]
    (aside,) = relay.set_aside_events()
    assert aside.notification_id == 2 and aside.topic == "" and aside.event_type == "Withdrawal.Made"
    assert aside.error.startswith("ValidationError") and "reason" in aside.error
    assert "Wang" not in aside.error  # the refused value is not kept: it may be personal
    assert relay.set_aside == 1 and sample("sandan_relay_set_aside_events", "setasidemap") == 1
    # the mapping still refuses it: a re-drive records the attempt and leaves it set aside
    (result,) = await relay.redrive(operator="ops: test")
    assert result.outcome == SET_ASIDE and "reason" in result.error
    assert relay.set_aside_events()[0].attempts == 2


async def test_an_event_for_an_illegal_topic_name_is_set_aside() -> None:
    class Misrouted(DemandWithdrawn):
        TOPIC: ClassVar[str] = "intake demands!"

    def routed(e: Any) -> Event | None:
        return (Misrouted if e.reason == "duplicate" else DemandWithdrawn)(demand_id=e.demand_id, reason=e.reason)

    app = Withdrawals()
    for reason in ("changed_mind", "duplicate", "changed_mind"):
        app.save(Withdrawal("d-3", reason))
    broker = Sent()
    relay = Relay(app, broker, routed)  # type: ignore[arg-type]
    assert await relay.publish_once() == 3
    assert [topic for topic, _ in broker.records] == ["intake.demands.v1", "intake.demands.v1"]
    (aside,) = relay.set_aside_events()
    assert (aside.notification_id, aside.topic) == (2, "intake demands!")
    assert aside.error.startswith("InvalidTopicError")


async def test_an_outage_pauses_the_relay_and_sets_nothing_aside() -> None:
    app = Withdrawals()
    app.save(Withdrawal("d-2", "changed_mind"))
    broker = Sent()
    broker.fail_with = KafkaTimeoutError()
    relay = Relay(app, broker, withdrawn, backoff_seconds=0.01, max_backoff_seconds=0.05)  # type: ignore[arg-type]
    with pytest.raises(KafkaTimeoutError):
        await relay.publish_once()
    assert relay.position() == 0 and relay.set_aside_events() == []

    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        for _ in range(100):
            if not relay.readiness.ready:
                break
            await asyncio.sleep(0.02)
        assert [d.component for d in relay.readiness.down()] == ["relay"]
        assert relay.position() == 0  # waiting, not skipping
        broker.fail_with = None  # the broker is back: the same event goes out, and the relay is ready again
        for _ in range(200):
            if relay.position() == 1 and relay.readiness.ready:
                break
            await asyncio.sleep(0.02)
        assert relay.position() == 1 and relay.readiness.ready and len(broker.records) == 1
        assert relay.set_aside_events() == [] and relay.set_aside == 0
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
