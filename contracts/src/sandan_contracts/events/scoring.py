"""Facts published by scoring: the points ledger and stars on `scoring.points.v1` (keyed by member_id),
quarterly notices on `scoring.notices.v1` (keyed by notice_id).

Ids are derived from their sources (`entry_id` from the rule and the source event ids), so a rebuild that
publishes again produces the same ids and a consumer counting them counts each once.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from sandan_contracts.events.base import Code, Event, Id, Ref, Version

POINTS = "scoring.points.v1"
NOTICES = "scoring.notices.v1"
Quarter = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}Q[1-4]$")]  # e.g. 2026Q4


class _PointsEvent(Event):
    TOPIC: ClassVar[str] = POINTS
    KEY: ClassVar[str] = "member_id"
    member_id: Id
    community_id: Id
    unit_id: Id


class PointsAwarded(_PointsEvent):
    TYPE: ClassVar[str] = "PointsAwarded"
    entry_id: Ref
    points: int = Field(gt=0, le=10_000)
    rule: Code
    rule_set_version: Version
    quarter: Quarter
    source_event_ids: list[Ref] = Field(min_length=1, max_length=10)


class PointsRevoked(_PointsEvent):
    TYPE: ClassVar[str] = "PointsRevoked"
    entry_id: Ref
    points: int = Field(gt=0, le=10_000)  # how many points are taken away
    rule: Code
    rule_set_version: Version
    quarter: Quarter
    source_event_ids: list[Ref] = Field(min_length=1, max_length=10)


class StarRatingChanged(_PointsEvent):
    TYPE: ClassVar[str] = "StarRatingChanged"
    quarter: Quarter
    stars: int = Field(ge=0, le=5)  # 0: not rated yet (too few rated services)
    previous_stars: int = Field(ge=0, le=5)
    points: int
    average_rating: float | None = Field(default=None, ge=1, le=5)
    rated_services: int = Field(ge=0)
    rule_set_version: Version


class NoticeSummary(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    members_active: int = Field(ge=0)
    services_completed: int = Field(ge=0)
    hours: float = Field(ge=0)
    response_rate: float | None = Field(default=None, ge=0, le=1)
    completion_rate: float | None = Field(default=None, ge=0, le=1)
    satisfaction_rate: float | None = Field(default=None, ge=0, le=1)
    overdue: int = Field(ge=0)
    escalated: int = Field(ge=0)


class RankedMember(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    rank: int = Field(ge=1)
    member_id: Id
    points: int
    stars: int = Field(ge=0, le=5)


class QuarterlyNoticePublished(Event):
    """每季度通报公示: a community's or a unit's quarter, published and sent back to each unit."""

    TYPE: ClassVar[str] = "QuarterlyNoticePublished"
    TOPIC: ClassVar[str] = NOTICES
    KEY: ClassVar[str] = "notice_id"
    notice_id: Ref
    scope: Literal["community", "unit"]
    scope_id: Id
    quarter: Quarter
    rule_set_version: Version
    summary: NoticeSummary
    ranking: list[RankedMember] = Field(default_factory=list, max_length=10_000)
