"""notify's use cases: from a consumed fact to notices (inbox policy), from a notice to a planned channel
(`plan`), and one delivery attempt (`deliver`). Synchronous: the async loops in delivery.py call them in
worker threads.

The clock and the jitter source are injected; the aggregates never read them.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

from eventsourcing.application import AggregateNotFoundError

from sandan_contracts import Envelope, Event
from sandan_eventbus import tracing
from sandan_eventbus.errors import NotFound
from sandan_eventbus.sql import engine_for
from sandan_eventbus.store import ServiceApplication
from sandan_eventbus.trace import traced
from sandan_notify.channels import Channel, Message, SendError
from sandan_notify.clock import Clock, utc_now
from sandan_notify.contacts import Contact, ContactBook, ContactNotFound, ContactUnavailable
from sandan_notify.deliveries import DeliveryLog, Due, Projector
from sandan_notify.directory import Directory, Offices
from sandan_notify.domain import NEW, Notice, RetryPolicy, notice_id_for, schedule
from sandan_notify.preferences import PreferenceStore, channel_order
from sandan_notify.routing import OrderInfo, route
from sandan_notify.templates import render

log = logging.getLogger(__name__)

# Templates that tell a resident who serves them: the member's name is looked up at send time.
_NAMES_MEMBER = frozenset({"order_accepted", "service_completed"})


class _View:
    """The routing view: notify's read model plus the office directory."""

    def __init__(self, directory: Directory, offices: Offices) -> None:
        self.directory = directory
        self.offices = offices

    def order(self, order_id: str) -> OrderInfo | None:
        return self.directory.order(order_id)

    def demand_community(self, demand_id: str) -> str | None:
        return self.directory.demand_community(demand_id)

    def members_for_offer(self, community_id: str | None, grid_id: str, teams: list[str]) -> list[str]:
        return self.directory.members_for_offer(community_id, grid_id, teams)

    def units_of(self, community_id: str) -> list[str]:
        return self.directory.units_of(community_id)

    def town_of(self, community_id: str) -> str | None:
        return self.offices.town_of(community_id)

    def county(self) -> str | None:
        return self.offices.county_id()


