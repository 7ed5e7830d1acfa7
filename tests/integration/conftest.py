"""The integration stack: a real Kafka broker (KAFKA_BOOTSTRAP_SERVERS or testcontainers), the topics
created from the registry, and intake and dispatch running as real processes on SQLite stores.

One stack per test session; each test uses its own community and resident ids, so tests do not see each
other's orders. Typed helpers read as given/when/then: `stack.read(topic, key, types)`.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from sandan_contracts.rpc import dispatch_pb2_grpc, intake_pb2_grpc
from sandan_eventbus.channels import aio_channel
from sandan_eventbus.devtools import Received, ServiceProcess, read_topic
from sandan_eventbus.kafka import create_topics

SWEEP_SECONDS = "0.5"


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
    channels: list[grpc.aio.Channel] = field(default_factory=list)

    def channel(self, address: str) -> grpc.aio.Channel:
        """A channel as the shipped clients make them: with the retry policy (sandan_eventbus.channels)."""
        channel = aio_channel(address)
        self.channels.append(channel)
        return channel

    def intake_stub(self) -> intake_pb2_grpc.IntakeStub:
        return intake_pb2_grpc.IntakeStub(self.channel(self.intake.grpc_address))

    def dispatch_stub(self) -> dispatch_pb2_grpc.DispatchStub:
        return dispatch_pb2_grpc.DispatchStub(self.channel(self.dispatch.grpc_address))

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


@pytest.fixture(scope="session")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    asyncio.run(create_topics(kafka_bootstrap))
    workdir = tmp_path_factory.mktemp("stack")
    run = uuid.uuid4().hex[:8]  # fresh consumer groups: this stack reads the topics from the beginning
    intake_addr, dispatch_addr = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    common = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "LOG_LEVEL": "INFO"}
    intake = ServiceProcess("sandan_intake", {
        **common,
        "INTAKE_EVENTSTORE_URL": f"sqlite:///{workdir}/intake-events.db",
        "INTAKE_DATABASE_URL": f"sqlite:///{workdir}/intake.db",
        "INTAKE_GRPC_ADDRESS": intake_addr,
        "INTAKE_CONSUMER_GROUP": f"intake-{run}",
    }, intake_addr, workdir / "intake.log")
    dispatch = ServiceProcess("sandan_dispatch", {
        **common,
        "DISPATCH_EVENTSTORE_URL": f"sqlite:///{workdir}/dispatch-events.db",
        "DISPATCH_DATABASE_URL": f"sqlite:///{workdir}/dispatch.db",
        "DISPATCH_GRPC_ADDRESS": dispatch_addr,
        "DISPATCH_CONSUMER_GROUP": f"dispatch-{run}",
        "DISPATCH_DEADLINE_SWEEP_SECONDS": SWEEP_SECONDS,
    }, dispatch_addr, workdir / "dispatch.log")
    intake.start()
    dispatch.start()
    try:
        yield Stack(kafka_bootstrap, workdir, intake, dispatch)
    finally:
        dispatch.stop()
        intake.stop()
