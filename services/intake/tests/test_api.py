"""The gRPC edge on an in-process grpc.aio server with an in-memory app: status codes and the happy path.

Calls carry real signed tokens (the local issuer): the branch secretary of c-1, or the member holding a demand."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest

from sandan_contracts import Event
from sandan_contracts.events import OrderAccepted, ServiceCompleted
from sandan_contracts.rpc import intake_pb2 as pb
from sandan_eventbus.auth.devissuer import LocalIssuer
from sandan_eventbus.errors import InvalidArgument
from sandan_intake.application import IntakeApplication
from services.intake.tests.support import Caller, Served, serving


@dataclass
class Harness:
    stub: Caller  # the branch secretary of c-1: in scope for everything here but a member's contact
    app: IntakeApplication
    served: Served

    @property
    def wakes(self) -> list[int]:
        return self.served.wakes

    def member(self, member_id: str) -> Caller:
        return self.served.as_(f"sub-{member_id}", ["member"], member_id=member_id)

    def apply(self, event: Event) -> None:
        self.served.apply(event)


@pytest.fixture
async def h(local_issuer: LocalIssuer) -> AsyncIterator[Harness]:
    async with serving(local_issuer) as served:
        yield Harness(served.as_("sub-secretary", ["branch_secretary"], community_id="c-1"), served.app, served)


async def register(h: Harness) -> pb.Resident:
    return await h.stub.RegisterResident(pb.RegisterResidentRequest(
        community_id="c-1", name="Liu Yang", phone="13900001111", address="12 Well Street"))


def demand_request(resident: pb.Resident, **overrides: object) -> pb.PostDemandRequest:
    fields: dict[str, object] = {
        "client_request_id": "req-1", "resident_id": resident.resident_id, "community_id": "c-1",
        "grid_id": "g-1", "menu_item_id": "", "other_text": "errand", "description": "Please fetch my medicine",
        "urgency": "normal", "care_tags": ["elderly_alone"], "channel": "hotline",
    }
    fields.update(overrides)
    return pb.PostDemandRequest(**fields)


async def status_of(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    return info.value


@pytest.mark.parametrize(("overrides", "field", "message"), [
    ({"urgency": "asap"}, "urgency", "urgency: must be one of urgent, normal, routine"),
    ({"urgency": ""}, "urgency", "urgency: must be one of urgent, normal, routine"),
    ({"channel": "fax"}, "channel", "channel: must be one of app, hotline, grid_worker, walk_in"),
    ({"description": "hi"}, "description", "description: must be 5 to 500 characters"),
    ({"care_tags": ["vip"]}, "care_tags", "care_tags: must be one of"),
    ({"client_request_id": ""}, "client_request_id", "client_request_id: is required"),
    ({"grid_id": ""}, "grid_id", "grid_id: is required"),
    ({"other_text": ""}, "menu_item_id", "menu_item_id: give a menu item"),
])
async def test_post_invalid_arguments(h: Harness, overrides: dict[str, object], field: str, message: str) -> None:
    resident = await register(h)
    error = await status_of(h.stub.PostDemand(demand_request(resident, **overrides)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(message)
    assert h.wakes == []


async def test_register_needs_fields(h: Harness) -> None:
    error = await status_of(h.stub.RegisterResident(pb.RegisterResidentRequest(community_id="c-1", name="X")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("phone:")


async def test_unknown_demand_is_not_found(h: Harness) -> None:
    error = await status_of(h.stub.GetDemand(pb.DemandRef(demand_id="6b1a3c4e-0000-4000-8000-000000000000")))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    error = await status_of(h.stub.ConfirmCompletion(pb.DemandRef(demand_id="6b1a3c4e-0000-4000-8000-000000000000")))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    error = await status_of(h.stub.GetDemand(pb.DemandRef(demand_id="nope")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_an_unknown_resident_is_refused_as_one_out_of_reach_is(h: Harness) -> None:
    """The secretary cannot tell an id nobody has from a resident of another community (no probing of ids)."""
    other = h.served.as_("sub-secretary-2", ["branch_secretary"], community_id="c-2")
    elsewhere = await other.RegisterResident(pb.RegisterResidentRequest(
        community_id="c-2", name="Sun Li", phone="13900002222", address="3 Gate Lane"))
    unknown = pb.Resident(resident_id="6b1a3c4e-0000-4000-8000-000000000000", community_id="c-1")
    refusals = [await status_of(h.stub.PostDemand(demand_request(r))) for r in (unknown, elsewhere)]
    assert [(e.code(), e.details()) for e in refusals] == [(grpc.StatusCode.PERMISSION_DENIED,
                                                            refusals[1].details())] * 2


async def test_rating_an_unserved_demand(h: Harness) -> None:
    demand = await h.stub.PostDemand(demand_request(await register(h)))
    error = await status_of(h.stub.RateService(pb.RateServiceRequest(demand_id=demand.demand_id, stars=5)))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "demand is posted" in error.details()
    error = await status_of(h.stub.RateService(pb.RateServiceRequest(demand_id=demand.demand_id, stars=6)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "stars: must be 1 to 5"


async def test_menu_calls(h: Harness) -> None:
    item = await h.stub.PublishMenuItem(pb.PublishMenuItemRequest(
        community_id="c-1", item_id="meds", category="medicine_delivery", title="Medicine delivery",
        deadlines=pb.DeadlineSeconds(urgent=3600)))
    assert (item.deadlines.urgent, item.deadlines.normal, item.deadlines.routine) == (3600, 86400, 604800)
    bad = await status_of(h.stub.PublishMenuItem(pb.PublishMenuItemRequest(
        community_id="c-1", item_id="x", category="Bad Code", title="t")))
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT and bad.details().startswith("category:")
    retired = await h.stub.RetireMenuItem(pb.RetireMenuItemRequest(community_id="c-1", item_id="meds"))
    assert retired.retired
    menu = await h.stub.ListMenu(pb.ListMenuRequest(community_id="c-1"))
    assert [(i.item_id, i.retired) for i in menu.items] == [("meds", True)]
    missing = await status_of(h.stub.RetireMenuItem(pb.RetireMenuItemRequest(community_id="c-1", item_id="no")))
    assert missing.code() == grpc.StatusCode.NOT_FOUND


async def test_happy_path(h: Harness) -> None:
    resident = await register(h)
    await h.stub.PublishMenuItem(pb.PublishMenuItemRequest(
        community_id="c-1", item_id="meds", category="medicine_delivery", title="Medicine delivery"))
    request = demand_request(resident, menu_item_id="meds", other_text="", urgency="urgent")
    demand = await h.stub.PostDemand(request)
    assert (demand.status, demand.category, demand.menu_item_id) == ("posted", "medicine_delivery", "meds")
    assert demand.due_at.endswith("Z") and demand.stars == 0 and demand.member_id == ""
    again = await h.stub.PostDemand(request)  # a retried post
    assert again.demand_id == demand.demand_id

    denied = await status_of(h.member("m-1").GetServiceContact(
        pb.ServiceContactRequest(demand_id=demand.demand_id, member_id="m-1")))
    assert denied.code() == grpc.StatusCode.FAILED_PRECONDITION

    h.apply(OrderAccepted(order_id="o-1", demand_id=demand.demand_id, member_id="m-1", via="dispatch"))
    contact = await h.member("m-1").GetServiceContact(pb.ServiceContactRequest(demand_id=demand.demand_id,
                                                                              member_id="m-1"))
    assert (contact.name, contact.phone, contact.address, contact.description) == (
        "Liu Yang", "13900001111", "12 Well Street", "Please fetch my medicine")
    h.apply(ServiceCompleted(order_id="o-1", demand_id=demand.demand_id, member_id="m-1", hours=1.0))

    confirmed = await h.stub.ConfirmCompletion(pb.DemandRef(demand_id=demand.demand_id))
    assert (confirmed.status, confirmed.member_id) == ("confirmed", "m-1")
    rated = await h.stub.RateService(pb.RateServiceRequest(demand_id=demand.demand_id, stars=5, comment="Thanks"))
    assert rated.stars == 5
    fetched = await h.stub.GetDemand(pb.DemandRef(demand_id=demand.demand_id))
    assert (fetched.status, fetched.stars, list(fetched.care_tags)) == ("confirmed", 5, ["elderly_alone"])
    assert len(h.wakes) == 5  # publish, two posts, confirm, rate: each nudged the relay


async def test_redo_and_withdraw(h: Harness) -> None:
    resident = await register(h)
    demand = await h.stub.PostDemand(demand_request(resident))
    h.apply(OrderAccepted(order_id="o-1", demand_id=demand.demand_id, member_id="m-1", via="claim"))
    h.apply(ServiceCompleted(order_id="o-1", demand_id=demand.demand_id, member_id="m-1", hours=1.0))
    redo = await h.stub.RequestRedo(pb.RequestRedoRequest(demand_id=demand.demand_id, reason="wrong_medicine"))
    assert (redo.status, redo.redo_count, redo.member_id) == ("posted", 1, "")
    withdrawn = await h.stub.WithdrawDemand(pb.WithdrawDemandRequest(demand_id=demand.demand_id,
                                                                     reason="solved_myself"))
    assert withdrawn.status == "withdrawn"
    error = await status_of(h.stub.WithdrawDemand(pb.WithdrawDemandRequest(demand_id=demand.demand_id,
                                                                           reason="solved_myself")))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "demand is withdrawn" in error.details()
    error = await status_of(h.stub.WithdrawDemand(pb.WithdrawDemandRequest(demand_id=demand.demand_id)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and error.details() == "reason: is required"


# ---- hostile input (the input policy, at the edge and in the application) ----------------------------------
async def test_control_characters_in_free_text_are_refused_naming_the_field(h: Harness) -> None:
    resident = await register(h)
    calls = [
        ("name", h.stub.RegisterResident(pb.RegisterResidentRequest(
            community_id="c-1", name="Liu\x00Yang", phone="13900001111", address="12 Well Street"))),
        ("title", h.stub.PublishMenuItem(pb.PublishMenuItemRequest(
            community_id="c-1", item_id="meds", category="medicine_delivery", title="Medicine\x00"))),
        ("description", h.stub.PostDemand(demand_request(resident, description="Please \x00fetch my medicine"))),
        ("other_text", h.stub.PostDemand(demand_request(resident, other_text="err\u202eand"))),
        ("comment", h.stub.RateService(pb.RateServiceRequest(
            demand_id="6b1a3c4e-0000-4000-8000-000000000000", stars=5, comment="thanks\x00"))),
    ]
    for name, call in calls:
        error = await status_of(call)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error.details().startswith(f"{name}: must not contain ")
    assert h.wakes == [] and h.app.menu("c-1") == []


async def test_the_application_refuses_control_characters_too(h: Harness) -> None:
    """Whoever calls the use cases (not only the gRPC edge) cannot store a NUL byte."""
    with pytest.raises(InvalidArgument, match=r"^name: must not contain control characters"):
        h.app.register_resident("c-1", "Liu\x00Yang", "13900001111", "12 Well Street")
    with pytest.raises(InvalidArgument, match=r"^title: must not contain control characters"):
        h.app.publish_menu_item("c-1", "meds", "medicine_delivery", "Medicine\x00")
    resident = h.app.register_resident("c-1", "Liu Yang", "13900001111", "12 Well Street")
    demand = h.app.post_demand(client_request_id="r1", resident_id=resident.resident_id, community_id="c-1",
                               grid_id="g-1", description="Please fetch\n\tmy medicine", urgency="normal",
                               channel="app", other_text="errand")
    # multi-line text keeps its newline and tab
    assert h.app.demand_texts(demand).description == "Please fetch\n\tmy medicine"
    with pytest.raises(InvalidArgument, match=r"^comment: must not contain control characters"):
        h.app.rate(demand.id, 5, "thanks\x1b[2J")


async def test_a_megabyte_id_is_refused_as_invalid_not_exhausting_the_metadata(h: Harness) -> None:
    resident = await register(h)
    huge = "m" * 1_000_000
    for call in (h.stub.PostDemand(demand_request(resident, menu_item_id=huge, other_text="")),
                 h.stub.RetireMenuItem(pb.RetireMenuItemRequest(community_id="c-1", item_id=huge))):
        error = await status_of(call)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and len(error.details()) < 100
    with pytest.raises(InvalidArgument, match=r"^menu_item_id: must be an id") as info:
        h.app.post_demand(client_request_id="r1", resident_id=resident.resident_id, community_id="c-1",
                          grid_id="g-1", description="Please fetch my medicine", urgency="normal", channel="app",
                          menu_item_id=huge)
    assert len(str(info.value)) < 100


async def test_a_resident_id_must_be_one_intake_issued(h: Harness) -> None:
    for wrong in ("m-liu", "c-1", "6b1a3c4e"):
        error = await status_of(h.stub.PostDemand(demand_request(pb.Resident(resident_id=wrong,
                                                                             community_id="c-1"))))
        assert (error.code(), error.details()) == (
            grpc.StatusCode.INVALID_ARGUMENT, "resident_id: must be a resident id (a uuid issued by RegisterResident)")
