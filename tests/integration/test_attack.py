"""The attack from issue 8, tried as a new user would, against the running stack with tokens from the real Keycloak.

Ids come from the public `OrderAccepted` fact on dispatch.orders.v1. Each attempt is one a service once allowed:
a resident's contact without a token or by a member who does not hold the order, points earned under another
member's id, another resident's demand confirmed and rated, the ledger rebuilt, notices published, someone else's
notification preferences, another unit's report (and so its webhook), a member made to leave, a member of another
community reporting into this one (and then claiming), a claim from outside the order's grid, and another town's
12345 hotline operator acting for this community's resident (registering, posting, confirming, rating,
withdrawing, reading, listing). Every attempt
must be refused, and afterwards nothing has changed: the orders and demands read the same, no attempt's
correlation id is stored or published, and no new fact names them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from sandan_contracts import TOPICS, decode
from sandan_contracts.rpc import dispatch_pb2 as dpb
from sandan_contracts.rpc import intake_pb2 as ipb
from sandan_contracts.rpc import notify_pb2 as npb
from sandan_contracts.rpc import notify_pb2_grpc, scoring_pb2_grpc
from sandan_contracts.rpc import scoring_pb2 as spb
from sandan_eventbus.devtools import ServiceProcess
from tests.integration.conftest import Stack, free_port
from tests.integration.notify_stack import groups_at_end
from tests.integration.people import COUNTY, OTHER_TOWN
from tests.integration.scenario import Community, a_community, demand_reaches, member_person, order_for, post, trace
from tests.integration.traces import ends, published_since, stored_with

pytestmark = pytest.mark.kafka
Code = grpc.StatusCode


@dataclass
class Others:
    scoring: ServiceProcess
    notify: ServiceProcess


@pytest.fixture(scope="module")
def others(stack: Stack) -> Iterator[Others]:
    """scoring and notify beside the stack's intake and dispatch (notify hears what happens from now on)."""
    run = uuid.uuid4().hex[:8]
    group = f"notify-attack-{run}"
    asyncio.run(groups_at_end(stack.bootstrap, {group: [t.name for t in TOPICS.values() if t.dead_letter
                                                        and not t.name.startswith("notify.")]}))
    scoring_address, notify_address = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    scoring = ServiceProcess("sandan_scoring", {
        "KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap, "LOG_LEVEL": "INFO", **stack.identity(),
        "SCORING_DATABASE_URL": f"sqlite:///{stack.workdir}/attack-scoring.db", "SCORING_GRPC_ADDRESS": scoring_address,
    }, scoring_address, stack.workdir / "attack-scoring.log")
    notify = ServiceProcess("sandan_notify", {
        "KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap, "LOG_LEVEL": "INFO", **stack.identity(calls_others=True),
        "NOTIFY_EVENTSTORE_URL": f"sqlite:///{stack.workdir}/attack-notify-events.db",
        "NOTIFY_DATABASE_URL": f"sqlite:///{stack.workdir}/attack-notify.db", "NOTIFY_GRPC_ADDRESS": notify_address,
        "NOTIFY_CONSUMER_GROUP": group, "NOTIFY_INTAKE_ADDRESS": stack.intake.grpc_address,
        "NOTIFY_DISPATCH_ADDRESS": stack.dispatch.grpc_address, "NOTIFY_OFFICES_FILE": str(stack.places_file),
        "NOTIFY_CONSOLE": str(stack.workdir / "attack-notifications.jsonl"),
    }, notify_address, stack.workdir / "attack-notify.log")
    scoring.start(timeout=180)
    try:
        notify.start()
        try:
            yield Others(scoring, notify)
        finally:
            notify.stop()
    finally:
        scoring.stop()


