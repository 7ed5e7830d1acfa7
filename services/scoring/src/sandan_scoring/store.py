"""scoring's own tables (SQLite or PostgreSQL by URL): the ledger, the consumed positions, what was
published, the notices, and who asked for what (the requests: rebuilds, what-ifs, notice publications).

Ledger rows and positions are written in one transaction per batch, so after a crash the stored ledger is
exactly the fold of the stored positions. Each *generation* of the ledger has its own table
(`scoring_entries_<n>`): a rebuild fills a new one while it folds (a `GenerationWriter`), then switches the
current generation in one transaction (the atomic swap) and drops the old table. The published-ids table
spans generations, so a rebuild under the same rules publishes nothing new.
"""

from __future__ import annotations

import json
import queue
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import orjson
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    delete,
    exists,
    func,
    insert,
    inspect,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import Select

from sandan_eventbus.sql import engine_for
from sandan_eventbus.trace import Actor
from sandan_scoring.fold import Entry

metadata = MetaData()
meta = Table("scoring_meta", metadata, Column("key", String(40), primary_key=True),
             Column("value", String(200), nullable=False))
positions = Table("scoring_positions", metadata,
                  Column("generation", Integer, primary_key=True),
                  Column("topic", String(100), primary_key=True),
                  Column("partition", Integer, primary_key=True),
                  Column("next_offset", Integer, nullable=False))


@cache
def entries_table(generation: int) -> Table:
    """The ledger rows of one generation. Its unique index on entry_id is built after a bulk load (faster
    than keeping it up to date row by row) and exists from the start for a table written live."""
    return Table(f"scoring_entries_{generation}", MetaData(),
                 Column("entry_id", String(64), nullable=False),
                 Column("member_id", String(64), nullable=False),
                 Column("points", Integer, nullable=False),
                 Column("rule", String(40), nullable=False),
                 Column("rule_set_version", String(40), nullable=False),
                 Column("quarter", String(6), nullable=False),
                 Column("sources", Text, nullable=False),
                 Column("occurred_at", DateTime(timezone=True), nullable=False),
                 Column("correlation_id", String(200), nullable=False))


_GENERATION_TABLE = re.compile(r"^scoring_entries_(\d+)$")


def _create_index(conn: Connection, generation: int) -> None:
    name = entries_table(generation).name
    conn.execute(text(f"CREATE UNIQUE INDEX IF NOT EXISTS ux_{name} ON {name} (entry_id)"))


published = Table("scoring_published", metadata,
                  Column("event_id", String(250), primary_key=True),
                  Column("published_at", DateTime(timezone=True), nullable=False))
stars = Table("scoring_stars", metadata,
              Column("member_id", String(64), primary_key=True),
              Column("quarter", String(6), primary_key=True),
              Column("stars", Integer, nullable=False))
# Every star change decided, with the message that announces it (the outbox of StarRatingChanged): written
# before it is published, so a re-publish after a crash sends the same bytes. `seq` is the change's place in
# the member's changes of that quarter (1, 2, ...), part of its event id: up, down and up again are three ids.
star_changes = Table("scoring_star_changes", metadata,
                     Column("event_id", String(250), primary_key=True),
                     Column("member_id", String(64), nullable=False),
                     Column("quarter", String(6), nullable=False),
                     Column("seq", Integer, nullable=False),
                     Column("stars", Integer, nullable=False),
                     Column("body", Text, nullable=False),
                     Column("created_at", DateTime(timezone=True), nullable=False),
                     UniqueConstraint("member_id", "quarter", "seq", name="ux_scoring_star_changes_seq"))
# What the publisher could not encode or publish (a deterministic error), with the error: set aside so the rest
# flows; tried once more after each restart (a fixed bug then publishes it) and removed once published.
set_aside = Table("scoring_set_aside", metadata,
                  Column("event_id", String(250), primary_key=True),
                  Column("kind", String(20), nullable=False),  # entry | stars | notice
                  Column("error", String(500), nullable=False),
                  Column("attempts", Integer, nullable=False),
                  Column("first_at", DateTime(timezone=True), nullable=False),
                  Column("last_at", DateTime(timezone=True), nullable=False))
