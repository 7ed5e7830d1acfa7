"""Environment-only configuration that fails fast."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import parse_qs, unquote, urlparse

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


# PostgreSQL credentials and TLS stay out of the URL. The password: SANDAN_DB_PASSWORD_FILE (a mounted Secret,
# read for every new connection, so a rotated password needs no restart), else libpq's PGPASSWORD. TLS: libpq's
# own PGSSLMODE, PGSSLROOTCERT, PGSSLCERT, PGSSLKEY, which every connection of the process honours (eventsourcing's
# pool and SQLAlchemy's engines both connect through libpq). A password in the URL still works (older configs).
DB_PASSWORD_FILE = "SANDAN_DB_PASSWORD_FILE"  # noqa: S105 - the variable's name
POSTGRES_URL_OPTIONS = {"schema"}


def db_password() -> str:
    """The PostgreSQL password given apart from the URL ("" when none: libpq may still find ~/.pgpass)."""
    path = os.environ.get(DB_PASSWORD_FILE, "").strip()
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as error:
            raise ConfigError(f"{DB_PASSWORD_FILE}: cannot read {path} ({error.strerror})") from None
    return os.environ.get("PGPASSWORD", "")


def check_postgres_url(url: str) -> None:
    """Refuse URL options that would be silently ignored (an ignored sslmode=require means plaintext)."""
    unknown = set(parse_qs(urlparse(url).query, keep_blank_values=True)) - POSTGRES_URL_OPTIONS
    if unknown:
        raise ConfigError(f"unsupported option(s) {', '.join(sorted(unknown))} in a PostgreSQL URL (only "
                          "?schema=): give TLS settings as PGSSLMODE / PGSSLROOTCERT and the password as "
                          f"PGPASSWORD or {DB_PASSWORD_FILE}")


def eventstore_env(url: str) -> dict[str, str]:
    """Map one store URL to eventsourcing's settings.

    sqlite:///path/to/file.db (the embedded default), sqlite:///:memory:, memory://,
    postgresql://user[:password]@host:port/db[?schema=name] (the password preferably apart: see db_password).
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
        check_postgres_url(url)
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": parsed.path.lstrip("/") or "postgres",
            "POSTGRES_HOST": parsed.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(parsed.port or 5432),
            "POSTGRES_USER": unquote(parsed.username or "postgres"),
            "POSTGRES_LOCK_TIMEOUT": "5",
            "POSTGRES_POOL_SIZE": "5",
        }
        if parsed.password is not None:
            env["POSTGRES_PASSWORD"] = unquote(parsed.password)
        else:
            db_password()  # fail fast on an unreadable password file
            # eventsourcing calls this for every new connection of its pool.
            env["POSTGRES_GET_PASSWORD_TOPIC"] = f"{__name__}:db_password"
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
