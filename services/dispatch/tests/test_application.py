"""dispatch's use cases against each store it runs on: in memory, a SQLite file and PostgreSQL.

PostgreSQL tests get a schema of their own (dropped afterwards), so they can run against a shared server.
The application is driven the way the edges drive it: commands for gRPC, `on_demand_event` +
`save_tracked` for the Kafka inbox, `sweep_deadlines` with an injected clock for the timer.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent, Tracking
from sqlalchemy import Column, MetaData, String, Table, text

from sandan_contracts import Event, decode, encode
from sandan_contracts.events import (
    CompletionConfirmed,
    DemandPosted,
    DemandWithdrawn,
    RedoRequested,
    ServiceRated,
)
from sandan_dispatch.application import DispatchApplication, MemberContactCard, UnitContactCard
from sandan_dispatch.contacts import Contacts, MemberContact, UnitContact
from sandan_dispatch.domain import Activity, Member, Order, Unit
from sandan_dispatch.keys import DemandKeys, Keyring
from sandan_dispatch.publishing import to_contract
from sandan_eventbus.audit import history
from sandan_eventbus.auth.principal import Principal, acting_as
from sandan_eventbus.errors import (
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from sandan_eventbus.sql import engine_for

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
HOUR = 3600
DEMANDS = "kafka:intake.demands.v1:0"
NAME, PHONE = "Zhang Xiuying", "+86 138 0796 1234"


def rid(n: int) -> str:
    """A resident's id as intake issues them (a uuid)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"sandan-test/resident/{n}"))


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


# ---- stores ------------------------------------------------------------------------------------
@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "memory":
        yield "memory://"
    elif request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/dispatch.db"
    else:
        yield request.getfixturevalue("postgres_schema_url")  # root conftest: a schema of its own


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def contacts(store_url: str) -> Iterator[Contacts]:
    """The contact tables on the store's own database (DISPATCH_DATABASE_URL defaults to the store URL)."""
    contacts = Contacts(store_url)
    yield contacts
    contacts.engine.dispose()


@pytest.fixture
def keys(contacts: Contacts) -> DemandKeys:
    """The demands' data keys beside the contacts, under a KEK of the test's own (as __main__ opens them)."""
    return DemandKeys(contacts.engine, Keyring.generate("kek-test"))


@pytest.fixture
def make_app(store_url: str, contacts: Contacts, keys: DemandKeys,
             clock: Clock) -> Iterator[Callable[[], DispatchApplication]]:
    apps: list[DispatchApplication] = []

    def make() -> DispatchApplication:
        app = DispatchApplication(store_url, contacts=contacts, clock=clock, keys=keys)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


@pytest.fixture
def app(make_app: Callable[[], DispatchApplication]) -> DispatchApplication:
    return make_app()


# ---- helpers -----------------------------------------------------------------------------------
def delivered(event: Event, n: int = 1) -> tuple[Any, Event]:
    """The (envelope, event) pair the inbox hands to the handler, through the real codec."""
    return decode(encode(event, event_id=f"intake:{n}", producer="intake", occurred_at=T0,
                         correlation_id=f"corr-{n}", causation_id=None))


def posted(demand_id: str = "d1", *, grid: str = "g1", category: str = "medical",
           due_at: datetime = T0 + timedelta(hours=24), deadline_seconds: int = 24 * HOUR,
           care_tags: tuple[str, ...] = ("elderly_alone",), special_care: bool = False) -> DemandPosted:
    """By default as intake wrote it before special_care (the tags on the topic)."""
    return DemandPosted(demand_id=demand_id, community_id="c1", grid_id=grid, category=category, urgency="normal",
                        care_tags=list(care_tags), special_care=special_care, channel="hotline", due_at=due_at,
                        deadline_seconds=deadline_seconds)


_offsets = iter(range(1, 1_000_000))


def consume(app: DispatchApplication, event: Event, offset: int | None = None) -> list[Any]:
    """What the inbox does with one message: handle it, save the changes with the consumed position."""
    offset = next(_offsets) if offset is None else offset
    envelope, decoded = delivered(event, offset)
    try:
        changed = app.on_demand_event(envelope, decoded)
    except DomainError:
        changed = []
    app.save_tracked(*changed, tracking=Tracking(DEMANDS, offset))  # offsets only grow, as in a partition
    return changed


def open_order(app: DispatchApplication, demand_id: str = "d1", **kw: Any) -> str:
    consume(app, posted(demand_id, **kw))
    return str(Order.create_id(demand_id))


def roster(app: DispatchApplication) -> None:
    """One community: two units, members in grids g1/g2 with various teams."""
    app.report_unit("u1", "c1", "County Health Bureau")
    app.report_unit("u2", "c1", "County Justice Bureau")
    app.report_member("m1", "u1", "c1", "g1", ["medical"], ["nurse"], NAME, PHONE)
    app.report_member("m2", "u2", "c1", "g1", [], [])
    app.report_member("m3", "u2", "c1", "g2", ["medical"], [])
    app.report_member("m4", "u2", "c1", "g2", ["patrol"], [])


def notifications(app: DispatchApplication) -> list[Any]:
    return list(app.recorder.select_notifications(start=1, limit=10_000))


def stored_events(app: DispatchApplication) -> list[Any]:
    return [app.mapper.to_domain_event(n) for n in notifications(app)]


def event_names(app: DispatchApplication, aggregate_id: Any) -> list[str]:
    return [type(e).__qualname__ for e in stored_events(app) if e.originator_id == aggregate_id]


# ---- roster ------------------------------------------------------------------------------------
def test_report_unit_is_idempotent_and_refuses_a_second_community(app: DispatchApplication) -> None:
    unit = app.report_unit("u1", "c1", "  County Health Bureau ")
    assert (unit.unit_id, unit.community_id, unit.unit_name) == ("u1", "c1", "County Health Bureau")
    before = len(notifications(app))
    again = app.report_unit("u1", "c1", "County Health Bureau")
    assert again.id == unit.id and len(notifications(app)) == before
    with pytest.raises(AlreadyExists, match="unit u1 already reported to c1"):
        app.report_unit("u1", "c2", "County Health Bureau")
    with pytest.raises(InvalidArgument, match="unit_name"):
        app.report_unit("u2", "c1", "   ")
    with pytest.raises(InvalidArgument, match="unit_id"):
        app.report_unit("u 2", "c1", "x")


def test_report_member_needs_a_reported_unit(app: DispatchApplication) -> None:
    with pytest.raises(NotFound, match=r"^unit u1 has not reported$"):
        app.report_member("m1", "u1", "c1", "g1", [], [])
    app.report_unit("u1", "c1", "County Health Bureau")
    member = app.report_member("m1", "u1", "c1", "g1", ["medical", "medical"], ["nurse"], NAME, PHONE)
    assert (member.member_id, member.grid_id, member.teams, member.active) == ("m1", "g1", ["medical"], True)
    assert app.member("m1").teams == ["medical"]


def test_re_reporting_a_member(app: DispatchApplication, contacts: Contacts) -> None:
    app.report_unit("u1", "c1", "County Health Bureau")
    app.report_member("m1", "u1", "c1", "g1", [], [], NAME, PHONE)
    before = len(notifications(app))
    with pytest.raises(AlreadyExists, match="member m1 already reported to c1"):
        app.report_member("m1", "u1", "c1", "g1", [], [], "Someone Else", "+86 100 0000 0000")
    assert contacts.member("m1") == MemberContact(NAME, PHONE)  # a refused report does not overwrite the contact
    app.member_leaves("m1", "transferred")
    with pytest.raises(FailedPrecondition, match="member m1 has left; re-reporting needs a new member id"):
        app.report_member("m1", "u1", "c1", "g1", [], [])
    assert len(notifications(app)) == before + 1


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"member_id": "m 1"}, "member_id"),
    ({"member_id": ""}, "member_id"),
    ({"grid_id": "g/1"}, "grid_id"),
    ({"teams": ["Medical"]}, "teams"),
    ({"skills": ["first aid"]}, "skills"),
    ({"phone": "call me"}, "phone"),
    ({"name": " " * 3}, "name"),
])
def test_report_member_validates_fields(app: DispatchApplication, kwargs: dict[str, Any], field: str) -> None:
    app.report_unit("u1", "c1", "County Health Bureau")
    args: dict[str, Any] = {"member_id": "m1", "unit_id": "u1", "community_id": "c1", "grid_id": "g1",
                            "teams": [], "skills": [], "name": NAME, "phone": PHONE} | kwargs
    with pytest.raises(InvalidArgument) as info:
        app.report_member(**args)
    assert info.value.field == field


