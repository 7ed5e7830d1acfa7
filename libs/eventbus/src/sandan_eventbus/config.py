"""Environment-only configuration that fails fast.

A service's settings are one `pydantic_settings.BaseSettings` class (`settings_from_env` reads it); a missing or
malformed value is a ConfigError naming the variable, e.g. `INTAKE_EVENTSTORE_URL: field required`, which
`load_or_exit` prints after the service's name before exiting. The older readers (`required`, `optional`,
`number`) remain for the few variables read outside a settings class.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qs, unquote, urlparse

from pydantic import AfterValidator, ValidationError
from pydantic_settings import BaseSettings

T = TypeVar("T")
S = TypeVar("S", bound=BaseSettings)


class ConfigError(RuntimeError):
    pass


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def check_log_level(value: str) -> str:
    """LOG_LEVEL in any case (`info` as well as `INFO`): logging itself only knows the upper-case names."""
    level = value.strip().upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)} (any case), got {level[:20]!r}")
    return level


LogLevel = Annotated[str, AfterValidator(check_log_level)]


class ServiceSettings(BaseSettings):
    """A service's settings class: read from the environment under each variable's documented name only (the
    alias, or env_prefix + the field's name), and constructible by field name too, aliased fields included
    (`Settings(kafka_bootstrap_servers=...)` in tests; pydantic alone would ignore that and read the environment)."""

    def __init__(self, **values: Any) -> None:
        fields = type(self).model_fields
        super().__init__(**{_alias(k, fields[k]) if k in fields else k: v for k, v in values.items()})


def _alias(name: str, info: Any) -> str:
    return info.validation_alias if isinstance(info.validation_alias, str) else name


def env_name(cls: type[BaseSettings] | None, key: str | int) -> str:
    """The variable behind a settings field (given by name or by its alias, as a ValidationError's `loc` is)."""
    if cls is None:
        return str(key).upper()
    for name, info in cls.model_fields.items():
        alias = info.validation_alias if isinstance(info.validation_alias, str) else info.alias
        if alias and key in (name, alias):
            return alias.upper()
        if key == name:
            return f"{cls.model_config.get('env_prefix', '')}{name}".upper()
    return str(key).upper()


def describe(error: ValidationError, cls: type[BaseSettings] | None = None) -> str:
    """One line for a settings ValidationError: each problem after the variable it concerns; never the value."""
    problems = []
    for e in error.errors(include_input=False, include_url=False):
        message = str(e["msg"]).removeprefix("Value error, ")
        if e["type"] == "missing" or (e["type"] == "string_too_short" and e.get("ctx", {}).get("min_length") == 1):
            message = "field required"  # unset, empty or blank
        name = env_name(cls, e["loc"][0]) if e["loc"] else ""
        problems.append(message if not name or message.startswith(name) else f"{name}: {message}")
    return "; ".join(problems)


def settings_from_env(cls: type[S], **given: Any) -> S:
    """A settings class read from the environment (`given` fields override it), or ConfigError naming the
    variable."""
    try:
        return cls(**given)
    except ValidationError as error:
        raise ConfigError(describe(error, cls)) from None


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
    """Read a service's settings; on a missing or malformed value print one line and exit 2 (no traceback):
    `<service>: <VARIABLE>: <problem>` (a settings class's ValidationError is named the same way)."""
    try:
        return load()
    except ConfigError as error:
        print(f"{service}: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    except ValidationError as error:
        # the class, to name its variables (prefix, aliases): `load` itself, or the one its name says
        named = [c for c in _settings_classes() if c.__name__ == error.title]
        settings = load if isinstance(load, type) and issubclass(load, BaseSettings) else (
            named[0] if len(named) == 1 else None)
        print(f"{service}: {describe(error, settings)}", file=sys.stderr)
        raise SystemExit(2) from None


def _settings_classes(cls: type[BaseSettings] = BaseSettings) -> list[type[BaseSettings]]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_settings_classes(sub)]
    return found
