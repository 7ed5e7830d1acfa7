"""Set-aside events over gRPC (`sandan.ops.v1.SetAside`), against the real broker: a relay sets aside an event too
large for a private topic (a small max.message.bytes) while the rest flow; an operator lists it with its error
(nothing of its content) and re-drives it: refused again while the limit stands (it stays set aside), published
once the limit is raised, already_published after that, each attempt recorded with the verified caller. Other
roles are refused; bad input is INVALID_ARGUMENT naming the field; a store outage is UNAVAILABLE. The server has
the real chain (edge.server) with the authentication interceptor trusting a local issuer; `sandan set-aside` is
run against it as an operator would."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import grpc
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from eventsourcing.domain import Aggregate, event
from typer.testing import CliRunner

from sandan_contracts.events import Event
from sandan_contracts.rpc import ops_pb2 as pb
from sandan_contracts.rpc import ops_pb2_grpc
from sandan_eventbus import channels, edge, setaside
from sandan_eventbus.auth.devissuer import LocalIssuer
from sandan_eventbus.devtools import read_topic
from sandan_eventbus.kafka import aiokafka_kwargs, make_broker
from sandan_eventbus.relay import Relay
from sandan_eventbus.store import ServiceApplication

pytestmark = pytest.mark.kafka
Code = grpc.StatusCode
LIMIT, BIG = 20_000, 40_000  # the topic's max.message.bytes; the big event's padding


class Parcel(Aggregate):
    @event("Packed")
    def __init__(self, key: str, label: str, size: int) -> None:
        self.key, self.label, self.size = key, label, size


class Bulky(Event):
    TYPE: ClassVar[str] = "SetAsideTestBulky"
    TOPIC: ClassVar[str] = "unset"
    KEY: ClassVar[str] = "parcel_id"
    parcel_id: str
    label: str
    padding: str = ""


@dataclass
class Served:
    relay: Relay
    topic: str
    address: str
    stub: ops_pb2_grpc.SetAsideStub
    admin: AIOKafkaAdminClient
    issuer: LocalIssuer

    def operator(self, subject: str = "ops-li-wei") -> tuple[tuple[str, str]]:
        return self.issuer.metadata(subject, ["operator"], azp="sandan-cli", preferred_username="li.wei")

    async def raise_limit(self) -> None:
        await self.admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, self.topic,
                                                       configs={"max.message.bytes": str(BIG * 4)})])


@contextlib.asynccontextmanager
async def serving(bootstrap: str, tmp_path: Path, issuer: LocalIssuer) -> AsyncIterator[Served]:
    admin = AIOKafkaAdminClient(client_id="set-aside-api-test", **aiokafka_kwargs(bootstrap))
    await admin.start()
    topic = f"relaytest.setaside-{uuid.uuid4().hex[:10]}.v1"
    await admin.create_topics([NewTopic(topic, 1, 1, topic_configs={"max.message.bytes": str(LIMIT)})])

    class OnTopic(Bulky):
        TOPIC: ClassVar[str] = topic

    class Store(ServiceApplication):
        name = f"setasideapi{uuid.uuid4().hex[:8]}"

    app = Store(f"sqlite:///{tmp_path}/relay.db")
    for label, size in (("first", 10), ("big", BIG), ("third", 10)):
        app.save(Parcel("k-1", label, size))
    broker = make_broker("set-aside-api", bootstrap)
    await broker.start()
    relay = Relay(app, broker, lambda e: OnTopic(parcel_id=e.key, label=e.label, padding="x" * e.size))
    server = edge.server("intake", guards=issuer.guards())
    names = setaside.add_to_server(server, relay)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        for _ in range(100):
            if topic in await admin.list_topics():
                break
            await asyncio.sleep(0.1)
        for _ in range(5):  # the topic's leader may take a moment: an outage is retried, as the loop would
            with contextlib.suppress(Exception):
                if await relay.publish_once() and relay.backlog() == 0:
                    break
            await asyncio.sleep(1)
        assert relay.backlog() == 0 and relay.set_aside == 1 and names == [setaside.SERVICE_NAME]
        async with channels.aio_channel(f"127.0.0.1:{port}") as channel:
            yield Served(relay, topic, f"127.0.0.1:{port}", ops_pb2_grpc.SetAsideStub(channel), admin, issuer)
    finally:
        await server.stop(None)
        await broker.stop()
        with contextlib.suppress(Exception):
            await admin.delete_topics([topic])
        await admin.close()


@pytest.fixture
async def served(kafka_bootstrap: str, tmp_path: Path, local_issuer: LocalIssuer) -> AsyncIterator[Served]:
    async with serving(kafka_bootstrap, tmp_path, local_issuer) as s:
        yield s


async def code_of(call: Any) -> tuple[Code, str]:
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error.code(), error.details() or ""
    return Code.OK, ""


async def test_an_operator_lists_and_redrives_a_set_aside_event(served: Served, kafka_bootstrap: str) -> None:
    stub, ops = served.stub, served.operator()
    listed = await stub.ListSetAside(pb.ListSetAsideRequest(), metadata=ops)
    assert listed.set_aside == 1
    (item,) = listed.items
    assert (item.notification_id, item.status, item.topic, item.event_type, item.attempts) == \
        (2, "set_aside", served.topic, "Parcel.Packed", 1)
    assert item.error.startswith("MessageSizeTooLargeError") and "xxxx" not in item.error
    assert item.event_id.startswith(f"{served.relay.app.name}:") and item.first_at.endswith("+00:00")
    assert "xxxx" not in str(listed)  # nothing of the event's content in the answer

    # refused again while the topic's limit stands: it stays set aside, the attempt recorded
    request = pb.RedriveSetAsideRequest(notification_ids=[2], operator="stated name", reason="try again")
    (first,) = (await stub.RedriveSetAside(request, metadata=ops)).results
    assert (first.notification_id, first.outcome) == (2, "set_aside")
    assert first.error.startswith("MessageSizeTooLargeError")
    await served.raise_limit()
    (second,) = (await stub.RedriveSetAside(pb.RedriveSetAsideRequest(
        notification_ids=[2, 77], reason="topic limit raised"), metadata=ops)).results[:1]
    assert (second.outcome, second.error) == ("published", "")
    again = await stub.RedriveSetAside(pb.RedriveSetAsideRequest(notification_ids=[2, 77]), metadata=ops)
    assert [(r.notification_id, r.outcome) for r in again.results] == [(2, "already_published"), (77, "not_found")]

    found = await read_topic(kafka_bootstrap, served.topic, until=lambda f: len(f) >= 3, timeout=20)
    assert [r.envelope.data["label"] for r in found if r.envelope] == ["first", "third", "big"]
    assert found[2].envelope is not None and found[2].envelope.event_id == item.event_id

    # published: gone from the default list, shown with include_published, with every attempt and who asked
    assert (await stub.ListSetAside(pb.ListSetAsideRequest(), metadata=ops)) == pb.SetAsideList(set_aside=0)
    (done,) = (await stub.ListSetAside(pb.ListSetAsideRequest(include_published=True), metadata=ops)).items
    assert (done.status, done.attempts) == ("published", 3)
    # the verified caller is recorded, not the name stated in the request
    assert [(r.operator, r.reason, r.outcome) for r in done.redrives] == \
        [("ops-li-wei", "try again", "set_aside"), ("ops-li-wei", "topic limit raised", "published")]


async def test_only_operators_and_only_good_input(served: Served) -> None:
    stub = served.stub
    for role in ("county_office", "member", "service_dispatch"):
        who = served.issuer.metadata(f"x-{role}", [role])
        assert (await code_of(stub.ListSetAside(pb.ListSetAsideRequest(), metadata=who)))[0] == Code.PERMISSION_DENIED
        code, _ = await code_of(stub.RedriveSetAside(pb.RedriveSetAsideRequest(notification_ids=[2]), metadata=who))
        assert code == Code.PERMISSION_DENIED
    assert (await code_of(stub.ListSetAside(pb.ListSetAsideRequest())))[0] == Code.UNAUTHENTICATED
    ops = served.operator()
    for bad, field in ((pb.ListSetAsideRequest(limit=1001), "limit"), (pb.ListSetAsideRequest(limit=-1), "limit")):
        assert await code_of(stub.ListSetAside(bad, metadata=ops)) == (Code.INVALID_ARGUMENT, f"{field}: 1 to 1000")
    for ids in ([], list(range(1, 102)), [0], [-2]):
        code, details = await code_of(stub.RedriveSetAside(pb.RedriveSetAsideRequest(notification_ids=ids),
                                                           metadata=ops))
        assert code == Code.INVALID_ARGUMENT and details.startswith("notification_ids:"), (ids, details)
    # refused calls changed nothing: still set aside, never re-driven
    (item,) = (await stub.ListSetAside(pb.ListSetAsideRequest(limit=1), metadata=ops)).items
    assert (item.status, item.attempts, list(item.redrives)) == ("set_aside", 1, [])


async def test_a_store_outage_is_unavailable(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    def away(*_: Any, **__: Any) -> Any:
        raise ConnectionRefusedError("store unreachable")

    monkeypatch.setattr(served.relay.app.repository, "get", away)
    ops = served.operator()
    code, _ = await code_of(served.stub.ListSetAside(pb.ListSetAsideRequest(), metadata=ops))
    assert code == Code.UNAVAILABLE
    code, _ = await code_of(served.stub.RedriveSetAside(pb.RedriveSetAsideRequest(notification_ids=[2]),
                                                        metadata=ops))
    assert code == Code.UNAVAILABLE


# ---- the command line, as an operator runs it --------------------------------------------------------------
CLI_ENV = ("SANDAN_TOKEN", "SANDAN_OIDC_CLIENT_ID", "SANDAN_OIDC_CLIENT_SECRET", "SANDAN_GRPC_TLS_CA_FILE",
           "SANDAN_OPERATOR", "SANDAN_INTAKE_ADDRESS")


async def sandan(served: Served, tmp_path: Path, *args: str, role: str = "operator") -> Any:
    """`sandan --plaintext --intake <the test server> ...` with a token of `role` (a blocking client: off the loop)."""
    from sandan_cli.app import app

    token = served.issuer.token("ops-li-wei", [role], azp="sandan-cli", preferred_username="li.wei")
    env = {**dict.fromkeys(CLI_ENV), "COLUMNS": "250", "SANDAN_CACHE": str(tmp_path / "cache")}
    argv = ["--token", token, "--plaintext", "--intake", served.address, "--timeout", "20", *args]
    return await asyncio.to_thread(CliRunner().invoke, app, argv, env=env, catch_exceptions=False)


async def test_sandan_set_aside_list_and_redrive(served: Served, tmp_path: Path) -> None:
    listed = await sandan(served, tmp_path, "set-aside", "list", "-s", "intake", "--json")
    assert listed.exit_code == 0, listed.output
    body = json.loads(listed.stdout)
    assert body["set_aside"] == {"intake": 1} and body["errors"] == []
    (item,) = body["items"]
    assert (item["service"], item["notification_id"], item["status"]) == ("intake", 2, "set_aside")
    assert item["error"].startswith("MessageSizeTooLargeError")
    table = await sandan(served, tmp_path, "set-aside", "list", "-s", "intake")
    assert table.exit_code == 0 and "Parcel.Packed" in table.stdout and "intake: 1 set aside" in table.stderr

    refused = await sandan(served, tmp_path, "set-aside", "redrive", "2", "-s", "intake", "--json", role="member")
    assert refused.exit_code == 4 and "PERMISSION_DENIED" in refused.stderr

    still = await sandan(served, tmp_path, "set-aside", "redrive", "2", "-s", "intake", "--reason", "once more",
                         "--json")
    assert still.exit_code == 1  # refused again: still set aside
    assert json.loads(still.stdout)["results"][0]["outcome"] == "set_aside"
    await served.raise_limit()
    done = await sandan(served, tmp_path, "set-aside", "redrive", "2", "-s", "intake", "--reason", "limit raised",
                        "--json")
    assert done.exit_code == 0, done.output
    reply = json.loads(done.stdout)
    assert reply["operator"] == "li.wei"  # stated; the service records the verified subject
    assert reply["results"] == [{"notification_id": 2, "outcome": "published", "error": "", "published": True}]
    twice = await sandan(served, tmp_path, "set-aside", "redrive", "2", "-s", "intake")
    assert twice.exit_code == 0 and "already_published" in twice.stdout

    everything = json.loads((await sandan(served, tmp_path, "set-aside", "list", "-s", "intake", "--all",
                                          "--json")).stdout)
    assert everything["set_aside"] == {"intake": 0}
    assert [(r["operator"], r["outcome"]) for r in everything["items"][0]["redrives"]] == \
        [("ops-li-wei", "set_aside"), ("ops-li-wei", "published")]
