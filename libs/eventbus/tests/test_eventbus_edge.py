"""The gRPC edge on an in-process server: the input policy before any servicer runs, undecodable requests,
the in-flight limit with its retry hint, the shipped clients' retry policy, and guards of every cardinality."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sandan_contracts.rpc import dispatch_pb2, intake_pb2, intake_pb2_grpc, notify_pb2, notify_pb2_grpc
from sandan_eventbus import channels, edge, rpc
from sandan_eventbus.config import ConfigError
from sandan_eventbus.edge import Call, CallGuard, InFlightLimit
from sandan_eventbus.errors import NotFound

Code = grpc.StatusCode


class Intake(intake_pb2_grpc.IntakeServicer):
    """Records what reaches it; GetDemand waits for `gate` (to hold calls in flight)."""

    def __init__(self) -> None:
        self.seen: list[Any] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def PostDemand(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        self.seen.append(request)
        return intake_pb2.Demand(demand_id="d-1", resident_id=request.resident_id)

    async def GetDemand(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        self.seen.append(request)
        await self.gate.wait()
        return intake_pb2.Demand(demand_id=request.demand_id)

    async def RetireMenuItem(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        def refuse() -> None:
            raise NotFound(f"menu item {request.item_id} not found in community {request.community_id}")

        return await rpc.call(context, refuse)


class Notify(notify_pb2_grpc.NotifyServicer):
    async def SetPreferences(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return request


def echo_handlers() -> grpc.GenericRpcHandler:
    """One method of each cardinality, on DemandRef messages (our protos have no client-streaming method)."""
    ref = dispatch_pb2.DemandRef

    async def uu(request: Any, context: Any) -> Any:
        return request

    async def us(request: Any, context: Any) -> AsyncIterator[Any]:
        for _ in range(3):
            yield request

    async def su(requests: AsyncIterator[Any], context: Any) -> Any:
        return ref(demand_id="+".join([r.demand_id async for r in requests]))

    async def ss(requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
        async for r in requests:
            yield r

    kinds = {"UU": grpc.unary_unary_rpc_method_handler, "US": grpc.unary_stream_rpc_method_handler,
             "SU": grpc.stream_unary_rpc_method_handler, "SS": grpc.stream_stream_rpc_method_handler}
    behaviours = {"UU": uu, "US": us, "SU": su, "SS": ss}
    return grpc.method_handlers_generic_handler("test.Echo", {
        name: make(behaviours[name], request_deserializer=ref.FromString, response_serializer=ref.SerializeToString)
        for name, make in kinds.items()})


class Recorder(CallGuard):
    """A guard as an authentication guard would be written: it sees every call, may refuse, cleans up after."""

    def __init__(self, refuse: str = "") -> None:
        self.events: list[str] = []
        self.refuse = refuse

    @contextlib.asynccontextmanager
    async def around(self, call: Call) -> AsyncIterator[None]:
        name = call.method.rsplit("/", 1)[1]
        if call.metadata("x-who") == self.refuse:
            await call.context.abort(Code.UNAUTHENTICATED, "who are you?")
        self.events.append(f"enter {name}")
        try:
            yield
        finally:
            self.events.append(f"exit {name}")


@contextlib.asynccontextmanager
async def serving(limit: int = 100, guards: tuple[grpc.aio.ServerInterceptor, ...] = (),
                  channel: Callable[[str], grpc.aio.Channel] = grpc.aio.insecure_channel,
                  ) -> AsyncIterator[tuple[grpc.aio.Channel, Intake, list[grpc.aio.ServerInterceptor]]]:
    chain = edge.interceptors("test", guards, limit)
    server = grpc.aio.server(interceptors=chain)
    intake = Intake()
    intake_pb2_grpc.add_IntakeServicer_to_server(intake, server)
    notify_pb2_grpc.add_NotifyServicer_to_server(Notify(), server)
    server.add_generic_rpc_handlers((echo_handlers(),))
    rpc.add_health(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with channel(f"127.0.0.1:{port}") as ch:
            yield ch, intake, chain
    finally:
        intake.gate.set()
        await server.stop(None)


def raw(channel: grpc.aio.Channel, method: str) -> Any:
    return channel.unary_unary(method, request_serializer=lambda b: b, response_deserializer=lambda b: b)


async def refused(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value


# ---- undecodable requests -------------------------------------------------------------------------------
async def test_invalid_utf8_is_invalid_argument_naming_the_field() -> None:
    async with serving() as (channel, intake, _):
        post = raw(channel, "/sandan.intake.v1.Intake/PostDemand")
        # field 7 (description) and the second of field 9 (care_tags) hold invalid UTF-8
        cases = ((b"\x3a\x02\xff\xfe", "description: must be valid UTF-8"),
                 (b"\x4a\x01a\x4a\x02\xc3\x28", "care_tags[1]: must be valid UTF-8"),
                 (b"\xff\xff\xff", "request: cannot be decoded as sandan.intake.v1.PostDemandRequest"))
        for payload, expected in cases:
            error = await refused(post(payload))
            assert (error.code(), error.details()) == (Code.INVALID_ARGUMENT, expected)
        nested = notify_pb2.Preferences(recipient=notify_pb2.RecipientRef(recipient_id="XX")).SerializeToString()
        set_preferences = raw(channel, "/sandan.notify.v1.Notify/SetPreferences")
        error = await refused(set_preferences(nested.replace(b"XX", b"\xc0\xaf")))
        assert (error.code(), error.details()) == (Code.INVALID_ARGUMENT, "recipient.recipient_id: must be valid UTF-8")
        assert intake.seen == []


async def test_an_undecodable_message_in_a_request_stream_is_invalid_argument() -> None:
    async with serving() as (channel, _, _):
        collect = channel.stream_unary("/test.Echo/SU", request_serializer=lambda b: b,
                                       response_deserializer=dispatch_pb2.DemandRef.FromString)
        good = dispatch_pb2.DemandRef(demand_id="d1").SerializeToString()
        error = await refused(collect(iter([good, b"\x0a\x01\xff"])))
        assert (error.code(), error.details()) == (Code.INVALID_ARGUMENT, "demand_id: must be valid UTF-8")


# ---- the input policy --------------------------------------------------------------------------------------
async def test_policy_refuses_before_the_servicer_runs_naming_the_field() -> None:
    async with serving() as (channel, intake, _):
        stub = intake_pb2_grpc.IntakeStub(channel)
        cases = [
            (intake_pb2.PostDemandRequest(other_text="a\x00b"), "other_text: must not contain control characters: "
                                                               "U+0000 at position 1"),
            (intake_pb2.PostDemandRequest(description="x\u202e"),
             "description: must not contain bidirectional override or isolate characters: U+202E at position 1"),
            (intake_pb2.PostDemandRequest(care_tags=["disabled", "\x1b[31m"]), "care_tags[1]: must not contain control "
                                                                            "characters: U+001B at position 0"),
            (intake_pb2.PostDemandRequest(care_tags=["disabled"] * 11), "care_tags: at most 10 entries"),
            (intake_pb2.PostDemandRequest(menu_item_id="m" * 1_000_000), "menu_item_id: must be at most 64 characters"),
        ]
        for request, expected in cases:
            error = await refused(stub.PostDemand(request))
            assert (error.code(), error.details()) == (Code.INVALID_ARGUMENT, expected)
        prefs = notify_pb2.Preferences(recipient=notify_pb2.RecipientRef(recipient_id="r\n1"))
        error = await refused(notify_pb2_grpc.NotifyStub(channel).SetPreferences(prefs))
        assert error.details().startswith("recipient.recipient_id: must not contain control characters")
        assert intake.seen == []


async def test_free_text_reaches_the_servicer_nfc_normalised_with_newlines_where_allowed() -> None:
    async with serving() as (channel, intake, _):
        await intake_pb2_grpc.IntakeStub(channel).PostDemand(intake_pb2.PostDemandRequest(
            description="Cafe\u0301 upstairs:\n\tthe light", other_text="Cafe\u0301"))
        assert (intake.seen[0].description, intake.seen[0].other_text) == ("Caf\u00e9 upstairs:\n\tthe light",
                                                                           "Caf\u00e9")


async def test_a_refusal_never_repeats_a_long_input() -> None:
    async with serving() as (channel, _, _):
        error = await refused(intake_pb2_grpc.IntakeStub(channel).RetireMenuItem(
            intake_pb2.RetireMenuItemRequest(community_id="c1", item_id="i" * 60 + "\x00")))
        assert error.code() == Code.INVALID_ARGUMENT and "iii" not in error.details()
        # a servicer's own refusal quoting its input is cut short (the whole message at most 300 characters)
        error = await refused(intake_pb2_grpc.IntakeStub(channel).RetireMenuItem(
            intake_pb2.RetireMenuItemRequest(community_id="c" * 64, item_id="i" * 64)))
        assert error.code() == Code.NOT_FOUND and len(error.details()) <= rpc.MAX_DETAILS + 1


# ---- backpressure --------------------------------------------------------------------------------------------
async def test_beyond_the_limit_a_call_is_refused_with_a_pushback_hint_and_health_still_answers() -> None:
    async with serving(limit=2) as (channel, intake, chain):
        intake.gate.clear()
        stub = intake_pb2_grpc.IntakeStub(channel)
        held = [asyncio.ensure_future(stub.GetDemand(intake_pb2.DemandRef(demand_id=f"d{i}"))) for i in range(2)]
        while len(intake.seen) < 2:
            await asyncio.sleep(0.01)
        error = await refused(stub.GetDemand(intake_pb2.DemandRef(demand_id="d3")))
        assert error.code() == Code.RESOURCE_EXHAUSTED and "nothing was done" in error.details()
        hint = dict(error.trailing_metadata())[edge.PUSHBACK_HEADER]
        assert int(hint) > 0
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        assert len(intake.seen) == 2  # the refused call never reached the servicer
        intake.gate.set()
        assert [r.demand_id for r in await asyncio.gather(*held)] == ["d0", "d1"]
        assert chain[0].refused == 1


async def test_the_shipped_channel_retries_refused_calls_until_they_get_through() -> None:
    async with serving(limit=1, channel=channels.aio_channel) as (channel, intake, chain):
        intake.gate.clear()
        stub = intake_pb2_grpc.IntakeStub(channel)
        first = asyncio.ensure_future(stub.GetDemand(intake_pb2.DemandRef(demand_id="first")))
        while not intake.seen:
            await asyncio.sleep(0.01)
        more = [asyncio.ensure_future(stub.GetDemand(intake_pb2.DemandRef(demand_id=f"d{i}"))) for i in range(5)]
        while chain[0].refused < 5:
            await asyncio.sleep(0.01)
        intake.gate.set()
        answers = await asyncio.gather(first, *more)
        assert [a.demand_id for a in answers] == ["first", *[f"d{i}" for i in range(5)]]


def test_pushback_gives_each_refused_caller_its_own_turn_at_the_pace_the_service_can_take() -> None:
    now = [100.0]
    limit = InFlightLimit(10, clock=lambda: now[0], rand=lambda: 0.5)  # no jitter
    limit.mean_seconds = 0.15  # 10 calls per 0.15 s: 66.7 calls a second, 50 with the headroom for newcomers
    assert [limit.pushback_ms() for _ in range(4)] == [20, 40, 60, 80]  # one after the other
    now[0] += 0.05  # time passes: the turns already given come closer
    assert limit.pushback_ms() == 50
    now[0] += 60  # idle: nobody is waiting any more
    assert limit.pushback_ms() == 20


class NoMetadata:
    def invocation_metadata(self) -> tuple[()]:
        return ()


async def test_the_pace_follows_how_long_calls_take() -> None:
    now = [0.0]
    limit = InFlightLimit(1, clock=lambda: now[0])
    for _ in range(200):
        async with limit.around(Call("/x/Y", NoMetadata())):  # type: ignore[arg-type]  # a call of 20 ms
            now[0] += 0.02
    assert limit.mean_seconds == pytest.approx(0.02, rel=0.01)


async def test_a_retry_refused_three_times_may_use_a_quarter_more() -> None:
    """gRPC's retry policy says which attempt a call is (grpc-previous-rpc-attempts); the fourth and fifth may use
    limit // 4 + 1 more places, so a burst does not fail its unluckiest callers."""
    async with serving(limit=4, channel=channels.aio_channel) as (channel, intake, chain):
        intake.gate.clear()
        stub = intake_pb2_grpc.IntakeStub(channel)
        held = [asyncio.ensure_future(stub.GetDemand(intake_pb2.DemandRef(demand_id=f"d{i}"))) for i in range(4)]
        while len(intake.seen) < 4:
            await asyncio.sleep(0.01)
        late = [asyncio.ensure_future(stub.GetDemand(intake_pb2.DemandRef(demand_id=f"late{i}"))) for i in range(3)]
        while len(intake.seen) < 6 or not any(t.done() for t in late):  # 2 let in on a late attempt, 1 gives up
            await asyncio.sleep(0.01)
        [turned_away] = [t for t in late if t.done()]
        assert turned_away.exception().code() == Code.RESOURCE_EXHAUSTED  # type: ignore[union-attr]
        assert chain[0].refused == 3 * 3 + 2  # three attempts each at the limit, the unlucky one twice more
        intake.gate.set()
        assert len(await asyncio.gather(*held, *(t for t in late if t is not turned_away))) == 6


