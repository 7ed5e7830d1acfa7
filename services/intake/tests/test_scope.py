"""Scope, method by method, over gRPC with real signed tokens (the local issuer) and at the application level.

Every Intake method is called by each person its access.toml scope text speaks of: allowed inside the scope,
PERMISSION_DENIED for a caller whose role the method allows but who is outside its scope (and nothing is stored:
no event, no row), UNAUTHENTICATED without a token. Then the rules in detail: residents register themselves,
workers act for residents (and the history says so), members see a demand only while they hold it, contact
releases are recorded and never published.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import create_engine, text

from sandan_contracts.events import OrderAccepted, ServiceCompleted
from sandan_contracts.rpc import intake_pb2 as pb
from sandan_eventbus.auth.devissuer import LocalIssuer
from sandan_eventbus.auth.principal import PermissionDenied, Principal, acting_as
from sandan_eventbus.auth.scopes import Places
from sandan_eventbus.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from sandan_eventbus.trace import traced
from sandan_intake.application import IntakeApplication
from sandan_intake.domain import Demand
from sandan_intake.keys import Keyring
from sandan_intake.publishing import to_contract
from sandan_intake.residents import ResidentStore
from services.intake.tests.support import Caller, Served, serving, status_of

PLACES = Places.parse("""
[county]
id = "taihe"
[communities.c-1]
town = "t-1"
[communities.c-2]
town = "t-2"
""")

# name -> (token subject, roles, place and binding claims)
PEOPLE: dict[str, tuple[str, list[str], dict[str, str]]] = {
    "resident": ("sub-liu", ["resident"], {}),
    "other_resident": ("sub-wang", ["resident"], {}),
    "grid_worker": ("sub-gw-1", ["grid_worker"], {"community_id": "c-1"}),
    "grid_worker_elsewhere": ("sub-gw-2", ["grid_worker"], {"community_id": "c-2"}),
    "secretary": ("sub-sec-1", ["branch_secretary"], {"community_id": "c-1"}),
    "secretary_elsewhere": ("sub-sec-2", ["branch_secretary"], {"community_id": "c-2"}),
    "holder": ("sub-m-1", ["member"], {"member_id": "m-1"}),
    "member": ("sub-m-2", ["member"], {"member_id": "m-2"}),
    "impostor": ("sub-m-2", ["member"], {"member_id": "m-2"}),  # asks as m-1 (see `request`)
    "grid_leader": ("sub-gl-1", ["grid_leader"], {"community_id": "c-1", "grid_id": "g-1"}),
    "grid_leader_elsewhere": ("sub-gl-2", ["grid_leader"], {"community_id": "c-1", "grid_id": "g-2"}),
    "town": ("sub-town-1", ["town_office"], {"town_id": "t-1"}),
    "town_elsewhere": ("sub-town-2", ["town_office"], {"town_id": "t-2"}),
    "county": ("sub-county", ["county_office"], {"county_id": "taihe"}),
    "county_elsewhere": ("sub-county-x", ["county_office"], {"county_id": "elsewhere"}),
    "unit_admin": ("sub-unit", ["unit_admin"], {"unit_id": "u-1"}),
    "partner": ("sub-partner", ["partner"], {}),
    "operator": ("sub-operator", ["operator"], {}),
    "notify": ("service-account-notify", ["service_notify"], {}),
    "gateway": ("service-account-gateway", ["service_gateway"], {}),  # Open311: it checked the partner's key
}
WRITERS = ["resident", "grid_worker", "secretary"]
WRITERS_ELSEWHERE = ["other_resident", "grid_worker_elsewhere", "secretary_elsewhere"]

# method -> (allowed inside their scope, allowed by role but outside their scope): access.toml's scope text
SCOPES: dict[str, tuple[list[str], list[str]]] = {
    "RegisterResident": (["grid_worker", "secretary", "gateway"], ["grid_worker_elsewhere", "secretary_elsewhere"]),
    "PublishMenuItem": (["secretary"], ["secretary_elsewhere"]),
    "RetireMenuItem": (["secretary"], ["secretary_elsewhere"]),
    "ListMenu": (["resident", "member", "grid_worker_elsewhere", "grid_leader_elsewhere", "secretary_elsewhere",
                  "town_elsewhere", "county_elsewhere", "unit_admin", "partner", "operator"], []),  # public
    # the gateway: only for a resident it registered (below); Liu registered himself
    "PostDemand": (WRITERS, [*WRITERS_ELSEWHERE, "gateway"]),
    "WithdrawDemand": (WRITERS, WRITERS_ELSEWHERE),
    "ConfirmCompletion": (WRITERS, WRITERS_ELSEWHERE),
    "RateService": (WRITERS, WRITERS_ELSEWHERE),
    "RequestRedo": (WRITERS, WRITERS_ELSEWHERE),
    "GetDemand": (["resident", "holder", "grid_leader", "grid_worker", "secretary", "town", "county"],
                  ["other_resident", "member", "grid_leader_elsewhere", "grid_worker_elsewhere",
                   "secretary_elsewhere", "town_elsewhere", "county_elsewhere"]),
    "ListResidentDemands": (WRITERS, WRITERS_ELSEWHERE),
    "GetDemandHistory": (["resident", "secretary", "town", "county"],
                         ["other_resident", "secretary_elsewhere", "town_elsewhere", "county_elsewhere"]),
    "GetServiceContact": (["holder", "secretary"], ["member", "impostor", "secretary_elsewhere"]),
    "GetDemandContact": (["notify"], []),  # notify's identity has no narrower scope; other roles: by role
    "CorrectResident": (WRITERS, WRITERS_ELSEWHERE),
    "ExportResidentData": (["resident", "secretary"], ["other_resident", "secretary_elsewhere"]),
    "EraseResident": (["resident", "secretary"], ["other_resident", "secretary_elsewhere"]),
}
# Allowed calls that store something (an event or a row); every other allowed call stores nothing.
STORING = {"RegisterResident", "PublishMenuItem", "RetireMenuItem", "PostDemand", "WithdrawDemand",
           "ConfirmCompletion", "RateService", "RequestRedo", "GetServiceContact", "GetDemandContact",
           "CorrectResident", "ExportResidentData", "EraseResident"}  # the last three: records on the resident
METHODS = [m.name for m in pb.DESCRIPTOR.services_by_name["Intake"].methods]
DESCRIPTION = "Please fetch my medicine"


@dataclass
class World:
    """c-1 (town t-1) and c-2 (town t-2) in county taihe. Liu (a resident with an account, c-1) posted two
    demands in grid g-1: `posted`, and `held`, accepted and served by member m-1."""

    served: Served
    resident_id: str
    posted: str
    held: str

    def as_(self, name: str) -> Caller:
        subject, roles, claims = PEOPLE[name]
        return self.served.as_(subject, roles, **claims)


def demand_request(resident_id: str, client_request_id: str, **overrides: Any) -> pb.PostDemandRequest:
    fields: dict[str, Any] = {"client_request_id": client_request_id, "resident_id": resident_id,
                              "community_id": "c-1", "grid_id": "g-1", "other_text": "errand",
                              "description": DESCRIPTION, "urgency": "normal", "channel": "app"}
    fields.update(overrides)
    return pb.PostDemandRequest(**fields)


def register_request(community_id: str = "c-1") -> pb.RegisterResidentRequest:
    return pb.RegisterResidentRequest(community_id=community_id, name="Liu Yang", phone="13900001111",
                                      address="12 Well Street")


@pytest.fixture
async def world(local_issuer: LocalIssuer) -> AsyncIterator[World]:
    app = IntakeApplication(ResidentStore("memory://", Keyring.generate()), "memory://", places=PLACES)
    async with serving(local_issuer, app) as served:
        w = World(served, "", "", "")
        liu = w.as_("resident")
        w.resident_id = (await liu.RegisterResident(register_request())).resident_id
        await w.as_("other_resident").RegisterResident(register_request())
        await w.as_("secretary").PublishMenuItem(pb.PublishMenuItemRequest(
            community_id="c-1", item_id="meds", category="medicine_delivery", title="Medicine delivery"))
        w.posted = (await liu.PostDemand(demand_request(w.resident_id, "p-1"))).demand_id
        w.held = (await liu.PostDemand(demand_request(w.resident_id, "p-2"))).demand_id
        served.apply(OrderAccepted(order_id="o-2", demand_id=w.held, member_id="m-1", via="claim"))
        served.apply(ServiceCompleted(order_id="o-2", demand_id=w.held, member_id="m-1", hours=1.0))
        yield w


def request(w: World, method: str, caller: str) -> Any:
    """A request the method would carry out for a caller in scope."""
    if method == "RegisterResident":
        return pb.RegisterResidentRequest(community_id="c-1", name="Chen Jie", phone="13800003333",
                                          address="5 Bamboo Lane")
    if method == "PublishMenuItem":
        return pb.PublishMenuItemRequest(community_id="c-1", item_id="clinic", category="medical", title="Clinic")
    if method == "RetireMenuItem":
        return pb.RetireMenuItemRequest(community_id="c-1", item_id="meds")
    if method == "ListMenu":
        return pb.ListMenuRequest(community_id="c-1")
    if method == "PostDemand":
        return demand_request(w.resident_id, "p-new")
    if method == "WithdrawDemand":
        return pb.WithdrawDemandRequest(demand_id=w.posted, reason="solved_myself")
    if method == "RateService":
        return pb.RateServiceRequest(demand_id=w.held, stars=5)
    if method == "RequestRedo":
        return pb.RequestRedoRequest(demand_id=w.held, reason="not_fixed")
    if method == "GetServiceContact":
        member_id = {"holder": "m-1", "member": "m-2", "impostor": "m-1"}.get(caller, "")
        return pb.ServiceContactRequest(demand_id=w.held, member_id=member_id)
    if method == "CorrectResident":
        return pb.CorrectResidentRequest(resident_id=w.resident_id, phone="13900009999")
    if method == "ExportResidentData":
        return pb.ResidentRef(resident_id=w.resident_id)
    if method == "ListResidentDemands":
        return pb.ListResidentDemandsRequest(resident_id=w.resident_id)
    if method == "EraseResident":
        return pb.EraseResidentRequest(resident_id=w.resident_id, reason="resident_request")
    return pb.DemandRef(demand_id=w.held)  # ConfirmCompletion, GetDemand, GetDemandHistory, GetDemandContact


def test_every_method_has_its_scope_here() -> None:
    assert sorted(SCOPES) == sorted(METHODS)


@pytest.mark.parametrize(("method", "caller"), [(m, c) for m, (ok, _) in SCOPES.items() for c in ok])
async def test_allowed_inside_the_scope(world: World, method: str, caller: str) -> None:
    before = world.served.stored()
    reply = await getattr(world.as_(caller), method)(request(world, method, caller))
    assert reply.ByteSize() > 0
    assert (world.served.stored() != before) == (method in STORING)


@pytest.mark.parametrize(("method", "caller"), [(m, c) for m, (_, refused) in SCOPES.items() for c in refused])
async def test_refused_outside_the_scope_and_nothing_changes(world: World, method: str, caller: str) -> None:
    before, wakes = world.served.stored(), len(world.served.wakes)
    error = await status_of(getattr(world.as_(caller), method)(request(world, method, caller)))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED, error.details()
    assert world.served.stored() == before
    assert len(world.served.wakes) == wakes  # nothing to publish


@pytest.mark.parametrize("method", METHODS)
async def test_without_a_token_nothing_runs(world: World, method: str) -> None:
    before = world.served.stored()
    error = await status_of(getattr(world.served.stub, method)(request(world, method, "secretary")))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    forged = world.served.issuer.token("sub-sec-1", ["branch_secretary"], community_id="c-1",
                                       key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    error = await status_of(getattr(world.served.stub, method)(
        request(world, method, "secretary"), metadata=(("authorization", f"Bearer {forged}"),)))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert world.served.stored() == before


# ---- RegisterResident ------------------------------------------------------------------------------------
async def test_a_residents_demands_to_them_and_their_communitys_workers(world: World) -> None:
    """Liu's demands, newest first, to Liu and to c-1's workers (care tags as GetDemand gives them); Wang, a
    resident of c-1 too, lists only his own (none) and is refused Liu's."""
    expected = [world.held, world.posted]
    for name in WRITERS:
        listed = await world.as_(name).ListResidentDemands(pb.ListResidentDemandsRequest(resident_id=world.resident_id))
        assert [d.demand_id for d in listed.demands] == expected and listed.next_before == ""
        got = await world.as_(name).GetDemand(pb.DemandRef(demand_id=world.held))
        assert listed.demands[0] == got
    page = await world.as_("resident").ListResidentDemands(
        pb.ListResidentDemandsRequest(resident_id=world.resident_id, limit=1))
    assert [d.demand_id for d in page.demands] == [world.held] and page.next_before == world.held
    page = await world.as_("resident").ListResidentDemands(
        pb.ListResidentDemandsRequest(resident_id=world.resident_id, limit=1, before=page.next_before))
    assert [d.demand_id for d in page.demands] == [world.posted] and page.next_before == ""
    wang = world.as_("other_resident")
    own = await wang.ListResidentDemands(pb.ListResidentDemandsRequest(resident_id=wang.resident_id))
    assert list(own.demands) == []
    error = await status_of(wang.ListResidentDemands(pb.ListResidentDemandsRequest(resident_id=world.resident_id)))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    for bad, field in ((pb.ListResidentDemandsRequest(resident_id=world.resident_id, limit=101), "limit"),
                       (pb.ListResidentDemandsRequest(resident_id=world.resident_id, before="x"), "before"),
                       (pb.ListResidentDemandsRequest(), "resident_id")):
        error = await status_of(world.as_("resident").ListResidentDemands(bad))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and field in (error.details() or "")


