"""Intake's aggregates: the community's service menu (服务菜单) and a resident's demand (居民点单).

Pure: no I/O and no clock. Public commands validate and refuse (raising `sandan_eventbus.errors`);
the private `@event` methods only change state, because they run again on every replay.
Stored event class names (e.g. `Demand.Posted`) are part of the store's format: never rename them; change an
event's fields with `class_version` and an `upcast_vX_vY` (the store keeps every old event as it was written).

What a resident or a worker typed about a resident (a demand's description and other text, its care tags, the
rating comment) is held *sealed*: the commands are handed a `seal(field, value)` function (crypto.Sealer, the
demand's own data key) and the events carry ciphertext only, so the append-only log forgets them when the key is
destroyed (erasure, retention). Validation happens on the plaintext, before sealing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from eventsourcing.domain import Aggregate, event

from sandan_eventbus.checks import check_choice, check_code, check_id, check_text, quote
from sandan_eventbus.errors import FailedPrecondition, InvalidArgument, NotFound
from sandan_intake.crypto import LEGACY

# Fixed namespaces: ids derived from them must stay stable forever.
MENU_NAMESPACE = uuid.UUID("5b0f3c2e-6a43-4f8e-9a52-2f7d3c1e9b10")
DEMAND_NAMESPACE = uuid.UUID("9d4e7a61-1c2b-4d3f-8e5a-6b7c8d9e0f21")

URGENCIES = ("urgent", "normal", "routine")
CHANNELS = ("app", "hotline", "grid_worker", "walk_in")
CARE_TAGS = ("elderly_alone", "student_hardship", "left_behind_child", "disabled")
DEFAULT_DEADLINES: dict[str, int] = {"urgent": 2 * 3600, "normal": 24 * 3600, "routine": 7 * 24 * 3600}
MAX_DEADLINE_SECONDS = 90 * 24 * 3600  # the contract's bound on deadline_seconds
OTHER = "other"
MAX_REDOS = 10  # the contract's bound on redo_count

POSTED, ACCEPTED, SERVED, CONFIRMED, WITHDRAWN = "posted", "accepted", "served", "confirmed", "withdrawn"
CLOSED = (CONFIRMED, WITHDRAWN)
# Whose texts retention may shred: closed, or served (the service is done; a demand served but never confirmed,
# rated or not, would otherwise keep its texts for ever). The lifecycle is unchanged: only the texts go.
SHREDDABLE = (*CLOSED, SERVED)
# The demand's sealed fields: what retention shreds and what an export opens.
SEALED_FIELDS = ("description", "other_text", "care_tags", "comment")
# Why a demand's key was destroyed: the published `DemandTextsShredded.cause` (contracts: intake.py).
RETENTION, ERASURE = "retention", "erasure"
SHRED_CAUSES = (RETENTION, ERASURE)
Seal = Callable[[str, str], str]  # (field, plaintext) -> ciphertext, under the demand's data key

# Value checks come from the input policy (`sandan_eventbus.checks`): the shapes the published contract accepts,
# so nothing stored here can fail to publish, and free text without control or bidi override characters.


def check_deadlines(deadlines: Mapping[str, int] | None) -> dict[str, int]:
    merged = dict(DEFAULT_DEADLINES)
    for urgency, seconds in (deadlines or {}).items():
        check_choice("deadlines", urgency, URGENCIES)
        if not isinstance(seconds, int) or not 0 < seconds <= MAX_DEADLINE_SECONDS:
            raise InvalidArgument(f"deadlines.{urgency}", f"must be 1 to {MAX_DEADLINE_SECONDS} seconds")
        merged[urgency] = seconds
    return merged


def demand_id_for(resident_id: str, client_request_id: str) -> uuid.UUID:
    """A retried post (same resident, same client request id) names the same demand."""
    return uuid.uuid5(DEMAND_NAMESPACE, f"{resident_id}:{client_request_id}")


def menu_id_for(community_id: str) -> uuid.UUID:
    return uuid.uuid5(MENU_NAMESPACE, community_id)


# ---- the service menu ------------------------------------------------------------------------
@dataclass(frozen=True)
class MenuItem:
    community_id: str
    item_id: str
    category: str
    title: str
    deadlines: dict[str, int]
    retired: bool = False


class ServiceMenu(Aggregate):
    """One per community: what residents may order, and how soon each urgency must be served."""

    @staticmethod
    def create_id(community_id: str) -> uuid.UUID:
        return menu_id_for(community_id)

    @event("Opened")
    def __init__(self, community_id: str) -> None:
        self.community_id = community_id
        self.items: dict[str, MenuItem] = {}

    @classmethod
    def open(cls, community_id: str) -> ServiceMenu:
        return cls(community_id=check_id("community_id", community_id))

    def publish_item(self, item_id: str, category: str, title: str,
                     deadlines: Mapping[str, int] | None = None) -> MenuItem:
        """Add an item, or update (and re-publish, if retired) an existing one."""
        check_id("item_id", item_id)
        check_code("category", category)
        if category == OTHER:
            raise InvalidArgument("category", f"'{OTHER}' is reserved for demands off the menu")
        self._item_published(item_id=item_id, category=category, title=check_text("title", title, 1, 100),
                             deadlines=check_deadlines(deadlines))
        return self.items[item_id]

    @event("ItemPublished")
    def _item_published(self, item_id: str, category: str, title: str, deadlines: dict[str, int]) -> None:
        self.items[item_id] = MenuItem(self.community_id, item_id, category, title, dict(deadlines))

    def retire_item(self, item_id: str) -> MenuItem:
        item = self.item(item_id)
        if not item.retired:  # retiring twice changes nothing: a retried call succeeds
            self._item_retired(item_id=item_id)
        return self.items[item_id]

    @event("ItemRetired")
    def _item_retired(self, item_id: str) -> None:
        item = self.items[item_id]
        self.items[item_id] = MenuItem(item.community_id, item.item_id, item.category, item.title,
                                       item.deadlines, retired=True)

    def item(self, item_id: str) -> MenuItem:
        try:
            return self.items[item_id]
        except KeyError:
            raise NotFound(f"menu item {quote(item_id)} not found in community {self.community_id}") from None

    def orderable(self, item_id: str) -> MenuItem:
        item = self.item(item_id)
        if item.retired:
            raise FailedPrecondition(f"cannot order: menu item {item_id} is retired")
        return item


# ---- a resident's demand ---------------------------------------------------------------------
class Demand(Aggregate):
    """posted -> accepted -> served -> confirmed; withdrawn before service; a redo goes back to posted.

    The description, the other text, the care tags and the rating comment are sealed (never published; only
    whether any care tag was given goes out, as `special_care`).
    """

    @staticmethod
    def create_id(resident_id: str, client_request_id: str) -> uuid.UUID:
        return demand_id_for(resident_id, client_request_id)

    class Posted(Aggregate.Created):
        """v2: `description`, `other_text` and `care_tags` (comma-joined) sealed, `special_care` in the clear.
        v1 (before encryption) held them in plaintext: upcast to legacy values (`plain:`), which still read."""

        class_version = 2
        client_request_id: str
        resident_id: str
        community_id: str
        grid_id: str
        category: str
        other_text: str | None
        menu_item_id: str | None
        description: str
        urgency: str
        care_tags: str | None
        special_care: bool
        channel: str
        due_at: datetime
        deadline_seconds: int

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            tags = state.get("care_tags") or []
            state["care_tags"] = LEGACY + ",".join(tags) if tags else None
            state["special_care"] = bool(tags)
            state["description"] = LEGACY + state["description"]
            if state.get("other_text") is not None:
                state["other_text"] = LEGACY + state["other_text"]

    @event(Posted)
    def __init__(self, *, client_request_id: str, resident_id: str, community_id: str, grid_id: str,
                 category: str, other_text: str | None, menu_item_id: str | None, description: str,
                 urgency: str, care_tags: str | None, special_care: bool, channel: str, due_at: datetime,
                 deadline_seconds: int) -> None:
        self.client_request_id = client_request_id
        self.resident_id = resident_id
        self.community_id = community_id
        self.grid_id = grid_id
        self.category = category
        self.other_text = other_text
        self.menu_item_id = menu_item_id
        self.description = description
        self.urgency = urgency
        self.care_tags = care_tags  # sealed (comma-joined codes), None when no tag was given
        self.special_care = special_care
        self.channel = channel
        self.due_at = due_at
        self.deadline_seconds = deadline_seconds
        self.status = POSTED
        self.member_id: str | None = None
        self.served_hours: float | None = None
        self.redo_count = 0
        self.stars: int | None = None
        self.comment: str | None = None
        self.withdraw_reason: str | None = None
        self.texts_shredded = False

    @classmethod
    def post(cls, *, client_request_id: str, resident_id: str, community_id: str, grid_id: str,
             description: str, urgency: str, channel: str, due_at: datetime, deadline_seconds: int, seal: Seal,
             menu_item: MenuItem | None = None, other_text: str | None = None,
             care_tags: Iterable[str] = ()) -> Demand:
        """Place an order from a menu item, or as "other" with a short text (not both). The texts and tags are
        checked, then sealed with `seal`."""
        check_text("client_request_id", client_request_id, 1, 100)
        check_id("resident_id", resident_id)
        check_id("community_id", community_id)
        check_id("grid_id", grid_id)
        if menu_item is not None and other_text:
            raise InvalidArgument("other_text", "give either a menu item or other_text, not both")
        if menu_item is None:
            other_text = check_text("other_text", other_text, 1, 100)
            category, menu_item_id = OTHER, None
        else:
            if menu_item.community_id != community_id:
                raise InvalidArgument("menu_item_id", "is not on this community's menu")
            if menu_item.retired:
                raise FailedPrecondition(f"cannot order: menu item {menu_item.item_id} is retired")
            category, menu_item_id, other_text = menu_item.category, menu_item.item_id, None
        tags = list(dict.fromkeys(care_tags))  # de-duplicated, order kept
        for tag in tags:
            check_choice("care_tags", tag, CARE_TAGS)
        if due_at.utcoffset() != timedelta(0):
            raise InvalidArgument("due_at", "must be a UTC datetime")
        if not 0 < deadline_seconds <= MAX_DEADLINE_SECONDS:
            raise InvalidArgument("deadline_seconds", f"must be 1 to {MAX_DEADLINE_SECONDS}")
        description = check_text("description", description, 5, 500, multiline=True)
        urgency = check_choice("urgency", urgency, URGENCIES)
        channel = check_choice("channel", channel, CHANNELS)
        return cls(
            client_request_id=client_request_id,
            resident_id=resident_id,
            community_id=community_id,
            grid_id=grid_id,
            category=category,
            other_text=seal("other_text", other_text) if other_text else None,
            menu_item_id=menu_item_id,
            description=seal("description", description),
            urgency=urgency,
            care_tags=seal("care_tags", ",".join(tags)) if tags else None,
            special_care=bool(tags),
            channel=channel,
            due_at=due_at,
            deadline_seconds=deadline_seconds,
        )

    # -- the resident's commands --
    def withdraw(self, reason: str) -> None:
        check_code("reason", reason)
        self._require({POSTED, ACCEPTED}, "withdraw")
        self._withdrawn(reason=reason)

    @event("Withdrawn")
    def _withdrawn(self, reason: str) -> None:
        self.status = WITHDRAWN
        self.withdraw_reason = reason

    def confirm_completion(self) -> None:
        self._require({SERVED}, "confirm completion")
        self._completion_confirmed(member_id=self.member_id)

    @event("CompletionConfirmed")
    def _completion_confirmed(self, member_id: str | None) -> None:
        self.status = CONFIRMED

    def rate(self, stars: int, comment: str = "", seal: Seal | None = None) -> None:
        """`seal`: the demand's sealer; None when its key is gone (erased or shredded): then no comment is kept."""
        if not isinstance(stars, int) or not 1 <= stars <= 5:
            raise InvalidArgument("stars", "must be 1 to 5")
        comment = check_text("comment", comment, 0, 300, multiline=True)
        self._require({SERVED, CONFIRMED}, "rate")
        if self.stars is not None:
            raise FailedPrecondition("cannot rate: demand is already rated")
        if comment and (seal is None or self.texts_shredded):
            raise FailedPrecondition("cannot keep a comment: this demand's personal data was erased or shredded")
        self._rated(stars=stars, comment=seal("comment", comment) if comment and seal else None,
                    member_id=self.member_id)

    class Rated(Aggregate.Event):
        """v2: `comment` sealed. v1 held it in plaintext: upcast as a legacy value."""

        class_version = 2
        stars: int
        comment: str | None
        member_id: str | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            if state.get("comment") is not None:
                state["comment"] = LEGACY + state["comment"]

    @event(Rated)
    def _rated(self, stars: int, comment: str | None, member_id: str | None) -> None:
        self.stars = stars
        self.comment = comment

    def request_redo(self, reason: str, due_at: datetime) -> None:
        """Not satisfied: the demand goes back to posted, to be served again (返工)."""
        check_code("reason", reason)
        if due_at.utcoffset() != timedelta(0):
            raise InvalidArgument("due_at", "must be a UTC datetime")
        self._require({SERVED}, "request a redo")
        if self.stars is not None:
            raise FailedPrecondition("cannot request a redo: demand is already rated")
        if self.redo_count >= MAX_REDOS:
            raise FailedPrecondition(f"cannot request a redo: demand was redone {MAX_REDOS} times")
        self._redo_requested(reason=reason, due_at=due_at, redo_count=self.redo_count + 1,
                             previous_member_id=self.member_id)

    @event("RedoRequested")
    def _redo_requested(self, reason: str, due_at: datetime, redo_count: int,
                        previous_member_id: str | None) -> None:
        self.status = POSTED
        self.due_at = due_at
        self.redo_count = redo_count
        self.member_id = None
        self.served_hours = None

    # -- facts from dispatch (applied by the consumer policy) --
    def record_acceptance(self, member_id: str) -> None:
        check_id("member_id", member_id)
        if self.status == ACCEPTED and self.member_id == member_id:
            return  # the same fact delivered again
        self._require({POSTED}, "record an acceptance")
        self._acceptance_recorded(member_id=member_id)

    @event("AcceptanceRecorded")
    def _acceptance_recorded(self, member_id: str) -> None:
        self.status = ACCEPTED
        self.member_id = member_id

    def clear_acceptance(self, member_id: str) -> None:
        check_id("member_id", member_id)
        if self.status == POSTED and self.member_id is None:
            return  # already back in the pool
        self._require({ACCEPTED}, "clear an acceptance")
        if self.member_id != member_id:
            raise FailedPrecondition("cannot clear an acceptance: demand is held by another member")
        self._acceptance_cleared(member_id=member_id)

    @event("AcceptanceCleared")
    def _acceptance_cleared(self, member_id: str) -> None:
        self.status = POSTED
        self.member_id = None

    def record_service(self, member_id: str, hours: float) -> None:
        check_id("member_id", member_id)
        if not 0 < hours <= 72:
            raise InvalidArgument("hours", "must be more than 0 and at most 72")
        if self.status == SERVED and self.member_id == member_id:
            return  # the same fact delivered again
        self._require({ACCEPTED}, "record a service")
        if self.member_id != member_id:
            raise FailedPrecondition("cannot record a service: demand is held by another member")
        self._service_recorded(member_id=member_id, hours=float(hours))

    @event("ServiceRecorded")
    def _service_recorded(self, member_id: str, hours: float) -> None:
        self.status = SERVED
        self.served_hours = hours

    # -- authorisation --
    @property
    def is_held(self) -> bool:
        """Open and in a member's hands: accepted, or served and not yet confirmed."""
        return self.status in (ACCEPTED, SERVED) and self.member_id is not None

    def held_by(self, member_id: str | None) -> bool:
        return self.is_held and bool(member_id) and member_id == self.member_id

    def ensure_held_by(self, member_id: str) -> None:
        """Only the member who currently holds the demand may see the resident's contact."""
        if self.status not in (ACCEPTED, SERVED):
            raise FailedPrecondition(f"no contact: demand is {self.status}")
        if not self.held_by(member_id):
            raise FailedPrecondition(f"no contact: member {quote(member_id)} does not hold this demand")

    # -- contact releases: who was given the resident's contact (stored, never published) --
    def record_contact_release(self, subject: str, role: str, member_id: str | None = None) -> None:
        """The record of a release, on the demand itself, so its history shows every one. `subject` is the
        receiver's opaque token subject; `member_id` the member it was released to as the holder, if any."""
        self._contact_released(subject=subject, role=role, member_id=member_id)

    @event("ContactReleased")
    def _contact_released(self, subject: str, role: str, member_id: str | None) -> None:
        pass  # changes no state: the event is the record

    # -- retention: a closed demand's texts are shredded (their key destroyed) after the retention period --
    @property
    def is_closed(self) -> bool:
        return self.status in CLOSED

    def sealed_fields(self) -> list[str]:
        return [f for f in SEALED_FIELDS if getattr(self, f) is not None]

    def record_texts_shredded(self, reason: str) -> None:
        """The record that the demand's data key was destroyed: its sealed texts can never be read again (published
        as DemandTextsShredded, so the other services forget their copies). Retention shreds only a demand whose
        service is done; an erasure shreds whatever the state, and the lifecycle goes on without texts."""
        check_choice("reason", reason, SHRED_CAUSES)
        if self.texts_shredded:
            return
        if reason == RETENTION:
            self._require(set(SHREDDABLE), "shred texts")
        self._texts_shredded(reason=reason, fields=self.sealed_fields())

    @event("TextsShredded")
    def _texts_shredded(self, reason: str, fields: list[str]) -> None:
        self.texts_shredded = True

    def _require(self, allowed: set[str], action: str) -> None:
        if self.status not in allowed:
            raise FailedPrecondition(f"cannot {action}: demand is {self.status}")


