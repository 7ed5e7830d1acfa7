"""dispatch's gRPC edge, served in-process on a real socket behind the authentication interceptor: status codes
and messages a client sees. Every call carries a real signed token of the person who would make it (scope itself
is walked in test_scope.py)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from sandan_contracts.rpc import dispatch_pb2 as pb
from sandan_contracts.rpc import dispatch_pb2_grpc as pb_grpc
from sandan_dispatch.__main__ import build_runtime
from sandan_dispatch.domain import Order
from sandan_dispatch.keys import Keyring
from sandan_dispatch.settings import Settings
from sandan_eventbus import edge
from sandan_eventbus.auth.devissuer import LocalIssuer
from sandan_eventbus.errors import InvalidArgument
from sandan_eventbus.trace import TracingMapper
from services.dispatch.tests.support import T0, Served, rid, serving

Code = grpc.StatusCode


@pytest.fixture
async def client(local_issuer: LocalIssuer) -> AsyncIterator[Served]:
    async with serving(local_issuer) as c:
        yield c


async def roster(c: Served) -> None:
    await c.secretary().ReportUnit(pb.ReportUnitRequest(unit_id="u1", community_id="c1",
                                                        unit_name="County Health Bureau"))
    for member_id, grid, teams in (("m1", "g1", ["medical"]), ("m2", "g2", ["medical"]), ("m3", "g2", [])):
        await c.secretary().ReportMember(pb.ReportMemberRequest(member_id=member_id, unit_id="u1", community_id="c1",
                                                                grid_id=grid, teams=teams))


async def refused(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    return info.value


# ---- happy path --------------------------------------------------------------------------------
async def test_happy_path(client: Served) -> None:
    secretary, leader, m1 = client.secretary(), client.leader("g1"), client.member("m1")
    unit = await secretary.ReportUnit(pb.ReportUnitRequest(unit_id="u1", community_id="c1", unit_name="Tax Bureau"))
    assert (unit.unit_id, unit.community_id, unit.unit_name) == ("u1", "c1", "Tax Bureau")
    member = await m1.ReportMember(pb.ReportMemberRequest(
        member_id="m1", unit_id="u1", community_id="c1", grid_id="g1", teams=["medical"], skills=["nurse"],
        name="Li Hua", phone="+86 138 0000 0000"))
    assert (member.member_id, list(member.teams), list(member.skills), member.active) == (
        "m1", ["medical"], ["nurse"], True)
    member = await m1.JoinTeam(pb.JoinTeamRequest(member_id="m1", team="legal_aid"))
    assert list(member.teams) == ["medical", "legal_aid"]
    group = await secretary.FormGridGroup(pb.FormGridGroupRequest(community_id="c1", grid_id="g1"))
    assert group.leader_member_id == ""
    group = await secretary.AppointGridLeader(pb.AppointGridLeaderRequest(grid_id="g1", member_id="m1"))
    assert group.leader_member_id == "m1"
    assert (await m1.GetMember(pb.MemberRef(member_id="m1"))).grid_id == "g1"

    order_id = client.open_order("d1")
    found = await secretary.FindOrderByDemand(pb.DemandRef(demand_id="d1"))
    assert (found.order_id, found.status, found.level, found.urgency) == (order_id, "open", "community", "urgent")
    assert datetime.fromisoformat(found.due_at) == T0 + timedelta(days=1)
    listed = await secretary.ListOrders(pb.ListOrdersRequest(community_id="c1", status="open"))
    assert [o.order_id for o in listed.orders] == [order_id]
    suggestions = await leader.SuggestMembers(pb.SuggestMembersRequest(order_id=order_id))
    assert [(c.member_id, c.same_grid, c.team_matches, c.open_orders) for c in suggestions.candidates] == [
        ("m1", True, True, 0)]

    dispatched = await leader.DispatchOrder(pb.DispatchOrderRequest(order_id=order_id, member_id="m1",
                                                                  dispatched_by="grid_leader"))
    assert (dispatched.status, dispatched.member_id) == ("dispatched", "m1")
    accepted = await m1.AcceptOrder(pb.AcceptOrderRequest(order_id=order_id, member_id="m1"),
                                      metadata=(("x-correlation-id", "call-42"),))
    assert accepted.status == "accepted"
    done = await m1.CompleteService(pb.CompleteServiceRequest(order_id=order_id, member_id="m1", hours=1.5,
                                                                notes="fixed the tap"))
    assert (done.status, done.hours) == ("completed", 1.5)
    assert (await m1.GetOrder(pb.OrderRef(order_id=order_id))).status == "completed"

    # the caller's correlation id is stored with the event it caused, for the relay to carry on
    mapper = client.app.mapper
    assert isinstance(mapper, TracingMapper)
    traces = {type(mapper.to_domain_event(n)).__qualname__: mapper.trace_of(n)
              for n in client.app.recorder.select_notifications(start=1, limit=100)}
    assert traces["Order.Accepted"].correlation_id == "call-42"
    # every successful write woke the relay (6 roster writes + dispatch, accept, complete)
    assert len(client.writes) == 8


async def test_offer_claim_decline(client: Served) -> None:
    await roster(client)
    order_id = client.open_order("d1")
    offered = await client.secretary().OfferOrder(pb.OfferOrderRequest(order_id=order_id))
    assert (offered.status, list(offered.offered_teams)) == ("offered", ["medical"])
    m2 = client.member("m2", grid="g2")
    assert (await m2.AcceptOrder(pb.AcceptOrderRequest(order_id=order_id, member_id="m2"))).member_id == "m2"
    declined = await m2.DeclineOrder(pb.DeclineOrderRequest(order_id=order_id, member_id="m2"))
    assert (declined.status, declined.member_id) == ("offered", "")


async def test_escalate_to_the_county_with_a_joint_meeting(client: Served) -> None:
    await roster(client)
    order_id = client.open_order("d1")
    town = await client.secretary().EscalateOrder(pb.EscalateOrderRequest(order_id=order_id, reason="no_capacity",
                                                                   note="no plumber in the grid"))
    assert town.level == "town"
    county = await client.town("t1").EscalateOrder(pb.EscalateOrderRequest(order_id=order_id, reason="needs_resources",
                                                                     joint_meeting_units=["u1"]))
    assert (county.level, list(county.joint_meeting_units)) == ("county", ["u1"])


# ---- INVALID_ARGUMENT names the field -----------------------------------------------------------
async def test_invalid_member_id(client: Served) -> None:
    await roster(client)
    error = await refused(client.secretary().ReportMember(pb.ReportMemberRequest(
        member_id="m 1; drop", unit_id="u1", community_id="c1", grid_id="g1")))
    assert error.code() == Code.INVALID_ARGUMENT
    assert error.details().startswith("member_id: ")
    error = await refused(client.secretary().GetMember(pb.MemberRef(member_id="")))
    assert (error.code(), error.details().split(":")[0]) == (Code.INVALID_ARGUMENT, "member_id")


async def test_invalid_team_code(client: Served) -> None:
    await roster(client)
    error = await refused(client.member("m1").JoinTeam(pb.JoinTeamRequest(member_id="m1", team="Legal Aid")))
    assert error.code() == Code.INVALID_ARGUMENT
    assert error.details() == "team: must be a lowercase code like medical or legal_aid"
    error = await refused(client.secretary().ReportMember(pb.ReportMemberRequest(
        member_id="m9", unit_id="u1", community_id="c1", grid_id="g1", teams=["MEDICAL"])))
    assert (error.code(), error.details().split(":")[0]) == (Code.INVALID_ARGUMENT, "teams")
    order_id = client.open_order("d1")
    error = await refused(client.secretary().OfferOrder(pb.OfferOrderRequest(order_id=order_id,
                                                                            teams=["free clinic"])))
    assert (error.code(), error.details().split(":")[0]) == (Code.INVALID_ARGUMENT, "teams")


async def test_zero_hours(client: Served) -> None:
    await roster(client)
    order_id = client.open_order("d1")
    m1 = client.member("m1")
    await client.secretary().DispatchOrder(pb.DispatchOrderRequest(order_id=order_id, member_id="m1"))
    await m1.AcceptOrder(pb.AcceptOrderRequest(order_id=order_id, member_id="m1"))
    error = await refused(m1.CompleteService(pb.CompleteServiceRequest(order_id=order_id, member_id="m1")))
    assert error.code() == Code.INVALID_ARGUMENT
    assert error.details() == "hours: must be more than 0 and at most 72"
    assert (await m1.GetOrder(pb.OrderRef(order_id=order_id))).status == "accepted"


async def test_zero_hours_is_invalid_whatever_the_order_state(client: Served) -> None:
    """INVALID_ARGUMENT means "wrong whatever the system's state" (gRPC status semantics): a client must
    not be told FAILED_PRECONDITION ("order is dispatched ...") for a request that could never succeed."""
    await roster(client)
    order_id = client.open_order("d1")
    await client.secretary().DispatchOrder(pb.DispatchOrderRequest(order_id=order_id, member_id="m1"))
    error = await refused(client.member("m1").CompleteService(pb.CompleteServiceRequest(
        order_id=order_id, member_id="m1", hours=0)))
    assert (error.code(), error.details().split(":")[0]) == (Code.INVALID_ARGUMENT, "hours")


async def test_county_escalation_needs_joint_meeting_units(client: Served) -> None:
    await roster(client)
    order_id = client.open_order("d1")
    await client.secretary().EscalateOrder(pb.EscalateOrderRequest(order_id=order_id, reason="no_capacity"))
    town = client.town("t1")  # the order is the town's now: only its office takes it to the county
    error = await refused(town.EscalateOrder(pb.EscalateOrderRequest(order_id=order_id,
                                                                            reason="needs_resources")))
    assert error.code() == Code.INVALID_ARGUMENT
    assert error.details() == "joint_meeting_units: required when escalating to the county"
    for reason in ("", "the town has no budget"):  # a published code, not free text (that goes in `note`)
        error = await refused(town.EscalateOrder(pb.EscalateOrderRequest(order_id=order_id, reason=reason,
                                                                         joint_meeting_units=["u1"])))
        assert (error.code(), error.details().split(":")[0]) == (Code.INVALID_ARGUMENT, "reason")


@pytest.mark.parametrize("order_id", ["", "42", "not-a-uuid", "0f8fad5b-d9cb-469f-a165-70867728950"])
async def test_malformed_order_id(client: Served, order_id: str) -> None:
    error = await refused(client.secretary().GetOrder(pb.OrderRef(order_id=order_id)))
    assert error.code() == Code.INVALID_ARGUMENT
    assert error.details() == "order_id: must be a uuid"
    error = await refused(client.member("m1").AcceptOrder(pb.AcceptOrderRequest(order_id=order_id, member_id="m1")))
    assert (error.code(), error.details()) == (Code.INVALID_ARGUMENT, "order_id: must be a uuid")


async def test_dispatch_needs_a_member_and_a_known_dispatcher(client: Served) -> None:
    await roster(client)
    order_id = client.open_order("d1")
    secretary = client.secretary()
    error = await refused(secretary.DispatchOrder(pb.DispatchOrderRequest(order_id=order_id, member_id=" ")))
    assert (error.code(), error.details()) == (Code.INVALID_ARGUMENT, "member_id: is required")
    error = await refused(secretary.DispatchOrder(pb.DispatchOrderRequest(
        order_id=order_id, member_id="m1", dispatched_by="resident")))
    assert (error.code(), error.details().split(":")[0]) == (Code.INVALID_ARGUMENT, "dispatched_by")


# ---- NOT_FOUND, FAILED_PRECONDITION, ALREADY_EXISTS --------------------------------------------
async def test_unknown_member_and_order(client: Served) -> None:
    await roster(client)
    secretary = client.secretary()
    error = await refused(secretary.GetMember(pb.MemberRef(member_id="m404")))
    assert (error.code(), error.details()) == (Code.NOT_FOUND, "member m404 not found")
    unknown = str(Order.create_id("d404"))
    error = await refused(secretary.GetOrder(pb.OrderRef(order_id=unknown)))
    assert (error.code(), error.details()) == (Code.NOT_FOUND, f"order {unknown} not found")
    error = await refused(secretary.FindOrderByDemand(pb.DemandRef(demand_id="d404")))
    assert (error.code(), error.details()) == (Code.NOT_FOUND, "order for demand d404 not found")
    order_id = client.open_order("d1")
    # a token bound to a member record the roster does not have
    error = await refused(client.member("m404").AcceptOrder(pb.AcceptOrderRequest(order_id=order_id,
                                                                                  member_id="m404")))
    assert (error.code(), error.details()) == (Code.NOT_FOUND, "member m404 not found")
    error = await refused(secretary.ReportMember(pb.ReportMemberRequest(
        member_id="m9", unit_id="u404", community_id="c1", grid_id="g1")))
    assert (error.code(), error.details()) == (Code.NOT_FOUND, "unit u404 has not reported")


async def test_second_claim_is_told_the_order_is_taken(client: Served) -> None:
    await roster(client)
    order_id = client.open_order("d1")
    await client.secretary().OfferOrder(pb.OfferOrderRequest(order_id=order_id, teams=["medical"]))
    writes = len(client.writes)
    first, second = await asyncio.gather(
        client.member("m1").AcceptOrder(pb.AcceptOrderRequest(order_id=order_id, member_id="m1")),
        client.member("m2", grid="g2").AcceptOrder(pb.AcceptOrderRequest(order_id=order_id, member_id="m2")),
        return_exceptions=True)
    [won] = [r for r in (first, second) if isinstance(r, pb.Order)]
    [lost] = [r for r in (first, second) if isinstance(r, grpc.aio.AioRpcError)]
    assert won.status == "accepted"
    assert (lost.code(), lost.details()) == (Code.FAILED_PRECONDITION, "order already accepted by another member")
    assert len(client.writes) == writes + 1  # a refused call wakes no relay
    error = await refused(client.member("m3", grid="g2").CompleteService(pb.CompleteServiceRequest(
        order_id=order_id, member_id="m3", hours=1)))
    assert error.code() == Code.FAILED_PRECONDITION
    assert error.details() == "order is accepted by another member, not m3"


async def test_state_refusals_name_the_state(client: Served) -> None:
    await roster(client)
    order_id = client.open_order("d1")
    error = await refused(client.member("m1").AcceptOrder(pb.AcceptOrderRequest(order_id=order_id, member_id="m1")))
    assert (error.code(), error.details()) == (Code.FAILED_PRECONDITION, "order is open")
    await client.member("m3", grid="g2").MemberLeaves(pb.MemberLeavesRequest(member_id="m3", reason="retired"))
    error = await refused(client.secretary().DispatchOrder(pb.DispatchOrderRequest(order_id=order_id,
                                                                                   member_id="m3")))
    assert (error.code(), error.details()) == (Code.FAILED_PRECONDITION, "member m3 has left")
    error = await refused(client.secretary().AppointGridLeader(pb.AppointGridLeaderRequest(grid_id="g404",
                                                                                           member_id="m1")))
    assert error.code() == Code.NOT_FOUND


async def test_re_reporting_an_active_member(client: Served) -> None:
    await roster(client)
    error = await refused(client.secretary().ReportMember(pb.ReportMemberRequest(
        member_id="m1", unit_id="u1", community_id="c1", grid_id="g1")))
    assert (error.code(), error.details()) == (Code.ALREADY_EXISTS, "member m1 already reported to c1")
    error = await refused(client.unit_admin("u1").ReportUnit(pb.ReportUnitRequest(unit_id="u1", community_id="c2",
                                                                      unit_name="County Health Bureau")))
    assert (error.code(), error.details()) == (Code.ALREADY_EXISTS, "unit u1 already reported to c1")


# ---- contacts for notify: notify's service identity only ----------------------------------------
async def contact_roster(c: Served) -> None:
    await c.secretary().ReportUnit(pb.ReportUnitRequest(
        unit_id="u1", community_id="c1", unit_name="County Health Bureau", contact_email="dangban@health.example.cn",
        webhook_url="https://oa.health.example.cn/hooks/sandan"))
    await c.secretary().ReportMember(pb.ReportMemberRequest(
        member_id="m1", unit_id="u1", community_id="c1", grid_id="g1", name="Li Hua", phone="+86 138 0000 0000",
        email="li.hua@example.cn", wechat_openid="oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"))


async def test_contacts_for_notifys_service_identity(client: Served) -> None:
    await contact_roster(client)
    notify = client.notify()
    member = await notify.GetMemberContact(pb.MemberRef(member_id="m1"))
    assert (member.member_id, member.community_id, member.unit_id, member.name, member.phone, member.email,
            member.wechat_openid) == ("m1", "c1", "u1", "Li Hua", "+86 138 0000 0000", "li.hua@example.cn",
                                      "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")
    unit = await notify.GetUnitContact(pb.UnitRef(unit_id="u1"))
    assert (unit.unit_id, unit.community_id, unit.unit_name, unit.contact_email, unit.webhook_url) == (
        "u1", "c1", "County Health Bureau", "dangban@health.example.cn", "https://oa.health.example.cn/hooks/sandan")
    # the public views carry none of it
    public = await client.member("m1").GetMember(pb.MemberRef(member_id="m1"))
    assert "Li Hua" not in str(public) and "example.cn" not in str(public)


@pytest.mark.parametrize("rpc", ["GetMemberContact", "GetUnitContact"])
async def test_contacts_without_a_token_are_unauthenticated(client: Served, rpc: str) -> None:
    await contact_roster(client)
    request = pb.MemberRef(member_id="m1") if rpc == "GetMemberContact" else pb.UnitRef(unit_id="u1")
    for metadata in ((), (("authorization", "Basic bm90aWZ5OnNlY3JldA=="),), (("authorization", "Bearer "),)):
        error = await refused(getattr(client.stub, rpc)(request, metadata=metadata))
        assert error.code() == Code.UNAUTHENTICATED
        assert error.details() == "authorization: Bearer <token> is required"
    # the old shared contact token is no token at all now
    error = await refused(getattr(client.stub, rpc)(request, metadata=(("authorization", "Bearer notify-5f2c9"),)))
    assert (error.code(), error.details()) == (Code.UNAUTHENTICATED, "invalid token: not a JWT")


@pytest.mark.parametrize("rpc", ["GetMemberContact", "GetUnitContact"])
async def test_contacts_are_refused_to_every_person(client: Served, rpc: str) -> None:
    """Only notify's service identity reads contacts: not the member themselves, not the unit, not the secretary."""
    await contact_roster(client)
    request = pb.MemberRef(member_id="m1") if rpc == "GetMemberContact" else pb.UnitRef(unit_id="u1")
    for person in (client.member("m1"), client.unit_admin("u1"), client.secretary(), client.county(),
                   client.as_("service-account-scoring", ["service_scoring"])):
        error = await refused(getattr(person, rpc)(request))
        assert error.code() == Code.PERMISSION_DENIED, person.roles