def test_join_team_leave_and_grid_leader(app: DispatchApplication) -> None:
    roster(app)
    before = len(notifications(app))
    assert app.join_team("m2", "legal_aid").teams == ["legal_aid"]
    assert app.join_team("m2", "legal_aid").teams == ["legal_aid"]
    assert len(notifications(app)) == before + 1
    with pytest.raises(InvalidArgument, match="team"):
        app.join_team("m2", "Legal Aid")
    with pytest.raises(NotFound, match="member m9 not found"):
        app.join_team("m9", "patrol")

    app.form_grid_group("c1", "g1")
    assert app.form_grid_group("c1", "g1").grid_id == "g1"  # forming again is a retry
    with pytest.raises(AlreadyExists, match="grid g1 belongs to c1"):
        app.form_grid_group("c2", "g1")
    with pytest.raises(NotFound, match="grid g9"):
        app.appoint_grid_leader("g9", "m1")
    with pytest.raises(FailedPrecondition, match="member m3 is in grid g2, not g1"):
        app.appoint_grid_leader("g1", "m3")
    assert app.appoint_grid_leader("g1", "m1").leader_member_id == "m1"

    app.member_leaves("m2", "retired")
    assert app.member("m2").active is False
    with pytest.raises(FailedPrecondition, match="member m2 has left"):
        app.join_team("m2", "patrol")
    with pytest.raises(FailedPrecondition, match="member m2 has left"):
        app.appoint_grid_leader("g1", "m2")
    with pytest.raises(FailedPrecondition, match="member m2 has left"):
        app.member_leaves("m2", "retired")


def test_member_contacts_stay_out_of_the_event_store(app: DispatchApplication, contacts: Contacts) -> None:
    roster(app)
    assert contacts.member("m1") == MemberContact(NAME, PHONE)
    assert contacts.member("m2") is None  # reported without contact details
    for n in notifications(app):
        state = bytes(n.state)
        assert NAME.encode() not in state and PHONE.encode() not in state
        assert b"Zhang" not in state


# ---- public names (the 公示 board) ---------------------------------------------------------------
MEMBER_M1 = Principal(subject="member-m1", roles=frozenset({"member"}), member_id="m1", community_id="c1",
                      grid_id="g1", acting_role="member")
MEMBER_M2 = Principal(subject="member-m2", roles=frozenset({"member"}), member_id="m2", community_id="c1",
                      grid_id="g1", acting_role="member")
GATEWAY = Principal(subject="service-account-gateway", roles=frozenset({"service_gateway"}),
                    acting_role="service_gateway")


def public_name_facts(app: DispatchApplication, member_id: str) -> list[tuple[bool, str]]:
    """(shown, who) of each PublicNameChanged stored for the member, in order."""
    aggregate_id = Member.create_id(member_id)
    shown = [e.shown for e in stored_events(app)
             if e.originator_id == aggregate_id and type(e).__qualname__ == "Member.PublicNameChanged"]
    who = [e.subject for e in history(app, aggregate_id) if e.what == "PublicNameChanged"]
    assert len(shown) == len(who)
    return list(zip(shown, who, strict=True))


def test_a_member_sets_changes_and_withdraws_their_public_name(app: DispatchApplication, contacts: Contacts) -> None:
    roster(app)
    with acting_as(MEMBER_M1):
        assert app.set_public_name("m1", "  王芳 ") == ("m1", "王芳")
        assert app.set_public_name("m1", "王芳") == ("m1", "王芳")  # the same name again is no new fact
    with acting_as(GATEWAY):
        view = app.public_names(["m1", "m2", "m9"], ["u1", "u9"])
    assert (view.members, view.units) == ({"m1": "王芳"}, {"u1": "County Health Bureau"})
    with acting_as(MEMBER_M1):
        assert app.set_public_name("m1", "王**") == ("m1", "王**")
        assert app.set_public_name("m1", "") == ("m1", "")
        assert app.set_public_name("m1", "   ") == ("m1", "")  # withdrawing twice is no new fact
    assert contacts.public_names(["m1"]) == {}
    assert app.public_names(["m1"], []).members == {}
    assert public_name_facts(app, "m1") == [(True, "member-m1"), (True, "member-m1"), (False, "member-m1")]
    [fact] = [e for e in stored_events(app) if type(e).__qualname__ == "Member.PublicNameChanged"][:1]
    assert to_contract(fact) is None  # internal: never on a topic


def test_only_the_member_themself_sets_their_public_name(app: DispatchApplication, contacts: Contacts) -> None:
    roster(app)
    before = len(notifications(app))
    for who in (MEMBER_M2, SECRETARY_A, GATEWAY):
        with acting_as(who), pytest.raises(PermissionDenied, match="may not set the public name of member m1"):
            app.set_public_name("m1", "王芳")
    with acting_as(MEMBER_M1):
        app.set_public_name("m1", "王芳")
    with acting_as(MEMBER_M2), pytest.raises(PermissionDenied):
        app.set_public_name("m1", "")  # nor withdraw another's
    assert contacts.public_names(["m1"]) == {"m1": "王芳"}
    assert len(notifications(app)) == before + 1


def test_leaving_withdraws_the_public_name(app: DispatchApplication, contacts: Contacts) -> None:
    roster(app)
    with acting_as(MEMBER_M1):
        app.set_public_name("m1", "王芳")
    with acting_as(SECRETARY_A):
        app.member_leaves("m1", "transferred")
        app.member_leaves("m2", "retired")  # no public name: nothing to withdraw, no fact
    assert contacts.public_names(["m1", "m2"]) == {}
    assert public_name_facts(app, "m1") == [(True, "member-m1"), (False, "secretary-a")]
    assert public_name_facts(app, "m2") == []
    with acting_as(MEMBER_M1), pytest.raises(FailedPrecondition, match="member m1 has left"):
        app.set_public_name("m1", "王芳")
    assert contacts.public_names(["m1"]) == {}


