"""Records the outbox relay publishes, read back from the real broker, are CloudEvents for a stock SDK.

The relay adds the CloudEvents Kafka binding headers beside what it always sent: the value is still the envelope
(sandan's own readers decode it as before), the key the aggregate id, the `type` / `schema_version` headers and
faststream's `correlation_id` header are still there.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary
from cloudevents.core.formats.json import JSONFormat
from eventsourcing.domain import Aggregate, event

from sandan_contracts import decode, encode
from sandan_contracts.events import DemandWithdrawn, Event
from sandan_eventbus.devtools import read_topic
from sandan_eventbus.kafka import create_topics, make_broker
from sandan_eventbus.relay import Relay
from sandan_eventbus.store import ServiceApplication
from sandan_eventbus.trace import traced

pytestmark = pytest.mark.kafka
TOPIC = DemandWithdrawn.TOPIC


class Withdrawal(Aggregate):
    @event("Made")
    def __init__(self, demand_id: str) -> None:
        self.demand_id = demand_id


class IntakeLike(ServiceApplication):
    name = "cetest"  # its own event ids ("cetest:<n>"): never mistaken for intake's on the shared topic


def to_contract(e: Any) -> Event | None:
    if type(e).__qualname__ == "Withdrawal.Made":
        return DemandWithdrawn(demand_id=e.demand_id, reason="cloudevents_test")
    return None


async def test_a_relayed_record_is_a_cloudevent(kafka_bootstrap: str, tmp_path) -> None:
    await create_topics(kafka_bootstrap)
    app = IntakeLike(f"sqlite:///{tmp_path}/ce.db")
    keys = [f"ce-{uuid.uuid4().hex[:10]}" for _ in range(2)]
    with traced("ce-flow"):
        for key in keys:
            app.save(Withdrawal(key))
    broker = make_broker("cloudevents-test", kafka_bootstrap)
    await broker.start()
    try:
        relay = Relay(app, broker, to_contract)
        while await relay.publish_once():
            pass
    finally:
        await broker.stop()

    for key in keys:
        found = await read_topic(kafka_bootstrap, TOPIC, until=lambda f: len(f) >= 1,
                                 where=lambda r, k=key: r.key == k)
        assert len(found) == 1
        record = found[0]
        envelope, fact = decode(record.raw)  # sandan's readers: unchanged
        assert fact == DemandWithdrawn(demand_id=key, reason="cloudevents_test")
        message = KafkaMessage(headers={k: v.encode() for k, v in record.headers.items()},
                               key=record.key.encode() if record.key else None, value=record.raw)
        cloud_event = from_binary(message, JSONFormat())
        assert cloud_event.get_id() == envelope.event_id
        assert cloud_event.get_type() == "cn.sandan.intake.demands.DemandWithdrawn.v1"
        assert cloud_event.get_source() == "/sandan/cetest"
        assert cloud_event.get_time() == envelope.occurred_at
        assert cloud_event.get_subject() == key
        assert cloud_event.get_dataschema() == (
            "https://sandan.example.org/schemas/intake.demands.v1/DemandWithdrawn.v1.json")
        assert cloud_event.get_data() == json.loads(record.raw)
        # what was there before is still there
        assert record.headers["type"] == "DemandWithdrawn" and record.headers["schema_version"] == "1"
        assert record.headers["correlation_id"]  # faststream's own
        assert record.headers["content-type"] == "application/json"
        assert envelope.correlation_id == "ce-flow"


def test_the_relay_keeps_value_and_key_byte_for_byte(kafka_bootstrap: str, tmp_path) -> None:
    """A value the relay publishes is exactly the contract's encoding: the headers changed nothing in it."""
    app = IntakeLike(f"sqlite:///{tmp_path}/bytes.db")
    key = f"ceb-{uuid.uuid4().hex[:10]}"
    app.save(Withdrawal(key))

    async def go() -> bytes:
        await create_topics(kafka_bootstrap)
        broker = make_broker("cloudevents-bytes", kafka_bootstrap)
        await broker.start()
        try:
            await Relay(app, broker, to_contract).publish_once()
        finally:
            await broker.stop()
        found = await read_topic(kafka_bootstrap, TOPIC, until=lambda f: len(f) >= 1, where=lambda r: r.key == key)
        return found[0].raw

    raw = asyncio.run(go())
    envelope, fact = decode(raw)
    assert raw == encode(fact, event_id=envelope.event_id, producer="cetest", occurred_at=envelope.occurred_at,
                         correlation_id=envelope.correlation_id, causation_id=None)
