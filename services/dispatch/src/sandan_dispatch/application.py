"""dispatch's use cases: what the branch, the grid leaders and the members can do, and how dispatch
reacts to residents' demands read from intake. No Kafka, SQL or gRPC here: those are at the edges.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from sandan_contracts import Envelope, Event
from sandan_contracts.events import DemandPosted, DemandWithdrawn, RedoRequested
from sandan_dispatch.board import Board
from sandan_dispatch.contacts import Contacts
from sandan_dispatch.domain import MAX_ACTIVITY_HOURS, MAX_HOURS, Activity, GridGroup, Member, Order, Unit
from sandan_eventbus.checks import (
    check_choice,
    check_code,
    check_email,
    check_id,
    check_many,
    check_openid,
    check_phone,
    check_text,
    check_utc,
    check_uuid,
    check_webhook_url,
    quote,
)
from sandan_eventbus.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from sandan_eventbus.store import ServiceApplication

DISPATCHERS = ("branch", "grid_leader")
STATUSES = ("open", "dispatched", "offered", "accepted", "completed", "cancelled")
RESIDENT = "a resident id (a uuid issued by intake)"


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class MemberContactCard:
    """What notify may learn about a member (the authorised GetMemberContact call)."""

    member_id: str
    community_id: str
    unit_id: str
    name: str = ""
    phone: str = ""
    email: str = ""
    wechat_openid: str = ""


@dataclass(frozen=True)
class UnitContactCard:
    """Where a unit organisation's notices go (the authorised GetUnitContact call)."""

    unit_id: str
    community_id: str
    unit_name: str
    contact_email: str = ""
    webhook_url: str = ""


