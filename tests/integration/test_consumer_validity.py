"""One definition of "valid" at every consumer: intake, dispatch and notify refuse exactly what the contract refuses.

Scoring proves it for its fast paths (services/scoring/tests/test_scoring_validity.py); this proves it for the
services that consume through the shared inbox. Each service is built as its `__main__` builds it
(`build_runtime`: its application on SQLite, its inbox with its own handlers for the topics it subscribes, its
broker), under a consumer group of this run's own. Hypothesis makes variants of every event type on those topics
(`contract_variants`: too long, the wrong type, a field missing, an unknown field, the wrong version...). Each
variant, then a good fact, is published to a private topic on the real broker, read back, and handed to the
service's inbox as its subscription would hand it over. Then:
- a variant `sandan_contracts.decode` refuses is dead-lettered on `<topic>.dlq` (read back from the broker: the
  service's group, the source record, `undecodable` and why) and nothing the service stores changed;
- a variant the contract accepts reaches the service's domain: applied, or refused as too late for the state it
  names (recorded, no effect), or dead-lettered as naming something the service does not know, never as
  undecodable; one that means the same fact as its sample is never dead-lettered;
- the good fact after it is applied (the consumer did not stall).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from contract_variants import DUE, Variant, accepted_by_contract, dumps, envelope_of, of_topic, variants
from eventsourcing.persistence import Tracking
from hypothesis import HealthCheck, given, settings

from sandan_contracts import TOPICS, Envelope, Event, decode
from sandan_contracts import events as c
from sandan_contracts.events.dispatch import ORDERS, ROSTER
from sandan_contracts.events.intake import TOPIC as DEMANDS
from sandan_contracts.events.scoring import NOTICES
from sandan_eventbus.inbox import Outcome
from sandan_eventbus.kafka import aiokafka_kwargs, create_topics, partitions_of
from sandan_eventbus.runtime import ServiceRuntime

pytestmark = pytest.mark.kafka

EXAMPLES = 30  # per service: well under a second each, even on a loaded machine


@dataclass
class Consumer:
    """A service's inbox as its runtime wires it, with what a test needs around it."""

    name: str
    runtime: ServiceRuntime
    store: Path  # the SQLite file holding everything the service stores
    samples: list[Event]  # one fact of every type on every topic it consumes, naming what its store knows
    good: Callable[[str, int], tuple[Event, Callable[[str], bool]]]  # (topic, n) -> a new fact, and "applied?"
    context: list[Event] = field(default_factory=list)  # applied first, so the samples name known things

    @property
    def app(self) -> Any:
        return self.runtime.inbox.app  # type: ignore[union-attr]

    def apply_context(self) -> None:
        handlers = self.runtime.inbox.handlers  # type: ignore[union-attr]
        for n, event in enumerate(self.context):
            envelope = Envelope.model_validate(envelope_of(event, 9_000_000 + n))
            changed = handlers[event.TOPIC](envelope, event)
            self.app.save_tracked(*changed, tracking=Tracking("validity-context", n + 1))


def common_env(monkeypatch: pytest.MonkeyPatch, bootstrap: str) -> None:
    """What every runtime reads at build: the broker, an issuer it never calls here, plaintext gRPC it never
    binds here."""
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
    monkeypatch.setenv("SANDAN_OIDC_ISSUER", os.environ.get("SANDAN_TEST_OIDC_ISSUER")
                       or "http://127.0.0.1:8180/realms/sandan")
    monkeypatch.setenv("SANDAN_GRPC_PLAINTEXT", "allow")


def dispatch(bootstrap: str, tmp: Path, group: str, monkeypatch: pytest.MonkeyPatch) -> Consumer:
    from sandan_dispatch.__main__ import build_runtime
    from sandan_dispatch.domain import Order
    from sandan_dispatch.keys import Keyring
    from sandan_dispatch.settings import Settings

    common_env(monkeypatch, bootstrap)
    store = tmp / "dispatch.db"
    monkeypatch.setenv("DISPATCH_EVENTSTORE_URL", f"sqlite:///{store}")
    monkeypatch.setenv("DISPATCH_CONSUMER_GROUP", group)
    monkeypatch.setenv("DISPATCH_KEK", Keyring.generate().text())
    runtime = build_runtime(Settings.from_env())
    app = runtime.inbox.app  # type: ignore[union-attr]

    def good(topic: str, n: int) -> tuple[Event, Callable[[str], bool]]:
        assert topic == DEMANDS
        demand = f"d-good-{n}"

        def opened(_: str) -> bool:
            return app.order(str(Order.create_id(demand))).demand_id == demand

        return (c.DemandPosted(demand_id=demand, community_id="c-1", grid_id="g-1", category="medical",
                               urgency="normal", channel="app", due_at=DUE, deadline_seconds=86_400), opened)

    samples = of_topic(DEMANDS)  # all about d-1, whose order the context opens
    return Consumer("dispatch", runtime, store, samples, good, context=[samples[0]])