# A notice, with the message announcing it and who asked for it (the first to ask: the notice is theirs; later
# requests for the same id publish nothing new and are in `scoring_requests`). The message is written before it is
# published, so a re-publish after a crash sends the same bytes. Rows from before messages and actors were stored
# have NULL there (added columns: see `_add_missing_columns`).
notices = Table("scoring_notices", metadata,
                Column("notice_id", String(200), primary_key=True),
                Column("scope", String(20), nullable=False),
                Column("scope_id", String(64), nullable=False),
                Column("quarter", String(6), nullable=False),
                Column("rule_set_version", String(40), nullable=False),
                Column("body", Text, nullable=False),
                Column("created_at", DateTime(timezone=True), nullable=False),
                Column("message", Text, nullable=True),
                Column("actor_subject", String(200), nullable=True),  # the token's opaque subject, never a name
                Column("actor_role", String(40), nullable=True),
                Column("actor_on_behalf_of", String(200), nullable=True))
# Who asked scoring for what, and how it ended: every Rebuild, WhatIf and PublishQuarterlyNotices that passed its
# checks, written when it starts (so a crash still leaves who asked) and finished with its outcome. `subject` is
# empty for what no person asked (a rebuild at start because the store and the log disagree): `detail` says why.
requests = Table("scoring_requests", metadata,
                 Column("request_id", Integer, primary_key=True, autoincrement=True),
                 Column("action", String(40), nullable=False),  # Rebuild | WhatIf | PublishQuarterlyNotices
                 Column("subject", String(200), nullable=False),
                 Column("role", String(40), nullable=False),
                 Column("on_behalf_of", String(200), nullable=False),
                 Column("rule_set_version", String(40), nullable=False),
                 Column("quarter", String(6), nullable=False),
                 Column("correlation_id", String(200), nullable=False),
                 Column("started_at", DateTime(timezone=True), nullable=False),
                 Column("finished_at", DateTime(timezone=True), nullable=True),
                 Column("outcome", String(20), nullable=False),  # running | done | failed | interrupted
                 Column("detail", String(500), nullable=False))

Positions = dict[tuple[str, int], int]


