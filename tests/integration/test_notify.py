"""notify end to end, over the real broker, with a real SMTP server and a local HTTP receiver (webhooks, SMS):
the right person hears it on the right channel, once; failures are retried then reported; quiet hours hold."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaProducer

from sandan_contracts import encode
from sandan_contracts.envelope import headers
from sandan_contracts.events import NoticeSummary, QuarterlyNoticePublished
from sandan_contracts.rpc import dispatch_pb2 as dpb
from sandan_contracts.rpc import intake_pb2 as ipb
from sandan_contracts.rpc import notify_pb2 as npb
from sandan_eventbus.devtools import read_topic
from tests.integration.notify_stack import DAY, NotifyStack, a_community, eventually, night, notify_stack
from tests.integration.scenario import Community, order_for

__all__ = ["notify_stack"]  # the module fixture, imported so pytest finds it
pytestmark = pytest.mark.kafka
DELIVERIES = "notify.deliveries.v1"


async def deliveries(s: NotifyStack, **query: str) -> list[npb.Delivery]:
    """The delivery log, as the county's IT (the operator) reads it."""
    reply = await s.notify_stub(s.people.operator()).ListDeliveries(npb.ListDeliveriesRequest(limit=1000, **query))
    return list(reply.deliveries)


async def sent_to(s: NotifyStack, kind: str, recipient_id: str, count: int, timeout: float = 30) -> list[npb.Delivery]:
    async def probe() -> list[npb.Delivery] | None:
        found = await deliveries(s, recipient_kind=kind, recipient_id=recipient_id, status="sent")
        return found if len(found) >= count else None

    return await eventually(probe, timeout)


async def post(s: NotifyStack, t: Community, urgency: str = "normal") -> ipb.Demand:
    """A hotline call: the community's grid worker posts for the resident."""
    return await s.intake_stub(t.grid_worker).PostDemand(ipb.PostDemandRequest(
        client_request_id=uuid.uuid4().hex, resident_id=t.resident_id, community_id=t.community_id,
        grid_id=t.grid_id, menu_item_id=t.item_id, description="家中老人需要送降压药上门", urgency=urgency,
        channel="hotline"))