async def test_contacts_of_unknown_ids_and_the_token_comes_first(client: Served) -> None:
    await contact_roster(client)
    notify = client.notify()
    error = await refused(notify.GetMemberContact(pb.MemberRef(member_id="m404")))
    assert (error.code(), error.details()) == (Code.NOT_FOUND, "member m404 not found")
    error = await refused(notify.GetUnitContact(pb.UnitRef(unit_id="u404")))
    assert (error.code(), error.details()) == (Code.NOT_FOUND, "unit u404 not found")
    error = await refused(notify.GetUnitContact(pb.UnitRef(unit_id="")))
    assert (error.code(), error.details().split(":")[0]) == (Code.INVALID_ARGUMENT, "unit_id")
    # without a token nobody learns whether an id exists
    error = await refused(client.stub.GetMemberContact(pb.MemberRef(member_id="m404")))
    assert error.code() == Code.UNAUTHENTICATED
    error = await refused(client.secretary().GetMemberContact(pb.MemberRef(member_id="m404")))
    assert error.code() == Code.PERMISSION_DENIED


@pytest.mark.parametrize(("request_", "field"), [
    (pb.ReportUnitRequest(unit_id="u9", community_id="c1", unit_name="X", contact_email="dangban"), "contact_email"),
    (pb.ReportUnitRequest(unit_id="u9", community_id="c1", unit_name="X", webhook_url="file:///etc/passwd"),
     "webhook_url"),
    (pb.ReportUnitRequest(unit_id="u9", community_id="c1", unit_name="X", webhook_url="oa.example.cn/hook"),
     "webhook_url"),
    (pb.ReportMemberRequest(member_id="m9", unit_id="u1", community_id="c1", grid_id="g1", email="li@"), "email"),
    (pb.ReportMemberRequest(member_id="m9", unit_id="u1", community_id="c1", grid_id="g1", wechat_openid="o x"),
     "wechat_openid"),
])
async def test_contact_fields_are_validated(client: Served, request_: object, field: str) -> None:
    await roster(client)
    secretary = client.secretary()
    call = secretary.ReportUnit if isinstance(request_, pb.ReportUnitRequest) else secretary.ReportMember
    error = await refused(call(request_))
    assert (error.code(), error.details().split(":")[0]) == (Code.INVALID_ARGUMENT, field)


