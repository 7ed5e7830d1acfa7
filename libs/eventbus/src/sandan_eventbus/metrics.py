"""Prometheus metrics of every service, in one place: what is measured, under which names and labels.

The runtime serves them on their own HTTP port, `<SERVICE>_METRICS_PORT` (e.g. INTAKE_METRICS_PORT=9464; unset,
empty or 0: no metrics server), at `/metrics`, and installs `GrpcMetrics` as the outermost gRPC interceptor; the
inbox, the relay, scoring, notify and dispatch report through the functions below.

| metric | type | labels | what |
| --- | --- | --- | --- |
| grpc_server_handled_total | counter | grpc_service, grpc_method, grpc_type, grpc_code | calls finished |
| grpc_server_handling_seconds | histogram | grpc_service, grpc_method, grpc_type, grpc_code | how long they took |
| sandan_inbox_messages_total | counter | topic, outcome | messages consumed, by outcome |
| sandan_inbox_lag_messages | gauge | group, topic, partition | records behind the partition's end (see below) |
| sandan_inbox_last_applied_timestamp_seconds | gauge | group, topic, partition | the last applied record's time |
| sandan_dead_letters_total | counter | topic, reason | dead letters published, by source topic |
| sandan_relay_backlog_events | gauge | | stored events not yet published |
| sandan_relay_publish_seconds | histogram | | one batch: read, publish (acks=all), record |
| sandan_relay_published_total | counter | | events published |
| sandan_relay_set_aside_events | gauge | service | events set aside (not publishable; the rest flowed), not re-driven |
| sandan_notifications_total | counter | channel, outcome | sends: sent, retrying, failed (given up) |
| sandan_scoring_live_lag_messages | gauge | topic, partition | records live folding has yet to read |
| sandan_scoring_last_rebuild_seconds | gauge | | duration of the last rebuild (0: none since start) |
| sandan_orders_open / _overdue / _escalated / _completed | gauge | community | dispatch's orders now |
| sandan_ratings / sandan_rating_stars | gauge | community | residents' ratings seen and their stars' sum |

The lag is set at each message consumed and refreshed every few seconds by the inbox's watchdog (the partition's
end offset minus the group's position: `sandan_eventbus.inbox`), so it rises while a consumer is stuck or slow
instead of keeping its last value; a partition this process no longer consumes (a rebalance) loses its series, so
summing over replicas counts each partition once.

The age of the last applied event is `time() - sandan_inbox_last_applied_timestamp_seconds` (a timestamp, as
Prometheus recommends, rather than an age that goes stale between scrapes).

Labels are bounded and carry nothing personal: method names, status codes, topics, channels, community ids;
never a resident, member, order or demand id, nor a name. The process and platform collectors of
`prometheus_client` come along (memory, CPU, open files).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from threading import Thread
from typing import Any
from wsgiref.simple_server import WSGIServer

import grpc
from prometheus_client import Counter, Gauge, Histogram, start_http_server

from sandan_eventbus.config import ConfigError
from sandan_eventbus.edge import Call, CallGuard, wrap

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
GRPC_LABELS = ("grpc_service", "grpc_method", "grpc_type", "grpc_code")

GRPC_HANDLED = Counter("grpc_server_handled_total", "gRPC calls finished, by method and status code",
                       GRPC_LABELS)
GRPC_SECONDS = Histogram("grpc_server_handling_seconds", "gRPC call duration (a stream: its whole life)",
                         GRPC_LABELS, buckets=LATENCY_BUCKETS)

INBOX_MESSAGES = Counter("sandan_inbox_messages_total", "Messages consumed by the inbox, by outcome",
                         ("topic", "outcome"))
INBOX_LAG = Gauge("sandan_inbox_lag_messages", "Records of a consumed partition behind its end (high watermark)",
                  ("group", "topic", "partition"))
INBOX_LAST_APPLIED = Gauge("sandan_inbox_last_applied_timestamp_seconds",
                           "When the last record applied from a partition was written to Kafka (Unix seconds)",
                           ("group", "topic", "partition"))
DEAD_LETTERS = Counter("sandan_dead_letters_total", "Dead letters published, by source topic and reason",
                       ("topic", "reason"))
DEAD_LETTER_REASONS = ("undecodable", "refused", "failed")

RELAY_BACKLOG = Gauge("sandan_relay_backlog_events", "Events stored but not yet published by the relay")
RELAY_PUBLISH_SECONDS = Histogram("sandan_relay_publish_seconds",
                                  "One relay batch: read from the store, published (acks=all), position recorded",
                                  buckets=LATENCY_BUCKETS)
RELAY_PUBLISHED = Counter("sandan_relay_published_total", "Events published by the relay")
RELAY_SET_ASIDE = Gauge("sandan_relay_set_aside_events",
                        "Events the relay set aside (could not publish them; the rest flowed), not yet re-driven",
                        ("service",))

NOTIFICATIONS = Counter("sandan_notifications_total", "Notification sends by channel and outcome",
                        ("channel", "outcome"))
NOTIFICATION_OUTCOMES = ("sent", "retrying", "failed")

SCORING_LIVE_LAG = Gauge("sandan_scoring_live_lag_messages", "Records scoring's live folding has yet to read",
                         ("topic", "partition"))
SCORING_REBUILD_SECONDS = Gauge("sandan_scoring_last_rebuild_seconds",
                                "How long the last rebuild of the ledger took (0: none since start)")

ORDERS_OPEN = Gauge("sandan_orders_open", "Orders not yet completed or cancelled", ("community",))
ORDERS_OVERDUE = Gauge("sandan_orders_overdue", "Open orders that missed a deadline", ("community",))
ORDERS_ESCALATED = Gauge("sandan_orders_escalated", "Open orders above the community level (town, county)",
                         ("community",))
ORDERS_COMPLETED = Gauge("sandan_orders_completed", "Orders completed (served), all time", ("community",))
RATINGS = Gauge("sandan_ratings", "Residents' ratings of completed services seen by dispatch", ("community",))
RATING_STARS = Gauge("sandan_rating_stars", "Sum of the stars of those ratings (average: stars / ratings)",
                     ("community",))


# ---- the HTTP endpoint ------------------------------------------------------------------------------------
def port_variable(service: str) -> str:
    return f"{service.upper()}_METRICS_PORT"


def port(service: str) -> int:
    """`<SERVICE>_METRICS_PORT`: 0 (unset or empty too) for no metrics server, else 1 to 65535."""
    name = port_variable(service)
    raw = os.environ.get(name, "").strip()
    if not raw:
        return 0
    if not raw.isdigit() or not 0 <= int(raw) <= 65535:
        raise ConfigError(f"environment variable {name} must be a port number (0 for none), got {raw!r}")
    return int(raw)


@dataclass
class MetricsServer:
    server: WSGIServer
    thread: Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(2)


def serve(service: str, at_port: int, address: str = "0.0.0.0") -> MetricsServer | None:
    """Serve /metrics on `at_port` (all interfaces: Prometheus scrapes from elsewhere), None when it is 0."""
    if not at_port:
        return None
    server, thread = start_http_server(at_port, address)
    log.info("metrics served", extra={"fields": {"service": service, "metrics_port": server.server_port}})
    return MetricsServer(server, thread)


# ---- gRPC --------------------------------------------------------------------------------------------------
def _cardinality(handler: grpc.RpcMethodHandler) -> str:
    if handler.unary_unary:
        return "unary"
    if handler.unary_stream:
        return "server_stream"
    if handler.stream_unary:
        return "client_stream"
    return "bidi_stream"


def _code(context: grpc.aio.ServicerContext, default: str) -> str:
    with contextlib.suppress(Exception):
        code = context.code()
        if isinstance(code, grpc.StatusCode):
            return code.name
    return default


class GrpcMetrics(CallGuard):
    """Counts every call and times it by method and status code; outermost, so refusals are counted too."""

    async def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
                                details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None:  # an unknown method: gRPC answers UNIMPLEMENTED, not counted (names are unbounded)
            return handler
        service, _, method = details.method.lstrip("/").partition("/")
        kind = _cardinality(handler)

        @contextlib.asynccontextmanager
        async def around(call: Call) -> AsyncIterator[None]:
            started = time.perf_counter()
            code = "OK"
            try:
                yield
            except asyncio.CancelledError:
                code = "CANCELLED"
                raise
            except BaseException:
                code = _code(call.context, "UNKNOWN")
                code = "UNKNOWN" if code == "OK" else code
                raise
            else:
                code = _code(call.context, "OK")  # a servicer may set a code without raising
            finally:
                labels = (service, method, kind, code)
                GRPC_HANDLED.labels(*labels).inc()
                GRPC_SECONDS.labels(*labels).observe(time.perf_counter() - started)

        return wrap(handler, details.method, around)


# ---- the inbox ---------------------------------------------------------------------------------------------
def inbox_subscribed(topics: Iterable[str]) -> None:
    """Every topic's dead-letter series exist from the start (at 0), so dashboards show them before any."""
    for topic in topics:
        for reason in DEAD_LETTER_REASONS:
            DEAD_LETTERS.labels(topic, reason)


