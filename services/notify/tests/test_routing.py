"""Who hears what: the pure routing rules on a fake read model."""

from __future__ import annotations

from datetime import UTC, datetime

from sandan_contracts.events import (
    DemandPosted,
    NoticeSummary,
    OrderAccepted,
    OrderCancelled,
    OrderDispatched,
    OrderEscalated,
    OrderOffered,
    OrderOverdue,
    QuarterlyNoticePublished,
    ServiceCompleted,
)
from sandan_notify.routing import OrderInfo, route

DUE = datetime(2026, 3, 3, tzinfo=UTC)


class View:
    def __init__(self, urgency: str = "normal") -> None:
        self.urgency = urgency
        self.offer_calls: list[tuple[str | None, str, list[str]]] = []

    def order(self, order_id: str) -> OrderInfo | None:
        return OrderInfo(order_id, "d-1", "c-1", "g-1", "medical", self.urgency) if order_id == "o-1" else None

    def demand_community(self, demand_id: str) -> str | None:
        return "c-9" if demand_id == "d-9" else None

    def members_for_offer(self, community_id: str | None, grid_id: str, teams: list[str]) -> list[str]:
        self.offer_calls.append((community_id, grid_id, teams))
        return ["m-1", "m-2", "m-2"]

    def units_of(self, community_id: str) -> list[str]:
        return ["u-1", "u-2"] if community_id == "c-1" else []

    def town_of(self, community_id: str) -> str | None:
        return "chengjiang" if community_id == "c-1" else None

    def county(self) -> str | None:
        return "taihe"


def who(recipients: list) -> list[tuple[str, str, str]]:
    return [(r.kind, r.ref, r.template) for r in recipients]


def test_offer_goes_to_grid_and_team_members_once_as_non_essential() -> None:
    view = View()
    out = route(OrderOffered(order_id="o-1", demand_id="d-1", grid_id="g-1", teams=["medical"]), view)
    assert who(out) == [("member", "m-1", "order_offered"), ("member", "m-2", "order_offered")]
    assert view.offer_calls == [("c-1", "g-1", ["medical"])]
    assert not out[0].essential and not out[0].urgent and out[0].params["category"] == "medical"


def test_dispatched_member_and_the_resident_on_acceptance_and_completion() -> None:
    view = View(urgency="urgent")
    assert who(route(OrderDispatched(order_id="o-1", demand_id="d-1", member_id="m-1", dispatched_by="branch"),
                     view)) == [("member", "m-1", "order_dispatched")]
    accepted = route(OrderAccepted(order_id="o-1", demand_id="d-1", member_id="m-1", via="claim"), view,
                     occurred_at="2026-03-02T02:00:00+00:00")
    assert who(accepted) == [("resident", "d-1", "order_accepted")]
    assert accepted[0].urgent and accepted[0].essential
    assert accepted[0].params["member_id"] == "m-1" and accepted[0].params["accepted_at"].startswith("2026-03-02")
    completed = route(ServiceCompleted(order_id="o-1", demand_id="d-1", member_id="m-1", hours=1.5), view)
    assert who(completed) == [("resident", "d-1", "service_completed")] and completed[0].params["hours"] == "1.5"


def test_escalation_reaches_resident_branch_and_the_level_office() -> None:
    to_town = route(OrderEscalated(order_id="o-1", demand_id="d-1", from_level="community", to_level="town",
                                   reason="no_capacity", due_at=DUE), View())
    assert who(to_town) == [("resident", "d-1", "order_escalated_resident"), ("branch", "c-1", "order_escalated"),
                            ("town", "chengjiang", "order_escalated")]
    to_county = route(OrderEscalated(order_id="o-1", demand_id="d-1", from_level="town", to_level="county",
                                     reason="needs_resources", joint_meeting_units=["u-1"], due_at=DUE), View())
    assert who(to_county)[-1] == ("county", "taihe", "order_escalated")


def test_overdue_reaches_the_branch_and_the_office_holding_it() -> None:
    at_community = route(OrderOverdue(order_id="o-1", demand_id="d-1", level="community", due_at=DUE,
                                      status="dispatched"), View())
    assert who(at_community) == [("branch", "c-1", "order_overdue")]
    at_county = route(OrderOverdue(order_id="o-1", demand_id="d-1", level="county", due_at=DUE, status="open"),
                      View())
    assert who(at_county) == [("branch", "c-1", "order_overdue"), ("county", "taihe", "order_overdue")]


def test_unknown_order_falls_back_to_the_demand_community() -> None:
    out = route(OrderOverdue(order_id="o-x", demand_id="d-9", level="community", due_at=DUE, status="open"), View())
    assert who(out) == [("branch", "c-9", "order_overdue")]
    assert route(OrderOverdue(order_id="o-x", demand_id="d-x", level="community", due_at=DUE, status="open"),
                 View()) == []


def test_quarterly_notice_goes_to_the_units() -> None:
    summary = NoticeSummary(members_active=12, services_completed=30, hours=41.5, overdue=0, escalated=1)
    community = route(QuarterlyNoticePublished(notice_id="q-1", scope="community", scope_id="c-1", quarter="2026Q1",
                                               rule_set_version="2026.1", summary=summary), View())
    assert who(community) == [("unit", "u-1", "quarterly_notice"), ("unit", "u-2", "quarterly_notice")]
    assert community[0].params["hours"] == "41.5" and community[0].params["quarter"] == "2026Q1"
    unit = route(QuarterlyNoticePublished(notice_id="q-2", scope="unit", scope_id="u-7", quarter="2026Q1",
                                          rule_set_version="2026.1", summary=summary), View())
    assert who(unit) == [("unit", "u-7", "quarterly_notice")]


def test_other_facts_concern_nobody() -> None:
    assert route(OrderCancelled(order_id="o-1", demand_id="d-1", reason="withdrawn"), View()) == []
    assert route(DemandPosted(demand_id="d-1", community_id="c-1", grid_id="g-1", category="medical",
                              urgency="normal", channel="app", due_at=DUE, deadline_seconds=60), View()) == []