async def test_a_resident_registers_themselves_once(world: World, local_issuer: LocalIssuer) -> None:
    liu = world.as_("resident")
    assert world.resident_id == liu.resident_id  # the record is bound to the account
    before = world.served.stored()
    again = await liu.RegisterResident(register_request())  # a retry: the same record, nothing new
    assert (again.resident_id, again.community_id) == (liu.resident_id, "c-1")
    assert world.served.stored() == before
    error = await status_of(liu.RegisterResident(register_request("c-2")))
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    assert world.served.stored() == before
    # an issuer's resident_id claim names the record instead (here one that is no resident id intake holds)
    odd = world.served.as_("sub-odd", ["resident"], resident_id="r-1")
    error = await status_of(odd.RegisterResident(register_request()))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert world.served.stored() == before


async def test_workers_register_new_residents_in_their_community(world: World) -> None:
    first = await world.as_("grid_worker").RegisterResident(register_request())
    second = await world.as_("grid_worker").RegisterResident(register_request())
    assert first.resident_id != second.resident_id  # people without accounts: a new record each time
    assert first.community_id == "c-1"


# ---- PostDemand and the demand's commands, for a resident --------------------------------------------------
async def test_a_worker_cannot_post_for_a_resident_of_another_community(world: World) -> None:
    elsewhere = await world.as_("secretary_elsewhere").RegisterResident(register_request("c-2"))
    before = world.served.stored()
    for community in ("c-1", "c-2"):  # naming their own community, or the resident's
        error = await status_of(world.as_("grid_worker").PostDemand(
            demand_request(elsewhere.resident_id, "w-1", community_id=community)))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert world.served.stored() == before


