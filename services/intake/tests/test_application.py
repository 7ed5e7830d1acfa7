"""Use cases through IntakeApplication, each run on memory, SQLite and PostgreSQL stores."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import eventsourcing.domain
import pytest
from eventsourcing.persistence import IntegrityError, Tracking

from sandan_contracts import Envelope, Event
from sandan_contracts.events import (
    DemandPosted,
    OrderAccepted,
    OrderCancelled,
    OrderDeclined,
    ServiceCompleted,
    ServiceRated,
)
from sandan_eventbus.errors import FailedPrecondition, InvalidArgument, NotFound
from sandan_intake.application import IntakeApplication
from sandan_intake.domain import menu_id_for
from sandan_intake.keys import Keyring
from sandan_intake.publishing import to_contract
from sandan_intake.residents import ResidentRecord as Resident
from sandan_intake.residents import ResidentStore

STORES = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


class Clock:
    """A hand-moved clock, so deadlines are exact."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2025, 3, 1, 8, 0, tzinfo=UTC))


@pytest.fixture
def store_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    kind = getattr(request, "param", "memory")
    if kind == "memory":
        yield "memory://"
    elif kind == "sqlite":
        yield f"sqlite:///{tmp_path}/intake.db"
    else:
        yield request.getfixturevalue("postgres_schema_url")  # root conftest: a schema of its own


@pytest.fixture
def app(store_url: str, clock: Clock) -> Iterator[IntakeApplication]:
    # The residents' tables live beside the events: same file, or same PostgreSQL schema.
    application = IntakeApplication(ResidentStore(store_url, Keyring.generate()), store_url, clock=clock)
    try:
        yield application
    finally:
        application.close()


pytestmark = pytest.mark.parametrize("store_url", STORES, indirect=True)

DESCRIPTION = "Water leaks under the kitchen sink"
ORDERS = "dispatch.orders.v1"


def resident(app: IntakeApplication, community: str = "c-1") -> Resident:
    return app.register_resident(community, "Wang Fang", "+86 138-0000-0000", "3 Lotus Lane, Taihe")


def post(app: IntakeApplication, who: Resident, request: str = "req-1", **overrides: Any) -> Any:
    fields: dict[str, Any] = {
        "client_request_id": request, "resident_id": who.resident_id, "community_id": who.community_id,
        "grid_id": "g-1", "description": DESCRIPTION, "urgency": "urgent", "channel": "app",
        "other_text": "plumbing", "care_tags": ["elderly_alone"],
    }
    fields.update(overrides)
    return app.post_demand(**fields)


def fact(event: Event, event_id: str = "dispatch:1") -> tuple[Envelope, Event]:
    envelope = Envelope(event_id=event_id, type=event.TYPE, schema_version=event.VERSION,
                        occurred_at="2025-03-01T08:00:00Z", producer="dispatch", key=event.key(),
                        correlation_id="corr-1", data=event.model_dump(mode="json"))
    return envelope, event


def apply(app: IntakeApplication, event: Event, offset: int) -> None:
    """What the Inbox does: decide, then save with the Kafka position in one transaction."""
    changed = app.on_order_event(*fact(event))
    app.save_tracked(*changed, tracking=Tracking(f"kafka:{ORDERS}:0", offset))


def served_demand(app: IntakeApplication, member: str = "m-1") -> Any:
    demand = post(app, resident(app))
    apply(app, OrderAccepted(order_id="o-1", demand_id=str(demand.id), member_id=member, via="claim"), 1)
    apply(app, ServiceCompleted(order_id="o-1", demand_id=str(demand.id), member_id=member, hours=2), 2)
    return app.get_demand(demand.id)


def notifications(app: IntakeApplication) -> list[Any]:
    return app.recorder.select_notifications(start=1, limit=app.log_section_size)


def published(app: IntakeApplication) -> list[Event]:
    out = []
    for n in notifications(app):
        contract = to_contract(app.mapper.to_domain_event(n))
        if contract is not None:
            out.append(contract)
    return out


# ---- residents ------------------------------------------------------------------------------------
def test_register_and_get_resident(app: IntakeApplication) -> None:
    who = resident(app)
    assert app.residents.get(who.resident_id) == who
    assert who.name == "Wang Fang" and who.community_id == "c-1"
    with pytest.raises(NotFound):
        app.residents.get("00000000-0000-0000-0000-000000000000")
    with pytest.raises(InvalidArgument, match="phone"):
        app.register_resident("c-1", "Li", "call me", "x")
    with pytest.raises(InvalidArgument, match="name"):
        app.register_resident("c-1", " ", "12345", "x")


