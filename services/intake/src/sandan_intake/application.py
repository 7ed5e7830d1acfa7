"""Intake's use cases: residents post, withdraw, confirm, rate and ask for redos; the branch keeps the menu.

The clock lives here (injectable for tests), never in the aggregates. Commands are read-modify-save
under optimistic concurrency (`retrying`). The consumer policy `on_order_event` only decides: the
Inbox saves its result together with the Kafka position.

Every use case reads its caller with `current()` and checks their scope (`scope.py`, access.toml's scope text)
before deciding or saving anything; internal work runs as SYSTEM and passes. What a grid worker or a secretary
does for a resident is stored as done on that resident's behalf (`acting_for`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from sandan_contracts import Envelope, Event
from sandan_contracts.events import OrderAccepted, OrderDeclined, ServiceCompleted
from sandan_eventbus import audit
from sandan_eventbus.auth.principal import acting_for, current
from sandan_eventbus.auth.scopes import Places
from sandan_eventbus.checks import check_choice, check_id, check_text, check_uuid
from sandan_eventbus.errors import AlreadyExists, InvalidArgument, NotFound
from sandan_eventbus.store import ServiceApplication
from sandan_intake.domain import DEFAULT_DEADLINES, URGENCIES, Demand, MenuItem, ServiceMenu, demand_id_for, menu_id_for
from sandan_intake.residents import Resident, ResidentStore
from sandan_intake.scope import RESIDENT, SECRETARY, IntakeScope

A = TypeVar("A")
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def check_resident_id(resident_id: str) -> str:
    """Resident ids are issued here (RegisterResident) as uuids: anything else (e.g. a member's id) is no resident."""
    check_uuid("resident_id", resident_id, "a resident id (a uuid issued by RegisterResident)")
    return resident_id


@dataclass(frozen=True)
class ServiceContact:
    """What the member holding a demand may know to serve it; given only by `service_contact`."""

    demand_id: str
    name: str
    phone: str
    address: str
    description: str


class IntakeApplication(ServiceApplication):
    name = "intake"

    def __init__(self, residents: ResidentStore, store_url: str = "memory://", *,
                 clock: Clock = utc_now, env: dict[str, str] | None = None, places: Places | None = None) -> None:
        super().__init__(store_url, env)
        self.residents = residents
        self.clock = clock
        self.scope = IntakeScope(places)  # places: which town each community is in (town offices' reach)

    def close(self) -> None:
        super().close()
        self.residents.close()

    # ---- residents (personal data, never published) ------------------------------------------
    def register_resident(self, community_id: str, name: str, phone: str, address: str, *,
                          email: str | None = None, wechat_openid: str | None = None) -> Resident:
        """A resident registers themselves: the record's id is the one their account is bound to, so a retry
        returns the same record, and a second community for the same account is refused. A grid worker or a
        secretary registers a new resident (a new id) of their community."""
        who = current()
        if who.is_system or who.acting_role != RESIDENT:
            self.scope.register(who, community_id)
            return self.residents.register(community_id, name, phone, address, email=email,
                                           wechat_openid=wechat_openid)
        own = self.scope.own_resident_id(who)
        try:
            return self.residents.register(community_id, name, phone, address, email=email,
                                           wechat_openid=wechat_openid, resident_id=own)
        except AlreadyExists:  # registered before (or by a concurrent retry)
            existing = self.residents.get(own)
        if existing.community_id != community_id:
            raise AlreadyExists(f"this account is registered already, as a resident of {existing.community_id}")
        return existing

    # ---- the service menu ------------------------------------------------------------------
    def publish_menu_item(self, community_id: str, item_id: str, category: str, title: str,
                          deadlines: Mapping[str, int] | None = None) -> MenuItem:
        self.scope.menu(current(), community_id)

        def command() -> MenuItem:
            menu = self._menu(community_id) or ServiceMenu.open(community_id)
            item = menu.publish_item(item_id, category, title, deadlines)
            self.save(menu)
            return item

        return self.retrying(command)

    def retire_menu_item(self, community_id: str, item_id: str) -> MenuItem:
        check_id("item_id", item_id)
        self.scope.menu(current(), community_id)

        def command() -> MenuItem:
            menu = self._menu(community_id)
            if menu is None:
                raise NotFound(f"menu item {item_id} not found in community {community_id}")
            item = menu.retire_item(item_id)
            self.save(menu)
            return item

        return self.retrying(command)

    def menu(self, community_id: str) -> list[MenuItem]:
        """Every item, retired ones included (flagged), in publishing order. Public: anyone may read any menu."""
        menu = self._menu(community_id)
        return list(menu.items.values()) if menu else []

    # ---- demands -----------------------------------------------------------------------------
    def post_demand(self, *, client_request_id: str, resident_id: str, community_id: str, grid_id: str,
                    description: str, urgency: str, channel: str, menu_item_id: str | None = None,
                    other_text: str | None = None, care_tags: Iterable[str] = ()) -> Demand:
        """Idempotent: a retry with the same client_request_id returns the demand the first call posted.

        A resident posts for themselves; a grid worker or a secretary for a resident of their community, and
        the demand records that they acted for that resident."""
        check_text("client_request_id", client_request_id, 1, 100)
        check_resident_id(resident_id)
        check_id("community_id", community_id)
        who = current()
        self.scope.post(who, resident_id, community_id)
        demand_id = demand_id_for(resident_id, client_request_id)
        existing = self._find(demand_id, Demand)
        if existing is not None:
            self.scope.act_on(who, existing)
            return existing
        resident = self.residents.get(resident_id)
        self.scope.resident(who, resident)
        if resident.community_id != community_id:
            raise InvalidArgument("community_id", "is not the community the resident registered in")
        check_choice("urgency", urgency, URGENCIES)
        menu_item = self._orderable(community_id, menu_item_id) if menu_item_id else None
        deadline = (menu_item.deadlines if menu_item else DEFAULT_DEADLINES)[urgency]
        demand = Demand.post(
            client_request_id=client_request_id, resident_id=resident_id, community_id=community_id,
            grid_id=grid_id, description=description, urgency=urgency, channel=channel,
            due_at=self._now() + timedelta(seconds=deadline), deadline_seconds=deadline,
            menu_item=menu_item, other_text=other_text, care_tags=care_tags,
        )
        try:
            with acting_for(self.scope.on_behalf_of(who, resident_id)):
                self.save(demand)
        except IntegrityError:  # a concurrent retry of the same post saved it first
            return self._demand(demand_id)
        return demand

    def withdraw(self, demand_id: str | uuid.UUID, reason: str) -> Demand:
        return self._change(demand_id, lambda d: d.withdraw(reason))

    def confirm_completion(self, demand_id: str | uuid.UUID) -> Demand:
        return self._change(demand_id, lambda d: d.confirm_completion())

    def rate(self, demand_id: str | uuid.UUID, stars: int, comment: str = "") -> Demand:
        return self._change(demand_id, lambda d: d.rate(stars, comment))

    def request_redo(self, demand_id: str | uuid.UUID, reason: str) -> Demand:
        """The new deadline restarts from now, with the demand's original deadline length."""
        return self._change(
            demand_id, lambda d: d.request_redo(reason, self._now() + timedelta(seconds=d.deadline_seconds)))

    def get_demand(self, demand_id: str | uuid.UUID) -> Demand:
        demand = self._demand(demand_id)
        self.scope.read(current(), demand)
        return demand

    def demand_history(self, demand_id: str | uuid.UUID) -> list[audit.AuditEntry]:
        """Who did what to the demand, and when, in order: contact releases included."""
        demand = self._demand(demand_id)
        self.scope.history(current(), demand)
        return audit.history(self, demand.id)

    def service_contact(self, demand_id: str | uuid.UUID, member_id: str | None) -> ServiceContact:
        """The resident's contact and the description, for the member holding the open demand (`member_id`:
        their own) or the community's secretary. Every release is recorded on the demand."""
        who = current()

        def command() -> ServiceContact:
            demand = self._demand(demand_id)
            self.scope.service_contact(who, demand, member_id)
            if who.acting_role != SECRETARY:  # a secretary's reach is the community, not holding the demand
                demand.ensure_held_by(member_id or "")
            resident = self.residents.get(demand.resident_id)
            demand.record_contact_release(who.subject, who.acting_role, member_id or None)
            self.save(demand)
            return ServiceContact(str(demand.id), resident.name, resident.phone, resident.address,
                                  demand.description)

        return self.retrying(command)

    def demand_contact(self, demand_id: str | uuid.UUID) -> tuple[Demand, Resident]:
        """How to reach a demand's resident, for notify's service identity; every release is recorded."""
        who = current()
        self.scope.demand_contact(who)

        def command() -> tuple[Demand, Resident]:
            demand = self._demand(demand_id)
            resident = self.residents.get(demand.resident_id)
            demand.record_contact_release(who.subject, who.acting_role)
            self.save(demand)
            return demand, resident

        return self.retrying(command)

    # ---- consumer policy: dispatch.orders.v1 --------------------------------------------------
    def on_order_event(self, envelope: Envelope, event: Event) -> list[Any]:
        """What a dispatch fact means for the demand. Returns changed aggregates; never saves."""
        if isinstance(event, OrderAccepted):
            demand = self._demand(event.demand_id)
            demand.record_acceptance(event.member_id)
        elif isinstance(event, OrderDeclined):
            demand = self._demand(event.demand_id)
            demand.clear_acceptance(event.member_id)
        elif isinstance(event, ServiceCompleted):
            demand = self._demand(event.demand_id)
            demand.record_service(event.member_id, event.hours)
        else:
            return []
        return [demand]

    # ---- helpers -------------------------------------------------------------------------------
    def _now(self) -> datetime:
        now = self.clock()
        if now.tzinfo is None:
            raise ValueError("the clock must return timezone-aware datetimes")
        return now.astimezone(UTC)

    def _change(self, demand_id: str | uuid.UUID, decide: Callable[[Demand], None]) -> Demand:
        who = current()

        def command() -> Demand:
            demand = self._demand(demand_id)
            self.scope.act_on(who, demand)
            decide(demand)
            with acting_for(self.scope.on_behalf_of(who, demand.resident_id)):
                self.save(demand)
            return demand

        return self.retrying(command)

    def _demand(self, demand_id: str | uuid.UUID) -> Demand:
        """The demand, whoever asks: for use cases that check scope themselves, and for the consumer policy."""
        demand = self._find(self._uuid("demand_id", demand_id), Demand)
        if demand is None:
            raise NotFound(f"demand {demand_id} not found")
        return demand

    def _menu(self, community_id: str) -> ServiceMenu | None:
        check_id("community_id", community_id)
        return self._find(menu_id_for(community_id), ServiceMenu)

    def _orderable(self, community_id: str, item_id: str) -> MenuItem:
        check_id("menu_item_id", item_id)
        menu = self._menu(community_id)
        if menu is None:
            raise NotFound(f"menu item {item_id} not found in community {community_id}")
        return menu.orderable(item_id)

    def _find(self, aggregate_id: uuid.UUID, kind: type[A]) -> A | None:
        try:
            aggregate = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        # A menu's id passed as a demand id (or the reverse) is simply not found.
        return aggregate if isinstance(aggregate, kind) else None

    @staticmethod
    def _uuid(field: str, value: str | uuid.UUID) -> uuid.UUID:
        return check_uuid(field, value)
