"""dispatch's configuration: one pydantic-settings class, read from the environment once at start, failing fast
(naming the variable) on what has no safe default. The Configuration table of services/dispatch/README.md is
generated from it (scripts/config_table.py).

Identity (SANDAN_OIDC_*) and gRPC transport (SANDAN_GRPC_*) settings are the runtime's (sandan_eventbus.security).
"""

from __future__ import annotations

import os
import tomllib
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from sandan_dispatch.keys import Keyring
from sandan_eventbus.auth.scopes import Places
from sandan_eventbus.config import ConfigError, LogLevel, ServiceSettings, optional, required, settings_from_env
from sandan_eventbus.keyring import keyring_from as shared_keyring_from

KEK_FILE, KEK = "DISPATCH_KEK_FILE", "DISPATCH_KEK"


def keyring_from(path: str, inline: str) -> Keyring:
    """dispatch's KEKs, from a file (a mounted Secret: DISPATCH_KEK_FILE) or inline (DISPATCH_KEK). Without one
    the service does not start: the notes about services to residents could be neither sealed nor read."""
    return shared_keyring_from(Keyring, path, inline, file_variable=KEK_FILE, inline_variable=KEK,
                               why="dispatch seals the notes written about services to residents under keys it "
                                   "wraps (python -m sandan_dispatch.keys generate makes one; never intake's)")


def places_from(path: Any) -> Places:
    """The places directory (which town each community belongs to, the county's id). Unset: town and county
    offices reach no community (refused rather than guessed); set but unreadable: a clear error at start."""
    if isinstance(path, Places):
        return path
    path = str(path or "").strip()
    try:
        return Places.from_file(path or None)
    except OSError as error:
        raise ValueError(f"SANDAN_PLACES_FILE: cannot read {path} ({error.strerror})") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"SANDAN_PLACES_FILE: {path} is not valid TOML ({error})") from None


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="DISPATCH_", env_ignore_empty=True, str_strip_whitespace=True,
                                      extra="ignore", frozen=True, arbitrary_types_allowed=True,
                                      hide_input_in_errors=True)  # a KEK is never echoed

    kafka_bootstrap: str = Field(validation_alias="KAFKA_BOOTSTRAP_SERVERS", min_length=1,
                                 description="the Kafka brokers, e.g. `127.0.0.1:9092`")
    eventstore_url: str = Field(min_length=1, json_schema_extra={"env_default": "(required; image: "
                                                                               "`sqlite:////data/dispatch.db`)"},
                                description="`sqlite:///path`, `postgresql://user:pw@host:5432/db[?schema=name]` "
                                            "(`memory://` for tests)")
    database_url: str = Field("", validate_default=True, json_schema_extra={"env_default": "the event store URL"},
                              description="the contact tables `dispatch_member_contacts`, `dispatch_unit_contacts` "
                                          "and the demands' wrapped data keys `dispatch_data_keys` (same URL "
                                          "forms)")
    grpc_address: str = Field("127.0.0.1:50052",
                              json_schema_extra={"env_default": "`127.0.0.1:50052` (image: `0.0.0.0:50052`)"},
                              description="gRPC listen address")
    consumer_group: str = Field("dispatch", description="consumer group for `intake.demands.v1`")
    deadline_sweep_seconds: float = Field(30.0, description="how often the deadline sweep runs")
    places: Annotated[Places, NoDecode, BeforeValidator(places_from)] = Field(
        "", validation_alias="SANDAN_PLACES_FILE", validate_default=True,
        json_schema_extra={"env_type": "file path",
                           "env_default": "unset: town and county offices reach no community"},
        description="the places directory (`deploy/local/places.toml`): the county's id and which town each "
                    "community belongs to; unreadable or invalid: the service does not start")
    log_level: LogLevel = Field("INFO", validation_alias="LOG_LEVEL",
                                description="JSON lines on stderr; any case (`info`, `INFO`), an unknown level "
                                            "fails the start")
    # The key-encryption keys wrapping the demands' data keys (DISPATCH_KEK_FILE, or DISPATCH_KEK; one is required).
    kek_file: str = Field("", json_schema_extra={"env_type": "file path",
                                                 "env_default": "required: this or `DISPATCH_KEK`"},
                          description="key-encryption keys sealing the notes about services to residents, one "
                                      "`<kek id>:<base64>` a line, the current first (never intake's); a file (a "
                                      "mounted Secret) is the production form")
    keyring: Annotated[Keyring | None, NoDecode] = Field(
        None, validation_alias="DISPATCH_KEK", validate_default=True, repr=False,
        json_schema_extra={"env_type": "string", "env_default": "required: this or `DISPATCH_KEK_FILE`"},
        description="the same keys given inline (not both)")

    @field_validator("database_url")
    @classmethod
    def _store_by_default(cls, value: str, info: ValidationInfo) -> str:
        return value or info.data.get("eventstore_url", "")

    @field_validator("keyring", mode="before")
    @classmethod
    def _keyring(cls, value: Any, info: ValidationInfo) -> Keyring:
        path = str(info.data.get("kek_file") or "")
        if isinstance(value, Keyring):
            if path:
                raise ValueError(f"set {KEK_FILE} or {KEK}, not both")
            return value
        return keyring_from(path, str(value or "").strip())

    @classmethod
    def from_env(cls) -> Settings:
        """The settings from the environment, or ConfigError naming the variable."""
        return settings_from_env(cls)


def database_url_from_env() -> str:
    """DISPATCH_DATABASE_URL alone (the keys command), defaulting to DISPATCH_EVENTSTORE_URL."""
    return optional("DISPATCH_DATABASE_URL", required("DISPATCH_EVENTSTORE_URL"))


def keyring_from_env() -> Keyring:
    """The keyring alone (the keys command): DISPATCH_KEK_FILE or DISPATCH_KEK."""
    try:
        return keyring_from(os.environ.get(KEK_FILE, "").strip(), os.environ.get(KEK, "").strip())
    except ValueError as error:
        raise ConfigError(str(error)) from None
