"""Residents' personal data: sealed at rest, erasable, correctable, exportable, shredded after the retention period,
readable through a KEK rotation; each use case on memory, SQLite and PostgreSQL stores.

"At rest" is everything the stores hold: the event store's records and the tables' rows, and for SQLite the raw
bytes of every file in the directory (the database, its -wal and -shm), scanned for the resident's distinctive
name, phone, address, e-mail, openid and texts, as UTF-8 and as JSON escapes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import eventsourcing.domain
import grpc
import pytest
from eventsourcing.persistence import StoredEvent, Tracking
from sqlalchemy import select, text

from sandan_contracts import Envelope, Event
from sandan_contracts.events import DemandTextsShredded, OrderAccepted, ServiceCompleted
from sandan_contracts.rpc import intake_pb2 as pb
from sandan_eventbus.auth.devissuer import LocalIssuer
from sandan_eventbus.auth.principal import PermissionDenied, Principal, acting_as
from sandan_eventbus.errors import FailedPrecondition, InvalidArgument
from sandan_intake.application import IntakeApplication
from sandan_intake.domain import Demand, Resident
from sandan_intake.keys import Keyring, KeyringError, data_keys, demand_key_id, resident_key_id
from sandan_intake.publishing import to_contract
from sandan_intake.residents import ResidentRecord, ResidentStore, residents
from services.intake.tests.support import serving, status_of
from services.intake.tests.test_scope import PLACES

STORES = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
FILE_STORES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]  # reopened with another keyring

NAME, NAME_ZH = "Ouyang Zhenxiu", "欧阳振秀"
PHONE, ADDRESS = "+86 139-7777-4242", "88 Camphor Lane, Building 5"
EMAIL, OPENID = "zhenxiu.ouyang@example.org", "oWx_zhenxiu_4242"
DESCRIPTION = "Burst pipe flooding the kitchen of unit 5-302"
OTHER = "Emergency plumbing at night"
COMMENT = "Arrived within the hour, very kind"
SECRETS = [NAME, NAME_ZH, PHONE, ADDRESS, EMAIL, OPENID, DESCRIPTION, OTHER, COMMENT, "left_behind_child"]


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    kind = getattr(request, "param", "memory")
    if kind == "memory":
        yield "memory://"
    elif kind == "sqlite":
        yield f"sqlite:///{tmp_path}/intake.db"
    else:
        yield request.getfixturevalue("postgres_schema_url")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The application's clock, and the events' timestamps with it (retention compares the two)."""
    clock = Clock(datetime.now(UTC).replace(microsecond=0))
    monkeypatch.setattr(eventsourcing.domain, "datetime_now_with_tzinfo", clock)
    return clock


@pytest.fixture
def keyring() -> Keyring:
    return Keyring.generate("kek-2025")


def open_app(store_url: str, keyring: Keyring, clock: Clock, retention: timedelta = timedelta(days=30)
             ) -> IntakeApplication:
    return IntakeApplication(ResidentStore(store_url, keyring), store_url, clock=clock, retention=retention)


@pytest.fixture
def app(store_url: str, keyring: Keyring, clock: Clock) -> Iterator[IntakeApplication]:
    application = open_app(store_url, keyring, clock)
    yield application
    application.close()


def person(role: str, subject: str, **claims: str) -> Principal:
    return Principal(subject=subject, roles=frozenset({role}), acting_role=role, **claims)


SECRETARY = person("branch_secretary", "sub-sec", community_id="c-1")
WORKER = person("grid_worker", "sub-gw", community_id="c-1")


# ---- helpers ---------------------------------------------------------------------------------------------------
def at_rest(app: IntakeApplication, store_url: str) -> bytes:
    """What the stores hold: the event store's records and every table row; for SQLite, every file's raw bytes."""
    if store_url.startswith("sqlite"):
        directory = Path(store_url.removeprefix("sqlite:///")).parent
        return b"".join(p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file())
    records = [n.state for n in app.recorder.select_notifications(start=1, limit=app.log_section_size)]
    with app.residents.engine.connect() as conn:
        rows = [repr(tuple(r)).encode() for table in (residents, data_keys) for r in conn.execute(select(table))]
    return b"\n".join(records + rows)


def leaked(app: IntakeApplication, store_url: str) -> list[str]:
    raw = at_rest(app, store_url)
    forms = {s: (s.encode(), json.dumps(s).strip('"').encode()) for s in SECRETS}
    return [s for s, encodings in forms.items() if any(e in raw for e in encodings)]


def apply(app: IntakeApplication, event: Event, offset: int) -> None:
    envelope = Envelope(event_id=f"dispatch:{offset}", type=event.TYPE, schema_version=1,
                        occurred_at="2025-03-01T08:00:00Z", producer="dispatch", key=event.key(),
                        correlation_id="c", data=event.model_dump(mode="json"))
    app.save_tracked(*app.on_order_event(envelope, event), tracking=Tracking("kafka:dispatch.orders.v1:0", offset))


def published(app: IntakeApplication) -> list[Event]:
    out = []
    for n in app.recorder.select_notifications(start=1, limit=app.log_section_size):
        contract = to_contract(app.mapper.to_domain_event(n))
        if contract is not None:
            out.append(contract)
    return out


