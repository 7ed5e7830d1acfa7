"""Re-driving dead letters against the real broker: listed per consumer group, applied once however often they
are re-driven (once the bug that dead-lettered them is fixed), every attempt recorded (who, when, which,
outcome), and one that fails again stays a dead letter.
The gRPC service runs in-process; the command line talks to it like an operator would."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiokafka import ConsumerRecord
from click.testing import CliRunner
from eventsourcing.domain import Aggregate, event

from libs.eventbus.tests.tls_support import Pki, throwaway_pki
from sandan_contracts import cloudevents, encode
from sandan_contracts.envelope import Envelope
from sandan_contracts.events import DemandWithdrawn, Event
from sandan_contracts.rpc import ops_pb2 as pb
from sandan_contracts.rpc import ops_pb2_grpc
from sandan_eventbus import deadletters, redrive
from sandan_eventbus.inbox import Inbox, Outcome
from sandan_eventbus.kafka import create_topics, make_broker
from sandan_eventbus.redrive import DeadLetterReader
from sandan_eventbus.store import ServiceApplication

pytestmark = pytest.mark.kafka
TOPIC = "intake.demands.v1"
SERVER_NAME = "intake"


class Ledger(Aggregate):
    @event("Opened")
    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: list[str] = []

    @event("Seen")
    def see(self, what: str) -> None:
        self.seen.append(what)


class RedriveApp(ServiceApplication):
    name = "redrivetest"


def record(offset: int, value: bytes, headers: tuple[tuple[str, bytes], ...] = ()) -> ConsumerRecord[Any, Any]:
    return ConsumerRecord(topic=TOPIC, partition=0, offset=offset, timestamp=0, timestamp_type=0, key=b"k",
                          value=value, checksum=None, serialized_key_size=1, serialized_value_size=len(value),
                          headers=headers)


# the settings the command reads, unset unless a test sets them
TLS_ENV = ("SANDAN_GRPC_TLS_CA_FILE", "SANDAN_GRPC_TLS_SERVER_NAME", "SANDAN_GRPC_PLAINTEXT",
           "SANDAN_GRPC_TLS_CERT_FILE", "SANDAN_GRPC_TLS_KEY_FILE", "SANDAN_TOKEN")


async def invoke(*args: str, **env: str) -> Any:
    """`python -m sandan_eventbus.deadletters` with these settings only (a blocking client: off the loop)."""
    runner = CliRunner()
    return await asyncio.to_thread(runner.invoke, deadletters.cli, list(args),
                                   env={**dict.fromkeys(TLS_ENV), **env})


class Service:
    def __init__(self, app: RedriveApp, inbox: Inbox, address: str, ledger: Ledger, pki: Pki | None) -> None:
        self.app, self.inbox, self.address, self.ledger, self.pki = app, inbox, address, ledger, pki
        self.fixed = False

    def seen(self) -> list[str]:
        return self.app.repository.get(self.ledger.id).seen

    def stub(self) -> ops_pb2_grpc.DeadLettersStub:
        if self.pki is None:
            return ops_pb2_grpc.DeadLettersStub(grpc.aio.insecure_channel(self.address))
        credentials = grpc.ssl_channel_credentials(self.pki.ca.read_bytes())
        return ops_pb2_grpc.DeadLettersStub(grpc.aio.secure_channel(
            self.address, credentials, options=[("grpc.ssl_target_name_override", SERVER_NAME)]))

    async def cli(self, *args: str, **env: str) -> Any:
        """The command as an operator runs it on a local run (plaintext allowed), unless `env` says otherwise."""
        return await invoke("--service-address", self.address, *args, **(env or {"SANDAN_GRPC_PLAINTEXT": "allow"}))


@contextlib.asynccontextmanager
async def running(kafka_bootstrap: str, tmp_path: Path, pki: Pki | None = None) -> AsyncIterator[Service]:
    await create_topics(kafka_bootstrap)
    app = RedriveApp(f"sqlite:///{tmp_path}/redrive.db")
    ledger = Ledger("l")
    app.save(ledger)
    broker = make_broker("redrive-test", kafka_bootstrap)
    await broker.start()
    svc: Service

    def handler(envelope: Envelope, _: Event) -> list[Any]:
        if not svc.fixed:
            raise KeyError("unit")  # a bug on this input, until a new release fixes it
        target = app.repository.get(ledger.id)
        target.see(envelope.event_id)
        return [target]

    inbox = Inbox(app, broker, f"redrive-{uuid.uuid4().hex[:8]}", {TOPIC: handler}, backoff_seconds=0.01,
                  max_attempts=2)
    server = grpc.aio.server()
    redrive.add_to_server(server, inbox, kafka_bootstrap)
    port = pki.server().bind(server, "127.0.0.1:0") if pki else server.add_insecure_port("127.0.0.1:0")
    await server.start()
    svc = Service(app, inbox, f"127.0.0.1:{port}", ledger, pki)
    try:
        yield svc
    finally:
        await server.stop(0)
        await broker.stop()


@pytest.fixture
async def service(kafka_bootstrap: str, tmp_path: Path) -> AsyncIterator[Service]:
    async with running(kafka_bootstrap, tmp_path) as svc:
        yield svc


@pytest.fixture
async def tls_service(kafka_bootstrap: str, tmp_path: Path) -> AsyncIterator[Service]:
    """The service over TLS, its certificate issued for its name only (as deploy/ issues them)."""
    async with running(kafka_bootstrap, tmp_path, throwaway_pki(tmp_path, SERVER_NAME)) as svc:
        yield svc


def good(n: int) -> bytes:
    return encode(DemandWithdrawn(demand_id=f"d-{n}", reason="x"), event_id=f"intake:{n}", producer="intake",
                  occurred_at=datetime.now(UTC), correlation_id="walk", causation_id=None)


async def listed(svc: Service, count: int, include_applied: bool = False) -> list[pb.DeadLetter]:
    for _ in range(300):  # up to a minute: the dead letter is read back from the broker, slow on a busy machine
        reply = await svc.stub().List(pb.ListDeadLettersRequest(include_applied=include_applied))
        if len(reply.dead_letters) >= count:
            return list(reply.dead_letters)
        await asyncio.sleep(0.2)
    raise AssertionError(f"fewer than {count} dead letters listed")


def ref(letter: pb.DeadLetter) -> str:
    return f"{letter.ref.topic}:{letter.ref.partition}:{letter.ref.offset}"


async def test_a_dead_letter_is_redriven_once_and_every_attempt_is_recorded(service: Service) -> None:
    svc = service
    # given a fact a bug could not apply and one that cannot be decoded
    payload = good(40)
    assert await svc.inbox.receive(TOPIC, record(40, payload)) is Outcome.DEAD_LETTERED
    assert await svc.inbox.receive(TOPIC, record(41, b"{not json")) is Outcome.DEAD_LETTERED
    letters = await listed(svc, 2)
    assert [(x.source_offset, x.status, x.event_type) for x in letters] == [(41, "dead", ""),
                                                                             (40, "dead", "DemandWithdrawn")]
    refused, junk = letters[1], letters[0]
    assert refused.error == "failed 2 times: KeyError: 'unit'" and refused.consumer_group == svc.inbox.group_id

    # when an operator re-drives both after the fix is deployed
    svc.fixed = True
    result = await svc.cli("redrive", ref(refused), ref(junk), "--operator", "county IT: Li", "--reason", "fixed")
    assert result.exit_code == 1, result.output  # not every one applied
    assert f"{ref(refused)}  applied" in result.output and f"{ref(junk)}  undecodable" in result.output
    # and once more (a retry, or a second operator)
    again = await svc.stub().Redrive(pb.RedriveRequest(dead_letters=[refused.ref], operator="county IT: Wang"))
    assert [r.outcome for r in again.results] == ["already_applied"]

    # then the fact was applied once, its position recorded though it was, and the attempts are on record
    assert svc.seen() == ["intake:40"]
    shown = await svc.stub().Get(refused.ref)
    assert shown.status == "applied" and shown.payload == payload
    assert [(a.operator, a.outcome, a.reason) for a in shown.attempts] == [
        ("county IT: Li", "applied", "fixed"), ("county IT: Wang", "already_applied", "")]
    assert all(a.at and a.dead_letter == refused.ref for a in shown.attempts)
    # the undecodable one is still a dead letter, with its failed attempt recorded
    remaining = await listed(svc, 1)
    assert [(x.source_offset, x.status, [a.outcome for a in x.attempts]) for x in remaining] == [
        (41, "dead", ["undecodable"])]
    assert len(await listed(svc, 2, include_applied=True)) == 2
    shown_cli = await svc.cli("show", ref(junk))
    assert shown_cli.exit_code == 0 and '"undecodable"' in shown_cli.output and "{not json" in shown_cli.output


async def test_a_redrive_that_fails_again_leaves_the_dead_letter_and_changes_nothing(service: Service) -> None:
    svc = service
    assert await svc.inbox.receive(TOPIC, record(50, good(50))) is Outcome.DEAD_LETTERED
    (letter,) = await listed(svc, 1)
    reply = await svc.stub().Redrive(pb.RedriveRequest(dead_letters=[letter.ref], operator="ops"))
    assert [(r.outcome, r.detail) for r in reply.results] == [("failed", "KeyError: 'unit'")]
    assert svc.seen() == []
    (still,) = await listed(svc, 1)
    assert still.status == "dead" and [a.outcome for a in still.attempts] == ["failed"]
    # it can be re-driven later, when it applies
    svc.fixed = True
    reply = await svc.stub().Redrive(pb.RedriveRequest(dead_letters=[letter.ref], operator="ops"))
    assert [r.outcome for r in reply.results] == ["applied"] and svc.seen() == ["intake:50"]


async def test_a_redrive_needs_an_operator_and_only_touches_its_own_group(service: Service,
                                                                          kafka_bootstrap: str) -> None:
    svc = service
    other = Inbox(svc.app, svc.inbox.broker, f"other-{uuid.uuid4().hex[:8]}", {TOPIC: lambda e, f: []})
    assert await other.receive(TOPIC, record(60, b"junk")) is Outcome.DEAD_LETTERED
    assert await svc.inbox.receive(TOPIC, record(61, b"junk")) is Outcome.DEAD_LETTERED
    (mine,) = await listed(svc, 1)
    stub = svc.stub()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.Redrive(pb.RedriveRequest(dead_letters=[mine.ref], operator=" \x00 "))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # the other group's letter sits just before ours on the same dead-letter topic
    theirs = pb.DeadLetterRef(topic=mine.ref.topic, partition=mine.ref.partition, offset=mine.ref.offset - 1)
    reply = await stub.Redrive(pb.RedriveRequest(dead_letters=[theirs], operator="ops"))
    assert reply.results[0].outcome == "other_consumer"
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stub.Get(theirs)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_dead_letter_carries_the_cloudevents_headers_of_the_record_it_was(service: Service,
                                                                                 kafka_bootstrap: str) -> None:
    svc = service
    # given a fact as the relay publishes it (CloudEvents headers beside its own) that a bug cannot apply,
    # and bytes that were never a message (no headers at all)
    payload = good(70)
    sent = (*cloudevents.headers(payload), ("type", b"DemandWithdrawn"), ("ce_note", b"\xff\xfe"))
    assert await svc.inbox.receive(TOPIC, record(70, payload, sent)) is Outcome.DEAD_LETTERED
    assert await svc.inbox.receive(TOPIC, record(71, b"\x00\x81 random")) is Outcome.DEAD_LETTERED
    junk, refused = await listed(svc, 2)
    # when the dead letters are read back from the broker
    reader = DeadLetterReader(kafka_bootstrap, "redrive-test-reader")
    kept = await reader.get(refused.ref.topic, refused.ref.partition, refused.ref.offset)
    bare = await reader.get(junk.ref.topic, junk.ref.partition, junk.ref.offset)
    assert kept is not None and bare is not None
    # then the fact's dead letter is still the CloudEvent it was (its text ce_* headers, as sent), beside why
    ce = {k: v for k, v in kept.headers.items() if k.startswith("ce_")}
    assert ce == {k: v.decode() for k, v in cloudevents.headers(payload) if k.startswith("ce_")}
    assert ce["ce_id"] == "intake:70" and ce["ce_type"] == "cn.sandan.intake.demands.DemandWithdrawn.v1"
    assert kept.headers["dlq.source.offset"] == "70" and kept.headers["dlq.consumer.group"] == svc.inbox.group_id
    # and the bytes that never were one carry none
    assert not [k for k in bare.headers if k.startswith("ce_")] and bare.headers["dlq.source.offset"] == "71"


async def test_the_command_lists_dead_letters_over_tls(tls_service: Service) -> None:
    svc = tls_service
    assert await svc.inbox.receive(TOPIC, record(80, b"{not json")) is Outcome.DEAD_LETTERED
    (letter,) = await listed(svc, 1)
    over_tls = {"SANDAN_GRPC_TLS_CA_FILE": str(svc.pki.ca), "SANDAN_GRPC_TLS_SERVER_NAME": SERVER_NAME}
    for _ in range(60):  # the service's scan of the dead-letter topic sometimes comes back short: as `listed`
        result = await svc.cli("list", **over_tls)
        assert result.exit_code == 0, result.output
        if "0 dead letter(s)" not in result.output:
            break
    assert f"{ref(letter)}  dead" in result.output and "1 dead letter(s)" in result.output
    shown = await svc.cli("show", ref(letter), **over_tls)
    assert shown.exit_code == 0 and "{not json" in shown.output
    # its certificate is checked: signed by another CA, or for another name, it is not the service
    for env in ({**over_tls, "SANDAN_GRPC_TLS_CA_FILE": str(svc.pki.stranger_ca)},
                {**over_tls, "SANDAN_GRPC_TLS_SERVER_NAME": "dispatch"}):
        refused = await svc.cli("--timeout", "10", "list", **env)
        assert refused.exit_code == 1 and "List: UNAVAILABLE" in refused.output, env
    # and plaintext (where allowed) does not reach a TLS service
    plain = await svc.cli("--timeout", "10", "list", SANDAN_GRPC_PLAINTEXT="allow")
    assert plain.exit_code == 1 and "List: UNAVAILABLE" in plain.output


class Seen(grpc.aio.ServerInterceptor):
    """Records the calls that reach a server (there is no service behind it)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, str]]] = []

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        self.calls.append((details.method, dict(details.invocation_metadata or ())))
        return await continuation(details)


async def test_the_command_sends_nothing_in_plaintext_unless_allowed() -> None:
    seen = Seen()
    server = grpc.aio.server(interceptors=[seen])
    address = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    await server.start()
    try:
        # given no CA and no permission for plaintext, with a token to send
        result = await invoke("--service-address", address, "list", SANDAN_TOKEN="secret-token")
        # then it refuses in one line naming what to set, and nothing left the machine
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit)  # a message, not a crash
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and "SANDAN_GRPC_TLS_CA_FILE" in lines[0] and "SANDAN_GRPC_PLAINTEXT=allow" in lines[0]
        assert "Traceback" not in result.output and seen.calls == []
        # while with plaintext allowed (a local run) the call, and its token, do go out
        allowed = await invoke("--service-address", address, "list", SANDAN_TOKEN="secret-token",
                               SANDAN_GRPC_PLAINTEXT="allow")
        assert allowed.exit_code == 1 and "List: UNIMPLEMENTED" in allowed.output
        assert seen.calls and seen.calls[0][0] == "/sandan.ops.v1.DeadLetters/List"
        assert seen.calls[0][1]["authorization"] == "Bearer secret-token"
    finally:
        await server.stop(0)