async def test_a_retried_post_is_no_way_into_another_residents_demand(world: World) -> None:
    before = world.served.stored()
    error = await status_of(world.as_("grid_worker_elsewhere").PostDemand(
        demand_request(world.resident_id, "p-1", community_id="c-2")))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert world.served.stored() == before


# ---- members: only while they hold the demand ------------------------------------------------------------
async def test_a_member_sees_a_demand_only_while_holding_it(world: World) -> None:
    holder, liu = world.as_("holder"), world.as_("resident")
    nobody_holds = await status_of(holder.GetServiceContact(pb.ServiceContactRequest(demand_id=world.posted,
                                                                                     member_id="m-1")))
    assert nobody_holds.code() == grpc.StatusCode.FAILED_PRECONDITION  # the demand's state, as before
    assert (await status_of(holder.GetDemand(pb.DemandRef(demand_id=world.posted)))).code() == \
        grpc.StatusCode.PERMISSION_DENIED
    assert (await holder.GetDemand(pb.DemandRef(demand_id=world.held))).member_id == "m-1"
    await liu.ConfirmCompletion(pb.DemandRef(demand_id=world.held))  # closed: no longer held
    before = world.served.stored()
    assert (await status_of(holder.GetDemand(pb.DemandRef(demand_id=world.held)))).code() == \
        grpc.StatusCode.PERMISSION_DENIED
    closed = await status_of(holder.GetServiceContact(pb.ServiceContactRequest(demand_id=world.held,
                                                                               member_id="m-1")))
    assert (closed.code(), closed.details()) == (grpc.StatusCode.FAILED_PRECONDITION,
                                                 "no contact: demand is confirmed")
    assert world.served.stored() == before


