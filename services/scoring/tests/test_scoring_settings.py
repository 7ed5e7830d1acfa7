"""scoring's settings: environment only, failing fast with one clear line."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from sandan_eventbus.auth.scopes import Places
from sandan_eventbus.config import ConfigError
from sandan_eventbus.logs import setup
from sandan_scoring.settings import Settings

REQUIRED = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092", "SCORING_DATABASE_URL": "sqlite:///x.db"}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


@pytest.mark.parametrize(("given", "level"), [("info", "INFO"), ("INFO", "INFO"), ("Debug", "DEBUG"),
                                              ("warning", "WARNING"), (" error ", "ERROR"), ("", "INFO")])
def test_log_level_names_are_read_in_any_case(env: pytest.MonkeyPatch, given: str, level: str) -> None:
    env.setenv("LOG_LEVEL", given)
    settings = Settings.from_env()
    assert settings.log_level == level
    root = logging.getLogger()
    handlers, before = list(root.handlers), root.level
    try:
        setup("sandan_scoring", settings.log_level)  # what crashed at start with `info`
        assert root.level == getattr(logging, level)
    finally:
        root.handlers[:], root.level = handlers, before


def test_an_unknown_log_level_fails_fast_quoting_only_its_start(env: pytest.MonkeyPatch) -> None:
    env.setenv("LOG_LEVEL", "loud" * 1000)
    with pytest.raises(ConfigError, match="LOG_LEVEL must be one of") as err:
        Settings.from_env()
    assert len(str(err.value)) < 150


def test_the_required_variables_are_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.setenv("SCORING_DATABASE_URL", "sqlite:///x.db")
    with pytest.raises(ConfigError, match="KAFKA_BOOTSTRAP_SERVERS"):
        Settings.from_env()


def test_the_places_directory_gives_offices_their_reach(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.delenv("SANDAN_PLACES_FILE", raising=False)
    assert Settings.from_env().places == Places()  # no town or county office reaches anything (a warning says so)
    places = tmp_path / "places.toml"
    places.write_text('[county]\nid = "taihe"\n[communities.c1]\ntown = "north"\n', encoding="utf-8")
    env.setenv("SANDAN_PLACES_FILE", str(places))
    read = Settings.from_env().places
    assert (read.county_id, read.town_of("c1")) == ("taihe", "north")
    env.setenv("SANDAN_PLACES_FILE", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="SANDAN_PLACES_FILE"):
        Settings.from_env()
    places.write_text("[county\n", encoding="utf-8")
    env.setenv("SANDAN_PLACES_FILE", str(places))
    with pytest.raises(ConfigError, match="not valid TOML"):
        Settings.from_env()