# ---- themed party days -------------------------------------------------------------------------
def schedule_request(**kw: object) -> pb.ScheduleActivityRequest:
    fields: dict[str, object] = {"activity_id": "a1", "unit_id": "u1", "community_id": "c1",
                                 "theme": "free_health_check", "title": "三八节免费义诊",
                                 "starts_at": "2025-03-14T09:00:00+08:00", "ends_at": "2025-03-14T12:00:00+08:00",
                                 "capacity": 2} | kw
    return pb.ScheduleActivityRequest(**fields)  # type: ignore[arg-type]


async def test_activity_happy_path(client: Served) -> None:
    await roster(client)
    unit_admin, worker = client.unit_admin("u1"), client.grid_worker("c1")
    resident = client.resident("1", resident_id=rid(1))
    scheduled = await unit_admin.ScheduleActivity(schedule_request())
    assert (scheduled.activity_id, scheduled.unit_id, scheduled.community_id, scheduled.theme, scheduled.title,
            scheduled.capacity, scheduled.status) == (
        "a1", "u1", "c1", "free_health_check", "三八节免费义诊", 2, "scheduled")
    assert datetime.fromisoformat(scheduled.starts_at) == datetime(2025, 3, 14, 1, tzinfo=UTC)
    assert scheduled.starts_at == "2025-03-14T01:00:00+00:00" and scheduled.ends_at == "2025-03-14T04:00:00+00:00"
    assert (await unit_admin.ScheduleActivity(schedule_request(
        starts_at="2025-03-14T01:00:00Z", ends_at="2025-03-14T04:00:00Z"))).status == "scheduled"
    await resident.SignUpResident(pb.SignUpResidentRequest(activity_id="a1", resident_id=rid(1)))
    await resident.SignUpResident(pb.SignUpResidentRequest(activity_id="a1", resident_id=rid(1)))
    signed = await worker.SignUpResident(pb.SignUpResidentRequest(activity_id="a1", resident_id=rid(2)))
    assert list(signed.residents_signed_up) == [rid(1), rid(2)]
    checked = await client.member("m2", grid="g2").CheckInMember(pb.CheckInMemberRequest(activity_id="a1",
                                                                                         member_id="m2"))
    assert list(checked.members_checked_in) == ["m2"]
    done = await unit_admin.CompleteActivity(pb.CompleteActivityRequest(activity_id="a1", hours=3))
    assert (done.status, done.hours) == ("completed", 3.0)
    got = await resident.GetActivity(pb.ActivityRef(activity_id="a1"))
    assert (got.status, list(got.residents_signed_up), list(got.members_checked_in)) == (
        "completed", [rid(1), rid(2)], ["m2"])