async def test_a_member_asks_for_a_contact_as_themselves(world: World) -> None:
    before = world.served.stored()
    for member_id in ("", "m-9"):
        error = await status_of(world.as_("holder").GetServiceContact(
            pb.ServiceContactRequest(demand_id=world.held, member_id=member_id)))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    error = await status_of(world.as_("secretary").GetServiceContact(  # a secretary naming someone else
        pb.ServiceContactRequest(demand_id=world.held, member_id="m-1")))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert world.served.stored() == before


# ---- contact releases and the history ---------------------------------------------------------------------
async def test_releases_and_acts_for_a_resident_are_in_the_history_in_order(world: World) -> None:
    """Wang has no account: the secretary registers him, the grid worker posts and confirms for him."""
    served = world.served
    wang = await world.as_("secretary").RegisterResident(register_request())
    demand = await world.as_("grid_worker").PostDemand(demand_request(wang.resident_id, "hotline-7",
                                                                      channel="grid_worker"))
    served.apply(OrderAccepted(order_id="o-7", demand_id=demand.demand_id, member_id="m-1", via="dispatch"))
    contact = await world.as_("holder").GetServiceContact(pb.ServiceContactRequest(demand_id=demand.demand_id,
                                                                                   member_id="m-1"))
    assert (contact.phone, contact.description) == ("13900001111", DESCRIPTION)
    assert (await world.as_("secretary").GetServiceContact(
        pb.ServiceContactRequest(demand_id=demand.demand_id))).phone == "13900001111"
    assert (await world.as_("notify").GetDemandContact(pb.DemandRef(demand_id=demand.demand_id))).resident_id == \
        wang.resident_id
    served.apply(ServiceCompleted(order_id="o-7", demand_id=demand.demand_id, member_id="m-1", hours=1.0))
    await world.as_("grid_worker").ConfirmCompletion(pb.DemandRef(demand_id=demand.demand_id))

    history = await world.as_("town").GetDemandHistory(pb.DemandRef(demand_id=demand.demand_id))
    rows = [(e.version, e.what, e.subject, e.role, e.on_behalf_of, e.caused_by) for e in history.entries]
    assert rows == [
        (1, "Posted", "sub-gw-1", "grid_worker", wang.resident_id, ""),
        (2, "AcceptanceRecorded", "", "", "", "dispatch:3"),
        (3, "ContactReleased", "sub-m-1", "member", "", ""),
        (4, "ContactReleased", "sub-sec-1", "branch_secretary", "", ""),
        (5, "ContactReleased", "service-account-notify", "service_notify", "", ""),
        (6, "ServiceRecorded", "", "", "", "dispatch:4"),
        (7, "CompletionConfirmed", "sub-gw-1", "grid_worker", wang.resident_id, ""),
    ]
    times = [e.at for e in history.entries]
    assert all(t.endswith("Z") for t in times) and times == sorted(times)
    assert all(e.correlation_id for e in history.entries)

    # the release records themselves: who got the contact and as which member, on the demand
    releases = [e for e in served.app.events.get(Demand.create_id(wang.resident_id, "hotline-7"))
                if isinstance(e, Demand.ContactReleased)]
    assert [(r.subject, r.role, r.member_id) for r in releases] == [
        ("sub-m-1", "member", "m-1"), ("sub-sec-1", "branch_secretary", None),
        ("service-account-notify", "service_notify", None)]
    assert [to_contract(r) for r in releases] == [None, None, None]  # never published


