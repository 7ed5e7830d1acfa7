"""One definition of "valid": scoring's fast paths accept exactly what the contract accepts.

Hypothesis makes variants of every event type the fold reads (and three it does not): too long, the wrong JSON
type, a field missing, the wrong schema version, a bad id or code pattern, a time not in UTC, numbers and
lists out of range, duplicate keys, an oversized correlation_id, and variants the contract *accepts* (unknown
fields, `type` after `data`). For each one:
- `read_fact` raises exactly when `sandan_contracts.decode` does, and what it accepts reads as decode reads it;
- the native kernel folds the same ledger as the Python reference, reporting the same invalid records;
- live folding dead-letters exactly the refused ones (`<topic>.dlq`, group scoring) and folds the good fact
  after it.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from contract_variants import (
    DUE,
    ENVELOPE_FIELDS,
    LIMITS,
    Variant,
    accepted_by_contract,
    dumps,
    envelope_of,
    variants,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandan_contracts import Event, cloudevents
from sandan_contracts import events as c
from sandan_eventbus.kafka import aiokafka_kwargs, create_topics, make_broker, partitions_of
from sandan_scoring.engine import Scorer
from sandan_scoring.facts import KNOWN_TYPES, _slow, read_fact
from sandan_scoring.rules import RuleBook
from sandan_scoring.store import ScoringStore
from services.scoring.tests.support import assert_same

# Every type the fold reads, with every optional field set (so a variant can break any of them), and three
# types it does not read (live folding judges those too).
EVENTS: list[Event] = [
    c.MemberReported(member_id="m-1", community_id="c-1", unit_id="u-1", grid_id="g-1", teams=["legal"],
                     skills=["medical"]),
    c.OrderOpened(order_id="o-1", demand_id="d-1", community_id="c-1", grid_id="g-1", category="medical",
                  urgency="normal", care_tags=["elderly_alone"], due_at=DUE),
    c.OrderDispatched(order_id="o-1", demand_id="d-1", member_id="m-1", dispatched_by="branch"),
    c.OrderOffered(order_id="o-1", demand_id="d-1", grid_id="g-1", teams=["legal"]),
    c.OrderAccepted(order_id="o-1", demand_id="d-1", member_id="m-1", via="claim"),
    c.OrderDeclined(order_id="o-1", demand_id="d-1", member_id="m-1", reason="unavailable"),
    c.ServiceCompleted(order_id="o-1", demand_id="d-1", member_id="m-1", hours=2.5, has_notes=True),
    c.OrderEscalated(order_id="o-1", demand_id="d-1", from_level="community", to_level="town",
                     reason="deadline_missed", automatic=True, joint_meeting_units=["u-1"], due_at=DUE),
    c.OrderOverdue(order_id="o-1", demand_id="d-1", level="community", due_at=DUE, status="accepted",
                   member_id="m-1"),
    c.OrderCancelled(order_id="o-1", demand_id="d-1", reason="demand_withdrawn"),
    c.OrderReopened(order_id="o-1", demand_id="d-1", redo_count=1, previous_member_id="m-1", due_at=DUE),
    c.ServiceRated(demand_id="d-1", member_id="m-1", stars=5, has_comment=True),
    c.MemberCheckedIn(activity_id="a-1", community_id="c-1", member_id="m-1", unit_id="u-1"),
    c.DemandWithdrawn(demand_id="d-1", reason="solved_myself"),
    c.DemandTextsShredded(demand_id="d-1", cause="erasure"),
    c.ActivityCompleted(activity_id="a-1", community_id="c-1", unit_id="u-1", hours=3.0, members_checked_in=1,
                        residents_signed_up=0),
]
assert {e.TYPE for e in EVENTS} >= KNOWN_TYPES

_numbers = itertools.count(10)


# ---- read_fact ------------------------------------------------------------------------------------------------
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(variants(EVENTS))
def test_read_fact_refuses_exactly_what_the_contract_refuses(v: Variant) -> None:
    valid = accepted_by_contract(v.raw)
    try:
        fact = read_fact(v.topic, v.raw)
    except ValueError:
        assert not valid, f"read_fact refused what the contract accepts: {v.what}"
        return
    assert valid, f"read_fact accepted what the contract refuses: {v.what}"
    reference = _slow(v.topic, v.raw)  # the contract's own reading
    if reference is None:
        assert fact is None
        return
    assert fact is not None
    assert (fact.type, fact.event_id, fact.key, fact.occurred_at, fact.correlation_id) == \
        (reference.type, reference.event_id, reference.key, reference.occurred_at, reference.correlation_id)
    for name in type(v.event).model_fields:
        assert fact.data[name] == reference.data[name], (v.what, name)


@pytest.mark.parametrize("event", [e for e in EVENTS if e.TYPE in ("ServiceCompleted", "MemberCheckedIn")],
                         ids=lambda e: e.TYPE)
def test_an_oversized_correlation_id_is_refused(event: Event) -> None:
    """The issue's case: 900,000 characters where the contract allows 200."""
    env = envelope_of(event, 7)
    env["correlation_id"] = "c" * 900_000
    with pytest.raises(ValueError, match="correlation_id"):
        read_fact(event.TOPIC, dumps(env))


