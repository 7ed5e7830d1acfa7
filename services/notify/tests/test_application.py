"""notify's use cases through NotifyApplication, each on memory, SQLite and PostgreSQL stores:
from facts to notices, planning, delivery with retries and fallback, quiet hours, preferences, the log."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import delete

from sandan_contracts.events import (
    DemandPosted,
    DemandTextsShredded,
    MemberLeft,
    MemberReported,
    NoticeSummary,
    NotificationFailed,
    NotificationSent,
    OrderAccepted,
    OrderDispatched,
    OrderEscalated,
    OrderOffered,
    OrderOpened,
    QuarterlyNoticePublished,
    ServiceCompleted,
    UnitReported,
)
from sandan_notify.channels import SendError
from sandan_notify.contacts import ContactUnavailable
from sandan_notify.deliveries import dead_letters, deliveries, notices, positions
from sandan_notify.preferences import Preferences
from sandan_notify.publishing import to_contract

STORES = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
pytestmark = pytest.mark.parametrize("store_url", STORES, indirect=True)
DUE = datetime(2026, 3, 3, tzinfo=UTC)


def roster(h) -> None:  # type: ignore[no-untyped-def]
    for member, grid, teams in (("m-1", "g-1", []), ("m-2", "g-1", []), ("m-3", "g-2", ["medical"]),
                                ("m-4", "g-2", [])):
        h.feed(MemberReported(member_id=member, community_id="c-1", unit_id="u-1", grid_id=grid, teams=teams),
               topic="dispatch.roster.v1")
    h.feed(OrderOpened(order_id="o-1", demand_id="d-1", community_id="c-1", grid_id="g-1", category="medical",
                       urgency="normal", due_at=DUE))


def published(h) -> list:  # type: ignore[no-untyped-def]
    events = [to_contract(h.app.mapper.to_domain_event(n))
              for n in h.app.recorder.select_notifications(start=1, limit=500)]
    return [e for e in events if e is not None]


def test_the_lifecycle_reaches_the_right_people_on_their_channels(h) -> None:  # type: ignore[no-untyped-def]
    roster(h)
    h.feed(MemberLeft(member_id="m-2", community_id="c-1", reason="moved"), topic="dispatch.roster.v1")
    offered = h.feed(OrderOffered(order_id="o-1", demand_id="d-1", grid_id="g-1", teams=["medical"]))
    assert sorted(n.recipient_ref for n in offered) == ["m-1", "m-3"]  # grid g-1 or team medical; m-2 left
    h.feed(OrderDispatched(order_id="o-1", demand_id="d-1", member_id="m-1", dispatched_by="branch"))
    h.feed(OrderAccepted(order_id="o-1", demand_id="d-1", member_id="m-1", via="dispatch"))
    h.feed(ServiceCompleted(order_id="o-1", demand_id="d-1", member_id="m-1", hours=1.5))
    h.run()

    sms = [(m.address, m.template) for m in h.sent("sms")]
    assert sms == [("13900000001", "order_offered"), ("13900000001", "order_dispatched"),
                   ("13800001234", "order_accepted"), ("13800001234", "service_completed")]
    assert [(m.address, m.template) for m in h.sent("wechat")] == [("oWx_m3m3m3", "order_offered")]
    accepted = h.sent("sms")[2]
    assert accepted.recipient_id == "r-1" and "党员甲" in accepted.body and "王秀英" in accepted.body
    assert "10:00" in accepted.body  # accepted_at in local time

    sent = [e for e in published(h) if isinstance(e, NotificationSent)]
    assert len(sent) == 5 and {e.attempts for e in sent} == {1}
    assert {(e.recipient_kind, e.recipient_id) for e in sent} == {("member", "m-1"), ("member", "m-3"),
                                                                   ("resident", "r-1")}
    log = h.app.delivery_log.deliveries(recipient_kind="resident", recipient_id="r-1")
    assert [(r.template, r.channel, r.status, r.attempts) for r in log] == [
        ("order_accepted", "sms", "sent", 1), ("service_completed", "sms", "sent", 1)]
    assert h.app.delivery_log.deliveries(status="sent", limit=1000).__len__() == 5
    by_source = h.app.delivery_log.deliveries(source_event_id=sent[0].source_event_id)
    assert sent[0].notification_id in {r.notification_id for r in by_source}


def test_a_redelivered_fact_adds_nothing(h) -> None:  # type: ignore[no-untyped-def]
    roster(h)
    fact = OrderDispatched(order_id="o-1", demand_id="d-1", member_id="m-1", dispatched_by="branch")
    assert len(h.feed(fact, event_id="dispatch:42")) == 1
    h.run()
    assert h.feed(fact, event_id="dispatch:42") == []  # re-published copy at a new offset: same event id
    h.run()
    assert len(h.sent("sms")) == 1


def test_retries_with_backoff_then_failed_then_the_next_channel(h) -> None:  # type: ignore[no-untyped-def]
    roster(h)
    h.channels["sms"].failures = [SendError("http_503")] * 3
    h.feed(OrderDispatched(order_id="o-1", demand_id="d-1", member_id="m-1", dispatched_by="branch"))
    h.plan_all()
    assert h.deliver_all() == ["retrying"]
    assert h.deliver_all() == []  # not due before its backoff
    retrying = h.app.delivery_log.deliveries(status="retrying")[0]
    assert (retrying.attempts, retrying.last_error) == (1, "http_503")
    h.clock.advance(seconds=2)
    assert h.deliver_all() == ["retrying"]
    h.clock.advance(seconds=4)
    assert h.deliver_all() == ["failed"]  # max_attempts=3
    h.run()
    # the member still hears it, by e-mail; SMS's failure is published and dead-lettered
    assert [m.template for m in h.sent("email")] == ["order_dispatched"] and h.sent("sms") == []
    events = published(h)
    failed = [e for e in events if isinstance(e, NotificationFailed)]
    assert [(e.channel, e.attempts, e.error) for e in failed] == [("sms", 3, "http_503")]
    assert [(e.channel, e.attempts) for e in events if isinstance(e, NotificationSent)] == [("email", 1)]
    letters = h.app.delivery_log.dead_letters(recipient_id="m-1")
    assert [(d.channel, d.error, d.attempts, d.notification_id) for d in letters] == [
        ("sms", "http_503", 3, failed[0].notification_id)]


def test_a_permanent_error_is_not_retried_and_no_channel_left_is_dead_lettered(h) -> None:  # type: ignore[no-untyped-def]
    roster(h)
    h.channels["sms"].failures = [SendError("http_400", permanent=True)]
    h.feed(OrderDispatched(order_id="o-1", demand_id="d-1", member_id="m-2", dispatched_by="branch"))  # sms only
    h.run()
    assert [(d.channel, d.error) for d in h.app.delivery_log.dead_letters(recipient_id="m-2")] == [
        ("sms", "http_400"), ("", "all_channels_failed")]
    assert h.app.delivery_log.deliveries(recipient_id="m-2")[0].attempts == 1


def test_a_dead_channel_does_not_block_the_others(h) -> None:  # type: ignore[no-untyped-def]
    roster(h)
    h.channels["sms"].failures = [SendError("timeout")] * 10
    h.feed(OrderOffered(order_id="o-1", demand_id="d-1", grid_id="g-1", teams=["medical"]))
    h.run(rounds=1)
    assert [m.recipient_id for m in h.sent("wechat")] == ["m-3"]  # sent while sms keeps failing


def test_quiet_hours_hold_sms_until_morning_but_not_urgent_ones(h) -> None:  # type: ignore[no-untyped-def]
    roster(h)
    h.feed(OrderOpened(order_id="o-9", demand_id="d-2", community_id="c-1", grid_id="g-1", category="medical",
                       urgency="urgent", due_at=DUE))
    h.clock.now = datetime(2026, 3, 2, 15, 30, tzinfo=UTC)  # 23:30 in Taihe
    h.feed(OrderDispatched(order_id="o-1", demand_id="d-1", member_id="m-2", dispatched_by="branch"))
    h.feed(OrderDispatched(order_id="o-9", demand_id="d-2", member_id="m-1", dispatched_by="branch"))
    h.run()
    assert [m.recipient_id for m in h.sent("sms")] == ["m-1"]  # the urgent one
    held = h.app.delivery_log.deliveries(status="held")
    assert [(r.recipient_id, r.next_attempt_at) for r in held] == [("m-2", "2026-03-02T23:00:00.000000Z")]
    h.clock.now = datetime(2026, 3, 2, 22, 59, tzinfo=UTC)  # 06:59
    h.run()
    assert len(h.sent("sms")) == 1
    h.clock.now = datetime(2026, 3, 2, 23, 0, tzinfo=UTC)  # 07:00
    h.run()
    assert [m.recipient_id for m in h.sent("sms")] == ["m-1", "m-2"]


def test_preferences_channel_order_opt_out_and_language(h) -> None:  # type: ignore[no-untyped-def]
    roster(h)
    h.app.preferences.set(Preferences("member", "m-1", ("email", "sms"), "", "", True, "en"))
    h.app.preferences.set(Preferences("resident", "r-2", ("email",), "", "", False, "en"))
    h.feed(OrderOpened(order_id="o-2", demand_id="d-2", community_id="c-1", grid_id="g-1", category="medical",
                       urgency="normal", due_at=DUE))
    h.feed(OrderOffered(order_id="o-2", demand_id="d-2", grid_id="g-1", teams=[]))  # m-1 opted out of offers
    h.feed(OrderDispatched(order_id="o-2", demand_id="d-2", member_id="m-1", dispatched_by="grid_leader"))
    h.feed(OrderAccepted(order_id="o-2", demand_id="d-2", member_id="m-1", via="dispatch"))
    h.run()
    assert [(m.recipient_id, m.template) for m in h.sent("email")] == [
        ("m-1", "order_dispatched"), ("r-2", "order_accepted")]
    assert h.sent("email")[1].subject == "[Sandan] A member accepted your request"
    assert [(m.recipient_id, m.template) for m in h.sent("sms")] == [("m-2", "order_offered")]
    assert h.app.delivery_log.dead_letters(recipient_id="m-1") == []  # an opt-out is not a failure
    default = h.app.preferences.get("member", "m-9")
    assert default.is_default and (default.quiet_start, default.quiet_end) == ("22:00", "07:00")


def test_escalation_reaches_the_offices_from_the_directory(h) -> None:  # type: ignore[no-untyped-def]
    roster(h)
    h.feed(OrderEscalated(order_id="o-1", demand_id="d-1", from_level="town", to_level="county",
                          reason="needs_resources", joint_meeting_units=["u-1"], due_at=DUE))
    h.feed(OrderEscalated(order_id="o-1", demand_id="d-1", from_level="community", to_level="town",
                          reason="no_capacity", due_at=DUE))
    h.run()
    assert [(m.recipient_kind, m.address) for m in h.sent("webhook")] == [
        ("branch", "http://branch.example/hook"), ("branch", "http://branch.example/hook"),
        ("town", "http://town.example/hook")]
    assert [(m.recipient_kind, m.recipient_id, m.address) for m in h.sent("email")] == [
        ("county", "taihe", "county@example.gov.cn")]
    assert "县委组织部" in h.sent("email")[0].subject
    assert [m.template for m in h.sent("sms")] == ["order_escalated_resident"] * 2


def test_quarterly_notice_goes_back_to_each_unit(h) -> None:  # type: ignore[no-untyped-def]
    for unit in ("u-1", "u-2"):
        h.feed(UnitReported(unit_id=unit, community_id="c-1", unit_name=unit), topic="dispatch.roster.v1")
    summary = NoticeSummary(members_active=3, services_completed=9, hours=12, overdue=0, escalated=0)
    h.feed(QuarterlyNoticePublished(notice_id="q-c1-2026Q1", scope="community", scope_id="c-1", quarter="2026Q1",
                                    rule_set_version="2026.1", summary=summary), topic="scoring.notices.v1")
    h.run()
    assert [(m.recipient_id, m.template) for m in h.sent("webhook")] == [("u-1", "quarterly_notice")]
    assert [(m.recipient_id, m.address) for m in h.sent("email")] == [("u-2", "finance@example.org")]
    assert "2026Q1" in h.sent("email")[0].body


def test_an_erased_resident_is_given_up_at_once_and_the_log_says_so(h) -> None:  # type: ignore[no-untyped-def]
    """intake answers that the resident's data was erased: the notice is skipped as recipient_erased (a reason of
    its own, not a failure to retry), and nothing is tried again however often the loops run."""
    roster(h)
    h.contacts.erased.add(("resident", "d-1"))
    h.feed(OrderDispatched(order_id="o-1", demand_id="d-1", member_id="m-1", dispatched_by="branch"))
    h.feed(OrderAccepted(order_id="o-1", demand_id="d-1", member_id="m-1", via="dispatch"))
    assert sorted(h.plan_all()) == ["planned", "recipient_erased"]  # the member's notice, the resident's
    h.run()
    calls = h.contacts.calls
    h.run(rounds=5)
    assert h.contacts.calls == calls  # given up: never looked up again
    assert all(m.recipient_kind != "resident" for m in h.sent("sms") + h.sent("wechat"))
    h.app.projector.catch_up()
    erased = [d for d in h.app.delivery_log.dead_letters(recipient_kind="resident")]
    assert [d.error for d in erased] == ["recipient_erased"]
    assert not [e for e in published(h) if isinstance(e, NotificationFailed)]  # nothing was attempted


def test_shredded_texts_are_taken_and_change_nothing(h) -> None:  # type: ignore[no-untyped-def]
    """intake's DemandTextsShredded asks every service to forget its copies of a demand's free text. notify holds
    none (ids, codes and its delivery log): the fact is taken (no dead letter), notifies no one and leaves every
    row as it was, so what was sent about the demand stays on record."""
    roster(h)
    h.feed(DemandPosted(demand_id="d-1", community_id="c-1", grid_id="g-1", category="medical", urgency="normal",
                        channel="app", due_at=DUE, deadline_seconds=86_400), topic="intake.demands.v1")
    h.feed(OrderAccepted(order_id="o-1", demand_id="d-1", member_id="m-1", via="dispatch"))
    h.run()
    sent, log = len(h.sent("sms")), h.app.delivery_log.deliveries(limit=1000)
    assert sent == 1 and h.app.directory.demand_community("d-1") == "c-1"
    for cause in ("retention", "erasure", "erasure"):  # both causes can meet; a redelivery too
        assert h.feed(DemandTextsShredded(demand_id="d-1", cause=cause), topic="intake.demands.v1") == []
    h.run()
    assert len(h.sent("sms")) == sent and h.app.delivery_log.deliveries(limit=1000) == log
    assert h.app.directory.demand_community("d-1") == "c-1"
    assert h.app.directory.order("o-1").member_id == "m-1"


def test_unknown_recipients_and_unavailable_contacts(h) -> None:  # type: ignore[no-untyped-def]
    roster(h)
    h.feed(OrderDispatched(order_id="o-1", demand_id="d-1", member_id="m-4", dispatched_by="branch"))
    assert h.plan_all() == ["no_contact"]
    h.app.projector.catch_up()
    assert [d.error for d in h.app.delivery_log.dead_letters(recipient_id="m-4")] == ["no_contact"]
    h.contacts.unavailable.add(("member", "m-1"))
    h.feed(OrderDispatched(order_id="o-1", demand_id="d-1", member_id="m-1", dispatched_by="branch"))
    h.app.projector.catch_up()
    with pytest.raises(ContactUnavailable):
        h.app.plan(h.app.delivery_log.new_notices()[0])
    h.contacts.unavailable.clear()
    h.run()
    assert [m.recipient_id for m in h.sent("sms")] == ["m-1"]


def test_the_log_is_a_projection_that_rebuilds_identically(h) -> None:  # type: ignore[no-untyped-def]
    roster(h)
    h.channels["sms"].failures = [SendError("http_503")] * 3
    h.feed(OrderOffered(order_id="o-1", demand_id="d-1", grid_id="g-1", teams=["medical"]))
    for _ in range(4):
        h.run()
        h.clock.advance(seconds=60)
    before = (h.app.delivery_log.deliveries(limit=1000), h.app.delivery_log.dead_letters())
    with h.app.engine.begin() as conn:
        for table in (deliveries, notices, dead_letters, positions):
            conn.execute(delete(table))
    h.app.projector.catch_up()
    after = (h.app.delivery_log.deliveries(limit=1000), h.app.delivery_log.dead_letters())
    assert [tuple(r) for r in after[0]] == [tuple(r) for r in before[0]]
    assert [tuple(r)[1:] for r in after[1]] == [tuple(r)[1:] for r in before[1]]
    assert h.app.delivery_log.counts() == {"sent": 3}  # m-1, m-2 (sms, after retries), m-3 (wechat)
