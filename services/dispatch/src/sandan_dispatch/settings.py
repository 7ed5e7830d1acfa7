"""dispatch's configuration: environment only, failing fast on what has no safe default.

Identity (SANDAN_OIDC_*) and gRPC transport (SANDAN_GRPC_*) settings are the runtime's (sandan_eventbus.security).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field

from sandan_eventbus.auth.scopes import Places
from sandan_eventbus.config import ConfigError, number, optional, required

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def places_from(path: str) -> Places:
    """The places directory (which town each community belongs to, the county's id). Unset: town and county
    offices reach no community (refused rather than guessed); set but unreadable: a clear error at start."""
    try:
        return Places.from_file(path or None)
    except OSError as error:
        raise ConfigError(f"SANDAN_PLACES_FILE: cannot read {path} ({error.strerror})") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"SANDAN_PLACES_FILE: {path} is not valid TOML ({error})") from None


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap: str
    eventstore_url: str
    database_url: str
    grpc_address: str
    consumer_group: str
    deadline_sweep_seconds: float
    log_level: str
    places: Places = field(default_factory=Places)

    @classmethod
    def from_env(cls) -> Settings:
        store = required("DISPATCH_EVENTSTORE_URL")
        log_level = optional("LOG_LEVEL", "INFO").upper()  # `info` as well as `INFO`
        if log_level not in LOG_LEVELS:
            raise ConfigError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)} (any case), got {log_level!r}")
        return cls(
            kafka_bootstrap=required("KAFKA_BOOTSTRAP_SERVERS"),
            eventstore_url=store,
            database_url=optional("DISPATCH_DATABASE_URL", store),
            grpc_address=optional("DISPATCH_GRPC_ADDRESS", "127.0.0.1:50052"),
            consumer_group=optional("DISPATCH_CONSUMER_GROUP", "dispatch"),
            deadline_sweep_seconds=number("DISPATCH_DEADLINE_SWEEP_SECONDS", 30.0),
            log_level=log_level,
            places=places_from(optional("SANDAN_PLACES_FILE", "")),
        )
