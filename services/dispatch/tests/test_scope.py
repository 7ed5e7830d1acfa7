"""Who may call what, walked over dispatch's gRPC API with real signed tokens (the local issuer) behind the
authentication interceptor: for every method and every role of its row in access.toml, a call inside the role's
scope succeeds and one outside it is PERMISSION_DENIED and changes nothing; no token is UNAUTHENTICATED; ListOrders
filters per role; the audit trail names who did what, in order.

The world (seeded as internal work, no caller): county k1 with towns t1 (community c1) and t2 (community c2).
c1: units u1 (members m1 in g1 with the medical team, m2 in g2 with medical, m4 in g1) and u3 (m3 in g2); c2: unit
u2 (m9 in g9). Orders: OPEN (c1/g1, open), C2 (c2/g9, open), DISP (c1/g1, dispatched to m1), OFFER (c1/g2, offered
to medical), ACC (c1/g1, accepted by m1), TOWN (c1/g1, escalated to the town). Activities a1 (u1 in c1) and a9 (u2
in c2).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message
from sqlalchemy import select

from sandan_contracts.access import ACCESS
from sandan_contracts.rpc import dispatch_pb2 as pb
from sandan_dispatch.contacts import member_contacts, public_names, unit_contacts
from sandan_dispatch.domain import Order
from sandan_dispatch.publishing import to_contract
from sandan_eventbus.auth.devissuer import LocalIssuer
from sandan_eventbus.auth.principal import Principal, acting_as
from sandan_eventbus.errors import PermissionDenied
from services.dispatch.tests.support import T0, Caller, Served, rid, serving

Code = grpc.StatusCode
SERVICE = pb.DESCRIPTOR.services_by_name["Dispatch"]
METHODS = [m.name for m in SERVICE.methods]


def oid(demand_id: str) -> str:
    return str(Order.create_id(demand_id))


OPEN, C2, DISP, OFFER, ACC, TOWN = (oid(d) for d in ("d-open", "d-c2", "d-disp", "d-offer", "d-acc", "d-town"))
ALL_ORDERS = {OPEN, C2, DISP, OFFER, ACC, TOWN}


def seed(s: Served) -> None:
    app = s.app
    app.report_unit("u1", "c1", "County Health Bureau", contact_email="dangban@health.example.cn",
                    webhook_url="https://oa.health.example.cn/hooks/sandan")
    app.report_unit("u3", "c1", "County Tax Bureau")
    app.report_unit("u2", "c2", "County Water Bureau")
    app.report_member("m1", "u1", "c1", "g1", ["medical"], [], name="Li Hua", phone="+86 138 0000 0000")
    app.report_member("m2", "u1", "c1", "g2", ["medical"], [])
    app.report_member("m3", "u3", "c1", "g2", [], [])
    app.report_member("m4", "u1", "c1", "g1", [], [])
    app.report_member("m9", "u2", "c2", "g9", ["medical"], [])
    for community, grid in (("c1", "g1"), ("c1", "g2"), ("c2", "g9")):
        app.form_grid_group(community, grid)
    s.open_order("d-open")
    s.open_order("d-c2", community="c2", grid="g9")
    app.dispatch_order(s.open_order("d-disp"), "m1")
    app.offer_order(s.open_order("d-offer", grid="g2"), ["medical"])
    acc = s.open_order("d-acc")
    app.dispatch_order(acc, "m1")
    app.accept_order(acc, "m1")
    app.escalate_order(s.open_order("d-town"), "no_capacity", [])
    for activity, unit, community in (("a1", "u1", "c1"), ("a9", "u2", "c2")):
        app.schedule_activity(activity, unit, community, "free_health_check", "三八节免费义诊", T0,
                              T0 + timedelta(hours=3), 10)


# ---- the people --------------------------------------------------------------------------------------------
PEOPLE: dict[str, Callable[[Served], Caller]] = {
    "sec1": lambda s: s.secretary("c1"),
    "sec2": lambda s: s.secretary("c2"),
    "lead1": lambda s: s.leader("g1"),
    "lead2": lambda s: s.leader("g2"),
    "lead9": lambda s: s.leader("g9", community="c2"),
    "mem1": lambda s: s.member("m1", grid="g1"),
    "mem2": lambda s: s.member("m2", grid="g2"),
    "mem3": lambda s: s.member("m3", grid="g2"),
    "mem5": lambda s: s.member("m5", grid="g1"),  # bound to a member record not reported yet
    "mem6": lambda s: s.as_("member-m6", ["member"], member_id="m6"),  # a token that names no community
    "mem9": lambda s: s.member("m9", community="c2", grid="g9"),
    "ua1": lambda s: s.unit_admin("u1"),
    "ua2": lambda s: s.unit_admin("u2"),
    "ua3": lambda s: s.unit_admin("u3"),
    "town1": lambda s: s.town("t1"),
    "town2": lambda s: s.town("t2"),
    "county": lambda s: s.county("k1"),
    "county2": lambda s: s.county("k2"),
    "gw1": lambda s: s.grid_worker("c1"),
    "gw2": lambda s: s.grid_worker("c2"),
    "res1": lambda s: s.resident("1", resident_id=rid(1)),
    "res3": lambda s: s.resident("3", resident_id=rid(3), community_id="c1"),
    "res4": lambda s: s.resident("4", resident_id=rid(4), community_id="c2"),
    "notify": lambda s: s.notify(),
    "gateway": lambda s: s.as_("service-account-gateway", ["service_gateway"]),
    "partner": lambda s: s.as_("partner-12345", ["partner"]),
}


@dataclass(frozen=True)
class Case:
    method: str
    person: str
    request: Message
    allowed: bool

    def __str__(self) -> str:
        return f"{self.method}-{self.person}-{'ok' if self.allowed else 'denied'}"


def ok(method: str, person: str, request: Message) -> Case:
    return Case(method, person, request, True)


def no(method: str, person: str, request: Message) -> Case:
    return Case(method, person, request, False)


def order_reads(method: str, ref: Callable[[str], Message]) -> list[Case]:
    """GetOrder's row (FindOrderByDemand and GetOrderHistory are "as GetOrder")."""
    return [
        ok(method, "mem1", ref("d-disp")), ok(method, "mem1", ref("d-acc")),  # dispatched to / held by them
        ok(method, "mem1", ref("d-offer")), ok(method, "mem3", ref("d-offer")),  # offered to their team / grid
        no(method, "mem2", ref("d-disp")), no(method, "mem9", ref("d-offer")), no(method, "mem1", ref("d-open")),
        ok(method, "lead1", ref("d-open")), no(method, "lead2", ref("d-open")), no(method, "lead9", ref("d-open")),
        ok(method, "sec1", ref("d-open")), no(method, "sec2", ref("d-open")),
        ok(method, "town1", ref("d-open")), no(method, "town2", ref("d-open")),
        ok(method, "county", ref("d-c2")), no(method, "county2", ref("d-c2")),
    ]


