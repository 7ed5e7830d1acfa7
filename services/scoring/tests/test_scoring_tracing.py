"""Live folding runs each record under a consumer span, the child of its `traceparent` header, and remembers it by
the record's event id (`ce_id`), so the points entries the fact causes are published in the same trace. A record
without the header, or with a malformed one, is folded in a trace of its own."""

from __future__ import annotations

from collections import OrderedDict
from types import SimpleNamespace
from typing import Any

from aiokafka import ConsumerRecord
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sandan_eventbus import tracing
from sandan_scoring.engine import Scorer

STORED = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def record(offset: int, headers: list[tuple[str, bytes]]) -> ConsumerRecord[Any, Any]:
    return ConsumerRecord(topic="dispatch.orders.v1", partition=0, offset=offset, timestamp=0, timestamp_type=0,
                          key=b"k", value=b"{}", checksum=None, serialized_key_size=1, serialized_value_size=2,
                          headers=tuple(headers))


def test_live_records_get_consumer_spans_in_their_producers_trace() -> None:
    provider = tracing.setup("scoring-test")
    exporter = InMemorySpanExporter()
    if provider is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    scorer: Any = SimpleNamespace(trace_headers=OrderedDict())
    records = [record(0, [("ce_id", b"dispatch:1"), ("traceparent", STORED.encode())]),
               record(1, [("ce_id", b"dispatch:2"), ("traceparent", b"00-garbage")]),
               record(2, [("ce_id", b"dispatch:3")])]
    spans = Scorer._traced(scorer, records)
    for span in spans:
        span.end()
    exporter.shutdown()
    followed = scorer.trace_headers["dispatch:1"]["traceparent"]
    assert followed.split("-")[1] == STORED.split("-")[1]
    if provider is not None:  # with the SDK: the consumer span is a child, and the others start traces of their own
        assert followed != STORED
        assert {"dispatch:2", "dispatch:3"} <= set(scorer.trace_headers)
        assert scorer.trace_headers["dispatch:2"]["traceparent"].split("-")[1] != STORED.split("-")[1]
