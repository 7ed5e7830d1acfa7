from __future__ import annotations

import pytest

from sandan_eventbus.config import ConfigError, eventstore_env, number, required, sqlalchemy_url


def test_store_urls_map_to_eventsourcing_settings() -> None:
    assert eventstore_env("memory://") == {"PERSISTENCE_MODULE": "eventsourcing.popo"}
    sqlite = eventstore_env("sqlite:///var/lib/sandan/intake.db")
    assert sqlite["PERSISTENCE_MODULE"] == "eventsourcing.sqlite"
    assert sqlite["SQLITE_DBNAME"] == "var/lib/sandan/intake.db"
    assert eventstore_env("sqlite:////abs/intake.db")["SQLITE_DBNAME"] == "/abs/intake.db"
    pg = eventstore_env("postgresql://sandan:s%40cret@db.example:6543/county?schema=taihe")
    assert pg["PERSISTENCE_MODULE"] == "eventsourcing.postgres"
    assert (pg["POSTGRES_HOST"], pg["POSTGRES_PORT"], pg["POSTGRES_DBNAME"]) == ("db.example", "6543", "county")
    assert (pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"], pg["POSTGRES_SCHEMA"]) == ("sandan", "s@cret", "taihe")


@pytest.mark.parametrize("url", ["mysql://x/y", "sqlite://", "nonsense"])
def test_unsupported_store_urls_fail_fast(url: str) -> None:
    with pytest.raises(ConfigError):
        eventstore_env(url)


def test_sqlalchemy_urls_use_psycopg3() -> None:
    assert sqlalchemy_url("postgresql://u:p@h:5432/d?schema=s") == "postgresql+psycopg://u:p@h:5432/d"
    assert sqlalchemy_url("sqlite:///x.db") == "sqlite:///x.db"


def test_required_and_numbers_fail_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SANDAN_X", raising=False)
    with pytest.raises(ConfigError, match="SANDAN_X"):
        required("SANDAN_X")
    monkeypatch.setenv("SANDAN_X", "abc")
    with pytest.raises(ConfigError, match="number"):
        number("SANDAN_X", 1.0)
    monkeypatch.setenv("SANDAN_X", "2.5")
    assert number("SANDAN_X", 1.0) == 2.5