def by_order(demand_id: str) -> Message:
    return pb.OrderRef(order_id=oid(demand_id))


def member_reads(method: str, grid_leader: bool) -> list[Case]:
    m1 = pb.MemberRef(member_id="m1")
    cases = [ok(method, "mem1", m1), no(method, "mem2", m1), ok(method, "ua1", m1), no(method, "ua3", m1),
             ok(method, "sec1", m1), no(method, "sec2", m1), ok(method, "town1", m1), no(method, "town2", m1),
             ok(method, "county", m1), no(method, "county2", m1)]
    if grid_leader:
        cases += [ok(method, "lead1", m1), no(method, "lead2", m1)]
    return cases


def report_member(member_id: str = "m5") -> Message:
    return pb.ReportMemberRequest(member_id=member_id, unit_id="u1", community_id="c1", grid_id="g1",
                                  name="Wang Fang", phone="+86 139 0000 0000")


def schedule(activity_id: str = "a5") -> Message:
    return pb.ScheduleActivityRequest(activity_id=activity_id, unit_id="u1", community_id="c1",
                                      theme="festival_visit", title="重阳节走访", starts_at="2025-10-29T09:00:00+08:00",
                                      ends_at="2025-10-29T11:00:00+08:00", capacity=5)


EVIL_HOOK = "https://evil.example.net/hook"
CASES: list[Case] = [
    # ---- roster
    ok("ReportUnit", "ua1", pb.ReportUnitRequest(unit_id="u1", community_id="c1", unit_name="County Health Bureau",
                                                 webhook_url="https://oa2.health.example.cn/hook")),
    no("ReportUnit", "ua2", pb.ReportUnitRequest(unit_id="u1", community_id="c1", unit_name="County Health Bureau",
                                                 webhook_url=EVIL_HOOK)),
    ok("ReportUnit", "sec1", pb.ReportUnitRequest(unit_id="u4", community_id="c1", unit_name="County Library")),
    no("ReportUnit", "sec2", pb.ReportUnitRequest(unit_id="u1", community_id="c1", unit_name="County Health Bureau",
                                                  webhook_url=EVIL_HOOK)),
    no("ReportUnit", "sec2", pb.ReportUnitRequest(unit_id="u4", community_id="c1", unit_name="County Library")),
    ok("ReportMember", "mem5", report_member()), no("ReportMember", "mem1", report_member()),
    ok("ReportMember", "ua1", report_member()), no("ReportMember", "ua2", report_member()),
    ok("ReportMember", "sec1", report_member()), no("ReportMember", "sec2", report_member()),
    # a member reports into the community and grid their token names, not into another one
    no("ReportMember", "mem5", pb.ReportMemberRequest(member_id="m5", unit_id="u2", community_id="c2", grid_id="g9",
                                                      teams=["medical"])),
    no("ReportMember", "mem5", pb.ReportMemberRequest(member_id="m5", unit_id="u1", community_id="c1", grid_id="g2")),
    no("ReportMember", "mem6", report_member("m6")),
    *[case(method, person, pb.JoinTeamRequest(member_id="m1", team="legal_aid")) for method, person, case in (
        ("JoinTeam", "mem1", ok), ("JoinTeam", "mem2", no), ("JoinTeam", "lead1", ok), ("JoinTeam", "lead2", no),
        ("JoinTeam", "sec1", ok), ("JoinTeam", "sec2", no))],
    *[case("MemberLeaves", person, pb.MemberLeavesRequest(member_id="m1", reason="moved")) for person, case in (
        ("mem1", ok), ("mem2", no), ("ua1", ok), ("ua3", no), ("sec1", ok), ("sec2", no))],
    ok("FormGridGroup", "sec1", pb.FormGridGroupRequest(community_id="c1", grid_id="g5")),
    no("FormGridGroup", "sec2", pb.FormGridGroupRequest(community_id="c1", grid_id="g5")),
    ok("AppointGridLeader", "sec1", pb.AppointGridLeaderRequest(grid_id="g2", member_id="m3")),
    no("AppointGridLeader", "sec2", pb.AppointGridLeaderRequest(grid_id="g2", member_id="m3")),
    *member_reads("GetMember", grid_leader=True),
    *member_reads("GetMemberHistory", grid_leader=False),
    ok("GetMemberContact", "notify", pb.MemberRef(member_id="m9")),
    ok("GetUnitContact", "notify", pb.UnitRef(unit_id="u2")),
    ok("SetPublicName", "mem1", pb.SetPublicNameRequest(member_id="m1", public_name="李华")),
    no("SetPublicName", "mem2", pb.SetPublicNameRequest(member_id="m1", public_name="李华")),
    no("SetPublicName", "mem2", pb.SetPublicNameRequest(member_id="m1")),  # nor withdraw another's
    *[ok("PublicNames", person, pb.PublicNamesRequest(member_ids=["m1", "m9"], unit_ids=["u1", "u2"]))
      for person in ("mem9", "sec2", "town2", "county2", "partner", "gateway")],  # public: any place
    # ---- themed party days
    ok("ScheduleActivity", "ua1", schedule()), no("ScheduleActivity", "ua2", schedule()),
    ok("ScheduleActivity", "sec1", schedule()), no("ScheduleActivity", "sec2", schedule()),
    ok("SignUpResident", "res1", pb.SignUpResidentRequest(activity_id="a9", resident_id=rid(1))),
    no("SignUpResident", "res1", pb.SignUpResidentRequest(activity_id="a1", resident_id=rid(2))),
    ok("SignUpResident", "gw1", pb.SignUpResidentRequest(activity_id="a1", resident_id=rid(2))),
    no("SignUpResident", "gw2", pb.SignUpResidentRequest(activity_id="a1", resident_id=rid(2))),
    ok("SignUpResident", "sec1", pb.SignUpResidentRequest(activity_id="a1", resident_id=rid(2))),
    no("SignUpResident", "sec2", pb.SignUpResidentRequest(activity_id="a1", resident_id=rid(2))),
    ok("CheckInMember", "mem2", pb.CheckInMemberRequest(activity_id="a1", member_id="m2")),
    no("CheckInMember", "mem1", pb.CheckInMemberRequest(activity_id="a1", member_id="m2")),
    ok("CheckInMember", "ua1", pb.CheckInMemberRequest(activity_id="a1", member_id="m3")),  # any member of c1
    no("CheckInMember", "ua3", pb.CheckInMemberRequest(activity_id="a1", member_id="m3")),  # not u3's activity
    ok("CheckInMember", "sec1", pb.CheckInMemberRequest(activity_id="a1", member_id="m2")),
    no("CheckInMember", "sec2", pb.CheckInMemberRequest(activity_id="a1", member_id="m2")),
    *[case("CompleteActivity", person, pb.CompleteActivityRequest(activity_id="a1", hours=2)) for person, case in (
        ("ua1", ok), ("ua3", no), ("ua2", no), ("sec1", ok), ("sec2", no))],
    ok("GetActivity", "res1", pb.ActivityRef(activity_id="a9")), ok("GetActivity", "mem1", pb.ActivityRef(
        activity_id="a9")),
    *[case("GetActivity", person, pb.ActivityRef(activity_id="a1")) for person, case in (
        ("gw1", ok), ("gw2", no), ("lead1", ok), ("lead9", no), ("sec1", ok), ("sec2", no), ("ua1", ok),
        ("ua3", no), ("town1", ok), ("town2", no), ("county", ok), ("county2", no))],
    *[case("ListActivities", person, pb.ListActivitiesRequest(community_id="c1")) for person, case in (
        ("res3", ok), ("res4", no), ("res1", no), ("mem1", ok), ("mem9", no), ("mem6", no), ("gw1", ok), ("gw2", no),
        ("lead1", ok), ("lead9", no), ("sec1", ok), ("sec2", no), ("ua1", no), ("town1", ok), ("town2", no),
        ("county", ok), ("county2", no))],
    ok("ListActivities", "ua1", pb.ListActivitiesRequest(community_id="c1", unit_id="u1")),
    no("ListActivities", "ua3", pb.ListActivitiesRequest(community_id="c1", unit_id="u1")),
    *[case("ListRoster", person, pb.RosterRequest(community_id="c1")) for person, case in (
        ("lead1", ok), ("lead9", no), ("sec1", ok), ("sec2", no), ("town1", ok), ("town2", no), ("county", ok),
        ("county2", no))],
    # ---- orders
    *order_reads("GetOrder", by_order),
    *order_reads("FindOrderByDemand", lambda d: pb.DemandRef(demand_id=d)),
    *order_reads("GetOrderHistory", by_order),
    ok("FindOrderByDemand", "gateway", pb.DemandRef(demand_id="d-c2")),  # Open311: any order's public status
    ok("GetOrderHistory", "gateway", by_order("d-c2")),
    *[ok("ListOrders", person, pb.ListOrdersRequest())
      for person in ("mem1", "lead1", "sec1", "town1", "county", "gateway")],
    ok("DispatchOrder", "lead1", pb.DispatchOrderRequest(order_id=OPEN, member_id="m4")),
    no("DispatchOrder", "lead1", pb.DispatchOrderRequest(order_id=OPEN, member_id="m2")),  # a member of g2
    no("DispatchOrder", "lead2", pb.DispatchOrderRequest(order_id=OPEN, member_id="m2")),  # an order of g1
    no("DispatchOrder", "lead1", pb.DispatchOrderRequest(order_id=OPEN, member_id="m4", dispatched_by="branch")),
    ok("DispatchOrder", "sec1", pb.DispatchOrderRequest(order_id=OPEN, member_id="m2")),
    no("DispatchOrder", "sec2", pb.DispatchOrderRequest(order_id=OPEN, member_id="m2")),
    *[case("OfferOrder", person, pb.OfferOrderRequest(order_id=OPEN)) for person, case in (
        ("lead1", ok), ("lead2", no), ("sec1", ok), ("sec2", no))],
    ok("AcceptOrder", "mem1", pb.AcceptOrderRequest(order_id=DISP, member_id="m1")),
    ok("AcceptOrder", "mem3", pb.AcceptOrderRequest(order_id=OFFER, member_id="m3")),
    no("AcceptOrder", "mem2", pb.AcceptOrderRequest(order_id=DISP, member_id="m1")),  # another member's id
    no("AcceptOrder", "mem2", pb.AcceptOrderRequest(order_id=OFFER, member_id="m3")),
    no("AcceptOrder", "mem2", pb.AcceptOrderRequest(order_id=DISP, member_id="m2")),  # dispatched to m1
    no("AcceptOrder", "mem9", pb.AcceptOrderRequest(order_id=OFFER, member_id="m9")),  # a team's, another community
    ok("DeclineOrder", "mem1", pb.DeclineOrderRequest(order_id=ACC, member_id="m1")),
    no("DeclineOrder", "mem2", pb.DeclineOrderRequest(order_id=ACC, member_id="m1")),
    ok("CompleteService", "mem1", pb.CompleteServiceRequest(order_id=ACC, member_id="m1", hours=1)),
    no("CompleteService", "mem2", pb.CompleteServiceRequest(order_id=ACC, member_id="m1", hours=1)),
    ok("EscalateOrder", "sec1", pb.EscalateOrderRequest(order_id=OPEN, reason="no_capacity")),
    no("EscalateOrder", "sec2", pb.EscalateOrderRequest(order_id=OPEN, reason="no_capacity")),
    no("EscalateOrder", "sec1", pb.EscalateOrderRequest(order_id=TOWN, reason="needs_resources",
                                                        joint_meeting_units=["u1"])),  # the town's now
    ok("EscalateOrder", "town1", pb.EscalateOrderRequest(order_id=TOWN, reason="needs_resources",
                                                         joint_meeting_units=["u1"])),
    no("EscalateOrder", "town2", pb.EscalateOrderRequest(order_id=TOWN, reason="needs_resources",
                                                         joint_meeting_units=["u1"])),
    no("EscalateOrder", "town1", pb.EscalateOrderRequest(order_id=OPEN, reason="no_capacity")),  # still c1's
    *[case("SuggestMembers", person, pb.SuggestMembersRequest(order_id=OPEN)) for person, case in (
        ("lead1", ok), ("lead2", no), ("sec1", ok), ("sec2", no))],
]
# Rows whose scope names no place for a role: nothing to refuse inside the role.
ANY_PLACE = {("GetActivity", "resident"), ("GetActivity", "member"), ("GetMemberContact", "service_notify"),
             ("GetUnitContact", "service_notify"), ("FindOrderByDemand", "service_gateway"),
             ("GetOrderHistory", "service_gateway"),
             *(("PublicNames", role) for role in ACCESS.roles_for(f"/{SERVICE.full_name}/PublicNames"))}


