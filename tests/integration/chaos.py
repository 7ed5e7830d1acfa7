"""The chaos suite's tools: a load of residents' demands that walk the whole loop and outlast faults, the faults
themselves (kill -9 of a service, a broker crash, a frozen store), and the ledgers the suite checks afterwards:
what each service stored against what its topics carry, the notifications written, the dead letters.

A walk retries only what a fault can cause (a service away, a call cut off, a fact not yet read), and each of its
steps first looks whether it already happened: a reply lost to a kill -9 is not a reason to do it twice.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import grpc
from aiokafka import AIOKafkaConsumer, TopicPartition
from faststream.kafka import KafkaBroker
from sqlalchemy import select

from sandan_contracts import TOPICS, Envelope
from sandan_contracts.rpc import dispatch_pb2 as dpb
from sandan_contracts.rpc import dispatch_pb2_grpc, intake_pb2_grpc, scoring_pb2_grpc
from sandan_contracts.rpc import intake_pb2 as ipb
from sandan_eventbus.devtools import ServiceProcess
from sandan_eventbus.relay import Relay, ToContract
from sandan_eventbus.store import ServiceApplication
from sandan_scoring.store import ScoringStore, star_changes
from tests.integration.conftest import Stack
from tests.integration.people import aio_channel_as
from tests.integration.scenario import Community, post, trace
from tests.integration.test_outage import PrivatePostgres

T = TypeVar("T")

# What a fault may answer for a while: the service is away (restarting), the call was cut off, or what the step
# waits for was not read yet (NOT_FOUND: the order is not opened; FAILED_PRECONDITION: a state not reached, or a
# step that happened but whose reply was lost: the step looks again first). Anything else fails the walk.
PASSING = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED,
           grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION}
CALL_SECONDS = 10  # one call's deadline: a call into a frozen store must not hold a walk for ever
HOURS = 1.5


async def until(what: str, attempt: Callable[[], Awaitable[T | None]], timeout: float) -> T:
    """`attempt()` again and again until it returns something (not None), retrying the codes a fault causes."""
    deadline = time.monotonic() + timeout
    last: str = "nothing yet"
    while True:
        try:
            result = await attempt()
            if result is not None:
                return result
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in PASSING:
                raise AssertionError(f"{what}: {exc.code().name} {exc.details()}") from exc
            last = f"{exc.code().name} {(exc.details() or '')[:200]}"
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f}s (last: {last})")
        await asyncio.sleep(0.5)


@dataclass
class Walked:
    """One demand's walk: which order served it, by whom, and how long it took."""

    demand_id: str
    order_id: str
    community: Community
    member_id: str
    seconds: float