def register(app: IntakeApplication) -> ResidentRecord:
    with acting_as(SECRETARY):
        return app.register_resident("c-1", NAME, PHONE, ADDRESS, email=EMAIL, wechat_openid=OPENID)


def walk(app: IntakeApplication, who: ResidentRecord, request: str = "req-1", offset: int = 1,
         comment: str = COMMENT) -> Demand:
    """A demand with every sealed field, served by m-1, confirmed and rated with a comment; the member and the
    secretary were given the contact."""
    with acting_as(WORKER):
        demand = app.post_demand(client_request_id=request, resident_id=who.resident_id, community_id="c-1",
                                 grid_id="g-1", description=DESCRIPTION, urgency="urgent", channel="hotline",
                                 other_text=OTHER, care_tags=["left_behind_child"])
    apply(app, OrderAccepted(order_id=f"o-{request}", demand_id=str(demand.id), member_id="m-1", via="claim"),
          offset)
    with acting_as(person("member", "sub-m-1", member_id="m-1")):
        assert app.service_contact(demand.id, "m-1").phone == app.residents.get(who.resident_id).phone
    with acting_as(SECRETARY):
        assert app.service_contact(demand.id, None).description == DESCRIPTION
    apply(app, ServiceCompleted(order_id=f"o-{request}", demand_id=str(demand.id), member_id="m-1", hours=1.5),
          offset + 1)
    with acting_as(WORKER):
        app.confirm_completion(demand.id)
        app.rate(demand.id, 5, comment)
    return app.get_demand(demand.id)


# ---- sealed at rest ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("store_url", STORES, indirect=True)
def test_nothing_personal_is_held_in_plaintext_yet_the_read_paths_give_it(app: IntakeApplication,
                                                                        store_url: str) -> None:
    who = register(app)
    with acting_as(SECRETARY):
        second = app.register_resident("c-1", NAME_ZH, "13900001111", "12 Well Street")
    demand = walk(app, who)
    assert leaked(app, store_url) == []
    # the read paths open it
    assert app.residents.get(second.resident_id).name == NAME_ZH
    _, record = app.demand_contact(demand.id)
    assert (record.name, record.phone, record.email, record.wechat_openid) == (NAME, PHONE, EMAIL, OPENID)
    texts = app.demand_texts(demand)
    assert (texts.description, texts.other_text, texts.care_tags, texts.comment) == (
        DESCRIPTION, OTHER, ["left_behind_child"], COMMENT)
    # what is published says only that special care is needed and that a comment exists
    posted, rated = [e for e in published(app) if e.TYPE in ("DemandPosted", "ServiceRated")]
    assert (posted.care_tags, posted.special_care, rated.has_comment) == ([], True, True)


