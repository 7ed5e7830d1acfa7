"""Crashes and bad input: nothing lost, nothing doubled, poison goes to the dead-letter topic."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer

from sandan_contracts.rpc import dispatch_pb2 as dpb
from sandan_eventbus.devtools import read_topic
from tests.integration.conftest import Stack
from tests.integration.scenario import a_community, order_for, post

pytestmark = pytest.mark.kafka


async def test_dispatch_killed_mid_flow_loses_and_doubles_nothing(stack: Stack) -> None:
    c = await a_community(stack, members=1)
    first = await post(stack, c)
    order = await order_for(stack, c, first.demand_id)
    await stack.dispatch_stub(c.secretary).OfferOrder(dpb.OfferOrderRequest(order_id=order.order_id))
    await stack.dispatch_stub(c.member(0)).AcceptOrder(dpb.AcceptOrderRequest(order_id=order.order_id,
                                                                              member_id=c.members[0]))

    # when dispatch is killed right after the accept (its relay may not have published yet)
    stack.dispatch.stop(kill=True)
    # and residents keep posting while it is down
    while_down = [await post(stack, c) for _ in range(3)]
    stack.dispatch.start()

    # then every demand got exactly one order, and the accept that was stored reached the topic
    for demand in [first, *while_down]:
        opened = await order_for(stack, c, demand.demand_id)
        events = await stack.read_all("dispatch.orders.v1", opened.order_id)
        opened_ids = {r.envelope.event_id for r in events if r.envelope.type == "OrderOpened"}
        assert len(opened_ids) == 1, f"demand {demand.demand_id} opened {len(opened_ids)} orders"
    events = await stack.read("dispatch.orders.v1", order.order_id, 3)
    assert [r.envelope.type for r in events] == ["OrderOpened", "OrderOffered", "OrderAccepted"]
    again = await stack.dispatch_stub(c.secretary).GetOrder(dpb.OrderRef(order_id=order.order_id))
    assert again.status == "accepted" and again.member_id == c.members[0]


def _bogus_envelope(key: str) -> bytes:
    return json.dumps({
        "event_id": f"bogus:{key}", "type": "DemandTeleported", "schema_version": 1,
        "occurred_at": datetime.now(UTC).isoformat(), "producer": "nobody", "key": key,
        "correlation_id": key, "causation_id": None, "data": {"demand_id": key},
    }).encode()


@pytest.mark.parametrize(("topic", "consumer"), [("intake.demands.v1", "dispatch"),
                                                 ("dispatch.orders.v1", "intake")])
async def test_a_poison_message_lands_in_the_dead_letter_topic(stack: Stack, topic: str, consumer: str) -> None:
    key = f"poison-{uuid.uuid4().hex[:8]}"
    bogus = _bogus_envelope(key)
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"{not json", key=key.encode())
        await producer.send_and_wait(topic, bogus, key=key.encode())
    finally:
        await producer.stop()

    # (scoring reads these topics too and dead-letters the same messages under its own group)
    dead = await read_topic(stack.bootstrap, f"{topic}.dlq", until=lambda f: len(f) >= 2,
                            where=lambda r: r.key == key and r.headers["dlq.consumer.group"].startswith(consumer))
    assert [r.raw for r in dead] == [b"{not json", bogus]
    assert "undecodable" in dead[0].headers["dlq.error"]
    assert "DemandTeleported" in dead[1].headers["dlq.error"]
    assert all(r.headers["dlq.source.topic"] == topic for r in dead)
    assert all(r.headers["dlq.consumer.group"].startswith(consumer) for r in dead)

    # and consumption goes on: a good demand posted after the poison still gets its order
    c = await a_community(stack, members=1)
    demand = await post(stack, c)
    await order_for(stack, c, demand.demand_id)
