"""The aggregates alone: every transition and every refusal, no store, no clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from sandan_contracts import decode, encode
from sandan_contracts.events import DemandTextsShredded
from sandan_eventbus.errors import FailedPrecondition, InvalidArgument, NotFound
from sandan_intake.crypto import Sealer, Unreadable, new_data_key
from sandan_intake.domain import (
    DEFAULT_DEADLINES,
    MAX_REDOS,
    Demand,
    Resident,
    ServiceMenu,
    demand_id_for,
    menu_id_for,
)
from sandan_intake.publishing import to_contract

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
SEALER = Sealer("res-1", new_data_key())  # the demand's data key (keys.py keeps real ones)


def post(**overrides: Any) -> Demand:
    fields: dict[str, Any] = {
        "client_request_id": "req-1", "resident_id": "res-1", "community_id": "c-1", "grid_id": "g-1",
        "description": "The hallway light is broken", "urgency": "normal", "channel": "app",
        "due_at": T0 + timedelta(days=1), "deadline_seconds": 86400, "other_text": "light repair",
    }
    fields.update(overrides)
    return Demand.post(**fields, seal=SEALER)


def accepted(member: str = "m-1") -> Demand:
    demand = post()
    demand.record_acceptance(member)
    return demand


def served(member: str = "m-1") -> Demand:
    demand = accepted(member)
    demand.record_service(member, 1.5)
    return demand


def event_names(aggregate: Any) -> list[str]:
    return [type(e).__name__ for e in aggregate.collect_events()]


# ---- menu ---------------------------------------------------------------------------------------
class TestServiceMenu:
    def test_one_menu_per_community(self) -> None:
        menu = ServiceMenu.open("c-1")
        assert menu.id == menu_id_for("c-1") == ServiceMenu.open("c-1").id
        assert menu.id != ServiceMenu.open("c-2").id

    def test_publish_with_default_deadlines(self) -> None:
        menu = ServiceMenu.open("c-1")
        item = menu.publish_item("repair", "home_repair", "Small repairs")
        assert item.deadlines == DEFAULT_DEADLINES == {"urgent": 7200, "normal": 86400, "routine": 604800}
        assert not item.retired
        assert event_names(menu) == ["Opened", "ItemPublished"]

    def test_publish_with_own_deadlines_and_update(self) -> None:
        menu = ServiceMenu.open("c-1")
        menu.publish_item("repair", "home_repair", "Small repairs", {"urgent": 3600})
        assert menu.item("repair").deadlines["urgent"] == 3600
        assert menu.item("repair").deadlines["normal"] == 86400
        menu.publish_item("repair", "home_repair", "Repairs at home")
        assert menu.item("repair").title == "Repairs at home"

    def test_retire_and_republish(self) -> None:
        menu = ServiceMenu.open("c-1")
        menu.publish_item("repair", "home_repair", "Small repairs")
        assert menu.retire_item("repair").retired
        with pytest.raises(FailedPrecondition, match="retired"):
            menu.orderable("repair")
        menu.collect_events()
        menu.retire_item("repair")  # a retried retire changes nothing
        assert event_names(menu) == []
        assert not menu.publish_item("repair", "home_repair", "Small repairs").retired
        assert menu.orderable("repair").item_id == "repair"

    def test_replay_rebuilds_state(self) -> None:
        menu = ServiceMenu.open("c-1")
        menu.publish_item("repair", "home_repair", "Small repairs")
        menu.retire_item("repair")
        copy = None
        for e in menu.collect_events():
            copy = e.mutate(copy)
        assert copy is not None and copy.items == menu.items

    @pytest.mark.parametrize(("args", "field"), [
        (("", "home_repair", "t"), "item_id"),
        (("bad id!", "home_repair", "t"), "item_id"),
        (("i", "Home Repair", "t"), "category"),
        (("i", "", "t"), "category"),
        (("i", "other", "t"), "category"),
        (("i", "home_repair", ""), "title"),
        (("i", "home_repair", "x" * 101), "title"),
    ])
    def test_publish_refusals(self, args: tuple[str, str, str], field: str) -> None:
        with pytest.raises(InvalidArgument) as info:
            ServiceMenu.open("c-1").publish_item(*args)
        assert info.value.field == field

    @pytest.mark.parametrize("deadlines", [{"urgent": 0}, {"normal": -5}, {"routine": 91 * 86400}, {"soon": 60}])
    def test_bad_deadlines(self, deadlines: dict[str, int]) -> None:
        with pytest.raises(InvalidArgument, match="deadlines"):
            ServiceMenu.open("c-1").publish_item("i", "home_repair", "t", deadlines)

    def test_unknown_item(self) -> None:
        menu = ServiceMenu.open("c-1")
        with pytest.raises(NotFound):
            menu.retire_item("nope")
        with pytest.raises(NotFound):
            menu.orderable("nope")

    def test_bad_community(self) -> None:
        with pytest.raises(InvalidArgument, match="community_id"):
            ServiceMenu.open("")


# ---- posting ------------------------------------------------------------------------------------
class TestPost:
    def test_posted_off_the_menu(self) -> None:
        demand = post(care_tags=["elderly_alone", "disabled", "elderly_alone"])
        assert demand.status == "posted"
        assert demand.category == "other" and SEALER.open("other_text", demand.other_text) == "light repair"
        assert demand.menu_item_id is None and demand.member_id is None
        assert SEALER.open("care_tags", demand.care_tags) == "elderly_alone,disabled" and demand.special_care
        assert demand.redo_count == 0 and demand.stars is None
        assert event_names(demand) == ["Posted"]

    def test_the_event_carries_ciphertext_only(self) -> None:
        demand = post(care_tags=["disabled"], description="Leaking pipe at Room 301")
        (posted,) = demand.collect_events()
        state = repr(posted.__dict__)
        for plain in ("Leaking pipe", "Room 301", "light repair", "disabled"):
            assert plain not in state
        assert posted.description.startswith("gcm1:") and posted.special_care is True
        # bound to the field: the description's ciphertext does not open as another field
        with pytest.raises(Unreadable):
            SEALER.open("other_text", posted.description)
        assert not post().special_care and post().care_tags is None

    def test_posted_from_the_menu(self) -> None:
        menu = ServiceMenu.open("c-1")
        item = menu.publish_item("repair", "home_repair", "Small repairs")
        demand = post(menu_item=item, other_text=None)
        assert demand.category == "home_repair" and demand.menu_item_id == "repair"

    def test_deterministic_id(self) -> None:
        assert post().id == post().id == demand_id_for("res-1", "req-1")
        assert post(client_request_id="req-2").id != post().id
        assert post(resident_id="res-2").id != post().id

    def test_description_is_trimmed(self) -> None:
        assert SEALER.open("description", post(description="  12345  ").description) == "12345"

    @pytest.mark.parametrize(("overrides", "field"), [
        ({"description": "abcd"}, "description"),
        ({"description": "x" * 501}, "description"),
        ({"urgency": "asap"}, "urgency"),
        ({"urgency": ""}, "urgency"),
        ({"channel": "fax"}, "channel"),
        ({"care_tags": ["rich"]}, "care_tags"),
        ({"other_text": None}, "other_text"),
        ({"other_text": "x" * 101}, "other_text"),
        ({"grid_id": ""}, "grid_id"),
        ({"resident_id": "has space"}, "resident_id"),
        ({"community_id": ""}, "community_id"),
        ({"client_request_id": ""}, "client_request_id"),
        ({"due_at": datetime(2025, 3, 1, tzinfo=timezone(timedelta(hours=8)))}, "due_at"),
        ({"deadline_seconds": 0}, "deadline_seconds"),
    ])
    def test_post_refusals(self, overrides: dict[str, Any], field: str) -> None:
        with pytest.raises(InvalidArgument) as info:
            post(**overrides)
        assert info.value.field == field

    def test_urgency_message_lists_choices(self) -> None:
        with pytest.raises(InvalidArgument, match="urgency: must be one of urgent, normal, routine"):
            post(urgency="asap")

    def test_menu_item_and_other_text_exclusive(self) -> None:
        item = ServiceMenu.open("c-1").publish_item("repair", "home_repair", "Small repairs")
        with pytest.raises(InvalidArgument, match="other_text"):
            post(menu_item=item)

    def test_menu_item_of_another_community(self) -> None:
        item = ServiceMenu.open("c-2").publish_item("repair", "home_repair", "Small repairs")
        with pytest.raises(InvalidArgument, match="menu_item_id"):
            post(menu_item=item, other_text=None)

    def test_retired_menu_item(self) -> None:
        menu = ServiceMenu.open("c-1")
        menu.publish_item("repair", "home_repair", "Small repairs")
        item = menu.retire_item("repair")
        with pytest.raises(FailedPrecondition, match="retired"):
            post(menu_item=item, other_text=None)


# ---- lifecycle ----------------------------------------------------------------------------------
class TestLifecycle:
    def test_accept_serve_confirm_rate(self) -> None:
        demand = post()
        demand.record_acceptance("m-1")
        assert (demand.status, demand.member_id) == ("accepted", "m-1")
        demand.record_service("m-1", 2)
        assert (demand.status, demand.served_hours) == ("served", 2.0)
        demand.confirm_completion()
        assert demand.status == "confirmed"
        demand.rate(5, " great ", SEALER)
        assert (demand.stars, SEALER.open("comment", demand.comment), demand.status) == (5, "great", "confirmed")
        assert event_names(demand) == ["Posted", "AcceptanceRecorded", "ServiceRecorded",
                                       "CompletionConfirmed", "Rated"]

    def test_rate_before_confirm_then_confirm(self) -> None:
        demand = served()
        demand.rate(4)
        assert demand.stars == 4 and demand.comment is None
        demand.confirm_completion()
        assert demand.status == "confirmed"

    def test_confirm_and_rate_carry_the_member(self) -> None:
        demand = served("m-7")
        demand.confirm_completion()
        demand.rate(3)
        confirmed, rated = demand.collect_events()[-2:]
        assert confirmed.member_id == "m-7" and rated.member_id == "m-7"

    def test_declined_goes_back_to_posted(self) -> None:
        demand = accepted("m-1")
        demand.clear_acceptance("m-1")
        assert (demand.status, demand.member_id) == ("posted", None)
        demand.record_acceptance("m-2")
        assert demand.member_id == "m-2"

    def test_duplicate_facts_change_nothing(self) -> None:
        demand = served("m-1")
        demand.collect_events()
        demand.record_service("m-1", 1.5)
        demand2 = accepted("m-1")
        demand2.collect_events()
        demand2.record_acceptance("m-1")
        demand3 = post()
        demand3.collect_events()
        demand3.clear_acceptance("m-1")
        assert event_names(demand) == event_names(demand2) == event_names(demand3) == []

    @pytest.mark.parametrize("make", [post, accepted])
    def test_withdraw_before_service(self, make: Any) -> None:
        demand = make()
        demand.withdraw("solved_myself")
        assert (demand.status, demand.withdraw_reason) == ("withdrawn", "solved_myself")

    def test_redo(self) -> None:
        demand = served("m-1")
        new_due = T0 + timedelta(days=3)
        demand.request_redo("not_fixed", new_due)
        assert (demand.status, demand.member_id, demand.redo_count, demand.due_at) == ("posted", None, 1, new_due)
        redo = demand.collect_events()[-1]
        assert (redo.redo_count, redo.previous_member_id) == (1, "m-1")
        demand.record_acceptance("m-2")
        demand.record_service("m-2", 1)
        demand.request_redo("still_broken", new_due)
        assert demand.redo_count == 2

    def test_replay_rebuilds_state(self) -> None:
        demand = served("m-1")
        demand.rate(2, "slow", SEALER)
        copy = None
        for e in demand.collect_events():
            copy = e.mutate(copy)
        assert copy is not None
        assert (copy.status, copy.member_id, copy.stars, SEALER.open("comment", copy.comment)) == (
            "served", "m-1", 2, "slow")


class TestRefusals:
    @pytest.mark.parametrize("make", [lambda: served(), lambda: _confirmed(), lambda: _withdrawn()])
    def test_withdraw_too_late(self, make: Any) -> None:
        demand = make()
        with pytest.raises(FailedPrecondition, match=f"demand is {demand.status}"):
            demand.withdraw("solved_myself")

    def test_withdraw_needs_a_reason_code(self) -> None:
        with pytest.raises(InvalidArgument, match="reason"):
            post().withdraw("Solved it!")

    @pytest.mark.parametrize("make", [post, accepted, lambda: _confirmed(), lambda: _withdrawn()])
    def test_confirm_only_when_served(self, make: Any) -> None:
        demand = make()
        with pytest.raises(FailedPrecondition, match=f"demand is {demand.status}"):
            demand.confirm_completion()

    @pytest.mark.parametrize("make", [post, accepted, lambda: _withdrawn()])
    def test_rate_only_after_service(self, make: Any) -> None:
        demand = make()
        with pytest.raises(FailedPrecondition, match=f"demand is {demand.status}"):
            demand.rate(5)

    def test_rate_once(self) -> None:
        demand = served()
        demand.rate(5)
        with pytest.raises(FailedPrecondition, match="already rated"):
            demand.rate(4)

    @pytest.mark.parametrize(("stars", "comment", "field"), [(0, "", "stars"), (6, "", "stars"),
                                                            (3, "x" * 301, "comment")])
    def test_rate_arguments(self, stars: int, comment: str, field: str) -> None:
        with pytest.raises(InvalidArgument) as info:
            served().rate(stars, comment)
        assert info.value.field == field

    @pytest.mark.parametrize("make", [post, accepted, lambda: _confirmed(), lambda: _withdrawn()])
    def test_redo_only_when_served(self, make: Any) -> None:
        demand = make()
        with pytest.raises(FailedPrecondition, match=f"demand is {demand.status}"):
            demand.request_redo("not_fixed", T0)

    def test_no_redo_after_rating(self) -> None:
        demand = served()
        demand.rate(1)
        with pytest.raises(FailedPrecondition, match="already rated"):
            demand.request_redo("not_fixed", T0)

    def test_redo_arguments(self) -> None:
        with pytest.raises(InvalidArgument, match="reason"):
            served().request_redo("", T0)
        with pytest.raises(InvalidArgument, match="due_at"):
            served().request_redo("not_fixed", datetime(2025, 1, 1, tzinfo=timezone(timedelta(hours=8))))

    def test_redo_limit(self) -> None:
        demand = post()
        for n in range(MAX_REDOS):
            demand.record_acceptance(f"m-{n}")
            demand.record_service(f"m-{n}", 1)
            demand.request_redo("not_fixed", T0)
        demand.record_acceptance("m-last")
        demand.record_service("m-last", 1)
        with pytest.raises(FailedPrecondition, match="redone"):
            demand.request_redo("not_fixed", T0)

    @pytest.mark.parametrize("make", [lambda: accepted("m-1"), lambda: served(), lambda: _withdrawn()])
    def test_acceptance_only_when_posted(self, make: Any) -> None:
        demand = make()
        with pytest.raises(FailedPrecondition, match=f"demand is {demand.status}"):
            demand.record_acceptance("m-2")

    def test_clear_acceptance_refusals(self) -> None:
        with pytest.raises(FailedPrecondition, match="another member"):
            accepted("m-1").clear_acceptance("m-2")
        with pytest.raises(FailedPrecondition, match="demand is served"):
            served().clear_acceptance("m-1")

    def test_service_refusals(self) -> None:
        with pytest.raises(FailedPrecondition, match="demand is posted"):
            post().record_service("m-1", 1)
        with pytest.raises(FailedPrecondition, match="another member"):
            accepted("m-1").record_service("m-2", 1)
        with pytest.raises(InvalidArgument, match="hours"):
            accepted("m-1").record_service("m-1", 0)
        with pytest.raises(InvalidArgument, match="member_id"):
            post().record_acceptance("")

    def test_contact_only_for_the_holder(self) -> None:
        accepted("m-1").ensure_held_by("m-1")
        served("m-1").ensure_held_by("m-1")
        with pytest.raises(FailedPrecondition, match="does not hold"):
            accepted("m-1").ensure_held_by("m-2")
        with pytest.raises(FailedPrecondition, match="demand is posted"):
            post().ensure_held_by("m-1")
        with pytest.raises(FailedPrecondition, match="demand is confirmed"):
            _confirmed().ensure_held_by("m-1")


def _confirmed() -> Demand:
    demand = served()
    demand.confirm_completion()
    return demand


def _withdrawn() -> Demand:
    demand = post()
    demand.withdraw("solved_myself")
    return demand


# ---- sealed texts: no key, no comment; retention shreds closed or served demands only -------------
class TestSealedTexts:
    def test_a_comment_needs_the_demands_key(self) -> None:
        demand = served()
        with pytest.raises(FailedPrecondition, match="erased or shredded"):
            demand.rate(5, "thanks", None)
        demand.rate(5, "", None)  # stars alone need no key
        assert (demand.stars, demand.comment) == (5, None)

    @pytest.mark.parametrize("make", [post, accepted])
    def test_open_demands_are_not_shredded(self, make: Any) -> None:
        demand = make()
        demand.collect_events()
        with pytest.raises(FailedPrecondition, match="cannot shred texts"):
            demand.record_texts_shredded("retention")
        assert event_names(demand) == []

    def test_a_served_demand_is_shredded_and_may_still_be_confirmed(self) -> None:
        """Retention shreds a demand served and never confirmed; its lifecycle is unchanged."""
        demand = served()
        demand.collect_events()
        demand.record_texts_shredded("retention")
        assert (demand.status, demand.texts_shredded, event_names(demand)) == ("served", True, ["TextsShredded"])
        demand.confirm_completion()
        assert demand.status == "confirmed"

    @pytest.mark.parametrize("make", [post, accepted, served, _confirmed])
    def test_an_erasure_shreds_a_demand_whatever_its_state_and_the_lifecycle_goes_on(self, make: Any) -> None:
        demand = make()
        status = demand.status
        demand.collect_events()
        demand.record_texts_shredded("erasure")
        demand.record_texts_shredded("erasure")
        demand.record_texts_shredded("retention")  # the texts are gone once: retention finds nothing to do
        (shredded,) = demand.collect_events()
        assert (type(shredded).__name__, shredded.reason, demand.status, demand.texts_shredded) == (
            "TextsShredded", "erasure", status, True)

    @pytest.mark.parametrize("cause", ["", "forgotten", "Erasure", "retention\n"])
    def test_shredding_names_retention_or_erasure(self, cause: str) -> None:
        demand = _confirmed()
        demand.collect_events()
        with pytest.raises(InvalidArgument, match="reason"):
            demand.record_texts_shredded(cause)
        assert (event_names(demand), demand.texts_shredded) == ([], False)

    @pytest.mark.parametrize("cause", ["retention", "erasure"])
    def test_a_shredding_is_published_by_demand_id_with_its_cause(self, cause: str) -> None:
        demand = _confirmed()
        demand.collect_events()
        demand.record_texts_shredded(cause)
        (shredded,) = demand.collect_events()
        contract = to_contract(shredded)
        assert contract == DemandTextsShredded(demand_id=str(demand.id), cause=cause)
        raw = encode(contract, event_id="intake:1", producer="intake", occurred_at=T0, correlation_id="c-1",
                     causation_id=None)
        envelope, decoded = decode(raw)  # the contract takes it back: nothing else rides along
        assert (envelope.key, decoded) == (str(demand.id), contract)
        assert set(envelope.data) == {"demand_id", "cause"}

    def test_shredding_is_recorded_once_and_then_no_comment_is_kept(self) -> None:
        demand = _confirmed()
        demand.collect_events()
        demand.record_texts_shredded("retention")
        demand.record_texts_shredded("retention")
        (shredded,) = demand.collect_events()
        assert (type(shredded).__name__, shredded.reason, shredded.fields) == (
            "TextsShredded", "retention", ["description", "other_text"])
        assert demand.texts_shredded
        with pytest.raises(FailedPrecondition, match="erased or shredded"):
            demand.rate(4, "late praise", SEALER)

    def test_events_written_before_encryption_read_as_legacy_values(self) -> None:
        """class_version 1 events (plaintext, tags as a list) upcast to version 2's shape."""
        v1 = {"client_request_id": "r", "resident_id": "res-1", "care_tags": ["disabled"], "description": "Old text",
              "other_text": "odd job"}
        Demand.Posted.upcast_v1_v2(v1)
        assert v1 == {"client_request_id": "r", "resident_id": "res-1", "care_tags": "plain:disabled",
                      "special_care": True, "description": "plain:Old text", "other_text": "plain:odd job"}
        none = {"care_tags": [], "description": "x", "other_text": None}
        Demand.Posted.upcast_v1_v2(none)
        assert (none["care_tags"], none["special_care"], none["other_text"]) == (None, False, None)
        rated = {"stars": 5, "comment": "nice", "member_id": "m-1"}
        Demand.Rated.upcast_v1_v2(rated)
        assert rated["comment"] == "plain:nice"
        assert SEALER.open("comment", rated["comment"]) == "nice"  # legacy values read without the key


