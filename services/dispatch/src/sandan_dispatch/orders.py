"""Orders: what the branch, the grid leaders and the members do with residents' demands, and how dispatch reacts
to the demands read from intake. Who may do each (access.toml): the secretary in their community, a grid leader
in their grid (and only to members of it), a member only as themselves, a town office on its town's orders at the
town level; offices read in their town or county.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sandan_contracts import Envelope, Event
from sandan_contracts.events import DemandPosted, DemandTextsShredded, DemandWithdrawn, RedoRequested, ServiceRated
from sandan_dispatch.base import DispatchBase
from sandan_dispatch.domain import MAX_HOURS, SHREDDING_CAUSES, Member, Order, Rating, Unit
from sandan_dispatch.keys import CONTEXT
from sandan_dispatch.scope import Rule, anyone
from sandan_eventbus.audit import AuditEntry, history
from sandan_eventbus.auth.principal import Principal, current
from sandan_eventbus.checks import check_choice, check_code, check_id, check_many, check_text
from sandan_eventbus.errors import InvalidArgument, PermissionDenied
from sandan_eventbus.metrics import Pulse
from sandan_eventbus.sealing import Sealer, Unreadable, unseal

log = logging.getLogger("sandan_dispatch")

DISPATCHERS = ("branch", "grid_leader")
STATUSES = ("open", "dispatched", "offered", "accepted", "completed", "cancelled")
# Which dispatcher a call records is the caller's role, not the caller's say.
DISPATCHER_OF_ROLE = {"grid_leader": "grid_leader", "branch_secretary": "branch"}


@dataclass(frozen=True)
class OrderTexts:
    """What was written about the service, opened: the last completion's notes and each escalation's note (by the
    level it went to). "" where nothing was written, and where the demand's texts were shredded (key gone)."""

    notes: str
    escalation_notes: dict[str, str]
    shredded: bool


def _opened(key: bytes | None, demand_id: str, field: str, value: str, shredded: bool) -> str:
    """A sealed text in plaintext ("" when its key is gone); a legacy one (stored before sealing) as it was."""
    if not value or shredded:
        return ""
    try:
        return unseal(key, value, context=CONTEXT, owner_id=demand_id, field_name=field)
    except Unreadable:
        return ""  # the key was destroyed: shredded for good


