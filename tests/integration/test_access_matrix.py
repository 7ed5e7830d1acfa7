"""The whole role x method matrix, walked against the four services running as real processes: every role against
every method of intake, dispatch, scoring and notify, and `sandan.ops.v1.DeadLetters` and `.SetAside` on each
service that serves them, with real signed tokens (a local issuer that the processes trust, so tokens for every
role are quick to mint).

- a role in the method's row is never refused by role (the call may still fail on scope or on its content);
- a role outside the row gets PERMISSION_DENIED "<Method> is not allowed for roles ...", and the call leaves no
  trace: no stored event and no message on any event-log topic carries its correlation id;
- without a token, every method is UNAUTHENTICATED.

The matrix as it stands is printed into the test log (for the closing note) and checked against
docs/access-matrix.md, which scripts/access_matrix.py generates from access.toml.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor

from sandan_contracts import TOPICS
from sandan_contracts.access import ACCESS
from sandan_contracts.rpc import dispatch_pb2, intake_pb2, notify_pb2, ops_pb2, scoring_pb2
from sandan_eventbus.auth.devissuer import LocalIssuer
from sandan_eventbus.devtools import ServiceProcess
from sandan_eventbus.kafka import create_topics
from tests.integration.conftest import DISPATCH_KEK, INTAKE_KEK, free_port
from tests.integration.notify_stack import groups_at_end
from tests.integration.people import COUNTY, TOWN, CommunityPool, identity_env
from tests.integration.traces import correlations_since, ends, stored_with

pytestmark = pytest.mark.kafka

REPO = Path(__file__).resolve().parents[2]
Code = grpc.StatusCode
INTAKE = intake_pb2.DESCRIPTOR.services_by_name["Intake"]
DISPATCH = dispatch_pb2.DESCRIPTOR.services_by_name["Dispatch"]
SCORING = scoring_pb2.DESCRIPTOR.services_by_name["Scoring"]
NOTIFY = notify_pb2.DESCRIPTOR.services_by_name["Notify"]
DEAD_LETTERS = ops_pb2.DESCRIPTOR.services_by_name["DeadLetters"]
SET_ASIDE = ops_pb2.DESCRIPTOR.services_by_name["SetAside"]
# which process serves which gRPC service (DeadLetters: every consuming service, for its own group; SetAside: every
# service with a relay, for its own store)
SERVED = {"intake": [INTAKE, DEAD_LETTERS, SET_ASIDE], "dispatch": [DISPATCH, DEAD_LETTERS, SET_ASIDE],
          "scoring": [SCORING], "notify": [NOTIFY, DEAD_LETTERS, SET_ASIDE]}


@dataclass
class Matrix:
    processes: dict[str, ServiceProcess]
    stores: list[Path]
    issuer: LocalIssuer
    bootstrap: str
    community_id: str

    def token(self, role: str) -> str:
        """A token for one role, placed where that role acts (a community, its grid, its unit, its town)."""
        c = self.community_id
        places = {"resident": {"community_id": c}, "grid_worker": {"community_id": c},
                  "member": {"member_id": f"m-{c}", "community_id": c, "grid_id": f"{c}-g1"},
                  "grid_leader": {"community_id": c, "grid_id": f"{c}-g1"}, "branch_secretary": {"community_id": c},
                  "town_office": {"town_id": TOWN}, "county_office": {"county_id": COUNTY},
                  "hotline_operator": {"county_id": COUNTY, "town_id": TOWN},
                  "unit_admin": {"unit_id": f"unit-{c}", "community_id": c}}.get(role, {})
        client = {"partner": "sandan-partner"}.get(role, role.replace("service_", "sandan-")
                                                   if role.startswith("service_") else "sandan-cli")
        return self.issuer.token(f"matrix-{role}", [role], azp=client, **places)


@pytest.fixture(scope="module")
def matrix(kafka_bootstrap: str, local_issuer: LocalIssuer, tmp_path_factory: pytest.TempPathFactory,
           ) -> Iterator[Matrix]:
    """The four services trusting the local issuer, their consumer groups at the topics' ends (nothing of the
    broker's history to read first)."""
    asyncio.run(create_topics(kafka_bootstrap))
    work = tmp_path_factory.mktemp("matrix")
    run = uuid.uuid4().hex[:8]
    pool = CommunityPool("mx-", size=2)
    (work / "places.toml").write_text(pool.toml(), encoding="utf-8")
    identity = identity_env(local_issuer.url, work / "places.toml")
    heard = [t.name for t in TOPICS.values() if t.dead_letter and not t.name.startswith("notify.")]
    groups = {f"intake-mx{run}": ["dispatch.orders.v1"], f"dispatch-mx{run}": ["intake.demands.v1"],
              f"notify-mx{run}": heard}
    asyncio.run(groups_at_end(kafka_bootstrap, groups))
    address = {name: f"127.0.0.1:{free_port()}" for name in SERVED}
    common = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "LOG_LEVEL": "INFO", **identity}
    processes = {
        "intake": ServiceProcess("sandan_intake", {
            **common, "INTAKE_EVENTSTORE_URL": f"sqlite:///{work}/intake-events.db",
            "INTAKE_DATABASE_URL": f"sqlite:///{work}/intake.db", "INTAKE_GRPC_ADDRESS": address["intake"],
            "INTAKE_CONSUMER_GROUP": f"intake-mx{run}", **INTAKE_KEK}, address["intake"], work / "intake.log"),
        "dispatch": ServiceProcess("sandan_dispatch", {
            **common, "DISPATCH_EVENTSTORE_URL": f"sqlite:///{work}/dispatch-events.db",
            "DISPATCH_DATABASE_URL": f"sqlite:///{work}/dispatch.db", "DISPATCH_GRPC_ADDRESS": address["dispatch"],
            "DISPATCH_CONSUMER_GROUP": f"dispatch-mx{run}", **DISPATCH_KEK}, address["dispatch"],
            work / "dispatch.log"),
        "scoring": ServiceProcess("sandan_scoring", {
            **common, "SCORING_DATABASE_URL": f"sqlite:///{work}/scoring.db",
            "SCORING_GRPC_ADDRESS": address["scoring"]}, address["scoring"], work / "scoring.log"),
        # notify has an identity of its own but never needs it here: nothing it hears concerns its directory
        "notify": ServiceProcess("sandan_notify", {
            **common, **identity_env(local_issuer.url, work / "places.toml", calls_others=True),
            "NOTIFY_EVENTSTORE_URL": f"sqlite:///{work}/notify-events.db",
            "NOTIFY_DATABASE_URL": f"sqlite:///{work}/notify.db", "NOTIFY_GRPC_ADDRESS": address["notify"],
            "NOTIFY_CONSUMER_GROUP": f"notify-mx{run}", "NOTIFY_INTAKE_ADDRESS": address["intake"],
            "NOTIFY_DISPATCH_ADDRESS": address["dispatch"], "NOTIFY_OFFICES_FILE": str(work / "places.toml"),
            "NOTIFY_CONSOLE": str(work / "notifications.jsonl")}, address["notify"], work / "notify.log"),
    }
    started: list[ServiceProcess] = []
    try:
        for process in processes.values():
            process.start(timeout=180)
            started.append(process)
        stores = [work / "intake-events.db", work / "dispatch-events.db", work / "notify-events.db"]
        yield Matrix(processes, stores, local_issuer, kafka_bootstrap, pool.take())
    finally:
        for process in reversed(started):
            process.stop()