# ---- a resident's registration ---------------------------------------------------------------------
class TestResident:
    RID = "0f8e6d4c-2b1a-4c3d-9e8f-7a6b5c4d3e2f"

    def test_register_correct_export_erase(self) -> None:
        resident = Resident.register(self.RID, "c-1")
        assert resident.id == Resident.create_id(self.RID) and not resident.erased
        resident.correct(["phone", "address", "phone"])
        resident.correct([])  # nothing changed: nothing recorded
        resident.record_export()
        resident.erase(by="resident", reason="resident_request")
        resident.erase(by="branch_secretary", reason="other")  # erased before: nothing more
        events = resident.collect_events()
        assert [type(e).__name__ for e in events] == ["Registered", "Corrected", "Exported", "Erased"]
        assert events[1].fields == ["address", "phone"]  # the names, never the values
        assert (events[3].by, events[3].reason) == ("resident", "resident_request")
        assert resident.erased

    def test_an_erased_record_is_not_corrected(self) -> None:
        resident = Resident.register(self.RID, "c-1")
        resident.erase(by="resident", reason="resident_request")
        with pytest.raises(FailedPrecondition, match="erased"):
            resident.correct(["name"])

    @pytest.mark.parametrize(("by", "reason"), [("resident", "Because I said so"), ("", "resident_request")])
    def test_erasure_names_who_and_why_as_codes(self, by: str, reason: str) -> None:
        with pytest.raises(InvalidArgument):
            Resident.register(self.RID, "c-1").erase(by=by, reason=reason)
