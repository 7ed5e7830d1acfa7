"""Environment-only configuration that fails fast."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import unquote, urlparse

T = TypeVar("T")


class ConfigError(RuntimeError):
    pass


def required(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise ConfigError(f"environment variable {name} is required")
    return value


def optional(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name} must be a number, got {raw!r}") from None


def eventstore_env(url: str) -> dict[str, str]:
    """Map one store URL to eventsourcing's settings.

    sqlite:///path/to/file.db (the embedded default), sqlite:///:memory:, memory://,
    postgresql://user:password@host:port/db[?schema=name].
    """
    parsed = urlparse(url)
    if parsed.scheme == "memory":
        return {"PERSISTENCE_MODULE": "eventsourcing.popo"}
    if parsed.scheme == "sqlite":
        path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else ""
        if not path:
            raise ConfigError(f"sqlite store URL needs a path: {url!r}")
        if path == ":memory:":
            path = "file::memory:?mode=memory&cache=shared"
        return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": path,
                "SQLITE_LOCK_TIMEOUT": "10"}
    if parsed.scheme in ("postgresql", "postgres"):
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": parsed.path.lstrip("/") or "postgres",
            "POSTGRES_HOST": parsed.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(parsed.port or 5432),
            "POSTGRES_USER": unquote(parsed.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(parsed.password or ""),
            "POSTGRES_LOCK_TIMEOUT": "5",
            "POSTGRES_POOL_SIZE": "5",
        }
        for part in parsed.query.split("&"):
            if part.startswith("schema="):
                env["POSTGRES_SCHEMA"] = part[len("schema="):]
        return env
    raise ConfigError(f"unsupported event store URL {url!r} (sqlite:///..., postgresql://..., memory://)")


def sqlalchemy_url(url: str) -> str:
    """The same URL, spelled for SQLAlchemy (psycopg 3 driver for PostgreSQL)."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1].split("?", 1)[0]
    if url == "memory://":
        return "sqlite://"
    return url


def load_or_exit(service: str, load: Callable[[], T]) -> T:
    """Read a service's settings; on a missing or malformed value print one line and exit 2 (no traceback)."""
    try:
        return load()
    except ConfigError as error:
        print(f"{service}: {error}", file=sys.stderr)
        raise SystemExit(2) from None
