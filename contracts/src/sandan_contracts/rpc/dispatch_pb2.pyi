from sandan_contracts.rpc import audit_pb2 as _audit_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReportUnitRequest(_message.Message):
    __slots__ = ("unit_id", "community_id", "unit_name", "contact_email", "webhook_url")
    UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    COMMUNITY_ID_FIELD_NUMBER: _ClassVar[int]
    UNIT_NAME_FIELD_NUMBER: _ClassVar[int]
    CONTACT_EMAIL_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_URL_FIELD_NUMBER: _ClassVar[int]
    unit_id: str
    community_id: str
    unit_name: str
    contact_email: str
    webhook_url: str
    def __init__(self, unit_id: _Optional[str] = ..., community_id: _Optional[str] = ..., unit_name: _Optional[str] = ..., contact_email: _Optional[str] = ..., webhook_url: _Optional[str] = ...) -> None: ...

class Unit(_message.Message):
    __slots__ = ("unit_id", "community_id", "unit_name")
    UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    COMMUNITY_ID_FIELD_NUMBER: _ClassVar[int]
    UNIT_NAME_FIELD_NUMBER: _ClassVar[int]
    unit_id: str
    community_id: str
    unit_name: str
    def __init__(self, unit_id: _Optional[str] = ..., community_id: _Optional[str] = ..., unit_name: _Optional[str] = ...) -> None: ...

class ReportMemberRequest(_message.Message):
    __slots__ = ("member_id", "unit_id", "community_id", "grid_id", "teams", "skills", "name", "phone", "email", "wechat_openid")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    COMMUNITY_ID_FIELD_NUMBER: _ClassVar[int]
    GRID_ID_FIELD_NUMBER: _ClassVar[int]
    TEAMS_FIELD_NUMBER: _ClassVar[int]
    SKILLS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PHONE_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    WECHAT_OPENID_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    unit_id: str
    community_id: str
    grid_id: str
    teams: _containers.RepeatedScalarFieldContainer[str]
    skills: _containers.RepeatedScalarFieldContainer[str]
    name: str
    phone: str
    email: str
    wechat_openid: str
    def __init__(self, member_id: _Optional[str] = ..., unit_id: _Optional[str] = ..., community_id: _Optional[str] = ..., grid_id: _Optional[str] = ..., teams: _Optional[_Iterable[str]] = ..., skills: _Optional[_Iterable[str]] = ..., name: _Optional[str] = ..., phone: _Optional[str] = ..., email: _Optional[str] = ..., wechat_openid: _Optional[str] = ...) -> None: ...

class JoinTeamRequest(_message.Message):
    __slots__ = ("member_id", "team")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    TEAM_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    team: str
    def __init__(self, member_id: _Optional[str] = ..., team: _Optional[str] = ...) -> None: ...