ROLE_OF_PREFIX = {"sec": "branch_secretary", "lead": "grid_leader", "mem": "member", "ua": "unit_admin",
                  "town": "town_office", "county": "county_office", "gw": "grid_worker", "res": "resident",
                  "notify": "service_notify", "gateway": "service_gateway", "partner": "partner"}


def role_of(person: str) -> str:
    return ROLE_OF_PREFIX[person.rstrip("0123456789")]


@pytest.fixture
async def world(local_issuer: LocalIssuer) -> AsyncIterator[Served]:
    async with serving(local_issuer) as s:
        seed(s)
        yield s


def contacts_of(s: Served) -> list[Any]:
    assert s.app.contacts is not None
    with s.app.contacts.engine.connect() as conn:
        return [*conn.execute(select(member_contacts)).all(), *conn.execute(select(unit_contacts)).all(),
                *conn.execute(select(public_names)).all()]


async def refused(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value


# ---- the matrix ----------------------------------------------------------------------------------------------
def test_every_role_of_every_row_is_walked_inside_and_outside_its_scope() -> None:
    """The cases below cover access.toml exactly: every Dispatch method, every role of its row allowed somewhere
    and (unless the row names no place for it) refused somewhere, and no role outside the row."""
    walked: dict[tuple[str, str], set[bool]] = {}
    for case in CASES:
        walked.setdefault((case.method, role_of(case.person)), set()).add(case.allowed)
    expected = {(m, r) for m in METHODS for r in ACCESS.roles_for(f"/{SERVICE.full_name}/{m}")}
    assert set(walked) == expected
    missing_refusals = {key for key, outcomes in walked.items() if False not in outcomes} - ANY_PLACE
    assert missing_refusals == {(m, r) for m, r in expected if m == "ListOrders"}  # ListOrders filters instead
    assert all(True in outcomes for outcomes in walked.values())


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_inside_scope_allowed_outside_refused_and_nothing_changes(world: Served, case: Case) -> None:
    caller = PEOPLE[case.person](world)
    before, contacts = len(world.stored()), contacts_of(world)
    call = getattr(caller, case.method)(case.request)
    if case.allowed:
        await call
        # whatever the call stored names its caller, under the role that allowed it (and the resident a worker
        # acted for)
        assert caller.roles == [role_of(case.person)]
        worker = case.method == "SignUpResident" and caller.roles[0] != "resident"
        assert set(world.actors(before)) <= {(caller.subject, caller.roles[0], rid(2) if worker else None)}
    else:
        error = await refused(call)
        assert error.code() == Code.PERMISSION_DENIED, error.details()
        assert "outside their scope" in error.details() or "dispatches as" in error.details()
        assert len(world.stored()) == before
        assert contacts_of(world) == contacts
        assert world.writes == []


@pytest.mark.parametrize("method", METHODS)
async def test_without_a_valid_token_every_method_is_unauthenticated(world: Served, local_issuer: LocalIssuer,
                                                                     method: str) -> None:
    request = getattr(pb, SERVICE.methods_by_name[method].input_type.name)()
    before = len(world.stored())
    expired = local_issuer.token("secretary-c1", ["branch_secretary"], community_id="c1", ttl=-120)
    for metadata in ((), (("authorization", f"Bearer {expired}"),)):
        error = await refused(getattr(world.stub, method)(request, metadata=metadata))
        assert error.code() == Code.UNAUTHENTICATED
    # a role outside the row: refused before dispatch's code runs
    outsider = next(r for r in ("partner", "operator") if r not in ACCESS.roles_for(f"/{SERVICE.full_name}/{method}"))
    error = await refused(getattr(world.as_(f"{outsider}-12345", [outsider]), method)(request))
    assert error.code() == Code.PERMISSION_DENIED
    assert len(world.stored()) == before


# ---- ListOrders filters --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("person", "visible"), [
    ("mem1", {DISP, ACC, OFFER}),  # dispatched to them, held by them, offered to their team
    ("mem2", {OFFER}),  # offered to their team (medical)
    ("mem3", {OFFER}),  # offered to their grid (g2)
    ("mem9", set()),
    ("lead1", {OPEN, DISP, ACC, TOWN}),
    ("lead2", {OFFER}),
    ("sec1", ALL_ORDERS - {C2}),
    ("sec2", {C2}),
    ("town1", ALL_ORDERS - {C2}),
    ("town2", {C2}),
    ("county", ALL_ORDERS),
    ("county2", set()),
    ("gateway", ALL_ORDERS),
])
async def test_list_orders_shows_each_role_what_it_may_see(world: Served, person: str, visible: set[str]) -> None:
    listed = await PEOPLE[person](world).ListOrders(pb.ListOrdersRequest())
    assert {o.order_id for o in listed.orders} == visible


