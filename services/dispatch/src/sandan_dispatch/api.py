"""dispatch's gRPC API: validates requests, runs use cases, maps refusals to status codes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from sandan_contracts.rpc import dispatch_pb2 as pb
from sandan_contracts.rpc import dispatch_pb2_grpc as pb_grpc
from sandan_dispatch.application import DispatchApplication
from sandan_dispatch.domain import GridGroup, Member, Order, Unit
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
        joint_meeting_units=o.joint_meeting_units, hours=o.hours,
    )


def _required(field: str, value: str) -> str:
    if not value.strip():
        raise InvalidArgument(field, "is required")
    return value.strip()


class DispatchServicer(pb_grpc.DispatchServicer):
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
                                         request.unit_name))

    async def ReportMember(self, request: pb.ReportMemberRequest, context: grpc.aio.ServicerContext) -> pb.Member:
        return member_pb(await self._write(
            context, self.app.report_member, request.member_id, request.unit_id, request.community_id,
            request.grid_id, list(request.teams), list(request.skills), request.name, request.phone))

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

    # ---- orders ----------------------------------------------------------------------------------
    async def GetOrder(self, request: pb.OrderRef, context: grpc.aio.ServicerContext) -> pb.Order:
        return order_pb(await call(context, self.app.order, request.order_id))

    async def FindOrderByDemand(self, request: pb.DemandRef, context: grpc.aio.ServicerContext) -> pb.Order:
        return order_pb(await call(context, self.app.order_for_demand, request.demand_id))

    async def ListOrders(self, request: pb.ListOrdersRequest, context: grpc.aio.ServicerContext) -> pb.Orders:
        orders = await call(context, self.app.orders, request.community_id, request.status)
        return pb.Orders(orders=[order_pb(o) for o in orders])

    async def DispatchOrder(self, request: pb.DispatchOrderRequest, context: grpc.aio.ServicerContext) -> pb.Order:
        return order_pb(await self._write(context, self._dispatch, request))

    def _dispatch(self, request: pb.DispatchOrderRequest) -> Order:
        _required("member_id", request.member_id)
        return self.app.dispatch_order(request.order_id, request.member_id, request.dispatched_by or "branch")

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
