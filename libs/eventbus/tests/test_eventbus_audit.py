"""Every stored event a call caused records who acted; the audit trail reads them back in order."""

from __future__ import annotations

from eventsourcing.domain import Aggregate, event

from sandan_eventbus.audit import history
from sandan_eventbus.auth.principal import SYSTEM, Principal, acting_as, acting_for
from sandan_eventbus.store import ServiceApplication
from sandan_eventbus.trace import TracingMapper, traced


class Parcel(Aggregate):
    @event("Sent")
    def __init__(self, to: str) -> None:
        self.to = to

    @event("Delivered")
    def deliver(self) -> None:
        self.delivered = True


class Post(ServiceApplication):
    name = "post"


def test_each_event_records_the_actor_and_whom_they_acted_for_and_internal_work_records_its_cause() -> None:
    app = Post()
    worker = Principal("sub-worker", frozenset({"grid_worker"}), acting_role="grid_worker", community_id="c1")
    with acting_as(worker), traced("corr-1"), acting_for("resident-9"):
        parcel = Parcel(to="somewhere")
        app.save(parcel)
    with acting_as(SYSTEM), traced("corr-1", causation_id="intake:7"):
        parcel.deliver()
        app.save(parcel)

    trail = history(app, parcel.id)
    assert [(e.what, e.subject, e.role, e.on_behalf_of, e.caused_by) for e in trail] == [
        ("Sent", "sub-worker", "grid_worker", "resident-9", ""),
        ("Delivered", "", "", "", "intake:7"),
    ]
    assert [e.version for e in trail] == [1, 2] and trail[0].at <= trail[1].at
    assert all(e.correlation_id == "corr-1" for e in trail)
    # the actor is stored beside the event's state, never inside the domain event
    assert not hasattr(app.repository.get(parcel.id), "__trace__")


def test_events_stored_before_actors_were_recorded_still_read() -> None:
    app = Post()
    mapper = app.mapper
    assert isinstance(mapper, TracingMapper)
    with traced("old"):
        parcel = Parcel(to="x")
        app.save(parcel)
    stored = next(iter(app.recorder.select_events(parcel.id)))
    trace = mapper.trace_of(stored)
    assert trace is not None and trace.actor is None
    assert history(app, parcel.id)[0].subject == ""


def test_a_person_acting_outside_a_traced_call_is_still_recorded() -> None:
    app = Post()
    member = Principal("sub-m", frozenset({"member"}), acting_role="member")
    with acting_as(member):
        parcel = Parcel(to="x")
        app.save(parcel)
    (entry,) = history(app, parcel.id)
    assert (entry.subject, entry.role) == ("sub-m", "member") and entry.correlation_id
