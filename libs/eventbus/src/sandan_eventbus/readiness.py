"""Readiness: whether this service can do its work now, as reported by its parts.

Any part of a service reports into one `Readiness` (`readiness.set("inbox:intake.demands.v1", False,
reason)`, later `set(..., True)`); the service is ready when no part says otherwise. The runtime turns the
overall state into the gRPC health status of "" and of every service name (NOT_SERVING while any part is
down), so a load balancer stops sending work; liveness is a separate health name that stays SERVING.

One log line when the service stops being ready (naming the part and its reason) and one when it is ready
again (with how long it was not), however many parts report in between. Safe to call from any thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

Listener = Callable[[bool], None]


@dataclass(frozen=True)
class Down:
    component: str
    reason: str
    since: float  # time.monotonic()


class Readiness:
    def __init__(self, service: str) -> None:
        self.service = service
        self._down: dict[str, Down] = {}
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._unready_since: float | None = None

    @property
    def ready(self) -> bool:
        with self._lock:
            return not self._down

    def down(self) -> list[Down]:
        """The parts that say "not ready", oldest first."""
        with self._lock:
            return sorted(self._down.values(), key=lambda d: d.since)

    def is_down(self, component: str) -> bool:
        with self._lock:
            return component in self._down

    def listen(self, listener: Listener) -> None:
        """Call `listener(ready)` on every change of the overall state (from the reporting thread)."""
        with self._lock:
            self._listeners.append(listener)

    def set(self, component: str, ready: bool, reason: str = "") -> None:
        now = time.monotonic()
        with self._lock:
            was_ready = not self._down
            if ready:
                if self._down.pop(component, None) is None:
                    return
            elif component in self._down:
                return  # already down: the first reason stands, no new log line
            else:
                self._down[component] = Down(component, reason[:300], now)
            is_ready = not self._down
            listeners = list(self._listeners)
            if was_ready and not is_ready:
                self._unready_since = now
                log.warning("service not ready", extra={"fields": {
                    "service": self.service, "component": component, "reason": reason[:300]}})
            elif is_ready and not was_ready:
                since, self._unready_since = self._unready_since, None
                log.info("service ready again", extra={"fields": {
                    "service": self.service, "component": component,
                    "not_ready_seconds": round(now - since, 1) if since is not None else None}})
            else:
                log.debug("readiness of a part changed", extra={"fields": {
                    "service": self.service, "component": component, "ready": ready}})
        if was_ready != is_ready:
            for listener in listeners:
                listener(is_ready)
