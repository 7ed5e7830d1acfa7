"""Failing infrastructure: a long store outage pauses dispatch (not ready, nothing dead-lettered, nothing lost or
doubled), and every service stops within its grace period when the broker is gone.

Each test runs its own broker (deploy/local/kafka.sh on private ports and state) and, for the store outage, its
own PostgreSQL (deploy/local/postgres.sh): the shared ones are never stopped.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sandan_eventbus.devtools import ServiceProcess, read_topic
from sandan_eventbus.kafka import create_topics
from tests.integration.conftest import DISPATCH_KEK, INTAKE_KEK, Stack, places
from tests.integration.people import NOTIFY_IDENTITY, People, identity_env
from tests.integration.scenario import a_community, order_for, post

pytestmark = pytest.mark.kafka

REPO = Path(__file__).resolve().parents[2]
GRACE_SECONDS = 30  # terminationGracePeriodSeconds in deploy/k8s
# Longer than every retry budget the store path had: the pool's 30 s wait, eventsourcing's 10 tries, the
# inbox's ~3 s before it dead-lettered, and one delivery's hold (60 s) before the consumer polls again.
OUTAGE_SECONDS = 75


def _free_port() -> int:
    """A free port below Linux's ephemeral range: a client reconnecting to a stopped server cannot take it."""
    for _ in range(200):
        port = random.randint(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below 32768")


def _script(name: str, command: str, env: dict[str, str], timeout: float = 240) -> str:
    full = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS",)}
    done = subprocess.run(["bash", str(REPO / "deploy" / "local" / name), command], env={**full, **env},
                          capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{name} {command} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout.strip()


class PrivateBroker:
    def __init__(self) -> None:
        self.state = Path(tempfile.mkdtemp(prefix="sandan-kafka-"))
        self.env = {"KAFKA_PORT": str(_free_port()), "KAFKA_CONTROLLER_PORT": str(_free_port()),
                    "KAFKA_STATE_DIR": str(self.state), "KAFKA_HEAP": "256m", "KAFKA_STOP_TIMEOUT": "10"}
        self.bootstrap = f"127.0.0.1:{self.env['KAFKA_PORT']}"

    def start(self) -> None:
        _script("kafka.sh", "start", self.env)

    def kill(self) -> None:
        pid = int((self.state / "kafka.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)

    def remove(self) -> None:
        try:
            _script("kafka.sh", "stop", self.env, timeout=60)
        finally:
            shutil.rmtree(self.state, ignore_errors=True)


class PrivatePostgres:
    def __init__(self) -> None:
        # under /tmp directly: as root the server runs as `postgres`, which must reach its state directory
        self.state = Path(tempfile.mkdtemp(prefix="sandan-pg-", dir="/tmp"))
        self.env = {"PGPORT": str(_free_port()), "PG_STATE_DIR": str(self.state)}
        self.url = f"postgresql://sandan:sandan@127.0.0.1:{self.env['PGPORT']}/sandan"

    def start(self) -> None:
        _script("postgres.sh", "start", self.env)

    def stop(self) -> None:
        _script("postgres.sh", "stop", self.env)

    def remove(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.state, ignore_errors=True)


@pytest.fixture
def broker() -> Iterator[PrivateBroker]:
    if os.environ.get("SANDAN_UNIT_ONLY") == "1":
        pytest.skip("SANDAN_UNIT_ONLY=1: no private broker for the unit subset")
    b = PrivateBroker()
    try:
        b.start()
        asyncio.run(create_topics(b.bootstrap))
        yield b
    finally:
        b.remove()


@pytest.fixture
def store() -> Iterator[PrivatePostgres]:
    if os.environ.get("SANDAN_UNIT_ONLY") == "1":
        pytest.skip("SANDAN_UNIT_ONLY=1: no private PostgreSQL for the unit subset")
    pg = PrivatePostgres()
    try:
        pg.start()
        yield pg
    finally:
        pg.remove()


def _processes(bootstrap: str, workdir: Path, identity: dict[str, str], dispatch_store: str | None = None,
               ) -> dict[str, ServiceProcess]:
    run = uuid.uuid4().hex[:8]
    addresses = {name: f"127.0.0.1:{_free_port()}" for name in ("intake", "dispatch", "notify")}
    common = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "LOG_LEVEL": "info", **identity}
    dispatch_store = dispatch_store or f"sqlite:///{workdir}/dispatch-events.db"
    return {
        "intake": ServiceProcess("sandan_intake", {
            **common, "INTAKE_EVENTSTORE_URL": f"sqlite:///{workdir}/intake-events.db",
            "INTAKE_DATABASE_URL": f"sqlite:///{workdir}/intake.db", "INTAKE_GRPC_ADDRESS": addresses["intake"],
            "INTAKE_CONSUMER_GROUP": f"intake-{run}", **INTAKE_KEK}, addresses["intake"], workdir / "intake.log"),
        "dispatch": ServiceProcess("sandan_dispatch", {
            **common, "DISPATCH_EVENTSTORE_URL": dispatch_store, "DISPATCH_DATABASE_URL": dispatch_store,
            "DISPATCH_GRPC_ADDRESS": addresses["dispatch"], "DISPATCH_CONSUMER_GROUP": f"dispatch-{run}",
            "DISPATCH_DEADLINE_SWEEP_SECONDS": "1", **DISPATCH_KEK}, addresses["dispatch"], workdir / "dispatch.log"),
        "notify": ServiceProcess("sandan_notify", {
            **common, "NOTIFY_EVENTSTORE_URL": f"sqlite:///{workdir}/notify-events.db",
            "NOTIFY_DATABASE_URL": f"sqlite:///{workdir}/notify.db", "NOTIFY_GRPC_ADDRESS": addresses["notify"],
            "NOTIFY_CONSUMER_GROUP": f"notify-{run}", "NOTIFY_INTAKE_ADDRESS": addresses["intake"],
            "NOTIFY_DISPATCH_ADDRESS": addresses["dispatch"], "NOTIFY_CONSOLE": str(workdir / "notify-console.txt"),
            **NOTIFY_IDENTITY}, addresses["notify"], workdir / "notify.log"),
    }


async def _health(address: str, service: str = "") -> str:
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service),
                                                                    timeout=2)
        except grpc.aio.AioRpcError as exc:
            return exc.code().name
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def _log_lines(path: Path, message: str) -> int:
    return sum(1 for line in path.read_text(errors="replace").splitlines() if f'"msg": "{message}"' in line)


async def test_a_store_outage_longer_than_every_retry_budget_pauses_dispatch_and_loses_nothing(
        broker: PrivateBroker, store: PrivatePostgres, people: People, tmp_path: Path) -> None:
    communities, places_file = places(tmp_path)
    services = _processes(broker.bootstrap, tmp_path, identity_env(people.issuer, places_file),
                          dispatch_store=store.url)
    intake, dispatch = services["intake"], services["dispatch"]
    intake.start()
    dispatch.start()
    stack = Stack(broker.bootstrap, tmp_path, intake, dispatch, people, communities, places_file)
    try:
        c = await a_community(stack, members=1)
        before = [await post(stack, c) for _ in range(3)]
        for demand in before:
            await order_for(stack, c, demand.demand_id)

        # when dispatch's PostgreSQL stops for longer than every retry budget, while residents keep posting
        health: list[tuple[str, str]] = []
        posted: list[str] = []
        stopping = asyncio.Event()

        async def keep_posting() -> None:
            while not stopping.is_set():
                posted.append((await post(stack, c)).demand_id)
                await asyncio.sleep(1.0)

        async def watch_health() -> None:
            while not stopping.is_set():
                health.append((await _health(dispatch.grpc_address), await _health(dispatch.grpc_address,
                                                                                   "liveness")))
                await asyncio.sleep(1.0)

        tasks = [asyncio.create_task(keep_posting()), asyncio.create_task(watch_health())]
        await asyncio.sleep(2)
        await asyncio.to_thread(store.stop)
        await asyncio.sleep(OUTAGE_SECONDS)
        during = list(health)
        await asyncio.to_thread(store.start)
        await asyncio.sleep(5)
        stopping.set()
        await asyncio.gather(*tasks)

        # then every demand gets exactly one order, none was dead-lettered
        assert len(posted) >= OUTAGE_SECONDS // 2
        demand_ids = [d.demand_id for d in before] + posted
        for demand_id in demand_ids:
            await order_for(stack, c, demand_id, timeout=120)
        orders = await read_topic(broker.bootstrap, "dispatch.orders.v1", until=lambda f: False, timeout=5)
        opened: dict[str, set[str]] = {}
        for r in orders:
            if r.envelope is not None and r.envelope.type == "OrderOpened":
                opened.setdefault(r.envelope.data["demand_id"], set()).add(r.envelope.event_id)
        assert {d: len(opened.get(d, ())) for d in demand_ids} == {d: 1 for d in demand_ids}
        dead = await read_topic(broker.bootstrap, "intake.demands.v1.dlq", until=lambda f: False, timeout=3)
        assert dead == []
        # and dispatch was not ready while it waited, alive throughout, and ready again after
        assert ("NOT_SERVING", "SERVING") in during, during
        assert all(alive == "SERVING" for _, alive in health), health
        deadline = time.monotonic() + 60
        while await _health(dispatch.grpc_address) != "SERVING":
            assert time.monotonic() < deadline, "dispatch did not become ready again"
            await asyncio.sleep(0.5)
        assert dispatch.proc is not None and dispatch.proc.poll() is None  # never restarted
        # one log line when the outage began, one when it ended
        assert _log_lines(dispatch.log_path, "service not ready") == 1
        assert _log_lines(dispatch.log_path, "service ready again") == 1
    finally:
        dispatch.stop()
        intake.stop()


async def test_every_service_stops_within_its_grace_period_when_the_broker_is_gone(
        broker: PrivateBroker, people: People, tmp_path: Path) -> None:
    communities, places_file = places(tmp_path)
    services = _processes(broker.bootstrap, tmp_path, identity_env(people.issuer, places_file))
    for service in services.values():
        service.start()
    stack = Stack(broker.bootstrap, tmp_path, services["intake"], services["dispatch"], people, communities,
                  places_file)
    try:
        c = await a_community(stack, members=1)
        await post(stack, c)
        broker.kill()
        # work the relay can no longer publish, and a service that starts while the broker is gone
        await post(stack, c)
        late = subprocess.Popen([sys.executable, "-m", "sandan_dispatch"], env={
            **services["dispatch"].env, "DISPATCH_GRPC_ADDRESS": f"127.0.0.1:{_free_port()}",
            "DISPATCH_EVENTSTORE_URL": f"sqlite:///{tmp_path}/late.db", "DISPATCH_DATABASE_URL": ""},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        await asyncio.sleep(3)
        procs = {name: s.proc for name, s in services.items()} | {"dispatch (starting)": late}
        for proc in procs.values():
            assert proc is not None and proc.poll() is None
            proc.send_signal(signal.SIGTERM)
        began = time.monotonic()
        for name, proc in procs.items():
            assert proc is not None
            try:
                proc.wait(timeout=max(0.1, GRACE_SECONDS - (time.monotonic() - began)))
            except subprocess.TimeoutExpired:
                pytest.fail(f"{name} did not stop within {GRACE_SECONDS}s of SIGTERM with the broker down")
    finally:
        for service in services.values():
            service.stop(kill=True)
