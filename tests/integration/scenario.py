"""Given-steps for integration tests: a community with a menu, a resident, a unit and members."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

import grpc

from sandan_contracts.rpc import dispatch_pb2 as dpb
from sandan_contracts.rpc import intake_pb2 as ipb
from tests.integration.conftest import Stack


def trace(correlation_id: str) -> tuple[tuple[str, str], ...]:
    return (("x-correlation-id", correlation_id),)


@dataclass
class Community:
    community_id: str
    grid_id: str
    resident_id: str
    unit_id: str
    members: list[str]
    item_id: str


async def a_community(stack: Stack, members: int = 2, urgent_seconds: int = 7200) -> Community:
    tag = uuid.uuid4().hex[:8]
    community_id, grid_id, unit_id, item_id = f"cj-{tag}", f"cj-{tag}-g1", f"unit-{tag}", f"med-{tag}"
    intake, dispatch = stack.intake_stub(), stack.dispatch_stub()
    await intake.PublishMenuItem(ipb.PublishMenuItemRequest(
        community_id=community_id, item_id=item_id, category="medical", title="送医送药 medicine delivery",
        deadlines=ipb.DeadlineSeconds(urgent=urgent_seconds, normal=86400, routine=7 * 86400)))
    resident = await intake.RegisterResident(ipb.RegisterResidentRequest(
        community_id=community_id, name="王秀英", phone="13800001234", address="澄江镇 3 栋 2 单元"))
    await dispatch.ReportUnit(dpb.ReportUnitRequest(unit_id=unit_id, community_id=community_id,
                                                    unit_name="泰和县人民医院"))
    member_ids = []
    for i in range(members):
        member_id = f"m-{tag}-{i}"
        await dispatch.ReportMember(dpb.ReportMemberRequest(
            member_id=member_id, unit_id=unit_id, community_id=community_id, grid_id=grid_id,
            teams=["medical"], name=f"党员{i}", phone=f"1390000{i:04d}"))
        member_ids.append(member_id)
    return Community(community_id, grid_id, resident.resident_id, unit_id, member_ids, item_id)


async def post(stack: Stack, c: Community, urgency: str = "normal", correlation_id: str | None = None,
               request_id: str | None = None) -> ipb.Demand:
    return await stack.intake_stub().PostDemand(ipb.PostDemandRequest(
        client_request_id=request_id or uuid.uuid4().hex, resident_id=c.resident_id, community_id=c.community_id,
        grid_id=c.grid_id, menu_item_id=c.item_id, description="家中老人需要每周送降压药上门",
        urgency=urgency, care_tags=["elderly_alone"], channel="hotline"),
        metadata=trace(correlation_id or uuid.uuid4().hex))


async def order_for(stack: Stack, demand_id: str, timeout: float = 30) -> dpb.Order:
    """Wait until dispatch has opened the order for a demand (it reads DemandPosted from Kafka)."""
    dispatch = stack.dispatch_stub()
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await dispatch.FindOrderByDemand(dpb.DemandRef(demand_id=demand_id))
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.2)


async def demand_reaches(stack: Stack, demand_id: str, status: str, timeout: float = 30) -> ipb.Demand:
    """Wait until intake shows the demand in `status` (it reads dispatch's facts from Kafka)."""
    intake = stack.intake_stub()
    deadline = time.monotonic() + timeout
    while True:
        demand = await intake.GetDemand(ipb.DemandRef(demand_id=demand_id))
        if demand.status == status:
            return demand
        if time.monotonic() > deadline:
            raise AssertionError(f"demand {demand_id} is {demand.status}, not {status}, after {timeout}s")
        await asyncio.sleep(0.2)