# ---- ListActivities and ListRoster ---------------------------------------------------------------------------
async def test_list_activities_shows_the_community_asked_and_a_unit_admin_their_units(world: Served) -> None:
    listed = await world.member("m1").ListActivities(pb.ListActivitiesRequest(community_id="c1"))
    assert [(a.activity_id, a.community_id) for a in listed.activities] == [("a1", "c1")]
    listed = await world.county("k1").ListActivities(pb.ListActivitiesRequest(community_id="c2"))
    assert [a.activity_id for a in listed.activities] == ["a9"]
    mine = await world.unit_admin("u3").ListActivities(pb.ListActivitiesRequest(community_id="c1", unit_id="u3"))
    assert list(mine.activities) == []  # u3 brought none
    error = await refused(world.secretary("c1").ListActivities(pb.ListActivitiesRequest(community_id="c1",
                                                                                        limit=201)))
    assert (error.code(), error.details().split(":")[0]) == (Code.INVALID_ARGUMENT, "limit")
    error = await refused(world.secretary("c1").ListActivities(pb.ListActivitiesRequest()))
    assert (error.code(), error.details().split(":")[0]) == (Code.INVALID_ARGUMENT, "community_id")


async def test_list_roster_shows_the_community_and_a_grid_leader_their_grid_with_nothing_personal(
        world: Served) -> None:
    roster = await world.secretary("c1").ListRoster(pb.RosterRequest(community_id="c1"))
    assert [(u.unit_id, u.unit_name, u.members_reported) for u in roster.units] == [
        ("u1", "County Health Bureau", 3), ("u3", "County Tax Bureau", 1)]
    assert [(m.member_id, m.unit_id, m.grid_id, list(m.teams), m.active) for m in roster.members] == [
        ("m1", "u1", "g1", ["medical"], True), ("m2", "u1", "g2", ["medical"], True), ("m3", "u3", "g2", [], True),
        ("m4", "u1", "g1", [], True)]
    assert [(g.grid_id, g.leader_member_id) for g in roster.grid_groups] == [("g1", ""), ("g2", "")]
    wire = roster.SerializeToString()
    for personal in (b"Li Hua", b"+86 138", b"dangban@", b"oa.health"):  # names and contacts stay in dispatch
        assert personal not in wire
    world.app.appoint_grid_leader("g2", "m3")
    world.app.member_leaves("m2", "moved")
    lead = await world.leader("g2").ListRoster(pb.RosterRequest(community_id="c1"))
    assert [(m.member_id, m.active) for m in lead.members] == [("m2", False), ("m3", True)]
    assert [(u.unit_id, u.members_reported) for u in lead.units] == [("u1", 0), ("u3", 1)]
    assert [(g.grid_id, g.leader_member_id) for g in lead.grid_groups] == [("g2", "m3")]
    # a grid leader whose token names no grid reaches no grid's members
    nowhere = await world.as_("leader-x", ["grid_leader"], community_id="c1").ListRoster(
        pb.RosterRequest(community_id="c1"))
    assert (list(nowhere.members), list(nowhere.grid_groups)) == ([], [])


