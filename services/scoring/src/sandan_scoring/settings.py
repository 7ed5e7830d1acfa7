"""scoring's configuration: one pydantic-settings class, read from the environment once at start; a missing or
malformed value stops the service naming the variable. The Configuration table of services/scoring/README.md is
generated from it (scripts/config_table.py)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from sandan_eventbus.auth.scopes import Places
from sandan_eventbus.config import LogLevel, ServiceSettings, settings_from_env


def places_from(path: Any) -> Places:
    """SANDAN_PLACES_FILE: the places directory (deploy/local/places.toml). Without it no town or county office
    reaches anything (a warning says so); a file that is named but unreadable stops the service."""
    if isinstance(path, Places):
        return path
    path = str(path or "").strip()
    try:
        return Places.from_file(path or None)
    except OSError as exc:
        raise ValueError(f"SANDAN_PLACES_FILE {path[:200]}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"SANDAN_PLACES_FILE {path[:200]} is not valid TOML: {exc}") from None


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SCORING_", env_ignore_empty=True, str_strip_whitespace=True,
                                      extra="ignore", frozen=True, arbitrary_types_allowed=True)

    kafka_bootstrap: str = Field(validation_alias="KAFKA_BOOTSTRAP_SERVERS", min_length=1,
                                 description="the Kafka brokers, `host:port[,host:port...]`")
    database_url: str = Field(min_length=1,
                              description="`sqlite:///path` or `postgresql://...` (tables `scoring_*`)")
    grpc_address: str = Field("127.0.0.1:50053", description="where the gRPC API listens")
    rule_set: str = Field("2026.1", description="the rule set used when the store has none yet")
    rules_dir: Path | None = Field(None, description="extra rule files")
    replay_workers: int = Field(0, description="how a whole-log replay reads: 0 librdkafka (fetch in C threads; "
                                               "fastest on 2 cores); 1 aiokafka in-process; N>1 librdkafka on N "
                                               "processes, merged (negative: 0)")
    places: Annotated[Places, NoDecode, BeforeValidator(places_from)] = Field(
        "", validation_alias="SANDAN_PLACES_FILE", validate_default=True,
        json_schema_extra={"env_type": "file path"},
        description="the places directory (e.g. `deploy/local/places.toml`): which town each community is in; "
                    "without it town and county offices reach nothing; a named file that cannot be read stops "
                    "the start")
    log_level: LogLevel = Field("INFO", validation_alias="LOG_LEVEL",
                                description="any case (`info`, `INFO`); an unknown level fails the start")

    @field_validator("replay_workers")
    @classmethod
    def _at_least_zero(cls, value: int) -> int:
        return max(0, value)

    @classmethod
    def from_env(cls) -> Settings:
        """The settings from the environment, or ConfigError naming the variable."""
        return settings_from_env(cls)

