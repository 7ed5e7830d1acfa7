"""Server-side sessions survive a gateway upgrade: a session stored by an older gateway, with a field this one no
longer has, still opens (the person stays signed in), and an unknown cookie or a stale session opens nothing."""

from __future__ import annotations

import json

from sqlalchemy import insert

from sandan_gateway.sessions import Session, SessionStore, _hash, sessions


def test_a_session_stored_by_an_older_gateway_still_opens(tmp_path) -> None:
    now = [1000.0]
    store = SessionStore(f"sqlite:///{tmp_path}/s.db", idle=60, lifetime=600, clock=lambda: now[0])
    try:
        older = {"access_token": "a", "refresh_token": "r", "id_token": "", "access_expires_at": 1300.0,
                 "claims": {"sub": "s-1"}, "csrf": "c", "recent": ["d-1", "d-2"]}  # `recent`: gone since
        with store.engine.begin() as conn:
            conn.execute(insert(sessions).values(id_hash=_hash("cookie"), data=json.dumps(older), created_at=now[0],
                                                 last_seen=now[0]))
        found = store.get("cookie")
        assert found == Session(access_token="a", refresh_token="r", access_expires_at=1300.0,
                                claims={"sub": "s-1"}, csrf="c", created_at=1000.0, last_seen=1000.0)
        assert store.get("another cookie") is None
        now[0] += 61  # idle longer than allowed: gone
        assert store.get("cookie") is None
    finally:
        store.close()