async def test_activity_refusals(client: Served) -> None:
    await roster(client)
    unit_admin, worker = client.unit_admin("u1"), client.grid_worker("c1")
    error = await refused(client.secretary().ScheduleActivity(schedule_request(unit_id="u404")))
    assert (error.code(), error.details()) == (Code.NOT_FOUND, "unit u404 has not reported")
    error = await refused(unit_admin.ScheduleActivity(schedule_request(community_id="c2")))
    assert (error.code(), error.details()) == (Code.FAILED_PRECONDITION, "unit u1 reported to c1, not c2")
    await unit_admin.ScheduleActivity(schedule_request(capacity=1))
    error = await refused(unit_admin.ScheduleActivity(schedule_request(capacity=5)))
    assert (error.code(), error.details()) == (Code.ALREADY_EXISTS, "activity a1 is already scheduled with other terms")
    await worker.SignUpResident(pb.SignUpResidentRequest(activity_id="a1", resident_id=rid(1)))
    writes = len(client.writes)
    error = await refused(worker.SignUpResident(pb.SignUpResidentRequest(activity_id="a1", resident_id=rid(2))))
    assert (error.code(), error.details()) == (Code.FAILED_PRECONDITION, "activity a1 is full (1 residents signed up)")
    assert len(client.writes) == writes  # a refused call wakes no relay
    await client.secretary("c2").ReportUnit(pb.ReportUnitRequest(unit_id="u2", community_id="c2",
                                                                 unit_name="Town Office"))
    await client.secretary("c2").ReportMember(pb.ReportMemberRequest(member_id="m9", unit_id="u2", community_id="c2",
                                                                     grid_id="g9"))
    error = await refused(client.member("m9", community="c2", grid="g9").CheckInMember(
        pb.CheckInMemberRequest(activity_id="a1", member_id="m9")))
    assert (error.code(), error.details()) == (Code.FAILED_PRECONDITION, "member m9 serves community c2, not c1")
    error = await refused(client.member("m1").GetActivity(pb.ActivityRef(activity_id="a404")))
    assert (error.code(), error.details()) == (Code.NOT_FOUND, "activity a404 not found")
    await unit_admin.CompleteActivity(pb.CompleteActivityRequest(activity_id="a1", hours=2))
    error = await refused(unit_admin.CompleteActivity(pb.CompleteActivityRequest(activity_id="a1", hours=2)))
    assert (error.code(), error.details()) == (Code.FAILED_PRECONDITION, "activity a1 is completed")