def _targets() -> list[tuple[str, MethodDescriptor]]:
    return [(name, m) for name, services in SERVED.items() for s in services for m in s.methods]


def _path(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


def _request(method: MethodDescriptor) -> bytes:
    """An empty request (the role check comes first, and what passes it may fail on content), except for Rebuild:
    an unknown rule set, so an operator's call does not replay the whole log."""
    message = message_factory.GetMessageClass(method.input_type)()
    if method.name == "Rebuild":
        message.rule_set_version = "0000.0"  # type: ignore[attr-defined]
    return message.SerializeToString()


def _call(address: str, method: MethodDescriptor, metadata: tuple[tuple[str, str], ...]) -> tuple[Code, str]:
    with grpc.insecure_channel(address) as channel:
        try:
            if method.server_streaming:
                for _ in channel.unary_stream(_path(method))(_request(method), metadata=metadata, timeout=60):
                    pass
            else:
                channel.unary_unary(_path(method))(_request(method), metadata=metadata, timeout=60)
        except grpc.RpcError as error:
            return error.code(), error.details() or ""  # type: ignore[attr-defined]
    return Code.OK, ""


def _role_refusal(method: MethodDescriptor, code: Code, details: str) -> bool:
    return code == Code.PERMISSION_DENIED and details.startswith(f"{method.name} is not allowed for roles ")


def test_the_targets_are_every_method_of_the_matrix() -> None:
    assert {_path(m) for _, m in _targets()} == set(ACCESS.rules)


def test_every_role_against_every_method(matrix: Matrix, capsys: pytest.CaptureFixture[str]) -> None:
    start = asyncio.run(ends(matrix.bootstrap))
    roles = list(ACCESS.roles)
    tokens = {role: matrix.token(role) for role in roles}
    observed: dict[str, set[str]] = {}  # method path -> roles the services let through
    wrong: list[str] = []
    refused: dict[str, str] = {}  # correlation id -> what was refused
    for service, method in _targets():
        address = matrix.processes[service].grpc_address
        row = set(ACCESS.roles_for(_path(method)))
        seen = observed.setdefault(_path(method), set())
        for role in roles:
            correlation_id = f"matrix-{uuid.uuid4().hex}"
            code, details = _call(address, method, (("authorization", f"Bearer {tokens[role]}"),
                                                    ("x-correlation-id", correlation_id)))
            if not _role_refusal(method, code, details):
                seen.add(role)
                if role not in row:
                    wrong.append(f"{service}: {method.name} let {role} through ({code.name}: {details[:120]})")
            else:
                refused[correlation_id] = f"{service}: {method.name} as {role}"
                if role in row:
                    wrong.append(f"{service}: {method.name} refused {role}, which its row allows")
        code, details = _call(address, method, (("x-correlation-id", f"matrix-{uuid.uuid4().hex}"),))
        if code != Code.UNAUTHENTICATED:
            wrong.append(f"{service}: {method.name} without a token answered {code.name}: {details[:120]}")

    table = _text_table({path: observed[path] for path in ACCESS.rules}, roles)
    with capsys.disabled():
        print(f"\nThe role x method matrix as the running services enforce it (x: allowed by role):\n{table}\n")
    assert wrong == [], "\n".join(wrong)

    # and a refused call left no trace: no stored event, no published message carries its correlation id
    for store in matrix.stores:
        traces = [what for cid, what in refused.items() if stored_with(store, cid)]
        assert traces == [], f"refused calls stored events in {store.name}: {traces[:5]}"
    published = asyncio.run(correlations_since(matrix.bootstrap, start))
    assert [refused[c] for c in published & set(refused)] == []
    for process in matrix.processes.values():
        assert process.proc is not None and process.proc.poll() is None


def _text_table(allowed: dict[str, set[str]], roles: list[str]) -> str:
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        from access_matrix import text_table  # scripts/ is not a package
    finally:
        sys.path.remove(str(REPO / "scripts"))
    return text_table(allowed, roles)


def test_the_matrix_page_is_generated_from_access_toml() -> None:
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "access_matrix.py"), "--check"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    page = (REPO / "docs" / "access-matrix.md").read_text(encoding="utf-8")
    assert all(f"| {path.rsplit('/', 1)[-1]} |" in page for path in ACCESS.rules)
