"""`sandan` without servers of its own: help everywhere, argument errors, exit codes, and the shapes of `--json`
against in-process stand-ins of the services (the real stack: tests/integration/test_cli.py)."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
import typer

from sandan_cli.app import app
from sandan_contracts import TOPICS

EXIT_USAGE, EXIT_NOT_FOUND, EXIT_NOT_ALLOWED = 2, 3, 4


def token(**claims: Any) -> str:
    """A JWT as the CLI reads it (the CLI never verifies tokens: the services do)."""
    body = {"sub": "sub-op", "iss": "http://127.0.0.1:8180/realms/sandan", "exp": int(time.time()) + 300,
            "azp": "sandan-cli", "realm_access": {"roles": ["operator", "offline_access"]}, **claims}
    return jwt.encode(body, "not-a-real-key-only-for-shape-tests-000000", algorithm="HS256")


def commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, command in getattr(group, "commands", {}).items():
        found += commands(command, (*prefix, name))
    return found


ALL = commands(typer.main.get_command(app))


def test_every_command_is_there() -> None:
    for path in [("stack", "up"), ("stack", "down"), ("stack", "status"), ("topics", "list"), ("topics", "describe"),
                 ("topics", "lag"), ("deadletters", "list"), ("deadletters", "show"), ("deadletters", "redrive"),
                 ("set-aside", "list"), ("set-aside", "redrive"),
                 ("scoring", "rebuild"), ("scoring", "what-if"), ("demand",), ("order",), ("login",), ("whoami",)]:
        assert path in ALL


@pytest.mark.parametrize("path", ALL, ids=lambda p: " ".join(p) or "sandan")
def test_help_everywhere(run: Any, path: tuple[str, ...]) -> None:
    result = run(*path, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage: sandan" in result.output


@pytest.mark.parametrize("path", [p for p in ALL if len(p) >= 1 and p[0] not in ("login", "logout")
                                  and p not in {("stack",), ("topics",), ("deadletters",), ("set-aside",),
                                                ("scoring",)}
                                  and p not in {("stack", "up"), ("stack", "down"), ("scoring", "rebuild"),
                                                ("deadletters", "redrive")}],
                         ids=lambda p: " ".join(p))
def test_every_read_command_has_json(run: Any, path: tuple[str, ...]) -> None:
    assert "--json" in run(*path, "--help").output


@pytest.mark.parametrize(("args", "message"), [
    (["deadletters", "show", "not-a-ref", "--service", "dispatch"], "expected <dead-letter topic>:<partition>:"),
    (["deadletters", "show", "intake.demands.v1.dlq:0:1", "--service", "scoring"], "is not one of"),
    (["deadletters", "show", "intake.demands.v1.dlq:0:1"], "--service"),
    (["deadletters", "redrive", "--service", "dispatch"], "Missing argument"),
    (["deadletters", "list", "--limit", "0"], "--limit"),
    (["set-aside", "list", "--limit", "1001"], "--limit"),
    (["set-aside", "list", "--service", "scoring"], "is not one of"),
    (["set-aside", "redrive", "--service", "dispatch"], "Missing argument"),
    (["set-aside", "redrive", "2"], "--service"),
    (["set-aside", "redrive", "0", "--service", "dispatch"], "greater than or equal to 1"),
    (["set-aside", "redrive", "two", "--service", "dispatch"], "valid integer"),
    (["scoring", "what-if", "2026.2"], "Missing argument"),
    (["topics", "lag", "--group"], "requires an argument"),
    (["topics", "describe"], "Missing argument"),
    (["stack", "up", "--only", "zookeeper", "--dry-run"], "unknown component"),
    (["demand"], "Missing argument"),
    (["nonsense"], "No such command"),
])
def test_argument_errors_exit_2(run: Any, args: list[str], message: str) -> None:
    result = run(*args)
    assert result.exit_code == EXIT_USAGE, result.output
    assert message in result.output


def test_without_a_token_nothing_is_called(run: Any, fake: Any) -> None:
    result = run("--plaintext", "--intake", fake.address, "demand", "d-1")
    assert result.exit_code == EXIT_NOT_ALLOWED
    assert "no token" in result.stderr and "sandan login" in result.stderr
    assert fake.calls.seen == []


def test_tls_is_the_default(run: Any, fake: Any) -> None:
    result = run("--token", token(), "--intake", fake.address, "demand", "d-1")
    assert result.exit_code == EXIT_USAGE
    assert "SANDAN_GRPC_TLS_CA_FILE" in result.stderr


# ---- the stack ----------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_stack_dry_run_prints_the_scripts(run: Any, tmp_path: Path) -> None:
    up = run("stack", "up", "--dry-run", "--state-dir", str(tmp_path))
    assert up.exit_code == 0, up.output
    lines = up.stdout.splitlines()
    assert [line.split("/")[-1] for line in lines[:3]] == ["kafka.sh start", "postgres.sh start", "keycloak.sh start"]
    assert "topics" in lines[3]
    down = run("stack", "down", "--dry-run", "--only", "keycloak")
    assert down.exit_code == 0 and down.stdout.strip().endswith("deploy/local/keycloak.sh stop")


def private_stack(tmp_path: Path) -> dict[str, str]:
    """Settings under which the scripts see a stack of their own that is not running (the shared servers and the
    repo's .local/ are never touched)."""
    return {"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{_free_port()}", "KAFKA_PORT": str(_free_port()),
            "KEYCLOAK_PORT": str(_free_port()), "PGPORT": str(_free_port())}


def test_stack_down_on_a_private_stack_stops_nothing_else(run: Any, tmp_path: Path) -> None:
    result = run("stack", "down", "--state-dir", str(tmp_path), **private_stack(tmp_path))
    assert result.exit_code == 0, result.output
    for component in ("kafka", "postgres", "keycloak"):
        assert f"{component}: " in result.stderr and "not running" in result.stderr


def test_stack_status_json_shape(run: Any, tmp_path: Path, fake: Any) -> None:
    result = run("--plaintext", "--intake", fake.address, "stack", "status", "--json", "--timeout", "2",
                 "--state-dir", str(tmp_path), **private_stack(tmp_path))
    assert result.exit_code == 1  # nothing of the private stack runs
    status = json.loads(result.stdout)
    assert [s["component"] for s in status["servers"]] == ["kafka", "postgres", "keycloak"]
    assert all(set(s) == {"component", "script", "where", "reachable", "detail"} for s in status["servers"])
    kafka, _, keycloak = status["servers"]
    assert kafka["script"] == "stopped" and not kafka["reachable"]
    assert keycloak["script"] == "stopped" and not keycloak["reachable"]
    # only the service given an address is probed; the stand-in has no health service
    assert [s["service"] for s in status["services"]] == ["intake"]
    assert status["services"][0]["ready"] == "UNIMPLEMENTED"
    assert status["healthy"] is False


# ---- topics (the registry; the broker: tests/integration/test_cli.py) ---------------------------------------

def test_topics_list_registry_only(run: Any) -> None:
    result = run("topics", "list", "--registry-only", "--json")
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert [t["name"] for t in listed] == list(TOPICS)
    assert set(listed[0]) == {"name", "owner", "key", "partitions", "retention_ms", "dead_letter", "events",
                              "description"}
    table = run("topics", "list", "--registry-only")
    assert "intake.demands.v1.dlq" in table.stdout


def test_topics_without_a_broker_exit_5(run: Any) -> None:
    result = run("topics", "describe", "intake.demands.v1", "--timeout", "2",
                 KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{_free_port()}")
    assert result.exit_code == 5, result.output
    assert "broker" in result.stderr


# ---- calls to the services, with the caller's token -----------------------------------------------------------

def test_scoring_rebuild_streams_progress(run: Any, fake: Any) -> None:
    t = token()
    result = run("--plaintext", "--token", t, "--scoring", fake.address, "scoring", "rebuild", "--rules", "2026.2")
    assert result.exit_code == 0, result.output
    assert "digest ab12" in result.stdout and "2026.2" in result.stdout
    assert "reading" in result.stderr  # the progress bar
    as_json = run("--plaintext", "--scoring", fake.address, "scoring", "rebuild", "--json", SANDAN_TOKEN=t)
    done = json.loads(as_json.stdout)
    assert done == {"phase": "done", "events_read": 10000, "events_total": 10000, "digest": "ab12",
                    "rule_set_version": "2026.1", "seconds": 1.5}
    assert fake.calls.tokens() == {f"Bearer {t}"}


def test_scoring_what_if_rules_digest_json(run: Any, fake: Any) -> None:
    base = ["--plaintext", "--token", token(), "--scoring", fake.address, "scoring"]
    report = json.loads(run(*base, "what-if", "2026.2", "2026Q4", "--json").stdout)
    assert report["candidate_version"] == "2026.2" and len(report["members"]) == 2
    assert set(report["members"][0]) == {"member_id", "current_points", "candidate_points", "current_stars",
                                         "candidate_stars"}
    changed = json.loads(run(*base, "what-if", "2026.2", "2026Q4", "--changed", "--json").stdout)
    assert [m["member_id"] for m in changed["members"]] == ["m-1"]
    assert json.loads(run(*base, "rules", "--json").stdout) == [{"version": "2026.1", "description": "d",
                                                                 "active": True}]
    digest = json.loads(run(*base, "digest", "--json").stdout)
    assert digest["entries"] == 12345678901  # a number, not proto3 JSON's string


def test_a_refusal_is_exit_4_and_says_why(run: Any, fake: Any) -> None:
    fake.calls.refuse["Digest"] = __import__("grpc").StatusCode.PERMISSION_DENIED
    result = run("--plaintext", "--token", token(), "--scoring", fake.address, "scoring", "digest")
    assert result.exit_code == EXIT_NOT_ALLOWED
    assert "Digest: PERMISSION_DENIED: Digest is not allowed" in result.stderr


def test_deadletters_list_show_redrive(run: Any, fake: Any) -> None:
    base = ["--plaintext", "--token", token(preferred_username="li.wei"), "--dispatch", fake.address]
    listed = json.loads(run(*base, "deadletters", "list", "--service", "dispatch", "--json").stdout)
    assert listed["errors"] == []
    [letter] = listed["dead_letters"]
    assert letter["service"] == "dispatch" and letter["name"] == "intake.demands.v1.dlq:0:17"
    assert letter["status"] == "dead" and "payload" not in letter
    shown = json.loads(run(*base, "deadletters", "show", letter["name"], "--service", "dispatch", "--json").stdout)
    assert shown["payload"] == "{not json" and shown["source_topic"] == "intake.demands.v1"
    missing = run(*base, "deadletters", "show", "intake.demands.v1.dlq:0:99", "--service", "dispatch")
    assert missing.exit_code == EXIT_NOT_FOUND

    first = run(*base, "deadletters", "redrive", letter["name"], "--service", "dispatch", "--json",
                "--reason", "menu item restored")
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["results"] == [{"dead_letter": letter["name"], "outcome": "applied",
                                                    "detail": "", "applied": True}]
    assert fake.dead_letters.seen_operator == "li.wei"  # the token's user name, when --operator is not given
    again = run(*base, "deadletters", "redrive", letter["name"], "--service", "dispatch", "--operator", "county IT")
    assert again.exit_code == 0 and "already_applied" in again.stdout
    assert fake.dead_letters.seen_operator == "county IT"
    lost = run(*base, "deadletters", "redrive", "intake.demands.v1.dlq:0:99", "--service", "dispatch")
    assert lost.exit_code == 1 and "not_found" in lost.stdout


def test_deadletters_list_reports_a_service_it_cannot_ask(run: Any, fake: Any) -> None:
    result = run("--plaintext", "--token", token(), "--intake", fake.address, "--notify", f"127.0.0.1:{_free_port()}",
                 "--timeout", "3", "deadletters", "list", "-s", "intake", "-s", "notify", "--json")
    assert result.exit_code == 1
    body = json.loads(result.stdout)
    assert [d["service"] for d in body["dead_letters"]] == ["intake"]
    assert [(e["service"], e["code"]) for e in body["errors"]] == [("notify", "UNAVAILABLE")]


def test_set_aside_list_reports_a_service_it_cannot_ask(run: Any) -> None:
    # the commands against a real relay's set-aside events: libs/eventbus/tests/test_eventbus_setaside.py
    result = run("--plaintext", "--token", token(), "--notify", f"127.0.0.1:{_free_port()}", "--timeout", "3",
                 "set-aside", "list", "-s", "notify", "--json")
    assert result.exit_code == 1
    body = json.loads(result.stdout)
    assert body["items"] == [] and body["set_aside"] == {}
    assert [(e["service"], e["code"]) for e in body["errors"]] == [("notify", "UNAVAILABLE")]


def test_demand_lookup_shows_each_part_or_why_not(run: Any, fake: Any) -> None:
    base = ["--plaintext", "--token", token(), "--intake", fake.address, "--dispatch", fake.address]
    found = json.loads(run(*base, "demand", "d-1", "--json").stdout)
    assert set(found) == {"demand", "history", "order"}
    assert found["demand"]["demand_id"] == "d-1" and found["demand"]["special_care"] is True
    assert [e["what"] for e in found["history"]["entries"]] == ["Posted", "Accepted"]
    assert found["order"]["order_id"] == "o-1"

    fake.calls.refuse["GetDemandHistory"] = __import__("grpc").StatusCode.PERMISSION_DENIED
    partly = json.loads(run(*base, "demand", "d-1", "--json", "--no-order").stdout)
    assert set(partly) == {"demand", "history"}
    assert partly["history"] == {"error": {"code": "PERMISSION_DENIED", "message": "GetDemandHistory: "
                                           "PERMISSION_DENIED: GetDemandHistory is not allowed for roles ['test']"}}
    shown = run(*base, "demand", "d-1")
    assert shown.exit_code == 0 and "history: not shown" in shown.stderr

    assert run(*base, "demand", "d-nope").exit_code == EXIT_NOT_FOUND
    fake.calls.refuse["GetDemand"] = __import__("grpc").StatusCode.PERMISSION_DENIED
    assert run(*base, "demand", "d-1").exit_code == EXIT_NOT_ALLOWED


def test_order_lookup_json(run: Any, fake: Any) -> None:
    result = run("--plaintext", "--token", token(), "--dispatch", fake.address, "order", "o-9", "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["order"]["order_id"] == "o-9" and body["order"]["hours"] == 1.5
    assert len(body["history"]["entries"]) == 2
    assert {m for m, _ in fake.calls.seen} == {"GetOrder", "GetOrderHistory"}


def test_whoami_reads_the_token(run: Any) -> None:
    result = run("--token", token(community_id="c-1"), "whoami", "--json")
    assert result.exit_code == 0, result.output
    who = json.loads(result.stdout)
    assert who["subject"] == "sub-op" and who["roles"] == ["operator"]  # roles of the matrix only
    assert who["places"] == {"community_id": "c-1"} and who["source"] == "StaticToken"
    assert run("logout").exit_code == 0


# ---- the console script, and `sandan login`'s cache --------------------------------------------------------

def test_the_console_script_is_installed() -> None:
    import subprocess
    import sys

    script = Path(sys.executable).with_name("sandan")
    assert script.exists(), "sandan is not installed: bash scripts/bootstrap.sh"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"})
    assert result.returncode == 0 and "stack" in result.stdout and "deadletters" in result.stdout


class TokenEndpoint:
    """A stand-in for the issuer's token endpoint: the password and refresh_token grants, counted."""

    def __init__(self) -> None:
        import http.server
        import threading
        import urllib.parse

        self.grants: list[dict[str, str]] = []
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"])).decode()
                form = {k: v[0] for k, v in urllib.parse.parse_qs(body).items()}
                endpoint.grants.append(form)
                if form.get("password") == "wrong":
                    reply, status = {"error": "invalid_grant", "error_description": "Invalid user credentials"}, 401
                else:
                    n = len(endpoint.grants)
                    reply, status = {"access_token": token(sub=f"sub-{n}", preferred_username="li.wei"),
                                     "expires_in": 1 if n == 2 else 300, "refresh_token": f"refresh-{n}",
                                     "refresh_expires_in": 1800}, 200
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.server.server_port}/realms/sandan"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_login_caches_the_token_and_refreshes_it(run: Any, tmp_path: Path) -> None:
    endpoint = TokenEndpoint()
    try:
        refused = run("--issuer", endpoint.issuer, "login", "--user", "li.wei", "--password", "wrong")
        assert refused.exit_code == EXIT_NOT_ALLOWED and "Invalid user credentials" in refused.stderr
        login = run("--issuer", endpoint.issuer, "login", "-u", "li.wei", input="secret\n")  # prompted
        assert login.exit_code == 0, login.output
        assert endpoint.grants[-1] == {"grant_type": "password", "client_id": "sandan-cli", "username": "li.wei",
                                       "password": "secret", "scope": "openid"}
        cache = tmp_path / "cache" / "cli-tokens.json"
        assert cache.stat().st_mode & 0o077 == 0  # the user's only
        # the first token expires at once: the next command refreshes it with the refresh token
        who = json.loads(run("--issuer", endpoint.issuer, "whoami", "--json").stdout)
        assert endpoint.grants[-1]["grant_type"] == "refresh_token" and endpoint.grants[-1]["refresh_token"] == \
            "refresh-2"
        assert who["subject"] == "sub-3" and who["source"] == "CachedLogin" and who["username"] == "li.wei"
        run("--issuer", endpoint.issuer, "whoami", "--json")
        assert len(endpoint.grants) == 3  # still valid: no new grant
        assert run("--issuer", endpoint.issuer, "logout").exit_code == 0
        gone = run("--issuer", endpoint.issuer, "whoami")
        assert gone.exit_code == EXIT_NOT_ALLOWED and "no token" in gone.stderr
    finally:
        endpoint.server.shutdown()
