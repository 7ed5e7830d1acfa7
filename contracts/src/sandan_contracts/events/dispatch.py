"""Facts published by dispatch: the roster on `dispatch.roster.v1` and orders on `dispatch.orders.v1`.

Members and units appear by opaque id only; contacts are served by dispatch's authorised gRPC call.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from sandan_contracts.events.base import CareTag, Code, Event, Id, Level, Urgency, UtcDatetime

ROSTER = "dispatch.roster.v1"
ORDERS = "dispatch.orders.v1"


# ---- roster: 双报到 -------------------------------------------------------------------------
class UnitReported(Event):
    """A work unit's party organisation reported to a community (单位报到)."""

    TYPE: ClassVar[str] = "UnitReported"
    TOPIC: ClassVar[str] = ROSTER
    KEY: ClassVar[str] = "unit_id"
    unit_id: Id
    community_id: Id
    unit_name: str = Field(min_length=1, max_length=100)  # an organisation's public name


class _MemberEvent(Event):
    TOPIC: ClassVar[str] = ROSTER
    KEY: ClassVar[str] = "member_id"
    member_id: Id
    community_id: Id


class MemberReported(_MemberEvent):
    """An in-service party member reported in person (党员报到), choosing a grid and teams."""

    TYPE: ClassVar[str] = "MemberReported"
    unit_id: Id
    grid_id: Id
    teams: list[Code] = Field(default_factory=list, max_length=10)
    skills: list[Code] = Field(default_factory=list, max_length=20)


class MemberLeft(_MemberEvent):
    TYPE: ClassVar[str] = "MemberLeft"
    reason: Code


class TeamJoined(_MemberEvent):
    TYPE: ClassVar[str] = "TeamJoined"
    team: Code


class _GridEvent(Event):
    TOPIC: ClassVar[str] = ROSTER
    KEY: ClassVar[str] = "grid_id"
    grid_id: Id
    community_id: Id


class GridGroupFormed(_GridEvent):
    TYPE: ClassVar[str] = "GridGroupFormed"


class GridLeaderAppointed(_GridEvent):
    TYPE: ClassVar[str] = "GridLeaderAppointed"
    member_id: Id


# ---- orders: 支部下单 / 党员接单 ----------------------------------------------------------------
class _OrderEvent(Event):
    TOPIC: ClassVar[str] = ORDERS
    KEY: ClassVar[str] = "order_id"
    order_id: Id
    demand_id: Id


class OrderOpened(_OrderEvent):
    TYPE: ClassVar[str] = "OrderOpened"
    community_id: Id
    grid_id: Id
    category: Code
    urgency: Urgency
    # Deprecated: special-care tags are sensitive personal information (PIPL art. 28). New producers send [] and
    # set `special_care`; readers take `special_care or bool(care_tags)` (events written before keep their tags).
    care_tags: list[CareTag] = Field(default_factory=list, max_length=4)
    special_care: bool = Field(default=False, description="whether the resident needs special care (elderly "
                               "living alone, student in hardship, left-behind child, disabled); which one stays in "
                               "intake")
    due_at: UtcDatetime


class OrderDispatched(_OrderEvent):
    TYPE: ClassVar[str] = "OrderDispatched"
    member_id: Id
    dispatched_by: Literal["branch", "grid_leader"]


class OrderOffered(_OrderEvent):
    """Offered to the pool: members of `grid_id`, or of a team in `teams`, may claim it (自主认领)."""

    TYPE: ClassVar[str] = "OrderOffered"
    grid_id: Id
    teams: list[Code] = Field(default_factory=list, max_length=10)


class OrderAccepted(_OrderEvent):
    TYPE: ClassVar[str] = "OrderAccepted"
    member_id: Id
    via: Literal["dispatch", "claim"]


class OrderDeclined(_OrderEvent):
    TYPE: ClassVar[str] = "OrderDeclined"
    member_id: Id
    reason: Code


class ServiceCompleted(_OrderEvent):
    TYPE: ClassVar[str] = "ServiceCompleted"
    member_id: Id
    hours: float = Field(gt=0, le=72)
    has_notes: bool = False


class OrderEscalated(_OrderEvent):
    """Moved up a level: branch -> town -> county; a county escalation names the joint meeting's units."""

    TYPE: ClassVar[str] = "OrderEscalated"
    from_level: Level
    to_level: Level
    reason: Code  # e.g. no_capacity, needs_resources, deadline_missed; free-text notes stay in dispatch
    automatic: bool = False
    joint_meeting_units: list[Id] = Field(default_factory=list, max_length=50)
    due_at: UtcDatetime


class OrderOverdue(_OrderEvent):
    TYPE: ClassVar[str] = "OrderOverdue"
    level: Level
    due_at: UtcDatetime
    status: Code
    member_id: Id | None = None  # set when a member held the order when it ran out of time


class OrderCancelled(_OrderEvent):
    TYPE: ClassVar[str] = "OrderCancelled"
    reason: Code


class OrderReopened(_OrderEvent):
    """The resident asked for a redo: the order is back with the branch for dispatch."""

    TYPE: ClassVar[str] = "OrderReopened"
    redo_count: int = Field(ge=1, le=10)
    previous_member_id: Id | None = None
    due_at: UtcDatetime


# ---- themed party days: 主题党日 (on dispatch.activities.v1, keyed by activity_id) ---------------
ACTIVITIES = "dispatch.activities.v1"


class _ActivityEvent(Event):
    TOPIC: ClassVar[str] = ACTIVITIES
    KEY: ClassVar[str] = "activity_id"
    activity_id: Id
    community_id: Id


class ActivityScheduled(_ActivityEvent):
    """A unit brings a themed activity to a community (e.g. free health checks, festival visits)."""

    TYPE: ClassVar[str] = "ActivityScheduled"
    unit_id: Id
    theme: Code
    title: str = Field(min_length=1, max_length=100)  # the organiser's public title
    starts_at: UtcDatetime
    ends_at: UtcDatetime
    capacity: int = Field(ge=1, le=10_000)


class ResidentSignedUp(_ActivityEvent):
    TYPE: ClassVar[str] = "ResidentSignedUp"
    resident_id: Id  # opaque; intake holds who it is


class MemberCheckedIn(_ActivityEvent):
    TYPE: ClassVar[str] = "MemberCheckedIn"
    member_id: Id
    unit_id: Id  # the member's own work unit (the host unit is on ActivityScheduled / ActivityCompleted)


class ActivityCompleted(_ActivityEvent):
    TYPE: ClassVar[str] = "ActivityCompleted"
    unit_id: Id
    hours: float = Field(gt=0, le=24)
    members_checked_in: int = Field(ge=0)
    residents_signed_up: int = Field(ge=0)
