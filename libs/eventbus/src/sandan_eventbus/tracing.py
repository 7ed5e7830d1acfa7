"""OpenTelemetry traces: one demand followed from the gRPC call through every service and back.

The W3C trace context (`traceparent`, `tracestate`) travels
- in gRPC metadata: a server span for every call (`server_interceptor`, outermost in the runtime's chain; health
  checks are left out), and client spans that inject it on the calls a service makes (`sandan_eventbus.channels`);
- through the event store: `TracingMapper` stores the context current when an event is saved beside its
  correlation id (`sandan_eventbus.trace`), so it survives the outbox;
- in Kafka record headers: the relay starts a producer span as the child of the stored context and injects it
  (`kafka_headers`); consumers extract it and run the message under a consumer span, its child (`consuming`).
  A record without the header starts a new trace; a malformed header is ignored (never a dead letter).

`correlation_id` stays the business id beside it (in the envelope and in every log line).

Export (`setup`, once per process, by the runtime): the standard variables. `OTEL_TRACES_EXPORTER` (`otlp`,
`console`, `none`; comma-separated) — unset, spans go to OTLP only when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, and nowhere otherwise. OTLP is HTTP/protobuf (the exporter reads its
own `OTEL_EXPORTER_OTLP_*` variables: endpoint, headers, timeout, certificate). `OTEL_SERVICE_NAME` overrides the
service's name in the spans' resource; `OTEL_SDK_DISABLED=true` turns the SDK off (the context still passes
through, unchanged). With no exporter, spans are still given ids (log lines and stored events carry them) and
are dropped when they end: nothing is sent, no error, a few microseconds per span.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from sandan_eventbus.config import ConfigError

log = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
MAX_HEADER = 512  # a tracestate longer than this is dropped (W3C allows 32 members of about 256 characters)
TRACER = "sandan_eventbus"
HEALTH_SERVICE = "grpc.health.v1.Health"

_propagator = TraceContextTextMapPropagator()
_provider: TracerProvider | None = None


# ---- setup -------------------------------------------------------------------------------------------------
def _env(name: str) -> str:
    return os.environ.get(name, "").strip()


def exporter_names() -> list[str]:
    """Which exporters the environment asks for (see the module docstring)."""
    raw = _env("OTEL_TRACES_EXPORTER").lower()
    if not raw:
        configured = _env("OTEL_EXPORTER_OTLP_ENDPOINT") or _env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        return ["otlp"] if configured else []
    names = [n.strip() for n in raw.split(",") if n.strip() and n.strip() != "none"]
    for name in names:
        if name not in ("otlp", "console"):
            raise ConfigError(f"environment variable OTEL_TRACES_EXPORTER: unknown exporter {name!r} "
                              "(otlp, console or none)")
    return names


def _one_line(span: ReadableSpan) -> str:
    return span.to_json(indent=None) + os.linesep


def exporters() -> list[SpanExporter]:
    out: list[SpanExporter] = []
    for name in exporter_names():
        if name == "console":  # one JSON object a line on stdout (the logs are on stderr)
            out.append(ConsoleSpanExporter(out=sys.stdout, formatter=_one_line))
            continue
        for variable in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
            protocol = _env(variable)
            if protocol and protocol != "http/protobuf":
                raise ConfigError(f"environment variable {variable}: only http/protobuf is supported, got "
                                  f"{protocol!r}")
            if protocol:
                break
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        out.append(OTLPSpanExporter())
    return out


def setup(service: str) -> TracerProvider | None:
    """Install the SDK's tracer provider once per process (the first caller names the service) and return it;
    None when `OTEL_SDK_DISABLED` is true. A provider installed before (a test's) is kept and returned.
    Raises ConfigError for an exporter or protocol it does not know."""
    global _provider
    if _provider is not None:
        return _provider
    if _env("OTEL_SDK_DISABLED").lower() == "true":
        return None
    existing = trace.get_tracer_provider()
    if isinstance(existing, TracerProvider):
        _provider = existing
        return existing
    chosen = exporters()
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: _env("OTEL_SERVICE_NAME") or service}))
    for exporter in chosen:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _provider = provider
    if chosen:
        log.info("traces exported", extra={"fields": {"exporters": exporter_names()}})
    return provider


def flush(timeout_millis: int = 2000) -> None:
    """Send what the exporters hold (at shutdown; the SDK also does it at exit)."""
    if _provider is not None:
        _provider.force_flush(timeout_millis)


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER)


# ---- gRPC --------------------------------------------------------------------------------------------------
def _not_health(details: Any) -> bool:
    method = getattr(details, "method", None) or getattr(details, "full_method", None) or ""
    if isinstance(method, bytes):
        method = method.decode(errors="replace")
    return not str(method).lstrip("/").startswith(HEALTH_SERVICE + "/")


def server_interceptor() -> grpc.aio.ServerInterceptor:
    """A server span per call, the child of the caller's `traceparent` (metadata); health checks left out."""
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    interceptor: grpc.aio.ServerInterceptor = aio_server_interceptor(filter_=_not_health)
    return interceptor


def intercept_channel(channel: grpc.Channel) -> grpc.Channel:
    """A blocking channel whose calls run under client spans and carry the current context in metadata."""
    from opentelemetry.instrumentation.grpc import client_interceptor
    from opentelemetry.instrumentation.grpc.grpcext import intercept_channel as intercepted

    result: grpc.Channel = intercepted(channel, client_interceptor(filter_=_not_health))
    return result


def aio_client_interceptors() -> list[Any]:
    """The same for asyncio channels (one interceptor per kind of call)."""
    from opentelemetry.instrumentation.grpc import aio_client_interceptors as interceptors

    result: list[Any] = interceptors(filter_=_not_health)
    return result


# ---- the event store and Kafka ---------------------------------------------------------------------------
def current_context() -> tuple[str | None, str | None]:
    """The current span's (traceparent, tracestate), or (None, None) without a valid span."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get(TRACEPARENT), carrier.get(TRACESTATE) or None


def _decoded(value: Any) -> str | None:
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    return value if isinstance(value, str) and len(value) <= MAX_HEADER else None


def context_from(headers: Iterable[tuple[str, Any]] | Mapping[str, Any] | None) -> otel_context.Context:
    """The remote context that record headers (or gRPC metadata) carry; an empty context when they carry none or
    a malformed one. Never raises."""
    carrier: dict[str, str] = {}
    try:
        items = headers.items() if isinstance(headers, Mapping) else (headers or ())
        for key, value in items:
            name = key.lower() if isinstance(key, str) else ""
            if name in (TRACEPARENT, TRACESTATE) and (text := _decoded(value)) is not None:
                carrier[name] = text
        return _propagator.extract(carrier) if TRACEPARENT in carrier else otel_context.Context()
    except Exception:  # a header no propagator can read is no reason to refuse the message
        return otel_context.Context()


def _stored_context(traceparent: str | None, tracestate: str | None) -> otel_context.Context:
    if not traceparent:
        return otel_context.Context()
    return context_from({TRACEPARENT: traceparent, **({TRACESTATE: tracestate} if tracestate else {})})


def _messaging(topic: str, operation: str, **more: Any) -> dict[str, Any]:
    attributes = {"messaging.system": "kafka", "messaging.destination.name": topic,
                  "messaging.operation.type": operation}
    attributes.update({f"messaging.{k}": v for k, v in more.items() if v is not None})
    return attributes


def producer_span(topic: str, traceparent: str | None, tracestate: str | None, *,
                  event_id: str, correlation_id: str | None) -> Span:
    """The relay's span for publishing one stored event: the child of the context stored with it (a new trace
    for events stored without one). The caller ends it."""
    return tracer().start_span(
        f"{topic} publish", context=_stored_context(traceparent, tracestate), kind=SpanKind.PRODUCER,
        attributes={**_messaging(topic, "send", message_id=event_id),
                    **({"sandan.correlation_id": correlation_id} if correlation_id else {})})


def kafka_headers(span: Span) -> dict[str, str]:
    """The `traceparent` (and `tracestate`) headers naming `span` (nothing for an invalid span)."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, context=trace.set_span_in_context(span))
    return carrier


