"""SQLAlchemy engines for the services' own tables (personal data, read models), from the same URLs
as the event store: memory://, sqlite:///path, postgresql://...[?schema=name]. A PostgreSQL password and TLS
settings are given apart from the URL, as for the event store (sandan_eventbus.config.db_password)."""

from __future__ import annotations

import os
import tempfile
import weakref
from typing import Any
from urllib.parse import parse_qs, urlparse

from sqlalchemy import Engine, create_engine, event

from sandan_eventbus.config import check_postgres_url, db_password, sqlalchemy_url


def engine_for(url: str) -> Engine:
    target = sqlalchemy_url(url)
    if target == "sqlite://":
        # memory:// (unit tests): a throwaway SQLite file, removed with the engine. One in-memory connection
        # shared by every worker thread was not thread-safe (concurrent lanes broke it at random); a file gives
        # each thread its own connection with SQLite's own locking.
        fd, path = tempfile.mkstemp(prefix="sandan-", suffix=".db")
        os.close(fd)
        engine = create_engine(f"sqlite:///{path}", connect_args={"check_same_thread": False})
        weakref.finalize(engine, _remove, path)
        return engine
    if target.startswith("sqlite:"):
        return create_engine(target, connect_args={"check_same_thread": False})
    check_postgres_url(url)
    schema = parse_qs(urlparse(url).query).get("schema", [""])[0]
    connect_args = {"options": f"-csearch_path={schema}"} if schema else {}
    engine = create_engine(target, pool_pre_ping=True, connect_args=connect_args)
    if urlparse(url).password is None:
        db_password()  # fail fast on an unreadable password file

        @event.listens_for(engine, "do_connect")
        def _password(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> None:
            # Read for every new connection: a rotated password file is picked up without a restart.
            password = db_password()
            if password:
                cparams["password"] = password
    return engine


def _remove(path: str) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.remove(path + suffix)
        except FileNotFoundError:
            pass