@pytest.mark.parametrize(("fields", "field", "details"), [
    ({"starts_at": ""}, "starts_at", "starts_at: is required"),
    ({"starts_at": "2025-03-14T09:00:00"}, "starts_at", "starts_at: must include a UTC offset (e.g. Z or +08:00)"),
    ({"ends_at": "next tuesday"}, "ends_at",
     "ends_at: must be an RFC 3339 timestamp like 2025-03-14T09:00:00+08:00"),
    ({"ends_at": "2025-03-14T25:00:00Z"}, "ends_at",
     "ends_at: must be an RFC 3339 timestamp like 2025-03-14T09:00:00+08:00"),
    ({"ends_at": "2025-03-14T08:00:00+08:00"}, "ends_at", "ends_at: must be after starts_at"),
    ({"capacity": 0}, "capacity", "capacity: must be 1-10000"),
    ({"title": ""}, "title", "title: must be 1 to 100 characters"),
    ({"theme": "Free Clinic"}, "theme", "theme: must be a lowercase code like medical or legal_aid"),
    ({"activity_id": ""}, "activity_id", None),
])
async def test_schedule_activity_invalid_arguments(client: Served, fields: dict[str, object], field: str,
                                                   details: str | None) -> None:
    await roster(client)
    error = await refused(client.unit_admin("u1").ScheduleActivity(schedule_request(**fields)))
    assert (error.code(), error.details().split(":")[0]) == (Code.INVALID_ARGUMENT, field)
    if details is not None:
        assert error.details() == details


