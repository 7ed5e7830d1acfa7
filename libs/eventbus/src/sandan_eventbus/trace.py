"""Correlation and causation ids, and who acted, carried from a gRPC call or a consumed event onto the events
it causes.

The W3C trace context (`traceparent`, `tracestate`) of the span current when an event is saved is stored beside
them, so the relay can publish the event as that span's child (`sandan_eventbus.tracing`).

The domain never sees them: the application runs a command inside `traced(...)` (and, for a call, as the
caller's principal: `sandan_eventbus.auth.acting_as`), and `TracingMapper` stores the trace and the actor beside
each event's state in the event store, where the relay and the audit trail find them. Internal work (a consumer
reacting to a fact, a sweep) records no actor: its cause is the causation id.
"""

from __future__ import annotations

import contextvars
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import Mapper, StoredEvent

from sandan_eventbus import tracing
from sandan_eventbus.auth.principal import current as current_principal
from sandan_eventbus.auth.principal import on_behalf_of

_TRACE_KEY = "__trace__"


@dataclass(frozen=True)
class Actor:
    """Who caused a stored event: the token's subject (opaque), the role the call was allowed under, and the
    resident a worker or secretary acted for (residents served by a hotline or a grid worker need no account)."""

    subject: str
    role: str
    on_behalf_of: str | None = None


@dataclass(frozen=True)
class Trace:
    correlation_id: str
    causation_id: str | None = None
    actor: Actor | None = None
    traceparent: str | None = None  # the OpenTelemetry span current when the event was stored
    tracestate: str | None = None


def current_actor() -> Actor | None:
    principal = current_principal()
    if principal.is_system:
        return None
    return Actor(principal.subject, principal.acting_role, on_behalf_of())


_current: contextvars.ContextVar[Trace | None] = contextvars.ContextVar("sandan_trace", default=None)


def current() -> Trace | None:
    return _current.get()


def new_correlation_id() -> str:
    return uuid.uuid4().hex


@contextmanager
def traced(correlation_id: str | None, causation_id: str | None = None) -> Iterator[Trace]:
    trace = Trace(correlation_id or new_correlation_id(), causation_id)
    token = _current.set(trace)
    try:
        yield trace
    finally:
        _current.reset(token)


class TracingMapper(Mapper[Any]):
    """Adds the current trace to each stored event's state; strips it again when reading.

    Only for uncompressed, unencrypted JSON stores (sandan's configuration).
    """

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        stored = super().to_stored_event(domain_event)
        trace, actor = current(), current_actor()
        traceparent, tracestate = tracing.current_context()
        if trace is None and actor is None and traceparent is None:
            return stored
        if trace is None:  # a person (or a traced span) outside a traced call still leaves their mark
            trace = Trace(new_correlation_id())
        state = self.transcoder.decode(stored.state)
        state[_TRACE_KEY] = {"c": trace.correlation_id, "k": trace.causation_id}
        if actor is not None:
            state[_TRACE_KEY]["a"] = {"s": actor.subject, "r": actor.role, "b": actor.on_behalf_of}
        if traceparent is not None:
            state[_TRACE_KEY]["t"] = traceparent
            if tracestate:
                state[_TRACE_KEY]["ts"] = tracestate
        return StoredEvent(stored.originator_id, stored.originator_version, stored.topic,
                           self.transcoder.encode(state))

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        state = self.transcoder.decode(stored_event.state)
        if _TRACE_KEY in state:
            del state[_TRACE_KEY]
            stored_event = StoredEvent(stored_event.originator_id, stored_event.originator_version,
                                       stored_event.topic, self.transcoder.encode(state))
        return super().to_domain_event(stored_event)

    def trace_of(self, stored_event: StoredEvent) -> Trace | None:
        raw = json.loads(stored_event.state).get(_TRACE_KEY)
        if not raw:
            return None
        actor = raw.get("a")  # absent in events stored before actors were recorded
        return Trace(raw["c"], raw.get("k"), Actor(actor["s"], actor["r"], actor.get("b")) if actor else None,
                     raw.get("t"), raw.get("ts"))
