"""SQLAlchemy engines for the services' own tables (personal data, read models), from the same URLs
as the event store: memory://, sqlite:///path, postgresql://...[?schema=name]."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

from sqlalchemy import Engine, create_engine
from sqlalchemy.pool import StaticPool

from sandan_eventbus.config import sqlalchemy_url


def engine_for(url: str) -> Engine:
    target = sqlalchemy_url(url)
    if target == "sqlite://":
        # One shared connection, or every worker thread would see its own empty in-memory database.
        return create_engine(target, poolclass=StaticPool, connect_args={"check_same_thread": False})
    if target.startswith("sqlite:"):
        return create_engine(target, connect_args={"check_same_thread": False})
    schema = parse_qs(urlparse(url).query).get("schema", [""])[0]
    connect_args = {"options": f"-csearch_path={schema}"} if schema else {}
    return create_engine(target, pool_pre_ping=True, connect_args=connect_args)