class Orders(DispatchBase):
    # ---- reading: GetOrder, FindOrderByDemand, GetOrderHistory, ListOrders ----------------------------
    def order(self, order_id: str) -> Order:
        order = self._order(order_id)
        self.guard.require(f"read order {order.order_id}", **self._readers(order, self._caller_as_member()))
        return order

    def order_for_demand(self, demand_id: str) -> Order:
        order = self._order_for_demand(demand_id)
        self.guard.require(f"read order {order.order_id}", **self._readers(order, self._caller_as_member()),
                           service_gateway=anyone)  # Open311: a request's public status
        return order

    def order_history(self, order_id: str) -> list[AuditEntry]:
        """Who did what to the order, and when, in order."""
        order = self._order(order_id)
        self.guard.require(f"read the history of order {order.order_id}",
                           **self._readers(order, self._caller_as_member()),
                           service_gateway=anyone)  # Open311 shows when a request was opened and last changed
        return history(self, order.id)

    def order_texts(self, order_id: str) -> OrderTexts:
        """The order's free texts in plaintext, for whoever may read the order (GetOrder's row); "" once the
        demand's key was destroyed."""
        order = self.order(order_id)
        # once shredded, nothing reads: not even a text stored in plaintext before sealing (which has no key)
        opener = (self.keys.opener(order.demand_id)
                  if (order.notes or order.escalation_notes) and not order.texts_shredded else None)
        key, demand_id = (opener.key if opener else None), order.demand_id
        gone = order.texts_shredded
        return OrderTexts(notes=_opened(key, demand_id, "notes", order.notes, gone),
                          escalation_notes={level: _opened(key, demand_id, "note", note, gone)
                                            for level, note in order.escalation_notes.items()},
                          shredded=order.texts_shredded)

    def orders(self, community_id: str = "", status: str = "") -> list[Order]:
        """The orders the caller may see (filtered, never refused), of a community or all, of a status or all."""
        if community_id:
            check_id("community_id", community_id)
        if status and status not in STATUSES:
            raise InvalidArgument("status", f"must be one of {', '.join(STATUSES)} (or empty for all)")
        self.board.catch_up(self)
        me = self._caller_as_member()
        found = [self._order(oid) for oid in self.board.orders_of(community_id, status)]
        return [o for o in found  # the gateway: any community (Open311 lists requests' public status)
                if self.guard.allowed(**self._readers(o, me), service_gateway=anyone) is not None]

    def _caller_as_member(self) -> Member | None:
        """The calling member's roster record (their grid and teams decide which offers they see)."""
        member_id = current().member_id
        return self._maybe(Member, Member.create_id(member_id)) if member_id else None

    def _readers(self, order: Order, me: Member | None) -> dict[str, Rule]:
        """GetOrder's row: a member sees what they hold (or held) and the offers they may claim; a grid leader
        their grid; the secretary their community; the offices their town or county."""
        def member_sees(who: Principal) -> bool:
            if who.member_id and order.member_id == who.member_id:
                return True
            return (order.status == "offered" and me is not None and me.member_id == who.member_id
                    and order.may_be_claimed_by(me))

        place = self.guard.at(order.community_id, grid_id=order.grid_id)
        return {"member": member_sees, "grid_leader": place, "branch_secretary": place, "town_office": place,
                "county_office": place}

    # ---- the branch and the grid leaders ------------------------------------------------------------
    def dispatch_order(self, order_id: str, member_id: str, dispatched_by: str = "") -> Order:
        """Assign the order to one member. `dispatched_by` follows the caller's role (a grid leader's dispatch
        is the grid leader's); a caller naming another is refused. Without a caller (internal work) it is
        as given, `branch` by default."""
        if dispatched_by:
            check_choice("dispatched_by", dispatched_by, DISPATCHERS)
        check_id("member_id", member_id)

        def command() -> Order:
            order = self._order(order_id)
            member = self._member(member_id)
            with self.guard.acting(
                    f"dispatch order {order.order_id} to member {member_id}",
                    grid_leader=lambda who: self.guard.at(order.community_id, grid_id=order.grid_id)(who)
                    and self.guard.at(member.community_id, grid_id=member.grid_id)(who),
                    branch_secretary=self.guard.at(order.community_id)) as who:
                by = DISPATCHER_OF_ROLE.get(who.acting_role, dispatched_by or "branch")
                if dispatched_by and dispatched_by != by:
                    raise PermissionDenied(f"a {who.acting_role} dispatches as {by}, not as {dispatched_by}")
                order.dispatch(member, by)
                self.save(order)
            return order

        return self.retrying(command)

    def offer_order(self, order_id: str, teams: list[str]) -> Order:
        check_many("teams", teams, 10, check_code)
        return self._on_order(order_id, lambda o: self.guard.acting(
            f"offer order {o.order_id}", grid_leader=self.guard.at(o.community_id, grid_id=o.grid_id),
            branch_secretary=self.guard.at(o.community_id)), lambda o: o.offer(teams))

    def escalate_order(self, order_id: str, reason: str, joint_meeting_units: list[str], note: str = "") -> Order:
        """One level up: the secretary takes their community's order to the town, the town office its town's
        order to the county (with the units of a joint meeting)."""
        check_code("reason", reason)
        note = check_text("note", note, 0, 500, multiline=True)
        check_many("joint_meeting_units", joint_meeting_units, 50, check_id)
        for unit in joint_meeting_units:
            self._get(Unit, Unit.create_id(unit), f"unit {unit} (joint_meeting_units) has not reported")

        def scope(order: Order) -> Any:
            place = self.guard.at(order.community_id)
            return self.guard.acting(
                f"escalate order {order.order_id} from the {order.level} level",
                branch_secretary=lambda who: order.level == "community" and place(who),
                town_office=lambda who: order.level == "town" and place(who))

        def escalate(order: Order) -> None:
            next_due = self.clock() + timedelta(seconds=order.deadline_seconds)
            order.escalate(reason, joint_meeting_units, next_due, note, self._sealer(order, note))

        return self._on_order(order_id, scope, escalate)

    def suggest_members(self, order_id: str, limit: int = 5) -> list[dict[str, Any]]:
        """Rank active members of the order's community: same grid, a team matching the category,
        fewest open orders (就近、方便、高效)."""
        order = self._order(order_id)
        self.guard.require(f"see candidates for order {order.order_id}",
                           grid_leader=self.guard.at(order.community_id, grid_id=order.grid_id),
                           branch_secretary=self.guard.at(order.community_id))
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

    # ---- the members (only as themselves; the order decides whether they may) ------------------------
    def accept_order(self, order_id: str, member_id: str) -> Order:
        check_id("member_id", member_id)
        return self._on_order(order_id, lambda o: self.guard.acting(
            f"accept order {o.order_id} as member {member_id}",
            member=self.guard.claimant(member_id, o, self._maybe(Member, Member.create_id(member_id)))),
            lambda o: o.accept(self._member(member_id)))

    def decline_order(self, order_id: str, member_id: str, reason: str) -> Order:
        check_id("member_id", member_id)
        check_code("reason", reason)
        return self._on_order(order_id, lambda o: self._as_member(member_id, f"decline order {o.order_id}"),
                              lambda o: o.decline(member_id, reason))

    def complete_service(self, order_id: str, member_id: str, hours: float, notes: str = "") -> Order:
        check_id("member_id", member_id)
        notes = check_text("notes", notes, 0, 1000, multiline=True)
        if not 0 < hours <= MAX_HOURS:  # checked before the state: such a request could never succeed
            raise InvalidArgument("hours", f"must be more than 0 and at most {MAX_HOURS:g}")
        return self._on_order(order_id, lambda o: self._as_member(member_id, f"complete order {o.order_id}"),
                              lambda o: o.complete(member_id, hours, notes, self._sealer(o, notes)))

    def _sealer(self, order: Order, text: str) -> Sealer | None:
        """The demand's sealer when there is a text to seal (its key made on first use); none for an empty text,
        nor once the texts were shredded (the order refuses a new text then, rather than a new key being made)."""
        if not text or order.texts_shredded:
            return None
        return self.keys.sealer(order.demand_id)

    def _as_member(self, member_id: str, what: str) -> Any:
        return self.guard.acting(f"{what} as member {member_id}", member=self.guard.themselves(member_id))

    # ---- deadlines (the sweep: internal work) --------------------------------------------------------
    def sweep_deadlines(self) -> list[str]:
        """Mark every order past its deadline overdue (and escalate it); returns their ids."""
        now = self.clock()
        self.board.catch_up(self)
        marked = []
        for order_id in self.board.past_due(now):
            def command(order_id: str = order_id) -> bool:
                order = self._order(order_id)
                if not order.is_overdue(now):
                    return False
                order.mark_overdue(now, now + timedelta(seconds=order.deadline_seconds))
                self.save(order)
                return True

            if self.retrying(command):
                marked.append(order_id)
        return marked

    # ---- forgetting what was written about a demand (retention, erasure) -------------------------------
    def forget_demand_texts(self, demand_id: str, cause: str) -> Order | None:
        """Destroy the demand's data key, so its orders' notes can never be read again, and record it on the order
        (TextsShredded, with the cause; the actor is the caller, SYSTEM for intake's fact). Idempotent. A demand
        dispatch never saw has nothing to forget: None, nothing recorded."""
        check_id("demand_id", demand_id)
        check_choice("cause", cause, SHREDDING_CAUSES)

        def command() -> Order | None:
            order = self._texts_forgotten(demand_id, cause)
            if order is not None:
                self.save(order)
            return order

        with self.guard.acting(f"forget the texts of demand {demand_id}"):  # internal work only
            return self.retrying(command)

    def _texts_forgotten(self, demand_id: str, cause: str) -> Order | None:
        """The key first, then the record: should the save fail, a retry finds no key and records again."""
        self.keys.forget(demand_id)
        order = self._maybe(Order, Order.create_id(demand_id))
        if order is None:
            return None
        order.record_texts_shredded(cause)
        return order

    # ---- reacting to residents' demands (consumed from intake.demands.v1) -----------------------
    def on_demand_event(self, envelope: Envelope, event: Event) -> list[Any]:
        """What a resident's fact means for the orders. Returns changed aggregates; the Inbox saves them
        together with the consumed position."""
        if isinstance(event, DemandPosted):
            if self._maybe(Order, Order.create_id(event.demand_id)) is not None:
                return []
            order = Order(demand_id=event.demand_id, community_id=event.community_id, grid_id=event.grid_id,
                          category=event.category, urgency=event.urgency,
                          special_care=event.special_care or bool(event.care_tags),  # old facts carry tags
                          due_at=event.due_at, deadline_seconds=event.deadline_seconds)
            # saved by the inbox with the fact's position; the line carries the fact's correlation and trace ids
            log.info("opening the order", extra={"fields": {"order_id": str(order.id), "demand_id": event.demand_id,
                                                            "community_id": event.community_id}})
            return [order]
        if isinstance(event, DemandWithdrawn):
            order = self._order_for_demand(event.demand_id)
            order.cancel("demand_withdrawn")
            return [order]
        if isinstance(event, RedoRequested):
            order = self._order_for_demand(event.demand_id)
            if order.redo_count >= event.redo_count:
                return []
            order.reopen(event.redo_count, self.clock() + timedelta(seconds=order.deadline_seconds))
            return [order]
        if isinstance(event, ServiceRated):  # kept for the county's pulse; the order itself does not change
            order = self._maybe(Order, Order.create_id(event.demand_id))
            if order is None:
                return []  # a demand that never became an order here: nothing to rate
            rating = self._maybe(Rating, Rating.create_id(event.demand_id))
            if rating is None:
                return [Rating(demand_id=event.demand_id, community_id=order.community_id, stars=event.stars)]
            rating.change(event.stars)
            return [rating]
        if isinstance(event, DemandTextsShredded):  # intake shredded the demand's texts: forget dispatch's copies
            forgotten = self._texts_forgotten(event.demand_id, event.cause)
            return [forgotten] if forgotten is not None else []  # never seen here: nothing to forget, no refusal
        return []  # CompletionConfirmed: nothing changes for the order

    # ---- the county's pulse (internal: for the metrics) ----------------------------------------
    def pulse(self) -> dict[str, Pulse]:
        """Per community: open, overdue and escalated orders now, completed orders, ratings and their stars."""
        self.board.catch_up(self)
        return self.board.pulse()
