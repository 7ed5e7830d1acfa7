"""The roster and the orders, as pure event-sourced aggregates.

No I/O and no clocks here: times (due dates) come in as arguments from the application.
Refusals raise `sandan_eventbus.errors` classes; their messages name the state that forbids the command.
Each private @event method carries the ids a published fact needs (e.g. demand_id on every order
event), so stored events are self-describing and the relay never has to load an aggregate.

Free text written about a service to a resident (a completion's notes, an escalation's note) is held *sealed*:
the command is handed a `seal(field, value)` function (sandan_eventbus.sealing.Sealer, under the demand's data
key), so events and aggregates keep ciphertext only and never hold a key beyond the command. Destroying the key
(keys.py) makes the texts unreadable for good; events stored before sealing hold plaintext, upcast as legacy.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from sandan_eventbus.checks import check_text, normalised
from sandan_eventbus.errors import FailedPrecondition, InvalidArgument
from sandan_eventbus.sealing import legacy

NS = uuid5(NAMESPACE_URL, "https://sandan.example/dispatch")
LEVELS = ("community", "town", "county")
ACTIVE = ("open", "dispatched", "offered", "accepted")
MAX_HOURS = 72.0
SHREDDING_CAUSES = ("retention", "erasure")
Seal = Callable[[str, str], str]  # (field, plaintext) -> sealed value


def _legacy_text(state: dict[str, Any], name: str) -> None:
    """An upcast's step: a free text stored in plaintext before sealing, marked legacy ("" stays "")."""
    value = state.get(name) or ""
    state[name] = legacy(value) if value.strip() else ""


def _id(kind: str, key: str) -> UUID:
    return uuid5(NS, f"{kind}:{key}")


# ---- roster ------------------------------------------------------------------------------------
class Unit(Aggregate):
    """A work unit's party organisation that reported to a community (单位报到)."""

    @staticmethod
    def create_id(unit_id: str, **_: Any) -> UUID:
        return _id("unit", unit_id)

    @event("Reported")
    def __init__(self, unit_id: str, community_id: str, unit_name: str) -> None:
        self.unit_id = unit_id
        self.community_id = community_id
        self.unit_name = unit_name

    def contact_changed(self, fields: list[str]) -> None:
        """A later report wrote these addresses (contact_email, webhook_url: where the unit's notices go). The
        fact names the fields, never the values: those live in the contacts table only."""
        if fields:
            self._contact_changed(unit_id=self.unit_id, community_id=self.community_id,
                                  fields=sorted(set(fields)))

    @event("ContactChanged")
    def _contact_changed(self, unit_id: str, community_id: str, fields: list[str]) -> None:
        pass  # the addresses are not the aggregate's state: the event is the record of who changed them


class Member(Aggregate):
    """An in-service party member reported to a community (党员报到)."""

    @staticmethod
    def create_id(member_id: str, **_: Any) -> UUID:
        return _id("member", member_id)

    @event("Reported")
    def __init__(self, member_id: str, unit_id: str, community_id: str, grid_id: str,
                 teams: list[str], skills: list[str]) -> None:
        self.member_id = member_id
        self.unit_id = unit_id
        self.community_id = community_id
        self.grid_id = grid_id
        self.teams = list(dict.fromkeys(teams))
        self.skills = list(dict.fromkeys(skills))
        self.active = True

    def join_team(self, team: str) -> None:
        self._require_active()
        if team not in self.teams:  # joining twice is no new fact
            self._team_joined(member_id=self.member_id, community_id=self.community_id, team=team)

    @event("TeamJoined")
    def _team_joined(self, member_id: str, community_id: str, team: str) -> None:
        self.teams.append(team)

    def contact_changed(self, fields: list[str]) -> None:
        """Someone wrote the member's contact after it was first given (the fields given, never the values:
        personal data lives in the contacts table only, where it can be erased)."""
        if fields:
            self._contact_changed(member_id=self.member_id, community_id=self.community_id,
                                  fields=sorted(set(fields)))

    @event("ContactChanged")
    def _contact_changed(self, member_id: str, community_id: str, fields: list[str]) -> None:
        pass  # the contact is not the aggregate's state: the event is the record of who wrote it

    def public_name_changed(self, shown: bool) -> None:
        """The member gave (or changed) their consent to be named on the public notice board, or it was
        withdrawn. Only whether a name is shown: the name itself lives in the contacts database, so that a
        withdrawal removes it for good."""
        if shown:
            self._require_active()
        self._public_name_changed(member_id=self.member_id, community_id=self.community_id, shown=shown)

    @event("PublicNameChanged")
    def _public_name_changed(self, member_id: str, community_id: str, shown: bool) -> None:
        pass  # the name is not the aggregate's state: the event is the record of who gave or withdrew it

    def leave(self, reason: str) -> None:
        self._require_active()
        self._left(member_id=self.member_id, community_id=self.community_id, reason=reason)

    @event("Left")
    def _left(self, member_id: str, community_id: str, reason: str) -> None:
        self.active = False

    def _require_active(self) -> None:
        if not self.active:
            raise FailedPrecondition(f"member {self.member_id} has left")


