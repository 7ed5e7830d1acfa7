"""Runs one service: Kafka consumers (inbox), the outbox relay, background loops and the gRPC server.

Everything shares one asyncio loop; eventsourcing calls go to worker threads.

Health (grpc.health.v1): "" and every service name report *readiness*: SERVING once the broker is connected
and while every part of the service can work; NOT_SERVING while any part reports an outage into
`runtime.readiness` (the inbox paused on an outage, the relay unable to publish, the store or the broker not
answering the runtime's probe, a consumer stuck: lag and no progress, see `sandan_eventbus.inbox`) and from the
start of shutdown; each part reports under its own name, so one recovering does not clear another.
The name `liveness` stays SERVING while the process runs: a service waiting out an outage is alive, and must
not be restarted for it. The name `publishing`
(services with a relay) is SERVING while nothing stored waits set aside, and NOT_SERVING while the relay holds
events it could not publish (the rest flowed past them: see `sandan_eventbus.relay`), until a re-drive publishes
them: for monitoring (`python -m sandan_<service>.healthcheck publishing`), never for a probe, since a set-aside
event is no reason to restart or drain a service that still works.

Shutdown (SIGTERM, SIGINT) is bounded whatever is reachable: every step has its own deadline, starting
is abandoned when a stop arrives, and a watchdog ends the process `shutdown_seconds` after the signal should
a store call still hold a worker thread (its message is redelivered: nothing is lost).

Metrics (Prometheus, `sandan_eventbus.metrics`): served on `<NAME>_METRICS_PORT` from the start (also while the
broker is awaited) until the process stops; every gRPC call is counted and timed by the outermost interceptor.

Traces (OpenTelemetry, `sandan_eventbus.tracing`): the process's tracer provider is installed here from the
standard `OTEL_*` variables (exported only when configured); every call but health checks gets a server span, the
child of the caller's `traceparent`, in front of everything else, and what is left to export is flushed at stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc
from faststream.kafka import KafkaBroker
from grpc_health.v1 import health, health_pb2
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from sandan_eventbus import edge, metrics, redrive, security, setaside, tracing
from sandan_eventbus.inbox import Inbox
from sandan_eventbus.kafka import bootstrap_servers
from sandan_eventbus.outages import backoff, describe
from sandan_eventbus.readiness import Readiness
from sandan_eventbus.relay import Relay
from sandan_eventbus.rpc import add_health, set_serving
from sandan_eventbus.security import GrpcTlsSettings, OidcSettings

log = logging.getLogger(__name__)

Loop = Callable[[asyncio.Event], Awaitable[None]]
LIVENESS = "liveness"  # the health name a liveness probe asks for
PUBLISHING = "publishing"  # NOT_SERVING while the relay holds events set aside (monitoring, not probes)


class Pingable(Protocol):
    def ping(self, timeout: float) -> None:
        """Raise unless the store answers within `timeout` seconds (called in a worker thread)."""


@dataclass
class ServiceRuntime:
    name: str
    broker: KafkaBroker
    relay: Relay | None
    inbox: Inbox | None
    grpc_address: str
    register_servicers: Callable[[grpc.aio.Server], list[str]]
    loops: list[Loop] = field(default_factory=list)
    # Runs after the broker connected and before gRPC serves (e.g. restoring state from the log).
    on_start: Callable[[], Awaitable[None]] | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    bound_port: int = 0
    # Where dead letters are read from (the DeadLetters service); default KAFKA_BOOTSTRAP_SERVERS.
    bootstrap: str | None = None
    # Every part of the service reports into this; see sandan_eventbus.readiness.
    readiness: Readiness = field(default=None)  # type: ignore[assignment]
    # The store the probe checks; default the relay's or the inbox's application (ServiceApplication.ping).
    store: Pingable | None = None
    probe_seconds: float = 5.0
    # From SIGTERM to exit, at most (Kubernetes waits 30 s, then kills).
    shutdown_seconds: float = 25.0
    # One attempt to connect to the broker; then it is stopped and tried again.
    connect_timeout_seconds: float = 60.0
    # Who issues the tokens every call must carry, and the server's TLS (default: from the environment,
    # SANDAN_OIDC_* and SANDAN_GRPC_*; see sandan_eventbus.security). Both are required: no call goes unverified.
    oidc: OidcSettings | None = None
    tls: GrpcTlsSettings | None = None
    # Where Prometheus scrapes /metrics (default `<NAME>_METRICS_PORT`; 0: no metrics server).
    metrics_port: int | None = None
    metrics_server: metrics.MetricsServer | None = None

    def __post_init__(self) -> None:
        # read before anything starts, so a missing issuer or certificate stops the service at once
        self.oidc = self.oidc or security.load(OidcSettings)
        self.tls = self.tls or security.load(GrpcTlsSettings)
        tracing.setup(self.name)  # once per process; an unknown exporter stops the service here
        if self.metrics_port is None:
            self.metrics_port = metrics.port(self.name)
        if self.readiness is None:
            self.readiness = Readiness(self.name)
        for part in (self.inbox, self.relay):
            if part is not None:
                part.readiness = self.readiness
        if self.store is None:
            self.store = self.relay.app if self.relay else self.inbox.app if self.inbox else None

    async def run(self, stop: asyncio.Event) -> None:
        self.metrics_server = metrics.serve(self.name, self.metrics_port or 0)
        try:
            await self._run(stop)
        finally:
            if self.metrics_server is not None:
                await asyncio.to_thread(self.metrics_server.stop)
            await _bounded("traces flush", asyncio.to_thread(tracing.flush), 3)

    async def _run(self, stop: asyncio.Event) -> None:
        if self.inbox is not None:
            self.inbox.subscribe()
        if not await self._start_broker(stop):
            await _bounded("broker stop", self.broker.stop(), 5)
            log.info("service stopped before it started", extra={"fields": {"service": self.name}})
            return
        server: grpc.aio.Server | None = None
        servicer: health.aio.HealthServicer | None = None
        names: list[str] = []
        tasks: list[asyncio.Task[Any]] = []
        try:
            if self.on_start is not None and not await _unless_stopped(self.on_start(), stop):
                return
            # the trace (a server span, the caller's child), metrics (every call counted, refusals too), the
            # in-flight limit (<NAME>_GRPC_MAX_IN_FLIGHT), then authentication (a verified token on every call,
            # allowed by role: sandan_contracts/rpc/access.toml), then the input policy
            assert self.oidc is not None and self.tls is not None
            outer = [tracing.server_interceptor(), metrics.GrpcMetrics()]
            server = edge.server(self.name, guards=self.oidc.guards(), outer=outer)
            names = self.register_servicers(server)
            if self.inbox is not None:
                names += redrive.add_to_server(server, self.inbox, self.bootstrap or bootstrap_servers())
            if self.relay is not None:
                names += setaside.add_to_server(server, self.relay)
            servicer = add_health(server)
            self.bound_port = self.tls.bind(server, self.grpc_address)  # TLS, or plaintext where allowed
            if self.bound_port == 0:
                raise RuntimeError(f"cannot bind gRPC to {self.grpc_address}")
            await server.start()
            await servicer.set(LIVENESS, health_pb2.HealthCheckResponse.SERVING)
            changed = asyncio.Event()
            loop = asyncio.get_running_loop()
            self.readiness.listen(lambda _ready: loop.call_soon_threadsafe(changed.set))
            await self._publish_readiness(servicer, names)
            if self.relay is not None:
                self._follow_set_aside(self.relay, servicer)
            tasks = [asyncio.create_task(self._follow_readiness(servicer, names, changed), name="health"),
                     asyncio.create_task(self._probe(stop), name="probe")]
            if self.inbox is not None:  # lag, and NOT_SERVING while a consumer with lag makes no progress
                tasks.append(asyncio.create_task(self.inbox.watch(stop), name="inbox watch"))
            if self.relay is not None:
                tasks.append(asyncio.create_task(self.relay.run(stop), name="relay"))
            tasks += [asyncio.create_task(loop_(stop), name=getattr(loop_, "__name__", "loop"))
                      for loop_ in self.loops]
            log.info("service ready", extra={"fields": {"service": self.name, "grpc_port": self.bound_port}})
            self.ready.set()
            await stop.wait()
        finally:
            await self._shutdown(server, servicer, names, tasks)

    async def _shutdown(self, server: grpc.aio.Server | None, servicer: health.aio.HealthServicer | None,
                        names: list[str], tasks: list[asyncio.Task[Any]]) -> None:
        """Each step bounded: nothing here may wait on an unreachable broker or store."""
        self.readiness.set("shutdown", False, "stopping")
        if servicer is not None:
            await _bounded("health", set_serving(servicer, names, False), 1)
        if server is not None:
            await _bounded("gRPC stop", server.stop(grace=2), 3)
        for task in tasks:
            task.cancel()
        await _bounded("background tasks", asyncio.gather(*tasks, return_exceptions=True), 3)
        # consumers leave their groups and the producer flushes: both wait on the broker
        await _bounded("broker stop", self.broker.stop(), 5)
        log.info("service stopped", extra={"fields": {"service": self.name}})

    async def _start_broker(self, stop: asyncio.Event) -> bool:
        """Connect, retrying with capped backoff until connected (True) or asked to stop (False)."""

        def failed(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            log.warning("broker not reachable; retrying", extra={"fields": {
                "error": describe(error) if error else "", "attempt": state.attempt_number}})

        async def sleep(seconds: float) -> None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), seconds)

        async def connect() -> bool:
            try:
                started = await _unless_stopped(asyncio.wait_for(self.broker.start(), self.connect_timeout_seconds),
                                                stop)
            except BaseException:
                await _bounded("broker stop", self.broker.stop(), 5)  # a half-started broker: start afresh
                raise
            return started

        retrying = AsyncRetrying(retry=retry_if_exception_type(Exception), wait=backoff(0.5, 10.0),
                                 stop=lambda _: stop.is_set(), sleep=sleep, before_sleep=failed, reraise=True)
        try:
            async for attempt in retrying:
                with attempt:
                    return await connect()
        except Exception:
            if stop.is_set():
                return False
            raise
        return False

    # --- readiness ----------------------------------------------------------------------------
    async def _publish_readiness(self, servicer: health.aio.HealthServicer, names: list[str]) -> None:
        await set_serving(servicer, names, self.readiness.ready)

    async def _follow_readiness(self, servicer: health.aio.HealthServicer, names: list[str],
                                changed: asyncio.Event) -> None:
        while True:
            await changed.wait()
            changed.clear()
            await self._publish_readiness(servicer, names)

    def _follow_set_aside(self, relay: Relay, servicer: health.aio.HealthServicer) -> None:
        """Health name `publishing`: NOT_SERVING while events are set aside (known once the relay read its store)."""
        loop = asyncio.get_running_loop()
        updates: set[asyncio.Task[None]] = set()  # held until done: a task only weakly referenced may vanish

        def changed(waiting: int) -> None:
            status = health_pb2.HealthCheckResponse.NOT_SERVING if waiting else health_pb2.HealthCheckResponse.SERVING
            task = loop.create_task(servicer.set(PUBLISHING, status))
            updates.add(task)
            task.add_done_callback(updates.discard)

        relay.listen_set_aside(changed)

    async def _probe(self, stop: asyncio.Event) -> None:
        """Every few seconds: do the broker and the store answer? (Readiness even when no work flows.)

        A part is reported down after two failed probes in a row (one slow answer on a busy machine is not an
        outage), and up again at the first answer."""
        timeout = min(3.0, self.probe_seconds)
        in_flight: asyncio.Future[None] | None = None
        misses = {"broker": 0, "store": 0}

        def report(part: str, error: str | None) -> None:
            misses[part] = misses[part] + 1 if error is not None else 0
            if error is None or misses[part] >= 2:
                self.readiness.set(part, error is None, error or "")

        while not stop.is_set():
            report("broker", None if await self.broker.ping(timeout) else "the broker does not answer")
            if self.store is not None:
                # a store call can outlive its timeout in its thread: never start a second one meanwhile
                if in_flight is None or in_flight.done():
                    in_flight = asyncio.ensure_future(asyncio.to_thread(self.store.ping, timeout))
                try:
                    await asyncio.wait_for(asyncio.shield(in_flight), timeout + 1)
                    report("store", None)
                except Exception as exc:
                    report("store", describe(exc) if str(exc) else "the store does not answer")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.probe_seconds)

async def _unless_stopped(work: Awaitable[Any], stop: asyncio.Event) -> bool:
    """Await `work` unless `stop` comes first (then cancel it and return False). Raises what `work` raises."""
    task = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if task.done():
        task.result()
        return True
    task.cancel()
    await _bounded("abandoned start", task, 2)
    return False


async def _bounded(step: str, work: Awaitable[Any], seconds: float) -> None:
    try:
        await asyncio.wait_for(work, seconds)
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # we are being cancelled, not just the work (which was cancelled on purpose)
    except TimeoutError:
        log.warning("shutdown step did not finish in time; going on", extra={"fields": {"step": step,
                                                                                        "seconds": seconds}})
    except Exception as exc:
        log.warning("shutdown step failed; going on", extra={"fields": {"step": step, "error": describe(exc)}})


def _exit_after(seconds: float) -> None:
    """The last resort: a worker thread stuck in a store call must not keep the process past its grace."""

    def force() -> None:
        log.error("shutdown outlasted its grace period; exiting now (unfinished messages are redelivered)",
                  extra={"fields": {"seconds": seconds}})
        for handler in logging.getLogger().handlers:
            with contextlib.suppress(Exception):
                handler.flush()
        os._exit(1)

    timer = threading.Timer(seconds, force)
    timer.daemon = True
    timer.start()


def run_until_signalled(runtime: ServiceRuntime) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal(sig: signal.Signals) -> None:
            if not stop.is_set():
                log.info("stopping", extra={"fields": {"service": runtime.name, "signal": sig.name}})
                _exit_after(runtime.shutdown_seconds)
                stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal, sig)
        await runtime.run(stop)

    asyncio.run(main())
