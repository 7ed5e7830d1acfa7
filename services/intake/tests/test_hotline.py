"""The 12345 hotline: an operator takes a resident's call and acts for them as a grid worker would, in any community
of their county, or of their town when their token names one, and nowhere else.

At the application (the scope rules, what is stored and recorded) and over gRPC with real signed tokens (the
interceptor's role row, then intake's scope: PERMISSION_DENIED outside it, and nothing stored).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import grpc
import pytest

from sandan_contracts.events import DemandPosted, OrderAccepted, ServiceCompleted
from sandan_contracts.rpc import intake_pb2 as pb
from sandan_eventbus.auth.devissuer import LocalIssuer
from sandan_eventbus.auth.principal import PermissionDenied, Principal, acting_as
from sandan_eventbus.auth.scopes import Places
from sandan_eventbus.trace import traced
from sandan_intake.application import IntakeApplication
from sandan_intake.domain import Demand
from sandan_intake.keys import Keyring
from sandan_intake.publishing import to_contract
from sandan_intake.residents import ResidentStore
from services.intake.tests.support import Served, serving, status_of

# County taihe: town t-1 holds c-1 and c-2, town t-2 holds c-3. c-x is in no directory.
PLACES = Places.parse("""
[county]
id = "taihe"
[communities.c-1]
town = "t-1"
[communities.c-2]
town = "t-1"
[communities.c-3]
town = "t-2"
""")
DESCRIPTION = "Please fetch my medicine"
HOTLINE = "hotline_operator"
# name -> (subject, place claims)
OPERATORS: dict[str, tuple[str, dict[str, str]]] = {
    "county": ("sub-hl-county", {"county_id": "taihe"}),
    "town": ("sub-hl-t1", {"county_id": "taihe", "town_id": "t-1"}),
    "town_only": ("sub-hl-t1b", {"town_id": "t-1"}),  # a town's hotline whose token names no county
    "other_county": ("sub-hl-x", {"county_id": "elsewhere"}),
    "other_county_town": ("sub-hl-xt", {"county_id": "elsewhere", "town_id": "t-1"}),
    "nowhere": ("sub-hl-none", {}),
}
# where each operator may act (every other community of the directory, and c-x, is refused)
REACH = {"county": {"c-1", "c-2", "c-3"}, "town": {"c-1", "c-2"}, "town_only": {"c-1", "c-2"},
         "other_county": set(), "other_county_town": set(), "nowhere": set()}
COMMUNITIES = ("c-1", "c-2", "c-3", "c-x")


def operator(name: str) -> Principal:
    subject, places = OPERATORS[name]
    return Principal(subject=subject, roles=frozenset({HOTLINE}), acting_role=HOTLINE, **places)


def post(app: IntakeApplication, resident_id: str, community_id: str, key: str, **extra: Any) -> Demand:
    fields: dict[str, Any] = {"channel": "hotline", "other_text": "errand", **extra}
    return app.post_demand(client_request_id=key, resident_id=resident_id, community_id=community_id,
                           grid_id="g-1", description=DESCRIPTION, urgency="normal", **fields)


@pytest.fixture
def app() -> Iterator[IntakeApplication]:
    application = IntakeApplication(ResidentStore("memory://", Keyring.generate()), "memory://", places=PLACES)
    yield application
    application.close()


# ---- the scope, community by community ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(OPERATORS))
def test_an_operator_reaches_the_communities_of_their_county_or_town_only(app: IntakeApplication, name: str) -> None:
    """Every use case an operator may call, in every community: allowed exactly where REACH says."""
    who = operator(name)
    residents = {c: app.register_resident(c, "Liu Yang", "13900001111", "12 Well Street") for c in COMMUNITIES}
    demands = {c: post(app, residents[c].resident_id, c, f"d-{c}") for c in COMMUNITIES}  # as SYSTEM
    checks: dict[str, Callable[[str], object]] = {
        "register": lambda c: app.scope.register(who, c),
        "post": lambda c: app.scope.post(who, residents[c].resident_id, c),
        "resident": lambda c: app.scope.resident(who, app.residents.community_of(residents[c].resident_id)),
        "act_on": lambda c: app.scope.act_on(who, demands[c]),
        "read": lambda c: app.scope.read(who, demands[c]),
        "list_demands": lambda c: app.scope.list_demands(who, app.residents.community_of(residents[c].resident_id)),
        "correct": lambda c: app.scope.correct(who, app.residents.community_of(residents[c].resident_id)),
    }
    reached: dict[str, set[str]] = {}
    for check, call in checks.items():
        for community in COMMUNITIES:
            try:
                allowed = call(community)
            except PermissionDenied:
                continue
            assert isinstance(allowed, Principal) and allowed.acting_role == HOTLINE
            reached.setdefault(check, set()).add(community)
    assert {check: reached.get(check, set()) for check in checks} == dict.fromkeys(checks, REACH[name])


def test_an_operator_never_gets_what_only_a_secretary_or_the_resident_may(app: IntakeApplication) -> None:
    """Within their reach, not the history, a contact, an export or an erasure (the role's row does not name
    them, and the use cases refuse it even when called without the interceptor)."""
    liu = app.register_resident("c-1", "Liu Yang", "13900001111", "12 Well Street")
    demand = post(app, liu.resident_id, "c-1", "r-1")
    notified = app.recorder.max_notification_id()
    calls = [lambda: app.demand_history(demand.id), lambda: app.service_contact(demand.id, None),
             lambda: app.demand_contact(demand.id), lambda: app.export_resident_data(liu.resident_id),
             lambda: app.erase_resident(liu.resident_id, "resident_request"),
             lambda: app.publish_menu_item("c-1", "m", "medical", "Clinic")]
    for call in calls:
        with acting_as(operator("county")), pytest.raises(PermissionDenied):
            call()
    assert app.recorder.max_notification_id() == notified


# ---- what is stored and recorded -----------------------------------------------------------------------------------
def test_the_operator_acts_for_the_caller_and_is_recorded_as_themselves(app: IntakeApplication) -> None:
    """A town hotline registers a caller of c-2, posts for them on the hotline channel, and later withdraws one
    demand and confirms and rates another: each step recorded as the operator, on the resident's behalf."""
    hotline = operator("town")
    with acting_as(hotline), traced("call-1"):
        zhao = app.register_resident("c-2", "Zhao Min", "13900005555", "8 Pine Road")
        first = post(app, zhao.resident_id, "c-2", "call-1")
        second = post(app, zhao.resident_id, "c-2", "call-2", care_tags=["elderly_alone"])
        app.withdraw(first.id, "no_longer_needed")
    assert (zhao.community_id, zhao.registered_by) == ("c-2", None)  # a worker's registration, not the gateway's
    with traced("dispatch"):  # dispatch's facts, as the consumer applies them (as SYSTEM)
        second.record_acceptance("m-1")
        second.record_service("m-1", 1.0)
        app.save(second)
    with acting_as(hotline), traced("call-3"):
        app.confirm_completion(second.id)
        app.rate(second.id, 5, "")
    history = [(e.what, e.subject, e.role, e.on_behalf_of) for e in app.demand_history(first.id)]
    assert history == [("Posted", "sub-hl-t1", HOTLINE, zhao.resident_id),
                       ("Withdrawn", "sub-hl-t1", HOTLINE, zhao.resident_id)]
    acted = [(e.what, e.subject, e.role, e.on_behalf_of) for e in app.demand_history(second.id) if e.subject]
    assert acted == [("Posted", "sub-hl-t1", HOTLINE, zhao.resident_id),
                     ("CompletionConfirmed", "sub-hl-t1", HOTLINE, zhao.resident_id),
                     ("Rated", "sub-hl-t1", HOTLINE, zhao.resident_id)]
    # what goes on the topic: the hotline channel, whether special care is needed, nothing personal
    published = to_contract(next(e for e in app.events.get(second.id) if isinstance(e, Demand.Posted)))
    assert isinstance(published, DemandPosted)
    assert (published.channel, published.special_care, published.care_tags) == ("hotline", True, [])
    assert not {"Zhao Min", "13900005555", DESCRIPTION} & set(map(str, published.model_dump().values()))


