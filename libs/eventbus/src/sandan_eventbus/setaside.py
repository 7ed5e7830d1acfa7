"""Events the relay set aside, and their re-drive: the `sandan.ops.v1.SetAside` gRPC service.

Every service with a relay serves it for its own store. The relay sets aside a stored event it cannot publish (the
contract or the broker refuses that event) and the rest flow past it (see sandan_eventbus.relay); this lists them
and publishes chosen ones again, each alone, through `Relay.redrive`, which records every attempt (who, when, why,
outcome) in the service's store. Who asks is the verified caller, as for dead letters (sandan_eventbus.redrive).
Answers carry ids, types and bounded errors only: the relay never keeps an event's content with it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import TypeVar

import grpc

from sandan_contracts.rpc import ops_pb2 as pb
from sandan_contracts.rpc import ops_pb2_grpc
from sandan_eventbus.errors import InvalidArgument
from sandan_eventbus.outages import describe, is_outage
from sandan_eventbus.redrive import clean_text, operator_of
from sandan_eventbus.relay import SET_ASIDE, Redrive, Relay, SetAsideEvent

log = logging.getLogger(__name__)

SERVICE_NAME = "sandan.ops.v1.SetAside"
DEFAULT_LIMIT, MAX_LIMIT, MAX_PER_REDRIVE = 100, 1000, 100

T = TypeVar("T")


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


def _redrive_pb(r: Redrive) -> pb.SetAsideRedrive:
    return pb.SetAsideRedrive(at=_iso(r.at), operator=r.operator, reason=r.reason, outcome=r.outcome, error=r.error)


def item_pb(item: SetAsideEvent) -> pb.SetAsideItem:
    return pb.SetAsideItem(
        notification_id=item.notification_id, event_id=item.event_id, event_type=item.event_type, topic=item.topic,
        error=item.error, attempts=item.attempts, first_at=_iso(item.first_at), last_at=_iso(item.last_at),
        status=item.status, redrives=[_redrive_pb(r) for r in item.redrives])


class SetAsideServicer(ops_pb2_grpc.SetAsideServicer):
    def __init__(self, relay: Relay) -> None:
        self.relay = relay

    async def _outage_is_unavailable(self, context: grpc.aio.ServicerContext, work: Awaitable[T]) -> T:
        try:
            return await work
        except Exception as exc:
            if not is_outage(exc):
                raise
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"store or broker unreachable: {describe(exc)}")
        raise AssertionError("unreachable: abort raises")

    async def ListSetAside(self, request: pb.ListSetAsideRequest,
                           context: grpc.aio.ServicerContext) -> pb.SetAsideList:
        limit = request.limit or DEFAULT_LIMIT
        if not 1 <= limit <= MAX_LIMIT:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"limit: 1 to {MAX_LIMIT}")
        items = await self._outage_is_unavailable(
            context, asyncio.to_thread(self.relay.set_aside_events, True))
        waiting = sum(1 for i in items if i.status == SET_ASIDE)
        shown = [i for i in items if request.include_published or i.status == SET_ASIDE][:limit]
        return pb.SetAsideList(set_aside=waiting, items=[item_pb(i) for i in shown])

    async def RedriveSetAside(self, request: pb.RedriveSetAsideRequest,
                              context: grpc.aio.ServicerContext) -> pb.RedriveSetAsideReply:
        operator = operator_of(request.operator, context)
        if not operator:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "operator: say who asks for the re-drive")
        ids = list(request.notification_ids)
        if not 1 <= len(ids) <= MAX_PER_REDRIVE:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"notification_ids: 1 to {MAX_PER_REDRIVE}")
        if any(i < 1 for i in ids):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "notification_ids: positive numbers, as listed")
        try:
            results = await self._outage_is_unavailable(
                context, self.relay.redrive(ids, operator=operator, reason=clean_text(request.reason, 300)))
        except InvalidArgument as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc)[:300])
            raise AssertionError("unreachable: abort raises") from exc
        return pb.RedriveSetAsideReply(results=[
            pb.RedriveSetAsideResult(notification_id=r.notification_id, outcome=r.outcome, error=r.error)
            for r in results])


def add_to_server(server: grpc.aio.Server, relay: Relay) -> list[str]:
    ops_pb2_grpc.add_SetAsideServicer_to_server(SetAsideServicer(relay), server)
    return [SERVICE_NAME]