async def test_list_orders_filters_a_request_outside_scope_instead_of_refusing(world: Served) -> None:
    secretary = world.secretary("c1")
    assert list((await secretary.ListOrders(pb.ListOrdersRequest(community_id="c2"))).orders) == []
    offered = await secretary.ListOrders(pb.ListOrdersRequest(community_id="c1", status="offered"))
    assert [o.order_id for o in offered.orders] == [OFFER]
    # a member who left sees what they held, no longer the offers to their grid or teams
    world.app.member_leaves("m3", "moved")
    assert list((await world.member("m3", grid="g2").ListOrders(pb.ListOrdersRequest())).orders) == []


# ---- several roles: the one whose scope holds ------------------------------------------------------------------
async def test_a_grid_leader_who_is_a_member_acts_as_the_role_that_reaches(world: Served) -> None:
    """The interceptor lets the call in as `member` (first in JoinTeam's and GetOrder's rows); the grid leader's
    scope is what reaches m4 and the open order of g1, and the stored event records `grid_leader`."""
    both = world.as_("leader-m1", ["member", "grid_leader"], member_id="m1", community_id="c1", grid_id="g1")
    before = len(world.stored())
    await both.JoinTeam(pb.JoinTeamRequest(member_id="m4", team="legal_aid"))
    assert world.actors(before) == [("leader-m1", "grid_leader", None)]
    assert (await both.GetOrder(pb.OrderRef(order_id=OPEN))).status == "open"
    listed = await both.ListOrders(pb.ListOrdersRequest())
    assert {o.order_id for o in listed.orders} == {OPEN, DISP, ACC, TOWN, OFFER}
    before = len(world.stored())
    await both.JoinTeam(pb.JoinTeamRequest(member_id="m1", team="mediation"))  # themselves: as a member
    assert world.actors(before) == [("leader-m1", "member", None)]
    error = await refused(both.JoinTeam(pb.JoinTeamRequest(member_id="m2", team="mediation")))  # m2 is in g2
    assert error.code() == Code.PERMISSION_DENIED