def consumed(group: str, topic: str, record: Any, outcome: str, consumer: Any = None) -> None:
    """One message's outcome; the partition's lag from the consumer's last fetch (its high watermark)."""
    INBOX_MESSAGES.labels(topic, outcome).inc()
    partition = str(record.partition)
    if outcome not in ("held", "dead_lettered") and record.timestamp is not None and record.timestamp > 0:
        INBOX_LAST_APPLIED.labels(group, topic, partition).set(record.timestamp / 1000)
    highwater = _highwater(consumer, topic, record.partition)
    if highwater is not None:
        behind = highwater - (record.offset if outcome == "held" else record.offset + 1)
        INBOX_LAG.labels(group, topic, partition).set(max(behind, 0))
        _lag_series.setdefault((group, topic), set()).add(partition)


# (group, topic) -> the partitions whose lag this process reports
_lag_series: dict[tuple[str, str], set[str]] = {}


def inbox_lag(group: str, topic: str, behind: Mapping[int, int]) -> None:
    """The lag of every partition of `topic` this process consumes now; the others' series are removed."""
    now = {str(partition) for partition in behind}
    for gone in _lag_series.get((group, topic), set()) - now:
        with contextlib.suppress(KeyError):
            INBOX_LAG.remove(group, topic, gone)
    for partition, count in behind.items():
        INBOX_LAG.labels(group, topic, str(partition)).set(max(count, 0))
    _lag_series[(group, topic)] = now