async def test_a_residents_own_history(world: World) -> None:
    await world.as_("holder").GetServiceContact(pb.ServiceContactRequest(demand_id=world.held, member_id="m-1"))
    history = await world.as_("resident").GetDemandHistory(pb.DemandRef(demand_id=world.held))
    assert [(e.what, e.subject, e.role, e.on_behalf_of) for e in history.entries] == [
        ("Posted", "sub-liu", "resident", ""), ("AcceptanceRecorded", "", "", ""),
        ("ServiceRecorded", "", "", ""), ("ContactReleased", "sub-m-1", "member", "")]


# ---- the application layer: the same rules for any caller of the use cases ------------------------------
def person(role: str, subject: str = "sub-x", **places: str) -> Principal:
    return Principal(subject=subject, roles=frozenset({role}), acting_role=role, **places)


@pytest.fixture
def app() -> Iterator[IntakeApplication]:
    application = IntakeApplication(ResidentStore("memory://", Keyring.generate()), "memory://", places=PLACES)
    yield application
    application.close()


def test_use_cases_refuse_roles_their_scope_does_not_name(app: IntakeApplication) -> None:
    """Not through the interceptor (a script, another edge): a role the method's row does not allow is refused
    by the use case itself, before anything is stored."""
    who = app.register_resident("c-1", "Liu Yang", "13900001111", "12 Well Street")  # as SYSTEM
    demand = app.post_demand(client_request_id="r-1", resident_id=who.resident_id, community_id="c-1",
                             grid_id="g-1", description=DESCRIPTION, urgency="normal", channel="app",
                             other_text="errand")
    notified = app.recorder.max_notification_id()
    calls = [
        (person("grid_worker", community_id="c-1"), lambda: app.publish_menu_item("c-1", "m", "medical", "M")),
        (person("member", member_id="m-1"), lambda: app.withdraw(demand.id, "solved_myself")),
        (person("grid_leader", community_id="c-1", grid_id="g-1"), lambda: app.confirm_completion(demand.id)),
        (person("town_office", town_id="t-1"), lambda: app.register_resident("c-1", "Li", "1234567", "x")),
        (person("grid_worker", community_id="c-1"), lambda: app.demand_history(demand.id)),
        (person("member", member_id="m-1"), lambda: app.demand_contact(demand.id)),
        (person("operator"), lambda: app.get_demand(demand.id)),
        (person("county_office", county_id="taihe"), lambda: app.service_contact(demand.id, None)),
    ]
    for principal, call in calls:
        with acting_as(principal), pytest.raises(PermissionDenied):
            call()
    assert app.recorder.max_notification_id() == notified


def test_without_a_places_directory_offices_reach_nothing() -> None:
    app = IntakeApplication(ResidentStore("memory://", Keyring.generate()), "memory://")  # no SANDAN_PLACES_FILE
    try:
        who = app.register_resident("c-1", "Liu Yang", "13900001111", "12 Well Street")
        demand = app.post_demand(client_request_id="r-1", resident_id=who.resident_id, community_id="c-1",
                                 grid_id="g-1", description=DESCRIPTION, urgency="normal", channel="app",
                                 other_text="errand")
        for office in (person("town_office", town_id="t-1"), person("county_office", county_id="taihe")):
            with acting_as(office), pytest.raises(PermissionDenied):
                app.get_demand(demand.id)
        with acting_as(person("branch_secretary", community_id="c-1")):  # communities need no directory
            assert app.get_demand(demand.id).id == demand.id
    finally:
        app.close()


