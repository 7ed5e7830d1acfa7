"""Resident ids cannot be probed: whoever acts for residents gets, for an id nobody has, exactly the refusal they get
for a real resident out of their reach (the same PERMISSION_DENIED, word for word), on every call that names a
resident. Only the resident asking about their own id learns that it is unknown (NOT_FOUND)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sandan_eventbus.auth.principal import PermissionDenied, Principal, acting_as
from sandan_eventbus.auth.scopes import Places
from sandan_eventbus.errors import NotFound
from sandan_eventbus.trace import traced
from sandan_intake.application import IntakeApplication
from sandan_intake.keys import Keyring
from sandan_intake.residents import ResidentStore

PLACES = Places.parse("""
[county]
id = "taihe"
[communities.c-1]
town = "t-1"
[communities.c-2]
town = "t-2"
""")
UNKNOWN = "6b1a3c4e-0000-4000-8000-000000000000"
CALLERS = {
    "grid_worker": Principal(subject="sub-gw", roles=frozenset({"grid_worker"}), acting_role="grid_worker",
                             community_id="c-1", grid_id="g-1"),
    "branch_secretary": Principal(subject="sub-sec", roles=frozenset({"branch_secretary"}),
                                  acting_role="branch_secretary", community_id="c-1"),
    "hotline_operator": Principal(subject="sub-hl", roles=frozenset({"hotline_operator"}),
                                  acting_role="hotline_operator", county_id="taihe", town_id="t-1"),
    "service_gateway": Principal(subject="sub-gwy", roles=frozenset({"service_gateway"}),
                                 acting_role="service_gateway"),
}
CALLS: dict[str, Callable[[IntakeApplication, str], Any]] = {
    "post": lambda app, rid: app.post_demand(client_request_id="k", resident_id=rid, community_id="c-1",
                                             grid_id="g-1", description="d", urgency="normal", channel="app",
                                             other_text="errand"),
    "list": lambda app, rid: app.resident_demands_page(rid),
    "correct": lambda app, rid: app.correct_resident(rid, {"address": "1 New Road"}),
    "export": lambda app, rid: app.export_resident_data(rid),
    "erase": lambda app, rid: app.erase_resident(rid, "resident_request"),
}


@pytest.fixture
def app() -> Iterator[IntakeApplication]:
    application = IntakeApplication(ResidentStore("memory://", Keyring.generate()), "memory://", places=PLACES)
    yield application
    application.close()


def refusal(app: IntakeApplication, who: Principal, call: str, resident_id: str) -> tuple[str, str]:
    with acting_as(who), traced("probe"), pytest.raises((PermissionDenied, NotFound)) as refused:
        CALLS[call](app, resident_id)
    return type(refused.value).__name__, str(refused.value)


@pytest.mark.parametrize("call", list(CALLS))
@pytest.mark.parametrize("role", list(CALLERS))
def test_an_unknown_id_is_refused_word_for_word_as_a_resident_out_of_reach(app: IntakeApplication, role: str,
                                                                          call: str) -> None:
    secretary_2 = Principal(subject="sub-sec-2", roles=frozenset({"branch_secretary"}),
                            acting_role="branch_secretary", community_id="c-2")
    with acting_as(secretary_2), traced("seed"):
        elsewhere = app.register_resident("c-2", "Sun Li", "13900002222", "3 Gate Lane").resident_id
    out_of_reach = refusal(app, CALLERS[role], call, elsewhere)
    assert out_of_reach[0] == "PermissionDenied"  # c-2 is out of every one of these callers' reach
    assert refusal(app, CALLERS[role], call, UNKNOWN) == out_of_reach


@pytest.mark.parametrize("call", ["list", "correct", "export", "erase"])
def test_the_resident_learns_that_their_own_id_is_unknown(app: IntakeApplication, call: str) -> None:
    own = Principal(subject="sub-res", roles=frozenset({"resident"}), acting_role="resident", resident_id=UNKNOWN)
    assert refusal(app, own, call, UNKNOWN)[0] == "NotFound"
    stranger = Principal(subject="sub-res-2", roles=frozenset({"resident"}), acting_role="resident",
                         resident_id="6b1a3c4e-0000-4000-8000-000000000001")
    assert refusal(app, stranger, call, UNKNOWN)[0] == "PermissionDenied"


def test_a_worker_still_reaches_their_own_residents(app: IntakeApplication) -> None:
    worker = CALLERS["grid_worker"]
    with acting_as(worker), traced("call"):
        mine = app.register_resident("c-1", "Zhao Min", "13900005555", "8 Pine Road").resident_id
        assert app.correct_resident(mine, {"address": "9 Pine Road"}) == ["address"]
        assert app.resident_demands_page(mine) == ([], None)