class NotifyApplication(ServiceApplication):
    name = "notify"

    def __init__(self, store_url: str = "memory://", *, database_url: str | None = None,
                 offices: Offices | None = None, contacts: ContactBook, channels: dict[str, Channel],
                 clock: Clock = utc_now, policy: RetryPolicy | None = None,
                 rng: Callable[[], float] = random.random, utc_offset: timedelta = timedelta(hours=8),
                 default_quiet: tuple[str, str] = ("22:00", "07:00"), env: dict[str, str] | None = None) -> None:
        super().__init__(store_url, env)
        self.engine = engine_for(database_url or store_url)
        self.offices = offices or Offices(None)
        self.directory = Directory(self.engine)
        self.preferences = PreferenceStore(self.engine, default_quiet)
        self.projector = Projector(self, self.engine)
        self.delivery_log = DeliveryLog(self.engine)
        self.contacts = contacts
        self.channels = channels
        self.clock = clock
        self.policy = policy or RetryPolicy()
        self.rng = rng
        self.utc_offset = utc_offset
        self.view = _View(self.directory, self.offices)

    def close(self) -> None:
        super().close()
        self.engine.dispose()

    # ---- inbox policy: every consumed topic ------------------------------------------------------
    def on_event(self, envelope: Envelope, event: Event) -> list[Notice]:
        """Update the read model, then one new Notice per recipient. Returns them; never saves (the Inbox
        saves them with the Kafka position). A re-published copy of a fact (same event id, another offset)
        finds its notices already stored and adds none."""
        self.directory.apply(event)
        occurred = envelope.occurred_at.astimezone(UTC).isoformat()
        created = []
        for r in route(event, self.view, occurred_at=occurred):
            if self._find(notice_id_for(envelope.event_id, r.kind, r.ref)) is not None:
                continue
            created.append(Notice.create(source_event_id=envelope.event_id, source_type=envelope.type,
                                         recipient_kind=r.kind, recipient_ref=r.ref, template=r.template,
                                         params=r.params, urgent=r.urgent, essential=r.essential))
        return created

    # ---- planning: which channel, when ---------------------------------------------------------
    def plan(self, notice_id: str | uuid.UUID) -> str:
        """Choose the notice's next channel (or give up). Raises ContactUnavailable: try again later.
        Returns: planned | held | opted_out | no_contact | recipient_erased | no_channel | all_channels_failed |
        done."""
        notice = self.get_notice(notice_id)
        with self._resumed("notify plan", notice):
            return self._plan(notice)

    def _resumed(self, name: str, notice: Notice) -> AbstractContextManager[Any]:
        """Work on a notice continues the trace of the fact it came from (stored with the notice: its contact
        look-ups carry it to intake and dispatch, its outcome to notify.deliveries.v1)."""
        stored = self.trace_of(notice.id)
        return tracing.resumed(name, stored.traceparent if stored else None, stored.tracestate if stored else None,
                               **{"sandan.notice_id": str(notice.id), "sandan.template": notice.template})

    def _plan(self, notice: Notice) -> str:
        if notice.status != NEW:
            return "done"
        now = self._now()
        try:
            contact = self.contacts.lookup(notice.recipient_kind, notice.recipient_ref)
        except ContactNotFound as missing:  # unknown, or erased at their request: given up, never retried
            notice.skip(missing.reason, now)
            self.save(notice)
            return missing.reason
        recipient_id = notice.recipient_id or contact.recipient_id
        prefs = self.preferences.get(notice.recipient_kind, recipient_id)
        if not notice.essential and prefs.opt_out_non_essential:
            notice.skip("opted_out", now)
            self.save(notice)
            return "opted_out"
        candidates = [c for c in channel_order(prefs, contact.channels)
                      if c in self.channels and c not in notice.tried and contact.address(c)]
        if not candidates:
            reason = "all_channels_failed" if notice.tried else "no_channel"
            notice.skip(reason, now)
            self.save(notice)
            return reason
        not_before, held = schedule(now, candidates[0], notice.urgent, prefs.quiet, self.utc_offset)
        notice.plan(recipient_id, candidates[0], not_before, held, at=now)
        self.save(notice)
        return "held" if held else "planned"

    # ---- one delivery attempt ------------------------------------------------------------------
    def deliver(self, due: Due) -> str:
        """Send one due notification and record the outcome. Returns sent | retrying | failed | not_due.

        At-least-once towards the channel: a crash after the send and before `save` sends it again after a
        restart, with the same notification id as idempotency key (README "What once means")."""
        notice = self.get_notice(due.notice_id)
        with self._resumed("notify deliver", notice):
            return self._deliver(notice, due)

    def _deliver(self, notice: Notice, due: Due) -> str:
        now = self._now()
        if not notice.is_due(due.notification_id, now):
            return "not_due"
        channel_name = notice.channel
        assert channel_name is not None
        channel = self.channels.get(channel_name)
        try:
            if channel is None:
                raise SendError("channel_disabled", permanent=True)
            contact = self.contacts.lookup(notice.recipient_kind, notice.recipient_ref)
            message = self._message(notice, contact, channel_name)
            channel.send(message)
        except ContactNotFound as missing:
            error = SendError(missing.reason, permanent=True)
        except ContactUnavailable:
            error = SendError("contact_unavailable")
        except SendError as failed:
            error = failed
        except Exception:
            log.exception("channel raised unexpectedly", extra={"fields": {"channel": channel_name}})
            error = SendError("internal_error")
        else:
            notice.record_sent(due.notification_id, self._now())
            with traced(notice.source_event_id, notice.source_event_id):  # the outcome is caused by the fact
                self.save(notice)
            return "sent"
        retry_at = self.policy.retry_at(notice.attempts + 1, error.permanent, now, self.rng())
        notice.record_failure(due.notification_id, error.code, retry_at, now)
        with traced(notice.source_event_id, notice.source_event_id):
            self.save(notice)
        log.warning("delivery attempt failed", extra={"fields": {
            "notification_id": due.notification_id, "channel": channel_name, "error": error.code,
            "attempt": notice.attempts, "retry_at": retry_at.isoformat() if retry_at else None}})
        return "retrying" if retry_at else "failed"

    def _message(self, notice: Notice, contact: Contact, channel: str) -> Message:
        address = contact.address(channel)
        if not address:
            raise SendError("no_address", permanent=True)
        prefs = self.preferences.get(notice.recipient_kind, notice.recipient_id or contact.recipient_id)
        params = {**notice.params, "name": contact.name}
        if notice.template in _NAMES_MEMBER and notice.params.get("member_id"):
            try:
                params["member_name"] = self.contacts.lookup("member", notice.params["member_id"]).name
            except (ContactNotFound, ContactUnavailable):
                params["member_name"] = ""
        rendered = render(notice.template, params, prefs.language, self.utc_offset)
        assert notice.notification_id is not None and notice.recipient_id is not None
        return Message(notification_id=notice.notification_id, source_event_id=notice.source_event_id,
                       recipient_kind=notice.recipient_kind, recipient_id=notice.recipient_id, address=address,
                       name=contact.name, template=notice.template, subject=rendered.subject, body=rendered.body,
                       urgent=notice.urgent)

    # ---- queries -------------------------------------------------------------------------------
    def get_notice(self, notice_id: str | uuid.UUID) -> Notice:
        notice = self._find(notice_id if isinstance(notice_id, uuid.UUID) else uuid.UUID(str(notice_id)))
        if notice is None:
            raise NotFound(f"notice {notice_id} not found")
        return notice

    def _find(self, notice_id: uuid.UUID) -> Notice | None:
        try:
            found: Any = self.repository.get(notice_id)
        except AggregateNotFoundError:
            return None
        return found if isinstance(found, Notice) else None

    def _now(self) -> datetime:
        now = self.clock()
        if now.tzinfo is None:
            raise ValueError("the clock must return timezone-aware datetimes")
        return now.astimezone(UTC)
