"""intake's configuration: one pydantic-settings class, read from the environment once at start; a missing or
malformed value stops the service naming the variable (never showing a key). The Configuration table of
services/intake/README.md is generated from it (scripts/config_table.py)."""

from __future__ import annotations

import os
import tomllib
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from sandan_eventbus.auth.scopes import Places
from sandan_eventbus.config import (
    ConfigError,
    LogLevel,
    ServiceSettings,
    eventstore_env,
    optional,
    required,
    settings_from_env,
)
from sandan_eventbus.keyring import keyring_from as shared_keyring_from
from sandan_intake.keys import Keyring

KEK_FILE, KEK = "INTAKE_KEK_FILE", "INTAKE_KEK"
DEFAULT_RETENTION_DAYS = 1095  # three years after a demand closed
DATABASE_URL_SCHEMES = ("sqlite:", "postgresql://", "postgres://", "memory://")


def check_database_url(url: str) -> str:
    if not url.startswith(DATABASE_URL_SCHEMES):
        raise ValueError(f"INTAKE_DATABASE_URL: unsupported URL {url!r} (sqlite:..., postgresql://..., memory://)")
    return url


def keyring_from(path: str, inline: str) -> Keyring:
    """The KEKs, from a file (a mounted Secret: INTAKE_KEK_FILE) or inline (INTAKE_KEK). Without one the service
    does not start: residents' data could be neither sealed nor read. Errors never show key material."""
    return shared_keyring_from(Keyring, path, inline, file_variable=KEK_FILE, inline_variable=KEK,
                               why="intake seals residents' personal data under keys it wraps (python -m "
                                   "sandan_intake.keys generate makes one)")


def places_from(path: Any) -> Places:
    """Read at start, so a missing or malformed directory stops the service rather than refusing offices later."""
    if isinstance(path, Places):
        return path
    path = str(path or "").strip()
    try:
        return Places.from_file(path or None)
    except OSError as exc:
        raise ValueError(f"SANDAN_PLACES_FILE: cannot read {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, AttributeError, TypeError, KeyError) as exc:
        raise ValueError(f"SANDAN_PLACES_FILE: {path} is not a places directory: {exc}") from None


def retention_days(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    try:
        days = float(str(value).strip())
    except ValueError:
        raise ValueError(f"INTAKE_RETENTION_DAYS must be a number, got {str(value)[:20]!r}") from None
    if not 1 <= days <= 36500:
        raise ValueError("INTAKE_RETENTION_DAYS must be 1 to 36500 days")
    return timedelta(days=days)


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="INTAKE_", env_ignore_empty=True, str_strip_whitespace=True,
                                      extra="ignore", frozen=True, arbitrary_types_allowed=True,
                                      hide_input_in_errors=True)  # a KEK is never echoed

    kafka_bootstrap_servers: str = Field(validation_alias="KAFKA_BOOTSTRAP_SERVERS", min_length=1,
                                         description="the Kafka brokers, e.g. `127.0.0.1:9092`")
    eventstore_url: str = Field(min_length=1,
                                json_schema_extra={"env_default": "(required; image: `sqlite:////data/intake.db`)"},
                                description="`sqlite:///path`, `postgresql://user:pw@host:5432/db[?schema=name]` "
                                            "(`memory://` for tests)")
    database_url: str = Field("", validate_default=True, json_schema_extra={"env_default": "the event store URL"},
                              description="residents' personal data (same URL forms; `?schema=` sets the search "
                                          "path)")
    grpc_address: str = Field("127.0.0.1:50051",
                              json_schema_extra={"env_default": "`127.0.0.1:50051` (image: `0.0.0.0:50051`)"},
                              description="gRPC listen address")
    consumer_group: str = Field("intake", description="consumer group for `dispatch.orders.v1`")
    log_level: LogLevel = Field("INFO", validation_alias="LOG_LEVEL",
                                description="JSON lines on stderr; any case (`info`, `INFO`), an unknown level "
                                            "fails the start")
    # Which town each community is in, for town and county offices' scope (without it offices reach no demand).
    places: Annotated[Places, NoDecode, BeforeValidator(places_from)] = Field(
        "", validation_alias="SANDAN_PLACES_FILE", validate_default=True,
        json_schema_extra={"env_type": "file path", "env_default": "none (offices reach nothing)"},
        description="the places directory: which town each community is in (read at start; unreadable or "
                    "malformed stops the service)")
    # The key-encryption keys wrapping residents' data keys (INTAKE_KEK_FILE, or INTAKE_KEK; one is required).
    kek_file: str = Field("", json_schema_extra={"env_type": "file path",
                                                 "env_default": "required: this or `INTAKE_KEK`"},
                          description="key-encryption keys (above), one `<kek id>:<base64>` a line, the current "
                                      "first; a file (a mounted Secret) is the production form")
    keyring: Annotated[Keyring | None, NoDecode] = Field(
        None, validation_alias="INTAKE_KEK", validate_default=True, repr=False,
        json_schema_extra={"env_type": "string", "env_default": "required: this or `INTAKE_KEK_FILE`"},
        description="the same keys given inline (not both)")
    # After how long a closed demand's texts are shredded, and how often the job looks.
    retention: Annotated[timedelta, NoDecode, BeforeValidator(retention_days)] = Field(
        DEFAULT_RETENTION_DAYS, validation_alias="INTAKE_RETENTION_DAYS", validate_default=True,
        json_schema_extra={"env_type": "number (days)"},
        description="closed demands' personal texts are shredded this long after closing (1 to 36500)")
    retention_sweep_seconds: float = Field(3600.0, description="how often the retention job looks (1 to 86400)")

    @field_validator("eventstore_url")
    @classmethod
    def _supported_store(cls, value: str) -> str:
        try:
            eventstore_env(value)  # an unsupported URL stops the start, before anything starts
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("database_url")
    @classmethod
    def _store_by_default(cls, value: str, info: ValidationInfo) -> str:
        if not value and "eventstore_url" not in info.data:
            return ""  # the store's own error says it
        return check_database_url(value or info.data["eventstore_url"])

    @field_validator("keyring", mode="before")
    @classmethod
    def _keyring(cls, value: Any, info: ValidationInfo) -> Keyring:
        path = str(info.data.get("kek_file") or "")
        if isinstance(value, Keyring):
            if path:
                raise ValueError(f"set {KEK_FILE} or {KEK}, not both")
            return value
        return keyring_from(path, str(value or "").strip())

    @field_validator("retention_sweep_seconds")
    @classmethod
    def _sweep(cls, value: float) -> float:
        if not 1 <= value <= 86400:
            raise ValueError("INTAKE_RETENTION_SWEEP_SECONDS must be 1 to 86400")
        return value

    @classmethod
    def from_env(cls) -> Settings:
        """The settings from the environment, or ConfigError naming the variable."""
        return settings_from_env(cls)


def database_url_from_env() -> str:
    """INTAKE_DATABASE_URL alone (the keys command), defaulting to INTAKE_EVENTSTORE_URL."""
    try:
        return check_database_url(optional("INTAKE_DATABASE_URL", required("INTAKE_EVENTSTORE_URL")))
    except ValueError as error:
        raise ConfigError(str(error)) from None


def keyring_from_env() -> Keyring:
    """The keyring alone (the keys command): INTAKE_KEK_FILE or INTAKE_KEK."""
    try:
        return keyring_from(os.environ.get(KEK_FILE, "").strip(), os.environ.get(KEK, "").strip())
    except ValueError as error:
        raise ConfigError(str(error)) from None
