"""The dispatch board: a read model of orders, the roster and activities, folded from the store's notification log.

Queries that span aggregates (a community's orders, who carries how many open orders, which orders are
past due, the members, units and grid groups of a community, its themed party days) read this board. It is
rebuilt from the log at start-up and caught up incrementally before each query, so it never disagrees with the
store for long and needs no writes of its own. In memory on purpose: a county (thousands of orders, ~2,600
members) fits easily; a province would move it to SQL tables with a tracked position (noted in the README).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sandan_dispatch.domain import ACTIVE, Activity, GridGroup, Member, Order, Rating, Unit
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
    unit_id: str = ""


@dataclass
class UnitRow:
    unit_id: str
    community_id: str
    unit_name: str


@dataclass
class GridRow:
    grid_id: str
    community_id: str
    leader_member_id: str = ""


@dataclass
class ActivityRow:
    activity_id: str
    community_id: str
    unit_id: str
    starts_at: datetime
    ends_at: datetime
    status: str = "scheduled"


class Board:
    def __init__(self) -> None:
        self.position = 0
        self.orders: dict[str, OrderRow] = {}
        self.members: dict[str, MemberRow] = {}
        self._member_of_aggregate: dict[str, str] = {}
        self.ratings: dict[str, tuple[str, int]] = {}  # rating aggregate id -> (community, stars)
        self.units: dict[str, UnitRow] = {}
        self.grids: dict[str, GridRow] = {}
        self.activities: dict[str, ActivityRow] = {}  # by aggregate id
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
                self.members[e.member_id] = MemberRow(e.member_id, e.community_id, e.grid_id, list(e.teams),
                                                      unit_id=e.unit_id)
                self._member_of_aggregate[oid] = e.member_id
                return
            row_m = self.members[self._member_of_aggregate[oid]]
            if name == "TeamJoined":
                row_m.teams.append(e.team)
            elif name == "Left":
                row_m.active = False
        elif aggregate == Unit.__name__ and name == "Reported":
            self.units[e.unit_id] = UnitRow(e.unit_id, e.community_id, e.unit_name)
        elif aggregate == GridGroup.__name__:
            if name == "Formed":
                self.grids[oid] = GridRow(e.grid_id, e.community_id)
            elif name == "LeaderAppointed":
                self.grids[oid].leader_member_id = e.member_id
        elif aggregate == Activity.__name__:
            if name == "Scheduled":
                self.activities[oid] = ActivityRow(e.activity_id, e.community_id, e.unit_id, e.starts_at, e.ends_at)
            elif name == "Completed":
                self.activities[oid].status = "completed"

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

    def roster_of(self, community_id: str) -> tuple[list[UnitRow], list[MemberRow], list[GridRow]]:
        """A community's units, members (also those who left) and grid groups, each in id order: copies, taken
        under the lock, so a catch-up running meanwhile changes none of them."""
        with self._lock:
            units = sorted((replace(u) for u in self.units.values() if u.community_id == community_id),
                           key=lambda u: u.unit_id)
            members = sorted((replace(m, teams=list(m.teams)) for m in self.members.values()
                              if m.community_id == community_id), key=lambda m: m.member_id)
            grids = sorted((replace(g) for g in self.grids.values() if g.community_id == community_id),
                           key=lambda g: g.grid_id)
        return units, members, grids

    def activities_of(self, community_id: str, unit_id: str = "", after: datetime | None = None) -> list[str]:
        """Activity aggregate ids of a community (of one unit), soonest first; `after`: only scheduled ones that
        end after it."""
        with self._lock:
            rows = [(a.starts_at, a.activity_id, oid) for oid, a in self.activities.items()
                    if a.community_id == community_id and (not unit_id or a.unit_id == unit_id)
                    and (after is None or (a.status == "scheduled" and a.ends_at > after))]
        return [oid for *_, oid in sorted(rows)]