def exhaustive() -> list[tuple[str, bytes]]:
    """Every field of every event (envelope and data) dropped, and set to a string at every length limit."""
    out = []
    for n, event in enumerate(EVENTS):
        for where, names in (("envelope", ENVELOPE_FIELDS), ("data", list(type(event).model_fields))):
            for name in names:
                for value in [None, *("a" * k for k in LIMITS), "成" * 200, "成" * 201]:
                    env = envelope_of(event, 100 + n)
                    node = env if where == "envelope" else env["data"]
                    if value is None:
                        node.pop(name, None)  # an optional field may be absent already (actor)
                    else:
                        node[name] = value
                    out.append((event.TOPIC, dumps(env)))
    return out


def test_every_field_missing_or_at_every_length_limit() -> None:
    variants = exhaustive()
    refused = 0
    for topic, raw in variants:
        valid = accepted_by_contract(raw)
        try:
            read_fact(topic, raw)
        except ValueError:
            assert not valid, raw[:300]
            refused += 1
            continue
        assert valid, raw[:300]
    assert 0 < refused < len(variants)
    python, _ = assert_same([*context(1), *variants, *follow_up(5)], batch=500)
    assert ("a-9", "m-1") in python.checkins


# ---- the kernel ---------------------------------------------------------------------------------------------------
def context(n: int) -> list[tuple[str, bytes]]:
    """Good facts around a variant, so its rules would fire: the member, the order, its acceptance."""
    good = [c.MemberReported(member_id="m-1", community_id="c-1", unit_id="u-1", grid_id="g-1"),
            c.OrderOpened(order_id="o-1", demand_id="d-1", community_id="c-1", grid_id="g-1", category="legal",
                          urgency="urgent", care_tags=["disabled"], due_at=DUE),
            c.OrderAccepted(order_id="o-1", demand_id="d-1", member_id="m-1", via="dispatch")]
    return [(e.TOPIC, dumps(envelope_of(e, n + i))) for i, e in enumerate(good)]


def follow_up(n: int) -> list[tuple[str, bytes]]:
    good = [c.ServiceCompleted(order_id="o-1", demand_id="d-1", member_id="m-1", hours=3.0),
            c.ServiceRated(demand_id="d-9", member_id="m-1", stars=5),
            c.MemberCheckedIn(activity_id="a-9", community_id="c-1", member_id="m-1", unit_id="u-1")]
    return [(e.TOPIC, dumps(envelope_of(e, n + 1_000_000 + i))) for i, e in enumerate(good)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(variants(EVENTS), min_size=1, max_size=4), st.sampled_from([1, 2, 50]))