# ---- erasure ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("store_url", STORES, indirect=True)
def test_erasure_forgets_the_resident_and_keeps_every_fact(app: IntakeApplication, store_url: str) -> None:
    who = register(app)
    demand = walk(app, who)
    with acting_as(WORKER):  # a second demand, served and not yet rated
        other = app.post_demand(client_request_id="req-2", resident_id=who.resident_id, community_id="c-1",
                                grid_id="g-1", description="Another request", urgency="normal", channel="hotline",
                                other_text="errand")
    apply(app, OrderAccepted(order_id="o-2", demand_id=str(other.id), member_id="m-1", via="claim"), 10)
    apply(app, ServiceCompleted(order_id="o-2", demand_id=str(other.id), member_id="m-1", hours=1), 11)
    with app.residents.engine.connect() as conn:
        wrapped = [bytes(r.wrapped) for r in conn.execute(select(data_keys.c.wrapped)
                                                          .where(data_keys.c.resident_id == who.resident_id))]
    assert len(wrapped) == 3  # the resident's key and one per demand
    facts, state = published(app), (demand.status, demand.stars, demand.member_id, demand.special_care)

    with acting_as(SECRETARY):
        erased = app.erase_resident(who.resident_id, "resident_request")
    assert erased.keys_destroyed == 3

    # the keys are gone, and on SQLite not even their wrapped bytes remain in any file
    for key_id in (resident_key_id(who.resident_id), demand_key_id(str(demand.id)), demand_key_id(str(other.id))):
        assert app.residents.keys.get(key_id) is None
    if store_url.startswith("sqlite"):
        raw = at_rest(app, store_url)
        assert not [w for w in wrapped if w in raw]
    assert leaked(app, store_url) == []
    # published: only that each demand's texts are gone, by demand id (so the others forget their copies);
    # every fact published before stands
    assert published(app) == [*facts, DemandTextsShredded(demand_id=str(demand.id), cause="erasure"),
                              DemandTextsShredded(demand_id=str(other.id), cause="erasure")]
    # the demand, its order's facts and the rating stay, shown as erased
    again = app.get_demand(demand.id)
    assert (again.status, again.stars, again.member_id, again.special_care) == state
    assert again.texts_shredded and app.get_demand(other.id).status == "served"  # the lifecycle goes on
    view = app.view(again)
    assert (view.resident_erased, view.care_tags) == (True, [])
    assert app.demand_texts(again).state == "erased"
    assert [(e.what, e.subject, e.role, e.on_behalf_of) for e in app.demand_history(demand.id)][-3:] == [
        ("CompletionConfirmed", "sub-gw", "grid_worker", who.resident_id), ("Rated", "sub-gw", "grid_worker",
                                                                             who.resident_id),
        ("TextsShredded", "sub-sec", "branch_secretary", who.resident_id)]
    (shred,) = [e for e in app.events.get(demand.id) if isinstance(e, Demand.TextsShredded)]
    assert (shred.reason, shred.fields) == ("erasure", ["description", "other_text", "care_tags", "comment"])
    with acting_as(SECRETARY):
        notified = app.recorder.max_notification_id()
        contact = app.service_contact(demand.id, None)
        assert (contact.erased, contact.name, contact.phone, contact.description) == (True, "", "", "")
    _, record = app.demand_contact(other.id)  # notify: told plainly, nothing released
    assert (record.erased, record.name, record.phone, record.email) == (True, "", "", None)
    assert app.recorder.max_notification_id() == notified  # no release was recorded: nothing was given
    # recorded with who asked and why
    history = app.export_resident_data(who.resident_id).history
    assert [(e.what, e.subject, e.role, e.on_behalf_of) for e in history][-2:] == [
        ("Erased", "sub-sec", "branch_secretary", who.resident_id), ("Exported", "", "", "")]
    (erased_event,) = [e for e in app.events.get(Resident.create_id(who.resident_id))
                       if isinstance(e, Resident.Erased)]
    assert (erased_event.by, erased_event.reason) == ("branch_secretary", "resident_request")
    assert to_contract(erased_event) is None

    # what needs the resident's data is refused; what does not still works
    with acting_as(WORKER):
        with pytest.raises(FailedPrecondition, match="erased"):
            app.post_demand(client_request_id="req-3", resident_id=who.resident_id, community_id="c-1",
                            grid_id="g-1", description="A new request", urgency="normal", channel="hotline",
                            other_text="errand")
        with pytest.raises(FailedPrecondition, match="erased"):
            app.correct_resident(who.resident_id, {"phone": "13900002222"})
        with pytest.raises(FailedPrecondition, match="erased or shredded"):
            app.rate(other.id, 4, "a comment nobody can keep")
        assert app.rate(other.id, 4).stars == 4
    with acting_as(SECRETARY):  # again: the same answer, nothing new
        before = app.recorder.max_notification_id()
        repeat = app.erase_resident(who.resident_id, "resident_request")
        assert (repeat.keys_destroyed, repeat.erased_at) == (0, erased.erased_at)
        assert app.recorder.max_notification_id() == before
    assert app.shred_expired_texts() == [] and app.recorder.max_notification_id() == before  # nor the sweep


@pytest.mark.parametrize("store_url", STORES, indirect=True)
def test_an_erasure_interrupted_after_its_record_is_finished_by_the_sweep(app: IntakeApplication,
                                                                         store_url: str) -> None:
    """Recorded first: a failure before the keys went, or before the demands recorded it, leaves the erasure
    recorded; the retention sweep destroys the keys, then records each demand's shredding once, as the system."""
    who = register(app)
    served = walk(app, who)
    with acting_as(WORKER):  # open: an erasure shreds it whatever its state (retention never would)
        open_ = app.post_demand(client_request_id="req-2", resident_id=who.resident_id, community_id="c-1",
                                grid_id="g-1", description="Still waiting", urgency="normal", channel="hotline",
                                other_text="errand")
    facts = published(app)
    destroy = app.residents.erase

    def fails(resident_id: str) -> int:
        raise OSError("the database went away")

    app.residents.erase = fails  # type: ignore[method-assign]
    with acting_as(SECRETARY), pytest.raises(OSError):
        app.erase_resident(who.resident_id, "resident_request")
    app.residents.erase = destroy  # type: ignore[method-assign]
    assert published(app) == facts  # the erasure is recorded; no demand says its texts are gone yet
    assert app.residents.keys.get(demand_key_id(str(open_.id))) is not None

    assert app.shred_expired_texts() == []  # nothing for retention: the erasure was finished
    assert app.residents.keys.get(demand_key_id(str(open_.id))) is None
    assert app.residents.community_of(who.resident_id).erased
    assert published(app) == [*facts, DemandTextsShredded(demand_id=str(served.id), cause="erasure"),
                              DemandTextsShredded(demand_id=str(open_.id), cause="erasure")]
    last = app.demand_history(open_.id)[-1]
    assert (last.what, last.subject, last.role) == ("TextsShredded", "", "")  # the system: no person
    assert app.get_demand(open_.id).status == "posted"
    done = app.recorder.max_notification_id()
    assert app.shred_expired_texts() == [] and app.recorder.max_notification_id() == done  # once
    with acting_as(SECRETARY):
        assert app.erase_resident(who.resident_id, "resident_request").keys_destroyed == 0
    assert app.recorder.max_notification_id() == done