@pytest.mark.parametrize("sent", ["app", "grid_worker", "walk_in", "hotline"])
def test_what_an_operator_posts_came_in_on_the_hotline_whatever_channel_is_sent(app: IntakeApplication,
                                                                                sent: str) -> None:
    """The channel follows from who took the demand: a client defaulting to another channel (the JSON API's
    on-behalf default is grid_worker) cannot make an operator's call look like a walk-in or an app post."""
    with acting_as(operator("county")), traced("call"):
        caller = app.register_resident("c-3", "Qian Li", "13900006666", "9 Elm Road")
        posted = post(app, caller.resident_id, "c-3", "call", channel=sent)
    published = to_contract(next(e for e in app.events.get(posted.id) if isinstance(e, Demand.Posted)))
    assert isinstance(published, DemandPosted) and published.channel == "hotline"


def test_an_operator_sees_whether_care_is_needed_not_which(app: IntakeApplication) -> None:
    """Care tags are sensitive personal information: the community's own workers see them, a hotline reaching a
    whole county sees only that special care is needed."""
    liu = app.register_resident("c-1", "Liu Yang", "13900001111", "12 Well Street")
    demand = post(app, liu.resident_id, "c-1", "r-1", care_tags=["disabled"])
    assert app.scope.sees_care_tags(operator("county"), demand) is False
    worker = Principal(subject="sub-gw", roles=frozenset({"grid_worker"}), acting_role="grid_worker",
                       community_id="c-1")
    assert app.scope.sees_care_tags(worker, demand) is True