class MemberLeavesRequest(_message.Message):
    __slots__ = ("member_id", "reason")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    reason: str
    def __init__(self, member_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class MemberRef(_message.Message):
    __slots__ = ("member_id",)
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    def __init__(self, member_id: _Optional[str] = ...) -> None: ...

class Member(_message.Message):
    __slots__ = ("member_id", "unit_id", "community_id", "grid_id", "teams", "skills", "active")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    COMMUNITY_ID_FIELD_NUMBER: _ClassVar[int]
    GRID_ID_FIELD_NUMBER: _ClassVar[int]
    TEAMS_FIELD_NUMBER: _ClassVar[int]
    SKILLS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    unit_id: str
    community_id: str
    grid_id: str
    teams: _containers.RepeatedScalarFieldContainer[str]
    skills: _containers.RepeatedScalarFieldContainer[str]
    active: bool
    def __init__(self, member_id: _Optional[str] = ..., unit_id: _Optional[str] = ..., community_id: _Optional[str] = ..., grid_id: _Optional[str] = ..., teams: _Optional[_Iterable[str]] = ..., skills: _Optional[_Iterable[str]] = ..., active: _Optional[bool] = ...) -> None: ...

class FormGridGroupRequest(_message.Message):
    __slots__ = ("community_id", "grid_id")
    COMMUNITY_ID_FIELD_NUMBER: _ClassVar[int]
    GRID_ID_FIELD_NUMBER: _ClassVar[int]
    community_id: str
    grid_id: str
    def __init__(self, community_id: _Optional[str] = ..., grid_id: _Optional[str] = ...) -> None: ...

class AppointGridLeaderRequest(_message.Message):
    __slots__ = ("grid_id", "member_id")
    GRID_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    grid_id: str
    member_id: str
    def __init__(self, grid_id: _Optional[str] = ..., member_id: _Optional[str] = ...) -> None: ...

class GridGroup(_message.Message):
    __slots__ = ("grid_id", "community_id", "leader_member_id")
    GRID_ID_FIELD_NUMBER: _ClassVar[int]
    COMMUNITY_ID_FIELD_NUMBER: _ClassVar[int]
    LEADER_MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    grid_id: str
    community_id: str
    leader_member_id: str
    def __init__(self, grid_id: _Optional[str] = ..., community_id: _Optional[str] = ..., leader_member_id: _Optional[str] = ...) -> None: ...

class OrderRef(_message.Message):
    __slots__ = ("order_id",)
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    def __init__(self, order_id: _Optional[str] = ...) -> None: ...

class DemandRef(_message.Message):
    __slots__ = ("demand_id",)
    DEMAND_ID_FIELD_NUMBER: _ClassVar[int]
    demand_id: str
    def __init__(self, demand_id: _Optional[str] = ...) -> None: ...

class ListOrdersRequest(_message.Message):
    __slots__ = ("community_id", "status")
    COMMUNITY_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    community_id: str
    status: str
    def __init__(self, community_id: _Optional[str] = ..., status: _Optional[str] = ...) -> None: ...

class Order(_message.Message):
    __slots__ = ("order_id", "demand_id", "community_id", "grid_id", "category", "urgency", "status", "member_id", "level", "due_at", "redo_count", "offered_teams", "joint_meeting_units", "hours", "special_care")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    DEMAND_ID_FIELD_NUMBER: _ClassVar[int]
    COMMUNITY_ID_FIELD_NUMBER: _ClassVar[int]
    GRID_ID_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    URGENCY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    DUE_AT_FIELD_NUMBER: _ClassVar[int]
    REDO_COUNT_FIELD_NUMBER: _ClassVar[int]
    OFFERED_TEAMS_FIELD_NUMBER: _ClassVar[int]
    JOINT_MEETING_UNITS_FIELD_NUMBER: _ClassVar[int]
    HOURS_FIELD_NUMBER: _ClassVar[int]
    SPECIAL_CARE_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    demand_id: str
    community_id: str
    grid_id: str
    category: str
    urgency: str
    status: str
    member_id: str
    level: str
    due_at: str
    redo_count: int
    offered_teams: _containers.RepeatedScalarFieldContainer[str]
    joint_meeting_units: _containers.RepeatedScalarFieldContainer[str]
    hours: float
    special_care: bool
    def __init__(self, order_id: _Optional[str] = ..., demand_id: _Optional[str] = ..., community_id: _Optional[str] = ..., grid_id: _Optional[str] = ..., category: _Optional[str] = ..., urgency: _Optional[str] = ..., status: _Optional[str] = ..., member_id: _Optional[str] = ..., level: _Optional[str] = ..., due_at: _Optional[str] = ..., redo_count: _Optional[int] = ..., offered_teams: _Optional[_Iterable[str]] = ..., joint_meeting_units: _Optional[_Iterable[str]] = ..., hours: _Optional[float] = ..., special_care: _Optional[bool] = ...) -> None: ...

class Orders(_message.Message):
    __slots__ = ("orders",)
    ORDERS_FIELD_NUMBER: _ClassVar[int]
    orders: _containers.RepeatedCompositeFieldContainer[Order]
    def __init__(self, orders: _Optional[_Iterable[_Union[Order, _Mapping]]] = ...) -> None: ...

class DispatchOrderRequest(_message.Message):
    __slots__ = ("order_id", "member_id", "dispatched_by")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    DISPATCHED_BY_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    member_id: str
    dispatched_by: str
    def __init__(self, order_id: _Optional[str] = ..., member_id: _Optional[str] = ..., dispatched_by: _Optional[str] = ...) -> None: ...

class OfferOrderRequest(_message.Message):
    __slots__ = ("order_id", "teams")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    TEAMS_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    teams: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, order_id: _Optional[str] = ..., teams: _Optional[_Iterable[str]] = ...) -> None: ...