@pytest.mark.parametrize("store_url", STORES, indirect=True)
def test_demands_recorded_after_the_erasure_read_them_are_recorded_by_the_sweep(app: IntakeApplication) -> None:
    """The keys went, but the record of a demand failed (or its post was saved while the erasure ran): the sweep
    records the one still missing, never the other again."""
    who = register(app)
    first, second = walk(app, who, "a", 1), walk(app, who, "b", 3)
    record = app._record_erased_demands

    def only_the_first(resident_id: str, who_: Principal) -> list[str]:
        app.index.catch_up(app)
        app.index.shredded.add(str(second.id))  # as if the index had not seen it yet
        try:
            return record(resident_id, who_)
        finally:
            app.index.shredded.discard(str(second.id))

    app._record_erased_demands = only_the_first  # type: ignore[method-assign]
    with acting_as(SECRETARY):
        app.erase_resident(who.resident_id, "resident_request")
    app._record_erased_demands = record  # type: ignore[method-assign]
    shreds = [e for e in published(app) if isinstance(e, DemandTextsShredded)]
    assert shreds == [DemandTextsShredded(demand_id=str(first.id), cause="erasure")]
    app.shred_expired_texts()
    shreds = [e for e in published(app) if isinstance(e, DemandTextsShredded)]
    assert shreds == [DemandTextsShredded(demand_id=str(d.id), cause="erasure") for d in (first, second)]


@pytest.mark.parametrize("store_url", STORES, indirect=True)
def test_a_resident_erases_themselves_and_others_may_not(app: IntakeApplication) -> None:
    rid = str(uuid.uuid4())
    own = person("resident", "sub-own", resident_id=rid)
    with acting_as(own):
        app.register_resident("c-1", NAME, PHONE, ADDRESS)
    for outsider in (person("resident", "sub-other", resident_id=str(uuid.uuid4())),
                     person("branch_secretary", "sub-sec-2", community_id="c-2"),
                     person("grid_worker", "sub-gw", community_id="c-1")):
        with acting_as(outsider), pytest.raises(PermissionDenied):
            app.erase_resident(rid, "resident_request")
    assert not app.residents.community_of(rid).erased
    with acting_as(own):
        assert app.erase_resident(rid, "resident_request").keys_destroyed == 1
    entries = app.export_resident_data(rid).history
    assert [(e.what, e.subject, e.role, e.on_behalf_of) for e in entries][:3] == [
        ("Registered", "sub-own", "resident", ""), ("Erased", "sub-own", "resident", ""), ("Exported", "", "", "")]
    with pytest.raises(InvalidArgument, match="reason"):
        app.erase_resident(rid, "Please forget me!")


# ---- correction and export ------------------------------------------------------------------------------------
@pytest.mark.parametrize("store_url", STORES, indirect=True)
def test_a_resident_corrects_their_record(app: IntakeApplication, store_url: str) -> None:
    who = register(app)
    with acting_as(WORKER):
        changed = app.correct_resident(who.resident_id, {"phone": "13900005555", "email": "", "name": NAME})
    assert changed == ["phone", "email"]  # the name was given unchanged
    record = app.residents.get(who.resident_id)
    assert (record.name, record.phone, record.email, record.address) == (NAME, "13900005555", None, ADDRESS)
    assert PHONE not in leaked(app, store_url) == []  # the old phone is not held anywhere either
    corrected = [e for e in app.events.get(Resident.create_id(who.resident_id)) if isinstance(e, Resident.Corrected)]
    assert [e.fields for e in corrected] == [["email", "phone"]]  # the names, never the values
    entries = app.export_resident_data(who.resident_id).history
    assert [(e.what, e.subject, e.on_behalf_of) for e in entries][1] == ("Corrected", "sub-gw", who.resident_id)
    before = app.recorder.max_notification_id()
    assert app.correct_resident(who.resident_id, {"phone": "13900005555"}) == []  # nothing changed: no record
    for bad, field in (({"phone": "call me"}, "phone"), ({"name": ""}, "name"), ({"ssn": "1"}, "ssn"), ({}, "fields")):
        with pytest.raises(InvalidArgument) as refused:
            app.correct_resident(who.resident_id, bad)
        assert refused.value.field == field
    assert app.recorder.max_notification_id() == before
    assert app.residents.get(who.resident_id).phone == "13900005555"
    with acting_as(person("grid_worker", "sub-gw-2", community_id="c-2")), pytest.raises(PermissionDenied):
        app.correct_resident(who.resident_id, {"phone": "13900006666"})


@pytest.mark.parametrize("store_url", STORES, indirect=True)
def test_the_export_holds_everything_about_the_resident_and_nothing_else(app: IntakeApplication) -> None:
    who = register(app)
    demand = walk(app, who)
    with acting_as(SECRETARY):
        stranger = app.register_resident("c-1", "Someone Else", "13900001111", "1 Other Road")
    walk(app, stranger, request="req-x", offset=20, comment="not theirs")
    with acting_as(person("resident", "sub-zx", resident_id=who.resident_id)):
        export = app.export_resident_data(who.resident_id)
    r = export.record
    assert (r.name, r.phone, r.address, r.email, r.wechat_openid, r.erased) == (
        NAME, PHONE, ADDRESS, EMAIL, OPENID, False)
    (item,) = export.demands  # theirs only
    assert item.demand.id == demand.id and item.demand.status == "confirmed" and item.demand.stars == 5
    assert (item.texts.description, item.texts.other_text, item.texts.care_tags, item.texts.comment) == (
        DESCRIPTION, OTHER, ["left_behind_child"], COMMENT)
    # who got their phone, and when
    assert [(c.subject, c.role, c.member_id) for c in item.releases] == [
        ("sub-m-1", "member", "m-1"), ("sub-sec", "branch_secretary", None)]
    assert all(c.at.tzinfo is not None for c in item.releases)
    assert [(e.what, e.subject) for e in export.history] == [
        ("Registered", "sub-sec"), ("Exported", "sub-zx")]  # the export itself is recorded
    with acting_as(person("resident", "sub-other", resident_id=stranger.resident_id)), \
            pytest.raises(PermissionDenied):
        app.export_resident_data(who.resident_id)