def intake(bootstrap: str, tmp: Path, group: str, monkeypatch: pytest.MonkeyPatch) -> Consumer:
    from sandan_intake.__main__ import build_runtime
    from sandan_intake.keys import Keyring
    from sandan_intake.settings import Settings

    common_env(monkeypatch, bootstrap)
    store = tmp / "intake.db"
    settings = Settings(kafka_bootstrap_servers=bootstrap, eventstore_url=f"sqlite:///{store}",
                        database_url=f"sqlite:///{store}", grpc_address="127.0.0.1:0", consumer_group=group,
                        log_level="INFO", keyring=Keyring.generate())
    runtime = build_runtime(settings)
    app = runtime.inbox.app  # type: ignore[union-attr]
    resident = app.register_resident("c-1", "王秀英", "+86 138-0000-0000", "泰和县澄江镇 1 号")
    requests = itertools.count()

    def post() -> str:  # intake knows only the demands it issued (uuids)
        return str(app.post_demand(client_request_id=f"validity-{next(requests)}", resident_id=resident.resident_id,
                                   community_id="c-1", grid_id="g-1", description="厨房水管漏水 需要维修",
                                   other_text="水管维修", urgency="normal", channel="app").id)

    def good(topic: str, n: int) -> tuple[Event, Callable[[str], bool]]:
        assert topic == ORDERS
        demand = post()

        def accepted(_: str) -> bool:
            return app.get_demand(demand).member_id == f"m-good-{n}"

        return c.OrderAccepted(order_id=f"o-good-{n}", demand_id=demand, member_id=f"m-good-{n}", via="claim"), accepted

    known = post()
    samples = [e.model_copy(update={"demand_id": known}) for e in of_topic(ORDERS)]
    return Consumer("intake", runtime, store, samples, good)


def notify(bootstrap: str, tmp: Path, group: str, monkeypatch: pytest.MonkeyPatch) -> Consumer:
    from sandan_notify.__main__ import build_runtime
    from sandan_notify.domain import notice_id_for
    from sandan_notify.settings import Settings

    common_env(monkeypatch, bootstrap)
    store = tmp / "notify.db"
    for name, value in {"NOTIFY_EVENTSTORE_URL": f"sqlite:///{store}", "NOTIFY_CONSUMER_GROUP": group,
                        "NOTIFY_INTAKE_ADDRESS": "127.0.0.1:9", "NOTIFY_DISPATCH_ADDRESS": "127.0.0.1:9",
                        "NOTIFY_CONSOLE": "stderr",  # a channel it must have; nothing is delivered here
                        # its identity for contact look-ups, which no fact here leads to (the planner is not run)
                        "SANDAN_OIDC_CLIENT_ID": "sandan-notify", "SANDAN_OIDC_CLIENT_SECRET": "never-used"}.items():
        monkeypatch.setenv(name, value)
    for name in ("NOTIFY_OFFICES_FILE", "NOTIFY_FAKE_NOW"):
        monkeypatch.delenv(name, raising=False)
    runtime = build_runtime(Settings.from_env())
    app = runtime.inbox.app  # type: ignore[union-attr]

    def good(topic: str, n: int) -> tuple[Event, Callable[[str], bool]]:
        ref = f"good-{n}"
        if topic == ROSTER:
            return (c.MemberReported(member_id=f"m-{ref}", community_id="c-1", unit_id="u-1", grid_id=f"g-{ref}"),
                    lambda _: app.directory.members_for_offer("c-1", f"g-{ref}", []) == [f"m-{ref}"])
        if topic == ORDERS:
            return (c.OrderOpened(order_id=f"o-{ref}", demand_id=f"d-{ref}", community_id="c-1", grid_id="g-1",
                                  category="medical", urgency="normal", due_at=DUE),
                    lambda _: app.directory.order(f"o-{ref}") is not None)
        if topic == DEMANDS:
            return (c.DemandPosted(demand_id=f"d-{ref}", community_id="c-2", grid_id="g-1", category="medical",
                                   urgency="normal", channel="app", due_at=DUE, deadline_seconds=86_400),
                    lambda _: app.directory.demand_community(f"d-{ref}") == "c-2")
        assert topic == NOTICES
        summary = c.NoticeSummary(members_active=1, services_completed=1, hours=1.0, overdue=0, escalated=0)
        return (c.QuarterlyNoticePublished(notice_id=f"scoring:{ref}", scope="unit", scope_id="u-1", quarter="2026Q1",
                                           rule_set_version="2026.1", summary=summary),
                lambda event_id: app.get_notice(notice_id_for(event_id, "unit", "u-1")).recipient_ref == "u-1")

    samples = [e for topic in (ROSTER, ORDERS, DEMANDS, NOTICES) for e in of_topic(topic)]
    context = [e for e in samples if e.TYPE in ("UnitReported", "MemberReported", "DemandPosted", "OrderOpened")]
    return Consumer("notify", runtime, store, samples, good, context=context)


