"""Environment-only settings (pydantic-settings), read once at start; a missing or malformed value stops the gateway.

The variables and their meaning: services/gateway/README.md (Configuration), whose table is generated from this
class (scripts/config_table.py).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sandan_eventbus.config import ConfigError, check_log_level


def _secret(value: str, file: str, name: str) -> str:
    if file:
        try:
            return Path(file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE: cannot read {file}: {exc.strerror}") from None
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    http_host: str = Field("127.0.0.1", description="where uvicorn listens: the interface")
    http_port: int = Field(default=8000, ge=1, le=65535, description="where uvicorn listens: the port")
    public_url: str = Field("http://127.0.0.1:8000", description="the address people open (http or https): "
                                                                 "redirect URIs; Secure cookies when https")
    intake_address: str = Field("127.0.0.1:50051", description="intake's gRPC address")
    dispatch_address: str = Field("127.0.0.1:50052", description="dispatch's gRPC address")
    scoring_address: str = Field("127.0.0.1:50053", description="scoring's gRPC address")
    notify_address: str = Field("127.0.0.1:50054", description="notify's gRPC address")
    web_client_id: str = Field("sandan-web", description="the OIDC client people sign in through")
    web_client_secret: str = Field(default="", repr=False,
                                   json_schema_extra={"env_default": "required: this or `_FILE`"},
                                   description="that client's secret")
    web_client_secret_file: str = Field("", json_schema_extra={"env_type": "file path"},
                                        description="a file holding it (a mounted Secret)")
    session_secret: str = Field(default="", repr=False,
                                json_schema_extra={"env_default": "required: this or `_FILE`"},
                                description="signs the short-lived login cookie (state, nonce, PKCE verifier); "
                                            "32+ characters")
    session_secret_file: str = Field("", json_schema_extra={"env_type": "file path"},
                                     description="a file holding it (a mounted Secret)")
    session_url: str = Field("sqlite:///gateway-sessions.db",
                             description="`sqlite:///path.db` (one replica), `postgresql://...` (several), "
                                         "`memory://` (tests, one replica)")
    session_idle_seconds: int = Field(default=1800, ge=60, description="a session ends after this long unused "
                                                                       "(at least 60)")
    session_max_seconds: int = Field(default=36000, ge=300, description="a session ends after this long in all "
                                                                        "(at least 300)")
    open311_keys_file: str = Field("", json_schema_extra={"env_type": "file path"},
                                   description="partner API keys (above); none: Open311 writes are refused")
    live: str = Field("on", json_schema_extra={"env_type": "`on` or `off`"},
                      description="live updates on the pages (`on` needs `KAFKA_BOOTSTRAP_SERVERS`)")
    live_lookback_seconds: int = Field(default=14 * 24 * 3600, ge=0,
                                       json_schema_extra={"env_default": "`1209600` (14 days)"},
                                       description="how far back the live consumer reads at start")
    grpc_timeout_seconds: float = Field(default=10.0, gt=0, description="deadline of each call to a service")
    metrics_port: int = Field(default=0, ge=0, le=65535,
                              json_schema_extra={"env_default": "off (`0`)"},
                              description="Prometheus metrics at `http://<host>:<port>/metrics` (all interfaces), "
                                          "apart from the public port; `0`: no metrics server (see Metrics below)")
    log_level: str = Field("INFO", description="any case (`info`, `INFO`); an unknown level fails the start")

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        try:
            return check_log_level(value)
        except ValueError as exc:
            raise ValueError(f"GATEWAY_{exc}") from None

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