async def refused(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error
    raise AssertionError("the attempt was not refused")


async def state(stack: Stack, c: Community, orders: list[dpb.Order]) -> list[Any]:
    """What the secretary sees of the attacked orders, their demands and the members."""
    branch, intake = stack.dispatch_stub(c.secretary), stack.intake_stub(c.secretary)
    seen: list[Any] = []
    for o in orders:
        seen.append(await branch.GetOrder(dpb.OrderRef(order_id=o.order_id)))
        seen.append(await intake.GetDemand(ipb.DemandRef(demand_id=o.demand_id)))
    seen += [await branch.GetMember(dpb.MemberRef(member_id=m)) for m in c.members]
    return seen


async def test_a_new_user_with_ids_from_the_topic_can_do_nothing_that_is_not_theirs(stack: Stack,
                                                                                    others: Others) -> None:
    # given a community: two members of grid 1 (team medical), a member of grid 2 (team legal aid), two residents
    c = await a_community(stack, members=2)
    people = stack.people
    outsider_id = f"m-{stack.communities.tag(c.community_id)}-g2"
    # a member whose token names another community (one of the county's, where they have not reported)
    elsewhere = stack.communities.take()
    intruder_id = f"m-{stack.communities.tag(elsewhere)}-x"
    made = await people.people({
        f"member-{outsider_id}": member_person(outsider_id, c.community_id, f"{c.community_id}-g2"),
        f"member-{intruder_id}": member_person(intruder_id, elsewhere, f"{elsewhere}-g1"),
        f"resident-2-{c.community_id}": (["resident"], {"community_id": c.community_id}),
        # the hotline of another town of the county (every test community is in the town chengjiang)
        f"hotline-{OTHER_TOWN}": (["hotline_operator"], {"county_id": COUNTY, "town_id": OTHER_TOWN})})
    outsider, neighbour = made[f"member-{outsider_id}"], made[f"resident-2-{c.community_id}"]
    hotline = made[f"hotline-{OTHER_TOWN}"]
    intruder = made[f"member-{intruder_id}"]
    await stack.dispatch_stub(outsider).ReportMember(dpb.ReportMemberRequest(
        member_id=outsider_id, unit_id=c.unit_id, community_id=c.community_id, grid_id=f"{c.community_id}-g2",
        teams=["legal_aid"], name="党员外", phone="13900009999"))
    await stack.intake_stub(neighbour).RegisterResident(ipb.RegisterResidentRequest(
        community_id=c.community_id, name="李桂兰", phone="13800005678", address="澄江镇 5 栋"))
    other_unit = people.person(f"unit_admin-other-{c.unit_id}", ["unit_admin"], unit_id=f"other-{c.unit_id}",
                               community_id=c.community_id)
    holder, bystander = c.member(0), c.member(1)
    branch, as_holder = stack.dispatch_stub(c.secretary), stack.dispatch_stub(holder)

    # three orders, offered to grid 1: A accepted by the holder, B still offered, C served
    walk = f"walk-{uuid.uuid4().hex[:6]}"
    demands = [await post(stack, c, correlation_id=walk) for _ in range(3)]
    orders = [await order_for(stack, c, d.demand_id) for d in demands]
    for o in orders:
        await branch.OfferOrder(dpb.OfferOrderRequest(order_id=o.order_id), metadata=trace(walk))
    for o in (orders[0], orders[2]):
        await as_holder.AcceptOrder(dpb.AcceptOrderRequest(order_id=o.order_id, member_id=c.members[0]),
                                    metadata=trace(walk))
    await as_holder.CompleteService(dpb.CompleteServiceRequest(order_id=orders[2].order_id, member_id=c.members[0],
                                                               hours=1.0), metadata=trace(walk))
    await demand_reaches(stack, c, demands[0].demand_id, "accepted")
    await demand_reaches(stack, c, demands[2].demand_id, "served")

    # the attacker reads the ids from the public OrderAccepted fact
    accepted = next(r for r in await stack.read("dispatch.orders.v1", orders[0].order_id, 3)
                    if r.envelope and r.envelope.type == "OrderAccepted")
    _, fact = decode(accepted.raw)
    order_id, demand_id, member_id = fact.order_id, fact.demand_id, fact.member_id
    assert (demand_id, member_id) == (demands[0].demand_id, c.members[0])
    # the fact names who acted by their token's opaque subject, and carries no name or phone
    assert accepted.envelope is not None and accepted.envelope.actor == holder.subject
    assert all(personal not in accepted.raw.decode() for personal in ("党员0", "13900000000", "王秀英"))

    # the holder fetches the contact, and the release is on the demand's record
    contact = await stack.intake_stub(holder).GetServiceContact(ipb.ServiceContactRequest(demand_id=demand_id,
                                                                                          member_id=member_id))
    assert contact.name == "王秀英"
    history = await stack.intake_stub(c.resident).GetDemandHistory(ipb.DemandRef(demand_id=demand_id))
    released = {(e.subject, e.role) for e in history.entries if e.what == "ContactReleased"}
    assert (holder.subject, "member") in released
    assert {role for _, role in released} <= {"member", "service_notify"}, released  # notify told her who accepted

    before = await state(stack, c, orders)
    start = await ends(stack.bootstrap)
    attempts: dict[str, str] = {}

    def attempt(what: str) -> tuple[tuple[str, str]]:
        correlation_id = f"attack-{uuid.uuid4().hex}"
        attempts[correlation_id] = what
        return (("x-correlation-id", correlation_id),)

    async def denied(what: str, call: Awaitable[Any], code: Code = Code.PERMISSION_DENIED) -> None:
        error = await refused(call)
        assert error.code() == code, f"{what}: {error.code().name} {error.details()}"

    anonymous, by_bystander = stack.intake_stub(None), stack.intake_stub(bystander)
    # a resident's contact: without a token, by a member who does not hold the order (as themselves or the holder)
    await denied("contact without a token", anonymous.GetServiceContact(
        ipb.ServiceContactRequest(demand_id=demand_id, member_id=member_id), metadata=attempt("anonymous")),
        Code.UNAUTHENTICATED)
    for claimed in (c.members[1], member_id):
        await denied(f"contact for {claimed}", by_bystander.GetServiceContact(
            ipb.ServiceContactRequest(demand_id=demand_id, member_id=claimed), metadata=attempt("contact")))
    await denied("notify's contact call", by_bystander.GetDemandContact(
        ipb.DemandRef(demand_id=demand_id), metadata=attempt("demand contact")))
    # points under another member's id: claiming the offered order, completing the held one
    dispatch_as_bystander = stack.dispatch_stub(bystander)
    await denied("accept as the holder", dispatch_as_bystander.AcceptOrder(
        dpb.AcceptOrderRequest(order_id=orders[1].order_id, member_id=member_id), metadata=attempt("accept")))
    await denied("complete as the holder", dispatch_as_bystander.CompleteService(
        dpb.CompleteServiceRequest(order_id=order_id, member_id=member_id, hours=8), metadata=attempt("complete")))
    # a member of another community reports themselves into this one's grid 1 and medical team, then claims
    await denied("report into another community", stack.dispatch_stub(intruder).ReportMember(dpb.ReportMemberRequest(
        member_id=intruder_id, unit_id=c.unit_id, community_id=c.community_id, grid_id=c.grid_id, teams=["medical"],
        name="党员入", phone="13900008888"), metadata=attempt("report elsewhere")))
    await denied("claim after the refused report", stack.dispatch_stub(intruder).AcceptOrder(
        dpb.AcceptOrderRequest(order_id=orders[1].order_id, member_id=intruder_id),
        metadata=attempt("claim elsewhere")))
    # a member of another grid claims an order offered to grid 1
    await denied("claim outside the grid", stack.dispatch_stub(outsider).AcceptOrder(
        dpb.AcceptOrderRequest(order_id=orders[1].order_id, member_id=outsider_id), metadata=attempt("claim")))
    # another resident's served demand: confirmed and rated by the neighbour
    as_neighbour = stack.intake_stub(neighbour)
    await denied("confirm another's demand", as_neighbour.ConfirmCompletion(
        ipb.DemandRef(demand_id=orders[2].demand_id), metadata=attempt("confirm")))
    await denied("rate another's demand", as_neighbour.RateService(
        ipb.RateServiceRequest(demand_id=orders[2].demand_id, stars=1), metadata=attempt("rate")))
    # another town's hotline, acting for this community's resident: refused by scope (the role itself is allowed)
    as_hotline = stack.intake_stub(hotline)
    for what, call in (
            ("hotline registers", as_hotline.RegisterResident(ipb.RegisterResidentRequest(
                community_id=c.community_id, name="钱七", phone="13800007777", address="澄江镇 7 栋"),
                metadata=attempt("hotline register"))),
            ("hotline posts", as_hotline.PostDemand(ipb.PostDemandRequest(
                client_request_id=uuid.uuid4().hex, resident_id=c.resident_id, community_id=c.community_id,
                grid_id=c.grid_id, menu_item_id=c.item_id, description="请帮忙送药上门", urgency="normal",
                channel="hotline"), metadata=attempt("hotline post"))),
            ("hotline confirms", as_hotline.ConfirmCompletion(ipb.DemandRef(demand_id=orders[2].demand_id),
                                                              metadata=attempt("hotline confirm"))),
            ("hotline rates", as_hotline.RateService(ipb.RateServiceRequest(demand_id=orders[2].demand_id, stars=1),
                                                     metadata=attempt("hotline rate"))),
            ("hotline withdraws", as_hotline.WithdrawDemand(ipb.WithdrawDemandRequest(
                demand_id=orders[1].demand_id, reason="no_longer_needed"), metadata=attempt("hotline withdraw"))),
            ("hotline reads", as_hotline.GetDemand(ipb.DemandRef(demand_id=demand_id),
                                                   metadata=attempt("hotline read"))),
            ("hotline lists", as_hotline.ListResidentDemands(ipb.ListResidentDemandsRequest(
                resident_id=c.resident_id), metadata=attempt("hotline list")))):
        error = await refused(call)
        assert error.code() == Code.PERMISSION_DENIED and "outside their scope" in error.details(), (
            f"{what}: {error.code().name} {error.details()}")
    # the county's work: rebuilding the ledger, publishing the quarter's notices
    for who in (bystander, neighbour, c.secretary):
        scoring = scoring_pb2_grpc.ScoringStub(stack.channel(others.scoring.grpc_address, who))
        await denied("rebuild", _drain(scoring.Rebuild(spb.RebuildRequest(), metadata=attempt("rebuild"))))
        await denied("publish notices", scoring.PublishQuarterlyNotices(spb.QuarterRef(quarter="2026Q1"),
                                                                        metadata=attempt("notices")))
    # someone else's notification preferences
    for who, kind, recipient in ((neighbour, "resident", c.resident_id), (bystander, "member", member_id)):
        notify = notify_pb2_grpc.NotifyStub(stack.channel(others.notify.grpc_address, who))
        await denied(f"preferences of a {kind}", notify.SetPreferences(npb.Preferences(
            recipient=npb.RecipientRef(recipient_kind=kind, recipient_id=recipient), channels=["console"]),
            metadata=attempt("preferences")))
    # another unit's report (its webhook would then receive the unit's notices), another member's leaving
    await denied("another unit's report", stack.dispatch_stub(other_unit).ReportUnit(dpb.ReportUnitRequest(
        unit_id=c.unit_id, community_id=c.community_id, unit_name="泰和县人民医院",
        webhook_url="https://attacker.example/hook"), metadata=attempt("report unit")))
    await denied("another member leaves", dispatch_as_bystander.MemberLeaves(
        dpb.MemberLeavesRequest(member_id=member_id, reason="moved_away"), metadata=attempt("leave")))

    # then nothing changed: the same orders, demands and members; nothing stored, published or new on the topics
    assert await state(stack, c, orders) == before
    not_reported = await refused(branch.GetMember(dpb.MemberRef(member_id=intruder_id)))
    assert not_reported.code() == Code.NOT_FOUND, not_reported.details()
    for store in (stack.workdir / "intake-events.db", stack.workdir / "dispatch-events.db",
                  stack.workdir / "attack-notify-events.db"):
        assert [w for cid, w in attempts.items() if stored_with(store, cid)] == [], store.name
    await asyncio.sleep(2)  # what a refused call would have stored, its relay would have published by now
    published = await published_since(stack.bootstrap, start)
    assert [attempts[e.correlation_id] for _, _, e in published if e.correlation_id in attempts] == []
    keys = {o.order_id for o in orders} | {o.demand_id for o in orders} | {*c.members, outsider_id, intruder_id,
                                                                           c.unit_id}
    facts = ("dispatch.orders.v1", "intake.demands.v1", "dispatch.roster.v1")  # (scoring may still award C's points)
    assert [(topic, e.type) for topic, key, e in published if topic in facts and key in keys] == []
    prefs = await notify_pb2_grpc.NotifyStub(stack.channel(others.notify.grpc_address, c.resident)).GetPreferences(
        npb.RecipientRef(recipient_kind="resident", recipient_id=c.resident_id))
    assert prefs.is_default


async def _drain(stream: Any) -> None:
    async for _ in stream:
        pass