async def test_activity_commands_invalid_arguments(client: Served) -> None:
    await roster(client)
    await client.unit_admin("u1").ScheduleActivity(schedule_request())
    error = await refused(client.unit_admin("u1").CompleteActivity(pb.CompleteActivityRequest(activity_id="a1")))
    assert (error.code(), error.details()) == (Code.INVALID_ARGUMENT, "hours: must be more than 0 and at most 24")
    error = await refused(client.grid_worker().SignUpResident(pb.SignUpResidentRequest(activity_id="a1")))
    assert (error.code(), error.details().split(":")[0]) == (Code.INVALID_ARGUMENT, "resident_id")
    error = await refused(client.member("m1").CheckInMember(pb.CheckInMemberRequest(activity_id="a 1", member_id="m1")))
    assert (error.code(), error.details().split(":")[0]) == (Code.INVALID_ARGUMENT, "activity_id")


# ---- hostile input (the input policy, at the edge and in the application) ----------------------------------
async def test_control_characters_in_free_text_are_refused_naming_the_field(client: Served) -> None:
    await roster(client)
    order_id = client.open_order("d1")
    secretary, m1 = client.secretary(), client.member("m1")
    await secretary.DispatchOrder(pb.DispatchOrderRequest(order_id=order_id, member_id="m1"))
    await m1.AcceptOrder(pb.AcceptOrderRequest(order_id=order_id, member_id="m1"))
    before = len(client.app.notification_log.select(start=1, limit=500))
    calls = [
        ("unit_name", secretary.ReportUnit(pb.ReportUnitRequest(unit_id="u7", community_id="c1",
                                                                unit_name="Tax\x00Bureau"))),
        ("name", secretary.ReportMember(pb.ReportMemberRequest(member_id="m7", unit_id="u1", community_id="c1",
                                                               grid_id="g1", name="Li\x00Hua"))),
        ("title", client.unit_admin("u1").ScheduleActivity(schedule_request(title="义诊\u202e"))),
        ("notes", m1.CompleteService(pb.CompleteServiceRequest(order_id=order_id, member_id="m1", hours=1,
                                                               notes="done\x00"))),
        ("note", secretary.EscalateOrder(pb.EscalateOrderRequest(order_id=order_id, reason="no_capacity",
                                                                 note="\x1b[2Jurgent"))),
    ]
    for name, call in calls:
        error = await refused(call)
        assert error.code() == Code.INVALID_ARGUMENT and error.details().startswith(f"{name}: must not contain ")
    assert len(client.app.notification_log.select(start=1, limit=500)) == before  # nothing was stored


