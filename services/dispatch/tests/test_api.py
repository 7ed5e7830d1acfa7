"""dispatch's gRPC edge, served in-process on a real socket: status codes and messages a client sees."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from eventsourcing.persistence import Tracking

from sandan_contracts import decode, encode
from sandan_contracts.events import DemandPosted
from sandan_contracts.rpc import dispatch_pb2 as pb
from sandan_contracts.rpc import dispatch_pb2_grpc as pb_grpc
from sandan_dispatch import api
from sandan_dispatch.__main__ import build_runtime
from sandan_dispatch.application import DispatchApplication
from sandan_dispatch.contacts import Contacts
from sandan_dispatch.domain import Order
from sandan_dispatch.settings import Settings
from sandan_eventbus import edge
from sandan_eventbus.errors import InvalidArgument
from sandan_eventbus.trace import TracingMapper

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
Code = grpc.StatusCode
NOTIFY_TOKEN, AUDIT_TOKEN = "notify-5f2c9e", "audit-81d0aa"


def rid(n: int) -> str:
    """A resident's id as intake issues them (a uuid)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"sandan-test/resident/{n}"))


@dataclass
class Client:
    stub: pb_grpc.DispatchStub
    app: DispatchApplication
    writes: list[int] = field(default_factory=list)
    offset: int = 0

    def open_order(self, demand_id: str, *, grid: str = "g1", category: str = "medical") -> str:
        """What the inbox does when intake publishes DemandPosted."""
        self.offset += 1
        event = DemandPosted(demand_id=demand_id, community_id="c1", grid_id=grid, category=category,
                             urgency="urgent", care_tags=[], channel="app", due_at=T0 + timedelta(days=1),
                             deadline_seconds=86_400)
        envelope, decoded = decode(encode(event, event_id=f"intake:{self.offset}", producer="intake",
                                          occurred_at=T0, correlation_id="c", causation_id=None))
        changed = self.app.on_demand_event(envelope, decoded)
        self.app.save_tracked(*changed, tracking=Tracking("kafka:intake.demands.v1:0", self.offset))
        return str(Order.create_id(demand_id))


@contextlib.asynccontextmanager
async def serving(**servicer_kwargs: object) -> AsyncIterator[Client]:
    app = DispatchApplication("memory://", contacts=Contacts("memory://"), clock=lambda: T0)
    writes: list[int] = []
    server = edge.server("dispatch")
    api.register(server, api.DispatchServicer(app, on_write=lambda: writes.append(1),
                                              **servicer_kwargs))  # type: ignore[arg-type]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield Client(pb_grpc.DispatchStub(channel), app, writes)
    finally:
        await server.stop(None)
        app.close()


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    async with serving(contact_tokens=frozenset({NOTIFY_TOKEN, AUDIT_TOKEN})) as c:
        yield c


async def roster(c: Client) -> None:
    await c.stub.ReportUnit(pb.ReportUnitRequest(unit_id="u1", community_id="c1", unit_name="County Health Bureau"))
    for member_id, grid, teams in (("m1", "g1", ["medical"]), ("m2", "g2", ["medical"]), ("m3", "g2", [])):
        await c.stub.ReportMember(pb.ReportMemberRequest(member_id=member_id, unit_id="u1", community_id="c1",
                                                         grid_id=grid, teams=teams))