async def walk(stack: Clients, c: Community, member: int, timeout: float = 240) -> Walked:
    """A resident's demand through the whole loop: posted (by the grid worker, for the resident), the order
    opened, dispatched to a member by the branch, accepted, completed, confirmed and rated 5 stars."""
    began = time.monotonic()
    request_id, walk_id = uuid.uuid4().hex, f"chaos-{uuid.uuid4().hex[:8]}"
    member_id = c.members[member]

    def intake(who: Any) -> Any:
        return stack.intake_stub(who)

    def dispatch(who: Any) -> Any:
        return stack.dispatch_stub(who)

    demand = await until("post", lambda: post(stack, c, request_id=request_id, correlation_id=walk_id), timeout)
    demand_id = demand.demand_id
    order: dpb.Order = await until(f"{demand_id} opened", lambda: dispatch(c.secretary).FindOrderByDemand(
        dpb.DemandRef(demand_id=demand_id), timeout=CALL_SECONDS), timeout)
    order_id = order.order_id

    async def order_is(*statuses: str) -> bool:
        now = await dispatch(c.secretary).GetOrder(dpb.OrderRef(order_id=order_id), timeout=CALL_SECONDS)
        return now.status in statuses

    async def demand_now() -> ipb.Demand:
        return await intake(c.secretary).GetDemand(ipb.DemandRef(demand_id=demand_id), timeout=CALL_SECONDS)

    async def step(what: str, done: Callable[[], Awaitable[bool]], act: Callable[[], Awaitable[Any]]) -> None:
        async def attempt() -> bool:
            if not await done():
                await act()
            return True

        await until(f"{demand_id} {what}", attempt, timeout)

    await step("dispatched", lambda: order_is("dispatched", "accepted", "completed"),
               lambda: dispatch(c.secretary).DispatchOrder(dpb.DispatchOrderRequest(
                   order_id=order_id, member_id=member_id), metadata=trace(walk_id), timeout=CALL_SECONDS))
    await step("accepted", lambda: order_is("accepted", "completed"),
               lambda: dispatch(c.member(member)).AcceptOrder(dpb.AcceptOrderRequest(
                   order_id=order_id, member_id=member_id), metadata=trace(walk_id), timeout=CALL_SECONDS))
    await step("completed", lambda: order_is("completed"),
               lambda: dispatch(c.member(member)).CompleteService(dpb.CompleteServiceRequest(
                   order_id=order_id, member_id=member_id, hours=HOURS), metadata=trace(walk_id),
                   timeout=CALL_SECONDS))

    async def served() -> bool | None:
        return True if (await demand_now()).status in ("served", "confirmed") else None

    await until(f"{demand_id} served (intake read the completion)", served, timeout)

    async def confirmed() -> bool:
        return (await demand_now()).status == "confirmed"

    async def rated() -> bool:
        return (await demand_now()).stars == 5

    await step("confirmed", confirmed, lambda: intake(c.resident).ConfirmCompletion(
        ipb.DemandRef(demand_id=demand_id), metadata=trace(walk_id), timeout=CALL_SECONDS))
    await step("rated", rated, lambda: intake(c.resident).RateService(ipb.RateServiceRequest(
        demand_id=demand_id, stars=5), metadata=trace(walk_id), timeout=CALL_SECONDS))
    return Walked(demand_id, order_id, c, member_id, time.monotonic() - began)


class Clients:
    """The stack's stubs, one channel per (service, caller) kept for the whole run, as a real client keeps its
    channel through a server's restart (a channel per call would hold thousands of sockets by the end)."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.people = stack.people
        self.communities = stack.communities
        self._channels: dict[tuple[str, int], grpc.aio.Channel] = {}

    def _channel(self, address: str, caller: Any) -> grpc.aio.Channel:
        key = (address, id(caller))
        if key not in self._channels:
            self._channels[key] = aio_channel_as(address, caller)
        return self._channels[key]

    def intake_stub(self, caller: Any) -> intake_pb2_grpc.IntakeStub:
        return intake_pb2_grpc.IntakeStub(self._channel(self.stack.intake.grpc_address, caller))

    def dispatch_stub(self, caller: Any) -> dispatch_pb2_grpc.DispatchStub:
        return dispatch_pb2_grpc.DispatchStub(self._channel(self.stack.dispatch.grpc_address, caller))

    def scoring_stub(self, address: str, caller: Any) -> scoring_pb2_grpc.ScoringStub:
        return scoring_pb2_grpc.ScoringStub(self._channel(address, caller))

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()


# ---- faults ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fault:
    what: str       # "kill -9 intake", "broker restart", "store pause"
    at: float       # wall-clock time it struck (what record timestamps are compared with)
    seconds: float  # until the part was back


@dataclass
class Faults:
    """What was done to the stack, in order."""

    done: list[Fault] = field(default_factory=list)

    def count(self, prefix: str) -> int:
        return sum(1 for f in self.done if f.what.startswith(prefix))

    def crashes_of(self, service: str) -> list[float]:
        """When `service` could have lost what it had in flight: its own kill -9, and the broker's crash."""
        return [f.at for f in self.done if f.what in (f"kill -9 {service}", "broker restart")]

    async def kill9(self, service: ServiceProcess, name: str, start_timeout: float = 180) -> None:
        """kill -9, then start it again (same store, same address) and wait until it is healthy."""
        assert service.proc is not None and service.proc.poll() is None, f"{name} was not running"
        began, at = time.monotonic(), time.time()
        service.stop(kill=True)  # SIGKILL: nothing flushed, nothing closed
        await asyncio.to_thread(service.start, start_timeout)
        self.done.append(Fault(f"kill -9 {name}", at, time.monotonic() - began))

    async def crash_broker(self, kill: Callable[[], None], start: Callable[[], None], down: float) -> None:
        began, at = time.monotonic(), time.time()
        await asyncio.to_thread(kill)
        await asyncio.sleep(down)
        await asyncio.to_thread(start)
        self.done.append(Fault("broker restart", at, time.monotonic() - began))

    async def freeze_store(self, store: PrivatePostgres, seconds: float) -> None:
        """SIGSTOP every process of the PostgreSQL cluster (a stalled VM, a long GC: connections stay open and
        hang rather than fail), then SIGCONT."""
        began, at = time.monotonic(), time.time()
        pids = cluster_pids(store)
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(seconds)
        finally:
            for pid in reversed(pids):
                os.kill(pid, signal.SIGCONT)
        self.done.append(Fault("store pause", at, time.monotonic() - began))