def test_the_limit_is_a_setting_per_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INTAKE_GRPC_MAX_IN_FLIGHT", raising=False)
    assert edge.max_in_flight("intake") == 100
    monkeypatch.setenv("INTAKE_GRPC_MAX_IN_FLIGHT", "250")
    assert edge.max_in_flight("intake") == 250
    assert edge.interceptors("intake")[0].limit == 250  # type: ignore[attr-defined]
    for bad in ("0", "-3", "lots", "1.5"):
        monkeypatch.setenv("INTAKE_GRPC_MAX_IN_FLIGHT", bad)
        with pytest.raises(ConfigError, match="INTAKE_GRPC_MAX_IN_FLIGHT"):
            edge.max_in_flight("intake")


def test_the_retry_policy_names_real_methods_and_leaves_non_idempotent_writes_to_refusals() -> None:
    config = json.loads(channels.service_config())
    idempotent, every = config["methodConfig"]
    assert idempotent["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE", "RESOURCE_EXHAUSTED"]
    assert every["retryPolicy"]["retryableStatusCodes"] == ["RESOURCE_EXHAUSTED"]
    descriptors = {d.full_name: d for mod in (intake_pb2, dispatch_pb2, notify_pb2) for d in
                   mod.DESCRIPTOR.services_by_name.values()}
    from sandan_contracts.rpc import ops_pb2, scoring_pb2

    for mod in (scoring_pb2, ops_pb2):
        descriptors.update({d.full_name: d for d in mod.DESCRIPTOR.services_by_name.values()})
    descriptors["grpc.health.v1.Health"] = health_pb2.DESCRIPTOR.services_by_name["Health"]
    for name in idempotent["name"]:
        assert name["method"] in descriptors[name["service"]].methods_by_name, name
    named = {(n["service"], n["method"]) for n in idempotent["name"]}
    for write in (("sandan.dispatch.v1.Dispatch", "EscalateOrder"), ("sandan.dispatch.v1.Dispatch", "OfferOrder"),
                  ("sandan.intake.v1.Intake", "RegisterResident"), ("sandan.scoring.v1.Scoring", "Rebuild"),
                  ("sandan.ops.v1.DeadLetters", "Redrive"), ("sandan.ops.v1.SetAside", "RedriveSetAside")):
        assert write not in named


