"""The dispatch board: a read model of orders and members, folded from the store's notification log.

Queries that span aggregates (a community's orders, who carries how many open orders, which orders are
past due, the members of a community) read this board. It is rebuilt from the log at start-up and caught
up incrementally before each query, so it never disagrees with the store for long and needs no writes of
its own. In memory on purpose: a county (thousands of orders, ~2,600 members) fits easily; a province
would move it to SQL tables with a tracked position (noted in the README).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sandan_dispatch.domain import ACTIVE, Member, Order, Rating
from sandan_eventbus.metrics import Pulse


@dataclass
class OrderRow:
    order_id: str
    community_id: str
    status: str = "open"
    member_id: str | None = None
    due_at: datetime | None = None
    overdue_for: datetime | None = None
    level: str = "community"
    missed: bool = False  # missed a deadline since it was (re)opened


@dataclass
class MemberRow:
    member_id: str
    community_id: str
    grid_id: str
    teams: list[str] = field(default_factory=list)
    active: bool = True


class Board:
    def __init__(self) -> None:
        self.position = 0
        self.orders: dict[str, OrderRow] = {}
        self.members: dict[str, MemberRow] = {}
        self._member_of_aggregate: dict[str, str] = {}
        self.ratings: dict[str, tuple[str, int]] = {}  # rating aggregate id -> (community, stars)
        self._lock = threading.Lock()

    def catch_up(self, app: Any) -> None:
        with self._lock:
            while True:
                batch = app.recorder.select_notifications(start=self.position + 1, limit=app.log_section_size)
                if not batch:
                    return
                for notification in batch:
                    self.apply(app.mapper.to_domain_event(notification))
                self.position = batch[-1].id

    def apply(self, e: Any) -> None:
        oid = str(e.originator_id)
        # Aggregates share eventsourcing's base Event class, so tell them apart by qualified name.
        aggregate, _, name = type(e).__qualname__.partition(".")
        if aggregate == Order.__name__:
            if name == "Opened":
                self.orders[oid] = OrderRow(oid, e.community_id, due_at=e.due_at)
                return
            row = self.orders[oid]
            row.status, row.member_id = {
                "Dispatched": ("dispatched", getattr(e, "member_id", None)),
                "Offered": ("offered", None),
                "Accepted": ("accepted", getattr(e, "member_id", None)),
                "Declined": ("offered", None),
                "Completed": ("completed", row.member_id),
                "Cancelled": ("cancelled", row.member_id),
                "Reopened": ("open", None),
            }.get(name, (row.status, row.member_id))
            if name in ("Reopened", "Escalated"):
                row.due_at = e.due_at
            elif name == "Overdue":
                row.overdue_for = e.due_at
            if name == "Escalated":
                row.level = e.to_level
            row.missed = (row.missed or name == "Overdue") and name != "Reopened"
        elif aggregate == Rating.__name__:
            community = e.community_id if name == "Given" else self.ratings[oid][0]
            self.ratings[oid] = (community, e.stars)
        elif aggregate == Member.__name__:
            if name == "Reported":
                self.members[e.member_id] = MemberRow(e.member_id, e.community_id, e.grid_id, list(e.teams))
                self._member_of_aggregate[oid] = e.member_id
                return
            row_m = self.members[self._member_of_aggregate[oid]]
            if name == "TeamJoined":
                row_m.teams.append(e.team)
            elif name == "Left":
                row_m.active = False

    # -- queries (call catch_up first) -------------------------------------------------------------
    def open_load(self, member_id: str) -> int:
        held = ("dispatched", "accepted")
        return sum(1 for o in self.orders.values() if o.member_id == member_id and o.status in held)

    def held_by(self, member_id: str) -> list[str]:
        return [o.order_id for o in self.orders.values()
                if o.member_id == member_id and o.status in ("dispatched", "accepted")]

    def orders_of(self, community_id: str, status: str = "") -> list[str]:
        return [o.order_id for o in self.orders.values()
                if (not community_id or o.community_id == community_id) and (not status or o.status == status)]

    def past_due(self, now: datetime) -> list[str]:
        return [o.order_id for o in self.orders.values()
                if o.status in ACTIVE and o.due_at and o.due_at <= now and o.overdue_for != o.due_at]

    def pulse(self) -> dict[str, Pulse]:
        """Per community: open (not completed or cancelled), overdue (open, past a deadline since (re)opened) and
        escalated (open, above the community level) orders, completed orders, ratings and their stars."""
        out: dict[str, Pulse] = {}
        with self._lock:
            for o in self.orders.values():
                p = out.setdefault(o.community_id, Pulse())
                if o.status in ACTIVE:
                    p.open += 1
                    p.overdue += o.missed
                    p.escalated += o.level != "community"
                elif o.status == "completed":
                    p.completed += 1
            for community, stars in self.ratings.values():
                p = out.setdefault(community, Pulse())
                p.ratings += 1
                p.stars += stars
        return out

    def members_of(self, community_id: str) -> list[MemberRow]:
        return [m for m in self.members.values() if m.community_id == community_id and m.active]
