"""Who hears what: pure rules from a consumed fact (and notify's read model) to recipients.

Defaults (README "Who hears what"):
- OrderOffered     -> active members of the order's grid, or of a team the offer names (non-essential)
- OrderDispatched  -> the member it is dispatched to
- OrderAccepted    -> the resident (who accepted, and when)
- ServiceCompleted -> the resident (please confirm and rate)
- OrderEscalated   -> the resident; the community's branch secretary; the town office (to town) or the
                      county office (to county)
- OrderOverdue     -> the branch secretary; and the town/county office when the order is at that level
- QuarterlyNoticePublished -> the unit (unit scope), or every unit reported to the community (community scope)
Urgent: the order's urgency is "urgent" (quiet hours do not hold it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from sandan_contracts import Event
from sandan_contracts.events import (
    OrderAccepted,
    OrderDispatched,
    OrderEscalated,
    OrderOffered,
    OrderOverdue,
    QuarterlyNoticePublished,
    ServiceCompleted,
)


@dataclass(frozen=True)
class OrderInfo:
    order_id: str
    demand_id: str
    community_id: str
    grid_id: str
    category: str
    urgency: str
    member_id: str | None = None


@dataclass(frozen=True)
class Recipient:
    kind: str  # resident | member | branch | town | county | unit
    ref: str  # member/unit id, community id (branch), town id, county id, or the demand id (resident)
    template: str
    urgent: bool = False
    essential: bool = True
    params: dict[str, str] = field(default_factory=dict)


class View(Protocol):
    """What routing may read: notify's own read model and office directory."""

    def order(self, order_id: str) -> OrderInfo | None: ...
    def demand_community(self, demand_id: str) -> str | None: ...
    def members_for_offer(self, community_id: str | None, grid_id: str, teams: list[str]) -> list[str]: ...
    def units_of(self, community_id: str) -> list[str]: ...
    def town_of(self, community_id: str) -> str | None: ...
    def county(self) -> str | None: ...


def _order_params(event: Event, info: OrderInfo | None, occurred_at: str) -> dict[str, str]:
    params = {"order_id": str(getattr(event, "order_id", "")), "demand_id": str(getattr(event, "demand_id", "")),
              "occurred_at": occurred_at}
    if info is not None:
        params.update(community_id=info.community_id, grid_id=info.grid_id, category=info.category,
                      urgency=info.urgency)
    return params


def _offices(view: View, community_id: str | None, level: str) -> list[tuple[str, str]]:
    """(kind, id) of the office at `level` for a community: town or county; nothing for community level."""
    if level == "town" and community_id:
        town = view.town_of(community_id)
        return [("town", town)] if town else []
    if level == "county":
        county = view.county()
        return [("county", county)] if county else []
    return []


def route(event: Event, view: View, occurred_at: str = "") -> list[Recipient]:
    """The recipients of one fact, without duplicates, in a stable order."""
    order_id = getattr(event, "order_id", None)
    info = view.order(order_id) if order_id else None
    community = info.community_id if info else (
        view.demand_community(event.demand_id) if hasattr(event, "demand_id") else None)
    urgent = bool(info and info.urgency == "urgent")
    params = _order_params(event, info, occurred_at) if order_id else {}
    if community and order_id:
        params.setdefault("community_id", community)
    out: list[Recipient] = []

    if isinstance(event, OrderOffered):
        teams = ", ".join(event.teams)
        for member in view.members_for_offer(community, event.grid_id, list(event.teams)):
            out.append(Recipient("member", member, "order_offered", urgent, essential=False,
                                 params={**params, "teams": teams}))
    elif isinstance(event, OrderDispatched):
        out.append(Recipient("member", event.member_id, "order_dispatched", urgent, params=params))
    elif isinstance(event, OrderAccepted):
        out.append(Recipient("resident", event.demand_id, "order_accepted", urgent,
                             params={**params, "member_id": event.member_id, "accepted_at": occurred_at}))
    elif isinstance(event, ServiceCompleted):
        out.append(Recipient("resident", event.demand_id, "service_completed", urgent,
                             params={**params, "member_id": event.member_id, "hours": f"{event.hours:g}"}))
    elif isinstance(event, OrderEscalated):
        escalated = {**params, "from_level": event.from_level, "to_level": event.to_level, "reason": event.reason,
                     "due_at": event.due_at.isoformat()}
        out.append(Recipient("resident", event.demand_id, "order_escalated_resident", urgent, params=escalated))
        if community:
            out.append(Recipient("branch", community, "order_escalated", urgent, params=escalated))
        for kind, office in _offices(view, community, event.to_level):
            out.append(Recipient(kind, office, "order_escalated", urgent, params=escalated))
    elif isinstance(event, OrderOverdue):
        overdue = {**params, "level": event.level, "status": event.status, "due_at": event.due_at.isoformat()}
        if community:
            out.append(Recipient("branch", community, "order_overdue", urgent, params=overdue))
        for kind, office in _offices(view, community, event.level):
            out.append(Recipient(kind, office, "order_overdue", urgent, params=overdue))
    elif isinstance(event, QuarterlyNoticePublished):
        units = [event.scope_id] if event.scope == "unit" else view.units_of(event.scope_id)
        summary = event.summary
        notice = {"notice_id": event.notice_id, "scope": event.scope, "scope_id": event.scope_id,
                  "quarter": event.quarter, "services_completed": str(summary.services_completed),
                  "hours": f"{summary.hours:g}", "members_active": str(summary.members_active)}
        for unit in units:
            out.append(Recipient("unit", unit, "quarterly_notice", params=notice))

    seen: set[tuple[str, str]] = set()
    unique = []
    for r in out:
        if (r.kind, r.ref) not in seen:
            seen.add((r.kind, r.ref))
            unique.append(r)
    return unique