# ---- retention ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("store_url", STORES, indirect=True)
def test_retention_shreds_closed_demands_past_the_period_only(app: IntakeApplication, clock: Clock,
                                                              store_url: str) -> None:
    who = register(app)
    old = walk(app, who, "old", 1)  # confirmed now
    clock.now += timedelta(days=20)
    with acting_as(WORKER):
        withdrawn = app.post_demand(client_request_id="w", resident_id=who.resident_id, community_id="c-1",
                                    grid_id="g-1", description="Withdrawn later", urgency="normal",
                                    channel="hotline", other_text="errand")
        app.withdraw(withdrawn.id, "solved_myself")  # closed 20 days after the first
        open_ = app.post_demand(client_request_id="o", resident_id=who.resident_id, community_id="c-1",
                                grid_id="g-1", description="Still waiting", urgency="normal", channel="hotline",
                                other_text="errand")
    facts = published(app)

    assert app.shred_expired_texts() == []  # 20 days: within the 30-day period
    clock.now += timedelta(days=11)  # the first closed 31 days ago, the withdrawn one 11
    assert app.shred_expired_texts() == [str(old.id)]
    assert app.shred_expired_texts() == []  # recorded: not again
    shredded = app.get_demand(old.id)
    assert shredded.texts_shredded and app.demand_texts(shredded).state == "shredded"
    assert app.residents.keys.get(demand_key_id(str(old.id))) is None
    (record,) = [e for e in app.events.get(old.id) if isinstance(e, Demand.TextsShredded)]
    assert (record.reason, record.fields) == ("retention", ["description", "other_text", "care_tags", "comment"])
    last = app.demand_history(old.id)[-1]
    assert (last.what, last.subject, last.role) == ("TextsShredded", "", "")  # the system: no person
    # the resident, the other demands and every published fact are untouched; published: that the demand's texts
    # are gone (once, by demand id), so the others forget their copies
    assert app.residents.get(who.resident_id).phone == PHONE
    assert app.demand_texts(app.get_demand(withdrawn.id)).description == "Withdrawn later"
    assert published(app) == [*facts, DemandTextsShredded(demand_id=str(old.id), cause="retention")]
    with acting_as(SECRETARY):
        contact = app.service_contact(old.id, None)
    assert (contact.phone, contact.description, contact.texts_shredded) == (PHONE, "", True)
    raw = at_rest(app, store_url)
    assert DESCRIPTION.encode() not in raw and COMMENT.encode() not in raw

    clock.now += timedelta(days=400)
    assert app.shred_expired_texts() == [str(withdrawn.id)]  # never the open one
    assert app.demand_texts(app.get_demand(open_.id)).description == "Still waiting"


@pytest.mark.parametrize("store_url", STORES, indirect=True)
def test_retention_counts_rated_and_served_but_never_confirmed_demands(app: IntakeApplication, clock: Clock) -> None:
    """Rated without a confirmation closes a demand; served and never closed counts as closed when served; a redo
    opens it again. Shredding changes no demand's lifecycle."""
    who = register(app)

    def served(request: str, offset: int) -> Demand:
        with acting_as(WORKER):
            demand = app.post_demand(client_request_id=request, resident_id=who.resident_id, community_id="c-1",
                                     grid_id="g-1", description=f"{DESCRIPTION} {request}", urgency="normal",
                                     channel="hotline", other_text="errand")
        apply(app, OrderAccepted(order_id=f"o-{request}", demand_id=str(demand.id), member_id="m-1", via="claim"),
              offset)
        apply(app, ServiceCompleted(order_id=f"o-{request}", demand_id=str(demand.id), member_id="m-1", hours=1.0),
              offset + 1)
        return demand

    never_confirmed, rated, redone = served("never", 1), served("rated", 3), served("redone", 5)
    with acting_as(WORKER):
        app.request_redo(redone.id, "not_fixed")  # open again
    clock.now += timedelta(days=10)
    with acting_as(WORKER):
        app.rate(rated.id, 4, COMMENT)  # rated, never confirmed: closed now, 10 days after its service
    assert app.shred_expired_texts() == []

    clock.now += timedelta(days=21)  # 31 days after the services, 21 after the rating
    assert app.shred_expired_texts() == [str(never_confirmed.id)]
    shredded = app.get_demand(never_confirmed.id)
    assert (shredded.status, shredded.texts_shredded) == ("served", True)
    assert app.demand_texts(shredded).state == "shredded"
    assert app.residents.keys.get(demand_key_id(str(never_confirmed.id))) is None
    with acting_as(WORKER):
        assert app.confirm_completion(never_confirmed.id).status == "confirmed"  # the lifecycle goes on
    assert app.shred_expired_texts() == []  # recorded: not again, confirmed since or not

    clock.now += timedelta(days=10)  # 31 days after the rating
    assert app.shred_expired_texts() == [str(rated.id)]
    rated_now = app.get_demand(rated.id)
    assert (rated_now.status, rated_now.stars, app.demand_texts(rated_now).state) == ("served", 4, "shredded")

    clock.now += timedelta(days=400)
    assert app.shred_expired_texts() == []  # the redone demand is open: never shredded
    assert app.demand_texts(app.get_demand(redone.id)).description == f"{DESCRIPTION} redone"
    apply(app, OrderAccepted(order_id="o-redone-2", demand_id=str(redone.id), member_id="m-1", via="claim"), 7)
    apply(app, ServiceCompleted(order_id="o-redone-2", demand_id=str(redone.id), member_id="m-1", hours=1.0), 8)
    assert app.shred_expired_texts() == []  # served again just now: the period counts from this service
    clock.now += timedelta(days=31)
    assert app.shred_expired_texts() == [str(redone.id)]


