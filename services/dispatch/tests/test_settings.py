"""dispatch's settings: `LOG_LEVEL` in any case (it crashed at start on `info`), a clear error otherwise; the places
directory (SANDAN_PLACES_FILE)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from sandan_dispatch.keys import Keyring
from sandan_dispatch.settings import Settings
from sandan_eventbus.auth.scopes import Places
from sandan_eventbus.config import ConfigError
from sandan_eventbus.logs import setup


@pytest.fixture(autouse=True)
def required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    monkeypatch.setenv("DISPATCH_EVENTSTORE_URL", "sqlite:///dispatch.db")
    monkeypatch.setenv("DISPATCH_KEK", Keyring.generate().text())


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


def test_the_places_directory_gives_offices_their_reach(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    places = tmp_path / "places.toml"
    places.write_text('[county]\nid = "taihe"\n[communities.c1]\ntown = "chengjiang"\n', encoding="utf-8")
    monkeypatch.setenv("SANDAN_PLACES_FILE", str(places))
    settings = Settings.from_env()
    assert (settings.places.county_id, settings.places.town_of("c1"), settings.places.town_of("c2")) == (
        "taihe", "chengjiang", None)
    monkeypatch.delenv("SANDAN_PLACES_FILE")
    assert Settings.from_env().places == Places()  # unset: offices reach no community (refused, not guessed)


def test_the_shipped_places_directory_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDAN_PLACES_FILE", str(Path(__file__).parents[3] / "deploy/local/places.toml"))
    assert Settings.from_env().places.town_of("chengjiang-xinqu") == "chengjiang"


@pytest.mark.parametrize(("content", "message"), [(None, "cannot read"), ("[county\n", "is not valid TOML")])
def test_an_unreadable_places_directory_stops_the_service(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                          content: str | None, message: str) -> None:
    places = tmp_path / "places.toml"
    if content is not None:
        places.write_text(content, encoding="utf-8")
    monkeypatch.setenv("SANDAN_PLACES_FILE", str(places))
    with pytest.raises(ConfigError, match=f"^SANDAN_PLACES_FILE: .*{message}"):
        Settings.from_env()


def test_the_shared_contact_tokens_are_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Contacts go to notify's service identity (a verified token with role service_notify), not to a shared
    secret: the old setting is read by nothing."""
    monkeypatch.setenv("DISPATCH_CONTACT_TOKENS", "notify-5f2c9e")
    assert not hasattr(Settings.from_env(), "contact_tokens")