def test_a_residents_registration_at_the_application(app: IntakeApplication) -> None:
    liu = person("resident", "sub-liu", resident_id="3f0c1a52-9b6d-4e1f-a8d4-5e2f7b1c9a06")
    with acting_as(liu):
        first = app.register_resident("c-1", "Liu Yang", "13900001111", "12 Well Street")
        assert first.resident_id == liu.resident_id
        again = app.register_resident("c-1", "Liu Y.", "13900002222", "elsewhere")
        assert (again.resident_id, again.community_id) == (first.resident_id, "c-1")
        assert app.residents.get(first.resident_id).phone == "13900001111"  # kept as it was
        with pytest.raises(AlreadyExists):
            app.register_resident("c-2", "Liu Yang", "13900001111", "12 Well Street")
    with acting_as(person("resident", "sub-nobody")), pytest.raises(PermissionDenied):
        app.register_resident("c-1", "Liu Yang", "13900001111", "12 Well Street")  # no resident id bound


def test_a_worker_acting_for_a_resident_is_recorded_on_their_behalf(app: IntakeApplication) -> None:
    worker = person("grid_worker", "sub-gw-1", community_id="c-1")
    with acting_as(worker), traced("corr-1"):
        wang = app.register_resident("c-1", "Wang Wei", "13900001111", "3 Lotus Lane")
        demand = app.post_demand(client_request_id="r-1", resident_id=wang.resident_id, community_id="c-1",
                                 grid_id="g-1", description=DESCRIPTION, urgency="normal", channel="grid_worker",
                                 other_text="errand")
        app.withdraw(demand.id, "solved_myself")
    entries = app.demand_history(demand.id)  # as SYSTEM
    assert [(e.what, e.subject, e.role, e.on_behalf_of) for e in entries] == [
        ("Posted", "sub-gw-1", "grid_worker", wang.resident_id),
        ("Withdrawn", "sub-gw-1", "grid_worker", wang.resident_id)]


def test_the_gateway_posts_for_a_partners_caller_on_their_behalf(app: IntakeApplication) -> None:
    gateway = person("service_gateway", "service-account-gateway")
    with acting_as(gateway), traced("corr-311"):
        caller = app.register_resident("c-2", "Zhao Min", "13900005555", "8 Pine Road")
        demand = app.post_demand(client_request_id="open311:p:d:a", resident_id=caller.resident_id,
                                 community_id="c-2", grid_id="g-1", description=DESCRIPTION, urgency="normal",
                                 channel="hotline", other_text="errand")
        again = app.post_demand(client_request_id="open311:p:d:a", resident_id=caller.resident_id,
                                community_id="c-2", grid_id="g-1", description=DESCRIPTION, urgency="normal",
                                channel="hotline", other_text="errand")
        assert again.id == demand.id  # a partner's retry posts once
        with pytest.raises(PermissionDenied):
            app.withdraw(demand.id, "solved_myself")  # posting for a caller is all it may do
    assert [(e.what, e.subject, e.role, e.on_behalf_of) for e in app.demand_history(demand.id)] == [
        ("Posted", "service-account-gateway", "service_gateway", caller.resident_id)]


def test_a_member_holding_nothing_of_this_demand(app: IntakeApplication) -> None:
    who = app.register_resident("c-1", "Liu Yang", "13900001111", "12 Well Street")
    demand = app.post_demand(client_request_id="r-1", resident_id=who.resident_id, community_id="c-1",
                             grid_id="g-1", description=DESCRIPTION, urgency="normal", channel="app",
                             other_text="errand")
    with traced("c"):
        demand.record_acceptance("m-1")
        app.save(demand)
    with acting_as(person("member", "sub-m-2", member_id="m-2")):
        with pytest.raises(PermissionDenied):
            app.service_contact(demand.id, "m-2")  # held by m-1: outside their scope
        with pytest.raises(PermissionDenied):
            app.get_demand(demand.id)
    with acting_as(person("member", "sub-m-1", member_id="m-1")):
        assert app.service_contact(demand.id, "m-1").name == "Liu Yang"
    with pytest.raises(FailedPrecondition, match="does not hold"):  # SYSTEM naming a member: the state decides
        app.service_contact(demand.id, "m-2")


# ---- people with two roles: any role of theirs the method's row names may be the one ----------------------------
async def test_a_member_who_leads_the_grid_reads_its_demands(world: World) -> None:
    """The interceptor lets a member-and-grid-leader in as member (the row's first role they hold): the demand is
    in their grid, though they do not hold it, so the grid leader's reach allows it."""
    both = world.served.as_("sub-m-gl", ["member", "grid_leader"], member_id="m-2", community_id="c-1",
                            grid_id="g-1")
    assert (await both.GetDemand(pb.DemandRef(demand_id=world.posted))).demand_id == world.posted
    holder_elsewhere = world.served.as_("sub-m1-gl", ["member", "grid_leader"], member_id="m-1",
                                        community_id="c-1", grid_id="g-2")
    assert (await holder_elsewhere.GetDemand(pb.DemandRef(demand_id=world.held))).member_id == "m-1"  # as member
    error = await status_of(holder_elsewhere.GetDemand(pb.DemandRef(demand_id=world.posted)))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "as member: a member may read only a demand they hold" in error.details()
    assert "as grid_leader: grid_leader may not act on this demand outside their scope" in error.details()