# ---- guards (the chain's extension point) ----------------------------------------------------------------
async def test_a_guard_wraps_calls_of_every_cardinality_and_may_refuse() -> None:
    recorder = Recorder(refuse="stranger")
    async with serving(guards=(recorder,)) as (channel, _, _):
        ref = dispatch_pb2.DemandRef
        ser, de = ref.SerializeToString, ref.FromString
        assert (await channel.unary_unary("/test.Echo/UU", ser, de)(ref(demand_id="a"))).demand_id == "a"
        assert [r.demand_id async for r in channel.unary_stream("/test.Echo/US", ser, de)(ref(demand_id="b"))] == [
            "b", "b", "b"]
        assert (await channel.stream_unary("/test.Echo/SU", ser, de)(
            iter([ref(demand_id="c"), ref(demand_id="d")]))).demand_id == "c+d"
        assert [r.demand_id async for r in channel.stream_stream("/test.Echo/SS", ser, de)(
            iter([ref(demand_id="e"), ref(demand_id="f")]))] == ["e", "f"]
        assert recorder.events == [f"{step} {m}" for m in ("UU", "US", "SU", "SS") for step in ("enter", "exit")]
        error = await refused(channel.unary_unary("/test.Echo/UU", ser, de)(ref(demand_id="x"),
                                                                           metadata=(("x-who", "stranger"),)))
        assert (error.code(), error.details()) == (Code.UNAUTHENTICATED, "who are you?")
        assert recorder.events[-1] == "exit SS"  # the refused call never entered
