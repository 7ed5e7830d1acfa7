"""Intake's use cases: residents post, withdraw, confirm, rate and ask for redos; the branch keeps the menu.

The clock lives here (injectable for tests), never in the aggregates. Commands are read-modify-save
under optimistic concurrency (`retrying`). The consumer policy `on_order_event` only decides: the
Inbox saves its result together with the Kafka position.

Every use case reads its caller with `current()` and checks their scope (`scope.py`, access.toml's scope text)
before deciding or saving anything; internal work runs as SYSTEM and passes. A check returns the caller as the role
that allowed it (a person may hold several), and what the use case stores is stored under that role (`_acting`).
What a grid worker, a secretary or the gateway does for a resident is stored as done on that resident's behalf.

Personal data is sealed (crypto.py) under the resident's data keys (keys.py): the residents table and the demand
events hold ciphertext only. It is opened here, in the read paths that give it out (GetServiceContact,
GetDemandContact, ExportResidentData, care tags in GetDemand) and nowhere else. Erasure destroys the keys;
retention destroys a closed demand's key after `retention`. Either way each demand then records TextsShredded,
published as DemandTextsShredded, so the other services forget their own copies of its free text.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from sandan_contracts import Envelope, Event
from sandan_contracts.events import OrderAccepted, OrderDeclined, ServiceCompleted
from sandan_eventbus import audit
from sandan_eventbus.auth.principal import SYSTEM, Principal, acting_as, acting_for, current
from sandan_eventbus.auth.scopes import Places
from sandan_eventbus.checks import check_choice, check_code, check_id, check_text, check_uuid
from sandan_eventbus.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from sandan_eventbus.store import ServiceApplication
from sandan_intake.crypto import Unreadable, unseal
from sandan_intake.domain import (
    DEFAULT_DEADLINES,
    ERASURE,
    RETENTION,
    URGENCIES,
    Demand,
    MenuItem,
    Resident,
    ServiceMenu,
    demand_id_for,
    menu_id_for,
)
from sandan_intake.index import DemandIndex, ResidentDemands
from sandan_intake.residents import FIELDS, ResidentRecord, ResidentStore, check_field
from sandan_intake.scope import GATEWAY, HOTLINE, RESIDENT, SECRETARY, IntakeScope

log = logging.getLogger("sandan_intake")
DEFAULT_RETENTION = timedelta(days=1095)
MAX_LISTED = 100  # demands in one page of ListResidentDemands
READABLE, ERASED, SHREDDED = "readable", "erased", "shredded"

A = TypeVar("A")
Clock = Callable[[], datetime]
NOWHERE = ""  # the community of the record an unknown resident id is judged against: no worker's or office's


def utc_now() -> datetime:
    return datetime.now(UTC)


def check_resident_id(resident_id: str) -> str:
    """Resident ids are issued here (RegisterResident) as uuids: anything else (e.g. a member's id) is no resident."""
    check_uuid("resident_id", resident_id, "a resident id (a uuid issued by RegisterResident)")
    return resident_id


@dataclass(frozen=True)
class ServiceContact:
    """What the member holding a demand may know to serve it; given only by `service_contact`. Empty, with
    `erased`, once the resident's data was erased."""

    demand_id: str
    name: str
    phone: str
    address: str
    description: str
    erased: bool = False
    texts_shredded: bool = False


@dataclass(frozen=True)
class DemandTexts:
    """A demand's sealed fields, opened: `state` readable, or erased (the resident's data) or shredded
    (retention), and then every text is None."""

    state: str
    description: str | None = None
    other_text: str | None = None
    care_tags: list[str] | None = None
    comment: str | None = None


@dataclass(frozen=True)
class DemandView:
    """What GetDemand adds to the demand's state: the care tags for those who may see them, and whether the
    resident's data was erased or the demand's texts shredded."""

    demand: Demand
    care_tags: list[str]
    resident_erased: bool
    texts_shredded: bool


@dataclass(frozen=True)
class Release:
    at: datetime
    subject: str
    role: str
    member_id: str | None


@dataclass(frozen=True)
class ExportedDemand:
    demand: Demand
    texts: DemandTexts
    releases: list[Release]


@dataclass(frozen=True)
class ResidentExport:
    record: ResidentRecord
    demands: list[ExportedDemand]
    history: list[audit.AuditEntry]
    exported_at: datetime


@dataclass(frozen=True)
class Erasure:
    resident_id: str
    erased_at: datetime
    keys_destroyed: int


class IntakeApplication(ServiceApplication):
    name = "intake"

    def __init__(self, residents: ResidentStore, store_url: str = "memory://", *,
                 clock: Clock = utc_now, env: dict[str, str] | None = None, places: Places | None = None,
                 retention: timedelta = DEFAULT_RETENTION) -> None:
        super().__init__(store_url, env)
        self.residents = residents
        self.clock = clock
        self.scope = IntakeScope(places)  # places: which town each community is in (town offices' reach)
        self.retention = retention
        self.index = DemandIndex()
        # a resident's demands, newest first: kept where demands are posted; a start reads what the log holds
        # beyond the table (all of it for a store from before the table)
        self.resident_demands = ResidentDemands(residents.engine)
        self.resident_demands.catch_up(self)

    def close(self) -> None:
        super().close()
        self.residents.close()

    # ---- residents (personal data, never published) ------------------------------------------
    def register_resident(self, community_id: str, name: str, phone: str, address: str, *,
                          email: str | None = None, wechat_openid: str | None = None) -> ResidentRecord:
        """A resident registers themselves: the record's id is the one their account is bound to, so a retry
        returns the same record, and a second community for the same account is refused. A grid worker or a
        secretary registers a new resident (a new id) of their community. The fields are sealed under the new
        resident's own data key; the registration (without them) is a stored event."""
        who = current()
        if not self.scope.registers_themselves(who, community_id):
            who = self.scope.register(who, community_id)
            record = self.residents.register(community_id, name, phone, address, email=email,
                                             wechat_openid=wechat_openid,
                                             registered_by=GATEWAY if who.acting_role == GATEWAY else None)
            self._resident(record, who)
            return record
        who = who if who.acting_role == RESIDENT else who.as_role(RESIDENT)
        own = self.scope.own_resident_id(who)
        try:
            record = self.residents.register(community_id, name, phone, address, email=email,
                                             wechat_openid=wechat_openid, resident_id=own)
        except AlreadyExists:  # registered before (or by a concurrent retry)
            record = self.residents.community_of(own)
            if record.community_id != community_id:
                raise AlreadyExists(
                    f"this account is registered already, as a resident of {record.community_id}") from None
        self._resident(record, who)
        return record

    def _reachable(self, resident_id: str, allowed: Callable[[Principal, ResidentRecord], Principal],
                   ) -> tuple[ResidentRecord, Principal]:
        """The resident's record and the caller as `allowed` lets them act on it. An unknown id is refused
        exactly as a resident out of the caller's reach is (the same PERMISSION_DENIED, judged against a record in
        no community), so a worker cannot probe which ids exist; the resident asking about their own id learns it is
        NOT_FOUND (as would a role whose reach covers every community, if one were ever allowed these calls)."""
        who = current()
        try:
            record = self.residents.community_of(resident_id)
        except NotFound:
            allowed(who, ResidentRecord(resident_id, NOWHERE, "", "", ""))
            raise
        return record, allowed(who, record)

    # ---- a resident's rights over their data: correction, export, erasure (PIPL arts. 45-47) -----------------
    def correct_resident(self, resident_id: str, changes: Mapping[str, str | None]) -> list[str]:
        """Replace the given fields of the record (an optional one given empty is removed). Returns the fields
        whose value changed; the record of the correction names them, never their values."""
        check_resident_id(resident_id)
        record, who = self._reachable(resident_id, self.scope.correct)
        unknown = sorted(set(changes) - set(FIELDS))
        if unknown:
            raise InvalidArgument(unknown[0], "is no field of a resident's record")
        if not changes:
            raise InvalidArgument("fields", "give at least one field to correct")
        checked = {f: check_field(f, v) for f, v in changes.items()}  # refused before anything is recorded
        resident = self._resident(record, who)
        if resident.erased or record.erased:
            raise FailedPrecondition("cannot correct: this resident's personal data was erased")
        current_record = self.residents.get(resident_id)
        changed = [f for f in FIELDS if f in checked and checked[f] != getattr(current_record, f)]
        if not changed:
            return []
        # recorded first: a failure after it leaves a record too many, never a change without a record
        resident.correct(changed)
        with self._acting(who, resident_id):
            self.save(resident)
        self.residents.correct(resident_id, {f: checked[f] for f in changed})
        return changed

    def export_resident_data(self, resident_id: str) -> ResidentExport:
        """Everything held about the resident: their record, their demands with every text, the releases of
        their contact, and the history of their record. The export itself is recorded."""
        check_resident_id(resident_id)
        ref, who = self._reachable(resident_id, self.scope.export)
        record = self.residents.get(resident_id)
        self.index.catch_up(self)
        demands = []
        for demand_id in self.index.demands_of(resident_id):
            demand = self._demand(demand_id)
            demands.append(ExportedDemand(demand, self.demand_texts(demand, record), self._releases(demand)))
        resident = self._resident(ref, who)
        resident.record_export()
        with self._acting(who, resident_id):
            self.save(resident)
        return ResidentExport(record, demands, audit.history(self, resident.id), self._now())

    def erase_resident(self, resident_id: str, reason: str) -> Erasure:
        """Erase the resident's personal data (PIPL art. 47): their data keys (their record's and every demand's)
        are destroyed and the record's sealed fields cleared, so nothing they or a worker typed about them can be
        read again, from the tables or from the append-only log. Demands, orders, ratings and points stay, shown
        as erased. Recorded with who asked (the trace) and why (`reason`); then each of their demands records
        that its texts are gone (TextsShredded, cause "erasure": published, by demand id only, so the other
        services forget their copies; no consumer's counts or points change). Again: no-op."""
        check_resident_id(resident_id)
        check_code("reason", reason)
        record, who = self._reachable(resident_id, self.scope.erase)
        resident = self._resident(record, who)
        if not resident.erased:
            # recorded first: should destroying fail, the retention sweep finishes the erasure it finds recorded
            resident.erase(by="system" if who.is_system else who.acting_role, reason=reason)
            with self._acting(who, resident_id):
                self.save(resident)
        destroyed = self.residents.erase(resident_id)
        erased_at = self.residents.community_of(resident_id).erased_at
        assert erased_at is not None
        # after the keys went: the record says they are gone. A failure in between is finished by the sweep.
        shredded = self._record_erased_demands(resident_id, who)
        log.info("resident erased", extra={"fields": {"resident_id": resident_id, "keys_destroyed": destroyed,
                                                      "demands_shredded": len(shredded)}})
        return Erasure(resident_id, erased_at, destroyed)

    def _record_erased_demands(self, resident_id: str, who: Principal) -> list[str]:
        """Each of the erased resident's demands whose shredding is not recorded yet records it (cause "erasure"),
        stored as done by `who`. Returns those recorded now."""
        self.index.catch_up(self)
        recorded = []
        for demand_id in self.index.unshredded_of(resident_id):

            def command(demand_id: str = demand_id) -> bool:
                demand = self._demand(demand_id)
                if demand.texts_shredded:
                    return False  # retention or a concurrent erasure recorded it first
                demand.record_texts_shredded(ERASURE)
                with self._acting(who, resident_id):
                    self.save(demand)
                return True

            if self.retrying(command):
                recorded.append(demand_id)
        return recorded

    # ---- retention -----------------------------------------------------------------------------------------------
    def shred_expired_texts(self) -> list[str]:
        """The periodic job (as SYSTEM): demands closed (withdrawn, confirmed or rated; or served and never closed,
        counted from the service) longer ago than the retention period have their data key destroyed (their texts
        and tags can never be read again) and the demand records it (TextsShredded, published as
        DemandTextsShredded with cause "retention").
        Also finishes an erasure recorded but not carried out (a failure between the steps, or a demand posted
        while it ran): the keys destroyed, then each demand's record (cause "erasure"). Returns the demands
        shredded now for retention."""
        self.index.catch_up(self)
        for resident_id in sorted(self.index.erased_residents):
            if not self.residents.community_of(resident_id).erased:
                self.residents.erase(resident_id)
            if self.index.unshredded_of(resident_id):
                self._record_erased_demands(resident_id, SYSTEM)  # the sweep finishes it, as the system
        shredded = []
        for demand_id in self.index.closed_before(self._now() - self.retention):

            def command(demand_id: str = demand_id) -> bool:
                demand = self._demand(demand_id)
                if demand.texts_shredded:
                    return False
                self.residents.shred_demands([demand_id])  # destroyed first: a failed record is redone next time
                demand.record_texts_shredded(RETENTION)
                self.save(demand)
                return True

            if self.retrying(command):
                shredded.append(demand_id)
        return shredded

    # ---- the service menu ------------------------------------------------------------------
    def publish_menu_item(self, community_id: str, item_id: str, category: str, title: str,
                          deadlines: Mapping[str, int] | None = None) -> MenuItem:
        who = self.scope.menu(current(), community_id)

        def command() -> MenuItem:
            menu = self._menu(community_id) or ServiceMenu.open(community_id)
            item = menu.publish_item(item_id, category, title, deadlines)
            with acting_as(who):
                self.save(menu)
            return item

        return self.retrying(command)

    def retire_menu_item(self, community_id: str, item_id: str) -> MenuItem:
        check_id("item_id", item_id)
        who = self.scope.menu(current(), community_id)

        def command() -> MenuItem:
            menu = self._menu(community_id)
            if menu is None:
                raise NotFound(f"menu item {item_id} not found in community {community_id}")
            item = menu.retire_item(item_id)
            with acting_as(who):
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

        A resident posts for themselves; a grid worker or a secretary for a resident of their community, the
        gateway for a resident it registered (a partner system's caller), and the demand records that they acted
        for that resident."""
        check_text("client_request_id", client_request_id, 1, 100)
        check_resident_id(resident_id)
        check_id("community_id", community_id)
        who = current()
        self.scope.post(who, resident_id, community_id)
        demand_id = demand_id_for(resident_id, client_request_id)
        existing = self._find(demand_id, Demand)
        if existing is not None:
            self.scope.post_again(who, existing, self.residents.community_of(resident_id))
            self.resident_demands.add(resident_id, str(demand_id), existing.created_on)  # lost the first time?
            return existing
        resident, who = self._reachable(resident_id, self.scope.resident)
        if resident.community_id != community_id:
            raise InvalidArgument("community_id", "is not the community the resident registered in")
        if resident.erased:
            raise FailedPrecondition("cannot post: this resident's personal data was erased")
        if who.acting_role == HOTLINE:
            channel = "hotline"  # how it came in follows from who took it: an operator takes calls, whatever is sent
        check_choice("urgency", urgency, URGENCIES)
        menu_item = self._orderable(community_id, menu_item_id) if menu_item_id else None
        deadline = (menu_item.deadlines if menu_item else DEFAULT_DEADLINES)[urgency]
        fields: dict[str, Any] = {
            "client_request_id": client_request_id, "resident_id": resident_id, "community_id": community_id,
            "grid_id": grid_id, "description": description, "urgency": urgency, "channel": channel,
            "due_at": self._now() + timedelta(seconds=deadline), "deadline_seconds": deadline,
            "menu_item": menu_item, "other_text": other_text, "care_tags": care_tags,
        }
        Demand.post(**fields, seal=lambda _f, v: v)  # every refusal before a key is made for the demand
        sealer = self.residents.demand_sealer(resident_id, str(demand_id), create=True)
        assert sealer is not None
        demand = Demand.post(**fields, seal=sealer)
        try:
            with self._acting(who, resident_id):
                self.save(demand)
        except IntegrityError:  # a concurrent retry of the same post saved it first
            return self._demand(demand_id)
        self.resident_demands.add(resident_id, str(demand_id), demand.created_on)
        # ids only (never the resident's data); the line carries the call's correlation and trace ids
        log.info("demand posted", extra={"fields": {"demand_id": str(demand_id), "community_id": community_id,
                                                    "urgency": urgency}})
        return demand

    def withdraw(self, demand_id: str | uuid.UUID, reason: str) -> Demand:
        return self._change(demand_id, lambda d: d.withdraw(reason))

    def confirm_completion(self, demand_id: str | uuid.UUID) -> Demand:
        return self._change(demand_id, lambda d: d.confirm_completion())

    def rate(self, demand_id: str | uuid.UUID, stars: int, comment: str = "") -> Demand:
        """The comment is sealed under the demand's key (refused once that key is gone)."""
        return self._change(demand_id, lambda d: d.rate(
            stars, comment, self.residents.demand_sealer(d.resident_id, str(d.id)) if comment.strip() else None))

    def request_redo(self, demand_id: str | uuid.UUID, reason: str) -> Demand:
        """The new deadline restarts from now, with the demand's original deadline length."""
        return self._change(
            demand_id, lambda d: d.request_redo(reason, self._now() + timedelta(seconds=d.deadline_seconds)))

    def get_demand(self, demand_id: str | uuid.UUID) -> Demand:
        demand = self._demand(demand_id)
        self.scope.read(current(), demand)
        return demand

    def resident_demands_page(self, resident_id: str, limit: int = 20, before: str | None = None
                              ) -> tuple[list[DemandView], str | None]:
        """A resident's demands, newest first, each as GetDemand gives it to the caller (an erased resident's
        stay listed, shown as erased), and the `before` of the next page (None on the last). A resident: their
        own; a grid worker or secretary: a resident of their community."""
        check_resident_id(resident_id)
        if not 1 <= limit <= MAX_LISTED:
            raise InvalidArgument("limit", f"must be 1 to {MAX_LISTED}")
        if before is not None:
            before = str(check_uuid("before", before))
        _record, who = self._reachable(resident_id, self.scope.list_demands)
        try:
            ids, more = self.resident_demands.newest(resident_id, limit, before)
        except ValueError:
            raise InvalidArgument("before", "is no demand of this resident") from None
        views = []
        for demand_id in ids:
            demand = self._demand(demand_id)
            self.scope.read(who, demand)  # as GetDemand (the resident's own, in their community: always allowed)
            views.append(self.view(demand))
        return views, (ids[-1] if more else None)

    def view(self, demand: Demand) -> DemandView:
        """What the caller may see beyond the demand's state: its care tags only for the resident themselves and
        their community's grid workers and secretary (sensitive personal information; others see special_care)."""
        record = self.residents.community_of(demand.resident_id)
        tags: list[str] = []
        if demand.care_tags is not None and self.scope.sees_care_tags(current(), demand):
            tags = self.demand_texts(demand, record).care_tags or []
        return DemandView(demand, tags, record.erased, demand.texts_shredded)

    def demand_texts(self, demand: Demand, record: ResidentRecord | None = None) -> DemandTexts:
        """The demand's sealed fields, opened (for read paths that have checked scope)."""
        record = record or self.residents.community_of(demand.resident_id)
        if record.erased:
            return DemandTexts(ERASED)  # a legacy plaintext value in the log is not given out either
        if demand.texts_shredded:
            return DemandTexts(SHREDDED)
        sealer = self.residents.demand_sealer(demand.resident_id, str(demand.id))
        key = sealer.key if sealer else None

        def opened(field_name: str) -> str | None:
            value = getattr(demand, field_name)
            if value is None:
                return None
            return unseal(key, value, resident_id=demand.resident_id, field_name=field_name)

        try:
            tags = opened("care_tags")
            return DemandTexts(READABLE, opened("description"), opened("other_text"),
                               tags.split(",") if tags else [], opened("comment"))
        except Unreadable:  # the key went between the checks and here (an erasure, a sweep)
            return DemandTexts(SHREDDED)

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
            actor = self.scope.service_contact(who, demand, member_id)
            if actor.acting_role != SECRETARY:  # a secretary's reach is the community, not holding the demand
                demand.ensure_held_by(member_id or "")
            resident = self.residents.get(demand.resident_id)
            if resident.erased:  # nothing to give, so no release to record
                return ServiceContact(str(demand.id), "", "", "", "", erased=True, texts_shredded=True)
            texts = self.demand_texts(demand, resident)
            demand.record_contact_release(actor.subject, actor.acting_role, member_id or None)
            with acting_as(actor):
                self.save(demand)
            return ServiceContact(str(demand.id), resident.name, resident.phone, resident.address,
                                  texts.description or "", texts_shredded=texts.state != READABLE)

        return self.retrying(command)

    def demand_contact(self, demand_id: str | uuid.UUID) -> tuple[Demand, ResidentRecord]:
        """How to reach a demand's resident, for notify's service identity; every release is recorded. An erased
        resident's record comes back empty and `erased` (nothing released, nothing recorded)."""
        who = self.scope.demand_contact(current())

        def command() -> tuple[Demand, ResidentRecord]:
            demand = self._demand(demand_id)
            resident = self.residents.get(demand.resident_id)
            if not resident.erased:
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
    def _resident(self, record: ResidentRecord, who: Principal) -> Resident:
        """The resident's registration aggregate; registered now for a record that has none yet (one stored
        before the aggregate existed, or a registration whose event was not saved)."""
        found = self._find(Resident.create_id(record.resident_id), Resident)
        if found is not None:
            return found
        resident = Resident.register(record.resident_id, record.community_id)
        try:
            with self._acting(who, record.resident_id):
                self.save(resident)
        except IntegrityError:  # a concurrent call registered it first
            found = self._find(Resident.create_id(record.resident_id), Resident)
            assert found is not None
            return found
        return resident

    @contextmanager
    def _acting(self, who: Principal, resident_id: str) -> Iterator[None]:
        """Store as `who` (the caller as the role a scope check allowed), on the resident's behalf when that role
        acts for them."""
        with acting_as(who), acting_for(self.scope.on_behalf_of(who, resident_id)):
            yield

    def _releases(self, demand: Demand) -> list[Release]:
        return [Release(e.timestamp, e.subject, e.role, e.member_id) for e in self.events.get(demand.id)
                if isinstance(e, Demand.ContactReleased)]

    def _now(self) -> datetime:
        now = self.clock()
        if now.tzinfo is None:
            raise ValueError("the clock must return timezone-aware datetimes")
        return now.astimezone(UTC)

    def _change(self, demand_id: str | uuid.UUID, decide: Callable[[Demand], None]) -> Demand:
        who = current()

        def command() -> Demand:
            demand = self._demand(demand_id)
            actor = self.scope.act_on(who, demand)
            decide(demand)
            with self._acting(actor, demand.resident_id):
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