# ---- the KEK: rotation, a wrong or missing one -------------------------------------------------------------------
@pytest.mark.parametrize("store_url", FILE_STORES, indirect=True)
def test_a_rotated_kek_reads_old_data_and_rewrap_moves_every_key(store_url: str, keyring: Keyring,
                                                                  clock: Clock) -> None:
    app = open_app(store_url, keyring, clock)
    who = register(app)
    demand = walk(app, who)
    app.close()

    rotated = keyring.with_new_current(Keyring.generate("kek-2026"))
    app = open_app(store_url, rotated, clock)  # the new KEK first, the old one kept
    assert app.residents.get(who.resident_id).phone == PHONE
    assert app.demand_texts(app.get_demand(demand.id)).comment == COMMENT
    with acting_as(SECRETARY):
        newer = app.register_resident("c-1", "New Resident", "13900003333", "2 New Road")
    assert app.residents.keys.count_by_kek() == {"kek-2025": 2, "kek-2026": 1}
    assert app.residents.keys.rewrap() == 2
    assert app.residents.keys.count_by_kek() == {"kek-2026": 3}
    app.close()

    only_new = Keyring(rotated.keks[:1])  # the old KEK dropped after the rewrap
    app = open_app(store_url, only_new, clock)
    assert (app.residents.get(who.resident_id).phone, app.residents.get(newer.resident_id).name) == (
        PHONE, "New Resident")
    assert app.demand_texts(app.get_demand(demand.id)).description == DESCRIPTION
    app.close()

    with pytest.raises(KeyringError, match="'kek-2026', which the keyring does not hold"):
        ResidentStore(store_url, keyring)  # the old KEK alone: the keys are under the new one now
    impostor = Keyring(((("kek-2026"), Keyring.generate().keks[0][1]),))
    with pytest.raises(KeyringError, match="'kek-2026' is not the key that wrapped"):
        ResidentStore(store_url, impostor)  # the right id, the wrong key


# ---- a store from before encryption -------------------------------------------------------------------------------
@pytest.mark.parametrize("store_url", FILE_STORES, indirect=True)
def test_a_store_from_before_encryption_still_reads_and_its_table_is_sealed(store_url: str, keyring: Keyring,
                                                                            clock: Clock) -> None:
    """The residents table's plaintext rows are sealed when the store opens; the event store keeps its old
    (class_version 1) events as written: they upcast and read, and after an erasure are no longer given out."""
    rid = str(uuid.uuid4())
    app = open_app(store_url, keyring, clock)
    with app.residents.engine.begin() as conn:  # a row as the first release wrote it
        conn.execute(text("DELETE FROM intake_data_keys"))
        conn.execute(residents.insert().values(resident_id=rid, community_id="c-1", name=NAME, phone=PHONE,
                                               address=ADDRESS, registered_at=clock.now, email=EMAIL))
    with acting_as(WORKER):
        current = app.post_demand(client_request_id="tmp", resident_id=rid, community_id="c-1", grid_id="g-1",
                                  description="A template demand", urgency="normal", channel="app", other_text="x")
    template = json.loads(next(n for n in app.recorder.select_notifications(start=1, limit=100)
                               if n.topic.endswith("Demand.Posted")).state)
    legacy_id = uuid.uuid5(uuid.NAMESPACE_URL, "legacy")
    v1 = {k: v for k, v in template.items() if k not in ("class_version", "special_care", "__trace__")}
    v1.update(description=DESCRIPTION, other_text=OTHER, care_tags=["left_behind_child"], client_request_id="v1")
    topic = f"{Demand.__module__}:Demand.Posted"
    app.recorder.insert_events([StoredEvent(legacy_id, 1, topic, json.dumps(v1).encode())])
    app.close()
    assert current.special_care is False

    app = open_app(store_url, keyring, clock)  # opened again: the legacy row is sealed now
    with app.residents.engine.connect() as conn:
        row = conn.execute(select(residents).where(residents.c.resident_id == rid)).one()
    assert (row.name, row.phone, row.address, row.email) == ("", "", "", None) and row.name_sealed
    assert app.residents.get(rid).email == EMAIL
    legacy = app.get_demand(legacy_id)
    assert (legacy.special_care, legacy.category) == (True, "other")
    texts = app.demand_texts(legacy)
    assert (texts.description, texts.other_text, texts.care_tags) == (DESCRIPTION, OTHER, ["left_behind_child"])
    (posted,) = [to_contract(e) for e in app.events.get(legacy_id)]
    assert (posted.care_tags, posted.special_care) == ([], True)  # were it relayed again: only the flag
    app.erase_resident(rid, "resident_request")
    assert app.demand_texts(app.get_demand(legacy_id)).state == "erased"  # the old plaintext is not given out
    app.close()


