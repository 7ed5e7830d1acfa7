"""One demand followed by its OpenTelemetry trace through real processes on the real broker: the caller's trace
id travels in gRPC metadata to intake (its log line for PostDemand carries it), in the `traceparent` header of the
DemandPosted record, into dispatch's consumer (its log line for opening the order carries it) and onto the
OrderOpened record's header. The business correlation id travels beside it, unchanged."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from sandan_contracts.rpc import intake_pb2 as ipb
from tests.integration.conftest import Stack
from tests.integration.scenario import a_community, order_for

pytestmark = pytest.mark.kafka


def trace_id_of(headers: dict[str, str]) -> str:
    version, trace_id, span_id, flags = headers["traceparent"].split("-")
    assert version == "00" and len(span_id) == 16 and len(flags) == 2
    return trace_id


async def log_line(path: Path, msg: str, field: str, value: str, timeout: float = 30) -> dict[str, Any]:
    """The JSON log line with `msg` whose `field` is `value`, once the service has written it."""
    deadline = time.monotonic() + timeout
    while True:
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            entry = json.loads(line)
            if entry.get("msg") == msg and entry.get(field) == value:
                return entry
        if time.monotonic() > deadline:
            raise AssertionError(f"no log line {msg!r} with {field}={value!r} in {path}")
        await asyncio.sleep(0.2)


async def test_a_demand_keeps_its_trace_id_from_the_call_through_intake_and_the_broker_into_dispatch(
        stack: Stack) -> None:
    c = await a_community(stack, members=1)
    trace_id, correlation_id = secrets.token_hex(16), uuid.uuid4().hex
    # the caller's own trace (a gateway, a hotline desk): the shipped channel sends it as `traceparent`
    caller = SpanContext(int(trace_id, 16), int(secrets.token_hex(8), 16), is_remote=False,
                         trace_flags=TraceFlags(TraceFlags.SAMPLED))
    with trace.use_span(NonRecordingSpan(caller)):
        demand = await stack.intake_stub(c.grid_worker).PostDemand(ipb.PostDemandRequest(
            client_request_id=uuid.uuid4().hex, resident_id=c.resident_id, community_id=c.community_id,
            grid_id=c.grid_id, menu_item_id=c.item_id, description="每周送降压药上门", urgency="normal",
            channel="hotline"), metadata=(("x-correlation-id", correlation_id),))

    # intake: the log line for the call, and the record its relay published
    posted = await log_line(stack.workdir / "intake.log", "demand posted", "demand_id", demand.demand_id)
    assert posted["service"] == "intake" and posted["trace_id"] == trace_id and len(posted["span_id"]) == 16
    assert posted["correlation_id"] == correlation_id
    fact = (await stack.read("intake.demands.v1", demand.demand_id, 1))[0]
    assert fact.envelope is not None and fact.envelope.type == "DemandPosted"
    assert trace_id_of(fact.headers) == trace_id and fact.envelope.correlation_id == correlation_id

    # dispatch: the consumer's log line for opening the order, and the order's own record
    order = await order_for(stack, c, demand.demand_id)
    opened = await log_line(stack.workdir / "dispatch.log", "opening the order", "demand_id", demand.demand_id)
    assert opened["service"] == "dispatch" and opened["trace_id"] == trace_id
    assert opened["order_id"] == order.order_id and opened["correlation_id"] == correlation_id
    first = (await stack.read("dispatch.orders.v1", order.order_id, 1))[0]
    assert first.envelope is not None and first.envelope.type == "OrderOpened"
    assert trace_id_of(first.headers) == trace_id and first.envelope.correlation_id == correlation_id
    # each hop is a span of its own: the headers name different spans of the same trace
    assert fact.headers["traceparent"] != first.headers["traceparent"]
