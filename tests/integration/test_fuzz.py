"""Hostile requests against every gRPC method of the four services, running as processes on the real broker.

Each method gets hypothesis-generated requests built from its own request type: ids of the right kind (the seeded
community's, in every lifecycle state, so calls arrive in and out of order), ids of the wrong kind, empty, huge,
control and bidi override characters, invalid UTF-8 sent as raw bytes, negative, huge and non-finite numbers,
long lists, and hostile metadata. Then:

Each request carries the token of a person (or service) whose role may call the method, from the real Keycloak,
so it reaches the service's own code; some carry hostile metadata instead (no token, junk, a wrong role). Then:

- only documented codes come back (OK, INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION, ALREADY_EXISTS,
  PERMISSION_DENIED, UNAUTHENTICATED): never UNKNOWN, INTERNAL, RESOURCE_EXHAUSTED, ...;
- a refused call changed nothing: no stored event carries its correlation id, the personal-data tables are as they
  were, no topic carries its correlation id, and a witness community nobody named reads the same at the end;
- every service still answers its health check SERVING, and none of their logs holds a traceback.

Cost: about `SANDAN_FUZZ_EXAMPLES` (default 25) requests per method, derandomized, so CI runs the same requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiokafka import TopicPartition
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandan_contracts import TOPICS
from sandan_contracts.access import ACCESS
from sandan_contracts.rpc import dispatch_pb2 as dpb
from sandan_contracts.rpc import intake_pb2 as ipb
from sandan_contracts.rpc import notify_pb2 as npb
from sandan_contracts.rpc import ops_pb2
from sandan_contracts.rpc import scoring_pb2 as spb
from sandan_eventbus.devtools import ServiceProcess
from sandan_eventbus.edge import MAX_REQUEST_BYTES, apply_policy
from sandan_eventbus.errors import InvalidArgument
from tests.integration.conftest import Stack, free_port
from tests.integration.notify_stack import groups_at_end
from tests.integration.people import Identity, channel_as
from tests.integration.scenario import Community, a_community, demand_reaches, order_for, post
from tests.integration.traces import correlations_since, ends, stored_with

pytestmark = pytest.mark.kafka

EXAMPLES = int(os.environ.get("SANDAN_FUZZ_EXAMPLES", "25"))
Code = grpc.StatusCode
DOCUMENTED = {Code.OK, Code.INVALID_ARGUMENT, Code.NOT_FOUND, Code.FAILED_PRECONDITION, Code.ALREADY_EXISTS,
              Code.PERMISSION_DENIED, Code.UNAUTHENTICATED}
SERVICES = {"intake": ipb.DESCRIPTOR.services_by_name["Intake"],
            "dispatch": dpb.DESCRIPTOR.services_by_name["Dispatch"],
            "scoring": spb.DESCRIPTOR.services_by_name["Scoring"],
            "notify": npb.DESCRIPTOR.services_by_name["Notify"],
            # every service serves the operators' dead letters; dispatch's are fuzzed (its store records re-drives)
            "deadletters": ops_pb2.DESCRIPTOR.services_by_name["DeadLetters"],
            # and its relay's set-aside events (every service with a relay); dispatch's are fuzzed, as dead letters
            "setaside": ops_pb2.DESCRIPTOR.services_by_name["SetAside"]}
FEW = {"Rebuild": 4}  # replays the whole log: a few are enough

HOSTILE_TEXT = [
    "", " ", "\t", "\n", "\r\n", "\x00", "a\x00b", "\x1b[31mred", "\x7f", "\x85", "\u202eexe.txt", "x\u2066y\u2069",
    "\ufeff", "e\u0301", "界" * 120, "x" * 65, "x" * 501, "y" * 70_000, "-1", "0", "null", "NaN", "../../etc/passwd",
    "' OR 1=1 --", "%s%n%x", "{{7*7}}", "<script>", "😀" * 30, "2026Q5", "1999Q0", "25:99", "2026-13-45T99:99:99Z",
    "http://user:pw@host/", "javascript:alert(1)", "a@b", "+" * 31, "00000000-0000-0000-0000-000000000000",
]
BAD_UTF8 = [b"\xff", b"\xc3\x28", b"ok\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"caf\xe9"]
INT32 = [0, 1, -1, 2, 5, 6, 24, 72, 1000, 1001, 2**31 - 1, -(2**31)]
INT64 = [0, 1, -1, 3600, 90 * 24 * 3600, 90 * 24 * 3600 + 1, 2**63 - 1, -(2**63)]
DOUBLES = [0.0, -0.0, 1.5, 3.0, 24.0, 24.0001, 72.0, 72.5, -1.0, 1e-300, 1e308, math.inf, -math.inf, math.nan]


# ---- the processes ----------------------------------------------------------------------------------------
@dataclass
class Target:
    name: str
    process: ServiceProcess
    stores: list[Path]  # event stores (stored_events tables)
    tables: list[tuple[Path, str]]  # other tables that must not change on a refusal
    channel: grpc.Channel = field(init=False)
    log_start: int = field(init=False)

    def __post_init__(self) -> None:
        self.channel = grpc.insecure_channel(self.process.grpc_address)  # no retry policy: see every code
        self.log_start = self.process.log_path.stat().st_size if self.process.log_path.exists() else 0


@dataclass
class Fuzz:
    targets: dict[str, Target]
    pools: dict[str, list[str]]
    ids: list[str]
    witness: Callable[[], dict[str, Any]]
    witnessed: dict[str, Any]
    offsets: dict[TopicPartition, int]
    bootstrap: str
    refused: set[str] = field(default_factory=set)
    codes: dict[str, set[str]] = field(default_factory=dict)
    stored: int = 0  # accepted calls whose events the store check found: proof that it can see them
    callers: dict[str, Identity] = field(default_factory=dict)  # by name: who may call (drawn per method)


@pytest.fixture(scope="module")
def scoring_process(stack: Stack) -> Iterator[ServiceProcess]:
    address = f"127.0.0.1:{free_port()}"
    process = ServiceProcess("sandan_scoring", {
        "KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap, "LOG_LEVEL": "INFO",
        "SCORING_DATABASE_URL": f"sqlite:///{stack.workdir}/fuzz-scoring.db", "SCORING_GRPC_ADDRESS": address,
        **stack.identity(),
    }, address, stack.workdir / "fuzz-scoring.log")
    process.start(timeout=180)
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def notify_process(stack: Stack) -> Iterator[ServiceProcess]:
    """notify reading from now on (its group starts at the topics' ends), its contacts from the stack's services."""
    run = uuid.uuid4().hex[:8]
    group = f"notify-fuzz-{run}"
    asyncio.run(groups_at_end(stack.bootstrap, {group: [t.name for t in TOPICS.values() if t.dead_letter
                                                        and not t.name.startswith("notify.")]}))
    address = f"127.0.0.1:{free_port()}"
    process = ServiceProcess("sandan_notify", {
        "KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap, "LOG_LEVEL": "INFO",
        "NOTIFY_EVENTSTORE_URL": f"sqlite:///{stack.workdir}/fuzz-notify-events.db",
        "NOTIFY_DATABASE_URL": f"sqlite:///{stack.workdir}/fuzz-notify.db", "NOTIFY_GRPC_ADDRESS": address,
        "NOTIFY_CONSUMER_GROUP": group, "NOTIFY_INTAKE_ADDRESS": stack.intake.grpc_address,
        "NOTIFY_DISPATCH_ADDRESS": stack.dispatch.grpc_address,
        "NOTIFY_CONSOLE": str(stack.workdir / "fuzz-notifications.jsonl"), **stack.identity(calls_others=True),
    }, address, stack.workdir / "fuzz-notify.log")
    process.start()
    try:
        yield process
    finally:
        process.stop()


# ---- the seeded world: one community in every lifecycle state, and a witness nobody names ------------------
async def _seed(stack: Stack) -> tuple[dict[str, list[str]], Community, Community]:
    c = await a_community(stack, members=3)
    witness = await a_community(stack, members=1)
    branch, member = stack.dispatch_stub(c.secretary), stack.dispatch_stub(c.member(0))
    demands = [await post(stack, c) for _ in range(5)]
    # a fresh stack's dispatch first reads the broker's whole history: wait for it to reach today
    orders = [await order_for(stack, c, demands[0].demand_id, timeout=600)]
    orders += [await order_for(stack, c, d.demand_id) for d in demands[1:]]
    # orders[0] open; [1] offered; [2] accepted; [3] completed and served; [4] withdrawn (cancelled)
    await branch.OfferOrder(dpb.OfferOrderRequest(order_id=orders[1].order_id))
    for o in orders[2:4]:
        await branch.DispatchOrder(dpb.DispatchOrderRequest(order_id=o.order_id, member_id=c.members[0]))
        await member.AcceptOrder(dpb.AcceptOrderRequest(order_id=o.order_id, member_id=c.members[0]))
    await member.CompleteService(dpb.CompleteServiceRequest(order_id=orders[3].order_id, member_id=c.members[0],
                                                            hours=1.5))
    with contextlib.suppress(AssertionError):  # richer state if intake has caught up with the log's history
        await demand_reaches(stack, c, demands[3].demand_id, "served", timeout=60)
    await stack.intake_stub(c.resident).WithdrawDemand(ipb.WithdrawDemandRequest(demand_id=demands[4].demand_id,
                                                                                 reason="solved_myself"))
    await branch.FormGridGroup(dpb.FormGridGroupRequest(community_id=c.community_id, grid_id=c.grid_id))
    await stack.dispatch_stub(c.unit_admin).ScheduleActivity(dpb.ScheduleActivityRequest(
        activity_id=f"act-{c.community_id}", unit_id=c.unit_id, community_id=c.community_id,
        theme="free_health_check", title="义诊", starts_at="2026-03-14T09:00:00+08:00",
        ends_at="2026-03-14T12:00:00+08:00", capacity=3))
    menu = stack.intake_stub(c.secretary)
    await menu.PublishMenuItem(ipb.PublishMenuItemRequest(community_id=c.community_id, item_id=f"old-{c.item_id}",
                                                          category="repair", title="retired item"))
    await menu.RetireMenuItem(ipb.RetireMenuItemRequest(community_id=c.community_id, item_id=f"old-{c.item_id}"))
    quarter = datetime.now(UTC)
    pools = {
        "community_id": [c.community_id], "grid_id": [c.grid_id], "unit_id": [c.unit_id], "scope_id":
        [c.community_id, c.unit_id], "member_id": c.members, "resident_id": [c.resident_id],
        "item_id": [c.item_id, f"old-{c.item_id}"], "menu_item_id": [c.item_id, f"old-{c.item_id}"],
        "demand_id": [d.demand_id for d in demands], "before": [d.demand_id for d in demands],
        "order_id": [o.order_id for o in orders],
        "activity_id": [f"act-{c.community_id}"], "recipient_id": [*c.members, c.resident_id, c.unit_id],
        "recipient_kind": ["member", "resident", "unit", "branch"], "client_request_id": ["fuzz-1", "fuzz-2"],
        "category": ["medical", "other", "repair"], "team": ["medical", "legal_aid"], "teams": ["medical"],
        "skills": ["nurse"], "theme": ["free_health_check"], "reason": ["no_capacity", "solved_myself"],
        "urgency": ["urgent", "normal", "routine"], "channel": ["app", "hotline", "sms", "email"],
        "channels": ["sms", "email", "webhook", "console", "wechat"], "care_tags": ["elderly_alone", "disabled"],
        "dispatched_by": ["branch", "grid_leader"], "status": ["open", "accepted", "sent", "failed"],
        "language": ["zh", "en"], "quarter": [f"{quarter.year}Q{(quarter.month - 1) // 3 + 1}", "2026Q1"],
        "rule_set_version": ["", "2026.1", "2026.2", "1999.9"], "starts_at": ["2026-03-14T09:00:00+08:00"],
        "ends_at": ["2026-03-14T12:00:00+08:00", "2026-03-14T08:00:00+08:00"], "quiet_start": ["22:00"],
        "quiet_end": ["07:00"], "source_event_id": ["intake:1"], "name": ["王秀英"], "unit_name": ["泰和县人民医院"],
        "title": ["送医送药"], "other_text": ["errand"], "description": ["家中老人需要每周送降压药上门\n谢谢"],
        "address": ["澄江镇 3 栋"], "phone": ["13800001234"], "email": ["a@example.org"],
        "contact_email": ["unit@example.org"], "wechat_openid": ["oWx_123456"],
        "webhook_url": ["https://example.org/hook"], "comment": ["谢谢"], "notes": ["送药上门"], "note": ["urgent"],
        "joint_meeting_units": [c.unit_id], "member_ids": c.members, "unit_ids": [c.unit_id], "public_name": ["王**"],
    }
    # the same field name takes other words in another service
    pools |= {"notify.status": ["scheduled", "sent", "failed"], "notify.channel": ["sms", "email", "console"],
              "dispatch.status": ["open", "accepted", ""], "intake.channel": ["app", "hotline"]}
    return pools, c, witness


def _witness_reads(stack: Stack, w: Community) -> Callable[[], dict[str, Any]]:
    """What the witness community looks like through the get-methods (its ids are in no pool), read by its
    branch secretary."""

    def read() -> dict[str, Any]:
        with channel_as(stack.intake.grpc_address, w.secretary) as i, \
                channel_as(stack.dispatch.grpc_address, w.secretary) as d:
            def get(ch: grpc.Channel, path: str, request: Message, reply: type[Message]) -> Any:
                return reply.FromString(ch.unary_unary(path)(request.SerializeToString(), timeout=30))

            return {
                "menu": get(i, "/sandan.intake.v1.Intake/ListMenu", ipb.ListMenuRequest(community_id=w.community_id),
                            ipb.Menu),
                "member": get(d, "/sandan.dispatch.v1.Dispatch/GetMember", dpb.MemberRef(member_id=w.members[0]),
                              dpb.Member),
                "orders": get(d, "/sandan.dispatch.v1.Dispatch/ListOrders",
                              dpb.ListOrdersRequest(community_id=w.community_id), dpb.Orders),
            }

    return read


def _callers(stack: Stack, c: Community) -> dict[str, Identity]:
    """One person (or client) per role, all placed in the seeded community where a place applies."""
    people = stack.people
    return {"resident": c.resident, "grid_worker": c.grid_worker, "member": c.member(0), "member-1": c.member(1),
            "grid_leader": c.grid_leader, "branch_secretary": c.secretary, "town_office": people.town_office(),
            "county_office": people.county_office(), "unit_admin": c.unit_admin, "operator": people.operator(),
            "partner": people.client("sandan-partner"), "service_notify": people.client("sandan-notify"),
            "service_gateway": people.client("sandan-gateway"), "service_scoring": people.client("sandan-scoring")}


@pytest.fixture(scope="module")
def fuzz(stack: Stack) -> Fuzz:
    pools, c, witness = asyncio.run(_seed(stack))
    witness_reads = _witness_reads(stack, witness)
    ids = sorted({v for k, vs in pools.items() if k.endswith("_id") for v in vs})
    return Fuzz({}, pools, ids, witness_reads, witness_reads(), asyncio.run(ends(stack.bootstrap)), stack.bootstrap,
                callers=_callers(stack, c))


@pytest.fixture
def target(fuzz: Fuzz, stack: Stack, service: str, request: pytest.FixtureRequest) -> Target:
    """The service under test, started on first use (scoring and notify only for their own methods)."""
    if service not in fuzz.targets:
        work = stack.workdir
        if service == "intake":
            fuzz.targets[service] = Target("intake", stack.intake, [work / "intake-events.db"],
                                           [(work / "intake.db", "intake_residents")])
        elif service in ("dispatch", "deadletters", "setaside"):
            fuzz.targets[service] = Target("dispatch", stack.dispatch, [work / "dispatch-events.db"],
                                           [(work / "dispatch.db", "dispatch_member_contacts"),
                                            (work / "dispatch.db", "dispatch_unit_contacts"),
                                            (work / "dispatch.db", "dispatch_public_names")])
        elif service == "scoring":
            fuzz.targets[service] = Target("scoring", request.getfixturevalue("scoring_process"), [],
                                           [(work / "fuzz-scoring.db", "scoring_notices"),
                                            (work / "fuzz-scoring.db", "scoring_meta")])
        else:
            fuzz.targets[service] = Target("notify", request.getfixturevalue("notify_process"),
                                           [work / "fuzz-notify-events.db"],
                                           [(work / "fuzz-notify.db", "notify_preferences")])
    return fuzz.targets[service]


# ---- requests from a request type -------------------------------------------------------------------------
def _hostile(f: FieldDescriptor, fuzz: Fuzz, depth: int) -> st.SearchStrategy[Any]:
    """A value meant to be refused: of the wrong kind, malformed, out of range."""
    if f.type == FieldDescriptor.TYPE_STRING:
        one: st.SearchStrategy[Any] = st.one_of(
            st.sampled_from(fuzz.ids),  # an id of another kind (a member's for a resident's, an order's for a demand's)
            st.sampled_from(HOSTILE_TEXT), st.text(max_size=30))
    elif f.type in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32):
        one = st.one_of(st.sampled_from(INT32), st.integers(-(2**31), 2**31 - 1))
    elif f.type in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64):
        one = st.one_of(st.sampled_from(INT64), st.integers(-(2**63), 2**63 - 1))
    elif f.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        one = st.one_of(st.sampled_from(DOUBLES), st.floats(allow_nan=True, allow_infinity=True, width=32))
    elif f.type == FieldDescriptor.TYPE_BOOL:
        one = st.booleans()
    elif f.type == FieldDescriptor.TYPE_MESSAGE and depth < 3:
        one = _message(f.message_type, fuzz, depth + 1, mutations=3)
    else:
        raise AssertionError(f"no strategy for {f.full_name} (type {f.type})")
    if not f.is_repeated:
        return one
    return st.one_of(st.lists(one, min_size=1, max_size=4), one.flatmap(lambda v: st.just([v] * 60)))


SENSIBLE_NUMBERS = {"stars": [1, 4, 5], "capacity": [1, 3], "limit": [0, 5, 100], "hours": [1.0, 1.5, 3.0],
                    "urgent": [3600], "normal": [86400], "routine": [0, 604800]}


def _right(f: FieldDescriptor, fuzz: Fuzz, depth: int) -> st.SearchStrategy[Any]:
    """A value of the right kind (from the seeded community, in whatever state it is): the call may succeed."""
    if f.type == FieldDescriptor.TYPE_MESSAGE:
        one: st.SearchStrategy[Any] = _message(f.message_type, fuzz, depth + 1, mutations=0) if depth < 3 \
            else st.nothing()
    elif f.type == FieldDescriptor.TYPE_STRING:
        service = f.containing_type.file.package.split(".")[1]  # sandan.<service>.v1
        words = fuzz.pools.get(f"{service}.{f.name}") or fuzz.pools.get(f.name)
        one = st.sampled_from(words) if words else st.just("")
    elif f.type == FieldDescriptor.TYPE_BOOL:
        one = st.booleans()
    else:
        one = st.sampled_from(SENSIBLE_NUMBERS.get(f.name, [1]))
    return st.lists(one, max_size=2, unique_by=repr) if f.is_repeated else one


def _message(descriptor: Descriptor, fuzz: Fuzz, depth: int = 0, mutations: int = 2) -> st.SearchStrategy[Message]:
    """Mostly a well-formed request, with up to `mutations` fields hostile and maybe one left out."""
    cls = message_factory.GetMessageClass(descriptor)
    names = [f.name for f in descriptor.fields]

    def build(values: dict[str, Any]) -> Message:
        message = cls()
        for name, value in values.items():
            f = descriptor.fields_by_name[name]
            if f.type == FieldDescriptor.TYPE_MESSAGE:
                if f.is_repeated:
                    for item in value:
                        getattr(message, name).add().CopyFrom(item)
                else:
                    getattr(message, name).CopyFrom(value)
            elif f.is_repeated:
                getattr(message, name).extend(value)
            else:
                setattr(message, name, value)
        return message

    @st.composite
    def draw(data: st.DrawFn) -> Message:
        if not names:
            return cls()
        hostile = data(st.sets(st.sampled_from(names), max_size=mutations)) if mutations else set()
        left_out = data(st.sets(st.sampled_from(names), max_size=1))
        values = {}
        for f in descriptor.fields:
            if f.name in left_out and f.name not in hostile:
                continue
            strategy = _hostile(f, fuzz, depth) if f.name in hostile else _right(f, fuzz, depth)
            values[f.name] = data(strategy)
        return build(values)

    return draw()


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _request(method: MethodDescriptor, fuzz: Fuzz) -> st.SearchStrategy[tuple[bytes, bool]]:
    """The serialized request, and whether invalid UTF-8 was put in one of its string fields."""
    strings = [f.number for f in method.input_type.fields if f.type == FieldDescriptor.TYPE_STRING]
    corrupt = st.one_of(st.none(), st.tuples(st.sampled_from(strings), st.sampled_from(BAD_UTF8))) if strings \
        else st.none()

    def serialize(pair: tuple[Message, tuple[int, bytes] | None]) -> tuple[bytes, bool]:
        message, bad = pair
        raw = message.SerializeToString()
        if bad is None:
            return raw, False
        number, payload = bad  # the last occurrence of a singular field wins: the bad bytes reach the decoder
        return raw + _varint(number << 3 | 2) + _varint(len(payload)) + payload, True

    return st.tuples(_message(method.input_type, fuzz), corrupt).map(serialize)


# Who calls: mostly someone the method's row allows (its scope may still refuse them), else hostile metadata.
ALLOWED, WRONG_ROLE = "allowed", "wrong role"
HOSTILE_METADATA: dict[str, tuple[tuple[str, str], ...]] = {
    "no token": (), "junk": (("authorization", "Bearer junk"),), "basic": (("authorization", "Basic x"),),
    "oversized token": (("authorization", "Bearer " + "t" * 3000),)}


def _metadata(method: MethodDescriptor, fuzz: Fuzz) -> st.SearchStrategy[tuple[str, str, bool]]:
    """(who, how, an oversized extra header): who is a key of fuzz.callers, how is ALLOWED, WRONG_ROLE or one of
    HOSTILE_METADATA."""
    row = ACCESS.roles_for(f"/{method.containing_service.full_name}/{method.name}")
    allowed = sorted(k for k, who in fuzz.callers.items() if set(who.roles) & set(row))
    others = sorted(k for k, who in fuzz.callers.items() if not set(who.roles) & set(row))
    assert allowed, f"no caller for {method.name}"
    return st.one_of(
        st.tuples(st.sampled_from(allowed), st.just(ALLOWED), st.booleans()),
        st.tuples(st.sampled_from(allowed), st.just(ALLOWED), st.just(False)),
        st.tuples(st.sampled_from(others or allowed), st.just(WRONG_ROLE), st.just(False)),
        st.tuples(st.just(""), st.sampled_from(sorted(HOSTILE_METADATA)), st.just(False)))


def _headers(fuzz: Fuzz, who: str, how: str, extra: bool) -> tuple[tuple[str, str], ...]:
    found = HOSTILE_METADATA[how] if how in HOSTILE_METADATA else \
        (("authorization", f"Bearer {fuzz.callers[who].token()}"),)
    return found + ((("x-correlation-id-extra", "z" * 4000),) if extra else ())


# ---- what must hold ------------------------------------------------------------------------------------------
def _call(target: Target, method: MethodDescriptor, raw: bytes, metadata: tuple[tuple[str, str], ...],
          ) -> tuple[Code, str]:
    path = f"/{method.containing_service.full_name}/{method.name}"
    try:
        if method.server_streaming:
            for _ in target.channel.unary_stream(path)(raw, metadata=metadata, timeout=120):
                pass
        else:
            target.channel.unary_unary(path)(raw, metadata=metadata, timeout=60)
    except grpc.RpcError as error:
        return error.code(), error.details() or ""  # type: ignore[attr-defined]
    return Code.OK, ""


def _table(path: Path, table: str) -> str:
    if not path.exists():
        return ""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as db:
        if not db.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (table,)).fetchone():
            return ""
        rows = db.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def _breaks_policy(method: MethodDescriptor, raw: bytes) -> bool:
    """Whether a string of the request has a control or bidi override character, or is over its maximum."""
    try:
        apply_policy(message_factory.GetMessageClass(method.input_type).FromString(raw))
    except InvalidArgument:
        return True
    return False


METHODS = [(service, m) for service, d in SERVICES.items() for m in d.methods]


@pytest.mark.parametrize(("service", "method"), METHODS, ids=[f"{s}.{m.name}" for s, m in METHODS])
def test_hostile_requests_get_documented_codes_and_change_nothing(fuzz: Fuzz, target: Target, service: str,
                                                                  method: MethodDescriptor) -> None:
    seen = fuzz.codes.setdefault(f"{service}.{method.name}", set())

    @settings(max_examples=FEW.get(method.name, EXAMPLES), deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(request=_request(method, fuzz), caller=_metadata(method, fuzz))
    def hostile(request: tuple[bytes, bool], caller: tuple[str, str, bool]) -> None:
        raw, invalid_utf8 = request
        correlation_id = f"fuzz-{uuid.uuid4().hex}"
        before = [_table(path, table) for path, table in target.tables]
        code, details = _call(target, method, raw, (("x-correlation-id", correlation_id), *_headers(fuzz, *caller)))
        seen.add(code.name)
        if len(raw) > MAX_REQUEST_BYTES:  # gRPC's own size limit, documented, before any of our code
            assert (code, "larger than max" in details) == (Code.RESOURCE_EXHAUSTED, True), details
        else:
            assert code in DOCUMENTED, f"{service}.{method.name} answered {code.name}: {details[:300]}"
        assert len(details) <= 1000, "a refusal repeats its input"
        if caller[1] in HOSTILE_METADATA:
            assert code in (Code.UNAUTHENTICATED, Code.RESOURCE_EXHAUSTED), (caller[1], code, details)
        if caller[1] == WRONG_ROLE and len(raw) <= MAX_REQUEST_BYTES:
            assert (code, details.startswith(f"{method.name} is not allowed")) == (Code.PERMISSION_DENIED, True)
        if code != Code.RESOURCE_EXHAUSTED and (invalid_utf8 or _breaks_policy(method, raw)):
            assert code in (Code.INVALID_ARGUMENT, Code.UNAUTHENTICATED, Code.PERMISSION_DENIED), code
        if code == Code.OK:
            fuzz.stored += any(stored_with(store, correlation_id) for store in target.stores)
        else:
            fuzz.refused.add(correlation_id)
            for store in target.stores:
                assert stored_with(store, correlation_id) == 0, f"a refused call stored events in {store.name}"
            assert [_table(path, table) for path, table in target.tables] == before, "a refused call wrote rows"

    hostile()
    health = health_pb2_grpc.HealthStub(target.channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_after_the_fuzz_nothing_refused_was_published_and_every_service_is_well(fuzz: Fuzz) -> None:
    assert fuzz.codes, "the fuzz ran no method"
    print("\n".join(f"{m}: {', '.join(sorted(c))}" for m, c in sorted(fuzz.codes.items())))
    writers = {"intake", "dispatch"} & set(fuzz.targets)  # their accepted writes store and publish events
    assert fuzz.stored > 0 or not writers, "no accepted call's events were found in a store: the check sees nothing"
    deadline = time.monotonic() + 60
    while True:  # until the relays have published what the accepted calls stored
        published = asyncio.run(correlations_since(fuzz.bootstrap, fuzz.offsets))
        if any(c.startswith("fuzz-") and c not in fuzz.refused for c in published) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert any(c.startswith("fuzz-") for c in published) or not writers, "no accepted call reached a topic"
    assert published & fuzz.refused == set()
    assert fuzz.witness() == fuzz.witnessed
    for target in fuzz.targets.values():
        assert target.process.proc is not None and target.process.proc.poll() is None, f"{target.name} exited"
        health = health_pb2_grpc.HealthStub(target.channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        with target.process.log_path.open("rb") as log:
            log.seek(target.log_start)
            written = log.read().decode(errors="replace")
        assert "Traceback" not in written, f"{target.name}'s log holds a traceback:\n" + written[
            written.index("Traceback") - 500: written.index("Traceback") + 3000]