class GridGroup(Aggregate):
    """A grid's party group (网格党小组); one leader at a time."""

    @staticmethod
    def create_id(grid_id: str, **_: Any) -> UUID:
        return _id("grid", grid_id)

    @event("Formed")
    def __init__(self, grid_id: str, community_id: str) -> None:
        self.grid_id = grid_id
        self.community_id = community_id
        self.leader_member_id: str | None = None

    def appoint_leader(self, member: Member) -> None:
        if not member.active:
            raise FailedPrecondition(f"member {member.member_id} has left")
        if member.grid_id != self.grid_id:
            raise FailedPrecondition(f"member {member.member_id} is in grid {member.grid_id}, not {self.grid_id}")
        if self.leader_member_id != member.member_id:
            self._leader_appointed(grid_id=self.grid_id, community_id=self.community_id,
                                   member_id=member.member_id)

    @event("LeaderAppointed")
    def _leader_appointed(self, grid_id: str, community_id: str, member_id: str) -> None:
        self.leader_member_id = member_id


# ---- orders ------------------------------------------------------------------------------------
class Order(Aggregate):
    """One resident's demand on the branch's desk, from opening to service (or cancellation).

    open -> dispatched (to a member) | offered (to the pool) -> accepted -> completed;
    declined goes back to the pool; a redo reopens a completed order; a withdrawn demand cancels it.
    Escalation moves it up community -> town -> county; a missed deadline marks it overdue and
    escalates one level automatically.
    """

    @staticmethod
    def create_id(demand_id: str, **_: Any) -> UUID:
        return _id("order", demand_id)

    class Opened(Aggregate.Created):
        """v2: `special_care` (whether any special-care tag was given) instead of the tags, which are sensitive
        personal information and stay in intake. v1 events (tags) are read as their flag."""

        class_version = 2
        demand_id: str
        community_id: str
        grid_id: str
        category: str
        urgency: str
        special_care: bool
        due_at: datetime
        deadline_seconds: int

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["special_care"] = bool(state.pop("care_tags", None))

    @event(Opened)
    def __init__(self, demand_id: str, community_id: str, grid_id: str, category: str, urgency: str,
                 special_care: bool, due_at: datetime, deadline_seconds: int) -> None:
        self.demand_id = demand_id
        self.community_id = community_id
        self.grid_id = grid_id
        self.category = category
        self.urgency = urgency
        self.special_care = special_care
        self.due_at = due_at
        self.deadline_seconds = deadline_seconds
        self.status = "open"
        self.level = "community"
        self.member_id: str | None = None
        self.offered_teams: list[str] = []
        self.joint_meeting_units: list[str] = []
        self.redo_count = 0
        self.hours = 0.0
        self.overdue_for: datetime | None = None
        self.notes = ""  # the last completion's notes, sealed ("" when none)
        self.escalation_notes: dict[str, str] = {}  # to which level -> the escalation's note, sealed
        self.texts_shredded = False

    @property
    def order_id(self) -> str:
        return str(self.id)

    # -- dispatch and offer ---------------------------------------------------------------------
    def dispatch(self, member: Member, dispatched_by: str) -> None:
        """The branch (or the grid leader) assigns the order to one member, who must then accept."""
        if self.status not in ("open", "offered", "dispatched"):
            raise FailedPrecondition(self._state())
        self._require_member_of_community(member)
        if self.status == "dispatched" and self.member_id == member.member_id:
            return
        self._dispatched(demand_id=self.demand_id, member_id=member.member_id, dispatched_by=dispatched_by)

    @event("Dispatched")
    def _dispatched(self, demand_id: str, member_id: str, dispatched_by: str) -> None:
        self.status = "dispatched"
        self.member_id = member_id

    def offer(self, teams: list[str]) -> None:
        """Offer to the pool: members of the order's grid, or of one of `teams`, may claim it."""
        if self.status not in ("open", "offered", "dispatched"):
            raise FailedPrecondition(self._state())
        self._offered(demand_id=self.demand_id, grid_id=self.grid_id,
                      teams=list(dict.fromkeys(teams or [self.category])))

    @event("Offered")
    def _offered(self, demand_id: str, grid_id: str, teams: list[str]) -> None:
        self.status = "offered"
        self.member_id = None
        self.offered_teams = teams

    # -- the member's side ----------------------------------------------------------------------
    def may_be_claimed_by(self, member: Member) -> bool:
        return member.active and member.community_id == self.community_id and (
            member.grid_id == self.grid_id or bool(set(member.teams) & set(self.offered_teams))
        )

    def accept(self, member: Member) -> None:
        """党员接单: a dispatched member accepts, or a pool member claims (first claim wins)."""
        if not member.active:
            raise FailedPrecondition(f"member {member.member_id} has left")
        if self.status == "accepted":
            who = "you" if self.member_id == member.member_id else "another member"
            raise FailedPrecondition(f"order already accepted by {who}")
        if self.status == "dispatched":
            if self.member_id != member.member_id:
                raise FailedPrecondition("order is dispatched to another member")
            via = "dispatch"
        elif self.status == "offered":
            if not self.may_be_claimed_by(member):
                raise FailedPrecondition(
                    f"member {member.member_id} is not in grid {self.grid_id} or a team of "
                    f"{', '.join(self.offered_teams)}")
            via = "claim"
        else:
            raise FailedPrecondition(self._state())
        self._accepted(demand_id=self.demand_id, member_id=member.member_id, via=via)

    @event("Accepted")
    def _accepted(self, demand_id: str, member_id: str, via: str) -> None:
        self.status = "accepted"
        self.member_id = member_id

    def decline(self, member_id: str, reason: str) -> None:
        """The dispatched or accepting member gives the order back: it returns to the pool."""
        if self.status not in ("dispatched", "accepted"):
            raise FailedPrecondition(self._state())
        if self.member_id != member_id:
            raise FailedPrecondition(f"order is held by another member, not {member_id}")
        self._declined(demand_id=self.demand_id, member_id=member_id, reason=reason,
                       teams=self.offered_teams or [self.category])

    @event("Declined")
    def _declined(self, demand_id: str, member_id: str, reason: str, teams: list[str]) -> None:
        self.status = "offered"
        self.member_id = None
        self.offered_teams = teams

    def complete(self, member_id: str, hours: float, notes: str = "", seal: Seal | None = None) -> None:
        """`notes` (checked plaintext) are sealed with `seal`, the demand's sealer; empty notes need none."""
        if self.status != "accepted":
            raise FailedPrecondition(self._state())
        if self.member_id != member_id:
            raise FailedPrecondition(f"order is accepted by another member, not {member_id}")
        if not 0 < hours <= MAX_HOURS:
            raise InvalidArgument("hours", f"must be more than 0 and at most {MAX_HOURS:g}")
        self._completed(demand_id=self.demand_id, member_id=member_id, hours=hours,
                        notes=self._sealed("notes", notes, seal))

    class Completed(Aggregate.Event):
        """v2: `notes` sealed under the demand's data key ("" when none). v1 held them in plaintext: upcast as a
        legacy value (readable, but no key to destroy)."""

        class_version = 2
        demand_id: str
        member_id: str
        hours: float
        notes: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            _legacy_text(state, "notes")

    @event(Completed)
    def _completed(self, demand_id: str, member_id: str, hours: float, notes: str) -> None:
        self.status = "completed"
        self.hours = hours
        self.notes = notes

    def _sealed(self, field: str, value: str, seal: Seal | None) -> str:
        if not value:
            return ""
        if self.texts_shredded:
            raise FailedPrecondition(f"cannot keep the {field}: the texts of demand {self.demand_id} were shredded "
                                     "(retention or the resident's erasure)")
        if seal is None:  # the application hands the demand's sealer with every text: never kept in plaintext
            raise FailedPrecondition(f"cannot keep the {field}: no key to seal it with")
        return seal(field, value)

    # -- the resident's side, as read from intake ------------------------------------------------
    def cancel(self, reason: str) -> None:
        if self.status in ("completed", "cancelled"):
            raise FailedPrecondition(self._state())
        self._cancelled(demand_id=self.demand_id, reason=reason)

    @event("Cancelled")
    def _cancelled(self, demand_id: str, reason: str) -> None:
        self.status = "cancelled"

    def reopen(self, redo_count: int, due_at: datetime) -> None:
        """The resident was not satisfied: back to the branch for a redo, with a fresh deadline."""
        if self.status != "completed":
            raise FailedPrecondition(self._state())
        self._reopened(demand_id=self.demand_id, redo_count=redo_count,
                       previous_member_id=self.member_id, due_at=due_at)

    @event("Reopened")
    def _reopened(self, demand_id: str, redo_count: int, previous_member_id: str | None, due_at: datetime) -> None:
        self.status = "open"
        self.member_id = None
        self.offered_teams = []
        self.redo_count = redo_count
        self.due_at = due_at
        self.hours = 0.0

    # -- escalation and deadlines ---------------------------------------------------------------
    def escalate(self, reason: str, joint_meeting_units: list[str], due_at: datetime, note: str = "",
                 seal: Seal | None = None) -> None:
        """Branch -> town committee -> county office; the county convenes a joint meeting of units.

        `reason` is a published code; `note` is the branch's free text, kept in dispatch, sealed with `seal`."""
        if self.status not in ACTIVE:
            raise FailedPrecondition(self._state())
        if self.level == "county":
            raise FailedPrecondition("order is already at the county level")
        if not reason:
            raise InvalidArgument("reason", "is required")
        to_level = LEVELS[LEVELS.index(self.level) + 1]
        if to_level == "county" and not joint_meeting_units:
            raise InvalidArgument("joint_meeting_units", "required when escalating to the county")
        self._escalated(demand_id=self.demand_id, from_level=self.level, to_level=to_level, reason=reason,
                        automatic=False, joint_meeting_units=list(dict.fromkeys(joint_meeting_units)),
                        due_at=due_at, note=self._sealed("note", note, seal))

    class Escalated(Aggregate.Event):
        """v2: `note` sealed under the demand's data key ("" when none). v1 held it in plaintext: upcast as a
        legacy value."""

        class_version = 2
        demand_id: str
        from_level: str
        to_level: str
        reason: str
        automatic: bool
        joint_meeting_units: list[str]
        due_at: datetime
        note: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            _legacy_text(state, "note")

    @event(Escalated)
    def _escalated(self, demand_id: str, from_level: str, to_level: str, reason: str, automatic: bool,
                   joint_meeting_units: list[str], due_at: datetime, note: str = "") -> None:
        self.level = to_level
        self.due_at = due_at
        if joint_meeting_units:
            self.joint_meeting_units = joint_meeting_units
        if note:
            self.escalation_notes = {**self.escalation_notes, to_level: note}

    def is_overdue(self, now: datetime) -> bool:
        return self.status in ACTIVE and self.due_at <= now and self.overdue_for != self.due_at

    def mark_overdue(self, now: datetime, next_due_at: datetime) -> None:
        """A missed deadline is a fact (OrderOverdue) and escalates one level on its own."""
        if not self.is_overdue(now):
            raise FailedPrecondition(f"order is not overdue (status {self.status}, due {self.due_at.isoformat()})")
        held_by = self.member_id if self.status in ("dispatched", "accepted") else None
        self._overdue(demand_id=self.demand_id, level=self.level, due_at=self.due_at, status=self.status,
                      member_id=held_by)
        if self.level != "county":
            self._escalated(demand_id=self.demand_id, from_level=self.level,
                            to_level=LEVELS[LEVELS.index(self.level) + 1],
                            reason="deadline_missed", automatic=True,
                            joint_meeting_units=[], due_at=next_due_at)

    @event("Overdue")
    def _overdue(self, demand_id: str, level: str, due_at: datetime, status: str, member_id: str | None) -> None:
        self.overdue_for = due_at

    # -- forgetting the texts (intake shredded the demand's: retention or the resident's erasure) ----
    def record_texts_shredded(self, cause: str) -> None:
        """The record that the demand's data key was destroyed: its notes can never be read again, and no new
        ones are kept. Idempotent: a second record (intake may shred for both causes) adds nothing."""
        if cause not in SHREDDING_CAUSES:
            raise InvalidArgument("cause", f"must be one of {', '.join(SHREDDING_CAUSES)}")
        if self.texts_shredded:
            return
        fields = (["notes"] if self.notes else []) + (["note"] if self.escalation_notes else [])
        self._texts_shredded(demand_id=self.demand_id, cause=cause, fields=fields)

    @event("TextsShredded")
    def _texts_shredded(self, demand_id: str, cause: str, fields: list[str]) -> None:
        self.texts_shredded = True

    # -- helpers --------------------------------------------------------------------------------
    def _require_member_of_community(self, member: Member) -> None:
        if not member.active:
            raise FailedPrecondition(f"member {member.member_id} has left")
        if member.community_id != self.community_id:
            raise FailedPrecondition(
                f"member {member.member_id} serves community {member.community_id}, not {self.community_id}")

    def _state(self) -> str:
        holder = f" by member {self.member_id}" if self.member_id and self.status != "open" else ""
        return f"order is {self.status}{holder}"


