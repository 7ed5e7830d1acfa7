"""The gRPC edge on an in-process server, and the delivery loops (planner + lanes) on the asyncio loop.

The server has the production chain (`edge.server` with the authentication interceptor); these calls carry a real
signed token of member m-1 who is also an operator (scope itself: test_access.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from sandan_contracts.events import MemberReported, OrderDispatched, OrderOffered, OrderOpened
from sandan_contracts.rpc import notify_pb2 as pb
from sandan_contracts.rpc.notify_pb2_grpc import NotifyStub
from sandan_eventbus import channels, edge
from sandan_eventbus.auth.client import AioBearerAuth, StaticToken
from sandan_eventbus.auth.devissuer import LocalIssuer
from sandan_notify.api import add_to_server
from sandan_notify.channels import SendError
from sandan_notify.delivery import Worker

DUE = "2026-03-03T00:00:00Z"


@pytest.fixture
async def stub(h, local_issuer: LocalIssuer) -> AsyncIterator[NotifyStub]:  # type: ignore[no-untyped-def]
    server = edge.server("notify", guards=local_issuer.guards())
    add_to_server(server, h.app)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    token = local_issuer.token("member-1-it", ["member", "operator"], member_id="m-1")
    try:
        async with channels.aio_channel(f"127.0.0.1:{port}", interceptors=[AioBearerAuth(StaticToken(token))]
                                        ) as channel:
            yield NotifyStub(channel)
    finally:
        await server.stop(None)


def given_orders(h) -> None:  # type: ignore[no-untyped-def]
    for member in ("m-1", "m-2"):
        h.feed(MemberReported(member_id=member, community_id="c-1", unit_id="u-1", grid_id="g-1"),
               topic="dispatch.roster.v1")
    h.feed(OrderOpened(order_id="o-1", demand_id="d-1", community_id="c-1", grid_id="g-1", category="medical",
                       urgency="normal", due_at=DUE))


async def test_preferences_round_trip_and_refusals(stub: NotifyStub) -> None:
    ref = pb.RecipientRef(recipient_kind="member", recipient_id="m-1")
    default = await stub.GetPreferences(ref)
    assert default.is_default and (default.quiet_start, default.quiet_end, default.language) == ("22:00", "07:00",
                                                                                                  "zh")
    saved = await stub.SetPreferences(pb.Preferences(recipient=ref, channels=["email", "sms"], quiet_start="23:00",
                                                     quiet_end="06:30", opt_out_non_essential=True, language="en"))
    assert list(saved.channels) == ["email", "sms"] and not saved.is_default
    again = await stub.GetPreferences(ref)
    assert (list(again.channels), again.quiet_start, again.opt_out_non_essential, again.language) == (
        ["email", "sms"], "23:00", True, "en")
    for bad, field in ((pb.Preferences(recipient=ref, channels=["fax"]), "channels"),
                       (pb.Preferences(recipient=ref, channels=["sms", "sms"]), "channels"),
                       (pb.Preferences(recipient=ref, quiet_start="23:00"), "quiet_end"),
                       (pb.Preferences(recipient=ref, quiet_start="9pm", quiet_end="07:00"), "quiet_start"),
                       (pb.Preferences(recipient=ref, language="fr"), "language"),
                       (pb.Preferences(recipient=pb.RecipientRef(recipient_kind="mayor", recipient_id="x")),
                        "recipient_kind")):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await stub.SetPreferences(bad)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and error.value.details().startswith(field)


async def test_the_delivery_log_and_dead_letters(h, stub: NotifyStub) -> None:  # type: ignore[no-untyped-def]
    given_orders(h)
    h.channels["sms"].failures = [SendError("http_400", permanent=True)]
    h.feed(OrderDispatched(order_id="o-1", demand_id="d-1", member_id="m-2", dispatched_by="branch"))
    h.feed(OrderDispatched(order_id="o-1", demand_id="d-1", member_id="m-1", dispatched_by="branch"))
    h.run()
    everything = (await stub.ListDeliveries(pb.ListDeliveriesRequest())).deliveries
    assert sorted((d.recipient_id, d.channel, d.status) for d in everything) == [("m-1", "sms", "sent"),
                                                                                ("m-2", "sms", "failed")]
    sent = (await stub.ListDeliveries(pb.ListDeliveriesRequest(status="sent"))).deliveries
    assert [d.recipient_id for d in sent] == ["m-1"]
    assert sent[0].finished_at.endswith("Z") and sent[0].planned_at == "2026-03-02T02:00:00Z"  # the service's clock
    assert sent[0].template == "order_dispatched" and sent[0].source_type == "OrderDispatched"
    by_source = await stub.ListDeliveries(pb.ListDeliveriesRequest(source_event_id=sent[0].source_event_id))
    assert [d.notification_id for d in by_source.deliveries] == [sent[0].notification_id]
    letters = (await stub.ListDeadLetters(pb.ListDeadLettersRequest(recipient_id="m-2"))).dead_letters
    assert [(d.error, d.channel) for d in letters] == [("http_400", "sms"), ("all_channels_failed", "")]
    for bad in (pb.ListDeliveriesRequest(status="lost"), pb.ListDeliveriesRequest(limit=5000),
                pb.ListDeliveriesRequest(recipient_kind="mayor")):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await stub.ListDeliveries(bad)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_worker_loops_plan_and_deliver_and_keep_a_dead_channel_apart(h) -> None:  # type: ignore[no-untyped-def]
    given_orders(h)
    h.feed(MemberReported(member_id="m-3", community_id="c-1", unit_id="u-1", grid_id="g-1"),
           topic="dispatch.roster.v1")
    h.channels["sms"].failures = [SendError("timeout")] * 100  # the SMS gateway is down
    saved: list[int] = []
    worker = Worker(h.app, on_saved=lambda: saved.append(1), poll_seconds=0.02)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(loop(stop)) for loop in worker.loops()]
    try:
        h.feed(OrderOffered(order_id="o-1", demand_id="d-1", grid_id="g-1", teams=[]))  # m-1, m-2: sms; m-3: wechat
        worker.wake()
        for _ in range(500):  # the lanes run independently: wait for both outcomes, in either order
            if h.sent("wechat") and worker.outcomes.get("retrying", 0) >= 1:
                break
            await asyncio.sleep(0.02)
        assert [m.recipient_id for m in h.sent("wechat")] == ["m-3"]
        assert worker.outcomes.get("retrying", 0) >= 1 and saved
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    assert {t.get_name() for t in tasks} and all(t.done() for t in tasks)


async def test_hostile_ids_and_filters_are_refused_naming_the_field(stub: NotifyStub) -> None:
    ref = pb.RecipientRef(recipient_kind="member", recipient_id="m\x00-1")
    cases = [
        (stub.SetPreferences(pb.Preferences(recipient=ref)), "recipient.recipient_id: must not contain control"),
        (stub.GetPreferences(pb.RecipientRef(recipient_kind="member", recipient_id="m-1" * 300_000)),
         "recipient_id: must be at most 64 characters"),
        (stub.GetPreferences(pb.RecipientRef(recipient_kind="member", recipient_id="")), "recipient_id: must be an id"),
        (stub.ListDeliveries(pb.ListDeliveriesRequest(source_event_id="intake:1\u2066")),
         "source_event_id: must not contain bidirectional"),
        (stub.ListDeliveries(pb.ListDeliveriesRequest(recipient_id="m 1")), "recipient_id: must be an id"),
        (stub.ListDeadLetters(pb.ListDeadLettersRequest(recipient_id="m/1")), "recipient_id: must be an id"),
    ]
    for call, expected in cases:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert info.value.details().startswith(expected)
    assert (await stub.GetPreferences(pb.RecipientRef(recipient_kind="member", recipient_id="m-1"))).is_default
