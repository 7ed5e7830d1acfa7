"""Work notify takes up later continues the trace of the fact it came from: planning and delivering a notice run
under spans in the consumer's trace (stored with the notice), so the contact look-ups (gRPC calls to intake and
dispatch, which carry the current context) and the outcome published on notify.deliveries.v1 are in it too."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from opentelemetry import trace

from sandan_contracts.events import MemberReported, OrderDispatched, OrderOpened
from sandan_eventbus import tracing
from sandan_eventbus.trace import TracingMapper
from sandan_notify.contacts import Contact


def test_planning_and_delivering_continue_the_facts_trace(h: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    if tracing.setup("notify-test") is None:
        pytest.skip("OTEL_SDK_DISABLED is set")
    h.feed(MemberReported(member_id="m-1", community_id="c-1", unit_id="u-1", grid_id="g-1", teams=[]),
           topic="dispatch.roster.v1")
    h.feed(OrderOpened(order_id="o-1", demand_id="d-1", community_id="c-1", grid_id="g-1", category="medical",
                       urgency="normal", due_at=datetime(2026, 3, 3, tzinfo=UTC)))
    looked_up: list[tuple[str, int]] = []
    lookup = h.app.contacts.lookup

    def traced_lookup(kind: str, ref: str) -> Contact:
        looked_up.append((kind, trace.get_current_span().get_span_context().trace_id))
        return lookup(kind, ref)

    monkeypatch.setattr(h.app.contacts, "lookup", traced_lookup)
    with tracing.tracer().start_as_current_span("consuming OrderDispatched") as consumer:
        h.feed(OrderDispatched(order_id="o-1", demand_id="d-1", member_id="m-1", dispatched_by="branch"))
    h.run()

    the_trace = consumer.get_span_context().trace_id
    assert ("member", the_trace) in looked_up  # planning's and delivering's look-ups of m-1
    assert len([1 for kind, t in looked_up if kind == "member" and t == the_trace]) >= 2
    mapper = h.app.mapper
    assert isinstance(mapper, TracingMapper)
    sent = [mapper.trace_of(n) for n in h.app.recorder.select_notifications(start=1, limit=500)
            if type(mapper.to_domain_event(n)).__qualname__.endswith("Sent")]
    assert sent and all(t is not None and t.traceparent is not None
                        and t.traceparent.split("-")[1] == format(the_trace, "032x") for t in sent)
