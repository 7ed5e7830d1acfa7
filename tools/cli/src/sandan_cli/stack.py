"""`sandan stack up|down|status`: the local backing servers (Kafka, PostgreSQL, Keycloak) through the scripts in
deploy/local/, and the health of the four services.

The scripts do the work (and keep their own settings: KAFKA_STATE_DIR, PGPORT, KEYCLOAK_PORT, ...); `up` also
creates the registry's topics. `--state-dir DIR` gives the three their state directories under DIR (a private
stack; the default is the repo's `.local/`). `--dry-run` prints the commands without running them.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
from typing import Annotated, Any

import grpc
import httpx
import typer
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from sandan_cli.common import (
    DEFAULT_ADDRESSES,
    EXIT_FAILED,
    EXIT_USAGE,
    JSON_HELP,
    SERVICES,
    cli_of,
    emit_json,
    err,
    fail,
    out,
    table,
)
from sandan_eventbus.config import ConfigError

app = typer.Typer(help="The local stack: Kafka, PostgreSQL and Keycloak (deploy/local/*.sh), and the services' "
                       "health.", no_args_is_help=True)

COMPONENTS = ("kafka", "postgres", "keycloak")
STATE_VARIABLES = {"kafka": "KAFKA_STATE_DIR", "postgres": "PG_STATE_DIR", "keycloak": "KEYCLOAK_STATE_DIR"}
# what each script prints on stdout for where it is: the value a client needs
WHERE = {"kafka": "bootstrap", "postgres": "url", "keycloak": "url"}
EXPORT = {"kafka": "KAFKA_BOOTSTRAP_SERVERS", "postgres": "DATABASE_URL", "keycloak": "SANDAN_OIDC_ISSUER"}


def repo_root() -> Path:
    """The sandan checkout whose deploy/local/ scripts to run: SANDAN_REPO, else the one this package is installed
    from (editable), else the working directory or one above it."""
    candidates: list[Path] = []
    if os.environ.get("SANDAN_REPO", "").strip():
        candidates.append(Path(os.environ["SANDAN_REPO"]).expanduser())
    candidates += list(Path(__file__).resolve().parents)
    cwd = Path.cwd().resolve()
    candidates += [cwd, *cwd.parents]
    for c in candidates:
        if (c / "deploy" / "local" / "kafka.sh").is_file():
            return c
    raise ConfigError("no sandan checkout found (deploy/local/kafka.sh): run inside one or set SANDAN_REPO")


def script(component: str) -> Path:
    return repo_root() / "deploy" / "local" / f"{component}.sh"


def environment(state_dir: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    if state_dir is not None:
        for component, variable in STATE_VARIABLES.items():
            env[variable] = str(state_dir.resolve() / component)
    return env


def run_script(component: str, action: str, env: dict[str, str], timeout: float = 600,
               ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(script(component)), action], env=env, capture_output=True, text=True,  # noqa: S603, S607
                          timeout=timeout, check=False)


def chosen(only: list[str] | None) -> list[str]:
    picked = only or list(COMPONENTS)
    unknown = [c for c in picked if c not in COMPONENTS]
    if unknown:
        fail(f"unknown component(s) {', '.join(unknown)}; choose from {', '.join(COMPONENTS)}", EXIT_USAGE)
    return [c for c in COMPONENTS if c in picked]


StateDir = Annotated[Path | None, typer.Option("--state-dir", help="state directories of the three under this one "
                                                                    "(a private stack); default: the repo's .local/")]
Only = Annotated[list[str] | None, typer.Option("--only", help="kafka, postgres or keycloak (repeatable)")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="print what would run, run nothing")]


def _progress() -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err,
                    transient=False)


@app.command()
def up(only: Only = None, state_dir: StateDir = None, dry_run: DryRun = False,
       topics: Annotated[bool, typer.Option(help="create the registry's topics once Kafka is up")] = True) -> None:
    """Start the local servers (each script's `start` is idempotent) and create the topics; print the variables
    to export."""
    components = chosen(only)
    env = environment(state_dir)
    if dry_run:
        for c in components:
            out.print(f"bash {script(c)} start", markup=False)
        if topics and "kafka" in components:
            out.print("create the registry's topics (sandan_eventbus.kafka.create_topics)", markup=False)
        return
    with _progress() as progress:
        for c in components:
            task = progress.add_task(f"{c}: starting", total=1)
            done = run_script(c, "start", env)
            if done.returncode != 0:
                progress.stop()
                err.print(done.stderr[-3000:], markup=False)
                fail(f"{c}: `start` failed (exit {done.returncode})")
            progress.update(task, completed=1, description=f"{c}: up")
        if topics and "kafka" in components:
            task = progress.add_task("topics: creating from the registry", total=1)
            from sandan_eventbus.kafka import create_topics

            bootstrap = run_script("kafka", "bootstrap", env).stdout.strip()
            created = asyncio.run(create_topics(bootstrap))
            progress.update(task, completed=1, description=f"topics: ready ({created} created)")
    for c in components:
        value = run_script(c, WHERE[c], env).stdout.strip()
        out.print(f"export {EXPORT[c]}={value}", markup=False)


@app.command()
def down(only: Only = None, state_dir: StateDir = None, dry_run: DryRun = False) -> None:
    """Stop the local servers these scripts started (an external server is never stopped)."""
    components = chosen(only)
    env = environment(state_dir)
    failed = False
    for c in reversed(components):
        if dry_run:
            out.print(f"bash {script(c)} stop", markup=False)
            continue
        done = run_script(c, "stop", env)
        message = (done.stderr.strip().splitlines() or [""])[-1]
        err.print(f"{c}: {message}", markup=False)
        failed |= done.returncode != 0
    if failed:
        raise typer.Exit(EXIT_FAILED)


def _kafka_reachable(bootstrap: str, timeout: float) -> tuple[bool, str]:
    from aiokafka.admin import AIOKafkaAdminClient

    from sandan_eventbus.kafka import aiokafka_kwargs

    async def probe() -> str:
        admin = AIOKafkaAdminClient(client_id="sandan-cli-status", request_timeout_ms=int(timeout * 1000),
                                    **aiokafka_kwargs(bootstrap))
        await asyncio.wait_for(admin.start(), timeout)
        try:
            return f"{len(await admin.list_topics())} topics"
        finally:
            await admin.close()

    try:
        return True, asyncio.run(probe())
    except Exception as exc:
        return False, type(exc).__name__


def _issuer_reachable(issuer: str, timeout: float) -> tuple[bool, str]:
    try:
        reply = httpx.get(issuer.rstrip("/") + "/.well-known/openid-configuration", timeout=timeout)
        return reply.status_code == 200, f"HTTP {reply.status_code}"
    except httpx.HTTPError as exc:
        return False, type(exc).__name__


def health(cli: Any, service: str, address: str, timeout: float) -> dict[str, Any]:
    """gRPC health of one service: readiness ("") and liveness. No token needed (health is open to probes)."""
    result: dict[str, Any] = {"service": service, "address": address}
    try:
        channel = cli.channel(service, address=address, with_token=False)
    except ConfigError as exc:
        return result | {"ready": "UNKNOWN", "live": "UNKNOWN", "error": str(exc)}
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for name, probe in (("ready", ""), ("live", "liveness")):
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=probe), timeout=timeout)
                result[name] = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            except grpc.RpcError as exc:
                result[name] = exc.code().name  # type: ignore[attr-defined]
    return result


@app.command()
def status(ctx: typer.Context, state_dir: StateDir = None,
           services: Annotated[bool, typer.Option("--services", help="probe all four services at their addresses "
                                                   "(default: only those given with --intake ... or "
                                                   "SANDAN_*_ADDRESS)")] = False,
           timeout: Annotated[float, typer.Option(help="seconds per probe")] = 3.0,
           as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False) -> None:
    """What runs: each script's own status, whether the broker and the issuer answer, and the services' gRPC health.

    Exit 0 when everything probed answers, 1 otherwise."""
    cli = cli_of(ctx)
    env = environment(state_dir)
    servers: list[dict[str, Any]] = []
    for c in COMPONENTS:
        done = run_script(c, "status", env, timeout=60)
        where = run_script(c, WHERE[c], env, timeout=60).stdout.strip()
        entry: dict[str, Any] = {"component": c, "script": done.stdout.strip().splitlines()[-1:] or [""],
                                 "where": where}
        entry["script"] = entry["script"][0]
        if c == "kafka":
            entry["reachable"], entry["detail"] = _kafka_reachable(where, timeout)
        elif c == "keycloak":
            entry["reachable"], entry["detail"] = _issuer_reachable(where, timeout)
        else:
            entry["reachable"], entry["detail"] = done.returncode == 0, ""
        servers.append(entry)
    given = [s for s in SERVICES if services or cli.addresses[s] != DEFAULT_ADDRESSES[s]
             or os.environ.get(f"SANDAN_{s.upper()}_ADDRESS")]
    probed = [health(cli, s, cli.addresses[s], timeout) for s in given]
    healthy = all(s["reachable"] for s in servers) and all(p.get("ready") == "SERVING" for p in probed)
    if as_json:
        emit_json({"servers": servers, "services": probed, "healthy": healthy})
    else:
        table("servers", ["component", "script says", "address", "answers"],
              [[s["component"], s["script"], s["where"], ("yes" if s["reachable"] else "no")
               + (f" ({s['detail']})" if s["detail"] else "")]
               for s in servers])
        if probed:
            table("services (gRPC health)", ["service", "address", "ready", "live"],
                  [[p["service"], p["address"], p["ready"], p["live"]] for p in probed])
    if not healthy:
        raise typer.Exit(EXIT_FAILED)
