"""The services' READMEs document their settings classes as scripts/config_table.py renders them (fresh), every
field says what it means, and a bad value stops a service with one line naming the variable."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from sandan_eventbus.config import load_or_exit

ROOT = Path(__file__).resolve().parents[2]


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("config_table", ROOT / "scripts" / "config_table.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("config_table", module)
    spec.loader.exec_module(module)
    return module


GENERATOR = _generator()


def test_the_readme_tables_are_fresh() -> None:
    assert GENERATOR.stale() == [], "run: python scripts/config_table.py"


@pytest.mark.parametrize("spec", sorted({s for specs in GENERATOR.TABLES.values() for s in specs}))
def test_every_setting_says_what_it_means(spec: str) -> None:
    cls = GENERATOR.settings_class(spec)
    assert [name for name, info in cls.model_fields.items() if not (info.description or "").strip()] == []


def test_the_table_names_each_variable_once() -> None:
    for readme, specs in GENERATOR.TABLES.items():
        names = [GENERATOR.variable(cls, n, i) for cls in map(GENERATOR.settings_class, specs)
                 for n, i in cls.model_fields.items()]
        assert len(names) == len(set(names)), readme


def test_a_missing_variable_stops_the_service_naming_it(monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from sandan_scoring.settings import Settings

    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    monkeypatch.setenv("SCORING_DATABASE_URL", "  ")
    monkeypatch.setenv("SCORING_REPLAY_WORKERS", "many")
    for load in (Settings.from_env, Settings):  # ConfigError, or the class's own ValidationError
        with pytest.raises(SystemExit) as stopped:
            load_or_exit("scoring", load)
        assert stopped.value.code == 2
        assert capsys.readouterr().err == ("scoring: SCORING_DATABASE_URL: field required; SCORING_REPLAY_WORKERS: "
                                           "Input should be a valid integer, unable to parse string as an integer\n")
