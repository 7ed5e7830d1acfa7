from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Empty(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class MemberLedgerRequest(_message.Message):
    __slots__ = ("member_id", "quarter")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    QUARTER_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    quarter: str
    def __init__(self, member_id: _Optional[str] = ..., quarter: _Optional[str] = ...) -> None: ...

class LedgerEntry(_message.Message):
    __slots__ = ("entry_id", "points", "rule", "rule_set_version", "quarter", "source_event_ids", "occurred_at")
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    RULE_SET_VERSION_FIELD_NUMBER: _ClassVar[int]
    QUARTER_FIELD_NUMBER: _ClassVar[int]
    SOURCE_EVENT_IDS_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    entry_id: str
    points: int
    rule: str
    rule_set_version: str
    quarter: str
    source_event_ids: _containers.RepeatedScalarFieldContainer[str]
    occurred_at: str
    def __init__(self, entry_id: _Optional[str] = ..., points: _Optional[int] = ..., rule: _Optional[str] = ..., rule_set_version: _Optional[str] = ..., quarter: _Optional[str] = ..., source_event_ids: _Optional[_Iterable[str]] = ..., occurred_at: _Optional[str] = ...) -> None: ...

class Total(_message.Message):
    __slots__ = ("period", "points")
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    period: str
    points: int
    def __init__(self, period: _Optional[str] = ..., points: _Optional[int] = ...) -> None: ...

class MemberLedger(_message.Message):
    __slots__ = ("member_id", "community_id", "unit_id", "entries", "totals", "stars")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    COMMUNITY_ID_FIELD_NUMBER: _ClassVar[int]
    UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    STARS_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    community_id: str
    unit_id: str
    entries: _containers.RepeatedCompositeFieldContainer[LedgerEntry]
    totals: _containers.RepeatedCompositeFieldContainer[Total]
    stars: int
    def __init__(self, member_id: _Optional[str] = ..., community_id: _Optional[str] = ..., unit_id: _Optional[str] = ..., entries: _Optional[_Iterable[_Union[LedgerEntry, _Mapping]]] = ..., totals: _Optional[_Iterable[_Union[Total, _Mapping]]] = ..., stars: _Optional[int] = ...) -> None: ...

class LeaderboardRequest(_message.Message):
    __slots__ = ("community_id", "unit_id", "quarter", "limit")
    COMMUNITY_ID_FIELD_NUMBER: _ClassVar[int]
    UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    QUARTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    community_id: str
    unit_id: str
    quarter: str
    limit: int
    def __init__(self, community_id: _Optional[str] = ..., unit_id: _Optional[str] = ..., quarter: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class RankedMember(_message.Message):
    __slots__ = ("rank", "member_id", "points", "stars", "average_rating", "rated_services")
    RANK_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    STARS_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_RATING_FIELD_NUMBER: _ClassVar[int]
    RATED_SERVICES_FIELD_NUMBER: _ClassVar[int]
    rank: int
    member_id: str
    points: int
    stars: int
    average_rating: float
    rated_services: int
    def __init__(self, rank: _Optional[int] = ..., member_id: _Optional[str] = ..., points: _Optional[int] = ..., stars: _Optional[int] = ..., average_rating: _Optional[float] = ..., rated_services: _Optional[int] = ...) -> None: ...

class Ranking(_message.Message):
    __slots__ = ("members",)
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    members: _containers.RepeatedCompositeFieldContainer[RankedMember]
    def __init__(self, members: _Optional[_Iterable[_Union[RankedMember, _Mapping]]] = ...) -> None: ...

class ScopeQuarter(_message.Message):
    __slots__ = ("scope_id", "quarter")
    SCOPE_ID_FIELD_NUMBER: _ClassVar[int]
    QUARTER_FIELD_NUMBER: _ClassVar[int]
    scope_id: str
    quarter: str
    def __init__(self, scope_id: _Optional[str] = ..., quarter: _Optional[str] = ...) -> None: ...

class Summary(_message.Message):
    __slots__ = ("members_active", "services_completed", "hours", "response_rate", "completion_rate", "satisfaction_rate", "overdue", "escalated")
    MEMBERS_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    SERVICES_COMPLETED_FIELD_NUMBER: _ClassVar[int]
    HOURS_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_RATE_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_RATE_FIELD_NUMBER: _ClassVar[int]
    SATISFACTION_RATE_FIELD_NUMBER: _ClassVar[int]
    OVERDUE_FIELD_NUMBER: _ClassVar[int]
    ESCALATED_FIELD_NUMBER: _ClassVar[int]
    members_active: int
    services_completed: int
    hours: float
    response_rate: float
    completion_rate: float
    satisfaction_rate: float
    overdue: int
    escalated: int
    def __init__(self, members_active: _Optional[int] = ..., services_completed: _Optional[int] = ..., hours: _Optional[float] = ..., response_rate: _Optional[float] = ..., completion_rate: _Optional[float] = ..., satisfaction_rate: _Optional[float] = ..., overdue: _Optional[int] = ..., escalated: _Optional[int] = ...) -> None: ...

class Report(_message.Message):
    __slots__ = ("scope", "scope_id", "quarter", "rule_set_version", "summary", "ranking", "published")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    SCOPE_ID_FIELD_NUMBER: _ClassVar[int]
    QUARTER_FIELD_NUMBER: _ClassVar[int]
    RULE_SET_VERSION_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    RANKING_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_FIELD_NUMBER: _ClassVar[int]
    scope: str
    scope_id: str
    quarter: str
    rule_set_version: str
    summary: Summary
    ranking: _containers.RepeatedCompositeFieldContainer[RankedMember]
    published: bool
    def __init__(self, scope: _Optional[str] = ..., scope_id: _Optional[str] = ..., quarter: _Optional[str] = ..., rule_set_version: _Optional[str] = ..., summary: _Optional[_Union[Summary, _Mapping]] = ..., ranking: _Optional[_Iterable[_Union[RankedMember, _Mapping]]] = ..., published: _Optional[bool] = ...) -> None: ...

class QuarterRef(_message.Message):
    __slots__ = ("quarter",)
    QUARTER_FIELD_NUMBER: _ClassVar[int]
    quarter: str
    def __init__(self, quarter: _Optional[str] = ...) -> None: ...

class NoticesPublished(_message.Message):
    __slots__ = ("notice_ids",)
    NOTICE_IDS_FIELD_NUMBER: _ClassVar[int]
    notice_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, notice_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class RuleSet(_message.Message):
    __slots__ = ("version", "description", "active")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    version: str
    description: str
    active: bool
    def __init__(self, version: _Optional[str] = ..., description: _Optional[str] = ..., active: _Optional[bool] = ...) -> None: ...

class RuleSetList(_message.Message):
    __slots__ = ("rule_sets",)
    RULE_SETS_FIELD_NUMBER: _ClassVar[int]
    rule_sets: _containers.RepeatedCompositeFieldContainer[RuleSet]
    def __init__(self, rule_sets: _Optional[_Iterable[_Union[RuleSet, _Mapping]]] = ...) -> None: ...

class WhatIfRequest(_message.Message):
    __slots__ = ("rule_set_version", "quarter")
    RULE_SET_VERSION_FIELD_NUMBER: _ClassVar[int]
    QUARTER_FIELD_NUMBER: _ClassVar[int]
    rule_set_version: str
    quarter: str
    def __init__(self, rule_set_version: _Optional[str] = ..., quarter: _Optional[str] = ...) -> None: ...

class MemberComparison(_message.Message):
    __slots__ = ("member_id", "current_points", "candidate_points", "current_stars", "candidate_stars")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENT_POINTS_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_POINTS_FIELD_NUMBER: _ClassVar[int]
    CURRENT_STARS_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_STARS_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    current_points: int
    candidate_points: int
    current_stars: int
    candidate_stars: int
    def __init__(self, member_id: _Optional[str] = ..., current_points: _Optional[int] = ..., candidate_points: _Optional[int] = ..., current_stars: _Optional[int] = ..., candidate_stars: _Optional[int] = ...) -> None: ...

class WhatIfReport(_message.Message):
    __slots__ = ("current_version", "candidate_version", "members")
    CURRENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_VERSION_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    current_version: str
    candidate_version: str
    members: _containers.RepeatedCompositeFieldContainer[MemberComparison]
    def __init__(self, current_version: _Optional[str] = ..., candidate_version: _Optional[str] = ..., members: _Optional[_Iterable[_Union[MemberComparison, _Mapping]]] = ...) -> None: ...

class RebuildRequest(_message.Message):
    __slots__ = ("rule_set_version",)
    RULE_SET_VERSION_FIELD_NUMBER: _ClassVar[int]
    rule_set_version: str
    def __init__(self, rule_set_version: _Optional[str] = ...) -> None: ...

class RebuildProgress(_message.Message):
    __slots__ = ("phase", "events_read", "events_total", "digest", "rule_set_version", "seconds")
    PHASE_FIELD_NUMBER: _ClassVar[int]
    EVENTS_READ_FIELD_NUMBER: _ClassVar[int]
    EVENTS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    RULE_SET_VERSION_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    phase: str
    events_read: int
    events_total: int
    digest: str
    rule_set_version: str
    seconds: float
    def __init__(self, phase: _Optional[str] = ..., events_read: _Optional[int] = ..., events_total: _Optional[int] = ..., digest: _Optional[str] = ..., rule_set_version: _Optional[str] = ..., seconds: _Optional[float] = ...) -> None: ...

class DigestReply(_message.Message):
    __slots__ = ("digest", "generation", "rule_set_version", "entries")
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    RULE_SET_VERSION_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    digest: str
    generation: int
    rule_set_version: str
    entries: int
    def __init__(self, digest: _Optional[str] = ..., generation: _Optional[int] = ..., rule_set_version: _Optional[str] = ..., entries: _Optional[int] = ...) -> None: ...

class SetAsideItem(_message.Message):
    __slots__ = ("event_id", "kind", "error", "attempts", "first_at", "last_at")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    FIRST_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_AT_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    kind: str
    error: str
    attempts: int
    first_at: str
    last_at: str
    def __init__(self, event_id: _Optional[str] = ..., kind: _Optional[str] = ..., error: _Optional[str] = ..., attempts: _Optional[int] = ..., first_at: _Optional[str] = ..., last_at: _Optional[str] = ...) -> None: ...

class Pause(_message.Message):
    __slots__ = ("part", "reason")
    PART_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    part: str
    reason: str
    def __init__(self, part: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class PublishingReport(_message.Message):
    __slots__ = ("pending", "unmarked", "set_aside", "items", "paused", "dead_lettered")
    PENDING_FIELD_NUMBER: _ClassVar[int]
    UNMARKED_FIELD_NUMBER: _ClassVar[int]
    SET_ASIDE_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTERED_FIELD_NUMBER: _ClassVar[int]
    pending: int
    unmarked: int
    set_aside: int
    items: _containers.RepeatedCompositeFieldContainer[SetAsideItem]
    paused: _containers.RepeatedCompositeFieldContainer[Pause]
    dead_lettered: int
    def __init__(self, pending: _Optional[int] = ..., unmarked: _Optional[int] = ..., set_aside: _Optional[int] = ..., items: _Optional[_Iterable[_Union[SetAsideItem, _Mapping]]] = ..., paused: _Optional[_Iterable[_Union[Pause, _Mapping]]] = ..., dead_lettered: _Optional[int] = ...) -> None: ...