async def test_the_dispatcher_is_the_callers_role(world: Served) -> None:
    await world.leader("g1").DispatchOrder(pb.DispatchOrderRequest(order_id=OPEN, member_id="m4"))
    await world.secretary("c1").DispatchOrder(pb.DispatchOrderRequest(order_id=OPEN, member_id="m1",
                                                                      dispatched_by="branch"))
    mapper = world.app.mapper
    dispatched = [to_contract(mapper.to_domain_event(n)) for n in world.stored()]
    assert [(e.member_id, e.dispatched_by) for e in dispatched  # type: ignore[union-attr]
            if type(e).__name__ == "OrderDispatched" and e.order_id == OPEN] == [  # type: ignore[union-attr]
        ("m4", "grid_leader"), ("m1", "branch")]
    error = await refused(world.secretary("c1").DispatchOrder(pb.DispatchOrderRequest(
        order_id=OPEN, member_id="m2", dispatched_by="grid_leader")))
    assert (error.code(), error.details()) == (Code.PERMISSION_DENIED,
                                               "a branch_secretary dispatches as branch, not as grid_leader")


# ---- reporting into a community ---------------------------------------------------------------------------------
async def test_a_member_token_of_another_community_reports_nowhere_else_and_so_claims_nothing(world: Served) -> None:
    """The audit's reproduction: a member token for c9 reported m-x into c1/g1 with the medical team, then claimed
    c1's offer to the medical team. The report is refused, changes nothing, and so there is nobody to claim as."""
    outsider = world.member("m-x", community="c9", grid="c9-g1")
    before, contacts = len(world.stored()), contacts_of(world)
    error = await refused(outsider.ReportMember(pb.ReportMemberRequest(
        member_id="m-x", unit_id="u1", community_id="c1", grid_id="g1", teams=["medical"], name="Wang Fang",
        phone="+86 139 0000 0000")))
    assert error.code() == Code.PERMISSION_DENIED
    assert error.details() == ("member may not report member m-x of unit u1 to community c1: outside their scope "
                               "(their token names community c9)")
    error = await refused(outsider.AcceptOrder(pb.AcceptOrderRequest(order_id=OFFER, member_id="m-x")))
    assert error.code() == Code.PERMISSION_DENIED
    assert (len(world.stored()), contacts_of(world), world.writes) == (before, contacts, [])
    assert (await world.secretary("c1").GetOrder(pb.OrderRef(order_id=OFFER))).status == "offered"


