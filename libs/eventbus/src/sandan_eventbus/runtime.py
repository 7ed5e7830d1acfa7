"""Runs one service: Kafka consumers (inbox), the outbox relay, background loops and the gRPC server.

Everything shares one asyncio loop; eventsourcing calls go to worker threads. Health turns SERVING
only once the broker connection is up, and NOT_SERVING before shutdown begins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import grpc
from faststream.kafka import KafkaBroker

from sandan_eventbus.inbox import Inbox
from sandan_eventbus.relay import Relay
from sandan_eventbus.rpc import add_health, set_serving

log = logging.getLogger(__name__)

Loop = Callable[[asyncio.Event], Awaitable[None]]


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

    async def run(self, stop: asyncio.Event) -> None:
        if self.inbox is not None:
            self.inbox.subscribe()
        await self._start_broker(stop)
        if self.on_start is not None:
            await self.on_start()
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)], maximum_concurrent_rpcs=100)
        names = self.register_servicers(server)
        health = add_health(server)
        self.bound_port = server.add_insecure_port(self.grpc_address)
        if self.bound_port == 0:
            raise RuntimeError(f"cannot bind gRPC to {self.grpc_address}")
        await server.start()
        await set_serving(health, names, True)
        tasks = [asyncio.create_task(self.relay.run(stop), name="relay")] if self.relay else []
        tasks += [asyncio.create_task(loop(stop), name=getattr(loop, "__name__", "loop")) for loop in self.loops]
        log.info("service ready", extra={"fields": {"service": self.name, "grpc_port": self.bound_port}})
        self.ready.set()
        try:
            await stop.wait()
        finally:
            await set_serving(health, names, False)
            await server.stop(grace=2)
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await self.broker.stop()
            log.info("service stopped", extra={"fields": {"service": self.name}})

    async def _start_broker(self, stop: asyncio.Event) -> None:
        delay = 0.5
        while True:
            try:
                await self.broker.start()
                return
            except Exception as exc:  # broker not up yet: not ready, keep trying
                if stop.is_set():
                    raise
                log.warning("broker not reachable; retrying", extra={"fields": {"error": str(exc)}})
                with contextlib.suppress(Exception):
                    await self.broker.stop()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)


def run_until_signalled(runtime: ServiceRuntime) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await runtime.run(stop)

    asyncio.run(main())