async def refused(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    return info.value


# ---- happy path --------------------------------------------------------------------------------
async def test_happy_path(client: Client) -> None:
    stub = client.stub
    unit = await stub.ReportUnit(pb.ReportUnitRequest(unit_id="u1", community_id="c1", unit_name="Tax Bureau"))
    assert (unit.unit_id, unit.community_id, unit.unit_name) == ("u1", "c1", "Tax Bureau")
    member = await stub.ReportMember(pb.ReportMemberRequest(
        member_id="m1", unit_id="u1", community_id="c1", grid_id="g1", teams=["medical"], skills=["nurse"],
        name="Li Hua", phone="+86 138 0000 0000"))
    assert (member.member_id, list(member.teams), list(member.skills), member.active) == (
        "m1", ["medical"], ["nurse"], True)
    member = await stub.JoinTeam(pb.JoinTeamRequest(member_id="m1", team="legal_aid"))
    assert list(member.teams) == ["medical", "legal_aid"]
    group = await stub.FormGridGroup(pb.FormGridGroupRequest(community_id="c1", grid_id="g1"))
    assert group.leader_member_id == ""
    group = await stub.AppointGridLeader(pb.AppointGridLeaderRequest(grid_id="g1", member_id="m1"))
    assert group.leader_member_id == "m1"
    assert (await stub.GetMember(pb.MemberRef(member_id="m1"))).grid_id == "g1"

    order_id = client.open_order("d1")
    found = await stub.FindOrderByDemand(pb.DemandRef(demand_id="d1"))
    assert (found.order_id, found.status, found.level, found.urgency) == (order_id, "open", "community", "urgent")
    assert datetime.fromisoformat(found.due_at) == T0 + timedelta(days=1)
    listed = await stub.ListOrders(pb.ListOrdersRequest(community_id="c1", status="open"))
    assert [o.order_id for o in listed.orders] == [order_id]
    suggestions = await stub.SuggestMembers(pb.SuggestMembersRequest(order_id=order_id))
    assert [(c.member_id, c.same_grid, c.team_matches, c.open_orders) for c in suggestions.candidates] == [
        ("m1", True, True, 0)]

    dispatched = await stub.DispatchOrder(pb.DispatchOrderRequest(order_id=order_id, member_id="m1",
                                                                  dispatched_by="grid_leader"))
    assert (dispatched.status, dispatched.member_id) == ("dispatched", "m1")
    accepted = await stub.AcceptOrder(pb.AcceptOrderRequest(order_id=order_id, member_id="m1"),
                                      metadata=(("x-correlation-id", "call-42"),))
    assert accepted.status == "accepted"
    done = await stub.CompleteService(pb.CompleteServiceRequest(order_id=order_id, member_id="m1", hours=1.5,
                                                                notes="fixed the tap"))
    assert (done.status, done.hours) == ("completed", 1.5)
    assert (await stub.GetOrder(pb.OrderRef(order_id=order_id))).status == "completed"

    # the caller's correlation id is stored with the event it caused, for the relay to carry on
    mapper = client.app.mapper
    assert isinstance(mapper, TracingMapper)
    traces = {type(mapper.to_domain_event(n)).__qualname__: mapper.trace_of(n)
              for n in client.app.recorder.select_notifications(start=1, limit=100)}
    assert traces["Order.Accepted"].correlation_id == "call-42"
    # every successful write woke the relay (6 roster writes + dispatch, accept, complete)
    assert len(client.writes) == 8


async def test_offer_claim_decline(client: Client) -> None:
    await roster(client)
    order_id = client.open_order("d1")
    offered = await client.stub.OfferOrder(pb.OfferOrderRequest(order_id=order_id))
    assert (offered.status, list(offered.offered_teams)) == ("offered", ["medical"])
    assert (await client.stub.AcceptOrder(pb.AcceptOrderRequest(order_id=order_id, member_id="m2"))).member_id == "m2"
    declined = await client.stub.DeclineOrder(pb.DeclineOrderRequest(order_id=order_id, member_id="m2"))
    assert (declined.status, declined.member_id) == ("offered", "")


async def test_escalate_to_the_county_with_a_joint_meeting(client: Client) -> None:
    await roster(client)
    order_id = client.open_order("d1")
    town = await client.stub.EscalateOrder(pb.EscalateOrderRequest(order_id=order_id, reason="no_capacity",
                                                                   note="no plumber in the grid"))
    assert town.level == "town"
    county = await client.stub.EscalateOrder(pb.EscalateOrderRequest(order_id=order_id, reason="needs_resources",
                                                                     joint_meeting_units=["u1"]))
    assert (county.level, list(county.joint_meeting_units)) == ("county", ["u1"])


# ---- INVALID_ARGUMENT names the field -----------------------------------------------------------
async def test_invalid_member_id(client: Client) -> None:
    await roster(client)
    error = await refused(client.stub.ReportMember(pb.ReportMemberRequest(
        member_id="m 1; drop", unit_id="u1", community_id="c1", grid_id="g1")))
    assert error.code() == Code.INVALID_ARGUMENT
    assert error.details().startswith("member_id: ")
    error = await refused(client.stub.GetMember(pb.MemberRef(member_id="")))
    assert (error.code(), error.details().split(":")[0]) == (Code.INVALID_ARGUMENT, "member_id")


async def test_invalid_team_code(client: Client) -> None:
    await roster(client)
    error = await refused(client.stub.JoinTeam(pb.JoinTeamRequest(member_id="m1", team="Legal Aid")))
    assert error.code() == Code.INVALID_ARGUMENT
    assert error.details() == "team: must be a lowercase code like medical or legal_aid"
    error = await refused(client.stub.ReportMember(pb.ReportMemberRequest(
        member_id="m9", unit_id="u1", community_id="c1", grid_id="g1", teams=["MEDICAL"])))
    assert (error.code(), error.details().split(":")[0]) == (Code.INVALID_ARGUMENT, "teams")
    order_id = client.open_order("d1")
    error = await refused(client.stub.OfferOrder(pb.OfferOrderRequest(order_id=order_id, teams=["free clinic"])))
    assert (error.code(), error.details().split(":")[0]) == (Code.INVALID_ARGUMENT, "teams")


async def test_zero_hours(client: Client) -> None:
    await roster(client)
    order_id = client.open_order("d1")
    await client.stub.DispatchOrder(pb.DispatchOrderRequest(order_id=order_id, member_id="m1"))
    await client.stub.AcceptOrder(pb.AcceptOrderRequest(order_id=order_id, member_id="m1"))
    error = await refused(client.stub.CompleteService(pb.CompleteServiceRequest(order_id=order_id, member_id="m1")))
    assert error.code() == Code.INVALID_ARGUMENT
    assert error.details() == "hours: must be more than 0 and at most 72"
    assert (await client.stub.GetOrder(pb.OrderRef(order_id=order_id))).status == "accepted"


async def test_zero_hours_is_invalid_whatever_the_order_state(client: Client) -> None:
    """INVALID_ARGUMENT means "wrong whatever the system's state" (gRPC status semantics): a client must
    not be told FAILED_PRECONDITION ("order is dispatched ...") for a request that could never succeed."""
    await roster(client)
    order_id = client.open_order("d1")
    await client.stub.DispatchOrder(pb.DispatchOrderRequest(order_id=order_id, member_id="m1"))
    error = await refused(client.stub.CompleteService(pb.CompleteServiceRequest(
        order_id=order_id, member_id="m1", hours=0)))
    assert (error.code(), error.details().split(":")[0]) == (Code.INVALID_ARGUMENT, "hours")


async def test_county_escalation_needs_joint_meeting_units(client: Client) -> None:
    await roster(client)
    order_id = client.open_order("d1")
    await client.stub.EscalateOrder(pb.EscalateOrderRequest(order_id=order_id, reason="no_capacity"))
    error = await refused(client.stub.EscalateOrder(pb.EscalateOrderRequest(order_id=order_id,
                                                                            reason="needs_resources")))
    assert error.code() == Code.INVALID_ARGUMENT
    assert error.details() == "joint_meeting_units: required when escalating to the county"
    for reason in ("", "the town has no budget"):  # a published code, not free text (that goes in `note`)
        error = await refused(client.stub.EscalateOrder(pb.EscalateOrderRequest(order_id=order_id, reason=reason,
                                                                                joint_meeting_units=["u1"])))
        assert (error.code(), error.details().split(":")[0]) == (Code.INVALID_ARGUMENT, "reason")


@pytest.mark.parametrize("order_id", ["", "42", "not-a-uuid", "0f8fad5b-d9cb-469f-a165-70867728950"])
async def test_malformed_order_id(client: Client, order_id: str) -> None:
    error = await refused(client.stub.GetOrder(pb.OrderRef(order_id=order_id)))
    assert error.code() == Code.INVALID_ARGUMENT
    assert error.details() == "order_id: must be a uuid"
    error = await refused(client.stub.AcceptOrder(pb.AcceptOrderRequest(order_id=order_id, member_id="m1")))
    assert (error.code(), error.details()) == (Code.INVALID_ARGUMENT, "order_id: must be a uuid")


async def test_dispatch_needs_a_member_and_a_known_dispatcher(client: Client) -> None:
    await roster(client)
    order_id = client.open_order("d1")
    error = await refused(client.stub.DispatchOrder(pb.DispatchOrderRequest(order_id=order_id, member_id=" ")))
    assert (error.code(), error.details()) == (Code.INVALID_ARGUMENT, "member_id: is required")
    error = await refused(client.stub.DispatchOrder(pb.DispatchOrderRequest(
        order_id=order_id, member_id="m1", dispatched_by="resident")))
    assert (error.code(), error.details().split(":")[0]) == (Code.INVALID_ARGUMENT, "dispatched_by")


# ---- NOT_FOUND, FAILED_PRECONDITION, ALREADY_EXISTS --------------------------------------------
async def test_unknown_member_and_order(client: Client) -> None:
    await roster(client)
    error = await refused(client.stub.GetMember(pb.MemberRef(member_id="m404")))
    assert (error.code(), error.details()) == (Code.NOT_FOUND, "member m404 not found")
    unknown = str(Order.create_id("d404"))
    error = await refused(client.stub.GetOrder(pb.OrderRef(order_id=unknown)))
    assert (error.code(), error.details()) == (Code.NOT_FOUND, f"order {unknown} not found")
    error = await refused(client.stub.FindOrderByDemand(pb.DemandRef(demand_id="d404")))
    assert (error.code(), error.details()) == (Code.NOT_FOUND, "order for demand d404 not found")
    order_id = client.open_order("d1")
    error = await refused(client.stub.AcceptOrder(pb.AcceptOrderRequest(order_id=order_id, member_id="m404")))
    assert (error.code(), error.details()) == (Code.NOT_FOUND, "member m404 not found")
    error = await refused(client.stub.ReportMember(pb.ReportMemberRequest(
        member_id="m9", unit_id="u404", community_id="c1", grid_id="g1")))
    assert (error.code(), error.details()) == (Code.NOT_FOUND, "unit u404 has not reported")


async def test_second_claim_is_told_the_order_is_taken(client: Client) -> None:
    await roster(client)
    order_id = client.open_order("d1")
    await client.stub.OfferOrder(pb.OfferOrderRequest(order_id=order_id, teams=["medical"]))
    writes = len(client.writes)
    first, second = await asyncio.gather(
        client.stub.AcceptOrder(pb.AcceptOrderRequest(order_id=order_id, member_id="m1")),
        client.stub.AcceptOrder(pb.AcceptOrderRequest(order_id=order_id, member_id="m2")),
        return_exceptions=True)
    [won] = [r for r in (first, second) if isinstance(r, pb.Order)]
    [lost] = [r for r in (first, second) if isinstance(r, grpc.aio.AioRpcError)]
    assert won.status == "accepted"
    assert (lost.code(), lost.details()) == (Code.FAILED_PRECONDITION, "order already accepted by another member")
    assert len(client.writes) == writes + 1  # a refused call wakes no relay
    error = await refused(client.stub.CompleteService(pb.CompleteServiceRequest(
        order_id=order_id, member_id="m3", hours=1)))
    assert error.code() == Code.FAILED_PRECONDITION
    assert error.details() == "order is accepted by another member, not m3"


async def test_state_refusals_name_the_state(client: Client) -> None:
    await roster(client)
    order_id = client.open_order("d1")
    error = await refused(client.stub.AcceptOrder(pb.AcceptOrderRequest(order_id=order_id, member_id="m1")))
    assert (error.code(), error.details()) == (Code.FAILED_PRECONDITION, "order is open")
    await client.stub.MemberLeaves(pb.MemberLeavesRequest(member_id="m3", reason="retired"))
    error = await refused(client.stub.DispatchOrder(pb.DispatchOrderRequest(order_id=order_id, member_id="m3")))
    assert (error.code(), error.details()) == (Code.FAILED_PRECONDITION, "member m3 has left")
    error = await refused(client.stub.AppointGridLeader(pb.AppointGridLeaderRequest(grid_id="g404", member_id="m1")))
    assert error.code() == Code.NOT_FOUND


async def test_re_reporting_an_active_member(client: Client) -> None:
    await roster(client)
    error = await refused(client.stub.ReportMember(pb.ReportMemberRequest(
        member_id="m1", unit_id="u1", community_id="c1", grid_id="g1")))
    assert (error.code(), error.details()) == (Code.ALREADY_EXISTS, "member m1 already reported to c1")
    error = await refused(client.stub.ReportUnit(pb.ReportUnitRequest(unit_id="u1", community_id="c2",
                                                                      unit_name="County Health Bureau")))
    assert (error.code(), error.details()) == (Code.ALREADY_EXISTS, "unit u1 already reported to c1")


# ---- contacts for notify: bearer token required ------------------------------------------------
def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def contact_roster(c: Client) -> None:
    await c.stub.ReportUnit(pb.ReportUnitRequest(
        unit_id="u1", community_id="c1", unit_name="County Health Bureau", contact_email="dangban@health.example.cn",
        webhook_url="https://oa.health.example.cn/hooks/sandan"))
    await c.stub.ReportMember(pb.ReportMemberRequest(
        member_id="m1", unit_id="u1", community_id="c1", grid_id="g1", name="Li Hua", phone="+86 138 0000 0000",
        email="li.hua@example.cn", wechat_openid="oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"))


async def test_contacts_for_a_holder_of_a_configured_token(client: Client) -> None:
    await contact_roster(client)
    member = await client.stub.GetMemberContact(pb.MemberRef(member_id="m1"), metadata=bearer(NOTIFY_TOKEN))
    assert (member.member_id, member.community_id, member.unit_id, member.name, member.phone, member.email,
            member.wechat_openid) == ("m1", "c1", "u1", "Li Hua", "+86 138 0000 0000", "li.hua@example.cn",
                                      "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")
    unit = await client.stub.GetUnitContact(pb.UnitRef(unit_id="u1"), metadata=bearer(AUDIT_TOKEN))
    assert (unit.unit_id, unit.community_id, unit.unit_name, unit.contact_email, unit.webhook_url) == (
        "u1", "c1", "County Health Bureau", "dangban@health.example.cn", "https://oa.health.example.cn/hooks/sandan")
    # the public views carry none of it
    public = await client.stub.GetMember(pb.MemberRef(member_id="m1"))
    assert "Li Hua" not in str(public) and "example.cn" not in str(public)


@pytest.mark.parametrize("rpc", ["GetMemberContact", "GetUnitContact"])
async def test_contacts_without_a_token_are_unauthenticated(client: Client, rpc: str) -> None:
    await contact_roster(client)
    request = pb.MemberRef(member_id="m1") if rpc == "GetMemberContact" else pb.UnitRef(unit_id="u1")
    for metadata in ((), (("authorization", "Basic bm90aWZ5OnNlY3JldA=="),), (("authorization", "Bearer "),)):
        error = await refused(getattr(client.stub, rpc)(request, metadata=metadata))
        assert error.code() == Code.UNAUTHENTICATED
        assert error.details() == "authorization: Bearer <token> is required"
    error = await refused(getattr(client.stub, rpc)(request, metadata=bearer("notify-5f2c9")))
    assert (error.code(), error.details()) == (Code.PERMISSION_DENIED, "this token may not read contacts")


async def test_contacts_are_refused_to_everyone_when_no_token_is_configured() -> None:
    async with serving() as c:  # the default: DISPATCH_CONTACT_TOKENS unset
        await contact_roster(c)
        for token in (NOTIFY_TOKEN, ""):
            error = await refused(c.stub.GetMemberContact(pb.MemberRef(member_id="m1"), metadata=bearer(token)))
            assert error.code() == (Code.PERMISSION_DENIED if token else Code.UNAUTHENTICATED)
        error = await refused(c.stub.GetUnitContact(pb.UnitRef(unit_id="u1"), metadata=bearer(NOTIFY_TOKEN)))
        assert error.code() == Code.PERMISSION_DENIED


async def test_contacts_of_unknown_ids_and_the_token_comes_first(client: Client) -> None:
    await contact_roster(client)
    error = await refused(client.stub.GetMemberContact(pb.MemberRef(member_id="m404"), metadata=bearer(NOTIFY_TOKEN)))
    assert (error.code(), error.details()) == (Code.NOT_FOUND, "member m404 not found")
    error = await refused(client.stub.GetUnitContact(pb.UnitRef(unit_id="u404"), metadata=bearer(NOTIFY_TOKEN)))
    assert (error.code(), error.details()) == (Code.NOT_FOUND, "unit u404 not found")
    error = await refused(client.stub.GetUnitContact(pb.UnitRef(unit_id=""), metadata=bearer(NOTIFY_TOKEN)))
    assert (error.code(), error.details().split(":")[0]) == (Code.INVALID_ARGUMENT, "unit_id")
    # without a token nobody learns whether an id exists
    error = await refused(client.stub.GetMemberContact(pb.MemberRef(member_id="m404")))
    assert error.code() == Code.UNAUTHENTICATED


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
async def test_contact_fields_are_validated(client: Client, request_: object, field: str) -> None:
    await roster(client)
    call = client.stub.ReportUnit if isinstance(request_, pb.ReportUnitRequest) else client.stub.ReportMember
    error = await refused(call(request_))
    assert (error.code(), error.details().split(":")[0]) == (Code.INVALID_ARGUMENT, field)


# ---- themed party days -------------------------------------------------------------------------
def schedule_request(**kw: object) -> pb.ScheduleActivityRequest:
    fields: dict[str, object] = {"activity_id": "a1", "unit_id": "u1", "community_id": "c1",
                                 "theme": "free_health_check", "title": "三八节免费义诊",
                                 "starts_at": "2025-03-14T09:00:00+08:00", "ends_at": "2025-03-14T12:00:00+08:00",
                                 "capacity": 2} | kw
    return pb.ScheduleActivityRequest(**fields)  # type: ignore[arg-type]


async def test_activity_happy_path(client: Client) -> None:
    await roster(client)
    stub = client.stub
    scheduled = await stub.ScheduleActivity(schedule_request())
    assert (scheduled.activity_id, scheduled.unit_id, scheduled.community_id, scheduled.theme, scheduled.title,
            scheduled.capacity, scheduled.status) == (
        "a1", "u1", "c1", "free_health_check", "三八节免费义诊", 2, "scheduled")
    assert datetime.fromisoformat(scheduled.starts_at) == datetime(2025, 3, 14, 1, tzinfo=UTC)
    assert scheduled.starts_at == "2025-03-14T01:00:00+00:00" and scheduled.ends_at == "2025-03-14T04:00:00+00:00"
    assert (await stub.ScheduleActivity(schedule_request(starts_at="2025-03-14T01:00:00Z",
                                                         ends_at="2025-03-14T04:00:00Z"))).status == "scheduled"
    await stub.SignUpResident(pb.SignUpResidentRequest(activity_id="a1", resident_id=rid(1)))
    await stub.SignUpResident(pb.SignUpResidentRequest(activity_id="a1", resident_id=rid(1)))
    signed = await stub.SignUpResident(pb.SignUpResidentRequest(activity_id="a1", resident_id=rid(2)))
    assert list(signed.residents_signed_up) == [rid(1), rid(2)]
    checked = await stub.CheckInMember(pb.CheckInMemberRequest(activity_id="a1", member_id="m2"))
    assert list(checked.members_checked_in) == ["m2"]
    done = await stub.CompleteActivity(pb.CompleteActivityRequest(activity_id="a1", hours=3))
    assert (done.status, done.hours) == ("completed", 3.0)
    got = await stub.GetActivity(pb.ActivityRef(activity_id="a1"))
    assert (got.status, list(got.residents_signed_up), list(got.members_checked_in)) == (
        "completed", [rid(1), rid(2)], ["m2"])


async def test_activity_refusals(client: Client) -> None:
    await roster(client)
    error = await refused(client.stub.ScheduleActivity(schedule_request(unit_id="u404")))
    assert (error.code(), error.details()) == (Code.NOT_FOUND, "unit u404 has not reported")
    error = await refused(client.stub.ScheduleActivity(schedule_request(community_id="c2")))
    assert (error.code(), error.details()) == (Code.FAILED_PRECONDITION, "unit u1 reported to c1, not c2")
    await client.stub.ScheduleActivity(schedule_request(capacity=1))
    error = await refused(client.stub.ScheduleActivity(schedule_request(capacity=5)))
    assert (error.code(), error.details()) == (Code.ALREADY_EXISTS, "activity a1 is already scheduled with other terms")
    await client.stub.SignUpResident(pb.SignUpResidentRequest(activity_id="a1", resident_id=rid(1)))
    writes = len(client.writes)
    error = await refused(client.stub.SignUpResident(pb.SignUpResidentRequest(activity_id="a1", resident_id=rid(2))))
    assert (error.code(), error.details()) == (Code.FAILED_PRECONDITION, "activity a1 is full (1 residents signed up)")
    assert len(client.writes) == writes  # a refused call wakes no relay
    await client.stub.ReportUnit(pb.ReportUnitRequest(unit_id="u2", community_id="c2", unit_name="Town Office"))
    await client.stub.ReportMember(pb.ReportMemberRequest(member_id="m9", unit_id="u2", community_id="c2",
                                                          grid_id="g9"))
    error = await refused(client.stub.CheckInMember(pb.CheckInMemberRequest(activity_id="a1", member_id="m9")))
    assert (error.code(), error.details()) == (Code.FAILED_PRECONDITION, "member m9 serves community c2, not c1")
    error = await refused(client.stub.GetActivity(pb.ActivityRef(activity_id="a404")))
    assert (error.code(), error.details()) == (Code.NOT_FOUND, "activity a404 not found")
    await client.stub.CompleteActivity(pb.CompleteActivityRequest(activity_id="a1", hours=2))
    error = await refused(client.stub.CompleteActivity(pb.CompleteActivityRequest(activity_id="a1", hours=2)))
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
async def test_schedule_activity_invalid_arguments(client: Client, fields: dict[str, object], field: str,
                                                   details: str | None) -> None:
    await roster(client)
    error = await refused(client.stub.ScheduleActivity(schedule_request(**fields)))
    assert (error.code(), error.details().split(":")[0]) == (Code.INVALID_ARGUMENT, field)
    if details is not None:
        assert error.details() == details


async def test_activity_commands_invalid_arguments(client: Client) -> None:
    await roster(client)
    await client.stub.ScheduleActivity(schedule_request())
    error = await refused(client.stub.CompleteActivity(pb.CompleteActivityRequest(activity_id="a1")))
    assert (error.code(), error.details()) == (Code.INVALID_ARGUMENT, "hours: must be more than 0 and at most 24")
    error = await refused(client.stub.SignUpResident(pb.SignUpResidentRequest(activity_id="a1")))
    assert (error.code(), error.details().split(":")[0]) == (Code.INVALID_ARGUMENT, "resident_id")
    error = await refused(client.stub.CheckInMember(pb.CheckInMemberRequest(activity_id="a 1", member_id="m1")))
    assert (error.code(), error.details().split(":")[0]) == (Code.INVALID_ARGUMENT, "activity_id")


# ---- hostile input (the input policy, at the edge and in the application) ----------------------------------
async def test_control_characters_in_free_text_are_refused_naming_the_field(client: Client) -> None:
    await roster(client)
    order_id = client.open_order("d1")
    await client.stub.DispatchOrder(pb.DispatchOrderRequest(order_id=order_id, member_id="m1"))
    await client.stub.AcceptOrder(pb.AcceptOrderRequest(order_id=order_id, member_id="m1"))
    before = len(client.app.notification_log.select(start=1, limit=500))
    calls = [
        ("unit_name", client.stub.ReportUnit(pb.ReportUnitRequest(unit_id="u7", community_id="c1",
                                                                  unit_name="Tax\x00Bureau"))),
        ("name", client.stub.ReportMember(pb.ReportMemberRequest(member_id="m7", unit_id="u1", community_id="c1",
                                                                 grid_id="g1", name="Li\x00Hua"))),
        ("title", client.stub.ScheduleActivity(schedule_request(title="义诊\u202e"))),
        ("notes", client.stub.CompleteService(pb.CompleteServiceRequest(order_id=order_id, member_id="m1", hours=1,
                                                                         notes="done\x00"))),
        ("note", client.stub.EscalateOrder(pb.EscalateOrderRequest(order_id=order_id, reason="no_capacity",
                                                                   note="\x1b[2Jurgent"))),
    ]
    for name, call in calls:
        error = await refused(call)
        assert error.code() == Code.INVALID_ARGUMENT and error.details().startswith(f"{name}: must not contain ")
    assert len(client.app.notification_log.select(start=1, limit=500)) == before  # nothing was stored


async def test_the_application_refuses_control_characters_too(client: Client) -> None:
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


async def test_sign_up_takes_only_a_resident_id(client: Client) -> None:
    await roster(client)
    await client.stub.ScheduleActivity(schedule_request())
    for wrong in ("m1", "u1", "r-1"):
        error = await refused(client.stub.SignUpResident(pb.SignUpResidentRequest(activity_id="a1",
                                                                                   resident_id=wrong)))
        assert (error.code(), error.details()) == (
            Code.INVALID_ARGUMENT, "resident_id: must be a resident id (a uuid issued by intake)")
    # a member whose id happens to be a uuid is still no resident
    member_uuid = str(uuid.uuid4())
    await client.stub.ReportMember(pb.ReportMemberRequest(member_id=member_uuid, unit_id="u1", community_id="c1",
                                                          grid_id="g1"))
    error = await refused(client.stub.SignUpResident(pb.SignUpResidentRequest(activity_id="a1",
                                                                               resident_id=member_uuid)))
    assert (error.code(), error.details()) == (
        Code.INVALID_ARGUMENT, "resident_id: is a member's id, not a resident id (a uuid issued by intake)")
    signed = await client.stub.SignUpResident(pb.SignUpResidentRequest(activity_id="a1",
                                                                        resident_id=rid(1).upper()))
    assert list(signed.residents_signed_up) == [rid(1)]  # one spelling: intake's


async def test_wiring_passes_the_contact_tokens_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")  # never contacted: only gRPC is started
    monkeypatch.setenv("DISPATCH_EVENTSTORE_URL", "memory://")
    monkeypatch.setenv("DISPATCH_CONTACT_TOKENS", f" {NOTIFY_TOKEN} , ,{AUDIT_TOKEN},")
    settings = Settings.from_env()
    assert settings.contact_tokens == frozenset({NOTIFY_TOKEN, AUDIT_TOKEN})
    monkeypatch.delenv("DISPATCH_CONTACT_TOKENS")
    assert Settings.from_env().contact_tokens == frozenset()

    runtime = build_runtime(settings)
    server = edge.server("dispatch")
    runtime.register_servicers(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.DispatchStub(channel)
            await stub.ReportUnit(pb.ReportUnitRequest(unit_id="u1", community_id="c1", unit_name="Tax Bureau",
                                                       contact_email="dangban@tax.example.cn"))
            unit = await stub.GetUnitContact(pb.UnitRef(unit_id="u1"), metadata=bearer(AUDIT_TOKEN))
            assert unit.contact_email == "dangban@tax.example.cn"  # the contacts table is wired too
            error = await refused(stub.GetUnitContact(pb.UnitRef(unit_id="u1"), metadata=bearer("guess")))
            assert error.code() == Code.PERMISSION_DENIED
    finally:
        await server.stop(None)
        runtime.relay.app.close()
