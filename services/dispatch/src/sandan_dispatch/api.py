"""dispatch's gRPC API: validates requests, runs use cases, maps refusals to status codes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import grpc

from sandan_contracts.rpc import audit_pb2
from sandan_contracts.rpc import dispatch_pb2 as pb
from sandan_contracts.rpc import dispatch_pb2_grpc as pb_grpc
from sandan_dispatch.application import DispatchApplication
from sandan_dispatch.domain import Activity, GridGroup, Member, Order, Unit
from sandan_eventbus.audit import AuditEntry
from sandan_eventbus.errors import InvalidArgument
from sandan_eventbus.rpc import call

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Dispatch"].full_name


def unit_pb(u: Unit) -> pb.Unit:
    return pb.Unit(unit_id=u.unit_id, community_id=u.community_id, unit_name=u.unit_name)


def member_pb(m: Member) -> pb.Member:
    return pb.Member(member_id=m.member_id, unit_id=m.unit_id, community_id=m.community_id, grid_id=m.grid_id,
                     teams=m.teams, skills=m.skills, active=m.active)


def grid_pb(g: GridGroup) -> pb.GridGroup:
    return pb.GridGroup(grid_id=g.grid_id, community_id=g.community_id, leader_member_id=g.leader_member_id or "")


def order_pb(o: Order) -> pb.Order:
    return pb.Order(
        order_id=o.order_id, demand_id=o.demand_id, community_id=o.community_id, grid_id=o.grid_id,
        category=o.category, urgency=o.urgency, status=o.status, member_id=o.member_id or "", level=o.level,
        due_at=o.due_at.isoformat(), redo_count=o.redo_count, offered_teams=o.offered_teams,
        joint_meeting_units=o.joint_meeting_units, hours=o.hours, special_care=o.special_care,
    )


def activity_pb(a: Activity) -> pb.Activity:
    return pb.Activity(
        activity_id=a.activity_id, unit_id=a.unit_id, community_id=a.community_id, theme=a.theme, title=a.title,
        starts_at=a.starts_at.isoformat(), ends_at=a.ends_at.isoformat(), capacity=a.capacity, status=a.status,
        residents_signed_up=a.residents, members_checked_in=a.members, hours=a.hours,
    )


def history_pb(entries: list[AuditEntry]) -> audit_pb2.History:
    return audit_pb2.History(entries=[audit_pb2.Entry(
        version=e.version, at=e.at.astimezone(UTC).isoformat(), what=e.what, subject=e.subject, role=e.role,
        on_behalf_of=e.on_behalf_of, caused_by=e.caused_by, correlation_id=e.correlation_id) for e in entries])


def timestamp(field: str, value: str) -> datetime:
    """An RFC 3339 timestamp with its UTC offset (a naive time is ambiguous across time zones)."""
    if not value.strip():
        raise InvalidArgument(field, "is required")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidArgument(field, "must be an RFC 3339 timestamp like 2025-03-14T09:00:00+08:00") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise InvalidArgument(field, "must include a UTC offset (e.g. Z or +08:00)")
    return parsed


def _required(field: str, value: str) -> str:
    if not value.strip():
        raise InvalidArgument(field, "is required")
    return value.strip()


class DispatchServicer(pb_grpc.DispatchServicer):
    """Who may call each method is the interceptor's (role) and the application's (scope) business: the
    servicer only translates."""

    def __init__(self, app: DispatchApplication, on_write: Callable[[], None] = lambda: None) -> None:
        self.app = app
        self.on_write = on_write  # wakes the relay so the new facts go out at once

    async def _write(self, context: grpc.aio.ServicerContext, command: Callable[..., Any], *args: Any) -> Any:
        result = await call(context, command, *args)
        self.on_write()
        return result

    # ---- roster ----------------------------------------------------------------------------------
    async def ReportUnit(self, request: pb.ReportUnitRequest, context: grpc.aio.ServicerContext) -> pb.Unit:
        return unit_pb(await self._write(context, self.app.report_unit, request.unit_id, request.community_id,
                                         request.unit_name, request.contact_email, request.webhook_url))

    async def ReportMember(self, request: pb.ReportMemberRequest, context: grpc.aio.ServicerContext) -> pb.Member:
        return member_pb(await self._write(
            context, self.app.report_member, request.member_id, request.unit_id, request.community_id,
            request.grid_id, list(request.teams), list(request.skills), request.name, request.phone,
            request.email, request.wechat_openid))

    async def JoinTeam(self, request: pb.JoinTeamRequest, context: grpc.aio.ServicerContext) -> pb.Member:
        return member_pb(await self._write(context, self.app.join_team, request.member_id, request.team))

    async def MemberLeaves(self, request: pb.MemberLeavesRequest, context: grpc.aio.ServicerContext) -> pb.Member:
        return member_pb(await self._write(context, self.app.member_leaves, request.member_id, request.reason))

    async def FormGridGroup(self, request: pb.FormGridGroupRequest,
                            context: grpc.aio.ServicerContext) -> pb.GridGroup:
        return grid_pb(await self._write(context, self.app.form_grid_group, request.community_id, request.grid_id))

    async def AppointGridLeader(self, request: pb.AppointGridLeaderRequest,
                                context: grpc.aio.ServicerContext) -> pb.GridGroup:
        return grid_pb(await self._write(context, self.app.appoint_grid_leader, request.grid_id, request.member_id))

    async def GetMember(self, request: pb.MemberRef, context: grpc.aio.ServicerContext) -> pb.Member:
        return member_pb(await call(context, self.app.member, request.member_id))

    async def GetMemberHistory(self, request: pb.MemberRef, context: grpc.aio.ServicerContext) -> audit_pb2.History:
        return history_pb(await call(context, self.app.member_history, request.member_id))

    async def ListRoster(self, request: pb.RosterRequest, context: grpc.aio.ServicerContext) -> pb.Roster:
        found = await call(context, self.app.roster, request.community_id)
        return pb.Roster(
            community_id=found.community_id,
            units=[pb.RosterUnit(unit_id=u.unit_id, unit_name=u.unit_name, members_reported=u.members_reported)
                   for u in found.units],
            members=[pb.Member(member_id=m.member_id, unit_id=m.unit_id, community_id=m.community_id,
                               grid_id=m.grid_id, teams=m.teams, active=m.active) for m in found.members],
            grid_groups=[pb.GridGroup(grid_id=g.grid_id, community_id=g.community_id,
                                      leader_member_id=g.leader_member_id) for g in found.grid_groups])

    # ---- contacts (notify's service identity only) ------------------------------------------------
    async def GetMemberContact(self, request: pb.MemberRef, context: grpc.aio.ServicerContext) -> pb.MemberContact:
        return pb.MemberContact(**asdict(await call(context, self.app.member_contact, request.member_id)))

    async def GetUnitContact(self, request: pb.UnitRef, context: grpc.aio.ServicerContext) -> pb.UnitContact:
        return pb.UnitContact(**asdict(await call(context, self.app.unit_contact, request.unit_id)))

    # ---- public names (the 公示 board) -------------------------------------------------------------
    async def SetPublicName(self, request: pb.SetPublicNameRequest,
                            context: grpc.aio.ServicerContext) -> pb.MemberPublicName:
        member_id, public_name = await self._write(context, self.app.set_public_name, request.member_id,
                                                   request.public_name)
        return pb.MemberPublicName(member_id=member_id, public_name=public_name)

    async def PublicNames(self, request: pb.PublicNamesRequest,
                          context: grpc.aio.ServicerContext) -> pb.PublicNamesReply:
        found = await call(context, self.app.public_names, list(request.member_ids), list(request.unit_ids))
        return pb.PublicNamesReply(
            members=[pb.MemberPublicName(member_id=m, public_name=n) for m, n in found.members.items()],
            units=[pb.UnitPublicName(unit_id=u, unit_name=n) for u, n in found.units.items()])

    # ---- themed party days -----------------------------------------------------------------------
    async def ScheduleActivity(self, request: pb.ScheduleActivityRequest,
                               context: grpc.aio.ServicerContext) -> pb.Activity:
        return activity_pb(await self._write(context, self._schedule, request))

    def _schedule(self, request: pb.ScheduleActivityRequest) -> Activity:
        return self.app.schedule_activity(
            request.activity_id, request.unit_id, request.community_id, request.theme, request.title,
            timestamp("starts_at", request.starts_at), timestamp("ends_at", request.ends_at), request.capacity)

    async def SignUpResident(self, request: pb.SignUpResidentRequest,
                             context: grpc.aio.ServicerContext) -> pb.Activity:
        return activity_pb(await self._write(context, self.app.sign_up_resident, request.activity_id,
                                             request.resident_id))

    async def CheckInMember(self, request: pb.CheckInMemberRequest, context: grpc.aio.ServicerContext) -> pb.Activity:
        return activity_pb(await self._write(context, self.app.check_in_member, request.activity_id,
                                             request.member_id))

    async def CompleteActivity(self, request: pb.CompleteActivityRequest,
                               context: grpc.aio.ServicerContext) -> pb.Activity:
        return activity_pb(await self._write(context, self.app.complete_activity, request.activity_id,
                                             request.hours))

    async def GetActivity(self, request: pb.ActivityRef, context: grpc.aio.ServicerContext) -> pb.Activity:
        return activity_pb(await call(context, self.app.activity, request.activity_id))

    async def ListActivities(self, request: pb.ListActivitiesRequest,
                             context: grpc.aio.ServicerContext) -> pb.Activities:
        found = await call(context, self.app.activities, request.community_id, request.unit_id,
                           request.upcoming_only, request.limit)
        return pb.Activities(activities=[activity_pb(a) for a in found])

    # ---- orders ----------------------------------------------------------------------------------
    async def GetOrder(self, request: pb.OrderRef, context: grpc.aio.ServicerContext) -> pb.Order:
        return order_pb(await call(context, self.app.order, request.order_id))

    async def FindOrderByDemand(self, request: pb.DemandRef, context: grpc.aio.ServicerContext) -> pb.Order:
        return order_pb(await call(context, self.app.order_for_demand, request.demand_id))

    async def GetOrderHistory(self, request: pb.OrderRef, context: grpc.aio.ServicerContext) -> audit_pb2.History:
        return history_pb(await call(context, self.app.order_history, request.order_id))

    async def ListOrders(self, request: pb.ListOrdersRequest, context: grpc.aio.ServicerContext) -> pb.Orders:
        orders = await call(context, self.app.orders, request.community_id, request.status)
        return pb.Orders(orders=[order_pb(o) for o in orders])

    async def DispatchOrder(self, request: pb.DispatchOrderRequest, context: grpc.aio.ServicerContext) -> pb.Order:
        return order_pb(await self._write(context, self._dispatch, request))

    def _dispatch(self, request: pb.DispatchOrderRequest) -> Order:
        _required("member_id", request.member_id)
        return self.app.dispatch_order(request.order_id, request.member_id, request.dispatched_by)

    async def OfferOrder(self, request: pb.OfferOrderRequest, context: grpc.aio.ServicerContext) -> pb.Order:
        return order_pb(await self._write(context, self.app.offer_order, request.order_id, list(request.teams)))

    async def AcceptOrder(self, request: pb.AcceptOrderRequest, context: grpc.aio.ServicerContext) -> pb.Order:
        return order_pb(await self._write(context, self.app.accept_order, request.order_id, request.member_id))

    async def DeclineOrder(self, request: pb.DeclineOrderRequest, context: grpc.aio.ServicerContext) -> pb.Order:
        return order_pb(await self._write(context, self.app.decline_order, request.order_id, request.member_id,
                                          request.reason or "unavailable"))

    async def CompleteService(self, request: pb.CompleteServiceRequest,
                              context: grpc.aio.ServicerContext) -> pb.Order:
        return order_pb(await self._write(context, self.app.complete_service, request.order_id, request.member_id,
                                          request.hours, request.notes))

    async def EscalateOrder(self, request: pb.EscalateOrderRequest, context: grpc.aio.ServicerContext) -> pb.Order:
        return order_pb(await self._write(context, self.app.escalate_order, request.order_id, request.reason,
                                          list(request.joint_meeting_units), request.note))

    async def SuggestMembers(self, request: pb.SuggestMembersRequest,
                             context: grpc.aio.ServicerContext) -> pb.Suggestions:
        ranked = await call(context, self.app.suggest_members, request.order_id, request.limit)
        return pb.Suggestions(candidates=[pb.Candidate(**c) for c in ranked])


def register(server: grpc.aio.Server, servicer: DispatchServicer) -> list[str]:
    pb_grpc.add_DispatchServicer_to_server(servicer, server)
    return [SERVICE_NAME]
