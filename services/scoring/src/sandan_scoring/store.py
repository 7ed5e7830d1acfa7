"""scoring's own tables (SQLite or PostgreSQL by URL): the ledger, the consumed positions, what was
published, and the notices.

Ledger rows and positions are written in one transaction per batch, so after a crash the stored ledger is
exactly the fold of the stored positions. A rebuild writes a new *generation* of rows and switches the
current generation in one transaction (the atomic swap); the published-ids table spans generations, so a
rebuild under the same rules publishes nothing new.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from sandan_eventbus.sql import engine_for
from sandan_scoring.fold import Entry

metadata = MetaData()
meta = Table("scoring_meta", metadata, Column("key", String(40), primary_key=True),
             Column("value", String(200), nullable=False))
positions = Table("scoring_positions", metadata,
                  Column("generation", Integer, primary_key=True),
                  Column("topic", String(100), primary_key=True),
                  Column("partition", Integer, primary_key=True),
                  Column("next_offset", Integer, nullable=False))
entries = Table("scoring_entries", metadata,
                Column("generation", Integer, primary_key=True),
                Column("entry_id", String(64), primary_key=True),
                Column("member_id", String(64), nullable=False, index=True),
                Column("points", Integer, nullable=False),
                Column("rule", String(40), nullable=False),
                Column("rule_set_version", String(40), nullable=False),
                Column("quarter", String(6), nullable=False),
                Column("sources", Text, nullable=False),
                Column("occurred_at", DateTime(timezone=True), nullable=False),
                Column("correlation_id", String(200), nullable=False))
published = Table("scoring_published", metadata,
                  Column("event_id", String(250), primary_key=True),
                  Column("published_at", DateTime(timezone=True), nullable=False))
stars = Table("scoring_stars", metadata,
              Column("member_id", String(64), primary_key=True),
              Column("quarter", String(6), primary_key=True),
              Column("stars", Integer, nullable=False))
notices = Table("scoring_notices", metadata,
                Column("notice_id", String(200), primary_key=True),
                Column("scope", String(20), nullable=False),
                Column("scope_id", String(64), nullable=False),
                Column("quarter", String(6), nullable=False),
                Column("rule_set_version", String(40), nullable=False),
                Column("body", Text, nullable=False),
                Column("created_at", DateTime(timezone=True), nullable=False))

Positions = dict[tuple[str, int], int]


class ScoringStore:
    def __init__(self, url: str) -> None:
        self.engine = engine_for(url)
        metadata.create_all(self.engine)

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
    def commit_batch(self, generation: int, rule_set_version: str, new_entries: Iterable[Entry],
                     moved: Positions) -> None:
        """New ledger rows and the positions that produced them, in one transaction."""
        rows = [_row(generation, rule_set_version, e) for e in new_entries]
        with self.engine.begin() as conn:
            if rows:
                conn.execute(insert(entries), rows)
            self._write_positions(conn, generation, moved)

    def _bulk_insert_entries(self, conn: Connection, generation: int, version: str, rows: list[Entry]) -> None:
        """A rebuild writes the whole ledger at once; on SQLite the driver's executemany over plain tuples is
        ~3x faster than the Core insert of dicts (measured on 400k rows)."""
        if not rows:
            return
        if conn.dialect.name != "sqlite":
            for start in range(0, len(rows), 5000):
                conn.execute(insert(entries), [_row(generation, version, e) for e in rows[start:start + 5000]])
            return
        columns = [c.name for c in entries.columns]
        sql = f"INSERT INTO scoring_entries ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
        stamp = entries.c.occurred_at.type.bind_processor(conn.dialect) or (lambda v: v)
        values = [(generation, e.entry_id, e.member_id, e.points, e.rule, version, e.quarter, ",".join(e.sources),
                   stamp(e.occurred_at), e.correlation_id) for e in rows]
        cursor = conn.connection.dbapi_connection.cursor()  # same transaction as `conn`
        try:
            cursor.executemany(sql, values)
        except sqlite3.IntegrityError as exc:  # the same error type as every other write here
            raise IntegrityError(sql, None, exc) from exc
        finally:
            cursor.close()

    def _write_positions(self, conn: Connection, generation: int, moved: Positions) -> None:
        for (topic, partition), offset in moved.items():
            done = conn.execute(update(positions).where(
                (positions.c.generation == generation) & (positions.c.topic == topic)
                & (positions.c.partition == partition)).values(next_offset=offset)).rowcount
            if not done:
                conn.execute(insert(positions).values(generation=generation, topic=topic, partition=partition,
                                                      next_offset=offset))

    def swap_in(self, generation: int, rule_set_version: str, all_entries: Iterable[Entry], at: Positions) -> None:
        """Write a rebuilt generation and make it current, atomically; the old generation is dropped."""
        with self.engine.begin() as conn:
            conn.execute(delete(entries).where(entries.c.generation == generation))
            conn.execute(delete(positions).where(positions.c.generation == generation))
            self._bulk_insert_entries(conn, generation, rule_set_version, list(all_entries))
            self._write_positions(conn, generation, at)
            self._set_meta(conn, "generation", str(generation))
            self._set_meta(conn, "rule_set_version", rule_set_version)
            conn.execute(delete(entries).where(entries.c.generation != generation))
            conn.execute(delete(positions).where(positions.c.generation != generation))

    # ---- reading ----------------------------------------------------------------------------------
    def entry_ids(self, generation: int) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.execute(select(entries.c.entry_id).where(entries.c.generation == generation)).scalars())

    def count_entries(self, generation: int) -> int:
        return len(self.entry_ids(generation))

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

    def mark_published(self, event_ids: Iterable[str]) -> None:
        now = datetime.now(UTC)
        rows = [{"event_id": i, "published_at": now} for i in event_ids]
        if rows:
            with self.engine.begin() as conn:
                conn.execute(insert(published), rows)

    def published_stars(self) -> dict[tuple[str, str], int]:
        with self.engine.connect() as conn:
            return {(r.member_id, r.quarter): r.stars for r in conn.execute(select(stars))}

    def record_stars(self, changed: dict[tuple[str, str], int]) -> None:
        with self.engine.begin() as conn:
            for (member, quarter), value in changed.items():
                done = conn.execute(update(stars).where((stars.c.member_id == member) & (stars.c.quarter == quarter))
                                    .values(stars=value)).rowcount
                if not done:
                    conn.execute(insert(stars).values(member_id=member, quarter=quarter, stars=value))

    # ---- notices ------------------------------------------------------------------------------------
    def save_notice(self, notice_id: str, scope: str, scope_id: str, quarter: str, version: str,
                    body: dict[str, Any]) -> bool:
        with self.engine.begin() as conn:
            if conn.execute(select(notices.c.notice_id).where(notices.c.notice_id == notice_id)).first():
                return False
            conn.execute(insert(notices).values(notice_id=notice_id, scope=scope, scope_id=scope_id,
                                                quarter=quarter, rule_set_version=version,
                                                body=json.dumps(body, ensure_ascii=False),
                                                created_at=datetime.now(UTC)))
            return True

    def notice(self, scope: str, scope_id: str, quarter: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(notices.c.body).where(
                (notices.c.scope == scope) & (notices.c.scope_id == scope_id) & (notices.c.quarter == quarter))
                .order_by(notices.c.created_at.desc())).first()
        return json.loads(row[0]) if row else None


def _row(generation: int, version: str, e: Entry) -> dict[str, Any]:
    return {"generation": generation, "entry_id": e.entry_id, "member_id": e.member_id, "points": e.points,
            "rule": e.rule, "rule_set_version": version, "quarter": e.quarter, "sources": ",".join(e.sources),
            "occurred_at": e.occurred_at, "correlation_id": e.correlation_id}