def consumer_span(topic: str, headers: Iterable[tuple[str, Any]] | None, *, group: str | None = None,
                  partition: int | None = None, offset: int | None = None) -> Span:
    """A consumer span for one record, the child of the context its headers carry (a new trace when they carry
    none, or a malformed one). Not made current; the caller ends it (`consuming` does both)."""
    attributes = _messaging(topic, "process", **{"consumer.group.name": group,
                                                 "destination.partition.id": None if partition is None
                                                 else str(partition),
                                                 "kafka.offset": offset})
    return tracer().start_span(f"{topic} process", context=context_from(headers), kind=SpanKind.CONSUMER,
                               attributes=attributes)


@contextmanager
def consuming(topic: str, headers: Iterable[tuple[str, Any]] | None, *, group: str | None = None,
              partition: int | None = None, offset: int | None = None) -> Iterator[Span]:
    """Run one consumed record under its consumer span (`consumer_span`), current meanwhile."""
    span = consumer_span(topic, headers, group=group, partition=partition, offset=offset)
    with trace.use_span(span, end_on_exit=True):
        yield span


@contextmanager
def resumed(name: str, traceparent: str | None, tracestate: str | None = None,
            **attributes: str) -> Iterator[Span]:
    """Work taken up later from what was stored (e.g. a planned delivery) as a child of the context stored with
    it: a new trace when none was stored."""
    with tracer().start_as_current_span(name, context=_stored_context(traceparent, tracestate),
                                        attributes=attributes) as span:
        yield span


def ids() -> tuple[str, str] | None:
    """The current span's (trace id, span id) in hex, for log lines; None without a valid span."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")
