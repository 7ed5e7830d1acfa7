"""Fixtures for scoring's tests (the helpers themselves are in support.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sandan_scoring.rules import RuleBook, RuleSet
from services.scoring.tests.support import Events


@pytest.fixture
def ev() -> Events:
    return Events()


@pytest.fixture(scope="session")
def rulebook() -> RuleBook:
    return RuleBook()


@pytest.fixture
def rules(rulebook: RuleBook) -> RuleSet:
    return rulebook.get("2026.1")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh SQLite file, or a PostgreSQL schema of its own (dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/scoring.db"
        return
    yield request.getfixturevalue("postgres_schema_url")  # root conftest: a schema of its own
