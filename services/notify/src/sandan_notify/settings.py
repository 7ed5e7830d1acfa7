"""Environment-only settings, read once at start; a missing or malformed value stops the service.

A channel is enabled by configuring it (NOTIFY_SMTP_HOST, NOTIFY_WEBHOOK_SECRET, NOTIFY_SMS_URL,
NOTIFY_WECHAT_URL, NOTIFY_CONSOLE); a recipient is only reached on enabled channels. notify's own identity for
its contact look-ups (SANDAN_OIDC_CLIENT_ID / _SECRET) and TLS to intake and dispatch (SANDAN_GRPC_TLS_CA_FILE)
are the shared settings of `sandan_eventbus.security`, read by `__main__.build_runtime`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sandan_eventbus.config import ConfigError, eventstore_env, number, optional, required
from sandan_notify.channels import DEFAULT_SMS_BODY
from sandan_notify.directory import parse_offices
from sandan_notify.domain import QuietHours

_OFFSET = re.compile(r"^([+-])(\d{2}):(\d{2})$")


def parse_offset(raw: str) -> timedelta:
    match = _OFFSET.match(raw.strip())
    if not match:
        raise ConfigError(f"NOTIFY_UTC_OFFSET must look like +08:00, got {raw!r}")
    sign = -1 if match.group(1) == "-" else 1
    return sign * timedelta(hours=int(match.group(2)), minutes=int(match.group(3)))


def parse_quiet(raw: str) -> tuple[str, str]:
    if raw.strip().lower() in ("off", "none"):
        return ("", "")
    try:
        start, end = raw.split("-")
        QuietHours.parse(start, end)
    except Exception:
        raise ConfigError(f"NOTIFY_QUIET_HOURS must look like 22:00-07:00 (or off), got {raw!r}") from None
    return (start.strip(), end.strip())


@dataclass(frozen=True)
class Smtp:
    host: str
    port: int
    sender: str
    username: str
    password: str
    security: str


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap_servers: str
    eventstore_url: str
    database_url: str
    grpc_address: str
    consumer_group: str
    intake_address: str
    dispatch_address: str
    offices_file: str | None
    utc_offset: timedelta
    quiet_hours: tuple[str, str]
    max_attempts: int
    backoff_base_seconds: float
    backoff_cap_seconds: float
    send_timeout_seconds: float
    lane_concurrency: int
    poll_seconds: float
    smtp: Smtp | None
    webhook_secret: str
    sms_url: str
    sms_body: str
    sms_token: str
    sms_content_type: str
    wechat_url: str
    wechat_template_id: str
    console: str  # "" off | "stderr" | a file path
    fake_now: str = ""  # tests only: not for production
    log_level: str = "INFO"
    channels: tuple[str, ...] = field(default=())

    @classmethod
    def from_env(cls) -> Settings:
        store = required("NOTIFY_EVENTSTORE_URL")
        eventstore_env(store)
        offices = optional("NOTIFY_OFFICES_FILE", "") or None
        if offices:
            path = Path(offices)
            if not path.is_file():
                raise ConfigError(f"NOTIFY_OFFICES_FILE {offices} does not exist")
            try:
                parse_offices(path.read_text(encoding="utf-8"))
            except ValueError as exc:
                raise ConfigError(f"NOTIFY_OFFICES_FILE {offices}: {exc}") from None
        smtp = None
        if optional("NOTIFY_SMTP_HOST", ""):
            smtp = Smtp(required("NOTIFY_SMTP_HOST"), int(number("NOTIFY_SMTP_PORT", 25)), required("NOTIFY_SMTP_FROM"),
                        optional("NOTIFY_SMTP_USERNAME", ""), optional("NOTIFY_SMTP_PASSWORD", ""),
                        optional("NOTIFY_SMTP_SECURITY", "none"))
            if smtp.security not in ("none", "starttls", "ssl"):
                raise ConfigError("NOTIFY_SMTP_SECURITY must be none, starttls or ssl")
        wechat_url = optional("NOTIFY_WECHAT_URL", "")
        log_level = optional("LOG_LEVEL", "INFO").upper()
        if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ConfigError(f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {log_level!r}")
        max_attempts = int(number("NOTIFY_MAX_ATTEMPTS", 5))
        if not 1 <= max_attempts <= 100:
            raise ConfigError("NOTIFY_MAX_ATTEMPTS must be 1 to 100")
        settings = cls(
            kafka_bootstrap_servers=required("KAFKA_BOOTSTRAP_SERVERS"),
            eventstore_url=store,
            database_url=optional("NOTIFY_DATABASE_URL", store),
            grpc_address=optional("NOTIFY_GRPC_ADDRESS", "127.0.0.1:50054"),
            consumer_group=optional("NOTIFY_CONSUMER_GROUP", "notify"),
            intake_address=required("NOTIFY_INTAKE_ADDRESS"),
            dispatch_address=required("NOTIFY_DISPATCH_ADDRESS"),
            offices_file=offices,
            utc_offset=parse_offset(optional("NOTIFY_UTC_OFFSET", "+08:00")),
            quiet_hours=parse_quiet(optional("NOTIFY_QUIET_HOURS", "22:00-07:00")),
            max_attempts=max_attempts,
            backoff_base_seconds=number("NOTIFY_BACKOFF_BASE_SECONDS", 2.0),
            backoff_cap_seconds=number("NOTIFY_BACKOFF_CAP_SECONDS", 300.0),
            send_timeout_seconds=number("NOTIFY_SEND_TIMEOUT_SECONDS", 10.0),
            lane_concurrency=int(number("NOTIFY_LANE_CONCURRENCY", 8)),
            poll_seconds=number("NOTIFY_POLL_SECONDS", 0.2),
            smtp=smtp,
            webhook_secret=optional("NOTIFY_WEBHOOK_SECRET", ""),
            sms_url=optional("NOTIFY_SMS_URL", ""),
            sms_body=optional("NOTIFY_SMS_BODY", DEFAULT_SMS_BODY),
            sms_token=optional("NOTIFY_SMS_TOKEN", ""),
            sms_content_type=optional("NOTIFY_SMS_CONTENT_TYPE", "application/json; charset=utf-8"),
            wechat_url=wechat_url,
            wechat_template_id=required("NOTIFY_WECHAT_TEMPLATE_ID") if wechat_url else "",
            console=optional("NOTIFY_CONSOLE", ""),
            fake_now=optional("NOTIFY_FAKE_NOW", ""),
            log_level=log_level,
        )
        enabled = tuple(name for name, on in (
            ("email", smtp is not None), ("webhook", bool(settings.webhook_secret)), ("sms", bool(settings.sms_url)),
            ("wechat", bool(wechat_url)), ("console", bool(settings.console))) if on)
        if not enabled:
            raise ConfigError("no channel is configured: set NOTIFY_SMTP_HOST, NOTIFY_WEBHOOK_SECRET, NOTIFY_SMS_URL, "
                              "NOTIFY_WECHAT_URL or NOTIFY_CONSOLE")
        return cls(**{**settings.__dict__, "channels": enabled})