class DispatchApplication(ServiceApplication):
    name = "dispatch"
    # An activity collects up to 10,000 sign-ups; a snapshot every 100 events keeps loading it cheap.
    snapshotting_intervals = {Activity: 100}

    def __init__(self, store_url: str = "memory://", contacts: Contacts | None = None,
                 clock: Callable[[], datetime] = utcnow, env: dict[str, str] | None = None) -> None:
        super().__init__(store_url, env)
        self.contacts = contacts
        self.clock = clock
        self.board = Board()

    # ---- roster (双报到) ----------------------------------------------------------------------
    def report_unit(self, unit_id: str, community_id: str, unit_name: str, contact_email: str = "",
                    webhook_url: str = "") -> Unit:
        """A unit reports; its addresses (optional) go to the contacts table, never into an event.
        Reporting again to the same community is a retry; addresses given then replace the stored ones."""
        check_id("unit_id", unit_id)
        check_id("community_id", community_id)
        unit_name = check_text("unit_name", unit_name, 1, 100)
        contact_email, webhook_url = contact_email.strip(), webhook_url.strip()
        if contact_email:
            check_email("contact_email", contact_email)
        if webhook_url:
            check_webhook_url("webhook_url", webhook_url)
        return self.retrying(self._report_unit, unit_id, community_id, unit_name, contact_email, webhook_url)

    def _report_unit(self, unit_id: str, community_id: str, unit_name: str, contact_email: str,
                     webhook_url: str) -> Unit:
        existing = self._maybe(Unit, Unit.create_id(unit_id))
        if existing is not None and existing.community_id != community_id:
            raise AlreadyExists(f"unit {unit_id} already reported to {existing.community_id}")
        if self.contacts is not None and (contact_email or webhook_url):
            self.contacts.put_unit(unit_id, contact_email, webhook_url)  # the addresses first, then the fact
        if existing is not None:
            return existing  # reporting again is a retry, not a new fact
        unit = Unit(unit_id=unit_id, community_id=community_id, unit_name=unit_name)
        self.save(unit)
        return unit

    def unit(self, unit_id: str) -> Unit:
        check_id("unit_id", unit_id)
        return self._get(Unit, Unit.create_id(unit_id), f"unit {unit_id}")

    def report_member(self, member_id: str, unit_id: str, community_id: str, grid_id: str,
                      teams: list[str], skills: list[str], name: str = "", phone: str = "", email: str = "",
                      wechat_openid: str = "") -> Member:
        check_id("member_id", member_id)
        check_id("unit_id", unit_id)
        check_id("community_id", community_id)
        check_id("grid_id", grid_id)
        check_many("teams", teams, 10, check_code)
        check_many("skills", skills, 20, check_code)
        name = check_text("name", name, 1, 100) if name else ""
        phone, email, wechat_openid = phone.strip(), email.strip(), wechat_openid.strip()
        if phone:
            check_phone("phone", phone)
        if email:
            check_email("email", email)
        if wechat_openid:
            check_openid("wechat_openid", wechat_openid)
        self._get(Unit, Unit.create_id(unit_id), f"unit {unit_id} has not reported")
        contact = (name, phone, email, wechat_openid)
        return self.retrying(self._report_member, member_id, unit_id, community_id, grid_id, teams, skills, contact)

    def _report_member(self, member_id: str, unit_id: str, community_id: str, grid_id: str,
                       teams: list[str], skills: list[str], contact: tuple[str, str, str, str]) -> Member:
        existing = self._maybe(Member, Member.create_id(member_id))
        if existing is not None and existing.active:
            raise AlreadyExists(f"member {member_id} already reported to {existing.community_id}")
        if existing is not None:
            raise FailedPrecondition(f"member {member_id} has left; re-reporting needs a new member id")
        if self.contacts is not None and any(contact):
            self.contacts.put_member(member_id, *contact)  # personal data first, then the fact
        member = Member(member_id=member_id, unit_id=unit_id, community_id=community_id, grid_id=grid_id,
                        teams=teams, skills=skills)
        self.save(member)
        return member

    def join_team(self, member_id: str, team: str) -> Member:
        check_code("team", team)

        def command() -> Member:
            member = self.member(member_id)
            member.join_team(team)
            self.save(member)
            return member

        return self.retrying(command)

    def member_leaves(self, member_id: str, reason: str) -> Member:
        """The member leaves the community; orders they still hold go back to the pool."""
        check_code("reason", reason)

        def command() -> Member:
            member = self.member(member_id)
            member.leave(reason)
            self.save(member)
            return member

        member = self.retrying(command)
        self.board.catch_up(self)
        for order_id in self.board.held_by(member_id):
            self._on_order(order_id, lambda o: o.decline(member_id, "member_left") if o.member_id == member_id
                           else None)
        return member

    def form_grid_group(self, community_id: str, grid_id: str) -> GridGroup:
        check_id("community_id", community_id)
        check_id("grid_id", grid_id)
        return self.retrying(self._form_grid_group, community_id, grid_id)

    def _form_grid_group(self, community_id: str, grid_id: str) -> GridGroup:
        existing = self._maybe(GridGroup, GridGroup.create_id(grid_id))
        if existing is not None:
            if existing.community_id != community_id:
                raise AlreadyExists(f"grid {grid_id} belongs to {existing.community_id}")
            return existing
        group = GridGroup(grid_id=grid_id, community_id=community_id)
        self.save(group)
        return group

    def appoint_grid_leader(self, grid_id: str, member_id: str) -> GridGroup:
        def command() -> GridGroup:
            group = self._get(GridGroup, GridGroup.create_id(check_id("grid_id", grid_id)), f"grid {grid_id}")
            group.appoint_leader(self.member(member_id))
            self.save(group)
            return group

        return self.retrying(command)

    def member(self, member_id: str) -> Member:
        check_id("member_id", member_id)
        return self._get(Member, Member.create_id(member_id), f"member {member_id}")

    # ---- contacts for notify (served only through the token-guarded calls) ----------------------
    def member_contact(self, member_id: str) -> MemberContactCard:
        """How to reach a member; empty fields when the member gave none."""
        member = self.member(member_id)
        found = self.contacts.member(member_id) if self.contacts is not None else None
        if found is None:
            return MemberContactCard(member.member_id, member.community_id, member.unit_id)
        return MemberContactCard(member.member_id, member.community_id, member.unit_id, found.name, found.phone,
                                 found.email or "", found.wechat_openid or "")

    def unit_contact(self, unit_id: str) -> UnitContactCard:
        """Where a unit's notices go; empty addresses when the unit gave none."""
        unit = self.unit(unit_id)
        found = self.contacts.unit(unit_id) if self.contacts is not None else None
        return UnitContactCard(unit.unit_id, unit.community_id, unit.unit_name,
                               (found.contact_email or "") if found else "", (found.webhook_url or "") if found else "")

    # ---- themed party days (主题党日) -------------------------------------------------------------
    def schedule_activity(self, activity_id: str, unit_id: str, community_id: str, theme: str, title: str,
                          starts_at: datetime, ends_at: datetime, capacity: int) -> Activity:
        """A unit schedules an activity in the community it reported to. Scheduling the same activity id
        again with the same terms is a retry; with other terms it is refused."""
        check_id("activity_id", activity_id)
        check_id("unit_id", unit_id)
        check_id("community_id", community_id)
        check_code("theme", theme)
        title = check_text("title", title, 1, 100)
        starts_at, ends_at = check_utc("starts_at", starts_at), check_utc("ends_at", ends_at)
        Activity.check_terms(title, starts_at, ends_at, capacity)
        unit = self._get(Unit, Unit.create_id(unit_id), f"unit {unit_id} has not reported")

        def command() -> Activity:
            existing = self._maybe(Activity, Activity.create_id(activity_id))
            if existing is not None:
                if not existing.same_terms(unit_id, community_id, theme, title, starts_at, ends_at, capacity):
                    raise AlreadyExists(f"activity {activity_id} is already scheduled with other terms")
                return existing
            activity = Activity.schedule(activity_id, unit, community_id, theme, title, starts_at, ends_at,
                                         capacity)
            self.save(activity)
            return activity

        return self.retrying(command)

    def activity(self, activity_id: str) -> Activity:
        check_id("activity_id", activity_id)
        return self._get(Activity, Activity.create_id(activity_id), f"activity {activity_id}")

    def sign_up_resident(self, activity_id: str, resident_id: str) -> Activity:
        """A resident signs up; signing up again changes nothing. Resident ids are the uuids intake issues, never
        a member's id (a member id that happens to be a uuid is recognised by the roster)."""
        resident_id = str(check_uuid("resident_id", resident_id, RESIDENT))  # one spelling: intake's
        if self._maybe(Member, Member.create_id(resident_id)) is not None:
            raise InvalidArgument("resident_id", f"is a member's id, not {RESIDENT}")
        return self._on_activity(activity_id, lambda a: a.sign_up(resident_id))

    def check_in_member(self, activity_id: str, member_id: str) -> Activity:
        """A member of the activity's community checks in; checking in again changes nothing."""
        check_id("member_id", member_id)
        return self._on_activity(activity_id, lambda a: a.check_in(self.member(member_id)))

    def complete_activity(self, activity_id: str, hours: float) -> Activity:
        if not 0 < hours <= MAX_ACTIVITY_HOURS:  # before the state: such a request could never succeed
            raise InvalidArgument("hours", f"must be more than 0 and at most {MAX_ACTIVITY_HOURS:g}")
        return self._on_activity(activity_id, lambda a: a.complete(hours))

    # ---- orders: what the branch and members do ---------------------------------------------
    def order(self, order_id: str) -> Order:
        return self._get(Order, check_uuid("order_id", order_id), f"order {quote(order_id)}")

    def order_for_demand(self, demand_id: str) -> Order:
        check_id("demand_id", demand_id)
        return self._get(Order, Order.create_id(demand_id), f"order for demand {demand_id}")

    def orders(self, community_id: str = "", status: str = "") -> list[Order]:
        if community_id:
            check_id("community_id", community_id)
        if status and status not in STATUSES:
            raise InvalidArgument("status", f"must be one of {', '.join(STATUSES)} (or empty for all)")
        self.board.catch_up(self)
        return [self.order(oid) for oid in self.board.orders_of(community_id, status)]

    def dispatch_order(self, order_id: str, member_id: str, dispatched_by: str = "branch") -> Order:
        check_choice("dispatched_by", dispatched_by, DISPATCHERS)
        return self._on_order(order_id, lambda o: o.dispatch(self.member(member_id), dispatched_by))

    def offer_order(self, order_id: str, teams: list[str]) -> Order:
        check_many("teams", teams, 10, check_code)
        return self._on_order(order_id, lambda o: o.offer(teams))

    def accept_order(self, order_id: str, member_id: str) -> Order:
        return self._on_order(order_id, lambda o: o.accept(self.member(member_id)))

    def decline_order(self, order_id: str, member_id: str, reason: str) -> Order:
        check_id("member_id", member_id)
        check_code("reason", reason)
        return self._on_order(order_id, lambda o: o.decline(member_id, reason))

    def complete_service(self, order_id: str, member_id: str, hours: float, notes: str = "") -> Order:
        check_id("member_id", member_id)
        notes = check_text("notes", notes, 0, 1000, multiline=True)
        if not 0 < hours <= MAX_HOURS:  # checked before the state: such a request could never succeed
            raise InvalidArgument("hours", f"must be more than 0 and at most {MAX_HOURS:g}")
        return self._on_order(order_id, lambda o: o.complete(member_id, hours, notes))

    def escalate_order(self, order_id: str, reason: str, joint_meeting_units: list[str], note: str = "") -> Order:
        check_code("reason", reason)
        note = check_text("note", note, 0, 500, multiline=True)
        check_many("joint_meeting_units", joint_meeting_units, 50, check_id)
        for unit in joint_meeting_units:
            self._get(Unit, Unit.create_id(unit), f"unit {unit} (joint_meeting_units) has not reported")

        def escalate(order: Order) -> None:
            next_due = self.clock() + timedelta(seconds=order.deadline_seconds)
            order.escalate(reason, joint_meeting_units, next_due, note)

        return self._on_order(order_id, escalate)

    def suggest_members(self, order_id: str, limit: int = 5) -> list[dict[str, Any]]:
        """Rank active members of the order's community: same grid, a team matching the category,
        fewest open orders (就近、方便、高效)."""
        order = self.order(order_id)
        self.board.catch_up(self)
        ranked = []
        for m in self.board.members_of(order.community_id):
            same_grid = m.grid_id == order.grid_id
            team_matches = order.category in m.teams or bool(set(m.teams) & set(order.offered_teams))
            load = self.board.open_load(m.member_id)
            score = 2.0 * same_grid + 1.5 * team_matches - 0.5 * load
            ranked.append({"member_id": m.member_id, "score": score, "same_grid": same_grid,
                           "team_matches": team_matches, "open_orders": load})
        ranked.sort(key=lambda c: (-c["score"], c["open_orders"], c["member_id"]))
        return ranked[: max(1, min(limit or 5, 50))]

    def sweep_deadlines(self) -> list[str]:
        """Mark every order past its deadline overdue (and escalate it); returns their ids."""
        now = self.clock()
        self.board.catch_up(self)
        marked = []
        for order_id in self.board.past_due(now):
            def command(order_id: str = order_id) -> bool:
                order = self.order(order_id)
                if not order.is_overdue(now):
                    return False
                order.mark_overdue(now, now + timedelta(seconds=order.deadline_seconds))
                self.save(order)
                return True

            if self.retrying(command):
                marked.append(order_id)
        return marked

    # ---- reacting to residents' demands (consumed from intake.demands.v1) -----------------------
    def on_demand_event(self, envelope: Envelope, event: Event) -> list[Any]:
        """What a resident's fact means for the orders. Returns changed aggregates; the Inbox saves them
        together with the consumed position."""
        if isinstance(event, DemandPosted):
            if self._maybe(Order, Order.create_id(event.demand_id)) is not None:
                return []
            return [Order(demand_id=event.demand_id, community_id=event.community_id, grid_id=event.grid_id,
                          category=event.category, urgency=event.urgency, care_tags=list(event.care_tags),
                          due_at=event.due_at, deadline_seconds=event.deadline_seconds)]
        if isinstance(event, DemandWithdrawn):
            order = self.order_for_demand(event.demand_id)
            order.cancel("demand_withdrawn")
            return [order]
        if isinstance(event, RedoRequested):
            order = self.order_for_demand(event.demand_id)
            if order.redo_count >= event.redo_count:
                return []
            order.reopen(event.redo_count, self.clock() + timedelta(seconds=order.deadline_seconds))
            return [order]
        return []  # CompletionConfirmed, ServiceRated: nothing changes for the order

    # ---- helpers ------------------------------------------------------------------------------
    def _on_order(self, order_id: str, change: Callable[[Order], None]) -> Order:
        def command() -> Order:
            order = self.order(order_id)
            change(order)
            self.save(order)
            return order

        return self.retrying(command)

    def _on_activity(self, activity_id: str, change: Callable[[Activity], None]) -> Activity:
        def command() -> Activity:
            activity = self.activity(activity_id)
            change(activity)
            self.save(activity)  # saving no new events (a repeated sign-up) writes nothing
            return activity

        return self.retrying(command)

    def _maybe(self, cls: type, aggregate_id: UUID) -> Any:
        try:
            aggregate = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        if not isinstance(aggregate, cls):
            return None
        return aggregate

    def _get(self, cls: type, aggregate_id: UUID, what: str) -> Any:
        aggregate = self._maybe(cls, aggregate_id)
        if aggregate is None:
            raise NotFound(f"{what} not found" if "not" not in what else what)
        return aggregate
