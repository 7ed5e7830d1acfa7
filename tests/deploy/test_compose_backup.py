"""deploy/compose/backup.sh against a real PostgreSQL: a database is dumped (pg_dump -Fc), restored into a scratch
database, and holds the same rows; a second restore over it replaces rather than duplicates.

Runs the client tools on this machine (SANDAN_BACKUP_VIA=host) against the server of SANDAN_TEST_POSTGRES_URL
(the compose stack runs them inside its container; the commands are the same).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "compose" / "backup.sh"

pytestmark = pytest.mark.postgres


def _env(url: str) -> dict[str, str]:
    parts = urlparse(url)
    return {**os.environ, "SANDAN_BACKUP_VIA": "host", "PGHOST": parts.hostname or "127.0.0.1",
            "PGPORT": str(parts.port or 5432), "PGUSER": unquote(parts.username or ""),
            "PGPASSWORD": unquote(parts.password or os.environ.get("PGPASSWORD", ""))}


def _admin(url: str) -> psycopg.Connection:
    return psycopg.connect(urlparse(url)._replace(path="/postgres", query="").geturl(), autocommit=True)


def _url_of(url: str, database: str) -> str:
    return urlparse(url)._replace(path=f"/{database}", query="").geturl()


def _backup(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def databases(postgres_url: str) -> Iterator[tuple[str, str]]:
    """A source database with a schema and rows like a service's, and the name of a scratch one; both dropped."""
    tag = uuid.uuid4().hex[:8]
    source, scratch = f"backup_src_{tag}", f"backup_restored_{tag}"
    with _admin(postgres_url) as admin:
        admin.execute(f'create database "{source}"')
    with psycopg.connect(_url_of(postgres_url, source)) as conn:
        conn.execute("create schema intake")
        conn.execute("create table intake.events (id bigserial primary key, topic text not null, body jsonb)")
        conn.execute("insert into intake.events (topic, body) select 'intake.demands.v1', "
                     "jsonb_build_object('n', n, 'text', repeat('x', n % 50)) from generate_series(1, 500) n")
    try:
        yield source, scratch
    finally:
        with _admin(postgres_url) as admin:
            for name in (source, scratch):
                admin.execute(f'drop database if exists "{name}" with (force)')


def _rows(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute("select id, topic, body from intake.events order by id").fetchall()


def test_a_dump_restores_into_a_scratch_database(postgres_url: str, databases: tuple[str, str],
                                                 tmp_path: Path) -> None:
    source, scratch = databases
    env = {**_env(postgres_url), "SANDAN_BACKUP_DATABASES": source}
    _backup(env, "dump", str(tmp_path))
    (dump,) = tmp_path.glob(f"{source}-*.dump")
    assert dump.read_bytes()[:5] == b"PGDMP"  # pg_dump's custom format
    assert list(tmp_path.glob("globals-*.sql"))
    assert "TABLE DATA intake events" in _backup(env, "list", str(dump)).stdout

    _backup(env, "restore", str(dump), scratch)
    expected = _rows(_url_of(postgres_url, source))
    assert len(expected) == 500 and _rows(_url_of(postgres_url, scratch)) == expected
    # again over the restored copy (what a repeated drill does): replaced, not appended
    _backup(env, "restore", str(dump), scratch)
    assert _rows(_url_of(postgres_url, scratch)) == expected