@pytest.mark.parametrize(("claims", "grid", "why"), [
    ({}, "g1", "their token names no community (community_id), so they may report into none"),
    ({"community_id": "c1", "grid_id": "g1"}, "g2", "their token names grid g1"),
    ({"community_id": "c2"}, "g1", "their token names community c2"),
])
async def test_a_member_is_told_why_their_report_is_outside_their_scope(world: Served, claims: dict[str, str],
                                                                        grid: str, why: str) -> None:
    member = world.as_("member-m5", ["member"], member_id="m5", **claims)
    before = len(world.stored())
    error = await refused(member.ReportMember(pb.ReportMemberRequest(member_id="m5", unit_id="u1",
                                                                     community_id="c1", grid_id=grid)))
    assert (error.code(), error.details().rsplit(": ", 1)[-1]) == (Code.PERMISSION_DENIED,
                                                                   f"outside their scope ({why})")
    assert len(world.stored()) == before


async def test_a_member_token_naming_no_grid_reports_into_any_grid_of_its_community(world: Served) -> None:
    member = world.as_("member-m8", ["member"], member_id="m8", community_id="c1")
    before = len(world.stored())
    reported = await member.ReportMember(pb.ReportMemberRequest(member_id="m8", unit_id="u3", community_id="c1",
                                                                grid_id="g2"))
    assert (reported.community_id, reported.grid_id) == ("c1", "g2")
    assert world.actors(before) == [("member-m8", "member", None)]


@pytest.mark.parametrize(("person", "request_", "code", "details"), [
    ("mem5", pb.ReportMemberRequest(member_id="m5", unit_id="u2", community_id="c1", grid_id="g1"),
     Code.FAILED_PRECONDITION, "unit u2 reported to c2, not c1"),
    ("ua1", pb.ReportMemberRequest(member_id="m5", unit_id="u1", community_id="c2", grid_id="g9"),
     Code.FAILED_PRECONDITION, "unit u1 reported to c1, not c2"),  # their unit, but not where it reported
    ("sec1", pb.ReportMemberRequest(member_id="m5", unit_id="u404", community_id="c1", grid_id="g1"),
     Code.NOT_FOUND, "unit u404 has not reported"),
    ("sec1", pb.ReportMemberRequest(member_id="m5", unit_id="u1", community_id="c1", grid_id="g9"),
     Code.FAILED_PRECONDITION, "grid g9 belongs to c2, not c1"),
])
async def test_the_unit_and_grid_named_must_be_of_that_community(world: Served, person: str,
                                                                 request_: pb.ReportMemberRequest, code: Code,
                                                                 details: str) -> None:
    before, contacts = len(world.stored()), contacts_of(world)
    error = await refused(PEOPLE[person](world).ReportMember(request_))
    assert (error.code(), error.details()) == (code, details)
    assert (len(world.stored()), contacts_of(world), world.writes) == (before, contacts, [])


async def test_a_changed_unit_address_is_recorded_under_who_changed_it_and_never_published(world: Served) -> None:
    new_hook, new_email = "https://oa2.health.example.cn/hooks/sandan", "office@health.example.cn"
    before = len(world.stored())
    await world.unit_admin("u1").ReportUnit(pb.ReportUnitRequest(unit_id="u1", community_id="c1",
                                                                 unit_name="County Health Bureau",
                                                                 webhook_url=new_hook))
    await world.secretary("c1").ReportUnit(pb.ReportUnitRequest(unit_id="u1", community_id="c1",
                                                                unit_name="County Health Bureau",
                                                                contact_email=new_email, webhook_url=new_hook))
    await world.unit_admin("u1").ReportUnit(pb.ReportUnitRequest(unit_id="u1", community_id="c1",
                                                                 unit_name="County Health Bureau",
                                                                 webhook_url=new_hook))  # the same: no change
    stored = world.stored()[before:]
    events = [world.app.mapper.to_domain_event(n) for n in stored]
    assert [(type(e).__qualname__, e.fields) for e in events] == [("Unit.ContactChanged", ["webhook_url"]),
                                                                  ("Unit.ContactChanged", ["contact_email"])]
    assert world.actors(before) == [("unit-admin-u1", "unit_admin", None),
                                    ("secretary-c1", "branch_secretary", None)]
    assert [to_contract(e) for e in events] == [None, None]
    assert not [n for n in stored if b"oa2.health" in bytes(n.state) or b"office@" in bytes(n.state)]
    contact = await world.notify().GetUnitContact(pb.UnitRef(unit_id="u1"))
    assert (contact.webhook_url, contact.contact_email) == (new_hook, new_email)