async def test_the_application_refuses_control_characters_too(client: Served) -> None:
    """Whoever calls the use cases (not only the gRPC edge) cannot store a NUL byte."""
    app = client.app
    with pytest.raises(InvalidArgument, match=r"^unit_name: must not contain control characters"):
        app.report_unit("u7", "c1", "Tax\x00Bureau")
    await roster(client)
    with pytest.raises(InvalidArgument, match=r"^name: must not contain control characters"):
        app.report_member("m7", "u1", "c1", "g1", [], [], name="Li\x00Hua")
    order_id = client.open_order("d1")
    app.dispatch_order(order_id, "m1")
    app.accept_order(order_id, "m1")
    with pytest.raises(InvalidArgument, match=r"^note: must not contain control characters"):
        app.escalate_order(order_id, "no_capacity", [], note="\x00")
    with pytest.raises(InvalidArgument, match=r"^notes: must not contain control characters"):
        app.complete_service(order_id, "m1", 1.0, notes="a\x00b")
    assert app.complete_service(order_id, "m1", 1.0, notes="line one\n\tline two").status == "completed"


async def test_sign_up_takes_only_a_resident_id(client: Served) -> None:
    await roster(client)
    await client.unit_admin("u1").ScheduleActivity(schedule_request())
    worker = client.grid_worker()
    for wrong in ("m1", "u1", "r-1"):
        error = await refused(worker.SignUpResident(pb.SignUpResidentRequest(activity_id="a1",
                                                                                   resident_id=wrong)))
        assert (error.code(), error.details()) == (
            Code.INVALID_ARGUMENT, "resident_id: must be a resident id (a uuid issued by intake)")
    # a member whose id happens to be a uuid is still no resident
    member_uuid = str(uuid.uuid4())
    await client.secretary().ReportMember(pb.ReportMemberRequest(member_id=member_uuid, unit_id="u1",
                                                                 community_id="c1", grid_id="g1"))
    error = await refused(worker.SignUpResident(pb.SignUpResidentRequest(activity_id="a1",
                                                                               resident_id=member_uuid)))
    assert (error.code(), error.details()) == (
        Code.INVALID_ARGUMENT, "resident_id: is a member's id, not a resident id (a uuid issued by intake)")
    signed = await worker.SignUpResident(pb.SignUpResidentRequest(activity_id="a1",
                                                                        resident_id=rid(1).upper()))
    assert list(signed.residents_signed_up) == [rid(1)]  # one spelling: intake's


