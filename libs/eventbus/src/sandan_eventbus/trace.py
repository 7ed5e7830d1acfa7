"""Correlation and causation ids, carried from a gRPC call or a consumed event onto the events it causes.

The domain never sees them: the application runs a command inside `traced(...)`, and `TracingMapper`
stores the current trace beside each event's state in the event store, where the relay finds it.
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

_TRACE_KEY = "__trace__"


@dataclass(frozen=True)
class Trace:
    correlation_id: str
    causation_id: str | None = None


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
        trace = current()
        if trace is None:
            return stored
        state = self.transcoder.decode(stored.state)
        state[_TRACE_KEY] = {"c": trace.correlation_id, "k": trace.causation_id}
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
        return Trace(raw["c"], raw.get("k")) if raw else None