def cluster_pids(store: PrivatePostgres) -> list[int]:
    """The postmaster (first) and its children (backends, checkpointer, walwriter ...)."""
    postmaster = int((store.state / "data" / "postmaster.pid").read_text().splitlines()[0])
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == postmaster:  # field 4: the parent's pid
            children.append(int(entry.name))
    return [postmaster, *children]


def scoring_process(bootstrap: str, workdir: Path, identity: dict[str, str], port: int) -> ServiceProcess:
    """scoring on its own SQLite ledger (the suite compares it with a rebuild from the log)."""
    address = f"127.0.0.1:{port}"
    return ServiceProcess("sandan_scoring", {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "SCORING_DATABASE_URL": f"sqlite:///{workdir}/scoring.db",
        "SCORING_GRPC_ADDRESS": address, "LOG_LEVEL": "info", **identity}, address, workdir / "scoring.log")


# ---- ledgers --------------------------------------------------------------------------------------
def stored_facts(name: str, store_url: str, to_contract: ToContract) -> dict[str, str]:
    """event_id -> topic of every event `name`'s relay must publish: each stored event its `to_contract` maps, read
    from the service's own store by a relay of the same code (it reads, never publishes), so the ids are the ones
    it gives."""
    reader = type(f"{name.title()}Reader", (ServiceApplication,), {"name": name})(store_url)
    relay = Relay(reader, cast(KafkaBroker, None), to_contract)
    found: dict[str, str] = {}
    try:
        after = 0
        while True:
            pending = relay._pending(after)  # what the relay would publish next
            if not pending:
                return found
            for p in pending:
                if p.contract is not None:
                    # (a relay without per-event ids named an event by its notification id)
                    found[getattr(p, "event_id", None) or f"{name}:{p.notification_id}"] = p.contract.TOPIC
            after = pending[-1].notification_id
    finally:
        reader.close()


def scoring_facts(store_url: str) -> dict[str, str]:
    """event_id -> topic of everything scoring must publish: its current ledger's entries and its star changes."""
    store = ScoringStore(store_url)
    try:
        generation, _ = store.current()
        found = {f"scoring:{e}": "scoring.points.v1" for e in store.entry_ids(generation)}
        with store.engine.connect() as conn:
            found |= {i: "scoring.points.v1" for i in conn.execute(select(star_changes.c.event_id)).scalars()}
        return found
    finally:
        store.engine.dispose()


@dataclass(frozen=True)
class Copy:
    """One record carrying an event: where, what, and when the producer appended it (wall clock, seconds)."""

    topic: str
    envelope: Envelope
    raw: bytes
    at: float