async def test_wiring_verifies_tokens_and_reads_the_places_from_the_environment(
        monkeypatch: pytest.MonkeyPatch, local_issuer: LocalIssuer, tmp_path: Path) -> None:
    """The service as __main__ builds it: the runtime's interceptor trusts SANDAN_OIDC_ISSUER, contacts go to
    notify's service identity only, and a town office's reach comes from SANDAN_PLACES_FILE."""
    places = tmp_path / "places.toml"
    places.write_text('[county]\nid = "k1"\n[communities.c1]\ntown = "t1"\n', encoding="utf-8")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")  # never contacted: only gRPC is started
    monkeypatch.setenv("DISPATCH_EVENTSTORE_URL", "memory://")
    monkeypatch.setenv("DISPATCH_KEK", Keyring.generate().text())
    monkeypatch.setenv("SANDAN_OIDC_ISSUER", local_issuer.url)
    monkeypatch.setenv("SANDAN_GRPC_PLAINTEXT", "allow")
    monkeypatch.setenv("SANDAN_PLACES_FILE", str(places))
    monkeypatch.setenv("DISPATCH_CONTACT_TOKENS", "notify-5f2c9e")  # gone: nothing reads it any more
    settings = Settings.from_env()

    runtime = build_runtime(settings)
    assert runtime.oidc is not None
    server = edge.server("dispatch", guards=runtime.oidc.guards())  # as the runtime serves it
    runtime.register_servicers(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.DispatchStub(channel)

            def as_(subject: str, *roles: str, **claims: str) -> tuple[tuple[str, str], ...]:
                return local_issuer.metadata(subject, roles, **claims)

            await stub.ReportUnit(pb.ReportUnitRequest(unit_id="u1", community_id="c1", unit_name="Tax Bureau",
                                                       contact_email="dangban@tax.example.cn"),
                                  metadata=as_("sec-c1", "branch_secretary", community_id="c1"))
            unit = await stub.GetUnitContact(pb.UnitRef(unit_id="u1"), metadata=as_("notify", "service_notify"))
            assert unit.contact_email == "dangban@tax.example.cn"  # the contacts table is wired too
            for metadata in ((("authorization", "Bearer notify-5f2c9e"),), ()):
                error = await refused(stub.GetUnitContact(pb.UnitRef(unit_id="u1"), metadata=metadata))
                assert error.code() == Code.UNAUTHENTICATED
            error = await refused(stub.GetUnitContact(pb.UnitRef(unit_id="u1"),
                                                      metadata=as_("ua-u1", "unit_admin", unit_id="u1")))
            assert error.code() == Code.PERMISSION_DENIED
            await stub.ReportMember(pb.ReportMemberRequest(member_id="m1", unit_id="u1", community_id="c1",
                                                           grid_id="g1"), metadata=as_("ua-u1", "unit_admin",
                                                                                       unit_id="u1"))
            got = await stub.GetMember(pb.MemberRef(member_id="m1"), metadata=as_("t1", "town_office", town_id="t1"))
            assert got.community_id == "c1"  # c1 is in t1 by the places file
            error = await refused(stub.GetMember(pb.MemberRef(member_id="m1"),
                                                 metadata=as_("t2", "town_office", town_id="t2")))
            assert error.code() == Code.PERMISSION_DENIED
    finally:
        await server.stop(None)
        runtime.relay.app.close()


# ---- public names (the 公示 board) ---------------------------------------------------------------
async def test_a_member_names_themself_on_the_public_board_and_withdraws(client: Served) -> None:
    await roster(client)
    m1, gateway = client.member("m1"), client.as_("service-account-gateway", ["service_gateway"])
    given = await m1.SetPublicName(pb.SetPublicNameRequest(member_id="m1", public_name="王芳"))
    assert (given.member_id, given.public_name) == ("m1", "王芳")
    found = await gateway.PublicNames(pb.PublicNamesRequest(member_ids=["m1", "m2", "m1"], unit_ids=["u1", "u9"]))
    assert [(m.member_id, m.public_name) for m in found.members] == [("m1", "王芳")]
    assert [(u.unit_id, u.unit_name) for u in found.units] == [("u1", "County Health Bureau")]
    error = await refused(client.member("m2").SetPublicName(pb.SetPublicNameRequest(member_id="m1")))
    assert error.code() == Code.PERMISSION_DENIED
    withdrawn = await m1.SetPublicName(pb.SetPublicNameRequest(member_id="m1"))
    assert withdrawn.public_name == ""
    assert list((await gateway.PublicNames(pb.PublicNamesRequest(member_ids=["m1"]))).members) == []
    error = await refused(client.resident("1").PublicNames(pb.PublicNamesRequest(member_ids=["m1"])))
    assert error.code() == Code.PERMISSION_DENIED


async def test_public_name_and_public_ids_are_bounded_naming_the_field(client: Served) -> None:
    await roster(client)
    m1, gateway = client.member("m1"), client.as_("service-account-gateway", ["service_gateway"])
    before = len(client.stored())
    for name, request in (
            ("public_name", pb.SetPublicNameRequest(member_id="m1", public_name="王" * 21)),
            ("public_name", pb.SetPublicNameRequest(member_id="m1", public_name="王\x00芳")),
            ("member_id", pb.SetPublicNameRequest(member_id="m 1", public_name="王芳"))):
        error = await refused(m1.SetPublicName(request))
        assert (error.code(), error.details().split(":")[0]) == (Code.INVALID_ARGUMENT, name), error.details()
    for name, request in (
            ("member_ids", pb.PublicNamesRequest(member_ids=[f"m{i}" for i in range(501)])),
            ("unit_ids", pb.PublicNamesRequest(unit_ids=[f"u{i}" for i in range(501)])),
            ("unit_ids[0]", pb.PublicNamesRequest(unit_ids=["u" * 65]))):
        error = await refused(gateway.PublicNames(request))
        assert (error.code(), error.details().split(":")[0]) == (Code.INVALID_ARGUMENT, name), error.details()
    assert len(client.stored()) == before
    found = await gateway.PublicNames(pb.PublicNamesRequest(member_ids=[f"m{i}" for i in range(500)]))
    assert list(found.members) == []