# ---- menu ---------------------------------------------------------------------------------------
def test_menu_publish_update_retire(app: IntakeApplication) -> None:
    assert app.menu("c-1") == []
    app.publish_menu_item("c-1", "repair", "home_repair", "Small repairs", {"urgent": 3600})
    app.publish_menu_item("c-1", "clinic", "medical", "Free clinic")
    app.publish_menu_item("c-1", "repair", "home_repair", "Repairs at home", {"urgent": 3600})
    assert [(i.item_id, i.title) for i in app.menu("c-1")] == [("repair", "Repairs at home"),
                                                               ("clinic", "Free clinic")]
    assert app.retire_menu_item("c-1", "clinic").retired
    assert [i.retired for i in app.menu("c-1")] == [False, True]
    assert app.menu("c-2") == []
    with pytest.raises(NotFound):
        app.retire_menu_item("c-2", "clinic")
    with pytest.raises(NotFound):
        app.retire_menu_item("c-1", "nope")


# ---- posting ------------------------------------------------------------------------------------
def test_post_off_menu_uses_default_deadline(app: IntakeApplication, clock: Clock) -> None:
    demand = post(app, resident(app))
    assert demand.category == "other" and demand.status == "posted"
    assert demand.deadline_seconds == 7200
    assert demand.due_at == clock.now + timedelta(hours=2)
    again = app.get_demand(str(demand.id))
    texts = app.demand_texts(again)
    assert (texts.description, texts.care_tags, again.special_care, again.due_at) == (
        DESCRIPTION, ["elderly_alone"], True, demand.due_at)


def test_post_from_menu_uses_its_deadline(app: IntakeApplication, clock: Clock) -> None:
    app.publish_menu_item("c-1", "repair", "home_repair", "Small repairs", {"routine": 3 * 86400})
    demand = post(app, resident(app), urgency="routine", other_text=None, menu_item_id="repair")
    assert (demand.category, demand.menu_item_id, demand.deadline_seconds) == ("home_repair", "repair", 259200)
    assert demand.due_at == clock.now + timedelta(days=3)


def test_post_is_idempotent(app: IntakeApplication, clock: Clock) -> None:
    who = resident(app)
    first = post(app, who)
    clock.advance(minutes=5)
    retried = post(app, who)
    assert retried.id == first.id and retried.due_at == first.due_at
    assert post(app, who, request="req-2").id != first.id
    posted = [e for e in published(app) if isinstance(e, DemandPosted)]
    assert [p.demand_id for p in posted].count(str(first.id)) == 1
    assert len(posted) == 2


def test_post_refusals(app: IntakeApplication) -> None:
    who = resident(app)
    with pytest.raises(NotFound, match="resident"):
        post(app, Resident("00000000-0000-0000-0000-000000000000", "c-1", "", "", ""))
    with pytest.raises(InvalidArgument, match="community_id"):
        post(app, who, community_id="c-2")
    with pytest.raises(InvalidArgument, match="urgency: must be one of urgent, normal, routine"):
        post(app, who, urgency="asap")
    with pytest.raises(InvalidArgument, match="description"):
        post(app, who, description="help")
    with pytest.raises(NotFound, match="menu item"):
        post(app, who, other_text=None, menu_item_id="repair")
    app.publish_menu_item("c-1", "repair", "home_repair", "Small repairs")
    app.retire_menu_item("c-1", "repair")
    with pytest.raises(FailedPrecondition, match="retired"):
        post(app, who, other_text=None, menu_item_id="repair")
    assert published(app) == []


# ---- the resident's commands --------------------------------------------------------------------
def test_withdraw(app: IntakeApplication) -> None:
    demand = post(app, resident(app))
    assert app.withdraw(str(demand.id), "solved_myself").status == "withdrawn"
    assert app.get_demand(demand.id).status == "withdrawn"
    with pytest.raises(FailedPrecondition, match="demand is withdrawn"):
        app.withdraw(demand.id, "solved_myself")


def test_served_confirmed_rated(app: IntakeApplication) -> None:
    demand = served_demand(app, "m-9")
    assert (demand.status, demand.member_id, demand.served_hours) == ("served", "m-9", 2.0)
    assert app.confirm_completion(demand.id).status == "confirmed"
    rated = app.rate(demand.id, 5, "Fixed quickly, thank you")
    assert (rated.stars, rated.status) == (5, "confirmed")
    with pytest.raises(FailedPrecondition, match="already rated"):
        app.rate(demand.id, 4)
    with pytest.raises(FailedPrecondition, match="demand is confirmed"):
        app.request_redo(demand.id, "not_fixed")