async def on_topics(bootstrap: str, topics: Iterable[str]) -> dict[str, list[Copy]]:
    """event_id -> every record carrying it, in the order appended, over the topics' whole history up to now."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    found: dict[str, list[Copy]] = defaultdict(list)
    try:
        parts = [TopicPartition(t, p) for t in topics for p in range(TOPICS[t].partitions)]
        ends = await consumer.end_offsets(parts)
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        behind = {tp for tp in parts if ends[tp] > 0}
        while behind:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    envelope = Envelope.model_validate_json(r.value)  # our own topics: never anything else
                    found[envelope.event_id].append(Copy(r.topic, envelope, r.value, r.timestamp / 1000))
            behind = {tp for tp in behind if await consumer.position(tp) < ends[tp]}
        for copies in found.values():
            copies.sort(key=lambda c: c.at)
        return found
    finally:
        await consumer.stop()


async def dead_letters(bootstrap: str) -> dict[str, int]:
    """How many records each dead-letter topic holds (on a broker of the suite's own: all of them are its)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(t.dead_letter, p) for t in TOPICS.values() if t.dead_letter
                 for p in range(TOPICS[t.dead_letter].partitions)]
        ends = await consumer.end_offsets(parts)
        counts: Counter[str] = Counter()
        for tp, end in ends.items():
            counts[tp.topic] += end
        return {topic: n for topic, n in counts.items() if n}
    finally:
        await consumer.stop()


@dataclass(frozen=True)
class Compared:
    """A service's stored facts against its topics."""

    stored: int
    lost: list[str]         # stored, never published
    republished: list[str]  # published again after a crash, with the same bytes (the relay's documented window)
    doubled: list[str]      # published more than once otherwise: other bytes, or with no crash in between
    strays: list[str]       # on its topics under its name, never stored


SLACK = 1.0  # seconds: record timestamps are the producer's clock in milliseconds, fault times the test's


def compare(facts: dict[str, str], published: dict[str, list[Copy]], producer: str, topics: Iterable[str],
            crashes: list[float]) -> Compared:
    """`facts` (event_id -> topic, from the store) against what `producer` published on `topics`. A copy past the
    first is a re-publish only if it has the first's bytes and a crash of the producer (or of the broker) struck
    between the copy before it and itself; anything else that repeats is doubled."""
    topics = set(topics)
    own = {event_id: [c for c in copies if c.topic in topics] for event_id, copies in published.items()
           if event_id.startswith(f"{producer}:")}
    own = {event_id: copies for event_id, copies in own.items() if copies}

    def after_a_crash(copies: list[Copy]) -> bool:
        return len({c.raw for c in copies}) == 1 and all(
            any(a.at - SLACK <= t <= b.at + SLACK for t in crashes) for a, b in itertools.pairwise(copies))

    lost = sorted(i for i, topic in facts.items() if not any(c.topic == topic for c in own.get(i, [])))
    repeated = [i for i, copies in own.items() if len(copies) > 1]
    republished = sorted(i for i in repeated if after_a_crash(own[i]))
    doubled = sorted(set(repeated) - set(republished))
    strays = sorted(set(own) - set(facts))
    return Compared(len(facts), lost, republished, doubled, strays)


def console_notifications(path: Path) -> list[dict[str, Any]]:
    """notify's console channel: one JSON line per message sent."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@dataclass(frozen=True)
class Notifications:
    """notify's console channel, by (source event, recipient kind, recipient)."""

    lines: int
    twice: dict[tuple[str, str, str], set[str]]  # one event and recipient, more than one notification: doubled
    resent: int  # lines repeating a notification id already written (a send not yet recorded when notify died)


def notifications(sent: list[dict[str, Any]]) -> Notifications:
    ids: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for m in sent:
        ids[(m["source_event_id"], m["recipient_kind"], m["recipient_id"])].add(m["notification_id"])
    resent = len(sent) - len({m["notification_id"] for m in sent})
    return Notifications(len(sent), {key: found for key, found in ids.items() if len(found) > 1}, resent)
