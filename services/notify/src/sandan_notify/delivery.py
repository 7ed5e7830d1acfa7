"""The delivery loops, on the service's asyncio loop: a planner and one lane per enabled channel.

Each loop first brings the delivery log up to date (`Projector.catch_up`), then takes its work from it:
the planner the notices waiting for a channel, a lane the notifications due on its channel. Sends run in
worker threads, at most `concurrency` at a time per lane, so a dead or slow channel (timeouts) only slows
its own lane. The authoritative check (is this notification still due?) is made on the aggregate, so a lagging
log never causes a second send. On shutdown, sends already started finish and are recorded (asyncio.run
waits for the worker threads).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from sandan_eventbus import metrics
from sandan_notify.application import NotifyApplication
from sandan_notify.contacts import ContactUnavailable
from sandan_notify.deliveries import Due

log = logging.getLogger(__name__)


class Worker:
    def __init__(self, app: NotifyApplication, *, on_saved: Callable[[], None] = lambda: None,
                 concurrency: int = 8, poll_seconds: float = 0.2, contact_backoff_cap: float = 300.0) -> None:
        self.app = app
        self.on_saved = on_saved  # wakes the relay: NotificationSent/Failed go out at once
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self.contact_backoff_cap = contact_backoff_cap
        self._planner_wake: asyncio.Event | None = None
        self._lane_wakes: dict[str, asyncio.Event] = {}
        self._planner_backoff: dict[str, tuple[float, int]] = {}
        self.outcomes: dict[str, int] = {}
        metrics.channels_enabled(app.channels)  # every channel's series from the start, at 0

    def wake(self) -> None:
        """New notices were saved (the inbox) or preferences changed: plan now rather than at the next poll."""
        if self._planner_wake is not None:
            self._planner_wake.set()

    def loops(self) -> list[Callable[[asyncio.Event], object]]:
        loops: list[Callable[[asyncio.Event], object]] = [self.planner]
        for channel in self.app.channels:
            async def lane(stop: asyncio.Event, channel: str = channel) -> None:
                await self.lane(channel, stop)

            lane.__name__ = f"lane_{channel}"
            loops.append(lane)
        return loops

    async def _idle(self, stop: asyncio.Event, wake: asyncio.Event) -> None:
        wake.clear()
        stop_wait = asyncio.ensure_future(stop.wait())
        wake_wait = asyncio.ensure_future(wake.wait())
        try:
            await asyncio.wait({stop_wait, wake_wait}, timeout=self.poll_seconds,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop_wait.cancel()
            wake_wait.cancel()

    def _count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    # ---- planner ---------------------------------------------------------------------------------
    async def planner(self, stop: asyncio.Event) -> None:
        wake = self._planner_wake = asyncio.Event()
        while not stop.is_set():
            try:
                await self.plan_once()
            except Exception:
                log.exception("planning failed; will retry")
            await self._idle(stop, wake)

    async def plan_once(self) -> int:
        await asyncio.to_thread(self.app.projector.catch_up)
        now = time.monotonic()
        pending = [n for n in await asyncio.to_thread(self.app.delivery_log.new_notices, 200)
                   if self._planner_backoff.get(n, (0.0, 0))[0] <= now]
        if not pending:
            return 0
        gate = asyncio.Semaphore(self.concurrency)

        async def one(notice_id: str) -> None:
            async with gate:
                try:
                    outcome = await asyncio.to_thread(self.app.plan, notice_id)
                except ContactUnavailable as exc:
                    _, failures = self._planner_backoff.get(notice_id, (0.0, 0))
                    delay = min(self.contact_backoff_cap, 1.0 * 2 ** failures)
                    self._planner_backoff[notice_id] = (time.monotonic() + delay, failures + 1)
                    log.warning("contact unavailable; planning later", extra={"fields": {
                        "notice_id": notice_id, "error": str(exc), "retry_in_s": delay}})
                    return
                self._planner_backoff.pop(notice_id, None)
                self._count(outcome)

        await asyncio.gather(*(one(n) for n in pending))
        self.on_saved()
        self.wake_lanes()
        return len(pending)

    def wake_lanes(self) -> None:
        for event in self._lane_wakes.values():
            event.set()

    # ---- lanes -------------------------------------------------------------------------------------
    async def lane(self, channel: str, stop: asyncio.Event) -> None:
        wake = self._lane_wakes[channel] = asyncio.Event()
        while not stop.is_set():
            try:
                await self.deliver_once(channel)
            except Exception:
                log.exception("lane failed; will retry", extra={"fields": {"channel": channel}})
            await self._idle(stop, wake)

    async def deliver_once(self, channel: str) -> int:
        await asyncio.to_thread(self.app.projector.catch_up)
        due: list[Due] = await asyncio.to_thread(self.app.delivery_log.due, channel, self.app._now(), 200)
        if not due:
            return 0
        gate = asyncio.Semaphore(self.concurrency)
        replan = False

        async def one(item: Due) -> None:
            nonlocal replan
            async with gate:
                outcome = await asyncio.to_thread(self.app.deliver, item)
                self._count(outcome)
                metrics.notification(channel, outcome)
                replan = replan or outcome == "failed"

        results = await asyncio.gather(*(one(d) for d in due), return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                log.error("delivery raised", exc_info=result, extra={"fields": {"channel": channel}})
        self.on_saved()
        if replan:  # a channel given up: the notice is new again, for its next channel
            self.wake()
        return len(due)
