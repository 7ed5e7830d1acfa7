"""Environment-only settings that fail fast, and the fake clock (tests only)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sandan_eventbus.config import ConfigError
from sandan_notify.__main__ import build_channels
from sandan_notify.clock import FakeClock
from sandan_notify.settings import Settings

BASE = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092", "NOTIFY_EVENTSTORE_URL": "memory://",
        "NOTIFY_INTAKE_ADDRESS": "127.0.0.1:50051", "NOTIFY_DISPATCH_ADDRESS": "127.0.0.1:50052"}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    import os

    for name in list(os.environ):
        if name.startswith("NOTIFY_"):
            monkeypatch.delenv(name)
    for name, value in BASE.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_channels_are_enabled_by_configuring_them(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no channel"):
        Settings.from_env()
    env.setenv("NOTIFY_WEBHOOK_SECRET", "s")
    env.setenv("NOTIFY_SMTP_HOST", "127.0.0.1")
    with pytest.raises(ConfigError, match="NOTIFY_SMTP_FROM"):
        Settings.from_env()
    env.setenv("NOTIFY_SMTP_FROM", "notify@example.org")
    env.setenv("NOTIFY_SMS_URL", "http://sms.example/send")
    env.setenv("NOTIFY_CONSOLE", str(tmp_path / "console.jsonl"))
    s = Settings.from_env()
    assert s.channels == ("email", "webhook", "sms", "console")
    assert (s.utc_offset, s.quiet_hours, s.max_attempts) == (timedelta(hours=8), ("22:00", "07:00"), 5)
    assert sorted(build_channels(s)) == ["console", "email", "sms", "webhook"]
    env.setenv("NOTIFY_WECHAT_URL", "http://wx.example/send")
    with pytest.raises(ConfigError, match="NOTIFY_WECHAT_TEMPLATE_ID"):
        Settings.from_env()


@pytest.mark.parametrize(("name", "value"), [
    ("NOTIFY_UTC_OFFSET", "8"), ("NOTIFY_QUIET_HOURS", "late"), ("NOTIFY_MAX_ATTEMPTS", "0"),
    ("NOTIFY_SMTP_SECURITY", "tls13"), ("NOTIFY_OFFICES_FILE", "/nonexistent/offices.toml"), ("LOG_LEVEL", "loud"),
])
def test_malformed_values_stop_the_service(env: pytest.MonkeyPatch, name: str, value: str) -> None:
    env.setenv("NOTIFY_WEBHOOK_SECRET", "s")
    env.setenv("NOTIFY_SMTP_HOST", "127.0.0.1")
    env.setenv("NOTIFY_SMTP_FROM", "n@example.org")
    env.setenv(name, value)
    with pytest.raises(ConfigError):
        Settings.from_env()


def test_a_malformed_offices_file_stops_the_service(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.setenv("NOTIFY_CONSOLE", "stderr")
    bad = tmp_path / "offices.toml"
    bad.write_text("[county\n")
    env.setenv("NOTIFY_OFFICES_FILE", str(bad))
    with pytest.raises(ConfigError, match="TOML"):
        Settings.from_env()
    bad.write_text("[county]\nname = 'no id'\n")
    with pytest.raises(ConfigError, match="id"):
        Settings.from_env()


def test_fake_clock_runs_and_jumps_when_its_file_changes(tmp_path: Path) -> None:
    ticks = [100.0]
    path = tmp_path / "now.txt"
    path.write_text("2026-03-02T23:30:00+08:00")
    clock = FakeClock(f"@{path}", monotonic=lambda: ticks[0])
    assert clock() == datetime(2026, 3, 2, 15, 30, tzinfo=UTC)
    ticks[0] += 90
    assert clock() == datetime(2026, 3, 2, 15, 31, 30, tzinfo=UTC)
    path.write_text("2026-03-03T07:00:00+08:00")
    assert clock() == datetime(2026, 3, 2, 23, 0, tzinfo=UTC)
    assert FakeClock("2026-01-01T00:00:00Z", monotonic=lambda: 5.0)() == datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError):
        FakeClock("2026-01-01T00:00:00")