def test_a_consent_racing_the_members_leaving_is_not_shown(app: DispatchApplication, contacts: Contacts,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The member gives a name while (in another call) they leave: whichever order the writes land in, the name
    of a member who left is neither kept nor shown."""
    roster(app)
    real_put = contacts.put_public_name

    def leave_first(member_id: str, public_name: str) -> None:  # the leaving lands between the check and the write
        with acting_as(SECRETARY_A):
            app.member_leaves(member_id, "transferred")
        real_put(member_id, public_name)

    monkeypatch.setattr(contacts, "put_public_name", leave_first)
    with acting_as(MEMBER_M1), pytest.raises(FailedPrecondition, match="member m1 has left"):
        app.set_public_name("m1", "王芳")
    assert contacts.public_names(["m1"]) == {}
    real_put("m1", "王芳")  # even a row left behind (a crash between the two writes) is not shown
    assert app.public_names(["m1"], []).members == {}


@pytest.mark.parametrize(("name", "message"), [
    ("王" * 21, "1 to 20 characters"), ("王\x07芳", "control characters"), ("王\n芳", "control characters"),
    ("王\u202e芳", "bidirectional"),
])
def test_public_name_is_a_short_display_name(app: DispatchApplication, contacts: Contacts, name: str,
                                              message: str) -> None:
    roster(app)
    with acting_as(MEMBER_M1), pytest.raises(InvalidArgument, match=message) as info:
        app.set_public_name("m1", name)
    assert info.value.field == "public_name"
    assert contacts.public_names(["m1"]) == {}
    with acting_as(MEMBER_M1):
        assert app.set_public_name("m1", "王" * 20)[1] == "王" * 20


def test_public_names_are_bounded_and_checked(app: DispatchApplication) -> None:
    roster(app)
    for field, args in (("member_ids", ([f"m{i}" for i in range(501)], [])),
                        ("unit_ids", ([], [f"u{i}" for i in range(501)])), ("member_ids", (["m 1"], []))):
        with pytest.raises(InvalidArgument) as info:
            app.public_names(*args)
        assert info.value.field == field
    assert app.public_names([f"m{i}" for i in range(500)], [f"u{i}" for i in range(500)]).units == {
        "u1": "County Health Bureau", "u2": "County Justice Bureau"}
    resident = Principal(subject="resident-1", roles=frozenset({"resident"}), acting_role="resident")
    with acting_as(resident), pytest.raises(PermissionDenied):
        app.public_names(["m1"], [])


def test_public_names_stay_out_of_the_event_store(app: DispatchApplication, contacts: Contacts) -> None:
    roster(app)
    with acting_as(MEMBER_M1):
        app.set_public_name("m1", "王芳芳")
        app.set_public_name("m1", "Wang Fangfang")
        app.set_public_name("m1", "")
    with acting_as(MEMBER_M2):
        app.set_public_name("m2", "李娜娜")
    assert contacts.public_names(["m1", "m2"]) == {"m2": "李娜娜"}
    for n in notifications(app):
        state = bytes(n.state)
        for name in ("王芳芳", "Wang Fangfang", "李娜娜"):
            assert name.encode() not in state and name.encode("unicode_escape") not in state


def test_in_memory_contacts_are_shared_by_worker_threads() -> None:
    """gRPC calls run commands in worker threads (asyncio.to_thread). With DISPATCH_DATABASE_URL=memory://
    (the default when the store is memory://) every thread must see the same table."""
    contacts = Contacts("memory://")
    errors: list[Exception] = []

    def put() -> None:
        try:
            contacts.put_member("m1", NAME, PHONE)
        except Exception as exc:
            errors.append(exc)

    worker = threading.Thread(target=put)
    worker.start()
    worker.join()
    assert errors == []
    assert contacts.member("m1") == MemberContact(NAME, PHONE)


@pytest.mark.postgres
def test_contacts_table_lives_in_the_schema_of_the_url(postgres_url: str) -> None:
    """DISPATCH_DATABASE_URL defaults to the store URL, whose `?schema=` puts the events in that schema;
    the personal-data table must follow it (intake's residents table does), not land in `public`."""
    schema = f"dispatch_contacts_{uuid.uuid4().hex[:12]}"
    member_id = f"m-{schema}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        contacts = Contacts(f"{postgres_url}?schema={schema}")
        contacts.put_member(member_id, NAME, PHONE)
        contacts.engine.dispose()
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            row = conn.execute("SELECT to_regclass(%s)", (f"{schema}.dispatch_member_contacts",)).fetchone()
        assert row is not None and row[0] is not None
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
            if conn.execute("SELECT to_regclass('public.dispatch_member_contacts')").fetchone()[0]:
                # the row landed in the shared public table: remove it
                conn.execute("DELETE FROM public.dispatch_member_contacts WHERE member_id = %s", (member_id,))


# ---- orders from residents' demands -------------------------------------------------------------
def test_demand_posted_opens_an_order_with_a_deterministic_id(app: DispatchApplication) -> None:
    changed = consume(app, posted("d1"))
    assert [type(a).__name__ for a in changed] == ["Order"]
    order = app.order_for_demand("d1")
    assert order.order_id == str(Order.create_id("d1"))
    assert (order.status, order.level, order.community_id, order.grid_id, order.category, order.special_care) == (
        "open", "community", "c1", "g1", "medical", True)
    assert order.due_at == T0 + timedelta(hours=24)
    assert app.order(order.order_id).demand_id == "d1"
    # a second delivery at another offset (e.g. re-published) opens nothing new
    assert consume(app, posted("d1")) == []
    assert event_names(app, order.id) == ["Order.Opened"]
    # facts that change nothing for the order (a rating is kept apart, for the county's pulse)
    assert consume(app, CompletionConfirmed(demand_id="d1")) == []
    assert [type(a).__name__ for a in consume(app, ServiceRated(demand_id="d1", stars=5))] == ["Rating"]
    assert event_names(app, order.id) == ["Order.Opened"]
    assert consume(app, ServiceRated(demand_id="d-unknown", stars=3)) == []  # no order: nothing to rate


def test_full_lifecycle_with_a_redo(app: DispatchApplication, clock: Clock) -> None:
    roster(app)
    order_id = open_order(app, "d1")
    assert [o.order_id for o in app.orders("c1", "open")] == [order_id]

    app.offer_order(order_id, [])
    assert app.accept_order(order_id, "m3").member_id == "m3"  # g2, but in the medical team
    done = app.complete_service(order_id, "m3", 1.5, "took her to the clinic")
    assert (done.status, done.hours) == ("completed", 1.5)

    clock.advance(hours=30)
    [reopened] = consume(app, RedoRequested(demand_id="d1", redo_count=1, member_id="m3"))
    assert (reopened.status, reopened.redo_count, reopened.member_id) == ("open", 1, None)
    assert app.order(order_id).due_at == clock.now + timedelta(hours=24)
    # the same redo again (redelivered under a new offset) changes nothing
    before = len(notifications(app))
    assert consume(app, RedoRequested(demand_id="d1", redo_count=1, member_id="m3")) == []
    assert len(notifications(app)) == before

    app.dispatch_order(order_id, "m1", "grid_leader")
    app.accept_order(order_id, "m1")
    app.complete_service(order_id, "m1", 2.0)
    assert app.order(order_id).status == "completed"
    # withdrawing a completed demand is refused by the domain (the inbox records it with no effect)
    with pytest.raises(FailedPrecondition, match="order is completed"):
        app.on_demand_event(*delivered(DemandWithdrawn(demand_id="d1", reason="resolved_elsewhere")))
    assert event_names(app, Order.create_id("d1")) == [
        "Order.Opened", "Order.Offered", "Order.Accepted", "Order.Completed", "Order.Reopened",
        "Order.Dispatched", "Order.Accepted", "Order.Completed"]
    assert [o.order_id for o in app.orders("c1", "completed")] == [order_id]


def test_demand_withdrawn_cancels(app: DispatchApplication) -> None:
    roster(app)
    order_id = open_order(app, "d2")
    app.dispatch_order(order_id, "m1")
    [cancelled] = consume(app, DemandWithdrawn(demand_id="d2", reason="resolved_elsewhere"))
    assert cancelled.status == "cancelled"
    assert app.order(order_id).status == "cancelled"
    assert app.orders("c1", "cancelled")[0].order_id == order_id
    with pytest.raises(FailedPrecondition, match="order is cancelled"):
        app.accept_order(order_id, "m1")
    # withdrawing an unknown demand: NotFound (a DomainError: the inbox records it with no effect)
    with pytest.raises(NotFound, match="order for demand d404 not found"):
        app.on_demand_event(*delivered(DemandWithdrawn(demand_id="d404", reason="x")))


def test_consumed_position_is_saved_with_the_changes_exactly_once(app: DispatchApplication) -> None:
    tracking = Tracking(DEMANDS, 5)
    assert not app.already_processed(tracking)
    envelope, event = delivered(posted("d7"))
    changed = app.on_demand_event(envelope, event)
    app.save_tracked(*changed, tracking=tracking)
    assert app.already_processed(tracking)
    assert app.already_processed(Tracking(DEMANDS, 4))  # positions are per partition and only move on
    assert not app.already_processed(Tracking(DEMANDS, 6))
    assert not app.already_processed(Tracking("kafka:intake.demands.v1:1", 5))
    before = len(notifications(app))

    # A redelivery handled before anyone noticed it was one: the handler finds the order and changes nothing,
    # and recording the same position again is refused.
    again = app.on_demand_event(envelope, event)
    assert again == []
    with pytest.raises(IntegrityError):
        app.save_tracked(*again, tracking=tracking)
    # Two consumers racing on the same message: both built the order, only the first save counts.
    racer = Order(demand_id="d7", community_id="c1", grid_id="g1", category="medical", urgency="normal",
                  special_care=False, due_at=T0, deadline_seconds=HOUR)
    with pytest.raises(IntegrityError):
        app.save_tracked(racer, tracking=tracking)
    assert len(notifications(app)) == before
    assert event_names(app, Order.create_id("d7")) == ["Order.Opened"]

    # a position with no change (a refused fact, a dead letter) is recorded too
    app.save_tracked(tracking=Tracking(DEMANDS, 6))
    assert app.already_processed(Tracking(DEMANDS, 6))
    assert len(notifications(app)) == before


@pytest.mark.parametrize("store_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
                         indirect=True)
def test_tracking_survives_a_restart(store_url: str, make_app: Callable[[], DispatchApplication]) -> None:
    first = make_app()
    first.save_tracked(*first.on_demand_event(*delivered(posted("d8"))), tracking=Tracking(DEMANDS, 42))
    second = make_app()
    assert second.already_processed(Tracking(DEMANDS, 42))
    assert second.order_for_demand("d8").status == "open"
    # and the board is rebuilt from the store
    assert [o.demand_id for o in second.orders("c1")] == ["d8"]


# ---- concurrency -------------------------------------------------------------------------------
def _race(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls in threads released together; returns each one's result or exception."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int, call: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            results[i] = call()
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


def _exactly_one_claim_wins(app: DispatchApplication, order_id: str, results: list[Any]) -> None:
    winners = [r for r in results if not isinstance(r, Exception)]
    losers = [r for r in results if isinstance(r, Exception)]
    assert len(winners) == 1 and len(losers) == 1, results
    assert isinstance(losers[0], FailedPrecondition), repr(losers[0])
    assert str(losers[0]) == "order already accepted by another member"
    order = app.order(order_id)
    assert (order.status, order.member_id) == ("accepted", winners[0].member_id)
    assert event_names(app, order.id).count("Order.Accepted") == 1


@pytest.mark.parametrize("round_", range(3))
def test_two_members_claim_at_once_first_claim_wins(app: DispatchApplication, round_: int) -> None:
    roster(app)
    order_id = open_order(app, f"d-race-{round_}")
    app.offer_order(order_id, ["medical"])
    results = _race(lambda: app.accept_order(order_id, "m1"), lambda: app.accept_order(order_id, "m3"))
    _exactly_one_claim_wins(app, order_id, results)


def test_claims_that_both_read_before_either_saves(app: DispatchApplication,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Force the interleaving: both claims load the offered order, then both save. The loser's save
    conflicts, `retrying` re-reads, and the new state refuses it."""
    roster(app)
    order_id = open_order(app, "d-race")
    app.offer_order(order_id, ["medical"])
    loaded = threading.Barrier(2, timeout=10)
    first_load = threading.local()
    real_order = app._order  # the loader every order command reads through

    def order_then_wait(oid: str) -> Order:
        result = real_order(oid)
        if not getattr(first_load, "done", False):
            first_load.done = True
            loaded.wait()
        return result

    monkeypatch.setattr(app, "_order", order_then_wait)
    results = _race(lambda: app.accept_order(order_id, "m1"), lambda: app.accept_order(order_id, "m3"))
    monkeypatch.undo()
    _exactly_one_claim_wins(app, order_id, results)


@pytest.mark.parametrize("command", ["report_unit", "form_grid_group"])
def test_concurrent_retries_of_an_idempotent_report_both_succeed(app: DispatchApplication, command: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A client retrying ReportUnit / FormGridGroup after a timeout may overlap its first call. Both
    calls read "not there yet" before either saves; the second must still be answered as a retry
    (the existing aggregate), not with a raw store IntegrityError (gRPC UNKNOWN)."""
    loaded = threading.Barrier(2, timeout=10)
    first_look = threading.local()
    real_maybe = app._maybe

    def maybe_then_wait(cls: type, aggregate_id: Any) -> Any:
        result = real_maybe(cls, aggregate_id)
        if not getattr(first_look, "done", False):
            first_look.done = True
            loaded.wait()
        return result

    monkeypatch.setattr(app, "_maybe", maybe_then_wait)
    call = (lambda: app.report_unit("u1", "c1", "County Health Bureau")) if command == "report_unit" else (
        lambda: app.form_grid_group("c1", "g1"))
    results = _race(call, call)
    monkeypatch.undo()
    assert not [r for r in results if isinstance(r, Exception)], results


SECRETARY_A = Principal(subject="secretary-a", roles=frozenset({"branch_secretary"}), community_id="c1",
                        acting_role="branch_secretary")
SECRETARY_B = Principal(subject="secretary-b", roles=frozenset({"branch_secretary"}), community_id="c1",
                        acting_role="branch_secretary")


def _both_look_first(app: DispatchApplication, cls: type, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both racing calls read "not there yet" for `cls` before either saves."""
    loaded = threading.Barrier(2, timeout=10)
    first_look = threading.local()
    real_maybe = app._maybe

    def maybe_then_wait(looked_for: type, aggregate_id: Any) -> Any:
        result = real_maybe(looked_for, aggregate_id)
        if looked_for is cls and not getattr(first_look, "done", False):
            first_look.done = True
            loaded.wait()
        return result

    monkeypatch.setattr(app, "_maybe", maybe_then_wait)


def _as(who: Principal, call: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:
        with acting_as(who):
            return call()

    return run


def test_racing_member_reports_record_every_contact_write(app: DispatchApplication, contacts: Contacts,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Two secretaries report m5 at once, with different contacts. Both write the contact before either saves the
    fact; one fact wins, and the other's write (which may be the one that stays) is recorded under its caller
    before the refusal: no contact is written without a stored event naming who wrote it."""
    app.report_unit("u1", "c1", "County Health Bureau")
    _both_look_first(app, Member, monkeypatch)
    results = _race(
        _as(SECRETARY_A, lambda: app.report_member("m5", "u1", "c1", "g1", [], [], "Wang Fang", "+86 139 0000 0001")),
        _as(SECRETARY_B, lambda: app.report_member("m5", "u1", "c1", "g1", [], [], "Li Na", "+86 139 0000 0002")))
    monkeypatch.undo()
    assert sorted(type(r).__name__ for r in results) == ["AlreadyExists", "Member"], results
    won = 0 if isinstance(results[0], Member) else 1
    winner, loser = (SECRETARY_A, SECRETARY_B)[won], (SECRETARY_A, SECRETARY_B)[1 - won]
    assert [(e.what, e.subject, e.role) for e in history(app, Member.create_id("m5"))] == [
        ("Reported", winner.subject, "branch_secretary"), ("ContactChanged", loser.subject, "branch_secretary")]
    [changed] = [e for e in stored_events(app) if type(e).__qualname__ == "Member.ContactChanged"]
    assert (changed.member_id, changed.fields, to_contract(changed)) == ("m5", ["name", "phone"], None)
    assert contacts.member("m5") in (MemberContact("Wang Fang", "+86 139 0000 0001"),
                                     MemberContact("Li Na", "+86 139 0000 0002"))
    for n in notifications(app):
        # The phones' digits are matched whole: a short run like "139" turns up in random trace ids (it did once).
        state = bytes(n.state)
        assert b"Wang" not in state and b"Li Na" not in state and b"139 0000" not in state
    assert app.repository.get(Member.create_id("m5")).active  # replayed: the change altered no roster state


def test_racing_unit_reports_record_the_losers_address_write(app: DispatchApplication, contacts: Contacts,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    _both_look_first(app, Unit, monkeypatch)
    results = _race(
        _as(SECRETARY_A, lambda: app.report_unit("u1", "c1", "County Health Bureau", webhook_url=WEBHOOK)),
        _as(SECRETARY_B, lambda: app.report_unit("u1", "c1", "County Health Bureau",
                                                 webhook_url="https://oa2.health.example.gov.cn/hook")))
    monkeypatch.undo()
    assert not [r for r in results if isinstance(r, Exception)], results
    entries = [(e.what, e.subject) for e in history(app, Unit.create_id("u1"))]
    assert [what for what, _ in entries] == ["Reported", "ContactChanged"]
    assert {subject for _, subject in entries} == {"secretary-a", "secretary-b"}
    assert contacts.unit("u1").webhook_url in (WEBHOOK, "https://oa2.health.example.gov.cn/hook")


# ---- deadlines ---------------------------------------------------------------------------------
def test_sweep_marks_overdue_and_escalates(app: DispatchApplication, clock: Clock) -> None:
    roster(app)
    late = open_order(app, "d-late", due_at=T0 + timedelta(hours=1), deadline_seconds=4 * HOUR)
    on_time = open_order(app, "d-ok", due_at=T0 + timedelta(days=3), deadline_seconds=4 * HOUR)
    app.dispatch_order(late, "m1")
    assert app.sweep_deadlines() == []

    clock.advance(hours=2)  # T0+2h: the community missed its deadline
    assert app.sweep_deadlines() == [late]
    order = app.order(late)
    assert (order.level, order.status, order.member_id) == ("town", "dispatched", "m1")
    assert order.due_at == clock.now + timedelta(hours=4)
    assert app.sweep_deadlines() == []  # not twice for the same deadline
    assert app.order(on_time).level == "community"

    clock.advance(hours=4)  # the town missed its deadline too
    assert app.sweep_deadlines() == [late]
    assert app.order(late).level == "county"
    assert app.order(late).joint_meeting_units == []

    clock.advance(hours=4)  # at the county: overdue only, once
    assert app.sweep_deadlines() == [late]
    clock.advance(days=30)
    assert app.sweep_deadlines() == [on_time]  # only the other order, now late itself
    events = stored_events(app)
    late_events = [e for e in events if str(e.originator_id) == late]
    assert [type(e).__qualname__ for e in late_events] == [
        "Order.Opened", "Order.Dispatched", "Order.Overdue", "Order.Escalated", "Order.Overdue",
        "Order.Escalated", "Order.Overdue"]
    overdue = [e for e in late_events if type(e).__qualname__ == "Order.Overdue"]
    assert [(e.level, e.member_id, e.status) for e in overdue] == [
        ("community", "m1", "dispatched"), ("town", "m1", "dispatched"), ("county", "m1", "dispatched")]
    escalated = [e for e in late_events if type(e).__qualname__ == "Order.Escalated"]
    assert all(e.automatic for e in escalated)


def test_the_pulse_counts_orders_and_ratings_by_community(app: DispatchApplication, clock: Clock) -> None:
    roster(app)
    late = open_order(app, "d-late", due_at=T0 + timedelta(hours=1), deadline_seconds=4 * HOUR)
    open_order(app, "d-ok", due_at=T0 + timedelta(days=3), deadline_seconds=4 * HOUR)
    served = open_order(app, "d-served")
    gone = open_order(app, "d-gone")
    app.dispatch_order(served, "m1")
    app.accept_order(served, "m1")
    app.complete_service(served, "m1", 1.0)
    consume(app, DemandWithdrawn(demand_id="d-gone", reason="resolved_elsewhere"))
    consume(app, ServiceRated(demand_id="d-served", stars=4))
    consume(app, ServiceRated(demand_id="d-served", stars=2))  # rated again: the last rating counts
    consume(app, ServiceRated(demand_id="d-served", stars=2))  # the same again: no new fact
    clock.advance(hours=2)
    assert app.sweep_deadlines() == [late]

    pulse = app.pulse()
    assert list(pulse) == ["c1"]
    p = pulse["c1"]
    assert (p.open, p.overdue, p.escalated, p.completed, p.ratings, p.stars) == (2, 1, 1, 1, 1, 2)
    assert app.order(gone).status == "cancelled"

    consume(app, RedoRequested(demand_id="d-served", redo_count=1))  # reopened: open again, not overdue
    p = app.pulse()["c1"]
    assert (p.open, p.overdue, p.completed) == (3, 1, 0)


def test_sweep_skips_finished_orders_and_follows_a_redo(app: DispatchApplication, clock: Clock) -> None:
    roster(app)
    done = open_order(app, "d-done", due_at=T0 + timedelta(hours=1), deadline_seconds=HOUR)
    gone = open_order(app, "d-gone", due_at=T0 + timedelta(hours=1), deadline_seconds=HOUR)
    app.dispatch_order(done, "m1")
    app.accept_order(done, "m1")
    app.complete_service(done, "m1", 1.0)
    consume(app, DemandWithdrawn(demand_id="d-gone", reason="resolved_elsewhere"))
    clock.advance(hours=5)
    assert app.sweep_deadlines() == []
    consume(app, RedoRequested(demand_id="d-done", redo_count=1))
    assert app.sweep_deadlines() == []
    clock.advance(hours=1)
    assert app.sweep_deadlines() == [done]
    assert app.order(gone).status == "cancelled"


def test_manual_escalation_uses_the_clock_and_checks_joint_meeting_units(app: DispatchApplication,
                                                                        clock: Clock) -> None:
    roster(app)
    order_id = open_order(app, "d-esc", deadline_seconds=2 * HOUR)
    clock.advance(hours=1)
    order = app.escalate_order(order_id, "no_capacity", [], "  no electrician in the grid ")
    assert (order.level, order.due_at) == ("town", clock.now + timedelta(hours=2))
    with pytest.raises(InvalidArgument, match="joint_meeting_units: required when escalating to the county"):
        app.escalate_order(order_id, "needs_resources", [])
    with pytest.raises(NotFound, match="unit u9 \\(joint_meeting_units\\) has not reported"):
        app.escalate_order(order_id, "needs_resources", ["u1", "u9"])
    for bad_reason in ("", " ", "town has no budget"):  # a published code, not free text
        with pytest.raises(InvalidArgument, match=r"^reason: "):
            app.escalate_order(order_id, bad_reason, ["u1"])
    with pytest.raises(InvalidArgument, match=r"^note: "):
        app.escalate_order(order_id, "needs_resources", ["u1"], "x" * 501)
    order = app.escalate_order(order_id, "needs_resources", ["u1", "u2"], "the town has no budget")
    assert (order.level, order.joint_meeting_units) == ("county", ["u1", "u2"])
    with pytest.raises(FailedPrecondition, match="already at the county level"):
        app.escalate_order(order_id, "no_capacity", ["u1"])


# ---- read side ---------------------------------------------------------------------------------
def test_suggestions_rank_same_grid_matching_team_and_lower_load(app: DispatchApplication) -> None:
    roster(app)  # m1 g1+medical, m2 g1, m3 g2+medical, m4 g2+patrol
    app.report_member("m5", "u1", "c1", "g1", ["medical"], [])  # like m1, but busy
    app.report_unit("u9", "c9", "Town Water Station")
    app.report_member("m6", "u9", "c9", "g1", ["medical"], [])  # another community
    app.report_member("m7", "u1", "c1", "g1", ["medical"], [])  # left
    app.member_leaves("m7", "retired")
    for busy in ("b1", "b2"):
        app.dispatch_order(open_order(app, busy), "m5")
    order_id = open_order(app, "d-suggest", grid="g1", category="medical")

    ranked = app.suggest_members(order_id, limit=10)
    assert [c["member_id"] for c in ranked] == ["m1", "m5", "m2", "m3", "m4"]
    by_id = {c["member_id"]: c for c in ranked}
    assert by_id["m1"] == {"member_id": "m1", "score": 3.5, "same_grid": True, "team_matches": True,
                           "open_orders": 0}
    assert (by_id["m5"]["open_orders"], by_id["m5"]["score"]) == (2, 2.5)
    assert (by_id["m3"]["same_grid"], by_id["m3"]["team_matches"]) == (False, True)
    assert by_id["m4"]["score"] == 0.0
    assert [c["member_id"] for c in app.suggest_members(order_id, limit=2)] == ["m1", "m5"]

    # the board follows the roster and the orders: m1 takes the two busy orders over, m5 is free
    for busy in ("b1", "b2"):
        app.dispatch_order(str(Order.create_id(busy)), "m1")
    assert [c["member_id"] for c in app.suggest_members(order_id, limit=2)] == ["m5", "m1"]
    # offered teams count as a team match too
    app.offer_order(order_id, ["patrol"])
    m4 = {c["member_id"]: c for c in app.suggest_members(order_id, limit=10)}["m4"]
    assert (m4["team_matches"], m4["score"]) == (True, 1.5)


def test_orders_listing_filters(app: DispatchApplication) -> None:
    roster(app)
    a, b = open_order(app, "la"), open_order(app, "lb")
    app.offer_order(b, [])
    assert sorted(o.order_id for o in app.orders("c1")) == sorted([a, b])
    assert [o.order_id for o in app.orders("c1", "offered")] == [b]
    assert app.orders("c2") == []
    assert sorted(o.order_id for o in app.orders()) == sorted([a, b])


def test_command_refusals_name_the_field_or_the_thing(app: DispatchApplication) -> None:
    roster(app)
    order_id = open_order(app, "d-ref")
    with pytest.raises(InvalidArgument, match="order_id: must be a uuid"):
        app.order("not-a-uuid")
    with pytest.raises(NotFound, match=f"order {Order.create_id('nope')} not found"):
        app.order(str(Order.create_id("nope")))
    with pytest.raises(NotFound, match="not found"):  # a member's id is no order's id
        app.order(str(app.member("m1").id))
    with pytest.raises(NotFound, match="member m9 not found"):
        app.dispatch_order(order_id, "m9")
    with pytest.raises(InvalidArgument, match="dispatched_by"):
        app.dispatch_order(order_id, "m1", "resident")
    with pytest.raises(InvalidArgument, match="teams"):
        app.offer_order(order_id, ["Not A Code"])
    with pytest.raises(InvalidArgument, match="reason"):
        app.decline_order(order_id, "m1", "I'm busy")
    with pytest.raises(InvalidArgument, match="notes"):
        app.complete_service(order_id, "m1", 1.0, "x" * 1001)
    with pytest.raises(FailedPrecondition, match="order is open"):
        app.accept_order(order_id, "m1")


# ---- themed party days (主题党日) ---------------------------------------------------------------
START, END = T0 + timedelta(days=13), T0 + timedelta(days=13, hours=3)
CST = timezone(timedelta(hours=8))


def schedule(app: DispatchApplication, activity_id: str = "a1", capacity: int = 3, **kw: Any) -> Any:
    args: dict[str, Any] = {"activity_id": activity_id, "unit_id": "u1", "community_id": "c1",
                            "theme": "free_health_check", "title": "Free health checks", "starts_at": START,
                            "ends_at": END, "capacity": capacity} | kw
    return app.schedule_activity(**args)


def test_schedule_activity_is_a_retry_with_the_same_terms(app: DispatchApplication) -> None:
    roster(app)
    activity = schedule(app, starts_at=START.astimezone(CST), ends_at=END.astimezone(CST))
    assert (activity.activity_id, activity.unit_id, activity.community_id, activity.status) == (
        "a1", "u1", "c1", "scheduled")
    assert activity.starts_at == START and activity.starts_at.utcoffset() == timedelta(0)  # stored in UTC
    before = len(notifications(app))
    assert schedule(app).id == activity.id  # same terms (+08:00 or Z): a retry, no new fact
    assert len(notifications(app)) == before
    with pytest.raises(AlreadyExists, match=r"^activity a1 is already scheduled with other terms$"):
        schedule(app, capacity=4)
    assert app.activity("a1").capacity == 3


def test_schedule_activity_needs_the_unit_reported_to_that_community(app: DispatchApplication) -> None:
    with pytest.raises(NotFound, match=r"^unit u1 has not reported$"):
        schedule(app)
    roster(app)
    with pytest.raises(FailedPrecondition, match=r"^unit u1 reported to c1, not c2$"):
        schedule(app, community_id="c2")
    with pytest.raises(NotFound, match=r"^activity a1 not found$"):
        app.activity("a1")


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"activity_id": "a 1"}, "activity_id"),
    ({"unit_id": ""}, "unit_id"),
    ({"community_id": "c/1"}, "community_id"),
    ({"theme": "Free Health Check"}, "theme"),
    ({"title": ""}, "title"),
    ({"title": "x" * 101}, "title"),
    ({"starts_at": START.replace(tzinfo=None)}, "starts_at"),
    ({"ends_at": END.replace(tzinfo=None)}, "ends_at"),
    ({"ends_at": START}, "ends_at"),
    ({"capacity": 0}, "capacity"),
    ({"capacity": 10_001}, "capacity"),
    ({"unit_id": "u404", "capacity": 0}, "capacity"),  # a malformed request is refused before the lookups
])
def test_schedule_activity_validates_fields(app: DispatchApplication, kwargs: dict[str, Any], field: str) -> None:
    roster(app)
    with pytest.raises(InvalidArgument) as info:
        schedule(app, **kwargs)
    assert info.value.field == field


def test_activity_lifecycle(app: DispatchApplication, make_app: Callable[[], DispatchApplication]) -> None:
    roster(app)
    activity_id = schedule(app, capacity=2).id
    app.sign_up_resident("a1", rid(1))
    before = len(notifications(app))
    assert app.sign_up_resident("a1", rid(1)).residents == [rid(1)]  # again: no new fact
    assert len(notifications(app)) == before
    assert app.sign_up_resident("a1", rid(2)).residents == [rid(1), rid(2)]
    with pytest.raises(FailedPrecondition, match=r"^activity a1 is full \(2 residents signed up\)$"):
        app.sign_up_resident("a1", rid(3))
    app.check_in_member("a1", "m1")
    assert app.check_in_member("a1", "m1").members == ["m1"]
    assert app.check_in_member("a1", "m3").members == ["m1", "m3"]
    app.member_leaves("m4", "transferred")
    with pytest.raises(FailedPrecondition, match=r"^member m4 has left$"):
        app.check_in_member("a1", "m4")
    with pytest.raises(NotFound, match=r"^member m9 not found$"):
        app.check_in_member("a1", "m9")
    done = app.complete_activity("a1", 3.0)
    assert (done.status, done.hours) == ("completed", 3.0)
    for refused_call in (lambda: app.complete_activity("a1", 1.0), lambda: app.sign_up_resident("a1", rid(4)),
                         lambda: app.check_in_member("a1", "m2")):
        with pytest.raises(FailedPrecondition, match=r"^activity a1 is completed$"):
            refused_call()
    assert event_names(app, activity_id) == [
        "Activity.Scheduled", "Activity.ResidentSignedUp", "Activity.ResidentSignedUp",
        "Activity.MemberCheckedIn", "Activity.MemberCheckedIn", "Activity.Completed"]
    # another process on the same store sees the same activity (memory:// is per process: skip the check)
    if notifications(make_app()):
        again = make_app().activity("a1")
        assert (again.status, again.residents, again.members, again.hours, again.starts_at) == (
            "completed", [rid(1), rid(2)], ["m1", "m3"], 3.0, START)


def test_a_busy_activity_loads_from_a_snapshot(app: DispatchApplication,
                                               make_app: Callable[[], DispatchApplication]) -> None:
    """Sign-ups grow an activity's history (up to 10,000 events); every 100th event takes a snapshot, so
    a command loads the snapshot and the events after it, on each store."""
    roster(app)
    schedule(app, capacity=300)
    for i in range(250):
        app.sign_up_resident("a1", rid(i))
    app.check_in_member("a1", "m1")
    snapshots = list(app.snapshots.get(Activity.create_id("a1"))) if app.snapshots else []
    assert [s.originator_version for s in snapshots] == [100, 200]
    reader = make_app() if notifications(make_app()) else app
    activity = reader.activity("a1")
    assert (activity.version, len(activity.residents), activity.residents[-1], activity.members) == (
        252, 250, rid(249), ["m1"])
    assert activity.starts_at == START and activity.status == "scheduled"
    assert reader.sign_up_resident("a1", rid(0)).version == 252  # still no repeat after a snapshot


def test_activities_listed_soonest_first_and_upcoming_only(app: DispatchApplication, clock: Clock) -> None:
    roster(app)
    app.report_unit("u9", "c9", "Elsewhere Bureau")
    schedule(app, "late", starts_at=START + timedelta(days=2), ends_at=END + timedelta(days=2))
    schedule(app, "soon", starts_at=START.astimezone(CST), ends_at=END.astimezone(CST))
    schedule(app, "past", starts_at=T0 - timedelta(days=2), ends_at=T0 - timedelta(days=2) + timedelta(hours=2))
    schedule(app, "done", unit_id="u2", starts_at=START + timedelta(days=1), ends_at=END + timedelta(days=1))
    schedule(app, "there", unit_id="u9", community_id="c9")
    app.complete_activity("done", 2.0)
    assert [a.activity_id for a in app.activities("c1")] == ["past", "soon", "done", "late"]
    assert [a.activity_id for a in app.activities("c1", upcoming_only=True)] == ["soon", "late"]
    assert [a.activity_id for a in app.activities("c1", unit_id="u2")] == ["done"]
    assert [a.activity_id for a in app.activities("c1", limit=2)] == ["past", "soon"]
    clock.advance(days=13, hours=2)  # "soon" is under way: still open for check-in
    assert [a.activity_id for a in app.activities("c1", upcoming_only=True)] == ["soon", "late"]
    clock.advance(hours=2)
    assert [a.activity_id for a in app.activities("c1", upcoming_only=True)] == ["late"]
    assert app.activities("c1")[1].residents == []  # whole activities, as GetActivity
    for kwargs, field in (({"community_id": ""}, "community_id"), ({"community_id": "c1", "unit_id": "u 1"},
                          "unit_id"), ({"community_id": "c1", "limit": -1}, "limit"),
                          ({"community_id": "c1", "limit": 201}, "limit")):
        with pytest.raises(InvalidArgument) as info:
            app.activities(**kwargs)
        assert info.value.field == field


def test_the_roster_of_a_community(app: DispatchApplication) -> None:
    roster(app)
    app.report_unit("u9", "c9", "Elsewhere Bureau")
    app.report_member("m9", "u9", "c9", "g9", [], [])
    app.form_grid_group("c1", "g1")
    app.appoint_grid_leader("g1", "m2")
    app.join_team("m2", "legal_aid")
    app.member_leaves("m4", "moved")
    view = app.roster("c1")
    assert [(u.unit_id, u.members_reported) for u in view.units] == [("u1", 1), ("u2", 2)]
    assert [(m.member_id, m.unit_id, m.grid_id, m.teams, m.active) for m in view.members] == [
        ("m1", "u1", "g1", ["medical"], True), ("m2", "u2", "g1", ["legal_aid"], True),
        ("m3", "u2", "g2", ["medical"], True), ("m4", "u2", "g2", ["patrol"], False)]
    assert [(g.grid_id, g.leader_member_id) for g in view.grid_groups] == [("g1", "m2")]
    view.members[0].teams.append("x")  # a copy: the board is not the caller's
    assert app.roster("c1").members[0].teams == ["medical"]
    with pytest.raises(InvalidArgument):
        app.roster("")


def test_check_in_needs_a_member_of_the_activity_community(app: DispatchApplication) -> None:
    roster(app)
    app.report_unit("u9", "c2", "Town Tax Office")
    app.report_member("m9", "u9", "c2", "g9", [], [])
    schedule(app)
    with pytest.raises(FailedPrecondition, match=r"^member m9 serves community c2, not c1$"):
        app.check_in_member("a1", "m9")


def test_activity_command_refusals_name_the_field(app: DispatchApplication) -> None:
    roster(app)
    schedule(app)
    for hours in (0, -1, 24.5):
        with pytest.raises(InvalidArgument, match=r"^hours: must be more than 0 and at most 24$"):
            app.complete_activity("a1", hours)
    with pytest.raises(InvalidArgument, match=r"^hours: "):
        app.complete_activity("a404", 0)  # invalid whatever the state, even of an unknown activity
    with pytest.raises(NotFound, match=r"^activity a404 not found$"):
        app.complete_activity("a404", 1)
    with pytest.raises(InvalidArgument) as info:
        app.sign_up_resident("a1", "r 1")
    assert info.value.field == "resident_id"
    with pytest.raises(InvalidArgument) as info:
        app.check_in_member("a1", "")
    assert info.value.field == "member_id"
    with pytest.raises(InvalidArgument) as info:
        app.sign_up_resident("", rid(1))
    assert info.value.field == "activity_id"


@pytest.mark.parametrize("round_", range(2))
def test_concurrent_sign_ups_never_exceed_the_capacity(app: DispatchApplication, round_: int) -> None:
    roster(app)
    schedule(app, capacity=1)
    results = _race(lambda: app.sign_up_resident("a1", rid(1)), lambda: app.sign_up_resident("a1", rid(2)))
    losers = [r for r in results if isinstance(r, Exception)]
    assert len(losers) == 1 and isinstance(losers[0], FailedPrecondition), results
    assert str(losers[0]) == "activity a1 is full (1 residents signed up)"
    assert len(app.activity("a1").residents) == 1


def test_concurrent_retries_of_schedule_activity_both_succeed(app: DispatchApplication) -> None:
    roster(app)
    results = _race(lambda: schedule(app), lambda: schedule(app))
    assert not [r for r in results if isinstance(r, Exception)], results
    assert event_names(app, results[0].id) == ["Activity.Scheduled"]


# ---- contacts for notify ------------------------------------------------------------------------
EMAIL, OPENID = "zhang.xiuying@example.cn", "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
UNIT_EMAIL, WEBHOOK = "dangban@health.example.gov.cn", "https://oa.health.example.gov.cn/hooks/sandan"


def test_member_contact_with_email_and_wechat(app: DispatchApplication, contacts: Contacts) -> None:
    app.report_unit("u1", "c1", "County Health Bureau")
    app.report_member("m1", "u1", "c1", "g1", [], [], NAME, PHONE, f" {EMAIL} ", OPENID)
    app.report_member("m2", "u1", "c1", "g1", [], [], email=EMAIL)  # any one contact is kept
    app.report_member("m3", "u1", "c1", "g2", [], [])
    assert contacts.member("m1") == MemberContact(NAME, PHONE, EMAIL, OPENID)
    assert contacts.member("m2") == MemberContact("", "", EMAIL, None)
    assert app.member_contact("m1") == MemberContactCard("m1", "c1", "u1", NAME, PHONE, EMAIL, OPENID)
    assert app.member_contact("m2") == MemberContactCard("m2", "c1", "u1", "", "", EMAIL, "")
    assert app.member_contact("m3") == MemberContactCard("m3", "c1", "u1")  # known, but no way to reach them
    with pytest.raises(NotFound, match=r"^member m404 not found$"):
        app.member_contact("m404")
    with pytest.raises(InvalidArgument, match=r"^member_id: "):
        app.member_contact("")
    for n in notifications(app):
        state = bytes(n.state)
        assert EMAIL.encode() not in state and OPENID.encode() not in state


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"email": "zhang"}, "email"),
    ({"email": "zhang@example"}, "email"),
    ({"email": "zhang xiuying@example.cn"}, "email"),
    ({"email": "a@b@example.cn"}, "email"),
    ({"email": "z" * 250 + "@example.cn"}, "email"),
    ({"wechat_openid": "o/../x"}, "wechat_openid"),
    ({"wechat_openid": "o" * 65}, "wechat_openid"),
])
def test_member_contact_fields_are_validated(app: DispatchApplication, contacts: Contacts,
                                            kwargs: dict[str, Any], field: str) -> None:
    app.report_unit("u1", "c1", "County Health Bureau")
    with pytest.raises(InvalidArgument) as info:
        app.report_member("m1", "u1", "c1", "g1", [], [], **kwargs)
    assert info.value.field == field
    assert contacts.member("m1") is None and not [e for e in stored_events(app) if "Member" in type(e).__qualname__]