async def test_a_member_who_is_the_secretary_gets_the_contact_as_secretary(world: World) -> None:
    both = world.served.as_("sub-m-sec", ["member", "branch_secretary"], member_id="m-2", community_id="c-1")
    for member_id in ("", "m-2"):  # the demand is held by m-1: as member refused, as secretary allowed
        contact = await both.GetServiceContact(pb.ServiceContactRequest(demand_id=world.held, member_id=member_id))
        assert contact.phone == "13900001111"
    releases = [e for e in world.served.app.events.get(Demand.create_id(world.resident_id, "p-2"))
                if isinstance(e, Demand.ContactReleased)]
    assert [(r.subject, r.role, r.member_id) for r in releases] == [
        ("sub-m-sec", "branch_secretary", None), ("sub-m-sec", "branch_secretary", "m-2")]
    before = world.served.stored()
    elsewhere = world.served.as_("sub-m-sec2", ["member", "branch_secretary"], member_id="m-2", community_id="c-2")
    error = await status_of(elsewhere.GetServiceContact(pb.ServiceContactRequest(demand_id=world.held)))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert world.served.stored() == before


async def test_a_member_who_is_the_secretary_sees_care_tags_as_secretary(world: World) -> None:
    tagged = (await world.as_("resident").PostDemand(demand_request(world.resident_id, "tags",
                                                                    care_tags=["elderly_alone"]))).demand_id
    both = world.served.as_("sub-m-sec", ["member", "branch_secretary"], member_id="m-2", community_id="c-1")
    seen = await both.GetDemand(pb.DemandRef(demand_id=tagged))
    assert (seen.special_care, list(seen.care_tags)) == (True, ["elderly_alone"])
    leader = world.served.as_("sub-m-gl", ["member", "grid_leader"], member_id="m-2", community_id="c-1",
                              grid_id="g-1")
    seen = await leader.GetDemand(pb.DemandRef(demand_id=tagged))
    assert (seen.special_care, list(seen.care_tags)) == (True, [])  # neither of their roles sees the tags


async def test_a_grid_worker_with_a_resident_account_acts_as_the_one_that_fits(world: World) -> None:
    """A grid worker living in their community: registers others (new records) and posts for them as the grid
    worker (recorded on the resident's behalf); posts for themselves as the resident they are."""
    gw = world.served.as_("sub-gw-res", ["resident", "grid_worker"], community_id="c-1")
    wang = await gw.RegisterResident(register_request())
    assert wang.resident_id != gw.resident_id  # the worker's job, not their own registration
    for_wang = await gw.PostDemand(demand_request(wang.resident_id, "w-1", channel="grid_worker"))
    history = await world.as_("secretary").GetDemandHistory(pb.DemandRef(demand_id=for_wang.demand_id))
    assert [(e.role, e.on_behalf_of) for e in history.entries] == [("grid_worker", wang.resident_id)]
    # their own record (registered with the resident account alone): posted for as themselves
    own = world.served.as_("sub-gw-res", ["resident"], community_id="c-1")
    await own.RegisterResident(register_request())
    mine = await gw.PostDemand(demand_request(gw.resident_id, "mine"))
    history = await gw.GetDemandHistory(pb.DemandRef(demand_id=mine.demand_id))  # as resident: their own
    assert [(e.role, e.on_behalf_of) for e in history.entries] == [("resident", "")]
    # elsewhere, a grid worker's role reaches nothing: a resident registering is registering themselves
    away = world.served.as_("sub-gw-away", ["resident", "grid_worker"], community_id="c-2")
    assert (await away.RegisterResident(register_request())).resident_id == away.resident_id


def test_two_roles_at_the_application_act_under_the_role_that_allowed(app: IntakeApplication) -> None:
    liu = app.register_resident("c-1", "Liu Yang", "13900001111", "12 Well Street")
    demand = app.post_demand(client_request_id="r-1", resident_id=liu.resident_id, community_id="c-1",
                             grid_id="g-1", description=DESCRIPTION, urgency="normal", channel="app",
                             other_text="errand")
    both = Principal(subject="sub-m-gl", roles=frozenset({"member", "grid_leader"}), acting_role="member",
                     member_id="m-2", community_id="c-1", grid_id="g-1")
    assert app.scope.read(both, demand).acting_role == "grid_leader"
    assert app.scope.read(both.as_role("grid_leader"), demand).acting_role == "grid_leader"
    # a role the caller does not hold is never tried, even when the check names it
    leader_only = Principal(subject="sub-gl", roles=frozenset({"member"}), acting_role="member", member_id="m-2",
                            community_id="c-1", grid_id="g-1")
    with pytest.raises(PermissionDenied, match="a member may read only a demand they hold"):
        app.scope.read(leader_only, demand)
    worker = Principal(subject="sub-gw-m", roles=frozenset({"member", "grid_worker"}), acting_role="member",
                       member_id="m-2", community_id="c-1")
    with acting_as(worker), traced("corr-2"):
        app.withdraw(demand.id, "solved_myself")  # a member may not withdraw; their grid worker role may
    assert [(e.what, e.role, e.on_behalf_of) for e in app.demand_history(demand.id)][-1] == (
        "Withdrawn", "grid_worker", liu.resident_id)
    with acting_as(person("member", member_id="m-2")), pytest.raises(PermissionDenied, match="member may not"):
        app.confirm_completion(demand.id)  # one role, not of the row: the plain refusal


