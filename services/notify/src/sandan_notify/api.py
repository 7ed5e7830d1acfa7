"""The gRPC edge (sandan.notify.v1.Notify): preferences and the delivery log.

Roles are the interceptor's (access.toml); scope here: preferences only for the recipient themselves
(`preferences.check_owner`); the delivery log and dead letters for operators (ids only, never addresses)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from sandan_contracts.rpc import notify_pb2 as pb
from sandan_contracts.rpc import notify_pb2_grpc as pb_grpc
from sandan_eventbus import rpc
from sandan_eventbus.auth.principal import Principal, current
from sandan_eventbus.checks import check_choice, check_id, check_ref
from sandan_eventbus.errors import InvalidArgument
from sandan_notify.application import NotifyApplication
from sandan_notify.deliveries import STATUSES, parse_stamp
from sandan_notify.domain import CHANNELS, KINDS
from sandan_notify.preferences import Preferences, check_owner

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Notify"].full_name


def rfc3339(stamp: str) -> str:
    return parse_stamp(stamp).isoformat().replace("+00:00", "Z") if stamp else ""


def _limit(value: int) -> int:
    if value < 0 or value > 1000:
        raise InvalidArgument("limit", "must be 0 (default 100) to 1000")
    return value or 100


def preferences_pb(p: Preferences) -> pb.Preferences:
    return pb.Preferences(recipient=pb.RecipientRef(recipient_kind=p.recipient_kind, recipient_id=p.recipient_id),
                          channels=list(p.channels), quiet_start=p.quiet_start, quiet_end=p.quiet_end,
                          opt_out_non_essential=p.opt_out_non_essential, language=p.language,
                          is_default=p.is_default)


def delivery_pb(row: Any) -> pb.Delivery:
    return pb.Delivery(
        notification_id=row.notification_id, source_event_id=row.source_event_id, source_type=row.source_type,
        recipient_kind=row.recipient_kind, recipient_id=row.recipient_id, channel=row.channel,
        template=row.template, status=row.status, attempts=row.attempts, last_error=row.last_error,
        planned_at=rfc3339(row.planned_at), next_attempt_at=rfc3339(row.next_attempt_at),
        finished_at=rfc3339(row.finished_at), urgent=bool(row.urgent))


def dead_letter_pb(row: Any) -> pb.DeadLetter:
    return pb.DeadLetter(notice_id=row.notice_id, notification_id=row.notification_id,
                         source_event_id=row.source_event_id, recipient_kind=row.recipient_kind,
                         recipient_id=row.recipient_id, channel=row.channel, template=row.template, error=row.error,
                         attempts=row.attempts, recorded_at=rfc3339(row.recorded_at))


def recipient(who: Principal, ref: pb.RecipientRef) -> None:
    """A well-formed recipient (refusals name the field), then one the caller may speak for."""
    check_choice("recipient_kind", ref.recipient_kind, KINDS)
    check_id("recipient_id", ref.recipient_id)
    check_owner(who, ref.recipient_kind, ref.recipient_id)


class NotifyServicer(pb_grpc.NotifyServicer):
    def __init__(self, app: NotifyApplication, on_change: Callable[[], None] = lambda: None) -> None:
        self.app = app
        self.on_change = on_change

    async def SetPreferences(self, request: pb.Preferences, context: grpc.aio.ServicerContext) -> pb.Preferences:
        who = current()

        def set_preferences() -> pb.Preferences:
            recipient(who, request.recipient)
            prefs = Preferences(request.recipient.recipient_kind, request.recipient.recipient_id,
                                tuple(request.channels), request.quiet_start, request.quiet_end,
                                request.opt_out_non_essential, request.language)
            return preferences_pb(self.app.preferences.set(prefs))

        result = await rpc.call(context, set_preferences)
        self.on_change()
        return result

    async def GetPreferences(self, request: pb.RecipientRef, context: grpc.aio.ServicerContext) -> pb.Preferences:
        who = current()

        def get() -> pb.Preferences:
            recipient(who, request)
            return preferences_pb(self.app.preferences.get(request.recipient_kind, request.recipient_id))

        return await rpc.call(context, get)

    async def ListDeliveries(self, request: pb.ListDeliveriesRequest,
                             context: grpc.aio.ServicerContext) -> pb.Deliveries:
        def list_deliveries() -> pb.Deliveries:
            if request.recipient_kind:
                check_choice("recipient_kind", request.recipient_kind, KINDS)
            if request.status:
                check_choice("status", request.status, STATUSES)
            if request.channel:
                check_choice("channel", request.channel, CHANNELS)
            if request.recipient_id:
                check_id("recipient_id", request.recipient_id)
            if request.source_event_id:
                check_ref("source_event_id", request.source_event_id)
            limit = _limit(request.limit)
            self.app.projector.catch_up()
            rows = self.app.delivery_log.deliveries(
                recipient_kind=request.recipient_kind, recipient_id=request.recipient_id,
                source_event_id=request.source_event_id, status=request.status, channel=request.channel, limit=limit)
            return pb.Deliveries(deliveries=[delivery_pb(r) for r in rows])

        return await rpc.call(context, list_deliveries)

    async def ListDeadLetters(self, request: pb.ListDeadLettersRequest,
                              context: grpc.aio.ServicerContext) -> pb.DeadLetters:
        def list_dead_letters() -> pb.DeadLetters:
            if request.recipient_kind:
                check_choice("recipient_kind", request.recipient_kind, KINDS)
            if request.recipient_id:
                check_id("recipient_id", request.recipient_id)
            limit = _limit(request.limit)
            self.app.projector.catch_up()
            rows = self.app.delivery_log.dead_letters(recipient_kind=request.recipient_kind,
                                             recipient_id=request.recipient_id, limit=limit)
            return pb.DeadLetters(dead_letters=[dead_letter_pb(r) for r in rows])

        return await rpc.call(context, list_dead_letters)


def add_to_server(server: grpc.aio.Server, app: NotifyApplication,
                  on_change: Callable[[], None] = lambda: None) -> list[str]:
    pb_grpc.add_NotifyServicer_to_server(NotifyServicer(app, on_change), server)
    return [SERVICE_NAME]
