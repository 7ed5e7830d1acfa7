"""Which demands a resident posted, which are closed (or served) since when, and which residents were erased: an
in-memory projection of the event store's notification log, caught up before each use (as dispatch's board is).
Demand ids are derived from the resident and the client's request id, so without it a resident's demands could not
be listed (export) and closed ones not found (retention). Ids and times only: nothing personal.

`ResidentDemands` keeps the first of these durably, in a table, for ListResidentDemands: a resident's demands,
newest first, without reading the log on every call.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from eventsourcing.utils import get_topic
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Engine,
    MetaData,
    String,
    Table,
    and_,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from sandan_intake.domain import Demand


class DemandIndex:
    def __init__(self) -> None:
        self.position = 0
        self.by_resident: dict[str, list[str]] = {}
        self.closed_at: dict[str, datetime] = {}  # withdrawn, confirmed or rated: the first of them
        self.served_at: dict[str, datetime] = {}  # served and not sent back for a redo since
        self.shredded: set[str] = set()
        self.erased_residents: set[str] = set()
        self._lock = threading.Lock()

    def catch_up(self, app: Any) -> None:
        with self._lock:
            while True:
                batch = app.recorder.select_notifications(start=self.position + 1, limit=app.log_section_size)
                if not batch:
                    return
                for notification in batch:
                    self._apply(notification.topic, notification, app)
                self.position = batch[-1].id

    def _apply(self, topic: str, notification: Any, app: Any) -> None:
        name = topic.rpartition(":")[2]  # "<module>:<Aggregate>.<Event>"
        if name not in ("Demand.Posted", "Demand.Withdrawn", "Demand.CompletionConfirmed", "Demand.Rated",
                        "Demand.ServiceRecorded", "Demand.RedoRequested", "Demand.TextsShredded", "Resident.Erased"):
            return  # decoded only when needed: most of the log is skipped unread
        e = app.mapper.to_domain_event(notification)
        oid = str(e.originator_id)
        if name == "Demand.Posted":
            self.by_resident.setdefault(e.resident_id, []).append(oid)
        elif name == "Demand.TextsShredded":
            self.shredded.add(oid)
        elif name == "Resident.Erased":
            self.erased_residents.add(oid)
        elif name == "Demand.ServiceRecorded":
            self.served_at[oid] = e.timestamp
        elif name == "Demand.RedoRequested":  # open again: served anew later, if ever
            self.served_at.pop(oid, None)
        else:  # withdrawn, confirmed or rated (a rated demand cannot be redone): closed for good
            self.closed_at.setdefault(oid, e.timestamp)

    def demands_of(self, resident_id: str) -> list[str]:
        with self._lock:
            return list(self.by_resident.get(resident_id, ()))

    def unshredded_of(self, resident_id: str) -> list[str]:
        """The resident's demands whose shredding is not recorded yet, in posting order."""
        with self._lock:
            return [d for d in self.by_resident.get(resident_id, ()) if d not in self.shredded]

    def closed_before(self, cutoff: datetime) -> list[str]:
        """Demands whose texts are still held, closed before `cutoff` (a demand served and never closed counts
        as closed when it was served), oldest first."""
        with self._lock:
            since = {**self.served_at, **self.closed_at}
            due = [(at, d) for d, at in since.items() if at < cutoff and d not in self.shredded]
        return [d for _, d in sorted(due)]


# ---- a resident's demands, durable ---------------------------------------------------------------------------
metadata = MetaData()
resident_demands = Table(
    "intake_resident_demands",
    metadata,
    Column("demand_id", String(36), primary_key=True),
    Column("resident_id", String(36), nullable=False, index=True),
    Column("posted_at", DateTime(timezone=True), nullable=False),
)
# How far the event log was read into the table (at start): posts are written when they are saved, and a start
# reads the log from here on, which fills a new table (a store from before it) and any post whose row was lost
# between saving the demand and writing its row.
resident_demands_read = Table(
    "intake_resident_demands_read",
    metadata,
    Column("name", String(16), primary_key=True),
    Column("position", BigInteger, nullable=False),
)
POSTED = get_topic(Demand.Posted)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)  # SQLite drops the zone


class ResidentDemands:
    """Which demands each resident posted and when, in intake's own database (beside the residents' table), so a
    resident's demands are listed, newest first, without reading the event log. Ids and times only."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        metadata.create_all(engine)

    def add(self, resident_id: str, demand_id: str, posted_at: datetime) -> None:
        """Record a posted demand (again: no-op)."""
        with self.engine.begin() as conn:
            if conn.execute(select(resident_demands.c.demand_id)
                            .where(resident_demands.c.demand_id == demand_id)).first() is None:
                try:
                    conn.execute(insert(resident_demands).values(
                        demand_id=demand_id, resident_id=resident_id, posted_at=_utc(posted_at)))
                except IntegrityError:  # a concurrent retry of the same post wrote it first
                    pass

    def catch_up(self, app: Any) -> int:
        """Read the posts the log holds beyond the position read last time into the table. Returns how many rows
        were added (a new table: every demand ever posted)."""
        with self.engine.connect() as conn:
            position = conn.execute(select(resident_demands_read.c.position)
                                    .where(resident_demands_read.c.name == "log")).scalar() or 0
        added = 0
        while True:
            batch = app.recorder.select_notifications(start=position + 1, limit=app.log_section_size,
                                                      topics=[POSTED])
            if not batch:
                return added
            rows = []
            for notification in batch:
                e = app.mapper.to_domain_event(notification)
                rows.append({"demand_id": str(e.originator_id), "resident_id": e.resident_id,
                             "posted_at": _utc(e.timestamp)})
            with self.engine.begin() as conn:
                held = set(conn.execute(select(resident_demands.c.demand_id).where(
                    resident_demands.c.demand_id.in_([r["demand_id"] for r in rows]))).scalars())
                new = [r for r in rows if r["demand_id"] not in held]
                if new:
                    conn.execute(insert(resident_demands), new)
                position = batch[-1].id
                moved = conn.execute(update(resident_demands_read).where(resident_demands_read.c.name == "log")
                                     .values(position=position)).rowcount
                if not moved:
                    conn.execute(insert(resident_demands_read).values(name="log", position=position))
            added += len(new)

    def posted_at(self, resident_id: str, demand_id: str) -> datetime | None:
        with self.engine.connect() as conn:
            at = conn.execute(select(resident_demands.c.posted_at).where(
                resident_demands.c.demand_id == demand_id, resident_demands.c.resident_id == resident_id)).scalar()
        return _utc(at) if at is not None else None

    def newest(self, resident_id: str, limit: int, before: str | None = None) -> tuple[list[str], bool]:
        """Up to `limit` of the resident's demand ids, newest first (posted before the demand `before`, one of
        theirs, when given), and whether there are more."""
        query = select(resident_demands.c.demand_id).where(resident_demands.c.resident_id == resident_id)
        if before is not None:
            at = self.posted_at(resident_id, before)
            if at is None:
                raise ValueError(before)
            query = query.where(or_(resident_demands.c.posted_at < at,
                                    and_(resident_demands.c.posted_at == at, resident_demands.c.demand_id < before)))
        query = query.order_by(resident_demands.c.posted_at.desc(), resident_demands.c.demand_id.desc())
        with self.engine.connect() as conn:
            ids = list(conn.execute(query.limit(limit + 1)).scalars())
        return ids[:limit], len(ids) > limit