# ---- the gateway acts only for residents it registered ---------------------------------------------------------
def test_the_gateway_may_not_post_for_residents_it_did_not_register(app: IntakeApplication) -> None:
    gateway = person("service_gateway", "service-account-gateway")
    liu = person("resident", "sub-liu", resident_id="3f0c1a52-9b6d-4e1f-a8d4-5e2f7b1c9a06")
    with acting_as(liu):
        own = app.register_resident("c-1", "Liu Yang", "13900001111", "12 Well Street")
        posted = app.post_demand(client_request_id="open311:p:d:a", resident_id=own.resident_id,
                                 community_id="c-1", grid_id="g-1", description=DESCRIPTION, urgency="normal",
                                 channel="app", other_text="errand")
    with acting_as(person("grid_worker", "sub-gw-1", community_id="c-1")):
        wang = app.register_resident("c-1", "Wang Wei", "13900002222", "3 Lotus Lane")
    with acting_as(gateway):
        partners = app.register_resident("c-2", "Zhao Min", "13900005555", "8 Pine Road")
    assert (own.registered_by, wang.registered_by, partners.registered_by) == (None, None, "service_gateway")
    assert app.residents.community_of(partners.resident_id).registered_by == "service_gateway"
    notified = app.recorder.max_notification_id()
    for resident_id in (own.resident_id, wang.resident_id):
        with acting_as(gateway), pytest.raises(PermissionDenied, match="residents it registered"):
            app.post_demand(client_request_id="open311:p:d:b", resident_id=resident_id, community_id="c-1",
                            grid_id="g-1", description=DESCRIPTION, urgency="normal", channel="hotline",
                            other_text="errand")
    with acting_as(gateway), pytest.raises(PermissionDenied, match="residents it registered"):
        app.post_demand(client_request_id="open311:p:d:a", resident_id=own.resident_id,  # a "retry" of Liu's
                        community_id="c-1", grid_id="g-1", description=DESCRIPTION, urgency="normal",
                        channel="hotline", other_text="errand")
    with acting_as(gateway), pytest.raises(InvalidArgument, match="community_id"):
        app.post_demand(client_request_id="open311:p:d:c", resident_id=partners.resident_id, community_id="c-1",
                        grid_id="g-1", description=DESCRIPTION, urgency="normal", channel="hotline",
                        other_text="errand")  # only in the resident's community
    assert app.recorder.max_notification_id() == notified
    assert app.get_demand(posted.id).status == "posted"


def test_records_from_before_the_marker_are_refused_to_the_gateway(tmp_path: Path) -> None:
    """A store whose residents table predates `registered_by`: the column is added, its old rows read, and the
    gateway may not post for any of them (who registered them is not known: refusing is the safe side)."""
    url = f"sqlite:///{tmp_path}/intake.db"
    engine = create_engine(url)
    with engine.begin() as conn:  # the table as the first release created it
        conn.execute(text("CREATE TABLE intake_residents (resident_id VARCHAR(36) PRIMARY KEY, community_id "
                          "VARCHAR(64) NOT NULL, name VARCHAR(100) NOT NULL, phone VARCHAR(30) NOT NULL, "
                          "address VARCHAR(200) NOT NULL, registered_at DATETIME NOT NULL)"))
        conn.execute(text("INSERT INTO intake_residents VALUES ('0b5e7c4a-52c1-4c7e-9d2a-6f1e3b8a9c10', 'c-1', "
                          "'Old Li', '13900007777', '1 Old Road', '2024-05-01 08:00:00')"))
    engine.dispose()
    app = IntakeApplication(ResidentStore(url, Keyring.generate()), "memory://", places=PLACES)
    try:
        old = app.residents.get("0b5e7c4a-52c1-4c7e-9d2a-6f1e3b8a9c10")
        assert (old.name, old.registered_by) == ("Old Li", None)
        with acting_as(person("service_gateway", "service-account-gateway")), pytest.raises(PermissionDenied):
            app.post_demand(client_request_id="open311:x", resident_id=old.resident_id, community_id="c-1",
                            grid_id="g-1", description=DESCRIPTION, urgency="normal", channel="hotline",
                            other_text="errand")
        with acting_as(person("grid_worker", community_id="c-1")):  # its community's workers still may
            app.post_demand(client_request_id="w-1", resident_id=old.resident_id, community_id="c-1",
                            grid_id="g-1", description=DESCRIPTION, urgency="normal", channel="grid_worker",
                            other_text="errand")
    finally:
        app.close()
