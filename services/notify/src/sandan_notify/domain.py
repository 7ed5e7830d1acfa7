"""notify's aggregate and pure rules: a Notice (one source event, one recipient) and how it is delivered.

A Notice is created when a consumed fact concerns someone. It is then planned on one channel (the first of the
recipient's channel order that can reach them), retried on that channel with backoff, and either sent, or failed
on that channel and planned again on the next one. Each (source event, recipient, channel) is one
*notification* with a deterministic id, the id NotificationSent / NotificationFailed carry.

Pure: no I/O and no clock (times are passed in). Stored event class names (e.g. `Notice.Sent`) are part of the
store's format: never rename them.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from eventsourcing.domain import Aggregate, event

from sandan_eventbus.checks import check_choice, check_code, check_id
from sandan_eventbus.errors import FailedPrecondition, InvalidArgument

NOTICE_NAMESPACE = uuid.UUID("3f6c1d2a-8b4e-4c7a-9e15-0d2b7a6c5e41")  # fixed forever: ids derive from it

KINDS = ("resident", "member", "branch", "town", "county", "unit")
CHANNELS = ("wechat", "sms", "email", "webhook", "console")
# Channels that make a phone ring: held during the recipient's quiet hours unless the notice is urgent.
QUIET_CHANNELS = frozenset({"sms", "wechat"})

NEW, PLANNED, SENT, SKIPPED = "new", "planned", "sent", "skipped"


def notice_id_for(source_event_id: str, recipient_kind: str, recipient_ref: str) -> uuid.UUID:
    """The same fact delivered again (a redelivery, a re-published duplicate) names the same notice."""
    return uuid.uuid5(NOTICE_NAMESPACE, f"{source_event_id}|{recipient_kind}|{recipient_ref}")


def notification_id_for(source_event_id: str, recipient_kind: str, recipient_id: str, channel: str) -> str:
    """Deterministic id of one (source event, recipient, channel): the dedup key and the channel's idempotency key."""
    digest = hashlib.sha256(f"{source_event_id}|{recipient_kind}|{recipient_id}|{channel}".encode()).hexdigest()
    return f"n-{digest[:40]}"


class Notice(Aggregate):
    """What one fact means for one recipient, and how delivering it went."""

    @event("Created")
    def __init__(self, source_event_id: str, source_type: str, recipient_kind: str, recipient_ref: str,
                 template: str, params: dict[str, str], urgent: bool, essential: bool) -> None:
        self.source_event_id = source_event_id
        self.source_type = source_type
        self.recipient_kind = recipient_kind
        self.recipient_ref = recipient_ref  # member/unit/office id, or the demand id for a resident
        self.template = template
        self.params = dict(params)
        self.urgent = urgent
        self.essential = essential
        self.status = NEW
        self.recipient_id: str | None = None
        self.channel: str | None = None
        self.notification_id: str | None = None
        self.not_before: datetime | None = None
        self.attempts = 0
        self.tried: list[str] = []
        self.skip_reason: str | None = None

    @staticmethod
    def create_id(source_event_id: str, recipient_kind: str, recipient_ref: str, **_: Any) -> uuid.UUID:
        return notice_id_for(source_event_id, recipient_kind, recipient_ref)

    @classmethod
    def create(cls, *, source_event_id: str, source_type: str, recipient_kind: str, recipient_ref: str,
               template: str, params: dict[str, str] | None = None, urgent: bool = False,
               essential: bool = True) -> Notice:
        if not source_event_id or len(source_event_id) > 200:
            raise InvalidArgument("source_event_id", "must be 1 to 200 characters")
        return cls(source_event_id=source_event_id, source_type=source_type,
                   recipient_kind=check_choice("recipient_kind", recipient_kind, KINDS),
                   recipient_ref=check_id("recipient_ref", recipient_ref), template=check_code("template", template),
                   params={str(k): str(v) for k, v in (params or {}).items()}, urgent=bool(urgent),
                   essential=bool(essential))

    # -- planning ---------------------------------------------------------------------------------
    def plan(self, recipient_id: str, channel: str, not_before: datetime, held: bool,
             at: datetime | None = None) -> str:
        """Choose the channel to try next; returns the notification id. `held`: waiting for quiet hours to end."""
        self._require(NEW, "plan")
        check_id("recipient_id", recipient_id)
        check_choice("channel", channel, CHANNELS)
        if channel in self.tried:
            raise FailedPrecondition(f"cannot plan: channel {channel} was already tried")
        if self.recipient_id is not None and recipient_id != self.recipient_id:
            raise FailedPrecondition("cannot plan: the notice belongs to another recipient")
        notification_id = notification_id_for(self.source_event_id, self.recipient_kind, recipient_id, channel)
        self._planned(notification_id=notification_id, recipient_id=recipient_id, channel=channel,
                      not_before=not_before, held=held, at=at or not_before)
        return notification_id

    @event("Planned")
    def _planned(self, notification_id: str, recipient_id: str, channel: str, not_before: datetime,
                 held: bool, at: datetime) -> None:
        self.status = PLANNED
        self.notification_id = notification_id
        self.recipient_id = recipient_id
        self.channel = channel
        self.not_before = not_before
        self.attempts = 0
        self.tried = [*self.tried, channel]

    def skip(self, reason: str, at: datetime) -> None:
        """Nothing (more) to try: opted out, no way to reach the recipient, or every channel failed."""
        self._require(NEW, "skip")
        self._skipped(reason=check_code("reason", reason), at=at)

    @event("Skipped")
    def _skipped(self, reason: str, at: datetime) -> None:
        self.status = SKIPPED
        self.skip_reason = reason

    # -- delivering -------------------------------------------------------------------------------
    def is_due(self, notification_id: str, now: datetime) -> bool:
        return (self.status == PLANNED and self.notification_id == notification_id
                and self.not_before is not None and self.not_before <= now)

    def record_sent(self, notification_id: str, at: datetime) -> None:
        self._require_current(notification_id)
        self._sent(notification_id=notification_id, recipient_kind=self.recipient_kind,
                   recipient_id=self.recipient_id, channel=self.channel, template=self.template,
                   source_event_id=self.source_event_id, attempts=self.attempts + 1, at=at)

    @event("Sent")
    def _sent(self, notification_id: str, recipient_kind: str, recipient_id: str, channel: str, template: str,
              source_event_id: str, attempts: int, at: datetime) -> None:
        self.status = SENT
        self.attempts = attempts

    def record_failure(self, notification_id: str, error: str, retry_at: datetime | None, at: datetime) -> None:
        """A failed attempt: try again at `retry_at`, or (None) give this channel up; the notice is then NEW
        again, to be planned on the next channel or skipped."""
        self._require_current(notification_id)
        check_code("error", error)
        if retry_at is not None:
            self._attempt_failed(notification_id=notification_id, attempt=self.attempts + 1, error=error,
                                 retry_at=retry_at, at=at)
        else:
            self._channel_failed(notification_id=notification_id, recipient_kind=self.recipient_kind,
                                 recipient_id=self.recipient_id, channel=self.channel, template=self.template,
                                 source_event_id=self.source_event_id, attempts=self.attempts + 1, error=error, at=at)

    @event("AttemptFailed")
    def _attempt_failed(self, notification_id: str, attempt: int, error: str, retry_at: datetime,
                        at: datetime) -> None:
        self.attempts = attempt
        self.not_before = retry_at

    @event("ChannelFailed")
    def _channel_failed(self, notification_id: str, recipient_kind: str, recipient_id: str, channel: str,
                        template: str, source_event_id: str, attempts: int, error: str, at: datetime) -> None:
        self.status = NEW
        self.attempts = attempts
        self.notification_id = None
        self.channel = None
        self.not_before = None

    def _require_current(self, notification_id: str) -> None:
        self._require(PLANNED, "record a delivery")
        if notification_id != self.notification_id:
            raise FailedPrecondition(f"cannot record a delivery: {notification_id} is not the current notification")

    def _require(self, status: str, action: str) -> None:
        if self.status != status:
            raise FailedPrecondition(f"cannot {action}: notice is {self.status}")


