"""Environment-only settings (pydantic-settings), read once at start; a missing or malformed value stops the gateway.

The variables and their meaning: services/gateway/README.md (Configuration).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sandan_eventbus.config import ConfigError


def _secret(value: str, file: str, name: str) -> str:
    if file:
        try:
            return Path(file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE: cannot read {file}: {exc.strerror}") from None
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=1, le=65535)
    public_url: str = "http://127.0.0.1:8000"
    intake_address: str = "127.0.0.1:50051"
    dispatch_address: str = "127.0.0.1:50052"
    scoring_address: str = "127.0.0.1:50053"
    notify_address: str = "127.0.0.1:50054"
    web_client_id: str = "sandan-web"
    web_client_secret: str = Field(default="", repr=False)
    web_client_secret_file: str = ""
    session_secret: str = Field(default="", repr=False)
    session_secret_file: str = ""
    session_url: str = "sqlite:///gateway-sessions.db"
    session_idle_seconds: int = Field(default=1800, ge=60)
    session_max_seconds: int = Field(default=36000, ge=300)
    open311_keys_file: str = ""
    live: str = "on"
    live_lookback_seconds: int = Field(default=14 * 24 * 3600, ge=0)
    grpc_timeout_seconds: float = Field(default=10.0, gt=0)
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _check(self) -> Settings:
        url = urlsplit(self.public_url)
        if url.scheme not in ("http", "https") or not url.netloc:
            raise ValueError("GATEWAY_PUBLIC_URL must be an http(s) address like https://sandan.example.gov.cn")
        self.public_url = self.public_url.rstrip("/")
        if self.live not in ("on", "off"):
            raise ValueError("GATEWAY_LIVE must be on or off")
        return self

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")

    def web_secret(self) -> str:
        secret = _secret(self.web_client_secret, self.web_client_secret_file, "GATEWAY_WEB_CLIENT_SECRET")
        if not secret:
            raise ConfigError("GATEWAY_WEB_CLIENT_SECRET (or _FILE) is required: the sandan-web client's secret")
        return secret

    def signing_secret(self) -> str:
        secret = _secret(self.session_secret, self.session_secret_file, "GATEWAY_SESSION_SECRET")
        if len(secret) < 32:
            raise ConfigError("GATEWAY_SESSION_SECRET (or _FILE) is required, at least 32 characters")
        return secret