def test_the_store_refuses_to_open_without_the_keks_its_keys_need(tmp_path: Path, keyring: Keyring) -> None:
    url = f"sqlite:///{tmp_path}/intake.db"
    store = ResidentStore(url, keyring)
    store.register("c-1", NAME, PHONE, ADDRESS)
    store.close()
    with pytest.raises(KeyringError, match="'kek-2025', which the keyring does not hold"):
        ResidentStore(url, Keyring.generate("kek-other"))
    with pytest.raises(KeyringError, match="'kek-2025' is not the key that wrapped"):
        ResidentStore(url, Keyring.generate("kek-2025"))
    ResidentStore(url, keyring).close()  # the right one still opens it


def test_a_fresh_store_takes_any_kek(tmp_path: Path) -> None:
    for name in ("a", "b"):
        ResidentStore(f"sqlite:///{tmp_path}/{name}.db", Keyring.generate(name)).close()



# ---- over gRPC, with signed tokens: the new methods and an erased resident's demand through every read API -------
async def test_an_erased_residents_demand_walks_through_every_read_api(local_issuer: LocalIssuer) -> None:
    app = IntakeApplication(ResidentStore("memory://", Keyring.generate()), "memory://", places=PLACES)
    async with serving(local_issuer, app) as served:
        resident = served.as_("sub-ouyang", ["resident"])
        secretary = served.as_("sub-sec", ["branch_secretary"], community_id="c-1")
        worker = served.as_("sub-gw", ["grid_worker"], community_id="c-1")
        holder = served.as_("sub-m-1", ["member"], member_id="m-1")
        leader = served.as_("sub-gl", ["grid_leader"], community_id="c-1", grid_id="g-1")
        town = served.as_("sub-town", ["town_office"], town_id="t-1")
        notify = served.as_("service-account-notify", ["service_notify"])
        rid = (await resident.RegisterResident(pb.RegisterResidentRequest(
            community_id="c-1", name=NAME, phone=PHONE, address=ADDRESS, email=EMAIL))).resident_id
        posted = await resident.PostDemand(pb.PostDemandRequest(
            client_request_id="g-1", resident_id=rid, community_id="c-1", grid_id="g-1", other_text=OTHER,
            description=DESCRIPTION, urgency="urgent", channel="app", care_tags=["left_behind_child"]))
        demand_id = posted.demand_id
        served.apply(OrderAccepted(order_id="o-1", demand_id=demand_id, member_id="m-1", via="claim"))
        ref = pb.DemandRef(demand_id=demand_id)

        # the tags: for the resident and their community's workers; the others see only that care is needed
        for caller, tags in ((resident, ["left_behind_child"]), (worker, ["left_behind_child"]),
                             (secretary, ["left_behind_child"]), (holder, []), (leader, []), (town, [])):
            seen = await caller.GetDemand(ref)
            assert (list(seen.care_tags), seen.special_care, seen.resident_erased) == (tags, True, False)
        assert list(posted.care_tags) == ["left_behind_child"]  # the poster's own answer

        corrected = await resident.CorrectResident(pb.CorrectResidentRequest(resident_id=rid, phone="13900008888",
                                                                             email=""))
        assert list(corrected.corrected) == ["phone", "email"]
        contact = await holder.GetServiceContact(pb.ServiceContactRequest(demand_id=demand_id, member_id="m-1"))
        assert (contact.phone, contact.description, contact.erased) == ("13900008888", DESCRIPTION, False)
        export = await resident.ExportResidentData(pb.ResidentRef(resident_id=rid))
        assert (export.name, export.phone, export.email, export.erased) == (NAME, "13900008888", "", False)
        (item,) = export.demands
        assert (item.description, item.other_text, list(item.care_tags)) == (DESCRIPTION, OTHER,
                                                                             ["left_behind_child"])
        assert [(c.subject, c.role, c.member_id) for c in item.contact_releases] == [("sub-m-1", "member", "m-1")]
        assert [e.what for e in export.record_history.entries] == ["Registered", "Corrected", "Exported"]

        erased = await resident.EraseResident(pb.EraseResidentRequest(resident_id=rid, reason="resident_request"))
        assert erased.keys_destroyed == 2 and erased.erased_at.endswith("Z")
        # the post woke the relay, and so did the erasure (its DemandTextsShredded); correcting and exporting
        # publish nothing
        assert served.wakes == [1, 1]

        for caller in (resident, worker, secretary, holder, leader, town):
            seen = await caller.GetDemand(ref)
            assert (seen.status, seen.member_id, seen.special_care, seen.resident_erased, list(seen.care_tags)) == (
                "accepted", "m-1", True, True, [])
        history = await secretary.GetDemandHistory(ref)
        assert [(e.what, e.role) for e in history.entries] == [
            ("Posted", "resident"), ("AcceptanceRecorded", ""), ("ContactReleased", "member"),
            ("TextsShredded", "resident")]  # the accepted demand's texts went with the erasure the resident asked
        for caller, request in ((holder, pb.ServiceContactRequest(demand_id=demand_id, member_id="m-1")),
                                (secretary, pb.ServiceContactRequest(demand_id=demand_id))):
            contact = await caller.GetServiceContact(request)
            assert (contact.erased, contact.name, contact.phone, contact.address, contact.description) == (
                True, "", "", "", "")
        reached = await notify.GetDemandContact(ref)
        assert (reached.erased, reached.name, reached.phone, reached.email, reached.resident_id) == (
            True, "", "", "", rid)
        export = await resident.ExportResidentData(pb.ResidentRef(resident_id=rid))
        assert (export.erased, export.name, export.phone, export.demands[0].description,
                export.demands[0].texts_shredded, export.demands[0].status) == (True, "", "", "", True, "accepted")
        assert [(e.what, e.subject) for e in export.record_history.entries][-2:] == [
            ("Erased", "sub-ouyang"), ("Exported", "sub-ouyang")]
        served.apply(ServiceCompleted(order_id="o-1", demand_id=demand_id, member_id="m-1", hours=1))
        assert (await resident.ConfirmCompletion(ref)).status == "confirmed"
        assert (await resident.RateService(pb.RateServiceRequest(demand_id=demand_id, stars=5))).stars == 5
        refused = await status_of(resident.CorrectResident(pb.CorrectResidentRequest(resident_id=rid, name="X")))
        assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
        refused = await status_of(resident.EraseResident(pb.EraseResidentRequest(resident_id=rid, reason="")))
        assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT


