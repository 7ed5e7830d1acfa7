"""Every published event type, by its envelope `type` name."""

from __future__ import annotations

from sandan_contracts.events import dispatch, intake, notify, scoring
from sandan_contracts.events.base import Event
from sandan_contracts.events.dispatch import (
    ActivityCompleted,
    ActivityScheduled,
    GridGroupFormed,
    GridLeaderAppointed,
    MemberCheckedIn,
    MemberLeft,
    MemberReported,
    OrderAccepted,
    OrderCancelled,
    OrderDeclined,
    OrderDispatched,
    OrderEscalated,
    OrderOffered,
    OrderOpened,
    OrderOverdue,
    OrderReopened,
    ResidentSignedUp,
    ServiceCompleted,
    TeamJoined,
    UnitReported,
)
from sandan_contracts.events.intake import (
    CompletionConfirmed,
    DemandPosted,
    DemandTextsShredded,
    DemandWithdrawn,
    RedoRequested,
    ServiceRated,
)
from sandan_contracts.events.notify import NotificationFailed, NotificationSent
from sandan_contracts.events.scoring import (
    NoticeSummary,
    PointsAwarded,
    PointsRevoked,
    QuarterlyNoticePublished,
    RankedMember,
    StarRatingChanged,
)


def _collect() -> dict[tuple[str, int], type[Event]]:
    found: dict[tuple[str, int], type[Event]] = {}
    for module in (intake, dispatch, scoring, notify):
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, Event) and "TYPE" in obj.__dict__:
                found[(obj.TYPE, obj.VERSION)] = obj
    return found


EVENT_TYPES: dict[tuple[str, int], type[Event]] = _collect()


def event_class(type_name: str, version: int) -> type[Event]:
    """The model for (type, schema_version); KeyError when this contract does not know it."""
    return EVENT_TYPES[(type_name, version)]


__all__ = [
    "EVENT_TYPES",
    "ActivityCompleted",
    "ActivityScheduled",
    "CompletionConfirmed",
    "DemandPosted",
    "DemandTextsShredded",
    "DemandWithdrawn",
    "Event",
    "GridGroupFormed",
    "GridLeaderAppointed",
    "MemberCheckedIn",
    "MemberLeft",
    "MemberReported",
    "NoticeSummary",
    "NotificationFailed",
    "NotificationSent",
    "OrderAccepted",
    "OrderCancelled",
    "OrderDeclined",
    "OrderDispatched",
    "OrderEscalated",
    "OrderOffered",
    "OrderOpened",
    "OrderOverdue",
    "OrderReopened",
    "PointsAwarded",
    "PointsRevoked",
    "QuarterlyNoticePublished",
    "RankedMember",
    "RedoRequested",
    "ResidentSignedUp",
    "ServiceCompleted",
    "ServiceRated",
    "StarRatingChanged",
    "TeamJoined",
    "UnitReported",
    "event_class",
]