def test_outside_their_reach_nothing_is_stored(app: IntakeApplication) -> None:
    """A town t-1 hotline and a caller of c-3 (town t-2): registering, posting and acting are all refused, and the
    store is as it was."""
    liu = app.register_resident("c-3", "Liu Yang", "13900001111", "12 Well Street")
    demand = post(app, liu.resident_id, "c-3", "r-1")
    notified, record = app.recorder.max_notification_id(), app.residents.get(liu.resident_id)
    calls = [lambda: app.register_resident("c-3", "Wang Wei", "13900002222", "3 Lotus Lane"),
             lambda: post(app, liu.resident_id, "c-3", "r-2"),
             lambda: post(app, liu.resident_id, "c-1", "r-3"),  # naming a community of their town instead
             lambda: app.withdraw(demand.id, "no_longer_needed"), lambda: app.confirm_completion(demand.id),
             lambda: app.rate(demand.id, 1, ""), lambda: app.request_redo(demand.id, "not_solved"),
             lambda: app.get_demand(demand.id), lambda: app.resident_demands_page(liu.resident_id),
             lambda: app.correct_resident(liu.resident_id, {"phone": "13900009999"})]
    for call in calls:
        with acting_as(operator("town")), pytest.raises(PermissionDenied):
            call()
    assert app.recorder.max_notification_id() == notified
    assert app.residents.get(liu.resident_id) == record


# ---- over gRPC: the role's row, then the scope ---------------------------------------------------------------------
@pytest.fixture
async def served(local_issuer: LocalIssuer) -> AsyncIterator[Served]:
    app = IntakeApplication(ResidentStore("memory://", Keyring.generate()), "memory://", places=PLACES)
    async with serving(local_issuer, app) as served:
        yield served


def as_operator(served: Served, name: str) -> Any:
    subject, places = OPERATORS[name]
    return served.as_(subject, [HOTLINE], **places)


def register_request(community_id: str) -> pb.RegisterResidentRequest:
    return pb.RegisterResidentRequest(community_id=community_id, name="Chen Jie", phone="13800003333",
                                      address="5 Bamboo Lane")


def demand_request(resident_id: str, community_id: str, key: str) -> pb.PostDemandRequest:
    return pb.PostDemandRequest(client_request_id=key, resident_id=resident_id, community_id=community_id,
                                grid_id="g-1", other_text="errand", description=DESCRIPTION, urgency="normal",
                                channel="hotline", care_tags=["elderly_alone"])