class ScoringStore:
    def __init__(self, url: str) -> None:
        self.engine = engine_for(url)
        metadata.create_all(self.engine)
        _add_missing_columns(self.engine)
        self._ready: set[int] = set()  # generations whose table and index exist

    # ---- generation and rule set ----------------------------------------------------------------
    def _meta(self, conn: Connection, key: str) -> str | None:
        return conn.execute(select(meta.c.value).where(meta.c.key == key)).scalar()

    def _set_meta(self, conn: Connection, key: str, value: str) -> None:
        if conn.execute(update(meta).where(meta.c.key == key).values(value=value)).rowcount == 0:
            conn.execute(insert(meta).values(key=key, value=value))

    def current(self) -> tuple[int, str | None]:
        """(current generation, its rule set version or None when nothing was stored yet)."""
        with self.engine.connect() as conn:
            generation = self._meta(conn, "generation")
            return (int(generation) if generation else 0), self._meta(conn, "rule_set_version")

    def positions(self, generation: int) -> Positions:
        with self.engine.connect() as conn:
            rows = conn.execute(select(positions.c.topic, positions.c.partition, positions.c.next_offset)
                                .where(positions.c.generation == generation))
            return {(r.topic, r.partition): r.next_offset for r in rows}

    # ---- writing ----------------------------------------------------------------------------------
    def _ensure_table(self, conn: Connection, generation: int) -> Table:
        table = entries_table(generation)
        if generation not in self._ready:
            table.create(conn, checkfirst=True)
            _create_index(conn, generation)
            self._ready.add(generation)
        return table

    def commit_batch(self, generation: int, rule_set_version: str, new_entries: Iterable[Entry],
                     moved: Positions) -> None:
        """New ledger rows and the positions that produced them, in one transaction."""
        rows = [_row(rule_set_version, e) for e in new_entries]
        with self.engine.begin() as conn:
            table = self._ensure_table(conn, generation)
            if rows:
                conn.execute(insert(table), rows)
            self._write_positions(conn, generation, moved)

    def _write_positions(self, conn: Connection, generation: int, moved: Positions) -> None:
        for (topic, partition), offset in moved.items():
            done = conn.execute(update(positions).where(
                (positions.c.generation == generation) & (positions.c.topic == topic)
                & (positions.c.partition == partition)).values(next_offset=offset)).rowcount
            if not done:
                conn.execute(insert(positions).values(generation=generation, topic=topic, partition=partition,
                                                      next_offset=offset))

    def generation_writer(self, generation: int, rule_set_version: str) -> GenerationWriter:
        """Start writing a new generation's rows (replacing any leftovers of that number)."""
        self._ready.discard(generation)
        return GenerationWriter(self, generation, rule_set_version)

    def make_current(self, generation: int, rule_set_version: str, at: Positions) -> None:
        """The atomic swap: the generation (its rows already written) and its positions become current in
        one transaction; then the other generations' tables are dropped."""
        with self.engine.begin() as conn:
            conn.execute(delete(positions).where(positions.c.generation == generation))
            self._write_positions(conn, generation, at)
            self._set_meta(conn, "generation", str(generation))
            self._set_meta(conn, "rule_set_version", rule_set_version)
            conn.execute(delete(positions).where(positions.c.generation != generation))
        self._ready.add(generation)
        self.drop_other_generations(generation)

    def drop_other_generations(self, keep: int) -> None:
        """Drop leftover tables (a replaced generation, or a rebuild that crashed before its swap)."""
        with self.engine.begin() as conn:
            for name in inspect(conn).get_table_names():
                match = _GENERATION_TABLE.match(name)
                if match and int(match.group(1)) != keep:
                    entries_table(int(match.group(1))).drop(conn, checkfirst=True)
                    self._ready.discard(int(match.group(1)))

    def swap_in(self, generation: int, rule_set_version: str, all_entries: Iterable[Entry], at: Positions) -> None:
        """Write a whole generation and make it current (the old generation is dropped)."""
        writer = self.generation_writer(generation, rule_set_version)
        try:
            writer.add(list(all_entries))
            writer.close()
        except BaseException:
            writer.abort()
            raise
        self.make_current(generation, rule_set_version, at)

    # ---- reading ----------------------------------------------------------------------------------
    def _scalars(self, generation: int, query: Callable[[Table], Select[Any]]) -> list[Any]:
        """`query` over one generation's table; nothing when that table does not exist (yet, or any more)."""
        table = entries_table(generation)
        with self.engine.connect() as conn:
            if not inspect(conn).has_table(table.name):
                return []
            return list(conn.execute(query(table)).scalars())

    def entry_ids(self, generation: int) -> set[str]:
        return set(self._scalars(generation, lambda t: select(t.c.entry_id)))

    def count_entries(self, generation: int) -> int:
        return sum(self._scalars(generation, lambda t: select(func.count()).select_from(t)))

    # ---- what was published (spans generations) ----------------------------------------------------
    def unpublished(self, event_ids: Iterable[str]) -> set[str]:
        wanted = set(event_ids)
        if not wanted:
            return set()
        with self.engine.connect() as conn:
            done: set[str] = set()
            ids = list(wanted)
            for start in range(0, len(ids), 500):
                done |= set(conn.execute(select(published.c.event_id)
                                         .where(published.c.event_id.in_(ids[start:start + 500]))).scalars())
        return wanted - done

    def unpublished_entries(self, generation: int) -> set[str]:
        """Entry ids of a generation whose PointsAwarded/Revoked was never published (one anti-join, so a
        rebuild does not ask about its ledger 500 ids at a time)."""
        return set(self._scalars(generation, lambda t: select(t.c.entry_id).where(
            ~exists().where(published.c.event_id == literal("scoring:").concat(t.c.entry_id)))))

    def mark_published(self, event_ids: Iterable[str]) -> None:
        """Idempotent: an id already marked (a re-publish after a crash) is left as it is, so one duplicate can
        never fail the whole batch (which was then published again, pass after pass)."""
        now = datetime.now(UTC)
        rows = [{"event_id": i, "published_at": now} for i in dict.fromkeys(event_ids)]
        if not rows:
            return
        with self.engine.begin() as conn:
            tidy = conn.execute(select(set_aside.c.event_id).limit(1)).first() is not None
            for start in range(0, len(rows), 1000):
                chunk = rows[start:start + 1000]
                conn.execute(self._insert_new(published, ["event_id"]), chunk)
                if tidy:  # published at last (a retry after a restart): no longer set aside
                    conn.execute(delete(set_aside).where(set_aside.c.event_id.in_([r["event_id"] for r in chunk])))

    def _insert_new(self, table: Table, keys: list[str]) -> Any:
        """INSERT that leaves rows whose `keys` already exist untouched (ON CONFLICT DO NOTHING)."""
        dialect = self.engine.dialect.name
        statement = (postgresql_insert(table) if dialect == "postgresql" else sqlite_insert(table))
        return statement.on_conflict_do_nothing(index_elements=keys)

    # ---- star levels and their changes (span generations) -------------------------------------------------
    def star_history(self) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], int]]:
        """(the last level recorded per (member, quarter), how many changes each has had)."""
        with self.engine.connect() as conn:
            levels = {(r.member_id, r.quarter): r.stars for r in conn.execute(select(stars))}
            counts = {(r.member_id, r.quarter): r.n for r in conn.execute(
                select(star_changes.c.member_id, star_changes.c.quarter, func.max(star_changes.c.seq).label("n"))
                .group_by(star_changes.c.member_id, star_changes.c.quarter))}
        return levels, counts

    def record_star_changes(self, changes: list[StarChange]) -> None:
        """The decided changes (with their messages) and the new levels, in one transaction."""
        if not changes:
            return
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            conn.execute(self._insert_new(star_changes, ["event_id"]), [
                {"event_id": ch.event_id, "member_id": ch.member_id, "quarter": ch.quarter, "seq": ch.seq,
                 "stars": ch.stars, "body": ch.body.decode(), "created_at": now} for ch in changes])
            for ch in changes:
                done = conn.execute(update(stars).where((stars.c.member_id == ch.member_id)
                                                        & (stars.c.quarter == ch.quarter))
                                    .values(stars=ch.stars)).rowcount
                if not done:
                    conn.execute(insert(stars).values(member_id=ch.member_id, quarter=ch.quarter, stars=ch.stars))

    def unpublished_star_changes(self) -> list[StarChange]:
        """Changes recorded but never marked published (a crash in between), in the order they were decided."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(star_changes).where(
                ~exists().where(published.c.event_id == star_changes.c.event_id))
                .order_by(star_changes.c.member_id, star_changes.c.quarter, star_changes.c.seq))
            return [StarChange(r.event_id, r.member_id, r.quarter, r.seq, r.stars, r.body.encode()) for r in rows]

    # ---- set aside -------------------------------------------------------------------------------------------------
    def set_aside(self, event_id: str, kind: str, error: str) -> None:
        now = datetime.now(UTC)
        error = error[:500]
        with self.engine.begin() as conn:
            done = conn.execute(update(set_aside).where(set_aside.c.event_id == event_id).values(
                error=error, attempts=set_aside.c.attempts + 1, last_at=now)).rowcount
            if not done:
                conn.execute(insert(set_aside).values(event_id=event_id, kind=kind, error=error, attempts=1,
                                                      first_at=now, last_at=now))

    def set_aside_items(self) -> list[SetAside]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(set_aside).order_by(set_aside.c.last_at.desc()))
            return [SetAside(r.event_id, r.kind, r.error, r.attempts, _aware(r.first_at), _aware(r.last_at))
                    for r in rows]

    # ---- notices ------------------------------------------------------------------------------------
    def save_notice(self, notice_id: str, scope: str, scope_id: str, quarter: str, version: str,
                    body: dict[str, Any], message: bytes | None = None, actor: Actor | None = None,
                    at: datetime | None = None) -> StoredNotice:
        """Store a notice unless its id is stored already, and return the one stored: the first stays (an id
        names one fact forever), also when two requests store it at the same time."""
        row = {"notice_id": notice_id, "scope": scope, "scope_id": scope_id, "quarter": quarter,
               "rule_set_version": version, "body": json.dumps(body, ensure_ascii=False),
               "created_at": at or datetime.now(UTC), "message": message.decode() if message is not None else None,
               "actor_subject": actor.subject if actor else None, "actor_role": actor.role if actor else None,
               "actor_on_behalf_of": actor.on_behalf_of if actor else None}
        with self.engine.begin() as conn:
            conn.execute(self._insert_new(notices, ["notice_id"]), row)
        stored = self.stored_notice(notice_id)
        assert stored is not None  # notices are never deleted
        return stored

    def stored_notice(self, notice_id: str) -> StoredNotice | None:
        with self.engine.connect() as conn:
            r = conn.execute(select(notices).where(notices.c.notice_id == notice_id)).first()
        if r is None:
            return None
        actor = Actor(r.actor_subject, r.actor_role or "", r.actor_on_behalf_of) if r.actor_subject else None
        return StoredNotice(r.notice_id, json.loads(r.body), _aware(r.created_at),
                            r.message.encode() if r.message is not None else None, actor)

    def notice(self, scope: str, scope_id: str, quarter: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(notices.c.body).where(
                (notices.c.scope == scope) & (notices.c.scope_id == scope_id) & (notices.c.quarter == quarter))
                .order_by(notices.c.created_at.desc())).first()
        return json.loads(row[0]) if row else None

    # ---- who asked for what ------------------------------------------------------------------------------
    def request_started(self, action: str, actor: Actor | None, *, rule_set_version: str = "", quarter: str = "",
                        correlation_id: str = "", detail: str = "") -> int:
        """Record a request as it starts (outcome `running`); its id, for `request_finished`."""
        with self.engine.begin() as conn:
            result = conn.execute(insert(requests).values(
                action=action, subject=actor.subject if actor else "", role=actor.role if actor else "",
                on_behalf_of=(actor.on_behalf_of or "") if actor else "", rule_set_version=rule_set_version,
                quarter=quarter, correlation_id=correlation_id[:200], started_at=datetime.now(UTC),
                finished_at=None, outcome="running", detail=detail[:500]))
            return int(result.inserted_primary_key[0])

    def request_finished(self, request_id: int, outcome: str, detail: str = "", *,
                         rule_set_version: str | None = None) -> None:
        values: dict[str, Any] = {"finished_at": datetime.now(UTC), "outcome": outcome, "detail": detail[:500]}
        if rule_set_version is not None:
            values["rule_set_version"] = rule_set_version
        with self.engine.begin() as conn:
            conn.execute(update(requests).where(requests.c.request_id == request_id).values(**values))

    def requests_interrupted(self) -> int:
        """At start: what was still running when the last process stopped ended without an outcome."""
        with self.engine.begin() as conn:
            return int(conn.execute(update(requests).where(requests.c.outcome == "running").values(
                outcome="interrupted", detail="the service stopped before it ended")).rowcount)

    def requests(self, *, action: str | None = None, subject: str | None = None, quarter: str | None = None,
                 since: datetime | None = None, limit: int = 1000) -> list[Request]:
        """Who asked for what, and when, in the order they asked (the oldest first; at most `limit`, the newest)."""
        query = select(requests)
        if action is not None:
            query = query.where(requests.c.action == action)
        if subject is not None:
            query = query.where(requests.c.subject == subject)
        if quarter is not None:
            query = query.where(requests.c.quarter == quarter)
        if since is not None:
            query = query.where(requests.c.started_at >= since)
        with self.engine.connect() as conn:
            rows = list(conn.execute(query.order_by(requests.c.request_id.desc()).limit(limit)))
        return [Request(r.request_id, r.action, r.subject, r.role, r.on_behalf_of, r.rule_set_version, r.quarter,
                        r.correlation_id, _aware(r.started_at), _aware(r.finished_at) if r.finished_at else None,
                        r.outcome, r.detail) for r in reversed(rows)]


def _add_missing_columns(engine: Engine) -> None:
    """Add the nullable columns a newer version declares to tables an older version created."""
    for table in metadata.sorted_tables:
        present = {c["name"] for c in inspect(engine).get_columns(table.name)}
        for column in table.columns:
            if column.name in present:
                continue
            if not column.nullable:
                raise RuntimeError(f"{table.name}.{column.name}: only nullable columns can be added")
            ddl = column.type.compile(dialect=engine.dialect)
            try:
                with engine.begin() as conn:
                    conn.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {ddl}'))
            except DBAPIError:
                if column.name not in {c["name"] for c in inspect(engine).get_columns(table.name)}:
                    raise
                # a second process starting at the same time added it first


@dataclass(frozen=True)
class StoredNotice:
    """A notice as stored: its body, when it was made, the message announcing it (None: stored before messages
    were kept) and who asked for it (None: no one recorded)."""

    notice_id: str
    body: dict[str, Any]
    created_at: datetime
    message: bytes | None
    actor: Actor | None


@dataclass(frozen=True)
class Request:
    """One recorded request: who (opaque subject, role, on whose behalf) asked for what, when, and how it ended."""

    request_id: int
    action: str
    subject: str
    role: str
    on_behalf_of: str
    rule_set_version: str
    quarter: str
    correlation_id: str
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    detail: str

    @property
    def seconds(self) -> float | None:
        return (self.finished_at - self.started_at).total_seconds() if self.finished_at else None


@dataclass(frozen=True)
class StarChange:
    """A decided StarRatingChanged: its id, whose level it changes to what, and the message (bytes) announcing it."""

    event_id: str
    member_id: str
    quarter: str
    seq: int
    stars: int
    body: bytes


@dataclass(frozen=True)
class SetAside:
    event_id: str
    kind: str  # entry | stars | notice
    error: str
    attempts: int
    first_at: datetime
    last_at: datetime


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)  # SQLite keeps no zone


def _row(version: str, e: Entry) -> dict[str, Any]:
    return {"entry_id": e.entry_id, "member_id": e.member_id, "points": e.points, "rule": e.rule,
            "rule_set_version": version, "quarter": e.quarter, "sources": ",".join(e.sources),
            "occurred_at": e.occurred_at, "correlation_id": e.correlation_id}


# A chunk of rows goes in as one JSON text (one array per row), unpacked by the database itself: one statement
# per chunk, with no per-row work in Python. On SQLite it runs in C with the GIL released, on PostgreSQL in the
# server, so either way it overlaps the fold on the other core. orjson writes times as RFC 3339; SQLAlchemy's
# SQLite DateTime stores "YYYY-MM-DD HH:MM:SS.ffffff" (reshaped here), PostgreSQL parses them as timestamptz.
_SQLITE_BULK = """INSERT INTO {table} (entry_id, member_id, points, rule, rule_set_version, quarter, sources,
                                        occurred_at, correlation_id)
