"""Facts published by intake on `intake.demands.v1`, keyed by demand_id.

No resident's name, phone, address, free-text description or comment ever appears here:
receivers that need them ask intake through an authorised gRPC call.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from sandan_contracts.events.base import CareTag, Channel, Code, Event, Id, Urgency, UtcDatetime

TOPIC = "intake.demands.v1"


class _DemandEvent(Event):
    TOPIC: ClassVar[str] = TOPIC
    KEY: ClassVar[str] = "demand_id"
    demand_id: Id


class DemandPosted(_DemandEvent):
    """A resident (or a grid worker on their behalf) placed an order: 居民点单."""

    TYPE: ClassVar[str] = "DemandPosted"
    community_id: Id
    grid_id: Id
    category: Code
    menu_item_id: Id | None = None
    urgency: Urgency
    # Deprecated: special-care tags are sensitive personal information (PIPL art. 28). New producers send [] and
    # set `special_care`; readers take `special_care or bool(care_tags)` (events written before keep their tags).
    care_tags: list[CareTag] = Field(default_factory=list, max_length=4)
    special_care: bool = Field(default=False, description="whether the resident needs special care (elderly "
                               "living alone, student in hardship, left-behind child, disabled); which one stays in "
                               "intake")
    channel: Channel
    due_at: UtcDatetime
    deadline_seconds: int = Field(gt=0, le=90 * 24 * 3600)


class DemandWithdrawn(_DemandEvent):
    TYPE: ClassVar[str] = "DemandWithdrawn"
    reason: Code


class RedoRequested(_DemandEvent):
    """The resident was not satisfied with the service: the order goes back to dispatch (返工)."""

    TYPE: ClassVar[str] = "RedoRequested"
    redo_count: int = Field(ge=1, le=10)
    member_id: Id | None = None


class CompletionConfirmed(_DemandEvent):
    TYPE: ClassVar[str] = "CompletionConfirmed"
    member_id: Id | None = None


class ServiceRated(_DemandEvent):
    TYPE: ClassVar[str] = "ServiceRated"
    member_id: Id | None = None
    stars: int = Field(ge=1, le=5)
    has_comment: bool = False


class DemandTextsShredded(_DemandEvent):
    """Intake destroyed the demand's data key: what the resident typed about it is gone for good.

    A subscriber forgets any copy it keeps of this demand's free text (notes, comments, descriptions); ids, counts
    and flags stay. `retention`: the demand closed long enough ago; `erasure`: the resident asked to be forgotten.
    Intake may publish it more than once for a demand (the two causes can meet): handling it must be idempotent.
    """

    TYPE: ClassVar[str] = "DemandTextsShredded"
    cause: Literal["retention", "erasure"]
