"""The relay and the inbox against the real broker: position survives restarts, ids are deterministic,
duplicates change nothing, poison goes to the dead-letter topic."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiokafka import ConsumerRecord
from eventsourcing.domain import Aggregate, event

from sandan_contracts import decode
from sandan_contracts.envelope import Envelope
from sandan_contracts.events import DemandWithdrawn, Event
from sandan_eventbus.auth.principal import Principal, acting_as
from sandan_eventbus.devtools import read_topic
from sandan_eventbus.inbox import Inbox
from sandan_eventbus.kafka import create_topics, make_broker
from sandan_eventbus.relay import Relay
from sandan_eventbus.store import ServiceApplication
from sandan_eventbus.trace import traced

pytestmark = pytest.mark.kafka
TOPIC = "intake.demands.v1"


class Note(Aggregate):
    @event("Written")
    def __init__(self, demand_id: str) -> None:
        self.demand_id = demand_id
        self.seen: list[str] = []

    @event("Seen")
    def see(self, what: str) -> None:
        self.seen.append(what)


class RelayApp(ServiceApplication):
    name = "relaytest"


def to_contract(e: Any) -> Event | None:
    if type(e).__qualname__ == "Note.Written":
        return DemandWithdrawn(demand_id=e.demand_id, reason="relay_test")
    return None  # internal


@pytest.fixture(scope="module")
def topics(kafka_bootstrap: str) -> str:
    asyncio.run(create_topics(kafka_bootstrap))
    return kafka_bootstrap


async def test_the_relay_publishes_each_stored_fact_once_and_resumes_after_a_restart(topics: str, tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/relay.db"
    app = RelayApp(url)
    keys = [f"relay-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    secretary = Principal("3f1c-subject", frozenset({"branch_secretary"}), acting_role="branch_secretary")
    with traced("walk-r"), acting_as(secretary):
        for key in keys[:2]:
            note = Note(key)
            note.see("internal")  # stays inside
            app.save(note)
    broker = make_broker("relay-test", topics)
    await broker.start()
    try:
        relay = Relay(app, broker, to_contract)
        while await relay.publish_once():
            pass
        assert relay.published == 2
        first_position = relay.position()
        assert first_position == 4  # two Written + two Seen notifications moved past

        # a restarted relay (new app object on the same store) resumes after the recorded position
        app2 = RelayApp(url)
        app2.save(Note(keys[2]))
        relay2 = Relay(app2, broker, to_contract)
        while await relay2.publish_once():
            pass
        assert relay2.published == 1 and relay2.position() == 5
    finally:
        await broker.stop()

    for key in keys:
        found = await read_topic(topics, TOPIC, until=lambda f: len(f) >= 1, where=lambda r, k=key: r.key == k)
        envelope, fact = decode(found[0].raw)
        assert fact.demand_id == key and envelope.producer == "relaytest"
        assert envelope.event_id.startswith("relaytest:")
    first = await read_topic(topics, TOPIC, until=lambda f: len(f) >= 1, where=lambda r: r.key == keys[0])
    assert first[0].envelope.correlation_id == "walk-r" and first[0].envelope.causation_id is None
    # the public envelope names who acted by their opaque subject id; a fact no person caused names no one
    assert first[0].envelope.actor == "3f1c-subject"
    last = await read_topic(topics, TOPIC, until=lambda f: len(f) >= 1, where=lambda r: r.key == keys[2])
    assert last[0].envelope.actor is None and b'"actor"' not in last[0].raw
    assert first[0].headers["type"] == "DemandWithdrawn"


async def test_a_crash_between_publish_and_record_republishes_the_same_ids(topics: str, tmp_path,
                                                                           monkeypatch) -> None:
    app = RelayApp(f"sqlite:///{tmp_path}/crash.db")
    key = f"crash-{uuid.uuid4().hex[:8]}"
    app.save(Note(key))
    broker = make_broker("relay-crash", topics)
    await broker.start()
    try:
        relay = Relay(app, broker, to_contract)
        recorder = app.tracking_recorder
        original = recorder.insert_tracking

        def crash(_tracking: Any) -> None:
            raise RuntimeError("power cut after publish")

        monkeypatch.setattr(recorder, "insert_tracking", crash)
        with pytest.raises(RuntimeError):
            await relay.publish_once()
        monkeypatch.setattr(recorder, "insert_tracking", original)
        assert relay.position() == 0  # nothing recorded: the batch goes out again
        assert await relay.publish_once() == 1
        assert await relay.publish_once() == 0
    finally:
        await broker.stop()
    found = await read_topic(topics, TOPIC, until=lambda f: len(f) >= 2, where=lambda r: r.key == key)
    assert len(found) == 2
    assert found[0].envelope.event_id == found[1].envelope.event_id  # a consumer recognises the duplicate


class InboxApp(ServiceApplication):
    name = "inboxtest"


def record(offset: int, value: bytes, key: str, partition: int = 0) -> ConsumerRecord[Any, Any]:
    return ConsumerRecord(topic=TOPIC, partition=partition, offset=offset, timestamp=0, timestamp_type=0,
                          key=key.encode(), value=value, checksum=None, serialized_key_size=len(key),
                          serialized_value_size=len(value), headers=())


async def test_the_inbox_applies_once_refusals_record_nothing_and_poison_is_dead_lettered(topics: str,
                                                                                         tmp_path) -> None:
    app = InboxApp(f"sqlite:///{tmp_path}/inbox.db")
    key = f"inbox-{uuid.uuid4().hex[:8]}"
    note = Note(key)
    app.save(note)
    seen_traces: list[tuple[str, str | None]] = []

    def on_withdrawn(envelope: Envelope, fact: Event) -> list[Any]:
        from sandan_eventbus.trace import current

        t = current()
        seen_traces.append((t.correlation_id, t.causation_id))
        target = app.repository.get(note.id)
        target.see(envelope.event_id)
        return [target]

    broker = make_broker("inbox-test", topics)
    await broker.start()
    try:
        inbox = Inbox(app, broker, "inbox-test", {TOPIC: on_withdrawn}, backoff_seconds=0.01)
        from datetime import UTC, datetime

        from sandan_contracts import encode

        good = encode(DemandWithdrawn(demand_id=key, reason="x"), event_id="intake:1", producer="intake",
                      occurred_at=datetime.now(UTC), correlation_id="walk-i", causation_id=None)
        await inbox.receive(TOPIC, record(10, good, key))
        await inbox.receive(TOPIC, record(10, good, key))  # redelivered: same partition and offset
        assert app.repository.get(note.id).seen == ["intake:1"]
        assert (inbox.processed, inbox.duplicates) == (1, 1)
        assert seen_traces == [("walk-i", "intake:1")]

        await inbox.receive(TOPIC, record(11, b"\xff not json", key))
        assert inbox.dead_lettered == 1
        await inbox.receive(TOPIC, record(11, b"\xff not json", key))  # its position was recorded too
        assert inbox.dead_lettered == 1

        def broken(envelope: Envelope, fact: Event) -> list[Any]:
            raise RuntimeError("bug in a policy")

        inbox.handlers[TOPIC] = broken
        await inbox.receive(TOPIC, record(12, good, key))
        assert inbox.dead_lettered == 2
    finally:
        await broker.stop()
    dead = await read_topic(topics, f"{TOPIC}.dlq", until=lambda f: len(f) >= 2, where=lambda r: r.key == key)
    assert [r.raw for r in dead] == [b"\xff not json", good]
    assert dead[0].headers["dlq.source.offset"] == "11" and "undecodable" in dead[0].headers["dlq.error"]
    assert "failed 5 times: RuntimeError: bug in a policy" in dead[1].headers["dlq.error"]
    assert app.repository.get(note.id).seen == ["intake:1"]
