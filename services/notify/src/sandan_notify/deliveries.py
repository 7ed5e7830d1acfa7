"""The delivery log: a SQL projection of the notices' stored events, followed like the relay follows them.

`Projector.catch_up` reads the event store's notification log after its recorded position and writes the rows
and the new position in ONE SQL transaction, so the log is exactly the events (rebuildable by deleting the
tables). The same tables are the work queues: notices waiting to be planned, notifications due on a channel.
Holds no contact detail: recipients by id, errors by code.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Boolean, Column, Integer, MetaData, String, Table, func, insert, select, update
from sqlalchemy.engine import Connection, Engine

from sandan_eventbus.store import ServiceApplication
from sandan_notify.directory import upsert
from sandan_notify.domain import Notice

metadata = MetaData()
notices = Table(
    "notify_notices", metadata,
    Column("notice_id", String(36), primary_key=True),
    Column("source_event_id", String(200), nullable=False, index=True),
    Column("source_type", String(80), nullable=False),
    Column("recipient_kind", String(10), nullable=False),
    Column("recipient_ref", String(64), nullable=False),
    Column("template", String(40), nullable=False),
    Column("urgent", Boolean, nullable=False),
    Column("status", String(10), nullable=False, index=True),  # new | planned | sent | skipped
    Column("created_at", String(32), nullable=False),
)
deliveries = Table(
    "notify_deliveries", metadata,
    Column("notification_id", String(64), primary_key=True),
    Column("notice_id", String(36), nullable=False),
    Column("source_event_id", String(200), nullable=False, index=True),
    Column("source_type", String(80), nullable=False),
    Column("recipient_kind", String(10), nullable=False),
    Column("recipient_id", String(64), nullable=False, index=True),
    Column("channel", String(10), nullable=False),
    Column("template", String(40), nullable=False),
    Column("urgent", Boolean, nullable=False),
    Column("status", String(10), nullable=False, index=True),  # scheduled | held | retrying | sent | failed
    Column("attempts", Integer, nullable=False),
    Column("last_error", String(40), nullable=False),
    Column("planned_at", String(32), nullable=False),
    Column("next_attempt_at", String(32), nullable=False, index=True),
    Column("finished_at", String(32), nullable=False),
)
dead_letters = Table(
    "notify_dead_letters", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("position", Integer, nullable=False, unique=True),  # the stored event that caused it
    Column("notice_id", String(36), nullable=False),
    Column("notification_id", String(64), nullable=False),
    Column("source_event_id", String(200), nullable=False),
    Column("recipient_kind", String(10), nullable=False),
    Column("recipient_id", String(64), nullable=False, index=True),
    Column("channel", String(10), nullable=False),
    Column("template", String(40), nullable=False),
    Column("error", String(40), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("recorded_at", String(32), nullable=False),
)
positions = Table(
    "notify_projection_positions", metadata,
    Column("name", String(40), primary_key=True),
    Column("position", Integer, nullable=False),
)

PENDING = ("scheduled", "held", "retrying")
STATUSES = (*PENDING, "sent", "failed")


def stamp(value: datetime) -> str:
    """A sortable UTC text timestamp (the same in SQLite and PostgreSQL)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_stamp(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


@dataclass(frozen=True)
class Due:
    notice_id: str
    notification_id: str
    channel: str


class Projector:
    NAME = "deliveries"

    def __init__(self, app: ServiceApplication, engine: Engine, batch: int = 500) -> None:
        self.app = app
        self.engine = engine
        self.batch = min(batch, app.log_section_size)
        self._lock = threading.Lock()
        metadata.create_all(engine)

    def position(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(positions.c.position).where(positions.c.name == self.NAME)).scalar() or 0

    def catch_up(self) -> int:
        """Project everything stored so far; returns how many stored events were read."""
        total = 0
        with self._lock:
            while True:
                after = self.position()
                found = self.app.recorder.select_notifications(start=after + 1, limit=self.batch)
                if not found:
                    return total
                with self.engine.begin() as conn:
                    for n in found:
                        self._apply(conn, n.id, self.app.mapper.to_domain_event(n))
                    upsert(self.engine, conn, positions, {"name": self.NAME, "position": found[-1].id}, ["name"])
                total += len(found)

    def _apply(self, conn: Connection, position: int, e: Any) -> None:
        at = stamp(getattr(e, "at", None) or e.timestamp)  # the service's clock, where the event carries it
        notice_id = str(e.originator_id)
        if isinstance(e, Notice.Created):
            upsert(self.engine, conn, notices, {
                "notice_id": notice_id, "source_event_id": e.source_event_id, "source_type": e.source_type,
                "recipient_kind": e.recipient_kind, "recipient_ref": e.recipient_ref, "template": e.template,
                "urgent": e.urgent, "status": "new", "created_at": at}, ["notice_id"])
        elif isinstance(e, Notice.Planned):
            notice = conn.execute(select(notices).where(notices.c.notice_id == notice_id)).one()
            conn.execute(update(notices).where(notices.c.notice_id == notice_id).values(status="planned"))
            upsert(self.engine, conn, deliveries, {
                "notification_id": e.notification_id, "notice_id": notice_id,
                "source_event_id": notice.source_event_id, "source_type": notice.source_type,
                "recipient_kind": notice.recipient_kind, "recipient_id": e.recipient_id, "channel": e.channel,
                "template": notice.template, "urgent": notice.urgent, "status": "held" if e.held else "scheduled",
                "attempts": 0, "last_error": "", "planned_at": at, "next_attempt_at": stamp(e.not_before),
                "finished_at": ""}, ["notification_id"])
        elif isinstance(e, Notice.AttemptFailed):
            conn.execute(update(deliveries).where(deliveries.c.notification_id == e.notification_id).values(
                status="retrying", attempts=e.attempt, last_error=e.error, next_attempt_at=stamp(e.retry_at)))
        elif isinstance(e, Notice.Sent):
            conn.execute(update(deliveries).where(deliveries.c.notification_id == e.notification_id).values(
                status="sent", attempts=e.attempts, next_attempt_at="", finished_at=at))
            conn.execute(update(notices).where(notices.c.notice_id == notice_id).values(status="sent"))
        elif isinstance(e, Notice.ChannelFailed):
            conn.execute(update(deliveries).where(deliveries.c.notification_id == e.notification_id).values(
                status="failed", attempts=e.attempts, last_error=e.error, next_attempt_at="", finished_at=at))
            conn.execute(update(notices).where(notices.c.notice_id == notice_id).values(status="new"))
            self._dead_letter(conn, position, notice_id, e.notification_id, e.source_event_id, e.recipient_kind,
                              e.recipient_id, e.channel, e.template, e.error, e.attempts, at)
        elif isinstance(e, Notice.Skipped):
            notice = conn.execute(select(notices).where(notices.c.notice_id == notice_id)).one()
            conn.execute(update(notices).where(notices.c.notice_id == notice_id).values(status="skipped"))
            if e.reason != "opted_out":  # an opt-out is the recipient's wish, not a failure
                self._dead_letter(conn, position, notice_id, "", notice.source_event_id, notice.recipient_kind,
                                  notice.recipient_ref, "", notice.template, e.reason, 0, at)

    def _dead_letter(self, conn: Connection, position: int, notice_id: str, notification_id: str, source: str,
                     kind: str, recipient_id: str, channel: str, template: str, error: str, attempts: int,
                     at: str) -> None:
        exists = conn.execute(select(dead_letters.c.id).where(dead_letters.c.position == position)).first()
        if exists is None:
            conn.execute(insert(dead_letters).values(
                position=position, notice_id=notice_id, notification_id=notification_id, source_event_id=source,
                recipient_kind=kind, recipient_id=recipient_id, channel=channel, template=template, error=error,
                attempts=attempts, recorded_at=at))


class DeliveryLog:
    """Queries over the projection: the work queues and the log the gRPC API serves."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        metadata.create_all(engine)

    def new_notices(self, limit: int = 100) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(notices.c.notice_id).where(notices.c.status == "new")
                                     .order_by(notices.c.created_at).limit(limit)).scalars())

    def due(self, channel: str, now: datetime, limit: int = 100) -> list[Due]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(deliveries.c.notice_id, deliveries.c.notification_id, deliveries.c.channel)
                .where(deliveries.c.channel == channel, deliveries.c.status.in_(PENDING),
                       deliveries.c.next_attempt_at <= stamp(now))
                .order_by(deliveries.c.urgent.desc(), deliveries.c.next_attempt_at).limit(limit)).all()
        return [Due(*r) for r in rows]

    def deliveries(self, *, recipient_kind: str = "", recipient_id: str = "", source_event_id: str = "",
                   status: str = "", channel: str = "", limit: int = 100) -> list[Any]:
        query = select(deliveries)
        for column, value in ((deliveries.c.recipient_kind, recipient_kind),
                              (deliveries.c.recipient_id, recipient_id),
                              (deliveries.c.source_event_id, source_event_id), (deliveries.c.status, status),
                              (deliveries.c.channel, channel)):
            if value:
                query = query.where(column == value)
        with self.engine.connect() as conn:
            return list(conn.execute(query.order_by(deliveries.c.planned_at, deliveries.c.notification_id)
                                     .limit(limit)).all())

    def dead_letters(self, *, recipient_kind: str = "", recipient_id: str = "", limit: int = 100) -> list[Any]:
        query = select(dead_letters)
        if recipient_kind:
            query = query.where(dead_letters.c.recipient_kind == recipient_kind)
        if recipient_id:
            query = query.where(dead_letters.c.recipient_id == recipient_id)
        with self.engine.connect() as conn:
            return list(conn.execute(query.order_by(dead_letters.c.id).limit(limit)).all())

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(deliveries.c.status, func.count()).group_by(deliveries.c.status)).all()
        return {status: count for status, count in rows}