def _highwater(consumer: Any, topic: str, partition: int) -> int | None:
    if consumer is None or not hasattr(consumer, "highwater"):
        return None
    from aiokafka import TopicPartition

    with contextlib.suppress(Exception):  # not assigned any more (a rebalance)
        value = consumer.highwater(TopicPartition(topic, partition))
        return int(value) if value is not None else None
    return None


def dead_lettered(topic: str, error: str) -> None:
    """`error` as the inbox writes it ("undecodable: ...", "refused: ...", "failed 5 times: ...")."""
    reason = error.split(":", 1)[0].split(" ", 1)[0]
    DEAD_LETTERS.labels(topic, reason if reason in DEAD_LETTER_REASONS else "failed").inc()


# ---- the relay ---------------------------------------------------------------------------------------------
def relay_batch(seconds: float, published: int) -> None:
    RELAY_PUBLISH_SECONDS.observe(seconds)
    if published:
        RELAY_PUBLISHED.inc(published)


def relay_backlog(events: int) -> None:
    RELAY_BACKLOG.set(max(events, 0))


def relay_set_aside(service: str, events: int) -> None:
    """`service`: the store's application name (one per process; several only in tests)."""
    RELAY_SET_ASIDE.labels(service).set(max(events, 0))


# ---- notify ------------------------------------------------------------------------------------------------
def channels_enabled(channels: Iterable[str]) -> None:
    for channel in channels:
        for outcome in NOTIFICATION_OUTCOMES:
            NOTIFICATIONS.labels(channel, outcome)


def notification(channel: str, outcome: str) -> None:
    """A send's outcome ("sent", "retrying", "failed"); others (e.g. not due yet) are not sends."""
    if outcome in NOTIFICATION_OUTCOMES:
        NOTIFICATIONS.labels(channel, outcome).inc()


# ---- scoring -----------------------------------------------------------------------------------------------
def scoring_lag(behind: Mapping[tuple[str, int], int]) -> None:
    for (topic, partition), count in behind.items():
        SCORING_LIVE_LAG.labels(topic, str(partition)).set(max(count, 0))


def scoring_rebuilt(seconds: float) -> None:
    SCORING_REBUILD_SECONDS.set(seconds)


# ---- dispatch: the county's pulse --------------------------------------------------------------------------
@dataclass
class Pulse:
    """One community's orders now, from dispatch's read model."""

    open: int = 0
    overdue: int = 0
    escalated: int = 0
    completed: int = 0
    ratings: int = 0
    stars: int = 0


def pulse(communities: Mapping[str, Pulse]) -> None:
    for community, p in communities.items():
        ORDERS_OPEN.labels(community).set(p.open)
        ORDERS_OVERDUE.labels(community).set(p.overdue)
        ORDERS_ESCALATED.labels(community).set(p.escalated)
        ORDERS_COMPLETED.labels(community).set(p.completed)
        RATINGS.labels(community).set(p.ratings)
        RATING_STARS.labels(community).set(p.stars)