class AcceptOrderRequest(_message.Message):
    __slots__ = ("order_id", "member_id")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    member_id: str
    def __init__(self, order_id: _Optional[str] = ..., member_id: _Optional[str] = ...) -> None: ...

class DeclineOrderRequest(_message.Message):
    __slots__ = ("order_id", "member_id", "reason")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    member_id: str
    reason: str
    def __init__(self, order_id: _Optional[str] = ..., member_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CompleteServiceRequest(_message.Message):
    __slots__ = ("order_id", "member_id", "hours", "notes")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    HOURS_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    member_id: str
    hours: float
    notes: str
    def __init__(self, order_id: _Optional[str] = ..., member_id: _Optional[str] = ..., hours: _Optional[float] = ..., notes: _Optional[str] = ...) -> None: ...

class EscalateOrderRequest(_message.Message):
    __slots__ = ("order_id", "reason", "joint_meeting_units", "note")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    JOINT_MEETING_UNITS_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    reason: str
    joint_meeting_units: _containers.RepeatedScalarFieldContainer[str]
    note: str
    def __init__(self, order_id: _Optional[str] = ..., reason: _Optional[str] = ..., joint_meeting_units: _Optional[_Iterable[str]] = ..., note: _Optional[str] = ...) -> None: ...

class SuggestMembersRequest(_message.Message):
    __slots__ = ("order_id", "limit")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    limit: int
    def __init__(self, order_id: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class Candidate(_message.Message):
    __slots__ = ("member_id", "score", "same_grid", "team_matches", "open_orders")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    SAME_GRID_FIELD_NUMBER: _ClassVar[int]
    TEAM_MATCHES_FIELD_NUMBER: _ClassVar[int]
    OPEN_ORDERS_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    score: float
    same_grid: bool
    team_matches: bool
    open_orders: int
    def __init__(self, member_id: _Optional[str] = ..., score: _Optional[float] = ..., same_grid: _Optional[bool] = ..., team_matches: _Optional[bool] = ..., open_orders: _Optional[int] = ...) -> None: ...

class Suggestions(_message.Message):
    __slots__ = ("candidates",)
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    candidates: _containers.RepeatedCompositeFieldContainer[Candidate]
    def __init__(self, candidates: _Optional[_Iterable[_Union[Candidate, _Mapping]]] = ...) -> None: ...

class UnitRef(_message.Message):
    __slots__ = ("unit_id",)
    UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    unit_id: str
    def __init__(self, unit_id: _Optional[str] = ...) -> None: ...

class MemberContact(_message.Message):
    __slots__ = ("member_id", "community_id", "unit_id", "name", "phone", "email", "wechat_openid")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    COMMUNITY_ID_FIELD_NUMBER: _ClassVar[int]
    UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PHONE_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    WECHAT_OPENID_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    community_id: str
    unit_id: str
    name: str
    phone: str
    email: str
    wechat_openid: str
    def __init__(self, member_id: _Optional[str] = ..., community_id: _Optional[str] = ..., unit_id: _Optional[str] = ..., name: _Optional[str] = ..., phone: _Optional[str] = ..., email: _Optional[str] = ..., wechat_openid: _Optional[str] = ...) -> None: ...

class SetPublicNameRequest(_message.Message):
    __slots__ = ("member_id", "public_name")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_NAME_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    public_name: str
    def __init__(self, member_id: _Optional[str] = ..., public_name: _Optional[str] = ...) -> None: ...

class MemberPublicName(_message.Message):
    __slots__ = ("member_id", "public_name")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_NAME_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    public_name: str
    def __init__(self, member_id: _Optional[str] = ..., public_name: _Optional[str] = ...) -> None: ...

class UnitPublicName(_message.Message):
    __slots__ = ("unit_id", "unit_name")
    UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    UNIT_NAME_FIELD_NUMBER: _ClassVar[int]
    unit_id: str
    unit_name: str
    def __init__(self, unit_id: _Optional[str] = ..., unit_name: _Optional[str] = ...) -> None: ...

class PublicNamesRequest(_message.Message):
    __slots__ = ("member_ids", "unit_ids")
    MEMBER_IDS_FIELD_NUMBER: _ClassVar[int]
    UNIT_IDS_FIELD_NUMBER: _ClassVar[int]
    member_ids: _containers.RepeatedScalarFieldContainer[str]
    unit_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, member_ids: _Optional[_Iterable[str]] = ..., unit_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class PublicNamesReply(_message.Message):
    __slots__ = ("members", "units")
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    UNITS_FIELD_NUMBER: _ClassVar[int]
    members: _containers.RepeatedCompositeFieldContainer[MemberPublicName]
    units: _containers.RepeatedCompositeFieldContainer[UnitPublicName]
    def __init__(self, members: _Optional[_Iterable[_Union[MemberPublicName, _Mapping]]] = ..., units: _Optional[_Iterable[_Union[UnitPublicName, _Mapping]]] = ...) -> None: ...

class UnitContact(_message.Message):
    __slots__ = ("unit_id", "community_id", "unit_name", "contact_email", "webhook_url")
    UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    COMMUNITY_ID_FIELD_NUMBER: _ClassVar[int]
    UNIT_NAME_FIELD_NUMBER: _ClassVar[int]
    CONTACT_EMAIL_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_URL_FIELD_NUMBER: _ClassVar[int]
    unit_id: str
    community_id: str
    unit_name: str
    contact_email: str
    webhook_url: str
    def __init__(self, unit_id: _Optional[str] = ..., community_id: _Optional[str] = ..., unit_name: _Optional[str] = ..., contact_email: _Optional[str] = ..., webhook_url: _Optional[str] = ...) -> None: ...

class ScheduleActivityRequest(_message.Message):
    __slots__ = ("activity_id", "unit_id", "community_id", "theme", "title", "starts_at", "ends_at", "capacity")
    ACTIVITY_ID_FIELD_NUMBER: _ClassVar[int]
    UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    COMMUNITY_ID_FIELD_NUMBER: _ClassVar[int]
    THEME_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    STARTS_AT_FIELD_NUMBER: _ClassVar[int]
    ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    activity_id: str
    unit_id: str
    community_id: str
    theme: str
    title: str
    starts_at: str
    ends_at: str
    capacity: int
    def __init__(self, activity_id: _Optional[str] = ..., unit_id: _Optional[str] = ..., community_id: _Optional[str] = ..., theme: _Optional[str] = ..., title: _Optional[str] = ..., starts_at: _Optional[str] = ..., ends_at: _Optional[str] = ..., capacity: _Optional[int] = ...) -> None: ...

class SignUpResidentRequest(_message.Message):
    __slots__ = ("activity_id", "resident_id")
    ACTIVITY_ID_FIELD_NUMBER: _ClassVar[int]
    RESIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    activity_id: str
    resident_id: str
    def __init__(self, activity_id: _Optional[str] = ..., resident_id: _Optional[str] = ...) -> None: ...

class CheckInMemberRequest(_message.Message):
    __slots__ = ("activity_id", "member_id")
    ACTIVITY_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    activity_id: str
    member_id: str
    def __init__(self, activity_id: _Optional[str] = ..., member_id: _Optional[str] = ...) -> None: ...

class CompleteActivityRequest(_message.Message):
    __slots__ = ("activity_id", "hours")
    ACTIVITY_ID_FIELD_NUMBER: _ClassVar[int]
    HOURS_FIELD_NUMBER: _ClassVar[int]
    activity_id: str
    hours: float
    def __init__(self, activity_id: _Optional[str] = ..., hours: _Optional[float] = ...) -> None: ...

class ActivityRef(_message.Message):
    __slots__ = ("activity_id",)
    ACTIVITY_ID_FIELD_NUMBER: _ClassVar[int]
    activity_id: str
    def __init__(self, activity_id: _Optional[str] = ...) -> None: ...

class Activity(_message.Message):
    __slots__ = ("activity_id", "unit_id", "community_id", "theme", "title", "starts_at", "ends_at", "capacity", "status", "residents_signed_up", "members_checked_in", "hours")
    ACTIVITY_ID_FIELD_NUMBER: _ClassVar[int]
    UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    COMMUNITY_ID_FIELD_NUMBER: _ClassVar[int]
    THEME_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    STARTS_AT_FIELD_NUMBER: _ClassVar[int]
    ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RESIDENTS_SIGNED_UP_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_CHECKED_IN_FIELD_NUMBER: _ClassVar[int]
    HOURS_FIELD_NUMBER: _ClassVar[int]
    activity_id: str
    unit_id: str
    community_id: str
    theme: str
    title: str
    starts_at: str
    ends_at: str
    capacity: int
    status: str
    residents_signed_up: _containers.RepeatedScalarFieldContainer[str]
    members_checked_in: _containers.RepeatedScalarFieldContainer[str]
    hours: float
    def __init__(self, activity_id: _Optional[str] = ..., unit_id: _Optional[str] = ..., community_id: _Optional[str] = ..., theme: _Optional[str] = ..., title: _Optional[str] = ..., starts_at: _Optional[str] = ..., ends_at: _Optional[str] = ..., capacity: _Optional[int] = ..., status: _Optional[str] = ..., residents_signed_up: _Optional[_Iterable[str]] = ..., members_checked_in: _Optional[_Iterable[str]] = ..., hours: _Optional[float] = ...) -> None: ...

class ListActivitiesRequest(_message.Message):
    __slots__ = ("community_id", "unit_id", "upcoming_only", "limit")
    COMMUNITY_ID_FIELD_NUMBER: _ClassVar[int]
    UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    UPCOMING_ONLY_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    community_id: str
    unit_id: str
    upcoming_only: bool
    limit: int
    def __init__(self, community_id: _Optional[str] = ..., unit_id: _Optional[str] = ..., upcoming_only: _Optional[bool] = ..., limit: _Optional[int] = ...) -> None: ...

class Activities(_message.Message):
    __slots__ = ("activities",)
    ACTIVITIES_FIELD_NUMBER: _ClassVar[int]
    activities: _containers.RepeatedCompositeFieldContainer[Activity]
    def __init__(self, activities: _Optional[_Iterable[_Union[Activity, _Mapping]]] = ...) -> None: ...

class RosterRequest(_message.Message):
    __slots__ = ("community_id",)
    COMMUNITY_ID_FIELD_NUMBER: _ClassVar[int]
    community_id: str
    def __init__(self, community_id: _Optional[str] = ...) -> None: ...

class RosterUnit(_message.Message):
    __slots__ = ("unit_id", "unit_name", "members_reported")
    UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    UNIT_NAME_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_REPORTED_FIELD_NUMBER: _ClassVar[int]
    unit_id: str
    unit_name: str
    members_reported: int
    def __init__(self, unit_id: _Optional[str] = ..., unit_name: _Optional[str] = ..., members_reported: _Optional[int] = ...) -> None: ...

class Roster(_message.Message):
    __slots__ = ("community_id", "units", "members", "grid_groups")
    COMMUNITY_ID_FIELD_NUMBER: _ClassVar[int]
    UNITS_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    GRID_GROUPS_FIELD_NUMBER: _ClassVar[int]
    community_id: str
    units: _containers.RepeatedCompositeFieldContainer[RosterUnit]
    members: _containers.RepeatedCompositeFieldContainer[Member]
    grid_groups: _containers.RepeatedCompositeFieldContainer[GridGroup]
    def __init__(self, community_id: _Optional[str] = ..., units: _Optional[_Iterable[_Union[RosterUnit, _Mapping]]] = ..., members: _Optional[_Iterable[_Union[Member, _Mapping]]] = ..., grid_groups: _Optional[_Iterable[_Union[GridGroup, _Mapping]]] = ...) -> None: ...