# ---- pure policies ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with "equal jitter": attempt n waits between half and all of min(cap, base * 2^(n-1))."""

    max_attempts: int = 5
    base_seconds: float = 2.0
    cap_seconds: float = 300.0

    def delay(self, failures: int, rand: float) -> float:
        ceiling = min(self.cap_seconds, self.base_seconds * 2 ** (failures - 1))
        return ceiling * (0.5 + 0.5 * min(max(rand, 0.0), 1.0))

    def retry_at(self, failures: int, permanent: bool, now: datetime, rand: float) -> datetime | None:
        """When to try again after `failures` failed attempts, or None: give the channel up."""
        if permanent or failures >= self.max_attempts:
            return None
        return now + timedelta(seconds=self.delay(failures, rand))


def parse_hhmm(field: str, value: str) -> time:
    try:
        hours, minutes = value.strip().split(":")
        return time(int(hours), int(minutes))
    except (ValueError, AttributeError):
        raise InvalidArgument(field, "must be a local time HH:MM") from None


@dataclass(frozen=True)
class QuietHours:
    """Local [start, end) when phones should not ring; may wrap midnight (22:00-07:00)."""

    start: time
    end: time

    @classmethod
    def parse(cls, start: str, end: str) -> QuietHours | None:
        if not start.strip() and not end.strip():
            return None
        quiet = cls(parse_hhmm("quiet_start", start), parse_hhmm("quiet_end", end))
        if quiet.start == quiet.end:
            raise InvalidArgument("quiet_end", "must differ from quiet_start")
        return quiet

    def contains(self, local: time) -> bool:
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def release(self, now: datetime, offset: timedelta) -> datetime:
        """The first moment at or after `now` (aware) outside quiet hours, in `now`'s zone."""
        local = (now + offset).replace(tzinfo=None)
        if not self.contains(local.time()):
            return now
        end = local.replace(hour=self.end.hour, minute=self.end.minute, second=0, microsecond=0)
        if end <= local:
            end += timedelta(days=1)
        return now + (end - local)


def schedule(now: datetime, channel: str, urgent: bool, quiet: QuietHours | None,
             offset: timedelta) -> tuple[datetime, bool]:
    """When a notice may go out on `channel`: (not_before, held). Urgent ones and quiet channels' others go now."""
    if urgent or quiet is None or channel not in QUIET_CHANNELS:
        return now, False
    release = quiet.release(now, offset)
    return release, release > now
