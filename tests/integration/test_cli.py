"""The operators' CLI (`sandan`, tools/cli) against the real stack: the shared broker for `topics`, and intake and
dispatch as real processes trusting the real Keycloak for `demand`, `order` and `deadletters`, each called with
the token of the person who would run it (signed in through Keycloak; `sandan login` itself is one of them).

The services' consumer groups start at the topics' ends (nothing of the broker's history to read first). The
CLI runs in-process (typer's CliRunner), so each test is synchronous and sets up its world with `asyncio.run`.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiokafka import AIOKafkaProducer
from typer.testing import CliRunner, Result

from sandan_cli.app import app
from sandan_contracts import TOPICS
from sandan_contracts.rpc import dispatch_pb2_grpc, intake_pb2_grpc
from sandan_eventbus.devtools import ServiceProcess
from sandan_eventbus.kafka import create_topics
from tests.integration.conftest import DISPATCH_KEK, INTAKE_KEK, free_port, places
from tests.integration.notify_stack import groups_at_end
from tests.integration.people import Caller, CommunityPool, People, aio_channel_as, identity_env
from tests.integration.scenario import Community, a_community, order_for, post

pytestmark = pytest.mark.kafka


@dataclass
class CliStack:
    bootstrap: str
    workdir: Path
    intake: ServiceProcess
    dispatch: ServiceProcess
    people: People
    communities: CommunityPool
    groups: dict[str, str]
    channels: list[grpc.aio.Channel] = field(default_factory=list)

    def intake_stub(self, caller: Caller | None) -> intake_pb2_grpc.IntakeStub:
        self.channels.append(aio_channel_as(self.intake.grpc_address, caller))
        return intake_pb2_grpc.IntakeStub(self.channels[-1])

    def dispatch_stub(self, caller: Caller | None) -> dispatch_pb2_grpc.DispatchStub:
        self.channels.append(aio_channel_as(self.dispatch.grpc_address, caller))
        return dispatch_pb2_grpc.DispatchStub(self.channels[-1])

    def given(self, coroutine: Any) -> Any:
        """Run the given-steps in a loop of their own, closing the channels they opened in it."""
        async def run() -> Any:
            try:
                return await coroutine
            finally:
                for channel in self.channels:
                    await channel.close()
                self.channels.clear()
        return asyncio.run(run())

    def sandan(self, *args: str, caller: Caller | None = None, **env: str) -> Result:
        """`sandan` with the services' addresses, plaintext (a local run) and `caller`'s token."""
        options = ["--plaintext", "--intake", self.intake.grpc_address, "--dispatch", self.dispatch.grpc_address,
                   "--notify", f"127.0.0.1:{free_port()}", "--timeout", "20"]
        if caller is not None:
            options += ["--token", caller.token()]
        return CliRunner().invoke(app, [*options, *args], catch_exceptions=False, env={
            "COLUMNS": "250", "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap, "SANDAN_TOKEN": "",
            "SANDAN_CACHE": str(self.workdir / "cli-cache"), **env})


@pytest.fixture(scope="module")
def cli_stack(kafka_bootstrap: str, people: People, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliStack]:
    asyncio.run(create_topics(kafka_bootstrap))
    workdir = tmp_path_factory.mktemp("cli")
    run = uuid.uuid4().hex[:8]
    groups = {"intake": f"intake-cli{run}", "dispatch": f"dispatch-cli{run}"}
    asyncio.run(groups_at_end(kafka_bootstrap, {groups["intake"]: ["dispatch.orders.v1"],
                                                groups["dispatch"]: ["intake.demands.v1"]}))
    communities, places_file = places(workdir)
    intake_addr, dispatch_addr = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    common = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "LOG_LEVEL": "INFO",
              **identity_env(people.issuer, places_file)}
    intake = ServiceProcess("sandan_intake", {
        **common, "INTAKE_EVENTSTORE_URL": f"sqlite:///{workdir}/intake-events.db",
        "INTAKE_DATABASE_URL": f"sqlite:///{workdir}/intake.db", "INTAKE_GRPC_ADDRESS": intake_addr,
        "INTAKE_CONSUMER_GROUP": groups["intake"], **INTAKE_KEK}, intake_addr, workdir / "intake.log")
    dispatch = ServiceProcess("sandan_dispatch", {
        **common, "DISPATCH_EVENTSTORE_URL": f"sqlite:///{workdir}/dispatch-events.db",
        "DISPATCH_DATABASE_URL": f"sqlite:///{workdir}/dispatch.db", "DISPATCH_GRPC_ADDRESS": dispatch_addr,
        "DISPATCH_CONSUMER_GROUP": groups["dispatch"], **DISPATCH_KEK}, dispatch_addr, workdir / "dispatch.log")
    started: list[ServiceProcess] = []
    try:
        for process in (intake, dispatch):
            process.start(timeout=180)
            started.append(process)
        yield CliStack(kafka_bootstrap, workdir, intake, dispatch, people, communities, groups)
    finally:
        for process in reversed(started):
            process.stop()


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_topics_list_describe_and_lag_against_the_broker(cli_stack: CliStack) -> None:
    s = cli_stack
    listed = as_json(s.sandan("topics", "list", "--json"))
    assert [t["name"] for t in listed] == list(TOPICS)
    assert all(t["on_broker"] and t["broker_partitions"] == t["partitions"] for t in listed)

    described = as_json(s.sandan("topics", "describe", "intake.demands.v1", "--json"))
    assert described["registry"]["owner"] == "intake" and "DemandPosted" in described["registry"]["events"]
    partitions = described["broker"]["partitions"]
    assert [p["partition"] for p in partitions] == list(range(TOPICS["intake.demands.v1"].partitions))
    assert all(p["end_offset"] >= p["first_offset"] >= 0 and p["leader"] >= 0 for p in partitions)
    assert described["broker"]["config"]["retention.ms"] == "-1"  # the event log is kept forever

    # dispatch's group was placed at the end: one demand later, it has read it (lag back to 0)
    c: Community = s.given(a_community(s, members=1))
    demand = s.given(post(s, c))
    s.given(order_for(s, c, demand.demand_id))
    group = s.groups["dispatch"]
    deadline = time.monotonic() + 60
    while True:
        rows = as_json(s.sandan("topics", "lag", "--group", group, "--json"))
        assert [(r["group"], r["topic"], r["partitions"]) for r in rows] == [(group, "intake.demands.v1", 6)]
        if rows[0]["lag"] == 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert rows[0]["lag"] == 0 and rows[0]["committed"] == rows[0]["end_offset"]
    per_partition = as_json(s.sandan("topics", "lag", "--group", group, "--partitions", "--json"))
    assert sorted(r["partition"] for r in per_partition) == list(range(6))
    assert sum(r["end_offset"] for r in per_partition) == rows[0]["end_offset"]


def test_demand_and_order_lookups_show_what_the_role_allows(cli_stack: CliStack) -> None:
    s = cli_stack
    c: Community = s.given(a_community(s, members=1))
    demand = s.given(post(s, c))
    order = s.given(order_for(s, c, demand.demand_id))

    # the community's branch secretary sees the demand, its trail and its order
    found = as_json(s.sandan("demand", demand.demand_id, "--json", caller=c.secretary))
    assert found["demand"]["demand_id"] == demand.demand_id
    assert found["demand"]["community_id"] == c.community_id and found["demand"]["special_care"] is True
    assert found["history"]["entries"][0]["what"] == "Posted"
    assert found["history"]["entries"][0]["subject"] == c.grid_worker.subject  # who, by opaque subject
    assert found["order"]["order_id"] == order.order_id
    # nothing personal in any of it: no name, phone, address or description (the care tag: for community workers)
    text = json.dumps(found, ensure_ascii=False)
    for personal in ("王秀英", "13800001234", "澄江镇 3 栋", "降压药"):
        assert personal not in text
    assert found["demand"]["care_tags"] == ["elderly_alone"]
    # the town office sees the demand, that it needs special care, but not which kind
    town = as_json(s.sandan("demand", demand.demand_id, "--json", caller=s.people.town_office()))
    assert town["demand"]["special_care"] is True and town["demand"]["care_tags"] == []
    table = s.sandan("demand", demand.demand_id, caller=c.secretary)
    assert table.exit_code == 0 and order.order_id in table.stdout

    shown = as_json(s.sandan("order", order.order_id, "--json", caller=c.secretary))
    assert shown["order"]["demand_id"] == demand.demand_id and shown["history"]["entries"][0]["what"]

    # county IT may not read demands at all: the service refuses, and the CLI says so (exit 4)
    refused = s.sandan("demand", demand.demand_id, caller=s.people.operator())
    assert refused.exit_code == 4 and "GetDemand: PERMISSION_DENIED" in refused.stderr
    assert refused.stdout == ""
    # a member of the community who does not hold it sees the demand refused too
    assert s.sandan("demand", demand.demand_id, caller=c.member(0)).exit_code == 4
    # a demand that does not exist
    unknown = s.sandan("demand", str(uuid.uuid4()), caller=c.secretary)
    assert unknown.exit_code in (3, 4), unknown.stderr
    # and a malformed one is the service's INVALID_ARGUMENT (exit 1), as it says
    malformed = s.sandan("demand", "d-nope", caller=c.secretary)
    assert malformed.exit_code == 1 and "INVALID_ARGUMENT" in malformed.stderr


async def _poison(bootstrap: str, topic: str, key: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"{not json", key=key.encode())
    finally:
        await producer.stop()


def test_dead_letters_through_the_ops_service_with_a_login(cli_stack: CliStack) -> None:
    s = cli_stack
    # county IT signs in (the local realm's password grant) and the CLI keeps the token for the next commands
    operator = s.people.operator()
    login = s.sandan("--issuer", s.people.issuer, "login", "--user", operator.person.username, "--password",
                     operator.person.password)
    assert login.exit_code == 0, login.output
    who = as_json(s.sandan("--issuer", s.people.issuer, "whoami", "--json"))
    assert who["roles"] == ["operator"] and who["subject"] == operator.subject and who["source"] == "CachedLogin"

    key = f"cli-poison-{uuid.uuid4().hex[:8]}"
    asyncio.run(_poison(s.bootstrap, "intake.demands.v1", key))
    deadline = time.monotonic() + 90
    while True:
        listed = as_json(s.sandan("--issuer", s.people.issuer, "deadletters", "list", "--service", "dispatch",
                                  "--topic", "intake.demands.v1", "--json"))
        mine = [d for d in listed["dead_letters"] if d["key"] == key]
        if mine or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert listed["errors"] == []
    [letter] = mine
    assert letter["service"] == "dispatch" and letter["status"] == "dead"
    assert letter["consumer_group"] == s.groups["dispatch"] and letter["name"].startswith("intake.demands.v1.dlq:")

    shown = as_json(s.sandan("--issuer", s.people.issuer, "deadletters", "show", letter["name"], "--service",
                             "dispatch", "--json"))
    assert shown["payload"] == "{not json" and shown["source_topic"] == "intake.demands.v1"

    # re-driven, it is re-validated, fails again and stays a dead letter; the attempt is recorded, with who asked
    # (the service records the verified caller, not the name the CLI states)
    again = s.sandan("--issuer", s.people.issuer, "deadletters", "redrive", letter["name"], "--service",
                     "dispatch", "--reason", "cli test", "--json")
    assert again.exit_code == 1
    [result] = json.loads(again.stdout)["results"]
    assert result["outcome"] == "undecodable" and not result["applied"]
    after = as_json(s.sandan("--issuer", s.people.issuer, "deadletters", "show", letter["name"], "--service",
                             "dispatch", "--json"))
    assert after["status"] == "dead"
    assert [(a["operator"], a["reason"], a["outcome"]) for a in after["attempts"]] == [
        (operator.subject, "cli test", "undecodable")]

    # intake has its own group's dead letters; notify is not running here: reported, exit 1
    both = s.sandan("--issuer", s.people.issuer, "deadletters", "list", "-s", "intake", "-s", "notify", "--json")
    assert both.exit_code == 1
    assert [e["service"] for e in json.loads(both.stdout)["errors"]] == ["notify"]

    # a branch secretary is not county IT: refused by the service
    secretary = s.given(a_community(s, members=1)).secretary
    refused = s.sandan("deadletters", "list", "-s", "dispatch", "--json", caller=secretary)
    assert refused.exit_code == 1
    assert json.loads(refused.stdout)["errors"][0]["code"] == "PERMISSION_DENIED"


def test_stack_up_with_an_external_broker_starts_nothing_and_creates_the_topics(kafka_bootstrap: str,
                                                                                tmp_path: Path) -> None:
    # KAFKA_BOOTSTRAP_SERVERS set: kafka.sh uses that broker and starts nothing (the shared one keeps running)
    result = CliRunner().invoke(app, ["stack", "up", "--only", "kafka", "--state-dir", str(tmp_path)],
                                env={"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "COLUMNS": "250"},
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"export KAFKA_BOOTSTRAP_SERVERS={kafka_bootstrap}"
    assert "external broker" in result.stderr or "topics: ready" in result.stderr
    assert not (tmp_path / "kafka").exists()  # nothing of a broker of its own


def test_stack_status_probes_the_running_services(cli_stack: CliStack) -> None:
    s = cli_stack
    result = s.sandan("stack", "status", "--json")  # reads the scripts' status only: nothing is started or stopped
    status = json.loads(result.stdout)
    assert [p["service"] for p in status["services"]] == ["intake", "dispatch", "notify"]  # those given
    intake, dispatch, notify = status["services"]
    assert intake["ready"] == dispatch["ready"] == "SERVING" and intake["live"] == dispatch["live"] == "SERVING"
    assert intake["address"] == s.intake.grpc_address
    assert notify["ready"] == "UNAVAILABLE"  # not running here
    assert result.exit_code == 1 and status["healthy"] is False
    kafka = status["servers"][0]
    assert kafka["component"] == "kafka" and kafka["reachable"] and kafka["where"] == s.bootstrap
