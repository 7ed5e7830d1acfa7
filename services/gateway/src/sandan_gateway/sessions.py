"""Server-side sessions: the only state the gateway keeps (no business state).

The browser holds an opaque random id in an HttpOnly, SameSite=Lax cookie (Secure over https); the store keeps,
under the id's SHA-256 (a copy of the table gives no usable cookie), the person's tokens, the CSRF token and the
times. A session ends after `idle` seconds unused or `lifetime` seconds in all, at logout, or when its refresh
token is refused. SQL through SQLAlchemy: SQLite for one replica, PostgreSQL for several; `memory://` is a
throwaway SQLite file (tests, the demo: one replica only, sessions lost at restart).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from sqlalchemy import Column, Float, MetaData, String, Table, Text, delete, insert, select, update

from sandan_eventbus.sql import engine_for

metadata = MetaData()
sessions = Table(
    "gateway_sessions", metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("data", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
)


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


@dataclass
class Session:
    access_token: str
    refresh_token: str = ""
    id_token: str = ""
    access_expires_at: float = 0.0  # epoch seconds
    claims: dict[str, Any] = field(default_factory=dict)  # the verified access token's claims
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    session_id: str = field(default="", compare=False)  # the cookie value; never stored
    created_at: float = 0.0
    last_seen: float = 0.0

    def stored(self) -> str:
        body = asdict(self)
        for transient in ("session_id", "created_at", "last_seen"):
            body.pop(transient)
        return json.dumps(body)


class SessionStore:
    def __init__(self, url: str, idle: float = 1800, lifetime: float = 36000,
                 clock: Callable[[], float] = time.time) -> None:
        self.engine = engine_for(url)
        metadata.create_all(self.engine)
        self.idle, self.lifetime, self.clock = idle, lifetime, clock

    def close(self) -> None:
        self.engine.dispose()

    def create(self, session: Session) -> Session:
        session.session_id = secrets.token_urlsafe(32)
        now = self.clock()
        session.created_at = session.last_seen = now
        with self.engine.begin() as conn:
            conn.execute(insert(sessions).values(id_hash=_hash(session.session_id), data=session.stored(),
                                                 created_at=now, last_seen=now))
        return session

    def get(self, session_id: str) -> Session | None:
        """The live session for this cookie value (and mark it used), or None (unknown, idle too long, too old)."""
        if not session_id or len(session_id) > 100:
            return None
        key, now = _hash(session_id), self.clock()
        with self.engine.begin() as conn:
            row = conn.execute(select(sessions).where(sessions.c.id_hash == key)).first()
            if row is None:
                return None
            if now - row.last_seen > self.idle or now - row.created_at > self.lifetime:
                conn.execute(delete(sessions).where(sessions.c.id_hash == key))
                return None
            conn.execute(update(sessions).where(sessions.c.id_hash == key).values(last_seen=now))
        # fields a session stored by an older gateway had and this one no longer knows are dropped
        known = {f.name for f in fields(Session)}
        found = Session(**{k: v for k, v in json.loads(row.data).items() if k in known})
        found.session_id, found.created_at, found.last_seen = session_id, row.created_at, now
        return found

    def save(self, session: Session) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(sessions).where(sessions.c.id_hash == _hash(session.session_id))
                         .values(data=session.stored()))

    def delete(self, session_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(sessions).where(sessions.c.id_hash == _hash(session_id)))

    def sweep(self) -> int:
        """Remove ended sessions; returns how many."""
        now = self.clock()
        with self.engine.begin() as conn:
            gone = conn.execute(delete(sessions).where(
                (sessions.c.last_seen < now - self.idle) | (sessions.c.created_at < now - self.lifetime)))
        return gone.rowcount or 0

    def alive(self, session_id: str) -> bool:
        """Is the session still there (without touching it)? The live stream asks this to close itself."""
        now = self.clock()
        with self.engine.connect() as conn:
            row = conn.execute(select(sessions.c.last_seen, sessions.c.created_at)
                               .where(sessions.c.id_hash == _hash(session_id))).first()
        return row is not None and now - row.created_at <= self.lifetime and now - row.last_seen <= self.idle
