"""dispatch's settings: `LOG_LEVEL` in any case (it crashed at start on `info`), a clear error otherwise."""

from __future__ import annotations

import logging

import pytest

from sandan_dispatch.settings import Settings
from sandan_eventbus.config import ConfigError
from sandan_eventbus.logs import setup


@pytest.fixture(autouse=True)
def required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    monkeypatch.setenv("DISPATCH_EVENTSTORE_URL", "sqlite:///dispatch.db")


@pytest.mark.parametrize(("given", "level"), [("info", "INFO"), ("Debug", "DEBUG"), ("WARNING", "WARNING"),
                                              ("", "INFO")])
def test_log_levels_are_accepted_in_any_case(monkeypatch: pytest.MonkeyPatch, given: str, level: str) -> None:
    monkeypatch.setenv("LOG_LEVEL", given)
    settings = Settings.from_env()
    assert settings.log_level == level
    root = logging.getLogger()
    handlers, previous = list(root.handlers), root.level
    try:
        setup("sandan_dispatch", settings.log_level)  # what failed at start with `info`
        assert root.level == logging.getLevelName(level)
    finally:
        root.handlers[:] = handlers
        root.setLevel(previous)


def test_an_unknown_log_level_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_LEVEL", "loud")
    with pytest.raises(ConfigError, match="LOG_LEVEL"):
        Settings.from_env()