# ---- the service's start, and the keys command, as processes -------------------------------------------------------
def run(module: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
    return subprocess.run([sys.executable, "-m", module, *args], env={**base, **env}, capture_output=True,
                          text=True, timeout=60, check=False)


def test_a_missing_or_wrong_kek_stops_the_service_at_start_with_a_clear_message(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/intake.db"
    keyring = Keyring.generate("kek-2025")
    store = ResidentStore(url, keyring)
    store.register("c-1", NAME, PHONE, ADDRESS)
    store.close()
    env = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9", "INTAKE_EVENTSTORE_URL": url}
    wrong = Keyring.generate("kek-2025")  # the right id, another key
    kek_file = tmp_path / "kek"
    kek_file.write_text("# not a keyring\nkek-2025\n", encoding="utf-8")
    cases = [
        ({}, "intake: INTAKE_KEK_FILE (a file holding the key-encryption keys) or INTAKE_KEK is required"),
        ({"INTAKE_KEK": wrong.text()}, "intake: INTAKE_KEK_FILE/INTAKE_KEK: KEK 'kek-2025' is not the key that "
                                       "wrapped the stored data keys"),
        ({"INTAKE_KEK": Keyring.generate("kek-2026").text()},
         "intake: INTAKE_KEK_FILE/INTAKE_KEK: data keys are wrapped by KEK 'kek-2025', which the keyring does not "
         "hold"),
        ({"INTAKE_KEK_FILE": str(kek_file)}, "intake: INTAKE_KEK_FILE: each KEK must be written <kek id>:<base64"),
        ({"INTAKE_KEK_FILE": str(tmp_path / "absent")}, "intake: INTAKE_KEK_FILE: cannot read"),
        ({"INTAKE_KEK": keyring.text(), "INTAKE_KEK_FILE": str(kek_file)}, "set INTAKE_KEK_FILE or INTAKE_KEK"),
    ]
    for extra, message in cases:
        done = run("sandan_intake", {**env, **extra})
        assert done.returncode == 2, done.stderr
        assert message in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
        for secret in (keyring.text().split(":", 1)[1], wrong.text().split(":", 1)[1]):
            assert secret not in done.stderr


def test_the_keys_command_generates_reports_and_rewraps(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/intake.db"
    generated = run("sandan_intake.keys", {}, "generate", "--id", "kek-2026")
    assert generated.returncode == 0
    new = Keyring.parse(generated.stdout)
    assert new.ids == ("kek-2026",)
    old = Keyring.generate("kek-2025")
    store = ResidentStore(url, old)
    who = store.register("c-1", NAME, PHONE, ADDRESS)
    store.close()
    env = {"INTAKE_EVENTSTORE_URL": url, "INTAKE_KEK": old.with_new_current(new).text()}
    status = run("sandan_intake.keys", env, "status")
    assert status.stdout.splitlines() == ["kek-2025\t1"]
    rewrapped = run("sandan_intake.keys", env, "rewrap")
    assert rewrapped.stdout.splitlines() == ["re-wrapped 1 data keys under kek-2026", "kek-2026\t1  (current)"]
    store = ResidentStore(url, new)  # the old KEK is no longer needed
    assert store.get(who.resident_id).phone == PHONE
    store.close()
    refused = run("sandan_intake.keys", {**env, "INTAKE_KEK": Keyring.generate("kek-2026").text()}, "rewrap")
    assert refused.returncode == 2 and "not the key that wrapped" in refused.stderr
