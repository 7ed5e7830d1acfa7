"""The dispatch aggregates on their own: no store, no clock, no I/O.

Each test drives an aggregate through commands and looks at the events it *would* save
(`collect_events()`), and at the refusal (class and message) when a command is not allowed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sandan_dispatch.domain import Activity, GridGroup, Member, Order, Unit
from sandan_dispatch.keys import CONTEXT
from sandan_eventbus.errors import FailedPrecondition, InvalidArgument
from sandan_eventbus.sealing import SEALED, Sealer, Unreadable, new_data_key

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
DAY = 24 * 3600


def member(member_id: str = "m1", *, grid: str = "g1", community: str = "c1", teams: tuple[str, ...] = ()) -> Member:
    m = Member(member_id=member_id, unit_id="u1", community_id=community, grid_id=grid, teams=list(teams),
               skills=["first_aid"])
    m.collect_events()
    return m


def order(demand_id: str = "d1", *, grid: str = "g1", community: str = "c1", category: str = "medical",
          due_at: datetime = T0 + timedelta(days=1)) -> Order:
    o = Order(demand_id=demand_id, community_id=community, grid_id=grid, category=category, urgency="normal",
              special_care=True, due_at=due_at, deadline_seconds=DAY)
    o.collect_events()
    return o


def names(aggregate: Any) -> list[str]:
    """The qualified names of the events the aggregate has pending, and clears them."""
    return [type(e).__qualname__ for e in aggregate.collect_events()]


def pending(aggregate: Any) -> list[Any]:
    return list(aggregate.collect_events())


def refused(cls: type[Exception], match: str) -> Any:
    return pytest.raises(cls, match=match)


# ---- ids ---------------------------------------------------------------------------------------
def test_ids_are_deterministic_and_distinct_per_kind() -> None:
    assert Order.create_id("d1") == Order.create_id("d1") == order("d1").id
    assert Order.create_id("d1") != Order.create_id("d2")
    # the same key in different kinds never collides
    assert len({Order.create_id("x"), Member.create_id("x"), Unit.create_id("x"), GridGroup.create_id("x")}) == 4


def test_opened_order_starts_open_at_community_level() -> None:
    o = Order(demand_id="d1", community_id="c1", grid_id="g1", category="medical", urgency="urgent",
              special_care=False, due_at=T0, deadline_seconds=3600)
    assert names(o) == ["Order.Opened"]
    assert (o.status, o.level, o.member_id, o.redo_count, o.hours) == ("open", "community", None, 0, 0.0)
    assert o.order_id == str(Order.create_id("d1"))


# ---- dispatch -> accept ------------------------------------------------------------------------
def test_dispatch_then_accept_via_dispatch() -> None:
    o, m = order(), member()
    o.dispatch(m, "branch")
    [e] = pending(o)
    assert type(e).__qualname__ == "Order.Dispatched"
    assert (e.demand_id, e.member_id, e.dispatched_by) == ("d1", "m1", "branch")
    assert (o.status, o.member_id) == ("dispatched", "m1")

    o.accept(m)
    [e] = pending(o)
    assert type(e).__qualname__ == "Order.Accepted"
    assert (e.member_id, e.via) == ("m1", "dispatch")
    assert (o.status, o.member_id) == ("accepted", "m1")


def test_dispatch_to_the_same_member_again_is_no_new_fact() -> None:
    o, m = order(), member()
    o.dispatch(m, "branch")
    names(o)
    o.dispatch(m, "grid_leader")
    assert names(o) == []


def test_redispatch_to_another_member_and_dispatch_of_an_offered_order() -> None:
    o, m1, m2 = order(), member("m1"), member("m2")
    o.offer([])
    o.dispatch(m1, "branch")
    o.dispatch(m2, "grid_leader")
    assert names(o) == ["Order.Offered", "Order.Dispatched", "Order.Dispatched"]
    assert o.member_id == "m2"


def test_only_the_dispatched_member_may_accept() -> None:
    o = order()
    o.dispatch(member("m1"), "branch")
    names(o)
    with refused(FailedPrecondition, "order is dispatched to another member"):
        o.accept(member("m2", teams=("medical",)))
    assert names(o) == [] and o.status == "dispatched"


def test_a_dispatched_member_who_has_left_cannot_accept() -> None:
    """Leaving ends a member's service: the claim path refuses a member who left (may_be_claimed_by),
    and the dispatch path must too, or a departed member ends up holding the order."""
    o, m = order(), member()
    o.dispatch(m, "branch")
    names(o)
    m.leave("transferred")
    with refused(FailedPrecondition, "^member m1 has left$"):
        o.accept(m)
    assert names(o) == [] and o.status == "dispatched"


def test_dispatch_refused_for_a_member_who_left_or_of_another_community() -> None:
    o, gone = order(), member("m9")
    gone.leave("moved_away")
    with refused(FailedPrecondition, "member m9 has left"):
        o.dispatch(gone, "branch")
    with refused(FailedPrecondition, "member m2 serves community c2, not c1"):
        o.dispatch(member("m2", community="c2"), "branch")
    assert names(o) == []


@pytest.mark.parametrize("state", ["accepted", "completed", "cancelled"])
def test_dispatch_and_offer_refused_once_past_the_desk(state: str) -> None:
    o, m = order(), member()
    _drive(o, m, state)
    with refused(FailedPrecondition, f"order is {state}"):
        o.dispatch(member("m2"), "branch")
    with refused(FailedPrecondition, f"order is {state}"):
        o.offer(["medical"])
    assert names(o) == []


def _drive(o: Order, m: Member, state: str) -> None:
    if state in ("accepted", "completed"):
        o.dispatch(m, "branch")
        o.accept(m)
    if state == "completed":
        o.complete(m.member_id, 1.5, "")
    if state == "cancelled":
        o.cancel("demand_withdrawn")
    names(o)


# ---- offer -> claim ----------------------------------------------------------------------------
def test_offer_defaults_to_the_category_team_and_dedups() -> None:
    o = order(category="legal_aid")
    o.offer([])
    [e] = pending(o)
    assert type(e).__qualname__ == "Order.Offered"
    assert (e.grid_id, e.teams) == ("g1", ["legal_aid"])
    o.offer(["medical", "medical", "patrol"])
    assert pending(o)[0].teams == ["medical", "patrol"]
    assert (o.status, o.offered_teams, o.member_id) == ("offered", ["medical", "patrol"], None)


def test_offer_takes_a_dispatched_order_back_to_the_pool() -> None:
    o = order()
    o.dispatch(member(), "branch")
    o.offer([])
    assert (o.status, o.member_id) == ("offered", None)


def test_claim_by_a_member_of_the_order_grid() -> None:
    o = order(grid="g1", category="medical")
    o.offer(["medical"])
    names(o)
    neighbour = member("m1", grid="g1", teams=())  # no matching team, but the same grid
    assert o.may_be_claimed_by(neighbour)
    o.accept(neighbour)
    [e] = pending(o)
    assert (type(e).__qualname__, e.member_id, e.via) == ("Order.Accepted", "m1", "claim")


def test_claim_by_a_member_of_an_offered_team_from_another_grid() -> None:
    o = order(grid="g1")
    o.offer(["medical", "legal_aid"])
    names(o)
    lawyer = member("m2", grid="g7", teams=("legal_aid",))
    assert o.may_be_claimed_by(lawyer)
    o.accept(lawyer)
    assert (o.status, o.member_id) == ("accepted", "m2")
    assert pending(o)[0].via == "claim"


def test_claim_refused_outside_grid_and_teams_or_community_or_after_leaving() -> None:
    o = order(grid="g1")
    o.offer(["medical"])
    names(o)
    stranger = member("m3", grid="g2", teams=("patrol",))
    assert not o.may_be_claimed_by(stranger)
    with refused(FailedPrecondition, "member m3 is not in grid g1 or a team of medical"):
        o.accept(stranger)
    other_community = member("m4", grid="g1", community="c2", teams=("medical",))
    assert not o.may_be_claimed_by(other_community)
    with refused(FailedPrecondition, "member m4 is not in grid g1"):
        o.accept(other_community)
    gone = member("m5", grid="g1", teams=("medical",))
    gone.leave("retired")
    assert not o.may_be_claimed_by(gone)
    with refused(FailedPrecondition, "member m5"):
        o.accept(gone)
    assert names(o) == [] and o.status == "offered"


def test_first_claim_wins_and_the_second_is_told_why() -> None:
    o = order()
    o.offer(["medical"])
    first, second = member("m1"), member("m2", teams=("medical",))
    o.accept(first)
    names(o)
    with refused(FailedPrecondition, "^order already accepted by another member$"):
        o.accept(second)
    with refused(FailedPrecondition, "^order already accepted by you$"):
        o.accept(first)
    assert names(o) == [] and o.member_id == "m1"


@pytest.mark.parametrize("state", ["open", "completed", "cancelled"])
def test_accept_refused_when_neither_dispatched_nor_offered(state: str) -> None:
    o, m = order(), member()
    _drive(o, m, state)
    if state == "completed":  # the completing member is told "completed", not "accepted"
        with refused(FailedPrecondition, "^order is completed by member m1$"):
            o.accept(m)
    else:
        with refused(FailedPrecondition, f"^order is {state}$"):
            o.accept(m)
    assert names(o) == []


# ---- decline -----------------------------------------------------------------------------------
def test_decline_of_a_dispatched_order_goes_to_the_pool_of_the_category_team() -> None:
    o, m = order(category="medical"), member()
    o.dispatch(m, "branch")
    names(o)
    o.decline("m1", "unavailable")
    [e] = pending(o)
    assert type(e).__qualname__ == "Order.Declined"
    assert (e.member_id, e.reason, e.teams) == ("m1", "unavailable", ["medical"])
    assert (o.status, o.member_id, o.offered_teams) == ("offered", None, ["medical"])
    # back in the pool: anyone eligible may claim it now
    o.accept(member("m2", grid="g9", teams=("medical",)))
    assert o.member_id == "m2"


def test_decline_after_claim_keeps_the_offered_teams() -> None:
    o, m = order(), member()
    o.offer(["patrol", "mediation"])
    o.accept(m)
    o.decline("m1", "too_far")
    assert (o.status, o.offered_teams) == ("offered", ["patrol", "mediation"])


def test_decline_refusals() -> None:
    o = order()
    with refused(FailedPrecondition, "^order is open$"):
        o.decline("m1", "unavailable")
    o.offer([])
    with refused(FailedPrecondition, "^order is offered$"):
        o.decline("m1", "unavailable")
    o.dispatch(member("m1"), "branch")
    names(o)
    with refused(FailedPrecondition, "order is held by another member, not m2"):
        o.decline("m2", "unavailable")
    assert names(o) == []


# ---- complete ----------------------------------------------------------------------------------
def test_complete_records_hours_and_sealed_notes() -> None:
    o, m = order(), member()
    _drive(o, m, "accepted")
    seal = Sealer(CONTEXT, "d1", new_data_key())
    o.complete("m1", 2.5, "changed the light bulb", seal)
    [e] = pending(o)
    assert type(e).__qualname__ == "Order.Completed"
    assert (e.member_id, e.hours) == ("m1", 2.5)
    assert e.notes.startswith(SEALED) and "light bulb" not in e.notes  # the event holds ciphertext only
    assert seal.open("notes", e.notes) == "changed the light bulb" == seal.open("notes", o.notes)
    with pytest.raises(Unreadable):
        Sealer(CONTEXT, "d2", seal.key).open("notes", e.notes)  # bound to its demand
    assert (o.status, o.hours) == ("completed", 2.5)


def test_notes_need_a_sealer_and_empty_notes_none() -> None:
    o, m = order(), member()
    _drive(o, m, "accepted")
    with refused(FailedPrecondition, "cannot keep the notes: no key to seal it with"):
        o.complete("m1", 1.0, "a text with nowhere safe to go")
    assert names(o) == []
    o.complete("m1", 1.0, "")
    [e] = pending(o)
    assert e.notes == "" and o.notes == ""


def test_texts_shredded_is_recorded_once_and_refuses_new_texts() -> None:
    o, m = order(), member()
    seal = Sealer(CONTEXT, "d1", new_data_key())
    o.escalate("no_capacity", [], T0, "call the town", seal)
    _drive(o, m, "accepted")
    o.collect_events()
    with refused(InvalidArgument, "cause: must be one of retention, erasure"):
        o.record_texts_shredded("whim")
    o.record_texts_shredded("erasure")
    [e] = pending(o)
    assert (type(e).__qualname__, e.demand_id, e.cause, e.fields) == ("Order.TextsShredded", "d1", "erasure",
                                                                      ["note"])
    o.record_texts_shredded("retention")  # intake may shred for both causes: nothing more to record
    assert names(o) == [] and o.texts_shredded
    with refused(FailedPrecondition, "cannot keep the notes: the texts of demand d1 were shredded"):
        o.complete("m1", 1.0, "more about her", seal)
    o.complete("m1", 1.0, "")  # the service itself is still recorded
    assert names(o) == ["Order.Completed"]


def test_events_stored_before_sealing_are_read_as_legacy_plaintext() -> None:
    completed = {"demand_id": "d1", "member_id": "m1", "hours": 1.0, "notes": "took her to the clinic"}
    Order.Completed.upcast_v1_v2(completed)
    assert completed["notes"] == "plain:took her to the clinic"
    assert Sealer(CONTEXT, "d1", new_data_key()).open("notes", completed["notes"]) == "took her to the clinic"
    for old in ({"notes": "  "}, {"notes": ""}):
        Order.Completed.upcast_v1_v2(old)
        assert old["notes"] == ""  # published has_notes stays False, as before
    escalated: dict[str, Any] = {"reason": "no_capacity"}  # from before escalations had a note
    Order.Escalated.upcast_v1_v2(escalated)
    assert escalated["note"] == ""
    escalated = {"note": "the town should call"}
    Order.Escalated.upcast_v1_v2(escalated)
    assert escalated["note"] == "plain:the town should call"


@pytest.mark.parametrize("hours", [72.0, 0.25])
def test_complete_hours_at_the_limits(hours: float) -> None:
    o, m = order(), member()
    _drive(o, m, "accepted")
    o.complete("m1", hours, "")
    assert o.hours == hours


@pytest.mark.parametrize("hours", [0.0, -1.0, 72.01, float("nan"), float("inf")])
def test_complete_refuses_hours_out_of_range(hours: float) -> None:
    o, m = order(), member()
    _drive(o, m, "accepted")
    with pytest.raises(InvalidArgument, match="hours: must be more than 0 and at most 72") as info:
        o.complete("m1", hours, "")
    assert info.value.field == "hours"
    assert names(o) == [] and o.status == "accepted"


def test_complete_refusals_by_state_and_member() -> None:
    o, m = order(), member()
    with refused(FailedPrecondition, "^order is open$"):
        o.complete("m1", 1, "")
    o.dispatch(m, "branch")
    with refused(FailedPrecondition, "^order is dispatched by member m1$"):
        o.complete("m1", 1, "")
    o.accept(m)
    names(o)
    with refused(FailedPrecondition, "order is accepted by another member, not m2"):
        o.complete("m2", 1, "")
    o.complete("m1", 1, "")
    with refused(FailedPrecondition, "^order is completed by member m1$"):
        o.complete("m1", 1, "")


# ---- cancel and reopen -------------------------------------------------------------------------
@pytest.mark.parametrize("state", ["open", "offered", "dispatched", "accepted"])
def test_cancel_from_every_active_state(state: str) -> None:
    o, m = order(), member()
    if state == "offered":
        o.offer([])
    elif state == "dispatched":
        o.dispatch(m, "branch")
    elif state == "accepted":
        _drive(o, m, "accepted")
    names(o)
    o.cancel("demand_withdrawn")
    [e] = pending(o)
    assert (type(e).__qualname__, e.demand_id, e.reason) == ("Order.Cancelled", "d1", "demand_withdrawn")
    assert o.status == "cancelled"


@pytest.mark.parametrize("state", ["completed", "cancelled"])
def test_cancel_refused_when_finished(state: str) -> None:
    o, m = order(), member()
    _drive(o, m, state)
    with refused(FailedPrecondition, f"^order is {state}"):
        o.cancel("demand_withdrawn")
    assert names(o) == []


def test_reopen_a_completed_order_for_a_redo() -> None:
    o, m = order(), member()
    _drive(o, m, "completed")
    new_due = T0 + timedelta(days=5)
    o.reopen(1, new_due)
    [e] = pending(o)
    assert type(e).__qualname__ == "Order.Reopened"
    assert (e.redo_count, e.previous_member_id, e.due_at) == (1, "m1", new_due)
    assert (o.status, o.member_id, o.redo_count, o.due_at, o.hours, o.offered_teams) == (
        "open", None, 1, new_due, 0.0, [])
    # and the whole cycle runs again
    o.offer([])
    o.accept(member("m2", teams=("medical",)))
    o.complete("m2", 1.0, "")
    o.reopen(2, new_due + timedelta(days=1))
    assert o.redo_count == 2


@pytest.mark.parametrize("state", ["open", "offered", "dispatched", "accepted", "cancelled"])
def test_reopen_only_when_completed(state: str) -> None:
    o, m = order(), member()
    if state == "offered":
        o.offer([])
    elif state == "dispatched":
        o.dispatch(m, "branch")
    else:
        _drive(o, m, state)
    names(o)
    with refused(FailedPrecondition, f"^order is {state}"):
        o.reopen(1, T0)
    assert names(o) == []


# ---- escalation --------------------------------------------------------------------------------
def test_escalate_community_to_town_to_county() -> None:
    o = order()
    due1, due2 = T0 + timedelta(days=2), T0 + timedelta(days=3)
    seal = Sealer(CONTEXT, "d1", new_data_key())
    o.escalate("no_capacity", [], due1, "no plumber in the grid", seal)
    [e] = pending(o)
    assert type(e).__qualname__ == "Order.Escalated"
    assert (e.from_level, e.to_level, e.reason, e.automatic, e.joint_meeting_units, e.due_at) == (
        "community", "town", "no_capacity", False, [], due1)
    # kept in the store, sealed; publishing leaves it out
    assert e.note.startswith(SEALED) and seal.open("note", e.note) == "no plumber in the grid"
    assert seal.open("note", o.escalation_notes["town"]) == "no plumber in the grid"
    assert (o.level, o.due_at) == ("town", due1)

    with pytest.raises(InvalidArgument, match="joint_meeting_units: required when escalating to the county") as info:
        o.escalate("needs_resources", [], due2)
    assert info.value.field == "joint_meeting_units"
    assert names(o) == [] and o.level == "town"

    o.escalate("needs_resources", ["u1", "u2", "u1"], due2)
    [e] = pending(o)
    assert (e.from_level, e.to_level, e.joint_meeting_units) == ("town", "county", ["u1", "u2"])
    assert (o.level, o.joint_meeting_units, o.due_at) == ("county", ["u1", "u2"], due2)

    with refused(FailedPrecondition, "order is already at the county level"):
        o.escalate("needs_resources", ["u3"], due2)
    assert names(o) == []


def test_escalate_keeps_the_status_and_holder() -> None:
    o, m = order(), member()
    _drive(o, m, "accepted")
    o.escalate("needs_resources", [], T0)
    assert (o.status, o.member_id, o.level) == ("accepted", "m1", "town")


def test_escalate_requires_a_reason() -> None:
    o = order()
    with pytest.raises(InvalidArgument, match="reason") as info:
        o.escalate("", [], T0)
    assert info.value.field == "reason"


@pytest.mark.parametrize("state", ["completed", "cancelled"])
def test_escalate_refused_when_finished(state: str) -> None:
    o, m = order(), member()
    _drive(o, m, state)
    with refused(FailedPrecondition, f"^order is {state}"):
        o.escalate("no_capacity", ["u1"], T0)


# ---- deadlines ---------------------------------------------------------------------------------
def test_mark_overdue_emits_overdue_and_an_automatic_escalation() -> None:
    due = T0 + timedelta(hours=1)
    o, m = order(due_at=due), member()
    o.dispatch(m, "branch")
    names(o)
    now = due + timedelta(minutes=1)
    assert not o.is_overdue(due - timedelta(seconds=1))
    assert o.is_overdue(due)  # due_at itself counts as missed
    next_due = now + timedelta(days=1)
    o.mark_overdue(now, next_due)
    overdue, escalated = pending(o)
    assert type(overdue).__qualname__ == "Order.Overdue"
    assert (overdue.level, overdue.due_at, overdue.status, overdue.member_id) == ("community", due, "dispatched", "m1")
    assert type(escalated).__qualname__ == "Order.Escalated"
    assert (escalated.from_level, escalated.to_level, escalated.automatic, escalated.due_at) == (
        "community", "town", True, next_due)
    assert escalated.reason == "deadline_missed"
    assert (o.level, o.due_at, o.overdue_for, o.status) == ("town", next_due, due, "dispatched")


def test_mark_overdue_not_twice_for_the_same_due_date_then_again_for_the_next() -> None:
    due = T0
    o = order(due_at=due)
    o.mark_overdue(due + timedelta(hours=1), due + timedelta(days=1))
    names(o)
    # the new deadline has not passed: nothing to mark
    assert not o.is_overdue(due + timedelta(hours=2))
    with refused(FailedPrecondition, "order is not overdue"):
        o.mark_overdue(due + timedelta(hours=2), due + timedelta(days=2))
    # the town misses its deadline too: overdue again, escalated to the county without a joint meeting
    o.mark_overdue(due + timedelta(days=1, hours=1), due + timedelta(days=3))
    overdue, escalated = pending(o)
    assert (overdue.level, escalated.from_level, escalated.to_level, escalated.automatic) == (
        "town", "town", "county", True)
    assert o.level == "county"


def test_at_county_a_missed_deadline_is_only_overdue_and_only_once() -> None:
    due = T0
    o = order(due_at=due)
    o.escalate("no_capacity", [], due)
    o.escalate("needs_resources", ["u1"], due)
    names(o)
    later = due + timedelta(days=1)
    o.mark_overdue(later, later + timedelta(days=1))
    [e] = pending(o)
    assert (type(e).__qualname__, e.level, e.member_id, e.status) == ("Order.Overdue", "county", None, "open")
    assert (o.level, o.due_at) == ("county", due)  # no next deadline at the top
    assert not o.is_overdue(later + timedelta(days=30))
    with refused(FailedPrecondition, "order is not overdue"):
        o.mark_overdue(later + timedelta(days=30), later)


def test_overdue_names_the_holder_only_when_a_member_holds_it() -> None:
    o = order(due_at=T0)
    o.offer([])
    names(o)
    o.mark_overdue(T0, T0 + timedelta(days=1))
    overdue = pending(o)[0]
    assert (overdue.status, overdue.member_id) == ("offered", None)


@pytest.mark.parametrize("state", ["completed", "cancelled"])
def test_finished_orders_are_never_overdue(state: str) -> None:
    o, m = order(due_at=T0), member()
    _drive(o, m, state)
    assert not o.is_overdue(T0 + timedelta(days=100))
    with refused(FailedPrecondition, f"order is not overdue \\(status {state}"):
        o.mark_overdue(T0 + timedelta(days=100), T0)


def test_reopened_order_gets_a_fresh_deadline_that_can_be_missed_again() -> None:
    o, m = order(due_at=T0), member()
    o.mark_overdue(T0, T0 + timedelta(days=1))
    _drive(o, m, "completed")
    o.reopen(1, T0 + timedelta(days=10))
    names(o)
    assert not o.is_overdue(T0 + timedelta(days=9))
    assert o.is_overdue(T0 + timedelta(days=10))


# ---- roster ------------------------------------------------------------------------------------
def test_unit_reported() -> None:
    u = Unit(unit_id="u1", community_id="c1", unit_name="County Tax Bureau")
    [e] = pending(u)
    assert (type(e).__qualname__, e.unit_id, e.community_id, e.unit_name) == (
        "Unit.Reported", "u1", "c1", "County Tax Bureau")


def test_contact_changes_name_the_fields_never_the_values_and_change_no_state() -> None:
    u = Unit(unit_id="u1", community_id="c1", unit_name="County Tax Bureau")
    pending(u)
    state = {k: v for k, v in vars(u).items() if not k.startswith("_")}
    u.contact_changed([])  # nothing written: no fact
    assert names(u) == []
    u.contact_changed(["webhook_url", "contact_email", "webhook_url"])
    [e] = pending(u)
    assert (type(e).__qualname__, e.unit_id, e.community_id, e.fields) == (
        "Unit.ContactChanged", "u1", "c1", ["contact_email", "webhook_url"])
    assert {k: v for k, v in vars(u).items() if not k.startswith("_")} == state
    m = member()
    m.contact_changed(["phone", "name"])
    [e] = pending(m)
    assert (type(e).__qualname__, e.member_id, e.community_id, e.fields) == (
        "Member.ContactChanged", "m1", "c1", ["name", "phone"])


def test_member_reported_dedups_teams_and_skills() -> None:
    m = Member(member_id="m1", unit_id="u1", community_id="c1", grid_id="g1", teams=["medical", "medical"],
               skills=["nurse", "nurse", "driver"])
    assert names(m) == ["Member.Reported"]
    assert (m.teams, m.skills, m.active) == (["medical"], ["nurse", "driver"], True)


def test_join_team_is_idempotent() -> None:
    m = member(teams=("medical",))
    m.join_team("legal_aid")
    [e] = pending(m)
    assert (type(e).__qualname__, e.member_id, e.community_id, e.team) == ("Member.TeamJoined", "m1", "c1", "legal_aid")
    m.join_team("legal_aid")
    m.join_team("medical")
    assert names(m) == []
    assert m.teams == ["medical", "legal_aid"]


def test_leave_then_every_member_command_is_refused() -> None:
    m = member()
    m.leave("transferred")
    [e] = pending(m)
    assert (type(e).__qualname__, e.member_id, e.reason) == ("Member.Left", "m1", "transferred")
    assert m.active is False
    with refused(FailedPrecondition, "^member m1 has left$"):
        m.leave("again")
    with refused(FailedPrecondition, "^member m1 has left$"):
        m.join_team("patrol")
    group = GridGroup(grid_id="g1", community_id="c1")
    with refused(FailedPrecondition, "^member m1 has left$"):
        group.appoint_leader(m)
    assert names(m) == []


def test_grid_leader_must_be_an_active_member_of_that_grid() -> None:
    group = GridGroup(grid_id="g1", community_id="c1")
    assert names(group) == ["GridGroup.Formed"]
    assert group.leader_member_id is None

    with refused(FailedPrecondition, "member m2 is in grid g2, not g1"):
        group.appoint_leader(member("m2", grid="g2"))
    assert names(group) == []

    group.appoint_leader(member("m1", grid="g1"))
    [e] = pending(group)
    assert (type(e).__qualname__, e.grid_id, e.community_id, e.member_id) == (
        "GridGroup.LeaderAppointed", "g1", "c1", "m1")
    assert group.leader_member_id == "m1"

    group.appoint_leader(member("m1", grid="g1"))  # already the leader: no new fact
    assert names(group) == []
    group.appoint_leader(member("m3", grid="g1"))  # one leader at a time: replaced
    assert names(group) == ["GridGroup.LeaderAppointed"] and group.leader_member_id == "m3"


# ---- themed party days (主题党日) ---------------------------------------------------------------
def unit(unit_id: str = "u1", community: str = "c1") -> Unit:
    u = Unit(unit_id=unit_id, community_id=community, unit_name="County Health Bureau")
    u.collect_events()
    return u


def activity(capacity: int = 2, *, community: str = "c1") -> Activity:
    a = Activity.schedule("a1", unit(community=community), community, "free_health_check", "Free health checks",
                          T0, T0 + timedelta(hours=3), capacity)
    a.collect_events()
    return a


def test_schedule_records_the_terms_with_a_deterministic_id() -> None:
    a = Activity.schedule("a1", unit(), "c1", "free_health_check", "  Free health checks ", T0,
                          T0 + timedelta(hours=3), 120)
    [e] = pending(a)
    assert type(e).__qualname__ == "Activity.Scheduled"
    assert (e.activity_id, e.unit_id, e.community_id, e.theme, e.title, e.starts_at, e.ends_at, e.capacity) == (
        "a1", "u1", "c1", "free_health_check", "Free health checks", T0, T0 + timedelta(hours=3), 120)
    assert a.id == Activity.create_id("a1") == Activity.create_id("a1")
    assert Activity.create_id("x") not in {Order.create_id("x"), Member.create_id("x"), Unit.create_id("x")}
    assert (a.status, a.residents, a.members, a.hours) == ("scheduled", [], [], 0.0)
    assert a.same_terms("u1", "c1", "free_health_check", "Free health checks", T0, T0 + timedelta(hours=3), 120)
    assert not a.same_terms("u1", "c1", "free_health_check", "Free health checks", T0, T0 + timedelta(hours=3), 99)


def test_schedule_needs_the_unit_of_that_community() -> None:
    with refused(FailedPrecondition, "^unit u1 reported to c1, not c2$"):
        Activity.schedule("a1", unit(), "c2", "festival_visit", "Visits", T0, T0 + timedelta(hours=1), 10)


@pytest.mark.parametrize(("terms", "field"), [
    ({"title": ""}, "title"),
    ({"title": "   "}, "title"),
    ({"title": "x" * 101}, "title"),
    ({"starts_at": T0.replace(tzinfo=None)}, "starts_at"),
    ({"ends_at": (T0 + timedelta(hours=1)).replace(tzinfo=None)}, "ends_at"),
    ({"ends_at": T0}, "ends_at"),
    ({"ends_at": T0 - timedelta(minutes=1)}, "ends_at"),
    ({"capacity": 0}, "capacity"),
    ({"capacity": 10_001}, "capacity"),
])
def test_schedule_refuses_bad_terms_naming_the_field(terms: dict[str, Any], field: str) -> None:
    args: dict[str, Any] = {"title": "Visits", "starts_at": T0, "ends_at": T0 + timedelta(hours=1),
                            "capacity": 10} | terms
    with pytest.raises(InvalidArgument) as info:
        Activity.schedule("a1", unit(), "c1", "festival_visit", **args)
    assert info.value.field == field


def test_schedule_accepts_the_bounds() -> None:
    Activity.schedule("a1", unit(), "c1", "t", "x" * 100, T0, T0 + timedelta(seconds=1), 10_000)
    Activity.schedule("a2", unit(), "c1", "t", "x", T0, T0 + timedelta(seconds=1), 1)


def test_sign_up_once_per_resident_until_full() -> None:
    a = activity(capacity=2)
    a.sign_up("r1")
    [e] = pending(a)
    assert type(e).__qualname__ == "Activity.ResidentSignedUp"
    assert (e.activity_id, e.community_id, e.resident_id) == ("a1", "c1", "r1")
    a.sign_up("r1")  # again: no new fact
    assert names(a) == []
    a.sign_up("r2")
    assert names(a) == ["Activity.ResidentSignedUp"]
    with refused(FailedPrecondition, r"^activity a1 is full \(2 residents signed up\)$"):
        a.sign_up("r3")
    a.sign_up("r2")  # a resident already signed up is still fine when full
    assert names(a) == [] and a.residents == ["r1", "r2"]


def test_check_in_once_per_member_of_the_community() -> None:
    a = activity()
    m = Member(member_id="m1", unit_id="u7", community_id="c1", grid_id="g1", teams=[], skills=[])
    a.check_in(m)
    [e] = pending(a)
    assert type(e).__qualname__ == "Activity.MemberCheckedIn"
    assert (e.activity_id, e.community_id, e.member_id, e.unit_id) == ("a1", "c1", "m1", "u7")  # the member's unit
    a.check_in(m)
    assert names(a) == [] and a.members == ["m1"]


def test_check_in_is_not_limited_by_the_residents_capacity() -> None:
    a = activity(capacity=1)
    a.sign_up("r1")
    a.check_in(member("m1"))
    a.check_in(member("m2"))
    assert a.members == ["m1", "m2"]


def test_check_in_refused_for_a_member_who_left_or_of_another_community() -> None:
    a, gone = activity(), member("m9")
    gone.leave("retired")
    with refused(FailedPrecondition, "^member m9 has left$"):
        a.check_in(gone)
    with refused(FailedPrecondition, "^member m2 serves community c2, not c1$"):
        a.check_in(member("m2", community="c2"))
    assert names(a) == [] and a.members == []


def test_complete_counts_members_and_residents() -> None:
    a = activity(capacity=5)
    for r in ("r1", "r2", "r3"):
        a.sign_up(r)
    a.check_in(member("m1"))
    names(a)
    a.complete(2.5)
    [e] = pending(a)
    assert type(e).__qualname__ == "Activity.Completed"
    assert (e.activity_id, e.community_id, e.unit_id, e.hours, e.members_checked_in, e.residents_signed_up) == (
        "a1", "c1", "u1", 2.5, 1, 3)
    assert (a.status, a.hours) == ("completed", 2.5)


@pytest.mark.parametrize("hours", [0, -1, 24.01, 72, float("nan"), float("inf")])
def test_activity_complete_refuses_hours_out_of_range(hours: float) -> None:
    a = activity()
    with refused(InvalidArgument, "^hours: must be more than 0 and at most 24$"):
        a.complete(hours)
    assert names(a) == [] and a.status == "scheduled"
    a.complete(24)
    assert a.status == "completed"


def test_a_completed_activity_refuses_everything() -> None:
    a = activity()
    a.complete(1)
    names(a)
    with refused(FailedPrecondition, "^activity a1 is completed$"):
        a.complete(1)
    with refused(FailedPrecondition, "^activity a1 is completed$"):
        a.sign_up("r1")
    with refused(FailedPrecondition, "^activity a1 is completed$"):
        a.check_in(member())
    with refused(FailedPrecondition, "^activity a1 is completed$"):
        a.complete(0)  # the state comes first in the aggregate; the application checks hours before it
    assert names(a) == []
