"""The audit trail: who did what to one aggregate, and when, in order, read from the service's own event store.

Every stored event a command caused carries its actor (subject, role, on whose behalf; see trace.py); events a
consumer or a sweep caused carry their cause (the causing event's id) instead. Nothing here is personal: actors
are opaque subject ids, and event names say what happened, not what anyone wrote.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from eventsourcing.application import Application

from sandan_eventbus.trace import TracingMapper


@dataclass(frozen=True)
class AuditEntry:
    version: int  # the aggregate's version after this event
    at: datetime
    what: str  # the stored event's name, e.g. "Posted", "AcceptanceRecorded"
    subject: str  # who acted ("" when no person did: then `caused_by` names the fact that caused it)
    role: str
    on_behalf_of: str
    caused_by: str
    correlation_id: str


def history(app: Application, aggregate_id: UUID) -> list[AuditEntry]:
    mapper = app.mapper
    assert isinstance(mapper, TracingMapper)
    out = []
    for stored in app.recorder.select_events(aggregate_id):
        trace = mapper.trace_of(stored)
        actor = trace.actor if trace else None
        out.append(AuditEntry(
            version=stored.originator_version,
            at=mapper.to_domain_event(stored).timestamp,
            what=stored.topic.rsplit(".", 1)[-1],
            subject=actor.subject if actor else "",
            role=actor.role if actor else "",
            on_behalf_of=(actor.on_behalf_of or "") if actor else "",
            caused_by=(trace.causation_id or "") if trace else "",
            correlation_id=trace.correlation_id if trace else "",
        ))
    return out
