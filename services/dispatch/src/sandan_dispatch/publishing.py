"""Stored domain events -> public contract events (what the relay publishes).

Stored events are private (their type is a Python path); this is the one place that decides what the
outside world sees. A member's service notes stay inside (only `has_notes` goes out); contacts never
enter the event store at all (see contacts.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sandan_contracts import events as c


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _order(e: Any) -> dict[str, Any]:
    return {"order_id": str(e.originator_id), "demand_id": e.demand_id}


def _activity(e: Any) -> dict[str, Any]:
    return {"activity_id": e.activity_id, "community_id": e.community_id}


# Keyed by the stored event's qualified name: "<Aggregate>.<name given to @event>".
_MAPPING: dict[str, Callable[[Any], c.Event]] = {
    "Unit.Reported": lambda e: c.UnitReported(unit_id=e.unit_id, community_id=e.community_id, unit_name=e.unit_name),
    "Member.Reported": lambda e: c.MemberReported(
        member_id=e.member_id, unit_id=e.unit_id, community_id=e.community_id, grid_id=e.grid_id,
        teams=list(dict.fromkeys(e.teams)), skills=list(dict.fromkeys(e.skills))),
    "Member.TeamJoined": lambda e: c.TeamJoined(member_id=e.member_id, community_id=e.community_id, team=e.team),
    "Member.Left": lambda e: c.MemberLeft(member_id=e.member_id, community_id=e.community_id, reason=e.reason),
    "GridGroup.Formed": lambda e: c.GridGroupFormed(grid_id=e.grid_id, community_id=e.community_id),
    "GridGroup.LeaderAppointed": lambda e: c.GridLeaderAppointed(
        grid_id=e.grid_id, community_id=e.community_id, member_id=e.member_id),
    "Order.Opened": lambda e: c.OrderOpened(
        **_order(e), community_id=e.community_id, grid_id=e.grid_id, category=e.category, urgency=e.urgency,
        care_tags=[], special_care=e.special_care, due_at=_utc(e.due_at)),  # the tags stay in intake
    "Order.Dispatched": lambda e: c.OrderDispatched(**_order(e), member_id=e.member_id,
                                                    dispatched_by=e.dispatched_by),
    "Order.Offered": lambda e: c.OrderOffered(**_order(e), grid_id=e.grid_id, teams=e.teams),
    "Order.Accepted": lambda e: c.OrderAccepted(**_order(e), member_id=e.member_id, via=e.via),
    "Order.Declined": lambda e: c.OrderDeclined(**_order(e), member_id=e.member_id, reason=e.reason),
    "Order.Completed": lambda e: c.ServiceCompleted(**_order(e), member_id=e.member_id, hours=e.hours,
                                                    has_notes=bool(e.notes.strip())),
    "Order.Escalated": lambda e: c.OrderEscalated(
        **_order(e), from_level=e.from_level, to_level=e.to_level, reason=e.reason, automatic=e.automatic,
        joint_meeting_units=e.joint_meeting_units, due_at=_utc(e.due_at)),
    "Order.Overdue": lambda e: c.OrderOverdue(**_order(e), level=e.level, due_at=_utc(e.due_at), status=e.status,
                                              member_id=e.member_id),
    "Order.Cancelled": lambda e: c.OrderCancelled(**_order(e), reason=e.reason),
    "Order.Reopened": lambda e: c.OrderReopened(**_order(e), redo_count=e.redo_count,
                                                previous_member_id=e.previous_member_id, due_at=_utc(e.due_at)),
    "Activity.Scheduled": lambda e: c.ActivityScheduled(
        **_activity(e), unit_id=e.unit_id, theme=e.theme, title=e.title, starts_at=_utc(e.starts_at),
        ends_at=_utc(e.ends_at), capacity=e.capacity),
    "Activity.ResidentSignedUp": lambda e: c.ResidentSignedUp(**_activity(e), resident_id=e.resident_id),
    "Activity.MemberCheckedIn": lambda e: c.MemberCheckedIn(**_activity(e), member_id=e.member_id,
                                                            unit_id=e.unit_id),
    "Activity.Completed": lambda e: c.ActivityCompleted(
        **_activity(e), unit_id=e.unit_id, hours=e.hours, members_checked_in=e.members_checked_in,
        residents_signed_up=e.residents_signed_up),
}


def to_contract(domain_event: Any) -> c.Event | None:
    """The public fact for a stored event, or None for an event that stays internal."""
    make = _MAPPING.get(type(domain_event).__qualname__)
    return make(domain_event) if make else None
