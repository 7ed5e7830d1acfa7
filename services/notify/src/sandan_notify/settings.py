"""Environment-only settings (one pydantic-settings class), read once at start; a missing or malformed value stops
the service naming the variable. The Configuration table of services/notify/README.md is generated from it
(scripts/config_table.py).

A channel is enabled by configuring it (NOTIFY_SMTP_HOST, NOTIFY_WEBHOOK_SECRET, NOTIFY_SMS_URL,
NOTIFY_WECHAT_URL, NOTIFY_CONSOLE); a recipient is only reached on enabled channels. notify's own identity for
its contact look-ups (SANDAN_OIDC_CLIENT_ID / _SECRET) and TLS to intake and dispatch (SANDAN_GRPC_TLS_CA_FILE)
are the shared settings of `sandan_eventbus.security`, read by `__main__.build_runtime`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from sandan_eventbus.config import ConfigError, LogLevel, ServiceSettings, eventstore_env, settings_from_env
from sandan_notify.channels import DEFAULT_SMS_BODY
from sandan_notify.directory import parse_offices
from sandan_notify.domain import QuietHours

_OFFSET = re.compile(r"^([+-])(\d{2}):(\d{2})$")


def parse_offset(raw: str | timedelta) -> timedelta:
    if isinstance(raw, timedelta):
        return raw
    match = _OFFSET.match(raw.strip())
    if not match:
        raise ValueError(f"NOTIFY_UTC_OFFSET must look like +08:00, got {raw[:20]!r}")
    sign = -1 if match.group(1) == "-" else 1
    return sign * timedelta(hours=int(match.group(2)), minutes=int(match.group(3)))


def parse_quiet(raw: str | tuple[str, str]) -> tuple[str, str]:
    if isinstance(raw, tuple):
        return raw
    if raw.strip().lower() in ("off", "none"):
        return ("", "")
    try:
        start, end = raw.split("-")
        QuietHours.parse(start, end)
    except Exception:
        raise ValueError(f"NOTIFY_QUIET_HOURS must look like 22:00-07:00 (or off), got {raw[:20]!r}") from None
    return (start.strip(), end.strip())


@dataclass(frozen=True)
class Smtp:
    host: str
    port: int
    sender: str
    username: str
    password: str
    security: str


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="NOTIFY_", env_ignore_empty=True, str_strip_whitespace=True,
                                      extra="ignore", frozen=True)

    kafka_bootstrap_servers: str = Field(validation_alias="KAFKA_BOOTSTRAP_SERVERS", min_length=1,
                                         description="the Kafka brokers, `host:port[,host:port...]`")
    eventstore_url: str = Field(min_length=1,
                                description="`sqlite:///path`, `postgresql://...[?schema=]`, `memory://`")
    database_url: str = Field("", validate_default=True, json_schema_extra={"env_default": "the store URL"},
                              description="read model, preferences, delivery log")
    grpc_address: str = Field("127.0.0.1:50054", description="where the gRPC API listens")
    consumer_group: str = Field("notify", description="the Kafka consumer group of its inbox")
    intake_address: str = Field(min_length=1, description="intake's gRPC address, for contacts")
    dispatch_address: str = Field(min_length=1, description="dispatch's gRPC address, for contacts")
    offices_file: str | None = Field(None, json_schema_extra={"env_type": "file path"},
                                     description="office directory (above); named but missing or malformed: "
                                                 "the service does not start")
    utc_offset: Annotated[timedelta, NoDecode, BeforeValidator(parse_offset)] = Field(
        "+08:00", validate_default=True, json_schema_extra={"env_type": "`±HH:MM`"},
        description="local time for quiet hours and templates")
    quiet_hours: Annotated[tuple[str, str], NoDecode, BeforeValidator(parse_quiet)] = Field(
        "22:00-07:00", validate_default=True, json_schema_extra={"env_type": "`HH:MM-HH:MM` or `off`"},
        description="default quiet hours (`off` for none)")
    max_attempts: int = Field(5, description="retry policy per channel: attempts, 1 to 100")
    backoff_base_seconds: float = Field(2.0, description="retry policy per channel: the first wait")
    backoff_cap_seconds: float = Field(300.0, description="retry policy per channel: the longest wait")
    send_timeout_seconds: float = Field(10.0, description="per send (and ≤ 5 s per contact call)")
    lane_concurrency: int = Field(8, description="notices planned, and sends per channel, at once")
    poll_seconds: float = Field(0.2, description="how long the planner and each lane wait, unwoken, before "
                                                         "looking again")
    smtp_host: str = Field("", description="enables e-mail: the SMTP server")
    smtp_port: int = Field(25, description="the SMTP server's port")
    smtp_from: str = Field("", json_schema_extra={"env_default": "(required with `NOTIFY_SMTP_HOST`)"},
                           description="the sender address")
    smtp_username: str = Field("", description="SMTP login (none: no login)")
    smtp_password: str = Field("", repr=False, description="SMTP password")
    smtp_security: str = Field("none", description="`none`, `starttls` or `ssl`")
    webhook_secret: str = Field("", repr=False, description="enables webhooks: their HMAC key")
    sms_url: str = Field("", description="enables SMS: the gateway's URL")
    sms_body: str = Field(DEFAULT_SMS_BODY, description="the request body template")
    sms_token: str = Field("", repr=False, description="bearer token for the SMS gateway")
    sms_content_type: str = Field("application/json; charset=utf-8", description="the request's content type")
    wechat_url: str = Field("", description="enables WeChat: the template-message endpoint")
    wechat_template_id: str = Field("", json_schema_extra={"env_default": "(required with `NOTIFY_WECHAT_URL`)"},
                                    description="the WeChat template")
    console: str = Field("", description="`stderr` or a file path: the demo's console channel (off when unset)")
    fake_now: str = Field("", description="**tests only, not for production**: an ISO instant, or `@file` whose "
                                          "content is one (re-read, so a test can move the clock); runs at real "
                                          "speed from there")
    log_level: LogLevel = Field("INFO", validation_alias="LOG_LEVEL",
                                description="any case (`info`, `INFO`); an unknown level fails the start")

    @field_validator("eventstore_url")
    @classmethod
    def _supported_store(cls, value: str) -> str:
        try:
            eventstore_env(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("database_url")
    @classmethod
    def _store_by_default(cls, value: str, info: ValidationInfo) -> str:
        return value or info.data.get("eventstore_url", "")

    @field_validator("offices_file")
    @classmethod
    def _readable_offices(cls, value: str | None) -> str | None:
        if value:
            path = Path(value)
            if not path.is_file():
                raise ValueError(f"NOTIFY_OFFICES_FILE {value} does not exist")
            try:
                parse_offices(path.read_text(encoding="utf-8"))
            except ValueError as exc:
                raise ValueError(f"NOTIFY_OFFICES_FILE {value}: {exc}") from None
        return value or None

    @field_validator("max_attempts")
    @classmethod
    def _attempts(cls, value: int) -> int:
        if not 1 <= value <= 100:
            raise ValueError("NOTIFY_MAX_ATTEMPTS must be 1 to 100")
        return value

    @model_validator(mode="after")
    def _channels_complete(self) -> Settings:
        if self.smtp_host:
            if not self.smtp_from:
                raise ValueError("NOTIFY_SMTP_FROM is required with NOTIFY_SMTP_HOST")
            if self.smtp_security not in ("none", "starttls", "ssl"):
                raise ValueError("NOTIFY_SMTP_SECURITY must be none, starttls or ssl")
        if self.wechat_url and not self.wechat_template_id:
            raise ValueError("NOTIFY_WECHAT_TEMPLATE_ID is required with NOTIFY_WECHAT_URL")
        if not self.channels:
            raise ValueError("no channel is configured: set NOTIFY_SMTP_HOST, NOTIFY_WEBHOOK_SECRET, NOTIFY_SMS_URL, "
                             "NOTIFY_WECHAT_URL or NOTIFY_CONSOLE")
        return self

    @property
    def smtp(self) -> Smtp | None:
        if not self.smtp_host:
            return None
        return Smtp(self.smtp_host, self.smtp_port, self.smtp_from, self.smtp_username, self.smtp_password,
                    self.smtp_security)

    @property
    def channels(self) -> tuple[str, ...]:
        """The enabled channels: those configured."""
        return tuple(name for name, on in (
            ("email", bool(self.smtp_host)), ("webhook", bool(self.webhook_secret)), ("sms", bool(self.sms_url)),
            ("wechat", bool(self.wechat_url)), ("console", bool(self.console))) if on)

    @classmethod
    def from_env(cls) -> Settings:
        """The settings from the environment, or ConfigError naming the variable."""
        return settings_from_env(cls)
