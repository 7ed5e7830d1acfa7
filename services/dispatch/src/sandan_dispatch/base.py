"""What dispatch's three contexts (roster.py, activities.py, orders.py) share: one event store, the board, the
contact tables, the demands' data keys, the clock, the scope guard, and loaders.

The loaders (`_member`, `_order`...) check no scope: they serve use cases that check it themselves. The public
queries (`member`, `order`, `activity`) are use cases too, and check the caller's scope.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from sandan_dispatch.board import Board
from sandan_dispatch.contacts import Contacts
from sandan_dispatch.domain import Activity, GridGroup, Member, Order, Unit
from sandan_dispatch.keys import DemandKeys
from sandan_dispatch.scope import Guard
from sandan_eventbus.auth.scopes import Places
from sandan_eventbus.checks import check_id, check_uuid, quote
from sandan_eventbus.errors import NotFound
from sandan_eventbus.store import ServiceApplication

# What a use case runs its change inside: the scope check for the loaded aggregate (Guard.acting).
Scope = Callable[[Any], AbstractContextManager[Any]]


def utcnow() -> datetime:
    return datetime.now(UTC)


class DispatchBase(ServiceApplication):
    def __init__(self, store_url: str = "memory://", contacts: Contacts | None = None,
                 clock: Callable[[], datetime] = utcnow, env: dict[str, str] | None = None,
                 places: Places | None = None, keys: DemandKeys | None = None) -> None:
        super().__init__(store_url, env)
        self.contacts = contacts
        # The service passes its own (dispatch's database, its KEK); without one, a throwaway store (tests, tools).
        self.keys = keys if keys is not None else DemandKeys.ephemeral()
        self.clock = clock
        self.board = Board()
        self.guard = Guard(places)

    # ---- loaders (no scope) ----------------------------------------------------------------------
    def _unit(self, unit_id: str) -> Unit:
        check_id("unit_id", unit_id)
        return self._get(Unit, Unit.create_id(unit_id), f"unit {unit_id}")

    def _member(self, member_id: str) -> Member:
        check_id("member_id", member_id)
        return self._get(Member, Member.create_id(member_id), f"member {member_id}")

    def _grid(self, grid_id: str) -> GridGroup:
        return self._get(GridGroup, GridGroup.create_id(check_id("grid_id", grid_id)), f"grid {grid_id}")

    def _order(self, order_id: str) -> Order:
        return self._get(Order, check_uuid("order_id", order_id), f"order {quote(order_id)}")

    def _order_for_demand(self, demand_id: str) -> Order:
        check_id("demand_id", demand_id)
        return self._get(Order, Order.create_id(demand_id), f"order for demand {demand_id}")

    def _activity(self, activity_id: str) -> Activity:
        check_id("activity_id", activity_id)
        return self._get(Activity, Activity.create_id(activity_id), f"activity {activity_id}")

    # ---- changing one aggregate, inside its scope check --------------------------------------------
    def _on_order(self, order_id: str, scope: Scope, change: Callable[[Order], None]) -> Order:
        def command() -> Order:
            order = self._order(order_id)
            with scope(order):
                change(order)
                self.save(order)
            return order

        return self.retrying(command)

    def _on_activity(self, activity_id: str, scope: Scope, change: Callable[[Activity], None]) -> Activity:
        def command() -> Activity:
            activity = self._activity(activity_id)
            with scope(activity):
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
