"""OpenTelemetry traces across the boundaries, without a broker: a gRPC call (client span, `traceparent` in
metadata, server span) → the event it stores (the context stored beside it) → the relay (a producer span, the
`traceparent` record header) → a consumer (its span the child of the header) → the event that one stores: one
trace id end to end. A record without the header, or with a malformed one, is applied as any other. Log lines name
the service and carry the trace and span ids. Spans are read from the SDK's InMemorySpanExporter."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from aiokafka import ConsumerRecord
from eventsourcing.domain import Aggregate, event
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from sandan_contracts import encode
from sandan_contracts.envelope import Envelope
from sandan_contracts.events import DemandWithdrawn, Event
from sandan_eventbus import channels, rpc, tracing
from sandan_eventbus.config import ConfigError
from sandan_eventbus.inbox import Inbox, Outcome
from sandan_eventbus.logs import JsonFormatter
from sandan_eventbus.relay import Relay
from sandan_eventbus.store import ServiceApplication
from sandan_eventbus.trace import TracingMapper

TOPIC = "intake.demands.v1"
METHOD = "/sandan.test.v1.Traced/Post"


class Note(Aggregate):
    @event("Written")
    def __init__(self, demand_id: str) -> None:
        self.demand_id = demand_id


class CallerApp(ServiceApplication):
    name = "tracedcaller"


class ConsumerApp(ServiceApplication):
    name = "tracedconsumer"


def to_contract(e: Any) -> Event | None:
    if type(e).__qualname__ == "Note.Written":
        return DemandWithdrawn(demand_id=e.demand_id, reason="traced")
    return None


class FakeBroker:
    def __init__(self) -> None:
        self.published: list[tuple[str, bytes, dict[str, str]]] = []

    async def publish(self, value: bytes, topic: str, *, key: bytes | None = None,
                      headers: dict[str, str] | None = None, no_confirm: bool = False, **_: Any) -> Any:
        self.published.append((topic, value, headers or {}))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done if no_confirm else None


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    provider = tracing.setup("tracing-test")  # the process's provider (the SDK's, installed once)
    if provider is None:
        pytest.skip("OTEL_SDK_DISABLED is set")
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()  # later tests' spans are not kept


def record(value: bytes, headers: list[tuple[str, bytes]], offset: int = 0) -> ConsumerRecord[Any, Any]:
    return ConsumerRecord(topic=TOPIC, partition=0, offset=offset, timestamp=0, timestamp_type=0, key=b"k",
                          value=value, checksum=None, serialized_key_size=1, serialized_value_size=len(value),
                          headers=tuple(headers))


def fact(demand_id: str, n: int) -> bytes:
    return encode(DemandWithdrawn(demand_id=demand_id, reason="x"), event_id=f"intake:{n}", producer="intake",
                  occurred_at=datetime.now(UTC), correlation_id="walk", causation_id=None)


def stored_traces(app: ServiceApplication) -> list[Any]:
    mapper = app.mapper
    assert isinstance(mapper, TracingMapper)
    return [mapper.trace_of(n) for n in app.recorder.select_notifications(start=1, limit=100)]


def trace_id(traceparent: str | None) -> str:
    assert traceparent is not None
    return traceparent.split("-")[1]


def consumer(app: ConsumerApp) -> Inbox:
    def handler(envelope: Envelope, fact: Event) -> list[Any]:
        assert isinstance(fact, DemandWithdrawn)
        return [Note(fact.demand_id)]

    return Inbox(app, FakeBroker(), "traced", {TOPIC: handler}, backoff_seconds=0.01,  # type: ignore[arg-type]
                 max_backoff_seconds=0.05, hold_seconds=5.0)


async def test_one_trace_from_the_grpc_call_through_the_store_and_the_relay_to_the_consumer(
        spans: InMemorySpanExporter, tmp_path: Any) -> None:
    spans.clear()
    caller = CallerApp(f"sqlite:///{tmp_path}/caller.db")

    def post(demand_id: str) -> None:
        caller.save(Note(demand_id))

    async def handle(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        await rpc.call(context, post, request.decode())
        return b"ok"

    server = grpc.aio.server(interceptors=[tracing.server_interceptor()])
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("sandan.test.v1.Traced", {
        "Post": grpc.unary_unary_rpc_method_handler(handle)})])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with channels.aio_channel(f"127.0.0.1:{port}") as channel:
            with tracing.tracer().start_as_current_span("the resident's request") as root:
                await channel.unary_unary(METHOD)(b"d-traced", metadata=[(rpc.CORRELATION_HEADER, "walk-1")])
        # a blocking channel (notify calling intake from a worker thread) carries it too
        with tracing.tracer().start_as_current_span("a look-up") as lookup, \
                channels.channel(f"127.0.0.1:{port}") as blocking:
            await asyncio.to_thread(blocking.unary_unary(METHOD), b"d-looked-up")
    finally:
        await server.stop(None)
    the_trace = format(root.get_span_context().trace_id, "032x")

    # the server span is the child of the client span, in the caller's trace
    server_spans = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert [s.name for s in server_spans] == [METHOD, METHOD]
    assert server_spans[0].context.trace_id == root.get_span_context().trace_id
    assert server_spans[1].context.trace_id == lookup.get_span_context().trace_id
    client = next(s for s in spans.get_finished_spans() if s.kind is SpanKind.CLIENT)
    assert server_spans[0].parent is not None and server_spans[0].parent.span_id == client.context.span_id

    # the stored event carries the server span's context beside the correlation id
    first, _ = stored_traces(caller)
    assert first.correlation_id == "walk-1"
    assert trace_id(first.traceparent) == the_trace
    assert first.traceparent.split("-")[2] == format(server_spans[0].context.span_id, "016x")

    # the relay publishes it as the child of that span: the record's traceparent header
    broker = FakeBroker()
    assert await Relay(caller, broker, to_contract).publish_once() == 2  # type: ignore[arg-type]
    topic, value, headers = broker.published[0]
    assert topic == TOPIC and trace_id(headers["traceparent"]) == the_trace
    assert json.loads(value)["correlation_id"] == "walk-1"  # the business id beside it, in the value as before
    producer = next(s for s in spans.get_finished_spans() if s.kind is SpanKind.PRODUCER
                    and s.context.trace_id == root.get_span_context().trace_id)
    assert producer.parent is not None and producer.parent.span_id == server_spans[0].context.span_id
    assert headers["traceparent"].split("-")[2] == format(producer.context.span_id, "016x")

    # the consumer's span is the child of the header; what it stores carries it on
    app = ConsumerApp(f"sqlite:///{tmp_path}/consumer.db")
    wire = [(k, v.encode()) for k, v in headers.items()]
    assert await consumer(app).receive(TOPIC, record(value, wire)) is Outcome.APPLIED
    consumed = next(s for s in spans.get_finished_spans() if s.kind is SpanKind.CONSUMER)
    assert consumed.name == f"{TOPIC} process" and consumed.context.trace_id == root.get_span_context().trace_id
    assert consumed.parent is not None and consumed.parent.span_id == producer.context.span_id
    assert consumed.attributes is not None and consumed.attributes["sandan.outcome"] == "applied"
    (downstream,) = stored_traces(app)
    assert trace_id(downstream.traceparent) == the_trace and downstream.correlation_id == "walk-1"


@pytest.mark.parametrize("headers", [
    [],  # published by something that does not trace
    [("traceparent", b"00-not-a-trace-01")],
    [("traceparent", b"00-00000000000000000000000000000000-0000000000000000-01")],  # the invalid all-zero ids
    [("traceparent", b"\xff\xfe garbage"), ("tracestate", b"\x00")],
    [("traceparent", b"x" * 10_000)],
], ids=["absent", "malformed", "zero-ids", "undecodable", "huge"])
async def test_a_record_without_a_usable_traceparent_is_applied_in_a_trace_of_its_own(
        spans: InMemorySpanExporter, tmp_path: Any, headers: list[tuple[str, bytes]]) -> None:
    spans.clear()
    app = ConsumerApp(f"sqlite:///{tmp_path}/consumer.db")
    inbox = consumer(app)
    assert await inbox.receive(TOPIC, record(fact("d-untraced", 1), [("type", b"DemandWithdrawn"), *headers])) \
        is Outcome.APPLIED
    assert inbox.dead_lettered == 0
    (consumed,) = [s for s in spans.get_finished_spans() if s.kind is SpanKind.CONSUMER]
    assert consumed.parent is None and consumed.context.is_valid  # a new trace, not an error
    (stored,) = stored_traces(app)
    assert trace_id(stored.traceparent) == format(consumed.context.trace_id, "032x")


def test_log_lines_name_the_service_and_carry_the_current_trace(spans: InMemorySpanExporter) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("intake"))
    log = logging.getLogger("sandan_test_tracing_logs")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("outside any span")
        with tracing.tracer().start_as_current_span("inside") as span:
            log.warning("inside a span")
    finally:
        log.removeHandler(handler)
    outside, inside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert outside["service"] == inside["service"] == "intake"
    assert "trace_id" not in outside and "span_id" not in outside
    assert inside["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert inside["span_id"] == format(span.get_span_context().span_id, "016x")


def test_nothing_is_exported_unless_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                 "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"):
        monkeypatch.delenv(name, raising=False)
    assert tracing.exporters() == []
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert [type(e).__name__ for e in tracing.exporters()] == ["OTLPSpanExporter"]
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert tracing.exporters() == []
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console,otlp")
    assert [type(e).__name__ for e in tracing.exporters()] == ["ConsoleSpanExporter", "OTLPSpanExporter"]
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    with pytest.raises(ConfigError, match="OTEL_TRACES_EXPORTER"):
        tracing.exporters()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    with pytest.raises(ConfigError, match="OTEL_EXPORTER_OTLP_PROTOCOL"):
        tracing.exporters()


def test_without_the_sdk_the_stored_context_still_passes_through() -> None:
    """The API alone (OTEL_SDK_DISABLED): the relay's span is the stored one, so the header is unchanged."""
    stored = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    span = trace.NoOpTracer().start_span("publish", context=tracing.context_from({"traceparent": stored}))
    assert tracing.kafka_headers(span) == {"traceparent": stored}