SELECT r.value ->> 0, r.value ->> 1, r.value ->> 2, r.value ->> 3, :version, r.value ->> 4, r.value ->> 5,
       substr(r.value ->> 6, 1, 10) || ' ' || substr(r.value ->> 6, 12, 8) || '.' ||
         CASE WHEN substr(r.value ->> 6, 20, 1) = '.' THEN substr(r.value ->> 6, 21, 6) ELSE '000000' END,
       r.value ->> 7
FROM json_each(:rows) AS r"""
_POSTGRESQL_BULK = """INSERT INTO {table} (entry_id, member_id, points, rule, rule_set_version, quarter, sources,
                                        occurred_at, correlation_id)
SELECT r ->> 0, r ->> 1, (r ->> 2)::integer, r ->> 3, :version, r ->> 4, r ->> 5, (r ->> 6)::timestamptz, r ->> 7
FROM json_array_elements(CAST(:rows AS json)) AS r"""


def _bulk_insert(dialect: str) -> str | None:
    """The JSON bulk insert for this database, or None (then batched inserts): `->>` needs SQLite 3.38."""
    if dialect == "postgresql":
        return _POSTGRESQL_BULK
    if dialect == "sqlite" and sqlite3.sqlite_version_info >= (3, 38):
        return _SQLITE_BULK
    return None


class GenerationWriter:
    """Writes a rebuilt generation's rows while the fold is still running, in chunks, each its own
    transaction, from a thread. The generation is not current until `make_current`, so its rows are
    invisible meanwhile; a rebuild that fails or crashes leaves a table the next swap drops."""

    def __init__(self, store: ScoringStore, generation: int, version: str) -> None:
        self.store, self.generation, self.version = store, generation, version
        self.table = entries_table(generation)
        with store.engine.begin() as conn:
            self.table.drop(conn, checkfirst=True)
            self.table.create(conn)  # no index yet: built once, after the load
        self.sqlite = store.engine.dialect.name == "sqlite"
        self.bulk = _bulk_insert(store.engine.dialect.name)
        self.rows = 0
        self._chunks: queue.Queue[list[Entry] | None] = queue.Queue(maxsize=8)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"scoring-writer-{generation}", daemon=True)
        self._thread.start()

    def add(self, chunk: list[Entry]) -> None:
        if self._error is not None:
            raise self._error
        if chunk:
            self._chunks.put(chunk)

    def close(self) -> None:
        """Wait for every row, then build the unique index (a duplicate entry id fails here)."""
        self._chunks.put(None)
        self._thread.join()
        if self._error is not None:
            self.abort()
            raise self._error
        try:
            with self.store.engine.begin() as conn:
                if self.sqlite:
                    conn.exec_driver_sql("PRAGMA threads = 2")  # the index build sorts on two threads
                _create_index(conn, self.generation)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        if self._thread.is_alive():
            self._chunks.put(None)
            self._thread.join()
        with self.store.engine.begin() as conn:
            self.table.drop(conn, checkfirst=True)

    def _run(self) -> None:
        while (chunk := self._chunks.get()) is not None:
            if self._error is not None:
                continue  # drain: the failure is reported by close()
            try:
                self._write(chunk)
            except BaseException as exc:
                self._error = exc

    def _write(self, chunk: list[Entry]) -> None:
        with self.store.engine.begin() as conn:
            if self.bulk is not None:
                rows = orjson.dumps([(e.entry_id, e.member_id, e.points, e.rule, e.quarter, ",".join(e.sources),
                                      e.occurred_at, e.correlation_id) for e in chunk])
                conn.execute(text(self.bulk.format(table=self.table.name)),
                             {"version": self.version, "rows": rows.decode()})
            else:
                for start in range(0, len(chunk), 5000):
                    conn.execute(insert(self.table), [_row(self.version, e) for e in chunk[start:start + 5000]])
        self.rows += len(chunk)
