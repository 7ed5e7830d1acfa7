"""The integration stack: a real Kafka broker (KAFKA_BOOTSTRAP_SERVERS or testcontainers), the topics
created from the registry, and intake and dispatch running as real processes on SQLite stores, trusting the real
Keycloak (`oidc_issuer`) for every call.

One stack per test session; each test uses its own community (from the pool declared in the stack's places file)
and its own people, so tests do not see each other's orders. Every call carries the token of the person who would
make it: `stack.intake_stub(c.secretary)`. Typed helpers read as given/when/then: `stack.read(topic, key, types)`.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from sandan_contracts import TOPICS
from sandan_contracts.rpc import dispatch_pb2_grpc, intake_pb2_grpc
from sandan_eventbus.auth.keycloak import KeycloakAdmin
from sandan_eventbus.devtools import Received, ServiceProcess, groups_at_end, read_topic
from sandan_eventbus.kafka import create_topics
from tests.integration.people import Caller, CommunityPool, People, aio_channel_as, identity_env

SWEEP_SECONDS = "0.5"
# intake seals residents' personal data under a key-encryption key: the tests' own, base64 of "sandan integration
# tests only!!!" (not a secret; never used outside the tests)
INTAKE_KEK = {"INTAKE_KEK": "it-kek-1:c2FuZGFuIGludGVncmF0aW9uIHRlc3RzIG9ubHkhISE="}
# dispatch seals the notes about services to residents under its own KEK (never intake's): base64 of "sandan
# dispatch integration only" (not a secret; never used outside the tests)
DISPATCH_KEK = {"DISPATCH_KEK": "it-dispatch-kek-1:c2FuZGFuIGRpc3BhdGNoIGludGVncmF0aW9uIG9ubHk="}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Stack:
    bootstrap: str
    workdir: Path
    intake: ServiceProcess
    dispatch: ServiceProcess
    people: People
    communities: CommunityPool
    places_file: Path
    channels: list[grpc.aio.Channel] = field(default_factory=list)

    def channel(self, address: str, caller: Caller | None) -> grpc.aio.Channel:
        """A channel as the shipped clients make them (with the retry policy), carrying `caller`'s token."""
        channel = aio_channel_as(address, caller)
        self.channels.append(channel)
        return channel

    def intake_stub(self, caller: Caller | None) -> intake_pb2_grpc.IntakeStub:
        return intake_pb2_grpc.IntakeStub(self.channel(self.intake.grpc_address, caller))

    def dispatch_stub(self, caller: Caller | None) -> dispatch_pb2_grpc.DispatchStub:
        return dispatch_pb2_grpc.DispatchStub(self.channel(self.dispatch.grpc_address, caller))

    def identity(self, calls_others: bool = False) -> dict[str, str]:
        """The settings a service process of this stack needs to verify its callers (and, for notify, to call)."""
        return identity_env(self.people.issuer, self.places_file, calls_others=calls_others)

    async def read(self, topic: str, key: str, count: int, timeout: float = 30) -> list[Received]:
        """The first `count` distinct events (by event_id) keyed `key` on `topic`, in topic order."""

        def distinct(found: list[Received]) -> list[Received]:
            seen: dict[str, Received] = {}
            for r in found:
                if r.envelope and r.envelope.event_id not in seen:
                    seen[r.envelope.event_id] = r
            return list(seen.values())

        found = await read_topic(self.bootstrap, topic, until=lambda f: len(distinct(f)) >= count,
                                 where=lambda r: r.key == key, timeout=timeout)
        return distinct(found)

    async def read_raw(self, topic: str, key: str, count: int, timeout: float = 30) -> list[Received]:
        """The first `count` records keyed `key`, envelope or not (for dead-letter topics)."""
        return await read_topic(self.bootstrap, topic, until=lambda f: len(f) >= count,
                                where=lambda r: r.key == key, timeout=timeout)

    async def read_all(self, topic: str, key: str, settle: float = 3) -> list[Received]:
        """Everything keyed `key` on `topic` (duplicates included), after waiting `settle` seconds."""
        return await read_topic(self.bootstrap, topic, until=lambda f: False, where=lambda r: r.key == key,
                                timeout=settle)


