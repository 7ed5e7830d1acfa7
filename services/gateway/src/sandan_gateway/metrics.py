"""Prometheus metrics of the gateway: its HTTP requests, its calls to the services and the live updates.

Served on their own port, `GATEWAY_METRICS_PORT` (0: none), at `/metrics`, never on the public HTTP port.
`__main__.build()` makes the backend a `MeteredBackend` and calls `instrument(app)`; `main()` calls `serve`.

| metric | type | labels | what |
| --- | --- | --- | --- |
| sandan_http_requests_total | counter | method, route, status | requests answered |
| sandan_http_request_seconds | histogram | method, route | how long they took (an event stream: its whole life) |
| grpc_client_handled_total | counter | grpc_service, grpc_method, grpc_code | calls to the services finished |
| grpc_client_handling_seconds | histogram | grpc_service, grpc_method | how long they took |
| sandan_live_streams | gauge | | event streams (SSE) open now |
| sandan_live_updates_total | counter | | updates the live feed handed to the streams |
| sandan_live_ready | gauge | | 1 once the live feed has read its look-back (GATEWAY_LIVE=on only) |
| sandan_live_restarts_total | counter | | times the live feed's consumer failed and restarted (on only) |

`route` is the matched route's template (`/api/v1/demands/{demand_id}`, `/static/{path}` for the files), `other` when no
route matched, so ids never become label values; `method` is one of the HTTP methods or `other`. Nothing names a
person or a session. The gateway keeps its own registry: the services' series of `sandan_eventbus.metrics`
(relay, inbox, ...) mean nothing here. `prometheus_client`'s process, platform and GC collectors come along.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

from fastapi import FastAPI
from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandan_eventbus.config import ConfigError
from sandan_eventbus.metrics import LATENCY_BUCKETS, MetricsServer
from sandan_gateway.backend import Backend, Refused
from sandan_gateway.live import Hub, LiveFeed

log = logging.getLogger(__name__)
R = TypeVar("R")

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "other"

HTTP_REQUESTS = Counter("sandan_http_requests_total", "HTTP requests answered, by method, route template and status",
                        ("method", "route", "status"), registry=REGISTRY)
HTTP_SECONDS = Histogram("sandan_http_request_seconds", "HTTP request duration (an event stream: its whole life)",
                         ("method", "route"), buckets=LATENCY_BUCKETS, registry=REGISTRY)
GRPC_CALLS = Counter("grpc_client_handled_total", "gRPC calls to the services finished, by method and status code",
                     ("grpc_service", "grpc_method", "grpc_code"), registry=REGISTRY)
GRPC_CALL_SECONDS = Histogram("grpc_client_handling_seconds", "gRPC call duration, as the gateway waited for it",
                              ("grpc_service", "grpc_method"), buckets=LATENCY_BUCKETS, registry=REGISTRY)


# ---- HTTP --------------------------------------------------------------------------------------------------
def route_of(scope: Scope, asked: Scope) -> str:
    """The template of the route that answered, `other` when none did. FastAPI records its own routes in the
    scope; a mount (the files) or a plain route is found again among the app's routes, as `asked` (the scope
    before routing changed it) matches them."""
    path = getattr(scope.get("route"), "path_format", None)
    if isinstance(path, str) and path:
        return path
    app = scope.get("app")
    for route in getattr(getattr(app, "router", None), "routes", ()):
        path = getattr(route, "path_format", None)
        if isinstance(path, str) and path and isinstance(route, BaseRoute) and route.matches(asked)[0] != Match.NONE:
            return path
    return UNMATCHED


class HttpMetrics:
    """Counts and times every HTTP request. Plain ASGI (not BaseHTTPMiddleware), so event streams pass through
    untouched; it sits inside Starlette's error middleware, so an unhandled error counts as the 500 it becomes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        asked = dict(scope)
        status = 500  # unless an answer starts

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            method = scope["method"] if scope["method"] in METHODS else UNMATCHED
            route = route_of(scope, asked)
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_SECONDS.labels(method, route).observe(time.perf_counter() - started)


# ---- calls to the services -----------------------------------------------------------------------------------
def rpc_names(method: Any) -> tuple[str, str]:
    """(service, method) of a stub's method: grpc.aio's multi-callables keep the path they call,
    `/sandan.intake.v1.Intake/GetDemand`, in `_method` (no public accessor)."""
    path = getattr(method, "_method", b"")
    if isinstance(path, bytes):
        path = path.decode("ascii", "replace")
    service, _, name = str(path).lstrip("/").partition("/")
    return service or "unknown", name or "unknown"


class MeteredBackend(Backend):
    """The backend, each call counted by its gRPC code and timed (`as_gateway` goes through `call` too)."""

    async def call(self, method: Callable[..., Awaitable[R]], request: Any, token: str,
                   correlation_id: str | None = None) -> R:
        service, name = rpc_names(method)
        started = time.perf_counter()
        code = "OK"
        try:
            return await super().call(method, request, token, correlation_id)
        except Refused as exc:
            code = exc.code.name
            raise
        except asyncio.CancelledError:
            code = "CANCELLED"
            raise
        except BaseException:
            code = "UNKNOWN"
            raise
        finally:
            GRPC_CALLS.labels(service, name, code).inc()
            GRPC_CALL_SECONDS.labels(service, name).observe(time.perf_counter() - started)


# ---- live updates ------------------------------------------------------------------------------------------
class LiveCollector(Collector):
    """Reads the hub and the feed at scrape time (nothing to keep in step). One per registry: `instrument`
    points it at the app's hub and feed (one app per process; in tests, the last one built)."""

    def __init__(self) -> None:
        self.hub: Hub | None = None
        self.feed: LiveFeed | None = None

    def collect(self) -> Iterator[Metric]:
        hub, feed = self.hub, self.feed
        if hub is None:
            return
        yield GaugeMetricFamily("sandan_live_streams", "Event streams (SSE) open now", value=len(hub.subscribers))
        yield CounterMetricFamily("sandan_live_updates_total", "Updates the live feed handed to the streams",
                                  value=hub.delivered)
        if feed is not None:
            yield GaugeMetricFamily("sandan_live_ready", "1 once the live feed has read its look-back and live "
                                                         "facts flow, else 0", value=int(feed.ready.is_set()))
            yield CounterMetricFamily("sandan_live_restarts_total", "Times the live feed's consumer failed and "
                                                                    "started again", value=feed.restarts)


LIVE = LiveCollector()
REGISTRY.register(LIVE)


# ---- wiring ------------------------------------------------------------------------------------------------
def instrument(app: FastAPI) -> None:
    """Measure `app` (as create_app made it, before it starts): its requests, and its hub and feed."""
    app.add_middleware(HttpMetrics)
    LIVE.hub, LIVE.feed = app.state.hub, app.state.feed


def serve(port: int, address: str = "0.0.0.0") -> MetricsServer | None:
    """Serve /metrics on `port` (all interfaces: Prometheus scrapes from elsewhere), None when it is 0."""
    if not port:
        return None
    try:
        server, thread = start_http_server(port, address, registry=REGISTRY)
    except OSError as exc:
        raise ConfigError(f"GATEWAY_METRICS_PORT: cannot listen on {address}:{port}: {exc.strerror}") from None
    log.info("metrics served", extra={"fields": {"metrics_port": server.server_port}})
    return MetricsServer(server, thread)