def test_unit_contact(app: DispatchApplication, contacts: Contacts) -> None:
    app.report_unit("u1", "c1", "County Health Bureau", UNIT_EMAIL, WEBHOOK)
    app.report_unit("u2", "c1", "County Justice Bureau")
    assert contacts.unit("u1") == UnitContact(UNIT_EMAIL, WEBHOOK)
    assert contacts.unit("u2") is None
    assert app.unit_contact("u1") == UnitContactCard("u1", "c1", "County Health Bureau", UNIT_EMAIL, WEBHOOK)
    assert app.unit_contact("u2") == UnitContactCard("u2", "c1", "County Justice Bureau")
    with pytest.raises(NotFound, match=r"^unit u404 not found$"):
        app.unit_contact("u404")

    # reporting again is a retry of the fact; addresses given then replace the stored ones, and that change is an
    # internal fact naming the fields (who made it is on the stored event, like every command's)
    before = len(notifications(app))
    app.report_unit("u1", "c1", "County Health Bureau", webhook_url="http://10.0.0.5:8080/hook")
    app.report_unit("u2", "c1", "County Justice Bureau", contact_email="sfj@example.gov.cn")
    changes = stored_events(app)[before:]
    assert [(type(e).__qualname__, e.unit_id, e.fields) for e in changes] == [
        ("Unit.ContactChanged", "u1", ["webhook_url"]), ("Unit.ContactChanged", "u2", ["contact_email"])]
    assert [to_contract(e) for e in changes] == [None, None]  # never published
    assert contacts.unit("u1") == UnitContact(UNIT_EMAIL, "http://10.0.0.5:8080/hook")
    assert app.unit_contact("u2").contact_email == "sfj@example.gov.cn"
    # the same addresses again change nothing, so no fact
    before = len(notifications(app))
    app.report_unit("u1", "c1", "County Health Bureau", UNIT_EMAIL, "http://10.0.0.5:8080/hook")
    app.report_unit("u2", "c1", "County Justice Bureau")
    assert len(notifications(app)) == before
    # a refused report writes no address and stores nothing
    with pytest.raises(AlreadyExists):
        app.report_unit("u1", "c2", "County Health Bureau", contact_email="other@example.org")
    assert contacts.unit("u1").contact_email == UNIT_EMAIL
    assert len(notifications(app)) == before
    for n in notifications(app):
        state = bytes(n.state)
        assert UNIT_EMAIL.encode() not in state and WEBHOOK.encode() not in state and b"10.0.0.5" not in state
        assert b"sfj@" not in state and b"other@" not in state
    # replaying the store gives the state the commands left
    for unit_id, name in (("u1", "County Health Bureau"), ("u2", "County Justice Bureau")):
        replayed = app.repository.get(Unit.create_id(unit_id))
        assert (replayed.unit_id, replayed.community_id, replayed.unit_name, replayed.version) == (
            unit_id, "c1", name, 2)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"contact_email": "dangban"}, "contact_email"),
    ({"webhook_url": "ftp://example.org/hook"}, "webhook_url"),
    ({"webhook_url": "example.org/hook"}, "webhook_url"),
    ({"webhook_url": "https://"}, "webhook_url"),
    ({"webhook_url": "https://user:secret@example.org/hook"}, "webhook_url"),
    ({"webhook_url": "https://example.org/a hook"}, "webhook_url"),
    ({"webhook_url": "https://example.org:99999/hook"}, "webhook_url"),
    ({"webhook_url": "https://[::1/hook"}, "webhook_url"),
    ({"webhook_url": "https://example.org/" + "x" * 500}, "webhook_url"),
])
def test_unit_contact_fields_are_validated(app: DispatchApplication, contacts: Contacts,
                                          kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        app.report_unit("u1", "c1", "County Health Bureau", **kwargs)
    assert info.value.field == field
    assert contacts.unit("u1") is None and notifications(app) == []


@pytest.mark.parametrize("store_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
                         indirect=True)  # an in-memory database does not outlive its engine
def test_contacts_tables_of_an_older_version_get_the_new_columns(store_url: str) -> None:
    """Before email/wechat_openid, the member table had name and phone only: start-up adds the columns."""
    engine = engine_for(store_url)
    old = MetaData()
    Table("dispatch_member_contacts", old, Column("member_id", String(64), primary_key=True),
          Column("name", String(100), nullable=False), Column("phone", String(32), nullable=False))
    old.create_all(engine)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO dispatch_member_contacts VALUES ('m1', :n, :p)"), {"n": NAME, "p": PHONE})
    engine.dispose()
    contacts = Contacts(store_url)
    try:
        assert contacts.member("m1") == MemberContact(NAME, PHONE)
        contacts.put_member("m1", NAME, PHONE, EMAIL, OPENID)
        assert contacts.member("m1") == MemberContact(NAME, PHONE, EMAIL, OPENID)
        Contacts(store_url).engine.dispose()  # a second start changes nothing
    finally:
        contacts.engine.dispose()


# ---- what goes out -----------------------------------------------------------------------------
def _busy_day(app: DispatchApplication, clock: Clock) -> None:
    """Every kind of stored event at least once."""
    roster(app)
    app.join_team("m2", "legal_aid")
    app.form_grid_group("c1", "g1")
    app.appoint_grid_leader("g1", "m1")
    a = open_order(app, "e1", due_at=T0 + timedelta(hours=1), deadline_seconds=HOUR)
    app.dispatch_order(a, "m1", "grid_leader")
    app.decline_order(a, "m1", "unavailable")
    app.accept_order(a, "m3")
    app.complete_service(a, "m3", 2.0, f"private notes: called {PHONE}")
    consume(app, RedoRequested(demand_id="e1", redo_count=1, member_id="m3"))
    b = open_order(app, "e2", due_at=T0 + timedelta(hours=1), deadline_seconds=HOUR)
    app.offer_order(b, ["patrol"])
    app.escalate_order(b, "no_capacity", [], "private notes: the town should call Zhang")
    app.escalate_order(b, "needs_resources", ["u1", "u2"])
    clock.advance(hours=3)
    app.sweep_deadlines()
    open_order(app, "e3")
    consume(app, DemandWithdrawn(demand_id="e3", reason="resolved_elsewhere"))
    app.member_leaves("m4", "transferred")
    app.report_unit("u1", "c1", "County Health Bureau", UNIT_EMAIL, WEBHOOK)
    app.report_member("m5", "u2", "c1", "g1", [], [], NAME, PHONE, EMAIL, OPENID)
    schedule(app, starts_at=START.astimezone(CST), ends_at=END.astimezone(CST))
    app.sign_up_resident("a1", rid(1))
    app.sign_up_resident("a1", rid(2))
    app.check_in_member("a1", "m5")
    app.complete_activity("a1", 2.5)


def test_every_stored_event_maps_to_a_valid_contract_without_personal_data(app: DispatchApplication,
                                                                          clock: Clock) -> None:
    _busy_day(app, clock)
    seen: set[str] = set()
    for n in notifications(app):
        domain_event = app.mapper.to_domain_event(n)
        contract = to_contract(domain_event)
        assert contract is None or isinstance(contract, Event)
        if contract is None:
            continue
        seen.add(contract.TYPE)
        # it survives the wire format and validates as its published model
        wire = encode(contract, event_id=f"dispatch:{n.id}", producer="dispatch", occurred_at=T0,
                      correlation_id="c", causation_id=None)
        _, back = decode(wire)
        assert back == contract
        text = wire.decode()
        assert NAME not in text and PHONE not in text and "private notes" not in text
        assert "Zhang" not in text and "zhang" not in text
        assert EMAIL not in text and OPENID not in text and UNIT_EMAIL not in text and WEBHOOK not in text
        assert "@" not in text and "http" not in text
        assert '"name"' not in text and '"phone"' not in text and '"notes"' not in text and '"note"' not in text
    assert seen == {
        "UnitReported", "MemberReported", "TeamJoined", "MemberLeft", "GridGroupFormed", "GridLeaderAppointed",
        "OrderOpened", "OrderDispatched", "OrderOffered", "OrderAccepted", "OrderDeclined", "ServiceCompleted",
        "OrderEscalated", "OrderOverdue", "OrderCancelled", "OrderReopened",
        "ActivityScheduled", "ResidentSignedUp", "MemberCheckedIn", "ActivityCompleted"}


def test_activity_events_publish_utc_times_and_counts(app: DispatchApplication) -> None:
    roster(app)
    schedule(app, starts_at=START.astimezone(CST), ends_at=END.astimezone(CST))
    app.sign_up_resident("a1", rid(1))
    app.check_in_member("a1", "m3")
    app.complete_activity("a1", 3)
    published = [to_contract(e) for e in stored_events(app) if type(e).__qualname__.startswith("Activity.")]
    assert [c.model_dump() for c in published] == [
        {"activity_id": "a1", "community_id": "c1", "unit_id": "u1", "theme": "free_health_check",
         "title": "Free health checks", "starts_at": START, "ends_at": END, "capacity": 3},
        {"activity_id": "a1", "community_id": "c1", "resident_id": rid(1)},
        {"activity_id": "a1", "community_id": "c1", "member_id": "m3", "unit_id": "u2"},  # the member's unit
        {"activity_id": "a1", "community_id": "c1", "unit_id": "u1", "hours": 3.0, "members_checked_in": 1,
         "residents_signed_up": 1},
    ]
    assert all(c.key() == "a1" and c.TOPIC == "dispatch.activities.v1" for c in published)
    assert published[0].starts_at.utcoffset() == timedelta(0)


def test_completed_service_publishes_has_notes_only(app: DispatchApplication) -> None:
    roster(app)
    order_id = open_order(app, "n1")
    app.dispatch_order(order_id, "m1")
    app.accept_order(order_id, "m1")
    app.complete_service(order_id, "m1", 1.0, "she lives alone on the 3rd floor")
    [completed] = [to_contract(e) for e in stored_events(app) if type(e).__qualname__ == "Order.Completed"]
    assert completed.model_dump() == {"order_id": order_id, "demand_id": "n1", "member_id": "m1", "hours": 1.0,
                                      "has_notes": True}


@pytest.mark.parametrize(("command", "field"), [
    ("member_with_11_teams", "teams"),
    ("member_with_21_skills", "skills"),
    ("offer_to_11_teams", "teams"),
    ("county_meeting_of_51_units", "joint_meeting_units"),
])
def test_lists_beyond_the_contract_limits_are_refused_not_stored(app: DispatchApplication, command: str,
                                                                 field: str) -> None:
    """The contract caps teams (10), skills (20) and joint_meeting_units (50). A command that stores a
    longer list would make `to_contract` raise for that stored event, and the relay would retry that
    batch forever: the command must be refused with INVALID_ARGUMENT instead."""
    roster(app)
    codes = [f"team_{i}" for i in range(21)]
    order_id = open_order(app, "lim")
    with pytest.raises(InvalidArgument) as info:
        if command == "member_with_11_teams":
            app.report_member("m9", "u1", "c1", "g1", codes[:11], [])
        elif command == "member_with_21_skills":
            app.report_member("m9", "u1", "c1", "g1", [], codes[:21])
        elif command == "offer_to_11_teams":
            app.offer_order(order_id, codes[:11])
        else:
            units = [f"unit{i}" for i in range(51)]
            for unit in units:
                app.report_unit(unit, "c1", unit)
            app.escalate_order(order_id, "no_capacity", [])
            app.escalate_order(order_id, "needs_resources", units)
    assert info.value.field == field
    for e in stored_events(app):
        to_contract(e)  # none of them is a poison pill for the relay


# ---- special care: a coarse flag on the topic, the tags stay in intake ----------------------------------------
def test_special_care_comes_from_old_tags_or_the_new_flag_and_only_the_flag_goes_out(app: DispatchApplication
                                                                                      ) -> None:
    consume(app, posted("d-old"))  # written before the flag: the tags say it
    consume(app, posted("d-new", care_tags=(), special_care=True))
    consume(app, posted("d-none", care_tags=()))
    flags = {d: app.order_for_demand(d).special_care for d in ("d-old", "d-new", "d-none")}
    assert flags == {"d-old": True, "d-new": True, "d-none": False}
    opened = [to_contract(e) for e in stored_events(app) if type(e).__qualname__ == "Order.Opened"]
    assert [(o.demand_id, o.care_tags, o.special_care) for o in opened] == [
        ("d-old", [], True), ("d-new", [], True), ("d-none", [], False)]
    # dispatch keeps the flag only: no tag in its own store either
    assert not any(b"elderly_alone" in n.state for n in notifications(app))


def test_orders_opened_before_the_flag_read_it_from_their_tags(app: DispatchApplication) -> None:
    """A stored Order.Opened of class version 1 (tags) upcasts to the flag."""
    consume(app, posted("d-v2", care_tags=(), special_care=True))
    (current,) = [n for n in notifications(app) if n.topic.endswith("Order.Opened")]
    state = json.loads(current.state)
    assert state.pop("class_version") == 2 and state.pop("special_care") is True
    for demand_id, tags in (("d-v1", ["disabled"]), ("d-v1-none", [])):
        order_id = Order.create_id(demand_id)
        old = {**state, "demand_id": demand_id, "care_tags": tags}
        app.recorder.insert_events([StoredEvent(order_id, 1, current.topic, json.dumps(old).encode())])
    assert app.order(str(Order.create_id("d-v1"))).special_care is True
    assert app.order(str(Order.create_id("d-v1-none"))).special_care is False
