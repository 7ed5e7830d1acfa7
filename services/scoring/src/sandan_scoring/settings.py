"""scoring's configuration: environment only, failing fast."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from sandan_eventbus.auth.scopes import Places
from sandan_eventbus.config import ConfigError, number, optional, required

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def log_level() -> str:
    """LOG_LEVEL in any case (`info` as well as `INFO`): logging itself only knows the upper-case names."""
    level = optional("LOG_LEVEL", "INFO").upper()
    if level not in LOG_LEVELS:
        raise ConfigError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)} (any case), got {level[:20]!r}")
    return level


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap: str
    database_url: str
    grpc_address: str
    rules_dir: Path | None
    rule_set: str
    replay_workers: int
    log_level: str
    places: Places = field(default_factory=Places)  # which town each community is in (town/county scope)

    @classmethod
    def from_env(cls) -> Settings:
        rules_dir = optional("SCORING_RULES_DIR", "")
        return cls(
            kafka_bootstrap=required("KAFKA_BOOTSTRAP_SERVERS"),
            database_url=required("SCORING_DATABASE_URL"),
            grpc_address=optional("SCORING_GRPC_ADDRESS", "127.0.0.1:50053"),
            rules_dir=Path(rules_dir) if rules_dir else None,
            rule_set=optional("SCORING_RULE_SET", "2026.1"),
            # how a whole-log replay reads: 0 = librdkafka (fetch in C threads; fastest on 2 cores),
            # 1 = aiokafka in-process, N>1 = librdkafka on N processes, merged
            replay_workers=max(0, int(number("SCORING_REPLAY_WORKERS", 0))),
            log_level=log_level(),
            places=places(),
        )


def places() -> Places:
    """SANDAN_PLACES_FILE: the places directory (deploy/local/places.toml). Without it no town or county office
    reaches anything (a warning says so); a file that is named but unreadable stops the service."""
    path = optional("SANDAN_PLACES_FILE", "")
    try:
        return Places.from_file(path or None)
    except OSError as exc:
        raise ConfigError(f"SANDAN_PLACES_FILE {path[:200]}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"SANDAN_PLACES_FILE {path[:200]} is not valid TOML: {exc}") from None
