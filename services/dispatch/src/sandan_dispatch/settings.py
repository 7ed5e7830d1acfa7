"""dispatch's configuration: environment only, failing fast on what has no safe default."""

from __future__ import annotations

from dataclasses import dataclass

from sandan_eventbus.config import ConfigError, number, optional, required
from sandan_eventbus.rpc import tokens_from

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap: str
    eventstore_url: str
    database_url: str
    grpc_address: str
    consumer_group: str
    deadline_sweep_seconds: float
    log_level: str
    # Bearer tokens that may call GetMemberContact / GetUnitContact (one per calling service, e.g. notify).
    contact_tokens: frozenset[str] = frozenset()

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
            contact_tokens=tokens_from(optional("DISPATCH_CONTACT_TOKENS", "")),
        )
