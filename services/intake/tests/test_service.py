"""The whole service on a real broker: gRPC in, DemandPosted out, a dispatch fact back in.

Given a running intake (SQLite store, a fresh consumer group starting at the topic's end, tokens from a local OIDC
issuer)
when a resident registers themselves and posts a demand, then DemandPosted appears on intake.demands.v1 without
personal data; when dispatch publishes OrderAccepted, then the demand becomes accepted, the member gets the
contact, and the demand's history names who did each step.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from sandan_contracts import TOPICS, decode, encode
from sandan_contracts.events import OrderAccepted
from sandan_contracts.rpc import intake_pb2 as pb
from sandan_contracts.rpc.intake_pb2_grpc import IntakeStub
from sandan_eventbus.auth.devissuer import LocalIssuer
from sandan_eventbus.healthcheck import check
from sandan_eventbus.kafka import create_topics
from sandan_intake.__main__ import build_runtime
from sandan_intake.keys import Keyring
from sandan_intake.settings import Settings
from services.intake.tests.support import Caller

pytestmark = pytest.mark.kafka

DEMANDS, ORDERS = "intake.demands.v1", "dispatch.orders.v1"


class TopicReader:
    """Reads a topic from its current end: only what this test causes."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        self.topic = topic

    async def start(self) -> None:
        await self.consumer.start()
        parts = [TopicPartition(self.topic, p) for p in range(TOPICS[self.topic].partitions)]
        self.consumer.assign(parts)
        await self.consumer.seek_to_end(*parts)
        for tp in parts:
            await self.consumer.position(tp)  # resolve the end now, before the test writes

    async def read_until(self, match: Any, timeout: float = 20) -> tuple[Any, Any, bytes]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            for records in (await self.consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    envelope, event = decode(record.value)
                    if match(event):
                        return envelope, event, record.value
        raise AssertionError(f"nothing matching on {self.topic} within {timeout}s")

    async def stop(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):  # aiokafka 0.14 may cancel its own close
            await self.consumer.stop()


async def group_starts_at_end(bootstrap: str, group: str, topic: str) -> None:
    """Commit the group's position at the topic's current end: the shared broker's history (other tests' orders,
    unknown here and dead-lettered one by one) would otherwise stand between the service and this test's fact."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(TOPICS[topic].partitions)]
        consumer.assign(parts)
        await consumer.commit(await consumer.end_offsets(parts))
    finally:
        with contextlib.suppress(asyncio.CancelledError):
            await consumer.stop()


async def test_service_end_to_end(kafka_bootstrap: str, tmp_path: Any, local_issuer: LocalIssuer,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # the runtime verifies every call against this issuer; plaintext gRPC on 127.0.0.1 for the test
    monkeypatch.setenv("SANDAN_OIDC_ISSUER", local_issuer.url)
    monkeypatch.setenv("SANDAN_GRPC_PLAINTEXT", "allow")
    await create_topics(kafka_bootstrap)
    settings = Settings(kafka_bootstrap_servers=kafka_bootstrap, eventstore_url=f"sqlite:///{tmp_path}/e.db",
                        database_url=f"sqlite:///{tmp_path}/r.db", grpc_address="127.0.0.1:0",
                        consumer_group=f"intake-test-{uuid.uuid4().hex[:8]}", log_level="INFO",
                        keyring=Keyring.generate())
    await group_starts_at_end(kafka_bootstrap, settings.consumer_group, ORDERS)
    runtime = build_runtime(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop))
    try:
        await asyncio.wait_for(runtime.ready.wait(), 30)
        address = f"127.0.0.1:{runtime.bound_port}"
        assert await asyncio.to_thread(check, address)
        reader = TopicReader(kafka_bootstrap, DEMANDS)
        try:
            await reader.start()
        except BaseException:
            await reader.stop()
            raise
        async with grpc.aio.insecure_channel(address) as channel:
            stub = IntakeStub(channel)
            zhao = Caller(stub, local_issuer, f"zhao-{uuid.uuid4().hex[:8]}", ["resident"])
            member = Caller(stub, local_issuer, "sub-m-e2e", ["member"], member_id="m-e2e")
            resident = await zhao.RegisterResident(pb.RegisterResidentRequest(
                community_id="c-e2e", name="Zhao Lei", phone="13700002222", address="8 River Road"))
            assert resident.resident_id == zhao.resident_id  # bound to the account
            demand = await zhao.PostDemand(pb.PostDemandRequest(
                client_request_id="e2e-1", resident_id=resident.resident_id, community_id="c-e2e", grid_id="g-1",
                other_text="errand", description="Carry groceries upstairs", urgency="urgent", channel="app"))

            try:
                envelope, posted, raw = await reader.read_until(
                    lambda e: getattr(e, "demand_id", None) == demand.demand_id)
            finally:
                await reader.stop()
            assert posted.TYPE == "DemandPosted" and envelope.producer == "intake"
            for secret in (b"Zhao Lei", b"13700002222", b"8 River Road", b"Carry groceries", b"errand"):
                assert secret not in raw

            producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
            await producer.start()
            try:
                accepted = OrderAccepted(order_id=f"o-{uuid.uuid4().hex[:8]}", demand_id=demand.demand_id,
                                         member_id="m-e2e", via="claim")
                envelope_id = f"dispatch-test:{uuid.uuid4().hex}"
                body = encode(accepted, event_id=envelope_id, producer="dispatch",
                              occurred_at=datetime.now(UTC), correlation_id="e2e", causation_id=None)
                await producer.send_and_wait(ORDERS, body, key=accepted.key().encode())
            finally:
                await producer.stop()

            for _ in range(100):
                current = await zhao.GetDemand(pb.DemandRef(demand_id=demand.demand_id))
                if current.status == "accepted":
                    break
                await asyncio.sleep(0.2)
            assert (current.status, current.member_id) == ("accepted", "m-e2e")
            contact = await member.GetServiceContact(pb.ServiceContactRequest(demand_id=demand.demand_id,
                                                                              member_id="m-e2e"))
            assert contact.phone == "13700002222"
            history = await zhao.GetDemandHistory(pb.DemandRef(demand_id=demand.demand_id))
            assert [(e.what, e.subject, e.role, e.caused_by) for e in history.entries] == [
                ("Posted", zhao.subject, "resident", ""),
                ("AcceptanceRecorded", "", "", envelope_id),  # the inbox records the fact that caused it
                ("ContactReleased", "sub-m-e2e", "member", ""),
            ]
            with pytest.raises(grpc.aio.AioRpcError) as anonymous:
                await stub.GetDemand(pb.DemandRef(demand_id=demand.demand_id))
            assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 30)
