"""Given-steps for integration tests: a community with a menu, a resident, a unit and members, each step made by
the person who would make it (the branch secretary publishes the menu, the resident registers themselves, the
unit reports itself, each member reports in person)."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc

from sandan_contracts.rpc import dispatch_pb2 as dpb
from sandan_contracts.rpc import dispatch_pb2_grpc, intake_pb2_grpc
from sandan_contracts.rpc import intake_pb2 as ipb
from tests.integration.people import Caller, CommunityPool, People


class Services(Protocol):
    """What the given-steps need of a stack (the shared one, notify's, the outage tests' own)."""

    people: People
    communities: CommunityPool

    def intake_stub(self, caller: Caller | None) -> intake_pb2_grpc.IntakeStub: ...

    def dispatch_stub(self, caller: Caller | None) -> dispatch_pb2_grpc.DispatchStub: ...


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
    people: People
    resident: Caller  # registered themselves: resident_id is theirs
    member_callers: dict[str, Caller] = field(default_factory=dict)

    def member(self, which: int | str) -> Caller:
        """A member of this community by index or id (their token is bound to their member id)."""
        return self.member_callers[self.members[which] if isinstance(which, int) else which]

    def _office(self, role: str, **places: str) -> Caller:
        # the same key as a_community's: created there, or here on first use
        return self.people.person(f"{role}-{self.community_id}", [role], community_id=self.community_id, **places)

    @property
    def secretary(self) -> Caller:
        return self._office("branch_secretary")

    @property
    def grid_leader(self) -> Caller:
        return self._office("grid_leader", grid_id=self.grid_id)

    @property
    def grid_worker(self) -> Caller:
        return self._office("grid_worker", grid_id=self.grid_id)

    @property
    def unit_admin(self) -> Caller:
        return self.people.person(f"unit_admin-{self.unit_id}", ["unit_admin"], unit_id=self.unit_id,
                                  community_id=self.community_id)


def member_person(member_id: str, community_id: str, grid_id: str) -> tuple[list[str], dict[str, str]]:
    return ["member"], {"member_id": member_id, "community_id": community_id, "grid_id": grid_id}


async def a_community(stack: Services, members: int = 2, urgent_seconds: int = 7200, item_title: str = "",
                      resident_email: str = "", phone: str = "13800001234", unit_webhook: str = "",
                      member_email: bool = False, deadlines: bool = True) -> Community:
    """`unit_webhook` may name the unit: "http://.../hook/{unit_id}"."""
    community_id = stack.communities.take()
    tag = stack.communities.tag(community_id)
    grid_id, unit_id, item_id = f"{community_id}-g1", f"unit-{tag}", f"med-{tag}"
    member_ids = [f"m-{tag}-{i}" for i in range(members)]
    people = stack.people
    # everyone the given-steps and most tests need, created side by side (the rest on first use)
    made = await people.people({
        f"branch_secretary-{community_id}": (["branch_secretary"], {"community_id": community_id}),
        f"grid_worker-{community_id}": (["grid_worker"], {"community_id": community_id, "grid_id": grid_id}),
        f"resident-{community_id}": (["resident"], {"community_id": community_id}),
        f"unit_admin-{unit_id}": (["unit_admin"], {"unit_id": unit_id, "community_id": community_id}),
        **{f"member-{m}": member_person(m, community_id, grid_id) for m in member_ids}})
    resident = made[f"resident-{community_id}"]
    c = Community(community_id, grid_id, "", unit_id, member_ids, item_id, people, resident,
                  {m: made[f"member-{m}"] for m in member_ids})
    menu = ipb.PublishMenuItemRequest(community_id=community_id, item_id=item_id, category="medical",
                                      title=item_title or "送医送药 medicine delivery")
    if deadlines:
        menu.deadlines.CopyFrom(ipb.DeadlineSeconds(urgent=urgent_seconds, normal=86400, routine=7 * 86400))
    await stack.intake_stub(c.secretary).PublishMenuItem(menu)
    registered = await stack.intake_stub(resident).RegisterResident(ipb.RegisterResidentRequest(
        community_id=community_id, name="王秀英", phone=phone, address="澄江镇 3 栋 2 单元", email=resident_email))
    c.resident_id = registered.resident_id
    unit: dict[str, Any] = {"webhook_url": unit_webhook.format(unit_id=unit_id)} if unit_webhook else {}
    await stack.dispatch_stub(c.unit_admin).ReportUnit(dpb.ReportUnitRequest(
        unit_id=unit_id, community_id=community_id, unit_name="泰和县人民医院", **unit))
    for i, member_id in enumerate(member_ids):
        contact: dict[str, Any] = {"email": f"{member_id}@example.org"} if member_email else {}
        await stack.dispatch_stub(c.member(member_id)).ReportMember(dpb.ReportMemberRequest(
            member_id=member_id, unit_id=unit_id, community_id=community_id, grid_id=grid_id,
            teams=["medical"], name=f"党员{i}", phone=f"1390000{i:04d}", **contact))
    return c


async def post(stack: Services, c: Community, urgency: str = "normal", correlation_id: str | None = None,
               request_id: str | None = None, by: Caller | None = None) -> ipb.Demand:
    """The resident orders (居民点单) through the hotline: the community's grid worker posts it for them
    (`by`: someone else, e.g. the resident themselves)."""
    return await stack.intake_stub(by or c.grid_worker).PostDemand(ipb.PostDemandRequest(
        client_request_id=request_id or uuid.uuid4().hex, resident_id=c.resident_id, community_id=c.community_id,
        grid_id=c.grid_id, menu_item_id=c.item_id, description="家中老人需要每周送降压药上门",
        urgency=urgency, care_tags=["elderly_alone"], channel="hotline"),
        metadata=trace(correlation_id or uuid.uuid4().hex))


async def order_for(stack: Services, c: Community, demand_id: str, timeout: float = 90) -> dpb.Order:
    """Wait until dispatch has opened the order for a demand (it reads DemandPosted from Kafka); the community's
    secretary looks."""
    dispatch = stack.dispatch_stub(c.secretary)
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await dispatch.FindOrderByDemand(dpb.DemandRef(demand_id=demand_id))
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.2)


async def demand_reaches(stack: Services, c: Community, demand_id: str, status: str, timeout: float = 90,
                         ) -> ipb.Demand:
    """Wait until intake shows the demand in `status` (it reads dispatch's facts from Kafka); the secretary looks."""
    intake = stack.intake_stub(c.secretary)
    deadline = time.monotonic() + timeout
    while True:
        demand = await intake.GetDemand(ipb.DemandRef(demand_id=demand_id))
        if demand.status == status:
            return demand
        if time.monotonic() > deadline:
            raise AssertionError(f"demand {demand_id} is {demand.status}, not {status}, after {timeout}s")
        await asyncio.sleep(0.2)