def test_rate_refused_before_service(app: IntakeApplication) -> None:
    demand = post(app, resident(app))
    with pytest.raises(FailedPrecondition, match="demand is posted"):
        app.rate(demand.id, 5)
    with pytest.raises(FailedPrecondition, match="demand is posted"):
        app.confirm_completion(demand.id)


def test_request_redo_reopens_with_new_deadline(app: IntakeApplication, clock: Clock) -> None:
    demand = served_demand(app, "m-1")
    clock.advance(hours=5)
    redone = app.request_redo(demand.id, "still_leaking")
    assert (redone.status, redone.member_id, redone.redo_count) == ("posted", None, 1)
    assert redone.due_at == clock.now + timedelta(hours=2)
    contract = published(app)[-1]
    assert (contract.TYPE, contract.redo_count, contract.member_id) == ("RedoRequested", 1, "m-1")


def test_get_demand_unknown(app: IntakeApplication) -> None:
    with pytest.raises(NotFound):
        app.get_demand("00000000-0000-0000-0000-000000000000")
    with pytest.raises(InvalidArgument, match="demand_id"):
        app.get_demand("not-a-uuid")
    app.publish_menu_item("c-1", "repair", "home_repair", "Small repairs")
    with pytest.raises(NotFound):  # another aggregate's id is not a demand
        app.get_demand(menu_id_for("c-1"))


def test_service_contact_only_for_the_holder(app: IntakeApplication) -> None:
    demand = post(app, resident(app))
    with pytest.raises(FailedPrecondition, match="demand is posted"):
        app.service_contact(demand.id, "m-1")
    apply(app, OrderAccepted(order_id="o-1", demand_id=str(demand.id), member_id="m-1", via="dispatch"), 1)
    contact = app.service_contact(str(demand.id), "m-1")
    assert (contact.name, contact.phone, contact.address, contact.description) == (
        "Wang Fang", "+86 138-0000-0000", "3 Lotus Lane, Taihe", DESCRIPTION)
    with pytest.raises(FailedPrecondition, match="does not hold"):
        app.service_contact(demand.id, "m-2")


# ---- consumer policy ----------------------------------------------------------------------------
def test_policy_with_tracking_applies_once(app: IntakeApplication) -> None:
    demand = post(app, resident(app))
    accepted = OrderAccepted(order_id="o-1", demand_id=str(demand.id), member_id="m-1", via="claim")
    tracking = Tracking(f"kafka:{ORDERS}:3", 17)
    # Two deliveries of the same record, both decided from the same state (a redelivery race).
    first = app.on_order_event(*fact(accepted))
    second = app.on_order_event(*fact(accepted))
    assert not app.already_processed(tracking)
    app.save_tracked(*first, tracking=tracking)
    assert app.already_processed(tracking)
    with pytest.raises(IntegrityError):
        app.save_tracked(*second, tracking=tracking)
    # A later redelivery decides nothing new and its position is already there.
    with pytest.raises(IntegrityError):
        app.save_tracked(*app.on_order_event(*fact(accepted)), tracking=tracking)
    topics = [n.topic for n in notifications(app)]
    assert sum(t.endswith("Demand.AcceptanceRecorded") for t in topics) == 1
    assert app.get_demand(demand.id).status == "accepted"


def test_policy_decline_and_other_facts(app: IntakeApplication) -> None:
    demand = post(app, resident(app))
    did = str(demand.id)
    apply(app, OrderAccepted(order_id="o-1", demand_id=did, member_id="m-1", via="claim"), 1)
    apply(app, OrderDeclined(order_id="o-1", demand_id=did, member_id="m-1", reason="too_far"), 2)
    assert (app.get_demand(did).status, app.get_demand(did).member_id) == ("posted", None)
    assert app.on_order_event(*fact(OrderCancelled(order_id="o-1", demand_id=did, reason="duplicate"))) == []
    with pytest.raises(NotFound):
        app.on_order_event(*fact(OrderAccepted(order_id="o-2", demand_id="00000000-0000-0000-0000-000000000001",
                                               member_id="m-1", via="claim")))
    with pytest.raises(FailedPrecondition, match="demand is posted"):
        app.on_order_event(*fact(ServiceCompleted(order_id="o-1", demand_id=did, member_id="m-1", hours=1)))


