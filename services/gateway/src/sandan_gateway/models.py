"""The JSON API's shapes (they become the OpenAPI document): requests checked here first (lengths, ranges, the
allowed words), answers copied from the services' protobuf messages field by field.
"""

from __future__ import annotations

from typing import Annotated, Literal, TypeVar, get_args

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from sandan_eventbus.checks import limit_of

IdText = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]
CodeText = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9_]*$")]
Quarter = Annotated[str, StringConstraints(pattern=r"^\d{4}Q[1-4]$")]
Urgency = Literal["urgent", "normal", "routine"]
CareTag = Literal["elderly_alone", "student_hardship", "left_behind_child", "disabled"]
Channel = Literal["app", "hotline", "grid_worker", "walk_in"]
# Why a resident asks for a redo or withdraws: intake records a code (no free text: RequestRedoRequest and
# WithdrawDemandRequest carry `reason`, a code, and nothing else), so the gateway offers this vocabulary.
RedoReason = Literal["not_solved", "partly_done", "poorly_done", "nobody_came", "other"]
WithdrawReason = Literal["solved_myself", "no_longer_needed", "posted_by_mistake", "other"]
REDO_REASONS: tuple[str, ...] = get_args(RedoReason)
WITHDRAW_REASONS: tuple[str, ...] = get_args(WithdrawReason)

M = TypeVar("M", bound=BaseModel)


def most(field: str) -> int:
    """The services' limit on a text field of that name (sandan_eventbus.checks, the one source of truth): the
    models, the page forms and their maxlength take it from there, so the gateway never accepts what a service
    refuses."""
    return limit_of(field).max_chars


def from_pb(model: type[M], message: Message) -> M:
    """A protobuf answer as the API's model (every field, defaults included)."""
    data = MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    return model.model_validate(data)


class Out(BaseModel):
    model_config = ConfigDict(extra="ignore")


# ---- answers ---------------------------------------------------------------------------------------------------
class Me(Out):
    subject: str
    username: str = ""
    roles: list[str]
    county_id: str | None = None
    town_id: str | None = None
    community_id: str | None = None
    grid_id: str | None = None
    unit_id: str | None = None
    member_id: str | None = None
    resident_id: str | None = None
    csrf_token: str = Field("", description="send it as X-CSRF-Token with every state-changing call (sessions)")


class Community(Out):
    community_id: str
    name: str
    town_id: str = ""
    grids: list[str] = []


class Deadlines(Out):
    urgent: int = 0
    normal: int = 0
    routine: int = 0


class MenuItem(Out):
    community_id: str
    item_id: str
    category: str
    title: str
    deadlines: Deadlines | None = None
    retired: bool = False


class Menu(Out):
    items: list[MenuItem] = []


class Resident(Out):
    resident_id: str
    community_id: str


class Demand(Out):
    demand_id: str
    resident_id: str = ""
    community_id: str = ""
    grid_id: str = ""
    category: str = ""
    menu_item_id: str = ""
    urgency: str = ""
    care_tags: list[str] = []
    channel: str = ""
    status: str = Field("", description="posted | accepted | served | confirmed | withdrawn")
    due_at: str = ""
    member_id: str = ""
    redo_count: int = 0
    stars: int = 0
    special_care: bool = Field(False, description="a care tag was given (the tags: only to the resident and "
                                                  "their community's workers)")


class Demands(Out):
    demands: list[Demand] = Field([], description="newest first")
    next_before: str = Field("", description="more were posted earlier: pass it as `before`; empty on the last page")


class HistoryEntry(Out):
    version: int = 0
    at: str = ""
    what: str = Field("", description="e.g. Posted, Accepted, ContactReleased")
    subject: str = Field("", description="who acted: the opaque subject of their token")
    role: str = ""
    on_behalf_of: str = ""
    caused_by: str = ""


class History(Out):
    entries: list[HistoryEntry] = []


class Order(Out):
    order_id: str
    demand_id: str = ""
    community_id: str = ""
    grid_id: str = ""
    category: str = ""
    urgency: str = ""
    status: str = Field("", description="open | dispatched | offered | accepted | completed | cancelled")
    member_id: str = ""
    level: str = ""
    due_at: str = ""
    redo_count: int = 0
    offered_teams: list[str] = []
    joint_meeting_units: list[str] = []
    hours: float = 0
    special_care: bool = Field(False, description="the resident needs special care (which kind stays in intake)")


class Orders(Out):
    orders: list[Order] = []


class Candidate(Out):
    member_id: str
    score: float = 0
    same_grid: bool = False
    team_matches: bool = False
    open_orders: int = 0


class Suggestions(Out):
    candidates: list[Candidate] = []


