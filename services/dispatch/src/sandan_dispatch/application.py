"""dispatch's use cases: what the branch, the grid leaders and the members can do, and how dispatch
reacts to residents' demands read from intake. No Kafka, SQL or gRPC here: those are at the edges.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from sandan_contracts import Envelope, Event
from sandan_contracts.events import DemandPosted, DemandWithdrawn, RedoRequested
from sandan_dispatch.board import Board
from sandan_dispatch.contacts import MemberContacts
from sandan_dispatch.domain import MAX_HOURS, GridGroup, Member, Order, Unit
from sandan_eventbus.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from sandan_eventbus.store import ServiceApplication

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_CODE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_PHONE = re.compile(r"^\+?[0-9][0-9 -]{5,30}$")
DISPATCHERS = ("branch", "grid_leader")
STATUSES = ("open", "dispatched", "offered", "accepted", "completed", "cancelled")


def utcnow() -> datetime:
    return datetime.now(UTC)


def check_id(field: str, value: str) -> str:
    if not _ID.match(value or ""):
        raise InvalidArgument(field, "must be 1-64 letters, digits or _.:- (an opaque id)")
    return value


def check_many(field: str, values: list[str], limit: int, check: Callable[[str, str], str]) -> list[str]:
    """Validate a list against the contract's limit (a stored fact the relay could not publish would stall it)."""
    if len(values) > limit:
        raise InvalidArgument(field, f"at most {limit} entries")
    return [check(field, v) for v in values]


def check_code(field: str, value: str) -> str:
    if not _CODE.match(value or ""):
        raise InvalidArgument(field, "must be a lowercase code like medical or legal_aid")
    return value


class DispatchApplication(ServiceApplication):
    name = "dispatch"

    def __init__(self, store_url: str = "memory://", contacts: MemberContacts | None = None,
                 clock: Callable[[], datetime] = utcnow, env: dict[str, str] | None = None) -> None:
        super().__init__(store_url, env)
        self.contacts = contacts
        self.clock = clock
        self.board = Board()

    # ---- roster (双报到) ----------------------------------------------------------------------
    def report_unit(self, unit_id: str, community_id: str, unit_name: str) -> Unit:
        check_id("unit_id", unit_id)
        check_id("community_id", community_id)
        if not 1 <= len(unit_name.strip()) <= 100:
            raise InvalidArgument("unit_name", "must be 1-100 characters")
        return self.retrying(self._report_unit, unit_id, community_id, unit_name)

    def _report_unit(self, unit_id: str, community_id: str, unit_name: str) -> Unit:
        existing = self._maybe(Unit, Unit.create_id(unit_id))
        if existing is not None:
            if existing.community_id != community_id:
                raise AlreadyExists(f"unit {unit_id} already reported to {existing.community_id}")
            return existing  # reporting again is a retry, not a new fact
        unit = Unit(unit_id=unit_id, community_id=community_id, unit_name=unit_name.strip())
        self.save(unit)
        return unit

    def report_member(self, member_id: str, unit_id: str, community_id: str, grid_id: str,
                      teams: list[str], skills: list[str], name: str = "", phone: str = "") -> Member:
        check_id("member_id", member_id)
        check_id("unit_id", unit_id)
        check_id("community_id", community_id)
        check_id("grid_id", grid_id)
        check_many("teams", teams, 10, check_code)
        check_many("skills", skills, 20, check_code)
        if name and not 1 <= len(name.strip()) <= 100:
            raise InvalidArgument("name", "must be 1-100 characters")
        if phone and not _PHONE.match(phone):
            raise InvalidArgument("phone", "must be a phone number")
        self._get(Unit, Unit.create_id(unit_id), f"unit {unit_id} has not reported")
        return self.retrying(self._report_member, member_id, unit_id, community_id, grid_id, teams, skills,
                             name.strip(), phone)

    def _report_member(self, member_id: str, unit_id: str, community_id: str, grid_id: str,
                       teams: list[str], skills: list[str], name: str, phone: str) -> Member:
        existing = self._maybe(Member, Member.create_id(member_id))
        if existing is not None and existing.active:
            raise AlreadyExists(f"member {member_id} already reported to {existing.community_id}")
        if existing is not None:
            raise FailedPrecondition(f"member {member_id} has left; re-reporting needs a new member id")
        if self.contacts is not None and name and phone:
            self.contacts.put(member_id, name, phone)  # personal data first, then the fact
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

    # ---- orders: what the branch and members do ---------------------------------------------
    def order(self, order_id: str) -> Order:
        try:
            oid = UUID(order_id)
        except (ValueError, TypeError):
            raise InvalidArgument("order_id", "must be a uuid") from None
        return self._get(Order, oid, f"order {order_id}")

    def order_for_demand(self, demand_id: str) -> Order:
        check_id("demand_id", demand_id)
        return self._get(Order, Order.create_id(demand_id), f"order for demand {demand_id}")

    def orders(self, community_id: str = "", status: str = "") -> list[Order]:
        if status and status not in STATUSES:
            raise InvalidArgument("status", f"must be one of {', '.join(STATUSES)} (or empty for all)")
        self.board.catch_up(self)
        return [self.order(oid) for oid in self.board.orders_of(community_id, status)]

    def dispatch_order(self, order_id: str, member_id: str, dispatched_by: str = "branch") -> Order:
        if dispatched_by not in DISPATCHERS:
            raise InvalidArgument("dispatched_by", f"must be one of {', '.join(DISPATCHERS)}")
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
        if len(notes) > 1000:
            raise InvalidArgument("notes", "must be at most 1000 characters")
        if not 0 < hours <= MAX_HOURS:  # checked before the state: such a request could never succeed
            raise InvalidArgument("hours", f"must be more than 0 and at most {MAX_HOURS:g}")
        return self._on_order(order_id, lambda o: o.complete(member_id, hours, notes))

    def escalate_order(self, order_id: str, reason: str, joint_meeting_units: list[str], note: str = "") -> Order:
        check_code("reason", reason)
        if len(note) > 500:
            raise InvalidArgument("note", "must be at most 500 characters")
        check_many("joint_meeting_units", joint_meeting_units, 50, check_id)
        for unit in joint_meeting_units:
            self._get(Unit, Unit.create_id(unit), f"unit {unit} (joint_meeting_units) has not reported")

        def escalate(order: Order) -> None:
            next_due = self.clock() + timedelta(seconds=order.deadline_seconds)
            order.escalate(reason, joint_meeting_units, next_due, note.strip())

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