# ---- publishing ---------------------------------------------------------------------------------
def test_published_events_carry_no_personal_data(app: IntakeApplication) -> None:
    who = resident(app)
    app.publish_menu_item("c-1", "repair", "home_repair", "Small repairs")
    withdrawn = post(app, who, request="req-0")
    app.withdraw(withdrawn.id, "solved_myself")
    demand = served_demand(app, "m-1")
    app.rate(demand.id, 4, "Kind and quick")
    app.confirm_completion(demand.id)
    contracts = published(app)
    assert [c.TYPE for c in contracts] == ["DemandPosted", "DemandWithdrawn", "DemandPosted",
                                           "ServiceRated", "CompletionConfirmed"]
    posted = contracts[0]
    data = json.loads(posted.model_dump_json())
    assert not {"name", "phone", "address", "description", "other_text", "resident_id"} & set(data)
    assert posted.due_at.utcoffset() == timedelta(0)
    everything = " ".join(c.model_dump_json() for c in contracts)
    for secret in (who.name, who.phone, who.address, DESCRIPTION, "Kind and quick", "plumbing", who.resident_id):
        assert secret not in everything
    rated = contracts[3]
    assert isinstance(rated, ServiceRated)
    assert (rated.member_id, rated.stars, rated.has_comment) == ("m-1", 4, True)
    assert contracts[4].member_id == "m-1"


# ---- a resident's demands ------------------------------------------------------------------------
@pytest.fixture
def ticking(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The events' timestamps, a second apart, so "newest first" is exact."""
    clock = Clock(datetime(2025, 3, 1, 8, 0, tzinfo=UTC))

    def tick() -> datetime:
        clock.advance(seconds=1)
        return clock.now

    monkeypatch.setattr(eventsourcing.domain, "datetime_now_with_tzinfo", tick)
    return clock


def listed(app: IntakeApplication, resident_id: str, limit: int = 20, before: str | None = None) -> list[str]:
    views, _ = app.resident_demands_page(resident_id, limit, before)
    return [str(v.demand.id) for v in views]


def test_a_residents_demands_newest_first_in_pages(app: IntakeApplication, ticking: Clock) -> None:
    wang, li = resident(app), resident(app)
    posted = [str(post(app, wang, request=f"req-{i}").id) for i in range(5)]
    others = str(post(app, li, request="req-0").id)
    assert others not in posted
    assert listed(app, wang.resident_id) == posted[::-1]
    assert listed(app, li.resident_id) == [others]
    first, more = app.resident_demands_page(wang.resident_id, 2)
    assert [str(v.demand.id) for v in first] == posted[:2:-1] and more == posted[3]
    second, more = app.resident_demands_page(wang.resident_id, 2, more)
    assert [str(v.demand.id) for v in second] == posted[2:0:-1] and more == posted[1]
    last, more = app.resident_demands_page(wang.resident_id, 2, more)
    assert [str(v.demand.id) for v in last] == posted[:1] and more is None
    # a retried post lists the demand once; as GetDemand gives it (tags to the resident's side: here SYSTEM)
    assert str(post(app, wang, request="req-4").id) == posted[4]
    views, _ = app.resident_demands_page(wang.resident_id)
    assert len(views) == 5 and views[0].care_tags == ["elderly_alone"] and views[0].demand.status == "posted"
    app.withdraw(posted[4], "solved_myself")
    assert app.resident_demands_page(wang.resident_id, 1)[0][0].demand.status == "withdrawn"


def test_listing_refusals(app: IntakeApplication) -> None:
    wang = resident(app)
    demand = str(post(app, wang).id)
    assert listed(app, resident(app).resident_id) == []  # registered, nothing posted
    for limit in (0, -1, 101):
        with pytest.raises(InvalidArgument, match="limit"):
            app.resident_demands_page(wang.resident_id, limit)
    with pytest.raises(InvalidArgument, match="resident_id"):
        app.resident_demands_page("m-1")
    with pytest.raises(NotFound):
        app.resident_demands_page("00000000-0000-0000-0000-000000000000")
    with pytest.raises(InvalidArgument, match="before"):
        app.resident_demands_page(wang.resident_id, before="not-a-uuid")
    with pytest.raises(InvalidArgument, match="before"):  # a demand of another resident is no cursor here
        app.resident_demands_page(resident(app).resident_id, before=demand)


def test_an_erased_residents_demands_stay_listed_as_erased(app: IntakeApplication) -> None:
    wang = resident(app)
    demand = str(post(app, wang).id)
    app.erase_resident(wang.resident_id, "resident_request")
    views, _ = app.resident_demands_page(wang.resident_id)
    assert [str(v.demand.id) for v in views] == [demand]
    view = app.view(app.get_demand(demand))  # what GetDemand gives
    assert views[0].resident_erased and views[0].care_tags == []  # the tags were given when posted
    assert (views[0].resident_erased, views[0].care_tags, views[0].texts_shredded, views[0].demand.status) == (
        view.resident_erased, view.care_tags, view.texts_shredded, view.demand.status)