def test_the_kernel_folds_every_variant_as_the_reference_does(found: list[Variant], batch: int) -> None:
    records: list[tuple[str, bytes | None]] = [*context(1)]
    for v in found:
        records.append((v.topic, v.raw))
    records += follow_up(5)
    python, _ = assert_same(records, batch=batch)
    assert ("a-9", "m-1") in python.checkins  # the good fact after the variants was folded


# ---- live folding: dead-lettered, then the next fact folded ----------------------------------------------------------
@dataclass
class Record:
    """What aiokafka's ConsumerRecord offers live folding."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class CapturingBroker:
    """Stands in for the Kafka broker in a unit test: keeps what was published."""

    def __init__(self) -> None:
        self.published: list[tuple[str, bytes, dict[str, str]]] = []

    async def publish(self, body: bytes, topic: str, *, key: bytes | None = None,
                      headers: dict[str, str] | None = None, no_confirm: bool = False) -> None:
        self.published.append((topic, body, dict(headers or {})))


def next_good(topic: str, i: int) -> tuple[Event, Any]:
    """A good fact for `topic` with fresh ids, and how to see it folded."""
    if topic == "dispatch.orders.v1":
        return (c.OrderOpened(order_id=f"o-n{i}", demand_id=f"d-n{i}", community_id="c-1", grid_id="g-1",
                              category="medical", urgency="normal", due_at=DUE),
                lambda ledger: f"o-n{i}" in ledger.orders)
    if topic == "intake.demands.v1":
        return (c.ServiceRated(demand_id=f"d-n{i}", member_id="m-1", stars=4),
                lambda ledger: f"d-n{i}" in ledger.ratings)
    if topic == "dispatch.roster.v1":
        return (c.MemberReported(member_id=f"m-n{i}", community_id="c-1", unit_id="u-1", grid_id="g-1"),
                lambda ledger: f"m-n{i}" in ledger.members)
    return (c.MemberCheckedIn(activity_id=f"a-n{i}", community_id="c-1", member_id="m-1", unit_id="u-1"),
            lambda ledger: (f"a-n{i}", "m-1") in ledger.checkins)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[Scorer, CapturingBroker, asyncio.Runner]]:
    broker = CapturingBroker()
    store = ScoringStore(f"sqlite:///{tmp_path}/scoring.db")
    scorer = Scorer(store, RuleBook(), "unused:9092", broker, "2026.1")  # type: ignore[arg-type]
    scorer.generation = 1
    with asyncio.Runner() as runner:
        yield scorer, broker, runner
    store.engine.dispose()


def test_live_folding_dead_letters_each_refused_variant_and_folds_the_next_fact(
        live: tuple[Scorer, CapturingBroker, asyncio.Runner]) -> None:
    scorer, broker, runner = live
    counter = itertools.count()

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(variants(EVENTS))
    def check(v: Variant) -> None:
        i = next(counter)
        good, folded = next_good(v.topic, i)
        start = scorer.positions.get((v.topic, 0), 0)
        records = [Record(v.topic, 0, start, b"k", v.raw),
                   Record(v.topic, 0, start + 1, good.key().encode(),
                          dumps(envelope_of(good, 2_000_000 + i)))]
        broker.published.clear()
        runner.run(scorer._apply_live({TopicPartition(v.topic, 0): records}))
        dead = [(topic, body, headers) for topic, body, headers in broker.published if topic.endswith(".dlq")]
        if accepted_by_contract(v.raw):
            assert dead == [], v.what
        else:
            assert [(t, b) for t, b, _ in dead] == [(f"{v.topic}.dlq", v.raw)], v.what
            headers = dead[0][2]
            assert headers["dlq.consumer.group"] == "scoring"
            assert headers["dlq.source.offset"] == str(start)
            assert len(headers["dlq.error"]) <= 2000
        assert folded(scorer.ledger), f"the good fact after {v.what} was not folded"
        assert scorer.positions[(v.topic, 0)] == start + 2
        assert scorer.store.positions(1)[(v.topic, 0)] == start + 2  # committed with the batch

    check()


def consumed(topic: str, offset: int, value: bytes, headers: tuple[tuple[str, bytes], ...]) -> ConsumerRecord:
    return ConsumerRecord(topic=topic, partition=0, offset=offset, timestamp=0, timestamp_type=0, key=b"d-ce",
                          value=value, checksum=None, serialized_key_size=4, serialized_value_size=len(value),
                          headers=headers)


async def dead_letters_read(consumer: AIOKafkaConsumer, topic: str,
                            source_offsets: set[int]) -> dict[int, dict[str, str]]:
    """scoring's dead letters of `topic`'s records at `source_offsets` (by source offset: their headers), read on
    from where `consumer` is."""
    found: dict[int, dict[str, str]] = {}
    for _ in range(120):  # up to a minute on a busy machine
        for records in (await consumer.getmany(timeout_ms=500)).values():
            for r in records:
                headers = {k: v.decode(errors="replace") for k, v in r.headers}
                if headers.get("dlq.consumer.group") == "scoring" and headers.get("dlq.source.topic") == topic \
                        and int(headers.get("dlq.source.offset", -1)) in source_offsets:
                    found[int(headers["dlq.source.offset"])] = headers
        if set(found) == source_offsets:
            break
    return found


@pytest.mark.kafka
async def test_scorings_dead_letters_keep_the_cloudevents_headers_the_record_had(kafka_bootstrap: str,
                                                                                 tmp_path: Path) -> None:
    topic = "intake.demands.v1"
    await create_topics(kafka_bootstrap)
    reader = AIOKafkaConsumer(**aiokafka_kwargs(kafka_bootstrap), enable_auto_commit=False)
    await reader.start()
    broker = make_broker("scoring-dlq-test", kafka_bootstrap)
    await broker.start()
    store = ScoringStore(f"sqlite:///{tmp_path}/scoring.db")
    try:
        partitions = await partitions_of(reader, [f"{topic}.dlq"])
        reader.assign(partitions)
        for tp, end in (await reader.end_offsets(partitions)).items():
            reader.seek(tp, end)  # what comes from here on
        scorer = Scorer(store, RuleBook(), kafka_bootstrap, broker, "2026.1")
        scorer.generation = 1
        # given a rating the contract refuses (six stars), published with the CloudEvents headers of the
        # envelope it claims to be, and bytes that were never a message (no headers)
        first = 10**12 + int.from_bytes(os.urandom(4), "big")  # our own offsets on a shared topic
        env = envelope_of(c.ServiceRated(demand_id="d-ce", member_id="m-1", stars=5), next(_numbers))
        sent = tuple(cloudevents.headers(dumps(env)))
        env["data"]["stars"] = 6
        refused, junk = dumps(env), b"\x00\x81 random"
        # when live folding meets them
        await scorer._apply_live({TopicPartition(topic, 0): [consumed(topic, first, refused, sent),
                                                              consumed(topic, first + 1, junk, ())]})
        assert scorer.dead_lettered == 2
        # then, read back from the broker, the refused one is still the CloudEvent it claimed to be
        letters = await dead_letters_read(reader, topic, {first, first + 1})
        assert {k: v for k, v in letters[first].items() if k.startswith("ce_")} == {
            k: v.decode() for k, v in sent if k.startswith("ce_")}
        assert letters[first]["ce_type"] == "cn.sandan.intake.demands.ServiceRated.v1"
        # and the bytes that never were one carry no ce_* header, only why they are there
        assert not [k for k in letters[first + 1] if k.startswith("ce_")] and letters[first + 1]["dlq.error"]
    finally:
        await broker.stop()
        await reader.stop()
        store.engine.dispose()
