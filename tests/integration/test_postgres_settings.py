"""PostgreSQL credentials and TLS given apart from the URL, for eventsourcing's store and SQLAlchemy engines.

The shared test server trusts loopback connections (any password gets in, and it has no TLS), so refusals are
proved on a private server started here: scram-sha-256 passwords, TLS only (`hostssl`), a throwaway CA. Both
kinds of connection must honour the password (PGPASSWORD or SANDAN_DB_PASSWORD_FILE, re-read on every new
connection) and libpq's PGSSLMODE / PGSSLROOTCERT.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import psycopg
import pytest
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate
from sqlalchemy import text

from sandan_eventbus.config import ConfigError, eventstore_env
from sandan_eventbus.sql import engine_for
from tests.kafka_tls import make_ca, make_server_cert

pytestmark = pytest.mark.postgres

PASSWORD_ENV = ("PGPASSWORD", "SANDAN_DB_PASSWORD_FILE", "PGSSLMODE", "PGSSLROOTCERT", "PGSSLCERT", "PGSSLKEY",
                "PGPASSFILE")


@pytest.fixture(autouse=True)
def _clean_libpq_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in PASSWORD_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-pgpass"))  # never the user's ~/.pgpass


# ------------------------------------------------------------------------------------------- the mapping


def test_a_url_without_password_takes_it_from_the_environment(monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    env = eventstore_env("postgresql://intake@db.example:5432/intake?schema=s")
    assert "POSTGRES_PASSWORD" not in env and env["POSTGRES_USER"] == "intake" and env["POSTGRES_SCHEMA"] == "s"
    get_password = env["POSTGRES_GET_PASSWORD_TOPIC"]
    from eventsourcing.utils import resolve_topic

    read = resolve_topic(get_password)
    monkeypatch.setenv("PGPASSWORD", "from-env")
    assert read() == "from-env"
    secret = tmp_path / "password"
    secret.write_text("from-file\n")
    monkeypatch.setenv("SANDAN_DB_PASSWORD_FILE", str(secret))
    assert read() == "from-file"  # the file wins, without its newline
    secret.write_text("rotated")
    assert read() == "rotated"  # read again for every connection


def test_a_password_in_the_url_still_works() -> None:
    env = eventstore_env("postgresql://intake:p%40ss@db.example/intake")
    assert env["POSTGRES_PASSWORD"] == "p@ss" and "POSTGRES_GET_PASSWORD_TOPIC" not in env


@pytest.mark.parametrize("url", ["postgresql://u@h/d?sslmode=require", "postgresql://u@h/d?schema=s&password=x"])
def test_options_that_would_be_ignored_are_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="PGSSLMODE"):
        eventstore_env(url)
    with pytest.raises(ConfigError, match="PGSSLMODE"):
        engine_for(url)


def test_an_unreadable_password_file_fails_fast(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SANDAN_DB_PASSWORD_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="SANDAN_DB_PASSWORD_FILE"):
        eventstore_env("postgresql://u@h/d")
    with pytest.raises(ConfigError, match="SANDAN_DB_PASSWORD_FILE"):
        engine_for("postgresql://u@h/d")


# ------------------------------------------------------------------------------------- real connections


class Note(Aggregate):
    def __init__(self, text: str) -> None:
        self.text = text


class Notes(Application[uuid.UUID]):
    name = "SettingsTest"


def _store_roundtrip(url: str) -> None:
    # eventsourcing's pool retries a refused connection until its timeout, and logs why: keep it short.
    app = Notes(env={**eventstore_env(url), "POSTGRES_CONNECT_TIMEOUT": "3"})
    try:
        note = Note(uuid.uuid4().hex)
        app.save(note)
        assert app.repository.get(note.id).text == note.text
    finally:
        app.close()


def _sql_ssl(url: str) -> bool:
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            return bool(conn.execute(text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")).scalar())
    finally:
        engine.dispose()


def _without_password(url: str) -> str:
    parsed = urlparse(url)
    host = parsed.hostname or "127.0.0.1"
    netloc = f"{parsed.username}@{host}" + (f":{parsed.port}" if parsed.port else "")
    return urlunparse(parsed._replace(netloc=netloc))


def test_the_shared_server_with_the_password_given_apart(monkeypatch: pytest.MonkeyPatch,
                                                          postgres_schema_url: str) -> None:
    monkeypatch.setenv("PGPASSWORD", urlparse(postgres_schema_url).password or "")
    url = _without_password(postgres_schema_url)
    assert urlparse(url).password is None and "schema=" in url
    _store_roundtrip(url)
    _sql_ssl(url)


@dataclass(frozen=True)
class PrivateServer:
    port: int
    ca_file: Path
    other_ca_file: Path
    superuser_password: str

    def url(self, user: str, db: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{db}"

    def admin(self, sql: str) -> None:
        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres",
                             password=self.superuser_password, sslmode="verify-full",
                             sslrootcert=str(self.ca_file), autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]


def _pg_bindir() -> Path:
    configured = os.environ.get("PG_BINDIR", "")
    candidates = [configured] if configured else sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                                                        key=lambda p: int(Path(p).parent.name))
    for candidate in reversed(candidates):
        if (Path(candidate) / "initdb").is_file():
            return Path(candidate)
    pytest.fail("PostgreSQL's server binaries are needed for this test (apt-get install postgresql)")


def _free_port() -> int:
    for _ in range(200):
        port = 20000 + secrets.randbelow(12000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


@pytest.fixture(scope="module")
def private_server() -> Iterator[PrivateServer]:
    if os.environ.get("SANDAN_UNIT_ONLY") == "1":
        pytest.skip("SANDAN_UNIT_ONLY=1: no private PostgreSQL for the unit subset")
    bindir = _pg_bindir()
    as_root = os.geteuid() == 0  # PostgreSQL refuses to run as root: run it as the OS user postgres
    work = Path(tempfile.mkdtemp(prefix="sandan-pg-tls-"))
    ca_file, ca, ca_key = make_ca(work, "pg-ca")
    other_ca_file, _, _ = make_ca(work, "other-ca")
    cert_file, key_file = make_server_cert(work, ca, ca_key)
    superuser_password = secrets.token_urlsafe(16)
    (work / "pwfile").write_text(superuser_password + "\n")
    data, log, port = work / "data", work / "postgres.log", _free_port()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = ["runuser", "-u", "postgres", "--", *args] if as_root else list(args)
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)

    if as_root:
        shutil.chown(work, "postgres")
        for path in work.iterdir():
            shutil.chown(path, "postgres")
    done = run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", f"--pwfile={work / 'pwfile'}",
               "--auth=scram-sha-256", "--encoding=UTF8", "--no-instructions")
    assert done.returncode == 0, done.stderr[-2000:]
    with open(data / "postgresql.conf", "a", encoding="utf-8") as conf:
        conf.write(f"listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = ''\nssl = on\n"
                   f"ssl_cert_file = '{cert_file}'\nssl_key_file = '{key_file}'\n"
                   "password_encryption = 'scram-sha-256'\nfsync = off\n")
    # TLS only, passwords only: no trust, no plaintext.
    (data / "pg_hba.conf").write_text("hostssl all all 127.0.0.1/32 scram-sha-256\n")
    done = run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "start")
    assert done.returncode == 0, done.stderr[-2000:] + (log.read_text()[-2000:] if log.exists() else "")
    try:
        yield PrivateServer(port, ca_file, other_ca_file, superuser_password)
    finally:
        run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def app_role(private_server: PrivateServer) -> Iterator[tuple[str, str]]:
    """A login role that owns a database of its own, like each service's on CloudNativePG."""
    role, password = f"svc_{uuid.uuid4().hex[:8]}", secrets.token_urlsafe(16)
    private_server.admin(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    private_server.admin(f"CREATE DATABASE {role} OWNER {role}")
    yield role, password


def _verified(monkeypatch: pytest.MonkeyPatch, server: PrivateServer) -> None:
    monkeypatch.setenv("PGSSLMODE", "verify-full")
    monkeypatch.setenv("PGSSLROOTCERT", str(server.ca_file))


def _refused(caplog: pytest.LogCaptureFixture, action: Callable[[], object], *messages: str) -> None:
    """`action` fails for one of `messages`: in the error itself (SQLAlchemy) or in what the pool logged
    before giving up (eventsourcing's psycopg pool raises a bare PoolTimeout)."""
    caplog.clear()
    with caplog.at_level("WARNING", logger="psycopg.pool"), pytest.raises(Exception) as error:
        action()
    said = f"{error.value}\n{caplog.text}"
    assert any(m in said for m in messages), said[-2000:]


def test_password_from_the_environment_over_verified_tls(monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture,
                                                         private_server: PrivateServer,
                                                         app_role: tuple[str, str]) -> None:
    role, password = app_role
    url = private_server.url(role, role)
    _verified(monkeypatch, private_server)
    monkeypatch.setenv("PGPASSWORD", password)
    _store_roundtrip(url)
    assert _sql_ssl(url) is True

    monkeypatch.setenv("PGPASSWORD", "not-the-password")
    _refused(caplog, lambda: _store_roundtrip(url), "password authentication failed")
    _refused(caplog, lambda: _sql_ssl(url), "password authentication failed")


def test_password_file_is_read_for_every_new_connection(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                        private_server: PrivateServer,
                                                        app_role: tuple[str, str]) -> None:
    role, password = app_role
    url = private_server.url(role, role)
    _verified(monkeypatch, private_server)
    secret = tmp_path / "password"
    secret.write_text(password + "\n")  # as `echo` writes it
    monkeypatch.setenv("SANDAN_DB_PASSWORD_FILE", str(secret))
    monkeypatch.setenv("PGPASSWORD", "ignored-when-the-file-is-set")
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT current_user")).scalar() == role
        rotated = secrets.token_urlsafe(16)
        private_server.admin(f"ALTER ROLE {role} PASSWORD '{rotated}'")
        secret.write_text(rotated)
        engine.dispose()  # new connections from here on; the engine itself is kept, as a service keeps it
        with engine.connect() as conn:
            assert conn.execute(text("SELECT current_user")).scalar() == role
    finally:
        engine.dispose()
    _store_roundtrip(url)


def test_sslmode_and_root_certificate_reach_both_kinds_of_connection(monkeypatch: pytest.MonkeyPatch,
                                                                     caplog: pytest.LogCaptureFixture,
                                                                     private_server: PrivateServer,
                                                                     app_role: tuple[str, str]) -> None:
    role, password = app_role
    url = private_server.url(role, role)
    monkeypatch.setenv("PGPASSWORD", password)
    # A server certificate from another CA: refused by verify-full on both paths.
    monkeypatch.setenv("PGSSLMODE", "verify-full")
    monkeypatch.setenv("PGSSLROOTCERT", str(private_server.other_ca_file))
    _refused(caplog, lambda: _store_roundtrip(url), "certificate verify failed")
    _refused(caplog, lambda: _sql_ssl(url), "certificate verify failed")
    # Plaintext: the server accepts TLS only, so sslmode=disable is refused on both paths.
    monkeypatch.setenv("PGSSLMODE", "disable")
    monkeypatch.delenv("PGSSLROOTCERT")
    _refused(caplog, lambda: _store_roundtrip(url), "no pg_hba.conf entry", "no encryption")
    _refused(caplog, lambda: _sql_ssl(url), "no pg_hba.conf entry", "no encryption")
    # And a password in the URL, the old way, still connects.
    _verified(monkeypatch, private_server)
    monkeypatch.delenv("PGPASSWORD")
    legacy = url.replace(f"{role}@", f"{role}:{password}@")
    _store_roundtrip(legacy)
    assert _sql_ssl(legacy) is True