def stored(db: Path) -> dict[str, list[str]]:
    """Everything the service stores, but the positions it consumed (a dead letter records its position)."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        tables = [name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: sorted(repr(row) for row in conn.execute(f'SELECT * FROM "{t}"'))
                for t in tables if "tracking" not in t}


@dataclass
class Letter:
    """A dead letter this run expects: the record it came from and why."""

    variant: Variant
    offset: int
    key: bytes
    reason: str  # "undecodable" or "refused"


class Kafka:
    """The private topic the facts go through, and the dead-letter topics read back."""

    def __init__(self, bootstrap: str, private: str, dead_letter_topics: list[str]) -> None:
        self.bootstrap, self.private, self.dlqs = bootstrap, private, dead_letter_topics

    async def start(self) -> None:
        self.producer = AIOKafkaProducer(**aiokafka_kwargs(self.bootstrap), max_request_size=2_000_000)
        self.reader = AIOKafkaConsumer(**aiokafka_kwargs(self.bootstrap), enable_auto_commit=False)
        self.letters = AIOKafkaConsumer(**aiokafka_kwargs(self.bootstrap), enable_auto_commit=False)
        await create_topics(self.bootstrap)
        admin = AIOKafkaAdminClient(**aiokafka_kwargs(self.bootstrap))
        await admin.start()
        try:
            await admin.create_topics([NewTopic(self.private, num_partitions=1, replication_factor=1,
                                                topic_configs={"max.message.bytes": "2000000"})])
        finally:
            await admin.close()
        await self.producer.start()
        await self.reader.start()
        self.reader.assign([TopicPartition(self.private, 0)])
        await self.letters.start()
        partitions = await partitions_of(self.letters, self.dlqs)
        self.letters.assign(partitions)
        for tp, end in (await self.letters.end_offsets(partitions)).items():
            self.letters.seek(tp, end)  # what this run dead-letters comes after this

    async def stop(self) -> None:
        for client in (getattr(self, name, None) for name in ("producer", "reader", "letters")):
            if client is None:
                continue
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await client.stop()
        admin = AIOKafkaAdminClient(**aiokafka_kwargs(self.bootstrap))
        await admin.start()
        try:
            with contextlib.suppress(Exception):
                await admin.delete_topics([self.private])
        finally:
            await admin.close()

    async def through(self, *messages: tuple[bytes, bytes]) -> list[ConsumerRecord[Any, Any]]:
        """Publish (key, value)s on the private topic, in order, and read them back as the service's consumer
        would receive them."""
        sent = [await self.producer.send_and_wait(self.private, value, key=key) for key, value in messages]
        want = {m.offset for m in sent}
        self.reader.seek(TopicPartition(self.private, 0), min(want))
        got: dict[int, ConsumerRecord[Any, Any]] = {}
        for _ in range(120):
            for records in (await self.reader.getmany(timeout_ms=500)).values():
                got.update({r.offset: r for r in records if r.offset in want})
            if set(got) == want:
                return [got[m.offset] for m in sent]
        raise AssertionError(f"published to {self.private} but not read back: {sorted(want - set(got))}")

    async def dead_letters(self, group: str, offsets: set[int]) -> dict[int, ConsumerRecord[Any, Any]]:
        """The dead letters `group` published for the private topic's records at `offsets`, by source offset."""
        found: dict[int, ConsumerRecord[Any, Any]] = {}
        for _ in range(240):  # up to two minutes on a busy machine
            for records in (await self.letters.getmany(timeout_ms=500)).values():
                for r in records:
                    headers = {k: v.decode(errors="replace") for k, v in r.headers}
                    if headers.get("dlq.consumer.group") == group and headers.get("dlq.source.topic") == self.private:
                        found[int(headers["dlq.source.offset"])] = r
            if offsets <= set(found):
                break
        return found


BUILDERS = {"intake": intake, "dispatch": dispatch, "notify": notify}


