"""Environment-only settings, read once at start; a missing or malformed value stops the service."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field

from sandan_eventbus.auth.scopes import Places
from sandan_eventbus.config import ConfigError, eventstore_env, optional, required


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap_servers: str
    eventstore_url: str
    database_url: str
    grpc_address: str
    consumer_group: str
    log_level: str
    # Which town each community is in, for town and county offices' scope (SANDAN_PLACES_FILE; without it
    # offices reach no demand).
    places: Places = field(default_factory=Places)

    @classmethod
    def from_env(cls) -> Settings:
        eventstore_url = required("INTAKE_EVENTSTORE_URL")
        eventstore_env(eventstore_url)  # raises ConfigError on an unsupported URL, before anything starts
        database_url = optional("INTAKE_DATABASE_URL", eventstore_url)
        if not database_url.startswith(("sqlite:", "postgresql://", "postgres://", "memory://")):
            raise ConfigError(f"unsupported INTAKE_DATABASE_URL {database_url!r}")
        log_level = optional("LOG_LEVEL", "INFO").upper()
        if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ConfigError(f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {log_level!r}")
        return cls(
            kafka_bootstrap_servers=required("KAFKA_BOOTSTRAP_SERVERS"),
            eventstore_url=eventstore_url,
            database_url=database_url,
            grpc_address=optional("INTAKE_GRPC_ADDRESS", "127.0.0.1:50051"),
            consumer_group=optional("INTAKE_CONSUMER_GROUP", "intake"),
            log_level=log_level,
            places=_places(optional("SANDAN_PLACES_FILE", "")),
        )


def _places(path: str) -> Places:
    """Read at start, so a missing or malformed directory stops the service rather than refusing offices later."""
    try:
        return Places.from_file(path or None)
    except OSError as exc:
        raise ConfigError(f"SANDAN_PLACES_FILE: cannot read {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, AttributeError, TypeError, KeyError) as exc:
        raise ConfigError(f"SANDAN_PLACES_FILE: {path} is not a places directory: {exc}") from None