async def caught_up(bootstrap: str, groups: dict[str, list[str]], timeout: float = 900) -> None:
    """Wait until each consumer group has committed the topics' current ends (what was there when asked)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await admin.start()
    await consumer.start()
    try:
        ends = {group: await consumer.end_offsets(
            [TopicPartition(t, p) for t in topics for p in range(TOPICS[t].partitions)]) for group, topics in
            groups.items()}
        deadline = time.monotonic() + timeout
        for group, wanted in ends.items():
            while True:
                committed = await admin.list_consumer_group_offsets(group)
                behind = {tp: end for tp, end in wanted.items()
                          if end > 0 and (tp not in committed or committed[tp].offset < end)}
                if not behind:
                    break
                if time.monotonic() > deadline:
                    raise AssertionError(f"{group} did not catch up with the broker's history in {timeout}s")
                await asyncio.sleep(1)
    finally:
        await consumer.stop()
        await admin.close()


@pytest.fixture(scope="session")
def people(keycloak: object, oidc_issuer: str) -> People:
    """The test session's people, created in the real Keycloak as the tests need them."""
    assert isinstance(keycloak, KeycloakAdmin)
    return People(keycloak, oidc_issuer.rstrip("/"))


def places(workdir: Path, name: str = "places.toml") -> tuple[CommunityPool, Path]:
    """A pool of community ids, declared in a places file (a town office's reach) before the services start."""
    pool = CommunityPool("cj-")
    path = workdir / name
    path.write_text(pool.toml(), encoding="utf-8")
    return pool, path


@pytest.fixture(scope="session")
def stack(kafka_bootstrap: str, people: People, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    asyncio.run(create_topics(kafka_bootstrap))
    workdir = tmp_path_factory.mktemp("stack")
    run = uuid.uuid4().hex[:8]
    # fresh consumer groups, started at the topics' ends: the tests use communities of their own, and a shared
    # broker's history (thousands of facts from earlier runs) would take minutes to read on a busy machine.
    # Reading the whole log from the start is tested where it is the point (scoring's rebuild, the outage tests).
    groups = {f"intake-{run}": ["dispatch.orders.v1"], f"dispatch-{run}": ["intake.demands.v1"]}
    asyncio.run(groups_at_end(kafka_bootstrap, groups))
    intake_addr, dispatch_addr = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    communities, places_file = places(workdir)
    common = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "LOG_LEVEL": "INFO",
              **identity_env(people.issuer, places_file)}
    intake = ServiceProcess("sandan_intake", {
        **common,
        "INTAKE_EVENTSTORE_URL": f"sqlite:///{workdir}/intake-events.db",
        "INTAKE_DATABASE_URL": f"sqlite:///{workdir}/intake.db",
        "INTAKE_GRPC_ADDRESS": intake_addr,
        "INTAKE_CONSUMER_GROUP": f"intake-{run}", **INTAKE_KEK,
    }, intake_addr, workdir / "intake.log")
    dispatch = ServiceProcess("sandan_dispatch", {
        **common,
        "DISPATCH_EVENTSTORE_URL": f"sqlite:///{workdir}/dispatch-events.db",
        "DISPATCH_DATABASE_URL": f"sqlite:///{workdir}/dispatch.db",
        "DISPATCH_GRPC_ADDRESS": dispatch_addr,
        "DISPATCH_CONSUMER_GROUP": f"dispatch-{run}",
        "DISPATCH_DEADLINE_SWEEP_SECONDS": SWEEP_SECONDS, **DISPATCH_KEK,
    }, dispatch_addr, workdir / "dispatch.log")
    intake.start()
    dispatch.start()
    try:
        asyncio.run(caught_up(kafka_bootstrap, groups))  # what came between the commit and the start
        yield Stack(kafka_bootstrap, workdir, intake, dispatch, people, communities, places_file)
    finally:
        dispatch.stop()
        intake.stop()
