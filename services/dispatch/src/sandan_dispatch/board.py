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

from sandan_dispatch.domain import ACTIVE, Member, Order


@dataclass
class OrderRow:
    order_id: str
    community_id: str
    status: str = "open"
    member_id: str | None = None
    due_at: datetime | None = None
    overdue_for: datetime | None = None


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

    def members_of(self, community_id: str) -> list[MemberRow]:
        return [m for m in self.members.values() if m.community_id == community_id and m.active]
