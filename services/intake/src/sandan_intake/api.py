"""The gRPC edge (sandan.intake.v1.Intake): validate the request, run the use case, map the answer.

Each command runs in a worker thread through `rpc.call`, which also maps refusals to status codes
(InvalidArgument -> INVALID_ARGUMENT, NotFound -> NOT_FOUND, FailedPrecondition -> FAILED_PRECONDITION,
PermissionDenied -> PERMISSION_DENIED). The caller was authenticated and allowed by role before the servicer runs
(the runtime's interceptor); the worker thread carries them to the use cases, which check scope.
After a write, `wake` nudges the outbox relay so the new events are published at once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

import grpc

from sandan_contracts.rpc import audit_pb2, intake_pb2, intake_pb2_grpc
from sandan_eventbus import rpc
from sandan_eventbus.audit import AuditEntry
from sandan_eventbus.checks import check_choice, check_id
from sandan_eventbus.errors import InvalidArgument
from sandan_intake.application import DemandView, IntakeApplication, ResidentExport
from sandan_intake.domain import CARE_TAGS, CHANNELS, URGENCIES, MenuItem
from sandan_intake.residents import FIELDS

R = TypeVar("R")
DEFAULT_LISTED = 20  # ListResidentDemands without a limit
SERVICE_NAME = intake_pb2.DESCRIPTOR.services_by_name["Intake"].full_name


def rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _required(field: str, value: str) -> str:
    if not value.strip():
        raise InvalidArgument(field, "is required")
    return value.strip()


def _demand(view: DemandView) -> intake_pb2.Demand:
    d = view.demand
    return intake_pb2.Demand(
        demand_id=str(d.id), resident_id=d.resident_id, community_id=d.community_id, grid_id=d.grid_id,
        category=d.category, menu_item_id=d.menu_item_id or "", urgency=d.urgency, care_tags=view.care_tags,
        channel=d.channel, status=d.status, due_at=rfc3339(d.due_at), member_id=d.member_id or "",
        redo_count=d.redo_count, stars=d.stars or 0, special_care=d.special_care,
        resident_erased=view.resident_erased, texts_shredded=view.texts_shredded,
    )


def _export(x: ResidentExport) -> intake_pb2.ResidentExport:
    r = x.record
    demands = []
    for item in x.demands:
        d, t = item.demand, item.texts
        demands.append(intake_pb2.ExportedDemand(
            demand_id=str(d.id), posted_at=rfc3339(d.created_on), status=d.status, community_id=d.community_id,
            grid_id=d.grid_id, category=d.category, menu_item_id=d.menu_item_id or "",
            other_text=t.other_text or "", description=t.description or "", care_tags=t.care_tags or [],
            urgency=d.urgency, channel=d.channel, member_id=d.member_id or "", redo_count=d.redo_count,
            stars=d.stars or 0, comment=t.comment or "", withdraw_reason=d.withdraw_reason or "",
            texts_shredded=t.state != "readable",
            contact_releases=[intake_pb2.ContactRelease(at=rfc3339(c.at), subject=c.subject, role=c.role,
                                                        member_id=c.member_id or "") for c in item.releases]))
    return intake_pb2.ResidentExport(
        resident_id=r.resident_id, community_id=r.community_id, name=r.name, phone=r.phone, address=r.address,
        email=r.email or "", wechat_openid=r.wechat_openid or "",
        registered_at=rfc3339(r.registered_at) if r.registered_at else "", erased=r.erased,
        erased_at=rfc3339(r.erased_at) if r.erased_at else "", demands=demands,
        record_history=audit_pb2.History(entries=[_entry(e) for e in x.history]), exported_at=rfc3339(x.exported_at))


def _menu_item(item: MenuItem) -> intake_pb2.MenuItem:
    return intake_pb2.MenuItem(
        community_id=item.community_id, item_id=item.item_id, category=item.category, title=item.title,
        deadlines=intake_pb2.DeadlineSeconds(**item.deadlines), retired=item.retired,
    )


def _entry(e: AuditEntry) -> audit_pb2.Entry:
    return audit_pb2.Entry(version=e.version, at=rfc3339(e.at), what=e.what, subject=e.subject, role=e.role,
                           on_behalf_of=e.on_behalf_of, caused_by=e.caused_by, correlation_id=e.correlation_id)


class IntakeServicer(intake_pb2_grpc.IntakeServicer):
    def __init__(self, app: IntakeApplication, wake: Callable[[], None] = lambda: None) -> None:
        self.app = app
        self.wake = wake

    async def _write(self, context: grpc.aio.ServicerContext, command: Callable[[], R]) -> R:
        result = await rpc.call(context, command)
        self.wake()
        return result

    async def RegisterResident(self, request: intake_pb2.RegisterResidentRequest,
                               context: grpc.aio.ServicerContext) -> intake_pb2.Resident:
        def register() -> intake_pb2.Resident:
            resident = self.app.register_resident(
                _required("community_id", request.community_id), _required("name", request.name),
                _required("phone", request.phone), _required("address", request.address),
                email=request.email or None, wechat_openid=request.wechat_openid or None)
            return intake_pb2.Resident(resident_id=resident.resident_id, community_id=resident.community_id)

        return await rpc.call(context, register)

    async def PublishMenuItem(self, request: intake_pb2.PublishMenuItemRequest,
                              context: grpc.aio.ServicerContext) -> intake_pb2.MenuItem:
        def publish() -> intake_pb2.MenuItem:
            deadlines: dict[str, int] = {}
            if request.HasField("deadlines"):
                for urgency in URGENCIES:
                    seconds = getattr(request.deadlines, urgency)
                    if seconds < 0:
                        raise InvalidArgument(f"deadlines.{urgency}", "must be positive (0 = the default)")
                    if seconds:
                        deadlines[urgency] = seconds
            item = self.app.publish_menu_item(
                _required("community_id", request.community_id), _required("item_id", request.item_id),
                _required("category", request.category), _required("title", request.title), deadlines)
            return _menu_item(item)

        return await self._write(context, publish)

    async def RetireMenuItem(self, request: intake_pb2.RetireMenuItemRequest,
                             context: grpc.aio.ServicerContext) -> intake_pb2.MenuItem:
        def retire() -> intake_pb2.MenuItem:
            return _menu_item(self.app.retire_menu_item(
                _required("community_id", request.community_id), _required("item_id", request.item_id)))

        return await self._write(context, retire)

    async def ListMenu(self, request: intake_pb2.ListMenuRequest,
                       context: grpc.aio.ServicerContext) -> intake_pb2.Menu:
        def list_menu() -> intake_pb2.Menu:
            items = self.app.menu(_required("community_id", request.community_id))
            return intake_pb2.Menu(items=[_menu_item(i) for i in items])

        return await rpc.call(context, list_menu)

    async def PostDemand(self, request: intake_pb2.PostDemandRequest,
                         context: grpc.aio.ServicerContext) -> intake_pb2.Demand:
        def post() -> intake_pb2.Demand:
            for tag in request.care_tags:
                check_choice("care_tags", tag, CARE_TAGS)
            if not request.menu_item_id and not request.other_text.strip():
                raise InvalidArgument("menu_item_id", "give a menu item, or other_text for a demand off the menu")
            demand = self.app.post_demand(
                client_request_id=_required("client_request_id", request.client_request_id),
                resident_id=_required("resident_id", request.resident_id),
                community_id=_required("community_id", request.community_id),
                grid_id=_required("grid_id", request.grid_id),
                description=request.description,
                urgency=check_choice("urgency", request.urgency, URGENCIES),
                channel=check_choice("channel", request.channel, CHANNELS),
                menu_item_id=request.menu_item_id or None,
                other_text=request.other_text or None,
                care_tags=list(request.care_tags),
            )
            return _demand(self.app.view(demand))

        return await self._write(context, post)

    async def WithdrawDemand(self, request: intake_pb2.WithdrawDemandRequest,
                             context: grpc.aio.ServicerContext) -> intake_pb2.Demand:
        def withdraw() -> intake_pb2.Demand:
            return _demand(self.app.view(self.app.withdraw(_required("demand_id", request.demand_id),
                                                           _required("reason", request.reason))))

        return await self._write(context, withdraw)

    async def ConfirmCompletion(self, request: intake_pb2.DemandRef,
                                context: grpc.aio.ServicerContext) -> intake_pb2.Demand:
        def confirm() -> intake_pb2.Demand:
            return _demand(self.app.view(self.app.confirm_completion(_required("demand_id", request.demand_id))))

        return await self._write(context, confirm)

    async def RateService(self, request: intake_pb2.RateServiceRequest,
                          context: grpc.aio.ServicerContext) -> intake_pb2.Demand:
        def rate() -> intake_pb2.Demand:
            demand_id = _required("demand_id", request.demand_id)
            if not 1 <= request.stars <= 5:  # checked before the state, so a bad request says so
                raise InvalidArgument("stars", "must be 1 to 5")
            return _demand(self.app.view(self.app.rate(demand_id, request.stars, request.comment)))

        return await self._write(context, rate)

    async def RequestRedo(self, request: intake_pb2.RequestRedoRequest,
                          context: grpc.aio.ServicerContext) -> intake_pb2.Demand:
        def redo() -> intake_pb2.Demand:
            return _demand(self.app.view(self.app.request_redo(_required("demand_id", request.demand_id),
                                                               _required("reason", request.reason))))

        return await self._write(context, redo)

    async def GetDemand(self, request: intake_pb2.DemandRef,
                        context: grpc.aio.ServicerContext) -> intake_pb2.Demand:
        def get() -> intake_pb2.Demand:
            return _demand(self.app.view(self.app.get_demand(_required("demand_id", request.demand_id))))

        return await rpc.call(context, get)

    async def ListResidentDemands(self, request: intake_pb2.ListResidentDemandsRequest,
                                  context: grpc.aio.ServicerContext) -> intake_pb2.DemandList:
        def list_demands() -> intake_pb2.DemandList:
            views, next_before = self.app.resident_demands_page(
                _required("resident_id", request.resident_id), request.limit or DEFAULT_LISTED,
                request.before.strip() or None)
            return intake_pb2.DemandList(demands=[_demand(v) for v in views], next_before=next_before or "")

        return await rpc.call(context, list_demands)

    async def GetDemandHistory(self, request: intake_pb2.DemandRef,
                               context: grpc.aio.ServicerContext) -> audit_pb2.History:
        def history() -> audit_pb2.History:
            entries = self.app.demand_history(_required("demand_id", request.demand_id))
            return audit_pb2.History(entries=[_entry(e) for e in entries])

        return await rpc.call(context, history)

    async def GetServiceContact(self, request: intake_pb2.ServiceContactRequest,
                                context: grpc.aio.ServicerContext) -> intake_pb2.ServiceContact:
        # A release is stored but never published: no relay to wake.
        def contact() -> intake_pb2.ServiceContact:
            member_id = check_id("member_id", request.member_id) if request.member_id else None
            found = self.app.service_contact(_required("demand_id", request.demand_id), member_id)
            return intake_pb2.ServiceContact(demand_id=found.demand_id, name=found.name, phone=found.phone,
                                             address=found.address, description=found.description,
                                             erased=found.erased, texts_shredded=found.texts_shredded)

        return await rpc.call(context, contact)

    async def GetDemandContact(self, request: intake_pb2.DemandRef,
                               context: grpc.aio.ServicerContext) -> intake_pb2.ResidentContact:
        def contact() -> intake_pb2.ResidentContact:
            demand, resident = self.app.demand_contact(_required("demand_id", request.demand_id))
            return intake_pb2.ResidentContact(
                demand_id=str(demand.id), resident_id=resident.resident_id, community_id=resident.community_id,
                name=resident.name, phone=resident.phone, email=resident.email or "",
                wechat_openid=resident.wechat_openid or "", erased=resident.erased)

        return await rpc.call(context, contact)

    async def CorrectResident(self, request: intake_pb2.CorrectResidentRequest,
                              context: grpc.aio.ServicerContext) -> intake_pb2.Resident:
        # The record is not published: no relay to wake.
        def correct() -> intake_pb2.Resident:
            resident_id = _required("resident_id", request.resident_id)
            changes = {f: getattr(request, f) for f in FIELDS if request.HasField(f)}
            changed = self.app.correct_resident(resident_id, changes)
            record = self.app.residents.community_of(resident_id)
            return intake_pb2.Resident(resident_id=record.resident_id, community_id=record.community_id,
                                       corrected=changed)

        return await rpc.call(context, correct)

    async def ExportResidentData(self, request: intake_pb2.ResidentRef,
                                 context: grpc.aio.ServicerContext) -> intake_pb2.ResidentExport:
        def export() -> intake_pb2.ResidentExport:
            return _export(self.app.export_resident_data(_required("resident_id", request.resident_id)))

        return await rpc.call(context, export)

    async def EraseResident(self, request: intake_pb2.EraseResidentRequest,
                            context: grpc.aio.ServicerContext) -> intake_pb2.ResidentErased:
        # The topics carry no personal data to erase; each demand's DemandTextsShredded is published (woken).
        def erase() -> intake_pb2.ResidentErased:
            done = self.app.erase_resident(_required("resident_id", request.resident_id),
                                           _required("reason", request.reason))
            return intake_pb2.ResidentErased(resident_id=done.resident_id, erased_at=rfc3339(done.erased_at),
                                             keys_destroyed=done.keys_destroyed)

        return await self._write(context, erase)


def add_to_server(server: grpc.aio.Server, app: IntakeApplication, wake: Callable[[], None]) -> list[str]:
    """Register the servicer; returns the service names health should report."""
    intake_pb2_grpc.add_IntakeServicer_to_server(IntakeServicer(app, wake), server)
    return [SERVICE_NAME]
