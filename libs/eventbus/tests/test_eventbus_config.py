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


# ---- settings classes: each problem after its variable, never the value ------------------------------------------


def _example() -> type:
    from pydantic import Field, field_validator, model_validator
    from pydantic_settings import SettingsConfigDict

    from sandan_eventbus.config import LogLevel, ServiceSettings

    class Example(ServiceSettings):
        model_config = SettingsConfigDict(env_prefix="EXAMPLE_", env_ignore_empty=True, str_strip_whitespace=True,
                                          extra="ignore", frozen=True)

        bootstrap: str = Field(validation_alias="KAFKA_BOOTSTRAP_SERVERS", min_length=1)
        store_url: str = Field(min_length=1)
        workers: int = 0
        secret: str = ""
        log_level: LogLevel = Field("INFO", validation_alias="LOG_LEVEL")

        @field_validator("secret")
        @classmethod
        def _long(cls, value: str) -> str:
            if value and len(value) < 8:
                raise ValueError("EXAMPLE_SECRET must be 8 characters or more")
            return value

        @model_validator(mode="after")
        def _whole(self) -> Example:
            if self.workers > 9:
                raise ValueError("too many workers")
            return self

    return Example


def test_settings_problems_name_their_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    from sandan_eventbus.config import settings_from_env

    example = _example()
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.setenv("EXAMPLE_STORE_URL", "   ")  # blank counts as unset
    monkeypatch.setenv("EXAMPLE_WORKERS", "some")
    monkeypatch.setenv("EXAMPLE_SECRET", "hunter2")
    monkeypatch.setenv("LOG_LEVEL", "loud")
    with pytest.raises(ConfigError) as error:
        settings_from_env(example)
    assert str(error.value) == (
        "KAFKA_BOOTSTRAP_SERVERS: field required; EXAMPLE_STORE_URL: field required; EXAMPLE_WORKERS: Input should "
        "be a valid integer, unable to parse string as an integer; EXAMPLE_SECRET must be 8 characters or more; "
        "LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL (any case), got 'LOUD'")
    assert "hunter2" not in str(error.value) and "some" not in str(error.value)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k:9092")
    monkeypatch.setenv("EXAMPLE_STORE_URL", "memory://")
    monkeypatch.setenv("EXAMPLE_WORKERS", "10")
    monkeypatch.setenv("EXAMPLE_SECRET", "long enough")
    monkeypatch.setenv("LOG_LEVEL", " debug ")
    with pytest.raises(ConfigError, match=r"^too many workers$"):
        settings_from_env(example)
    monkeypatch.setenv("EXAMPLE_WORKERS", "2")
    read = settings_from_env(example)
    assert (read.bootstrap, read.workers, read.log_level) == ("k:9092", 2, "DEBUG")


def test_settings_are_read_under_their_documented_names_and_built_by_field_name(
        monkeypatch: pytest.MonkeyPatch) -> None:
    example = _example()
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "from-env")
    monkeypatch.setenv("EXAMPLE_BOOTSTRAP", "not-a-variable")
    monkeypatch.setenv("EXAMPLE_STORE_URL", "memory://")
    assert example().bootstrap == "from-env"
    assert example(bootstrap="given").bootstrap == "given"  # by field name, though the field is aliased


def test_load_or_exit_prints_one_line_naming_the_variable(monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from sandan_eventbus.config import load_or_exit

    example = _example()
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k:9092")
    monkeypatch.delenv("EXAMPLE_STORE_URL", raising=False)
    with pytest.raises(SystemExit) as stopped:
        load_or_exit("example", example)  # the class itself: its ValidationError is named the same way
    assert stopped.value.code == 2
    assert capsys.readouterr().err == "example: EXAMPLE_STORE_URL: field required\n"