async def publish(s: NotifyStack, notice: QuarterlyNoticePublished, event_id: str, times: int = 1) -> None:
    """Stand-in for scoring: the same envelope `times` times (a redelivery / a re-published duplicate)."""
    body = encode(notice, event_id=event_id, producer="scoring", occurred_at=datetime.now(UTC),
                  correlation_id=event_id, causation_id=None)
    producer = AIOKafkaProducer(bootstrap_servers=s.bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for _ in range(times):
            await producer.send_and_wait(notice.TOPIC, body, key=notice.key().encode(), headers=headers(notice))
    finally:
        await producer.stop()


def a_notice(unit_id: str, quarter: str = "2026Q1") -> QuarterlyNoticePublished:
    summary = NoticeSummary(members_active=12, services_completed=30, hours=41.5, overdue=1, escalated=0)
    return QuarterlyNoticePublished(notice_id=f"q-{unit_id}-{quarter}-{uuid.uuid4().hex[:4]}", scope="unit",
                                    scope_id=unit_id, quarter=quarter, rule_set_version="2026.1", summary=summary)


async def test_the_lifecycle_reaches_the_right_people(notify_stack: NotifyStack) -> None:
    s = notify_stack
    t = await a_community(s, members=2, resident_email="wang@example.org")
    branch, member = s.dispatch_stub(t.secretary), s.dispatch_stub(t.member(0))
    # the resident prefers e-mail, then SMS
    prefs = await s.notify_stub(t.resident).SetPreferences(npb.Preferences(
        recipient=npb.RecipientRef(recipient_kind="resident", recipient_id=t.resident_id), channels=["email", "sms"]))
    assert list(prefs.channels) == ["email", "sms"] and not prefs.is_default

    # when a demand is offered to the grid, dispatched, accepted and served
    demand = await post(s, t)
    order = await order_for(s, t, demand.demand_id)
    await branch.OfferOrder(dpb.OfferOrderRequest(order_id=order.order_id, teams=["medical"]))
    await branch.DispatchOrder(dpb.DispatchOrderRequest(order_id=order.order_id, member_id=t.members[0],
                                                        dispatched_by="branch"))
    await member.AcceptOrder(dpb.AcceptOrderRequest(order_id=order.order_id, member_id=t.members[0]))
    await member.CompleteService(dpb.CompleteServiceRequest(order_id=order.order_id, member_id=t.members[0],
                                                            hours=1.5, notes="送药上门"))
    # and a second demand is escalated by the branch to the town, then by the town to the county
    second = await post(s, t)
    order2 = await order_for(s, t, second.demand_id)
    await branch.EscalateOrder(dpb.EscalateOrderRequest(order_id=order2.order_id, reason="no_capacity"))
    await s.dispatch_stub(s.people.town_office()).EscalateOrder(dpb.EscalateOrderRequest(
        order_id=order2.order_id, reason="needs_resources", joint_meeting_units=[t.unit_id]))

    # then each member heard of the offer by SMS, the dispatched member of the dispatch
    m0 = await sent_to(s, "member", t.members[0], 2)
    m1 = await sent_to(s, "member", t.members[1], 1)
    assert sorted(d.template for d in m0) == ["order_dispatched", "order_offered"]
    assert [d.template for d in m1] == ["order_offered"] and {d.channel for d in m0 + m1} == {"sms"}
    sms = {h.notification_id: h.payload for h in s.http.matching(lambda h: h.path == "/sms")}
    assert sms[m1[0].notification_id]["to"] == "13900000001" and "可以自主认领" in sms[m1[0].notification_id]["text"]
    # the resident, by e-mail: accepted (by whom), completed (confirm and rate), escalated twice
    resident = await sent_to(s, "resident", t.resident_id, 4)
    assert Counter(d.template for d in resident) == {"order_accepted": 1, "service_completed": 1,
                                                     "order_escalated_resident": 2}
    assert {d.channel for d in resident} == {"email"}
    mails = {m.notification_id: m for m in s.smtp.mails}
    accepted = mails[next(d.notification_id for d in resident if d.template == "order_accepted")]
    assert accepted.to == ["wang@example.org"] and "党员0" in accepted.text and "王秀英" in accepted.text
    # the branch secretary (webhook) twice, the town office (webhook), the county office (e-mail)
    branch = await sent_to(s, "branch", t.community_id, 2)
    assert {d.channel for d in branch} == {"webhook"}
    hooks = s.http.matching(lambda h: h.path == f"/hook/branch-{t.community_id}")
    assert len(hooks) == 2 and all(h.signed for h in hooks)
    assert {h.notification_id for h in hooks} == {d.notification_id for d in branch}
    escalations = {d.source_event_id for d in branch}

    async def town_heard() -> list[npb.Delivery] | None:
        # the town office hears of the escalation to the town (one of the branch's two, in either order), maybe a
        # moment after the branch did
        found = [d for source in escalations for d in await deliveries(
            s, recipient_kind="town", recipient_id="chengjiang", source_event_id=source)]
        return found or None

    town = await eventually(town_heard, 30)
    county = await sent_to(s, "county", "taihe", 1)
    assert len(town) == 1 and county[-1].source_event_id in escalations and county[-1].channel == "email"

    # and each sent notification is a NotificationSent on notify.deliveries.v1, with nothing personal
    ids = {d.notification_id for d in m0 + m1 + resident + branch}
    found = await read_topic(s.bootstrap, DELIVERIES, until=lambda f: ids <= {r.key for r in f},
                             where=lambda r: r.key in ids, timeout=30)
    assert {r.key for r in found} == ids and {r.envelope.type for r in found} == {"NotificationSent"}
    assert all(r.envelope.event_id.startswith("notify:") for r in found)
    for r in found:
        for personal in ("王秀英", "wang@example.org", "1390000", "送药上门"):
            assert personal not in r.raw.decode()


async def test_a_failing_receiver_is_retried_then_reported(notify_stack: NotifyStack) -> None:
    s = notify_stack
    t = await a_community(s, members=1)
    s.http.fail[f"/hook/{t.unit_id}"] = 2  # two 503s, then it works
    await publish(s, a_notice(t.unit_id, "2026Q1"), f"scoring:{uuid.uuid4().hex}")
    recovered = await sent_to(s, "unit", t.unit_id, 1)
    assert recovered[0].attempts == 3 and recovered[0].last_error == "http_503"

    s.http.fail[f"/hook/{t.unit_id}"] = -1  # down for good: the unit has no other channel
    try:
        await publish(s, a_notice(t.unit_id, "2026Q2"), f"scoring:{uuid.uuid4().hex}")
        failed = await eventually(lambda: deliveries(s, recipient_kind="unit", recipient_id=t.unit_id,
                                                     status="failed"))
        assert (failed[0].attempts, failed[0].last_error) == (3, "http_503")
        events = await read_topic(s.bootstrap, DELIVERIES, until=lambda f: len(f) >= 1,
                                  where=lambda r: r.key == failed[0].notification_id, timeout=30)
        assert events[0].envelope.type == "NotificationFailed"
        assert events[0].envelope.data["error"] == "http_503" and events[0].envelope.data["attempts"] == 3
        letters = await eventually(lambda: _letters(s, t.unit_id, 2))
        assert [(d.channel, d.error) for d in letters] == [("webhook", "http_503"), ("", "all_channels_failed")]
    finally:
        s.http.fail.pop(f"/hook/{t.unit_id}", None)


async def _letters(s: NotifyStack, unit_id: str, count: int) -> list[npb.DeadLetter] | None:
    reply = await s.notify_stub(s.people.operator()).ListDeadLetters(npb.ListDeadLettersRequest(recipient_kind="unit",
                                                                            recipient_id=unit_id))
    return list(reply.dead_letters) if len(reply.dead_letters) >= count else None


async def test_a_redelivered_event_sends_nothing_new(notify_stack: NotifyStack) -> None:
    s = notify_stack
    t = await a_community(s, members=1)
    event_id = f"scoring:{uuid.uuid4().hex}"
    await publish(s, a_notice(t.unit_id), event_id, times=3)  # the same fact three times
    first = await sent_to(s, "unit", t.unit_id, 1)
    await asyncio.sleep(2)
    assert len(await deliveries(s, recipient_kind="unit", recipient_id=t.unit_id)) == 1
    hits = s.http.matching(lambda h: h.path == f"/hook/{t.unit_id}")
    assert [h.notification_id for h in hits] == [first[0].notification_id]


@pytest.mark.parametrize("kill", [False, True], ids=["sigterm", "sigkill"])
async def test_a_restart_mid_batch_sends_nothing_twice(notify_stack: NotifyStack, kill: bool) -> None:
    s = notify_stack
    t = await a_community(s, members=1)
    path, batch = f"/hook/{t.unit_id}", 40
    s.http.delay[path] = 0.05
    try:
        for i in range(batch):
            await publish(s, a_notice(t.unit_id, f"{2000 + i}Q1"), f"scoring:{uuid.uuid4().hex}")
        await eventually(lambda: len(s.http.matching(lambda h: h.path == path)) >= 5, timeout=30, interval=0.02)
        s.notify.stop(kill=kill)  # mid-batch
        delivered_before = len(s.http.matching(lambda h: h.path == path))
        s.notify.start()
        done = await sent_to(s, "unit", t.unit_id, batch, timeout=60)
        await asyncio.sleep(1)
    finally:
        s.http.delay.pop(path, None)
    assert delivered_before < batch, "the restart did not happen mid-batch"
    counts = Counter(h.notification_id for h in s.http.matching(lambda h: h.path == path))
    assert set(counts) == {d.notification_id for d in done} and len(counts) == batch
    if not kill:
        assert set(counts.values()) == {1}  # a graceful stop finishes and records what it started
    else:
        # a hard kill between a send and its record re-sends that one after the restart, with the same
        # notification id (the receiver's idempotency key): at most the sends in flight at the kill
        assert sum(counts.values()) - batch <= 8


async def test_quiet_hours_hold_an_sms_until_morning(notify_stack: NotifyStack) -> None:
    s = notify_stack
    t = await a_community(s, members=2)
    dispatch = s.dispatch_stub(t.secretary)
    s.set_clock(night())  # 23:30 in Taihe
    try:
        normal = await order_for(s, t, (await post(s, t, "normal")).demand_id)
        urgent = await order_for(s, t, (await post(s, t, "urgent")).demand_id)
        await dispatch.DispatchOrder(dpb.DispatchOrderRequest(order_id=normal.order_id, member_id=t.members[0],
                                                              dispatched_by="branch"))
        await dispatch.DispatchOrder(dpb.DispatchOrderRequest(order_id=urgent.order_id, member_id=t.members[1],
                                                              dispatched_by="branch"))
        # the urgent one rings now; the other is held until 07:00 local
        await sent_to(s, "member", t.members[1], 1)
        held = await eventually(lambda: deliveries(s, recipient_kind="member", recipient_id=t.members[0],
                                                   status="held"))
        morning = (night() + timedelta(hours=7, minutes=30)).isoformat().replace("+00:00", "Z")
        assert held[0].next_attempt_at == morning and held[0].channel == "sms"
        await asyncio.sleep(1.5)
        assert s.http.matching(lambda h: h.notification_id == held[0].notification_id) == []
        # when morning comes, it goes
        s.set_clock(night() + timedelta(hours=7, minutes=30, seconds=1))
        sent = await sent_to(s, "member", t.members[0], 1)
        assert sent[0].notification_id == held[0].notification_id
        assert len(s.http.matching(lambda h: h.notification_id == held[0].notification_id)) == 1
    finally:
        s.set_clock(DAY)