# ---- a resident's registration ---------------------------------------------------------------------
class Resident(Aggregate):
    """A resident's registration as facts, without personal data: registered, corrected (which fields), exported,
    erased (by whom, why). Who did each is in the stored trace (subject, role, on whose behalf). The personal data
    itself is in intake's tables, sealed under the resident's own data key (residents.py)."""

    @staticmethod
    def create_id(resident_id: str, **_: Any) -> uuid.UUID:
        return uuid.UUID(resident_id)

    @event("Registered")
    def __init__(self, resident_id: str, community_id: str) -> None:
        self.resident_id = resident_id
        self.community_id = community_id
        self.erased = False

    @classmethod
    def register(cls, resident_id: str, community_id: str) -> Resident:
        return cls(resident_id=str(uuid.UUID(resident_id)), community_id=check_id("community_id", community_id))

    def correct(self, fields: Iterable[str]) -> None:
        """Which fields were corrected (never their values)."""
        self._require_not_erased("correct")
        changed = sorted(set(fields))
        if changed:
            self._corrected(fields=changed)

    @event("Corrected")
    def _corrected(self, fields: list[str]) -> None:
        pass  # the values are in the residents table; the event is the record

    def record_export(self) -> None:
        self._exported()

    @event("Exported")
    def _exported(self) -> None:
        pass  # the event is the record: a copy of everything held went to the resident (or for them)

    def erase(self, by: str, reason: str) -> None:
        """`by`: in which capacity it was asked (the resident, or the community's secretary); `reason`: a code.
        Erasing again changes nothing."""
        check_code("by", by)
        check_code("reason", reason)
        if not self.erased:
            self._erased(by=by, reason=reason)

    @event("Erased")
    def _erased(self, by: str, reason: str) -> None:
        self.erased = True

    def _require_not_erased(self, action: str) -> None:
        if self.erased:
            raise FailedPrecondition(f"cannot {action}: this resident's personal data was erased")
