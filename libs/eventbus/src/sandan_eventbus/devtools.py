"""Local-stack helpers shared by the demo and the integration tests (not for production use):
start a service as a real OS process and wait for its health, read a topic's envelopes, and start new consumer
groups at the topics' current ends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import grpc
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import OffsetAndMetadata
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sandan_contracts import Envelope
from sandan_eventbus.kafka import aiokafka_kwargs, partitions_of

CATCH_UP_SECONDS = 300.0  # how much longer `read_topic` may take to reach the topic's end before its timeout counts


class ServiceProcess:
    """`python -m <module>` with its own environment; stdout/stderr go to `log_path`."""

    def __init__(self, module: str, env: dict[str, str], grpc_address: str, log_path: Path) -> None:
        self.module = module
        self.env = {**os.environ, **env}
        self.grpc_address = grpc_address
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self, timeout: float = 60) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", self.module], env=self.env,  # noqa: S603
                                     stdout=self._log, stderr=subprocess.STDOUT)
        self.wait_healthy(timeout)

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.module} exited with {self.proc.returncode}; see {self.log_path}:\n"
                                   + self.log_path.read_text(errors="replace")[-3000:])
            try:
                with grpc.insecure_channel(self.grpc_address) as channel:
                    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.module} not healthy after {timeout}s; see {self.log_path}")

    def stop(self, kill: bool = False, timeout: float = 15) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self._log:
            self._log.close()


@dataclass(frozen=True)
class Received:
    topic: str
    partition: int
    offset: int
    key: str | None
    headers: dict[str, str]
    raw: bytes
    envelope: Envelope | None


async def read_topic(bootstrap: str, topic: str, until: Callable[[list[Received]], bool],
                     where: Callable[[Received], bool] = lambda r: True, timeout: float = 30) -> list[Received]:
    """Read `topic` from the beginning (no consumer group) until `until(matching)` or the timeout.

    The timeout counts from when the reader has caught up with the topic as it was when asked (a long topic on a
    shared broker takes a while to read), within at most `CATCH_UP_SECONDS` more."""
    consumer = AIOKafkaConsumer(**aiokafka_kwargs(bootstrap), enable_auto_commit=False,
                                client_id=f"reader-{uuid.uuid4().hex[:6]}")
    await consumer.start()
    found: list[Received] = []
    try:
        partitions = await partitions_of(consumer, [topic])
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        behind = {tp: end for tp, end in (await consumer.end_offsets(partitions)).items() if end > 0}
        started = time.monotonic()
        caught_up = started if not behind else None  # when the reader reached the ends measured above
        while True:
            now = time.monotonic()
            if now >= (caught_up + timeout if caught_up is not None else started + timeout + CATCH_UP_SECONDS):
                break
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for r in records:
                    received = _received(r)
                    if where(received):
                        found.append(received)
            for tp in [tp for tp in behind if await consumer.position(tp) >= behind[tp]]:
                del behind[tp]
            if caught_up is None and not behind:
                caught_up = time.monotonic()
            if until(found):
                return found
        return found
    finally:
        await consumer.stop()


async def groups_at_end(bootstrap: str, groups: Mapping[str, Iterable[str]]) -> None:
    """Start new groups at their topics' ends: a stack must not re-read what other tests left on the shared broker."""
    for group, topics in groups.items():
        consumer = AIOKafkaConsumer(**aiokafka_kwargs(bootstrap), group_id=group, enable_auto_commit=False)
        await consumer.start()
        try:
            parts = await partitions_of(consumer, topics)
            consumer.assign(parts)
            ends = await consumer.end_offsets(parts)
            await consumer.commit({tp: OffsetAndMetadata(offset, "") for tp, offset in ends.items()})
        finally:
            await consumer.stop()


def _received(r: Any) -> Received:
    try:
        envelope: Envelope | None = Envelope.model_validate_json(r.value)
    except Exception:
        envelope = None
    return Received(r.topic, r.partition, r.offset, r.key.decode() if r.key else None,
                    {k: v.decode(errors="replace") for k, v in (r.headers or ())}, r.value or b"", envelope)