async def test_over_grpc_a_town_hotline_in_its_town_and_refused_in_another(served: Served) -> None:
    hotline = as_operator(served, "town")
    chen = await hotline.RegisterResident(register_request("c-2"))
    posted = await hotline.PostDemand(demand_request(chen.resident_id, "c-2", "call-1"))
    assert (posted.community_id, posted.channel, posted.status) == ("c-2", "hotline", "posted")
    assert (posted.special_care, list(posted.care_tags)) == (True, [])  # as GetDemand gives it to them
    listed = await hotline.ListResidentDemands(pb.ListResidentDemandsRequest(resident_id=chen.resident_id))
    assert [d.demand_id for d in listed.demands] == [posted.demand_id]
    corrected = await hotline.CorrectResident(pb.CorrectResidentRequest(resident_id=chen.resident_id,
                                                                        phone="13800004444"))
    assert corrected.resident_id == chen.resident_id
    served.apply(OrderAccepted(order_id="o-1", demand_id=posted.demand_id, member_id="m-1", via="claim"))
    served.apply(ServiceCompleted(order_id="o-1", demand_id=posted.demand_id, member_id="m-1", hours=1.0))
    redone = await hotline.RequestRedo(pb.RequestRedoRequest(demand_id=posted.demand_id, reason="not_solved"))
    assert (redone.status, redone.redo_count) == ("posted", 1)
    history = await served.as_("sub-sec", ["branch_secretary"], community_id="c-2").GetDemandHistory(
        pb.DemandRef(demand_id=posted.demand_id))
    assert [(e.what, e.subject, e.role, e.on_behalf_of) for e in history.entries if e.subject] == [
        ("Posted", "sub-hl-t1", HOTLINE, chen.resident_id), ("RedoRequested", "sub-hl-t1", HOTLINE, chen.resident_id)]

    # a caller of c-3 (town t-2), registered by the county's hotline: the town's hotline is refused every step
    county = as_operator(served, "county")
    li = await county.RegisterResident(register_request("c-3"))
    theirs = await county.PostDemand(demand_request(li.resident_id, "c-3", "call-2"))
    before = served.stored()
    refused = [hotline.RegisterResident(register_request("c-3")),
               hotline.PostDemand(demand_request(li.resident_id, "c-3", "call-3")),
               hotline.GetDemand(pb.DemandRef(demand_id=theirs.demand_id)),
               hotline.WithdrawDemand(pb.WithdrawDemandRequest(demand_id=theirs.demand_id, reason="no_longer_needed")),
               hotline.ConfirmCompletion(pb.DemandRef(demand_id=theirs.demand_id)),
               hotline.RateService(pb.RateServiceRequest(demand_id=theirs.demand_id, stars=1)),
               hotline.ListResidentDemands(pb.ListResidentDemandsRequest(resident_id=li.resident_id)),
               hotline.CorrectResident(pb.CorrectResidentRequest(resident_id=li.resident_id, phone="13800005555"))]
    for call in refused:
        error = await status_of(call)
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED, error.details()
        assert "outside their scope" in error.details()
    # another county's hotline reaches nothing here
    error = await status_of(as_operator(served, "other_county").GetDemand(pb.DemandRef(demand_id=posted.demand_id)))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert served.stored() == before


async def test_over_grpc_the_methods_outside_the_row_are_refused_by_role(served: Served) -> None:
    county = as_operator(served, "county")
    chen = await county.RegisterResident(register_request("c-1"))
    posted = await county.PostDemand(demand_request(chen.resident_id, "c-1", "call-1"))
    before = served.stored()
    for method, request in (("GetDemandHistory", pb.DemandRef(demand_id=posted.demand_id)),
                            ("GetServiceContact", pb.ServiceContactRequest(demand_id=posted.demand_id)),
                            ("ExportResidentData", pb.ResidentRef(resident_id=chen.resident_id)),
                            ("EraseResident", pb.EraseResidentRequest(resident_id=chen.resident_id,
                                                                      reason="resident_request")),
                            ("PublishMenuItem", pb.PublishMenuItemRequest(community_id="c-1", item_id="x",
                                                                          category="medical", title="X"))):
        error = await status_of(getattr(county, method)(request))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        assert error.details().startswith(f"{method} is not allowed for roles {HOTLINE}"), error.details()
    assert served.stored() == before
