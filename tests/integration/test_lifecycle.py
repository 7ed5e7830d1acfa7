"""The three orders end to end, through both services' gRPC APIs and the real broker."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest

from sandan_contracts import decode
from sandan_contracts.rpc import dispatch_pb2 as dpb
from sandan_contracts.rpc import intake_pb2 as ipb
from tests.integration.conftest import Stack
from tests.integration.scenario import a_community, demand_reaches, order_for, post, trace

pytestmark = pytest.mark.kafka


async def test_a_demand_travels_the_whole_loop(stack: Stack) -> None:
    # given a community with a medical menu item, a resident and two reported members
    c = await a_community(stack)
    branch, member, resident = stack.dispatch_stub(c.secretary), stack.dispatch_stub(c.member(0)), \
        stack.intake_stub(c.resident)
    walk = f"walk-{uuid.uuid4().hex[:6]}"

    # when the resident orders, the branch dispatches, the member accepts and serves,
    demand = await post(stack, c, correlation_id=walk)
    order = await order_for(stack, c, demand.demand_id)
    await branch.DispatchOrder(dpb.DispatchOrderRequest(order_id=order.order_id, member_id=c.members[0]),
                               metadata=trace(walk))
    await member.AcceptOrder(dpb.AcceptOrderRequest(order_id=order.order_id, member_id=c.members[0]),
                             metadata=trace(walk))
    await demand_reaches(stack, c, demand.demand_id, "accepted")
    # the member who holds the order (and only they) fetches the resident's contact through intake
    contact = await stack.intake_stub(c.member(0)).GetServiceContact(ipb.ServiceContactRequest(
        demand_id=demand.demand_id, member_id=c.members[0]))
    assert contact.phone == "13800001234" and contact.name == "王秀英"
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stack.intake_stub(c.member(1)).GetServiceContact(ipb.ServiceContactRequest(
            demand_id=demand.demand_id, member_id=c.members[1]))
    assert refused.value.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.PERMISSION_DENIED)
    await member.CompleteService(dpb.CompleteServiceRequest(
        order_id=order.order_id, member_id=c.members[0], hours=1.5, notes="送药上门, 测血压"), metadata=trace(walk))
    # and the resident confirms and rates
    await demand_reaches(stack, c, demand.demand_id, "served")
    await resident.ConfirmCompletion(ipb.DemandRef(demand_id=demand.demand_id), metadata=trace(walk))
    rated = await resident.RateService(ipb.RateServiceRequest(demand_id=demand.demand_id, stars=5,
                                                              comment="很及时"), metadata=trace(walk))
    assert rated.status == "confirmed" and rated.stars == 5 and rated.member_id == c.members[0]

    # then every fact is on its topic, in order, keyed by its aggregate
    demands = await stack.read("intake.demands.v1", demand.demand_id, 3)
    orders = await stack.read("dispatch.orders.v1", order.order_id, 4)
    assert [r.envelope.type for r in demands] == ["DemandPosted", "CompletionConfirmed", "ServiceRated"]
    assert [r.envelope.type for r in orders] == ["OrderOpened", "OrderDispatched", "OrderAccepted",
                                                 "ServiceCompleted"]
    assert all(r.key == demand.demand_id for r in demands) and all(r.key == order.order_id for r in orders)

    # with one correlation id over the whole walk, and the order caused by the demand
    posted, opened = demands[0].envelope, orders[0].envelope
    assert {r.envelope.correlation_id for r in demands + orders} == {walk}
    assert opened.causation_id == posted.event_id
    assert posted.producer == "intake" and opened.producer == "dispatch"
    assert posted.event_id.startswith("intake:") and opened.event_id.startswith("dispatch:")
    assert len({r.envelope.event_id for r in demands + orders}) == 7

    # decoded through the public contract, carrying what receivers need and nothing personal
    _, posted_event = decode(demands[0].raw)
    # the care tag itself is sensitive (PIPL art. 28): it stays in intake, the topic says only "special care"
    assert (posted_event.category, posted_event.care_tags, posted_event.special_care) == ("medical", [], True)
    _, completed = decode(orders[3].raw)
    assert completed.hours == 1.5 and completed.has_notes is True
    for r in demands + orders:
        text = r.raw.decode()
        for personal in ("王秀英", "13800001234", "澄江镇", "降压药", "测血压", "很及时"):
            assert personal not in text


async def test_a_retried_post_is_the_same_demand(stack: Stack) -> None:
    c = await a_community(stack, members=1)
    first = await post(stack, c, request_id="retry-42")
    again = await post(stack, c, request_id="retry-42")
    assert again.demand_id == first.demand_id
    await order_for(stack, c, first.demand_id)
    everything = await stack.read_all("intake.demands.v1", first.demand_id)
    assert len({r.envelope.event_id for r in everything}) == 1


async def test_two_members_claim_at_once_and_one_wins(stack: Stack) -> None:
    c = await a_community(stack, members=2)
    demand = await post(stack, c)
    order = await order_for(stack, c, demand.demand_id)
    await stack.dispatch_stub(c.secretary).OfferOrder(dpb.OfferOrderRequest(order_id=order.order_id))

    results = await asyncio.gather(
        *(stack.dispatch_stub(c.member(m)).AcceptOrder(dpb.AcceptOrderRequest(order_id=order.order_id, member_id=m))
          for m in c.members),
        return_exceptions=True,
    )
    won = [r for r in results if isinstance(r, dpb.Order)]
    lost = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(won) == 1 and len(lost) == 1
    assert lost[0].code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "already accepted by another member" in lost[0].details()

    events = await stack.read_all("dispatch.orders.v1", order.order_id)
    accepted = {r.envelope.event_id: r for r in events if r.envelope.type == "OrderAccepted"}
    assert len(accepted) == 1
    _, fact = decode(next(iter(accepted.values())).raw)
    assert fact.member_id == won[0].member_id and fact.via == "claim"


async def test_not_satisfied_sends_the_order_back_for_a_redo(stack: Stack) -> None:
    c = await a_community(stack, members=1)
    member = stack.dispatch_stub(c.member(0))
    demand = await post(stack, c)
    order = await order_for(stack, c, demand.demand_id)
    await stack.dispatch_stub(c.secretary).OfferOrder(dpb.OfferOrderRequest(order_id=order.order_id))
    await member.AcceptOrder(dpb.AcceptOrderRequest(order_id=order.order_id, member_id=c.members[0]))
    await member.CompleteService(dpb.CompleteServiceRequest(order_id=order.order_id, member_id=c.members[0],
                                                           hours=0.5))
    await demand_reaches(stack, c, demand.demand_id, "served")

    redo = await stack.intake_stub(c.resident).RequestRedo(ipb.RequestRedoRequest(demand_id=demand.demand_id,
                                                                                   reason="not_fixed"))
    assert redo.status == "posted" and redo.redo_count == 1

    demands = await stack.read("intake.demands.v1", demand.demand_id, 2)
    orders = await stack.read("dispatch.orders.v1", order.order_id, 5)
    assert [r.envelope.type for r in demands] == ["DemandPosted", "RedoRequested"]
    assert orders[-1].envelope.type == "OrderReopened"
    assert orders[-1].envelope.causation_id == demands[1].envelope.event_id
    _, reopened = decode(orders[-1].raw)
    assert reopened.redo_count == 1 and reopened.previous_member_id == c.members[0]
    again = await stack.dispatch_stub(c.secretary).GetOrder(dpb.OrderRef(order_id=order.order_id))
    assert again.status == "open" and again.member_id == "" and again.redo_count == 1


async def test_an_overdue_order_escalates_by_itself(stack: Stack) -> None:
    # given a menu whose urgent deadline is two seconds
    c = await a_community(stack, members=1, urgent_seconds=2)
    demand = await post(stack, c, urgency="urgent")
    order = await order_for(stack, c, demand.demand_id)

    # when nobody takes it in time, then dispatch marks it overdue and moves it to the town
    orders = await stack.read("dispatch.orders.v1", order.order_id, 3, timeout=30)
    assert [r.envelope.type for r in orders] == ["OrderOpened", "OrderOverdue", "OrderEscalated"]
    _, overdue = decode(orders[1].raw)
    _, escalated = decode(orders[2].raw)
    assert overdue.level == "community" and overdue.status == "open" and overdue.member_id is None
    assert escalated.automatic and (escalated.from_level, escalated.to_level) == ("community", "town")
    assert escalated.due_at > overdue.due_at


async def test_withdrawing_a_demand_cancels_its_order(stack: Stack) -> None:
    c = await a_community(stack, members=1)
    demand = await post(stack, c)
    order = await order_for(stack, c, demand.demand_id)
    await stack.intake_stub(c.resident).WithdrawDemand(ipb.WithdrawDemandRequest(demand_id=demand.demand_id,
                                                                       reason="solved_myself"))
    orders = await stack.read("dispatch.orders.v1", order.order_id, 2)
    assert [r.envelope.type for r in orders] == ["OrderOpened", "OrderCancelled"]