# ---- the audit trail -------------------------------------------------------------------------------------------
def rfc3339_utc(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() == timedelta(0)
    return parsed


async def test_order_history_names_who_did_what_in_order(world: Served) -> None:
    order_id = world.open_order("d-hist")
    secretary, m1 = world.secretary("c1"), world.member("m1")
    await secretary.DispatchOrder(pb.DispatchOrderRequest(order_id=order_id, member_id="m1"))
    await m1.AcceptOrder(pb.AcceptOrderRequest(order_id=order_id, member_id="m1"),
                         metadata=(("x-correlation-id", "call-7"),))
    await m1.CompleteService(pb.CompleteServiceRequest(order_id=order_id, member_id="m1", hours=2, notes="done"))
    await world.town("t1").GetOrder(pb.OrderRef(order_id=order_id))  # reading records nothing

    history = await secretary.GetOrderHistory(pb.OrderRef(order_id=order_id))
    assert [(e.version, e.what, e.subject, e.role, e.on_behalf_of) for e in history.entries] == [
        (1, "Opened", "", "", ""),
        (2, "Dispatched", "secretary-c1", "branch_secretary", ""),
        (3, "Accepted", "member-m1", "member", ""),
        (4, "Completed", "member-m1", "member", ""),
    ]
    opened = history.entries[0]
    assert (opened.caused_by, opened.correlation_id) == (f"intake:{world.offset}", "demand-d-hist")  # the fact
    assert history.entries[2].correlation_id == "call-7"
    times = [rfc3339_utc(e.at) for e in history.entries]
    assert times == sorted(times)
    assert "done" not in str(history)  # what happened, never what anyone wrote
    # the member's own view, and outside the scope of GetOrder
    assert len((await m1.GetOrderHistory(pb.OrderRef(order_id=order_id))).entries) == 4
    for person in ("sec2", "mem2", "lead2", "town2"):
        error = await refused(PEOPLE[person](world).GetOrderHistory(pb.OrderRef(order_id=order_id)))
        assert error.code() == Code.PERMISSION_DENIED


async def test_member_history_and_leaving_recorded_under_the_caller(world: Served) -> None:
    await world.unit_admin("u1").ReportMember(pb.ReportMemberRequest(member_id="m7", unit_id="u1",
                                                                     community_id="c1", grid_id="g1"))
    m7 = world.member("m7")
    await m7.JoinTeam(pb.JoinTeamRequest(member_id="m7", team="legal_aid"))
    await world.secretary("c1").DispatchOrder(pb.DispatchOrderRequest(order_id=OPEN, member_id="m7"))
    await world.secretary("c1").MemberLeaves(pb.MemberLeavesRequest(member_id="m7", reason="moved"))

    history = await m7.GetMemberHistory(pb.MemberRef(member_id="m7"))
    assert [(e.what, e.subject, e.role) for e in history.entries] == [
        ("Reported", "unit-admin-u1", "unit_admin"), ("TeamJoined", "member-m7", "member"),
        ("Left", "secretary-c1", "branch_secretary")]
    # the order m7 held went back to the pool as part of the secretary's act
    order = await world.secretary("c1").GetOrderHistory(pb.OrderRef(order_id=OPEN))
    assert [(e.what, e.subject) for e in order.entries][-2:] == [("Dispatched", "secretary-c1"),
                                                                 ("Declined", "secretary-c1")]


async def test_a_worker_signing_up_a_resident_is_recorded_acting_for_them(world: Served) -> None:
    before = len(world.stored())
    await world.grid_worker("c1").SignUpResident(pb.SignUpResidentRequest(activity_id="a1", resident_id=rid(3)))
    resident = world.resident("zhang")  # an account: the resident id is derived from issuer and subject
    await resident.SignUpResident(pb.SignUpResidentRequest(activity_id="a1", resident_id=resident.resident_id))
    assert world.actors(before) == [("grid-worker-c1", "grid_worker", rid(3)), ("resident-zhang", "resident", None)]
    error = await refused(resident.SignUpResident(pb.SignUpResidentRequest(activity_id="a1", resident_id=rid(4))))
    assert error.code() == Code.PERMISSION_DENIED
    signed = (await resident.GetActivity(pb.ActivityRef(activity_id="a1"))).residents_signed_up
    assert list(signed) == [rid(3), resident.resident_id]


async def test_the_seeded_world_was_internal_work(world: Served) -> None:
    """Seeding ran as no caller (SYSTEM): every scope passed and no actor was recorded, so the actors the walk
    asserts are the calls' own."""
    assert len(world.stored()) == 24
    assert set(world.actors(0)) == {("", "", None)}


async def test_the_use_cases_deny_a_role_their_row_does_not_name(world: Served) -> None:
    """Behind the interceptor too: a use case called as a role it names no rule for refuses (default deny), so
    a matrix row widened by mistake does not widen the scope."""
    for role in ("service_gateway", "partner", "operator", "county_office"):
        caller = Principal(subject=f"someone-{role}", roles=frozenset({role}), county_id="k1", acting_role=role)
        with acting_as(caller):
            if role != "county_office":
                with pytest.raises(PermissionDenied):
                    world.app.order(OPEN)  # GetOrder's row has no service_gateway (FindOrderByDemand's has)
            with pytest.raises(PermissionDenied):
                world.app.offer_order(OPEN, [])
            with pytest.raises(PermissionDenied):
                world.app.member_contact("m1")
    assert set(world.actors(0)) == {("", "", None)}  # nothing stored by any of them