class ServiceContact(Out):
    demand_id: str
    name: str = ""
    phone: str = ""
    address: str = ""
    description: str = ""


class Member(Out):
    member_id: str
    unit_id: str = ""
    community_id: str = ""
    grid_id: str = ""
    teams: list[str] = []
    skills: list[str] = []
    active: bool = False


class Activity(Out):
    activity_id: str
    unit_id: str = ""
    community_id: str = ""
    theme: str = ""
    title: str = ""
    starts_at: str = ""
    ends_at: str = ""
    capacity: int = 0
    status: str = ""
    residents_signed_up: int = Field(0, description="how many (who signed up is not shown)")
    members_checked_in: list[str] = []
    hours: float = 0


class LedgerEntry(Out):
    entry_id: str
    points: int = 0
    rule: str = ""
    rule_set_version: str = ""
    quarter: str = ""
    occurred_at: str = ""


class Total(Out):
    period: str
    points: int = 0


class Ledger(Out):
    member_id: str
    community_id: str = ""
    unit_id: str = ""
    entries: list[LedgerEntry] = []
    totals: list[Total] = []
    stars: int = 0


class RankedMember(Out):
    rank: int = 0
    member_id: str
    # the public notice only: the name the member consented to show on the board ("" when they did not)
    public_name: str = ""
    points: int = 0
    stars: int = 0
    average_rating: float = 0
    rated_services: int = 0


class Ranking(Out):
    members: list[RankedMember] = []


class Summary(Out):
    members_active: int = 0
    services_completed: int = 0
    hours: float = 0
    response_rate: float = -1
    completion_rate: float = -1
    satisfaction_rate: float = -1
    overdue: int = 0
    escalated: int = 0


class Report(Out):
    scope: str = ""
    scope_id: str = ""
    scope_name: str = ""  # the public unit notice only: the unit's name ("" when dispatch has none)
    quarter: str = ""
    rule_set_version: str = ""
    summary: Summary = Summary()
    ranking: list[RankedMember] = []
    published: bool = False


class Published(Out):
    notice_ids: list[str] = []


# ---- requests ----------------------------------------------------------------------------------------------------
class In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterResidentIn(In):
    community_id: IdText
    name: str = Field(min_length=1, max_length=most("name"))
    phone: str = Field(min_length=3, max_length=most("phone"))
    address: str = Field(min_length=1, max_length=most("address"))


class MenuItemIn(In):
    item_id: IdText
    category: CodeText
    title: str = Field(min_length=1, max_length=most("title"))


class PostDemandIn(In):
    client_request_id: str = Field(min_length=1, max_length=most("client_request_id"),
                                   description="a retry with the same id returns the same demand")
    resident_id: str | None = Field(None, description="a resident's own account: leave out; a worker: the resident")
    community_id: IdText | None = None
    grid_id: IdText | None = None
    menu_item_id: IdText | None = None
    other_text: str | None = Field(None, max_length=most("other_text"), description="a demand off the menu (其他)")
    description: str = Field("", max_length=most("description"))
    urgency: Urgency = "normal"
    care_tags: list[CareTag] = Field(default_factory=list, max_length=4)
    channel: Channel | None = None


class WithdrawIn(In):
    reason: WithdrawReason = Field(description="why (a code; intake keeps no free text for a withdrawal)")


class RateIn(In):
    stars: int = Field(ge=1, le=5)
    comment: str = Field("", max_length=most("comment"))


class RedoIn(In):
    reason: RedoReason = Field(description="why the service was not good enough (a code; intake keeps no free text "
                                           "for a redo)")


class DispatchIn(In):
    member_id: IdText


class OfferIn(In):
    teams: list[CodeText] = Field(default_factory=list, max_length=10)


class DeclineIn(In):
    reason: CodeText = "unavailable"


class CompleteIn(In):
    hours: float = Field(gt=0, le=72)
    notes: str = Field("", max_length=most("notes"))


class EscalateIn(In):
    reason: CodeText
    joint_meeting_units: list[IdText] = Field(default_factory=list, max_length=50)
    note: str = Field("", max_length=most("note"))


class TeamIn(In):
    team: CodeText


class ScheduleIn(In):
    activity_id: IdText
    unit_id: IdText
    community_id: IdText
    theme: CodeText
    title: str = Field(min_length=1, max_length=most("title"))
    starts_at: str = Field(description="RFC 3339 with an offset, e.g. 2026-12-10T09:00:00+08:00")
    ends_at: str
    capacity: int = Field(ge=1, le=10_000)


class SignUpIn(In):
    resident_id: str | None = Field(None, description="a resident's own account: leave out")


class CheckInIn(In):
    member_id: IdText | None = Field(None, description="a member: leave out")


class HoursIn(In):
    hours: float = Field(gt=0, le=24)
