"""Environment-only settings, read once at start; a missing or malformed value stops the service."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sandan_eventbus.auth.scopes import Places
from sandan_eventbus.config import ConfigError, eventstore_env, number, optional, required
from sandan_intake.keys import Keyring

KEK_FILE, KEK = "INTAKE_KEK_FILE", "INTAKE_KEK"
DEFAULT_RETENTION_DAYS = 1095  # three years after a demand closed


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
    # The key-encryption keys wrapping residents' data keys (INTAKE_KEK_FILE, or INTAKE_KEK; required).
    keyring: Keyring | None = None
    # After how long a closed demand's texts are shredded, and how often the job looks.
    retention: timedelta = timedelta(days=DEFAULT_RETENTION_DAYS)
    retention_sweep_seconds: float = 3600.0

    @classmethod
    def from_env(cls) -> Settings:
        eventstore_url = required("INTAKE_EVENTSTORE_URL")
        eventstore_env(eventstore_url)  # raises ConfigError on an unsupported URL, before anything starts
        database_url = database_url_from_env()
        retention_days = number("INTAKE_RETENTION_DAYS", DEFAULT_RETENTION_DAYS)
        if not 1 <= retention_days <= 36500:
            raise ConfigError("INTAKE_RETENTION_DAYS must be 1 to 36500 days")
        sweep = number("INTAKE_RETENTION_SWEEP_SECONDS", 3600)
        if not 1 <= sweep <= 86400:
            raise ConfigError("INTAKE_RETENTION_SWEEP_SECONDS must be 1 to 86400")
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
            keyring=keyring_from_env(),
            retention=timedelta(days=retention_days),
            retention_sweep_seconds=sweep,
        )


def database_url_from_env() -> str:
    url = optional("INTAKE_DATABASE_URL", required("INTAKE_EVENTSTORE_URL"))
    if not url.startswith(("sqlite:", "postgresql://", "postgres://", "memory://")):
        raise ConfigError(f"unsupported INTAKE_DATABASE_URL {url!r}")
    return url


def keyring_from_env() -> Keyring:
    """The KEKs, from a file (a mounted Secret: INTAKE_KEK_FILE) or the environment (INTAKE_KEK). Without one the
    service does not start: residents' data could be neither sealed nor read. Errors never show key material."""
    path, inline = os.environ.get(KEK_FILE, "").strip(), os.environ.get(KEK, "").strip()
    if path and inline:
        raise ConfigError(f"set {KEK_FILE} or {KEK}, not both")
    if not path and not inline:
        raise ConfigError(f"{KEK_FILE} (a file holding the key-encryption keys) or {KEK} is required: intake "
                          "seals residents' personal data under keys it wraps (python -m sandan_intake.keys "
                          "generate makes one)")
    source = KEK_FILE if path else KEK
    if path:
        try:
            inline = Path(path).read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigError(f"{KEK_FILE}: cannot read {path} ({error.strerror})") from None
    try:
        return Keyring.parse(inline)
    except ValueError as error:
        raise ConfigError(f"{source}: {error}") from None


def _places(path: str) -> Places:
    """Read at start, so a missing or malformed directory stops the service rather than refusing offices later."""
    try:
        return Places.from_file(path or None)
    except OSError as exc:
        raise ConfigError(f"SANDAN_PLACES_FILE: cannot read {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, AttributeError, TypeError, KeyError) as exc:
        raise ConfigError(f"SANDAN_PLACES_FILE: {path} is not a places directory: {exc}") from None