# ---- themed party days (主题党日) ---------------------------------------------------------------
MAX_ACTIVITY_HOURS = 24.0
MAX_CAPACITY = 10_000



class Rating(Aggregate):
    """A resident's rating of a served order, as read from intake (ServiceRated), in the order's community: kept
    for the county's pulse (satisfaction by community, `sandan_rating_stars` / `sandan_ratings`). Internal: never
    published, and not part of the order's history."""

    @staticmethod
    def create_id(demand_id: str, **_: Any) -> UUID:
        return _id("rating", demand_id)

    @event("Given")
    def __init__(self, demand_id: str, community_id: str, stars: int) -> None:
        self.demand_id = demand_id
        self.community_id = community_id
        self.stars = stars

    def change(self, stars: int) -> None:
        if stars != self.stars:  # the same rating again is no new fact
            self._changed(stars=stars)

    @event("Changed")
    def _changed(self, stars: int) -> None:
        self.stars = stars

class Activity(Aggregate):
    """A themed party day: a unit brings an activity to the community it reported to.

    scheduled -> completed. While scheduled, residents sign up (once each, up to the capacity) and
    members of the community check in (once each); completion records the hours once.
    """

    @staticmethod
    def create_id(activity_id: str, **_: Any) -> UUID:
        return _id("activity", activity_id)

    @staticmethod
    def check_terms(title: str, starts_at: datetime, ends_at: datetime, capacity: int) -> None:
        """The schedule's own invariants (no state needed): InvalidArgument naming the field."""
        check_text("title", title, 1, 100)
        for field, value in (("starts_at", starts_at), ("ends_at", ends_at)):
            if value.tzinfo is None or value.utcoffset() is None:
                raise InvalidArgument(field, "must include a UTC offset")
        if not starts_at < ends_at:
            raise InvalidArgument("ends_at", "must be after starts_at")
        if not 1 <= capacity <= MAX_CAPACITY:
            raise InvalidArgument("capacity", f"must be 1-{MAX_CAPACITY}")

    @classmethod
    def schedule(cls, activity_id: str, unit: Unit, community_id: str, theme: str, title: str,
                 starts_at: datetime, ends_at: datetime, capacity: int) -> Activity:
        """The unit brings the activity to the community it reported to (共驻共建), not to another one."""
        cls.check_terms(title, starts_at, ends_at, capacity)
        title = check_text("title", title, 1, 100)
        if unit.community_id != community_id:
            raise FailedPrecondition(f"unit {unit.unit_id} reported to {unit.community_id}, not {community_id}")
        return cls(activity_id=activity_id, unit_id=unit.unit_id, community_id=community_id, theme=theme,
                   title=title, starts_at=starts_at, ends_at=ends_at, capacity=capacity)

    @event("Scheduled")
    def __init__(self, activity_id: str, unit_id: str, community_id: str, theme: str, title: str,
                 starts_at: datetime, ends_at: datetime, capacity: int) -> None:
        self.activity_id = activity_id
        self.unit_id = unit_id
        self.community_id = community_id
        self.theme = theme
        self.title = title
        self.starts_at = starts_at
        self.ends_at = ends_at
        self.capacity = capacity
        self.status = "scheduled"
        self.residents: list[str] = []
        self.members: list[str] = []
        self.hours = 0.0

    def same_terms(self, unit_id: str, community_id: str, theme: str, title: str, starts_at: datetime,
                   ends_at: datetime, capacity: int) -> bool:
        """Whether scheduling again with these terms is a retry of this activity."""
        return (self.unit_id, self.community_id, self.theme, self.title, self.starts_at, self.ends_at,
                self.capacity) == (unit_id, community_id, theme, normalised(title).strip(), starts_at, ends_at,
                                 capacity)

    def sign_up(self, resident_id: str) -> None:
        self._require_scheduled()
        if resident_id in self.residents:  # signing up twice is no new fact
            return
        if len(self.residents) >= self.capacity:
            raise FailedPrecondition(f"activity {self.activity_id} is full ({self.capacity} residents signed up)")
        self._resident_signed_up(activity_id=self.activity_id, community_id=self.community_id,
                                 resident_id=resident_id)

    @event("ResidentSignedUp")
    def _resident_signed_up(self, activity_id: str, community_id: str, resident_id: str) -> None:
        self.residents.append(resident_id)

    def check_in(self, member: Member) -> None:
        """A member of the community checks in; the published fact names the member's own unit."""
        self._require_scheduled()
        if not member.active:
            raise FailedPrecondition(f"member {member.member_id} has left")
        if member.community_id != self.community_id:
            raise FailedPrecondition(
                f"member {member.member_id} serves community {member.community_id}, not {self.community_id}")
        if member.member_id in self.members:  # checking in twice is no new fact
            return
        self._member_checked_in(activity_id=self.activity_id, community_id=self.community_id,
                                member_id=member.member_id, unit_id=member.unit_id)

    @event("MemberCheckedIn")
    def _member_checked_in(self, activity_id: str, community_id: str, member_id: str, unit_id: str) -> None:
        self.members.append(member_id)

    def complete(self, hours: float) -> None:
        self._require_scheduled()
        if not 0 < hours <= MAX_ACTIVITY_HOURS:
            raise InvalidArgument("hours", f"must be more than 0 and at most {MAX_ACTIVITY_HOURS:g}")
        self._completed(activity_id=self.activity_id, community_id=self.community_id, unit_id=self.unit_id,
                        hours=hours, members_checked_in=len(self.members),
                        residents_signed_up=len(self.residents))

    @event("Completed")
    def _completed(self, activity_id: str, community_id: str, unit_id: str, hours: float,
                   members_checked_in: int, residents_signed_up: int) -> None:
        self.status = "completed"
        self.hours = hours

    def _require_scheduled(self) -> None:
        if self.status != "scheduled":
            raise FailedPrecondition(f"activity {self.activity_id} is {self.status}")