@pytest.fixture
def runner() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as run:
        yield run


@pytest.mark.parametrize("service", list(BUILDERS))
def test_the_consumer_dead_letters_what_the_contract_refuses_and_applies_the_next_fact(
        service: str, kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        runner: asyncio.Runner) -> None:
    run = uuid.uuid4().hex[:8]
    group = f"{service}-validity-{run}"  # this run's own: no real consumer's position moves, nothing re-drives
    consumer = BUILDERS[service](kafka_bootstrap, tmp_path, group, monkeypatch)
    inbox = consumer.runtime.inbox
    assert inbox is not None and inbox.group_id == group
    consumed = list(inbox.handlers)  # the topics the service subscribes, as its runtime wires them
    assert {e.TOPIC for e in consumer.samples} == set(consumed)
    for topic in consumed:  # a sample of every type published there
        assert {e.TYPE for e in consumer.samples if topic == e.TOPIC} == set(TOPICS[topic].events)
    consumer.apply_context()
    kafka = Kafka(kafka_bootstrap, f"sandan-validity-{service}-{run}", [f"{t}.dlq" for t in consumed])
    broker = consumer.runtime.broker  # the service's own producer publishes its dead letters
    runner.run(kafka.start())
    runner.run(broker.start())
    letters: list[Letter] = []
    seen = {"refused": 0, "accepted": 0}
    counter = itertools.count()

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(variants(consumer.samples))
    def check(v: Variant) -> None:
        n = next(counter)
        good, applied = consumer.good(v.topic, n)
        good_raw = dumps(envelope_of(good, 5_000_000 + n))
        bad, after = runner.run(kafka.through((v.event.key().encode(), v.raw), (good.key().encode(), good_raw)))
        before = stored(consumer.store)
        outcome = runner.run(inbox.receive(v.topic, bad))
        if not accepted_by_contract(v.raw):
            seen["refused"] += 1
            assert outcome is Outcome.DEAD_LETTERED, f"{service} took what the contract refuses: {v.what}"
            letters.append(Letter(v, bad.offset, bad.key, "undecodable"))
        else:
            seen["accepted"] += 1
            # the same fact as its sample, however written (an unknown field, `type` last, a key repeated)
            same = decode(v.raw)[1] == v.event
            allowed = {Outcome.APPLIED, Outcome.REFUSED} if same else {Outcome.APPLIED, Outcome.REFUSED,
                                                                       Outcome.DEAD_LETTERED}
            assert outcome in allowed, f"{service} dead-lettered the fact it was made from: {v.what}"
            if outcome is Outcome.DEAD_LETTERED:  # naming what the service does not know: refused, never undecodable
                letters.append(Letter(v, bad.offset, bad.key, "refused"))
        if outcome in (Outcome.DEAD_LETTERED, Outcome.REFUSED):
            assert stored(consumer.store) == before, f"{service} changed its state for {v.what}"
        # the consumer goes on: the good fact after it is applied
        assert runner.run(inbox.receive(v.topic, after)) is Outcome.APPLIED, f"after {v.what}"
        assert applied(envelope_of(good, 5_000_000 + n)["event_id"]), f"the good fact after {v.what}"
        assert consumer.app.already_processed(Tracking(f"kafka:{kafka.private}:0", after.offset + 1))

    try:
        check()
        # every dead letter is on <topic>.dlq of the real broker: the service's group, the record, the reason
        found = runner.run(kafka.dead_letters(group, {letter.offset for letter in letters}))
        for letter in letters:
            assert letter.offset in found, f"no dead letter on {letter.variant.topic}.dlq for {letter.variant.what}"
            record = found[letter.offset]
            headers = {k: v.decode(errors="replace") for k, v in record.headers}
            assert record.topic == f"{letter.variant.topic}.dlq", letter.variant.what
            assert record.key == letter.key
            if "dlq.truncated" in headers:  # too large for the topic with its headers: cut, and marked so
                assert record.value == letter.variant.raw[:len(record.value)]
                assert headers["dlq.truncated"] == str(len(letter.variant.raw))
            else:
                assert record.value == letter.variant.raw, letter.variant.what
            assert headers["dlq.source.partition"] == "0"
            assert headers["dlq.error"].startswith(f"{letter.reason}: "), (letter.variant.what, headers["dlq.error"])
        assert len(found) == len(letters)  # and nothing else of this run's was dead-lettered
        assert seen["refused"] and seen["accepted"], seen  # both sides of the line were tried
    finally:
        runner.run(broker.stop())
        runner.run(kafka.stop())
        consumer.app.close()
