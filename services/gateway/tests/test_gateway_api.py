"""The JSON API, the pages and Open311 against stand-in services behind the real authentication interceptor; sign-in
against the real Keycloak with the issuer's discovery document read at another address (SANDAN_OIDC_DISCOVERY_URL)."""

from __future__ import annotations

import contextlib
import html
import http.server
import json
import logging
import re
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import grpc
import httpx

from sandan_contracts.rpc import dispatch_pb2, intake_pb2, scoring_pb2
from sandan_eventbus.auth.principal import resident_id_for
from sandan_eventbus.checks import LIMITS, limit_of
from sandan_gateway.models import REDO_REASONS, WITHDRAW_REASONS
from sandan_gateway.open311 import MAX_REQUESTS
from sandan_gateway.pages import OFFICE_CALLS_IN_FLIGHT
from sandan_gateway.places import previous_quarters

OPENAPI = Path(__file__).resolve().parents[1] / "openapi.json"
COLON, COMMA = "\uff1a", "\uff0c"  # the Chinese pages' punctuation


# ---- sign-in is the default ---------------------------------------------------------------------------------------
async def test_api_without_session_is_401_problem(gateway):
    reply = await gateway.client.get("/api/v1/me")
    assert reply.status_code == 401
    assert reply.headers["content-type"].startswith("application/problem+json")
    body = reply.json()
    assert body["status"] == 401 and body["type"].startswith("urn:sandan:problem:") and body["title"]


async def test_page_without_session_redirects_to_login(gateway):
    reply = await gateway.client.get("/resident")
    assert reply.status_code == 303 and reply.headers["location"].startswith("/login?next=/resident")


async def test_me_names_roles_places_and_csrf(gateway):
    session = gateway.sign_in(["branch_secretary"], community_id="c1")
    body = (await gateway.client.get("/api/v1/me")).json()
    assert body["roles"] == ["branch_secretary"] and body["community_id"] == "c1"
    assert body["csrf_token"] == session.csrf


# ---- the person's token is forwarded; the services decide ------------------------------------------------------------
async def test_resident_posts_as_themselves_with_csrf(gateway):
    session = gateway.sign_in(["resident"], community_id="c1", grid_id="g1")
    reply = await gateway.client.post("/api/v1/demands", json={"client_request_id": "r1", "menu_item_id": "m-repair"},
                                      headers={"x-csrf-token": session.csrf})
    assert reply.status_code == 201, reply.text
    method, role, request = gateway.world.seen[-1]
    assert (method, role) == ("PostDemand", "resident")
    expected = resident_id_for(gateway.issuer.url, session.claims["sub"])
    assert request.resident_id == expected and request.community_id == "c1" and request.grid_id == "g1"
    assert request.channel == "app"
    assert reply.json()["status"] == "posted"


async def test_state_change_without_csrf_is_refused_and_nothing_is_called(gateway):
    gateway.sign_in(["resident"], community_id="c1", grid_id="g1")
    reply = await gateway.client.post("/api/v1/demands", json={"client_request_id": "r1", "menu_item_id": "m-repair"})
    assert reply.status_code == 403
    assert reply.headers["content-type"].startswith("application/problem+json")
    assert not any(m == "PostDemand" for m, _, _ in gateway.world.seen)
    wrong = await gateway.client.post("/api/v1/demands", json={"client_request_id": "r1"},
                                      headers={"x-csrf-token": "not-it"})
    assert wrong.status_code == 403


async def test_bearer_caller_needs_no_csrf(gateway):
    token = gateway.issuer.token("mini-program-user", ["resident"], community_id="c1", grid_id="g1")
    reply = await gateway.client.post("/api/v1/demands", json={"client_request_id": "r2", "other_text": "换灯泡"},
                                      headers={"authorization": f"Bearer {token}"})
    assert reply.status_code == 201, reply.text


async def test_permission_denied_becomes_403_problem(gateway):
    owner = gateway.sign_in(["resident"], community_id="c1", grid_id="g1")
    posted = await gateway.client.post("/api/v1/demands", json={"client_request_id": "r3", "menu_item_id": "m-repair"},
                                       headers={"x-csrf-token": owner.csrf})
    demand_id = posted.json()["demand_id"]
    gateway.sign_in(["resident"], community_id="c1", grid_id="g1")  # another resident
    reply = await gateway.client.get(f"/api/v1/demands/{demand_id}")
    assert reply.status_code == 403
    assert reply.json()["type"] == "urn:sandan:problem:forbidden"
    page = await gateway.client.get(f"/resident/demands/{demand_id}")
    assert page.status_code == 403 and "您没有权限做这件事" in page.text and "Traceback" not in page.text


async def test_role_outside_the_matrix_is_refused_by_the_service(gateway):
    session = gateway.sign_in(["member"], member_id="m-1")
    reply = await gateway.client.post("/api/v1/demands", json={"client_request_id": "r4", "menu_item_id": "m-repair"},
                                      headers={"x-csrf-token": session.csrf})
    assert reply.status_code == 403  # PostDemand's row does not name member: the interceptor refused


# ---- bad input: problem+json naming the field -----------------------------------------------------------------------
async def test_validation_problem_names_the_field(gateway):
    session = gateway.sign_in(["resident"], community_id="c1", grid_id="g1")
    reply = await gateway.client.post("/api/v1/demands/x/rate", json={"stars": 9},
                                      headers={"x-csrf-token": session.csrf})
    assert reply.status_code == 422
    body = reply.json()
    assert reply.headers["content-type"].startswith("application/problem+json")
    assert body["field"] == "stars" and body["errors"][0]["field"] == "stars"
    assert "Traceback" not in reply.text


async def test_the_gateways_text_limits_are_the_services(gateway):
    """Every text field the API takes that the services know by name has the services' limit (checks.LIMITS);
    the page forms say the same in maxlength and refuse more, before any service is called."""
    schemas = (await gateway.client.get("/openapi.json")).json()["components"]["schemas"]
    compared = set()
    for schema in schemas.values():
        for name, prop in schema.get("properties", {}).items():
            for shape in (prop, *prop.get("anyOf", ())):
                if "maxLength" in shape and name in LIMITS:
                    assert shape["maxLength"] == limit_of(name).max_chars, name
                    compared.add(name)
    assert {"description", "comment", "notes", "note", "name", "phone", "address", "other_text"} <= compared
    session = gateway.sign_in(["resident"], community_id="c1", grid_id="g1")
    page = (await gateway.client.get("/resident")).text
    for name in ("description", "other_text", "name", "phone", "address"):
        assert re.search(rf'name="{name}"[^>]*maxlength="{limit_of(name).max_chars}"', page), name
    too_long = "漏" * (limit_of("description").max_chars + 1)
    form = {"csrf_token": session.csrf, "client_request_id": "r-long", "menu_item_id": "m-repair"}
    refused = await gateway.client.post("/resident/demands", data={**form, "description": too_long})
    assert refused.status_code == 400 and not _calls(gateway, "PostDemand")
    assert f"具体情况{COLON}太长了{COMMA}最多 500 个字" in refused.text and "String should" not in refused.text
    api = await gateway.client.post("/api/v1/demands", json={"client_request_id": "r-long", "description": too_long},
                                    headers={"x-csrf-token": session.csrf})
    assert api.status_code == 422 and api.json()["field"] == "description" and not _calls(gateway, "PostDemand")
    fits = await gateway.client.post("/resident/demands", data={**form, "description": too_long[1:]})
    assert fits.status_code == 303 and len(_calls(gateway, "PostDemand")[-1].description) == 500
    comment = "好" * (limit_of("comment").max_chars + 1)
    rated = await gateway.client.post("/api/v1/demands/x/rate", json={"stars": 5, "comment": comment},
                                      headers={"x-csrf-token": session.csrf})
    assert rated.status_code == 422 and rated.json()["field"] == "comment"


async def test_service_invalid_argument_names_the_field(gateway):
    session = gateway.sign_in(["resident"], community_id="c1")  # no grid in the token, none given
    reply = await gateway.client.post("/api/v1/demands", json={"client_request_id": "r5", "menu_item_id": "m-repair"},
                                      headers={"x-csrf-token": session.csrf})
    assert reply.status_code == 400
    assert reply.json()["field"] == "grid_id"


async def test_failed_precondition_is_409(gateway):
    session = gateway.sign_in(["resident"], community_id="c1", grid_id="g1")
    posted = await gateway.client.post("/api/v1/demands", json={"client_request_id": "r6", "menu_item_id": "m-repair"},
                                       headers={"x-csrf-token": session.csrf})
    reply = await gateway.client.post(f"/api/v1/demands/{posted.json()['demand_id']}/confirm",
                                      headers={"x-csrf-token": session.csrf})
    assert reply.status_code == 409 and reply.json()["type"] == "urn:sandan:problem:not-now"


# ---- redo and withdraw: a reason is a code from the gateway's list (intake keeps no free text for either) ----------
async def _posted(gateway, session, status: str) -> str:
    posted = await gateway.client.post("/api/v1/demands", json={"client_request_id": f"r-{uuid.uuid4().hex[:6]}",
                                                               "menu_item_id": "m-repair"},
                                       headers={"x-csrf-token": session.csrf})
    demand_id = posted.json()["demand_id"]
    gateway.world.demands[demand_id].status = status
    return demand_id


def _calls(gateway, method: str) -> list:
    return [r for m, _, r in gateway.world.seen if m == method]


async def test_api_redo_and_withdraw_take_a_reason_code(gateway):
    session = gateway.sign_in(["resident"], community_id="c1", grid_id="g1")
    served = await _posted(gateway, session, "served")
    free = await gateway.client.post(f"/api/v1/demands/{served}/redo", json={"reason": "水管还在漏"},
                                     headers={"x-csrf-token": session.csrf})
    assert free.status_code == 422 and free.json()["field"] == "reason"
    assert not _calls(gateway, "RequestRedo")
    redo = await gateway.client.post(f"/api/v1/demands/{served}/redo", json={"reason": "not_solved"},
                                     headers={"x-csrf-token": session.csrf})
    assert redo.status_code == 200, redo.text
    assert redo.json()["status"] == "posted" and redo.json()["redo_count"] == 1
    assert [(r.demand_id, r.reason) for r in _calls(gateway, "RequestRedo")] == [(served, "not_solved")]
    withdrawn = await gateway.client.post(f"/api/v1/demands/{served}/withdraw", json={"reason": "solved_myself"},
                                          headers={"x-csrf-token": session.csrf})
    assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "withdrawn"
    assert [r.reason for r in _calls(gateway, "WithdrawDemand")] == ["solved_myself"]
    schema = json.loads(OPENAPI.read_text(encoding="utf-8"))["components"]["schemas"]
    assert schema["RedoIn"]["properties"]["reason"]["enum"] == list(REDO_REASONS)
    assert schema["WithdrawIn"]["properties"]["reason"]["enum"] == list(WITHDRAW_REASONS)


async def test_page_redo_offers_the_reasons_and_sends_the_chosen_code(gateway):
    session = gateway.sign_in(["resident"], community_id="c1", grid_id="g1")
    served = await _posted(gateway, session, "served")
    page = (await gateway.client.get(f"/resident/demands/{served}")).text
    for reason in REDO_REASONS:
        assert f'data-testid="redo-{reason}"' in page
    assert "问题没有解决" in page and "<input id=\"redo-reason\"" not in page
    free = await gateway.client.post(f"/resident/demands/{served}/redo",
                                      data={"csrf_token": session.csrf, "reason": "修得不好 还在漏"})
    assert free.status_code == 400 and "请从列表中选一个原因" in free.text and not _calls(gateway, "RequestRedo")
    reply = await gateway.client.post(f"/resident/demands/{served}/redo",
                                      data={"csrf_token": session.csrf, "reason": "partly_done"})
    assert reply.status_code == 303 and reply.headers["location"] == f"/resident/demands/{served}?done=saved"
    assert [r.reason for r in _calls(gateway, "RequestRedo")] == ["partly_done"]
    assert gateway.world.demands[served].status == "posted"


async def test_page_withdraw_sends_the_chosen_code(gateway):
    session = gateway.sign_in(["resident"], community_id="c1", grid_id="g1")
    posted = await _posted(gateway, session, "posted")
    await gateway.client.get("/prefs", params={"lang": "en"})
    page = (await gateway.client.get(f"/resident/demands/{posted}")).text
    assert 'data-testid="withdraw-reason"' in page and "posted by mistake" in page
    reply = await gateway.client.post(f"/resident/demands/{posted}/withdraw",
                                      data={"csrf_token": session.csrf, "reason": "posted_by_mistake"})
    assert reply.status_code == 303
    assert [r.reason for r in _calls(gateway, "WithdrawDemand")] == ["posted_by_mistake"]
    assert gateway.world.demands[posted].status == "withdrawn"
    again = await gateway.client.post(f"/resident/demands/{posted}/withdraw",
                                      data={"csrf_token": session.csrf, "reason": "posted_by_mistake"})
    assert again.status_code == 409 and "cannot be done now" in again.text


# ---- members ------------------------------------------------------------------------------------------------------
async def test_member_accepts_as_their_own_member_id(gateway):
    gateway.world.orders["o1"] = dispatch_pb2.Order(order_id="o1", demand_id="d1", community_id="c1", grid_id="g1",
                                                    status="offered", category="repair", due_at="2030-01-01T00:00:00Z")
    session = gateway.sign_in(["member"], member_id="m-7", community_id="c1")
    page = await gateway.client.get("/member")
    assert page.status_code == 200 and 'data-testid="offer-o1"' in page.text
    reply = await gateway.client.post("/member/orders/o1/accept", data={"csrf_token": session.csrf})
    assert reply.status_code == 303
    method, role, request = gateway.world.seen[-1]
    assert (method, role, request.member_id) == ("AcceptOrder", "member", "m-7")
    page = await gateway.client.get("/member")
    assert 'data-testid="my-order-o1"' in page.text and "完成服务" in page.text  # the ledger's reason, in words


async def test_a_member_sets_and_withdraws_their_name_on_the_public_board(gateway):
    session = gateway.sign_in(["member"], member_id="m-1", community_id="c1")
    page = (await gateway.client.get("/member")).text
    assert 'action="/member/public-name"' in page and "任何人都能看到" in page and "随时可以撤回" in page
    assert "现在不公示您的姓名" in page and 'data-testid="public-name-withdraw"' not in page
    refused = await gateway.client.post("/member/public-name", data={"public_name": "王芳"})  # no CSRF token
    assert refused.status_code in (400, 403) and not _calls(gateway, "SetPublicName")
    long = await gateway.client.post("/member/public-name", data={"csrf_token": session.csrf, "public_name": "王" * 21})
    assert long.status_code == 400 and "公示姓名" in long.text and not _calls(gateway, "SetPublicName")
    reply = await gateway.client.post("/member/public-name", data={"csrf_token": session.csrf, "public_name": "王芳"})
    assert reply.status_code == 303 and reply.headers["location"] == "/member?done=saved"
    [set_] = _calls(gateway, "SetPublicName")
    assert (set_.member_id, set_.public_name) == ("m-1", "王芳")
    assert [role for m, role, _ in gateway.world.seen if m == "SetPublicName"] == ["member"]
    page = (await gateway.client.get("/member")).text
    assert re.search(r'data-testid="my-public-name">[^<]*<strong>王芳</strong>', page)
    notice = (await gateway.client.get("/notices/communities/c1")).text
    assert [row[1] for row in _ranking_rows(notice)] == ["王芳", "党员 (未公开姓名)"]
    withdraw = await gateway.client.post("/member/public-name", data={"csrf_token": session.csrf, "withdraw": "1",
                                                                      "public_name": "王芳"})
    assert withdraw.status_code == 303 and _calls(gateway, "SetPublicName")[-1].public_name == ""
    notice = (await gateway.client.get("/notices/communities/c1")).text
    assert "王芳" not in notice and [row[1] for row in _ranking_rows(notice)] == ["党员 (未公开姓名)"] * 2


async def test_the_unit_notice_is_headed_by_the_units_name(gateway):
    gateway.world.unit_reports["u-c"] = _summary(1, 1.0, 0, 1.0, 1.0, 1.0)
    gateway.world.unit_names["u-c"] = "县人民医院"
    for params in ({}, {"print": "1"}):
        page = (await gateway.client.get("/notices/units/u-c", params=params)).text
        heading = re.search(r"<h1>(.*?)</h1>", page, re.S).group(1)
        assert "县人民医院" in heading and "u-c" not in heading
    assert {tuple(r.unit_ids) for r in _calls(gateway, "PublicNames")} == {("u-c",)}
    assert {role for m, role, _ in gateway.world.seen if m == "PublicNames"} == {"service_gateway"}
    api = (await gateway.client.get("/api/v1/public/units/u-c/notice")).json()
    assert (api["scope_id"], api["scope_name"]) == ("u-c", "县人民医院")
    gateway.world.unit_reports["u-x"] = _summary(1, 1.0, 0, 1.0, 1.0, 1.0)  # a unit dispatch has no name for
    page = (await gateway.client.get("/notices/units/u-x")).text
    assert "报到单位 u-x" in re.search(r"<h1>(.*?)</h1>", page, re.S).group(1)


def _card_classes(page: str, testid: str) -> list[str]:
    found = re.search(rf'<li class="([^"]*)" data-testid="{testid}"', page)
    assert found, f"no card {testid}"
    return found.group(1).split()


async def test_special_care_is_marked_in_words_whatever_the_urgency(gateway):
    """dispatch's order says special_care (the tags stay in intake): a routine order needing care is marked, with
    the words 需特别关照; an urgent one that needs none is not."""
    for order_id, urgency, care in (("o-care", "routine", True), ("o-hurry", "urgent", False)):
        gateway.world.orders[order_id] = dispatch_pb2.Order(
            order_id=order_id, demand_id=f"d-{order_id}", community_id="c1", grid_id="g1", status="offered",
            category="repair", urgency=urgency, special_care=care, due_at="2030-01-01T00:00:00Z")
    gateway.sign_in(["branch_secretary"], community_id="c1")
    console = (await gateway.client.get("/console")).text
    assert "care" in _card_classes(console, "inbox-order-o-care")
    assert "care" not in _card_classes(console, "inbox-order-o-hurry")
    assert re.search(r'data-testid="care-o-care">需特别关照<', console) and 'data-testid="care-o-hurry"' not in console
    gateway.sign_in(["member"], member_id="m-7", community_id="c1")
    member = (await gateway.client.get("/member")).text
    assert "care" in _card_classes(member, "offer-o-care") and "care" not in _card_classes(member, "offer-o-hurry")
    assert 'data-testid="care-o-care"' in member and 'data-testid="care-o-hurry"' not in member
    listed = (await gateway.client.get("/api/v1/orders", params={"community_id": "c1"})).json()["orders"]
    assert {o["order_id"]: o["special_care"] for o in listed} == {"o-care": True, "o-hurry": False}


async def test_page_validation_is_plain_words_naming_the_field(gateway):
    gateway.world.orders["o3"] = dispatch_pb2.Order(order_id="o3", demand_id="d3", community_id="c1", status="accepted",
                                                    member_id="m-7")
    session = gateway.sign_in(["member"], member_id="m-7", community_id="c1")
    form = {"csrf_token": session.csrf, "hours": "80"}
    zh = await gateway.client.post("/member/orders/o3/complete", data=form)
    assert zh.status_code == 400 and f"服务时长{COLON}不能大于 72" in zh.text and "less than" not in zh.text
    not_a_number = await gateway.client.post("/member/orders/o3/complete", data={**form, "hours": "两个"})
    assert f"服务时长{COLON}请填写数字" in not_a_number.text
    await gateway.client.get("/prefs", params={"lang": "en"})
    en = await gateway.client.post("/member/orders/o3/complete", data=form)
    assert en.status_code == 400 and "Hours served must be at most 72" in en.text
    assert not _calls(gateway, "CompleteService")


async def test_form_without_csrf_is_refused(gateway):
    gateway.world.orders["o2"] = dispatch_pb2.Order(order_id="o2", demand_id="d2", community_id="c1", status="offered")
    gateway.sign_in(["member"], member_id="m-7")
    reply = await gateway.client.post("/member/orders/o2/accept", data={})
    assert reply.status_code == 403
    assert gateway.world.orders["o2"].status == "offered"


# ---- themed party days and the roster, as lists ---------------------------------------------------------------------
def _party_days(gateway) -> None:
    for activity_id, community, starts, status in (("a-late", "c1", "2030-05-02T01:00:00+00:00", "scheduled"),
                                                   ("a-soon", "c1", "2030-05-01T01:00:00+00:00", "scheduled"),
                                                   ("a-done", "c1", "2030-04-01T01:00:00+00:00", "completed"),
                                                   ("a-there", "c2", "2030-05-01T01:00:00+00:00", "scheduled")):
        gateway.world.activities[activity_id] = dispatch_pb2.Activity(
            activity_id=activity_id, unit_id="u1", community_id=community, theme="festival_visit",
            title=f"重阳节 {activity_id}", starts_at=starts, ends_at=starts.replace("T01", "T03"), capacity=10,
            status=status)


async def test_a_member_checks_in_from_the_list_of_their_communitys_party_days(gateway):
    _party_days(gateway)
    session = gateway.sign_in(["member"], member_id="m-7", community_id="c1")
    page = (await gateway.client.get("/member")).text
    assert [r.community_id for r in _calls(gateway, "ListActivities")] == ["c1"]
    assert _calls(gateway, "ListActivities")[0].upcoming_only
    listed = re.findall(r'data-testid="party-day-([^"]+)"', page)
    assert listed == ["a-soon", "a-late"]  # soonest first, none of another community, none completed
    assert "节日敬老" in page and 'id="checkin-activity"' not in page  # no typed activity number any more
    reply = await gateway.client.post("/activities/check-in", data={"csrf_token": session.csrf,
                                                                    "activity_id": "a-late"})
    assert reply.status_code == 303 and reply.headers["location"] == "/member?done=saved"
    assert [(r.activity_id, r.member_id) for r in _calls(gateway, "CheckInMember")] == [("a-late", "m-7")]
    page = (await gateway.client.get("/member")).text
    assert 'data-testid="checked-in-a-late"' in page and 'data-testid="checkin-a-late"' not in page
    assert 'data-testid="checkin-a-soon"' in page
    refused = await gateway.client.post("/activities/check-in", data={"activity_id": "a-soon"})
    assert refused.status_code == 403 and len(_calls(gateway, "CheckInMember")) == 1  # no CSRF, no call


async def test_a_resident_signs_up_from_the_list_and_a_worker_for_a_resident(gateway):
    _party_days(gateway)
    session = gateway.sign_in(["resident"], subject="sub-zhao", community_id="c1", grid_id="g1")
    me = resident_id_for(gateway.issuer.url, "sub-zhao")
    page = (await gateway.client.get("/resident")).text
    assert re.findall(r'data-testid="party-day-([^"]+)"', page) == ["a-soon", "a-late"]
    assert 'id="activity_id"' not in page and 'data-testid="signup-a-soon"' in page
    reply = await gateway.client.post("/activities/sign-up", data={"csrf_token": session.csrf,
                                                                   "activity_id": "a-soon"})
    assert reply.status_code == 303 and reply.headers["location"] == "/resident?done=saved"
    assert gateway.world.activities["a-soon"].residents_signed_up == [me]
    page = (await gateway.client.get("/resident")).text
    assert 'data-testid="signed-up-a-soon"' in page and me not in page  # who signed up is counted, never shown
    # another community's list is refused: the page says so and still offers the rest
    page = (await gateway.client.get("/resident", params={"community": "c2"})).text
    assert 'data-testid="party-error"' in page and "party-day-a-there" not in page
    worker = gateway.sign_in(["grid_worker"], community_id="c1")
    page = (await gateway.client.get("/resident", params={"resident": me})).text
    assert f'id="su-resident-a-late" name="resident_id" value="{me}"' in page
    reply = await gateway.client.post("/activities/sign-up", data={"csrf_token": worker.csrf,
                                                                   "activity_id": "a-late", "resident_id": me})
    assert reply.status_code == 303
    method, role, request = gateway.world.seen[-1]
    assert (method, role, request.resident_id) == ("SignUpResident", "grid_worker", me)


async def test_the_secretary_sees_the_party_days_to_complete_and_completes_one(gateway):
    _party_days(gateway)
    session = gateway.sign_in(["branch_secretary"], community_id="c1")
    page = (await gateway.client.get("/console")).text
    assert re.findall(r'data-testid="party-day-([^"]+)"', page) == ["a-soon", "a-late"]
    assert 'data-testid="schedule-submit"' in page and 'for="hours-a-soon"' in page
    too_long = await gateway.client.post("/console/activities/a-soon/complete",
                                         data={"csrf_token": session.csrf, "hours": "30"})
    assert too_long.status_code == 400 and not _calls(gateway, "CompleteActivity")
    reply = await gateway.client.post("/console/activities/a-soon/complete",
                                      data={"csrf_token": session.csrf, "hours": "2.5"})
    assert reply.status_code == 303 and reply.headers["location"] == "/activities/a-soon?done=saved"
    assert [(r.activity_id, r.hours) for r in _calls(gateway, "CompleteActivity")] == [("a-soon", 2.5)]
    page = (await gateway.client.get("/console")).text
    assert re.findall(r'data-testid="party-day-([^"]+)"', page) == ["a-late"]
    again = await gateway.client.post("/console/activities/a-soon/complete",
                                      data={"csrf_token": session.csrf, "hours": "1"})
    assert again.status_code == 409


async def test_the_roster_page_lists_units_grids_and_members_and_keeps_the_lookup(gateway):
    gateway.world.rosters["c1"] = dispatch_pb2.Roster(
        community_id="c1", units=[dispatch_pb2.RosterUnit(unit_id="u1", unit_name="县卫健局", members_reported=2)],
        members=[dispatch_pb2.Member(member_id="m-1", unit_id="u1", community_id="c1", grid_id="g1",
                                     teams=["medical"], active=True),
                 dispatch_pb2.Member(member_id="m-2", unit_id="u1", community_id="c1", grid_id="g2", active=False)],
        grid_groups=[dispatch_pb2.GridGroup(grid_id="g1", community_id="c1", leader_member_id="m-1"),
                     dispatch_pb2.GridGroup(grid_id="g2", community_id="c1")])
    gateway.sign_in(["branch_secretary"], community_id="c1")
    page = (await gateway.client.get("/console/roster", params={"community": "c2"})).text
    assert [r.community_id for r in _calls(gateway, "ListRoster")] == ["c1"]  # their own, whatever is asked
    assert "县卫健局" in page and re.search(r"<td>u1</td><td>县卫健局</td><td>2</td>", page)
    assert re.search(r"<td>g1</td><td>m-1</td>", page) and re.search(r"<td>g2</td><td>未任命</td>", page)
    assert re.search(r'data-testid="roster-member-m-1"><td><a [^>]*>m-1</a></td><td>u1</td><td>g1</td><td>医疗</td>'
                     r"<td>在册</td>", page)
    assert re.search(r'data-testid="roster-member-m-2">.*<td>已离开</td>', page)
    looked_up = (await gateway.client.get("/console/roster", params={"member_id": "m-1"})).text
    assert 'data-testid="member-card"' in looked_up and "roster-units" in looked_up
    # an office names the community; another town's is refused by dispatch and the page says so
    gateway.sign_in(["town_office"], town_id="chengjiang")
    page = (await gateway.client.get("/console/roster", params={"community": "c1"})).text
    assert _calls(gateway, "ListRoster")[-1].community_id == "c1" and "roster-members" in page
    gateway.sign_in(["grid_worker"], community_id="c2")
    page = (await gateway.client.get("/console/roster")).text
    assert len(_calls(gateway, "ListRoster")) == 3 and "roster-units" not in page  # not a role of the row


# ---- pages: language, elderly mode, landmarks -----------------------------------------------------------------------
async def test_pages_chinese_first_english_switch_and_elder_mode(gateway):
    page = await gateway.client.get("/")
    assert '<html lang="zh-CN"' in page.text and "<main" in page.text and 'href="#main"' in page.text
    switched = await gateway.client.get("/prefs", params={"lang": "en", "elder": "1", "next": "/"})
    assert switched.status_code == 303 and switched.headers["location"] == "/"
    page = await gateway.client.get("/")
    assert '<html lang="en" class="elder"' in page.text and "Sign in" in page.text
    away = await gateway.client.get("/prefs", params={"lang": "zh", "next": "//evil.example/"})
    assert away.headers["location"] == "/"  # no open redirect


async def test_resident_page_offers_the_menu_and_other(gateway):
    gateway.sign_in(["resident"], community_id="c1", grid_id="g1")
    page = await gateway.client.get("/resident")
    assert page.status_code == 200
    assert 'data-testid="menu-m-repair"' in page.text and 'data-testid="menu-other"' in page.text
    assert 'for="description"' in page.text and 'name="csrf_token"' in page.text


async def test_a_resident_finds_their_demands_in_a_new_session(gateway):
    """Posted on one device; signed in again (a new session, nothing remembered in it): the page and the API list
    them from intake, newest first with their status in words; another resident's never appear."""
    first = gateway.sign_in(["resident"], subject="sub-liu", community_id="c1", grid_id="g1")
    posted = []
    for n in range(2):
        reply = await gateway.client.post("/api/v1/demands", json={"client_request_id": f"r{n}",
                                                                   "menu_item_id": "m-repair"},
                                          headers={"x-csrf-token": first.csrf})
        assert reply.status_code == 201, reply.text
        posted.append(reply.json()["demand_id"])
    gateway.world.demands[posted[0]].status = "served"
    other = gateway.sign_in(["resident"], subject="sub-wang", community_id="c1", grid_id="g1")
    reply = await gateway.client.post("/api/v1/demands", json={"client_request_id": "w1", "other_text": "errand"},
                                      headers={"x-csrf-token": other.csrf})
    wangs = reply.json()["demand_id"]

    gateway.client.cookies.clear()
    again = gateway.sign_in(["resident"], subject="sub-liu", community_id="c1", grid_id="g1")
    assert again.session_id != first.session_id
    page = await gateway.client.get("/resident")
    assert page.status_code == 200
    listed = re.findall(r'href="/resident/demands/([0-9a-f-]+)" data-testid="my-demand"', page.text)
    assert listed == posted[::-1] and wangs not in page.text
    assert re.findall(r'data-testid="my-demand-status">([^<]+)<', page.text) == [
        f"已提交{COMMA}等待社区派单", f"服务已完成{COMMA}请确认"]
    method, role, request = [seen for seen in gateway.world.seen if seen[0] == "ListResidentDemands"][-1]
    assert (method, role, request.resident_id) == ("ListResidentDemands", "resident",
                                                   resident_id_for(gateway.issuer.url, "sub-liu"))
    body = (await gateway.client.get("/api/v1/demands")).json()
    assert [d["demand_id"] for d in body["demands"]] == posted[::-1]
    assert [d["status"] for d in body["demands"]] == ["posted", "served"]
    assert (await gateway.client.get("/api/v1/demands", params={"limit": 1})).json()["demands"][0][
        "demand_id"] == posted[1]
    refused = await gateway.client.get("/api/v1/demands", params={
        "resident_id": resident_id_for(gateway.issuer.url, "sub-wang")})
    assert refused.status_code == 403 and wangs not in refused.text
    assert (await gateway.client.get("/api/v1/demands", params={"limit": 101})).status_code == 422


async def test_a_worker_finds_a_residents_demands_and_an_error_is_plain_words(gateway):
    gateway.sign_in(["grid_worker"], community_id="c1")
    resident = str(uuid.uuid4())
    gateway.world.demands["d-1"] = intake_pb2.Demand(demand_id="d-1", resident_id=resident, community_id="c1",
                                                     category="repair", status="accepted")
    page = await gateway.client.get("/resident", params={"resident": resident})
    assert re.findall(r'data-testid="my-demand-status">([^<]+)<', page.text) == ["党员已接单"]
    assert 'href="/resident/demands/d-1"' in page.text
    assert (await gateway.client.get("/api/v1/demands", params={"resident_id": resident})).json()[
        "demands"][0]["demand_id"] == "d-1"
    gateway.sign_in(["grid_worker"], community_id="c2")  # another community's worker
    page = await gateway.client.get("/resident", params={"resident": resident})
    assert page.status_code == 200 and 'data-testid="my-demands-error"' in page.text
    assert "您没有权限做这件事。" in page.text and 'href="/resident/demands/d-1"' not in page.text
    assert 'data-testid="post-form"' in page.text  # the rest of the page still works


def _ranking_rows(page: str) -> list[list[str]]:
    body = page.split('data-testid="ranking"', 1)[1].split("</tbody>", 1)[0].split("<tbody>", 1)[1]
    return [[html.unescape(re.sub(r"<[^>]+>", "", cell)).strip() for cell in re.findall(r"<td>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]


async def test_public_notice_board_needs_no_sign_in_and_shows_no_residents(gateway):
    gateway.world.public_names["m-1"] = "王芳"  # m-1 consented; m-2 did not
    page = await gateway.client.get("/notices/communities/c1", params={"quarter": "2026Q4"})
    assert page.status_code == 200 and "新区社区" in page.text and "★★★★" in page.text
    assert [row[:2] for row in _ranking_rows(page.text)] == [["1", "王芳"], ["2", "党员 (未公开姓名)"]]
    assert "m-1" not in page.text and "m-2" not in page.text  # names, not ids
    assert {(m, role) for m, role, _ in gateway.world.seen} == {("CommunityNotice", "service_gateway"),
                                                                ("PublicNames", "service_gateway")}
    [asked] = _calls(gateway, "PublicNames")
    assert list(asked.member_ids) == ["m-1", "m-2"]
    gateway.client.cookies.set("lang", "en")
    english = await gateway.client.get("/notices/communities/c1", params={"quarter": "2026Q4"})
    assert [row[1] for row in _ranking_rows(english.text)] == ["王芳", "member (name not shown)"]
    api = await gateway.client.get("/api/v1/public/communities/c1/notice", params={"quarter": "2026Q4"})
    assert api.status_code == 200 and api.json()["ranking"][0]["stars"] == 4
    assert [(r["member_id"], r["public_name"]) for r in api.json()["ranking"]] == [("m-1", "王芳"), ("m-2", "")]
    assert "resident" not in api.text


# ---- the town and county offices -------------------------------------------------------------------------------------
def _summary(services: int, hours: float, overdue: int, response: float, completion: float,
             satisfaction: float) -> scoring_pb2.Summary:
    return scoring_pb2.Summary(services_completed=services, hours=hours, overdue=overdue, response_rate=response,
                               completion_rate=completion, satisfaction_rate=satisfaction)


def _offices_world(gateway) -> None:
    """Units reported in the three communities (c1, c2 in chengjiang, c3 in shangmo) and what scoring says of
    each: u-shared is reported in both c1 and c2; u-gone has no figures yet; scoring cannot answer for u-down."""
    unit = dispatch_pb2.RosterUnit
    gateway.world.rosters.update({
        "c1": dispatch_pb2.Roster(community_id="c1", units=[
            unit(unit_id="u-a", unit_name="县卫健局", members_reported=2),
            unit(unit_id="u-b", unit_name="县税务局", members_reported=1),
            unit(unit_id="u-shared", unit_name="县供电公司", members_reported=1)]),
        "c2": dispatch_pb2.Roster(community_id="c2", units=[
            unit(unit_id="u-shared", unit_name="县供电公司", members_reported=3),
            unit(unit_id="u-c", unit_name="县人民医院", members_reported=4),
            unit(unit_id="u-gone", unit_name="县教育局", members_reported=1),
            unit(unit_id="u-down", unit_name="县水利局", members_reported=2)]),
        "c3": dispatch_pb2.Roster(community_id="c3", units=[
            unit(unit_id="u-far", unit_name="上模卫生院", members_reported=5)]),
    })
    gateway.world.unit_reports.update({
        "u-a": _summary(4, 6.5, 1, 1.0, 0.8, 0.9),
        "u-b": _summary(2, 3.0, 0, 0.5, 0.95, 0.9),  # as satisfied as u-a, more completed: above it
        "u-shared": _summary(9, 12.5, 0, 1.0, 0.7, 0.95),
        "u-c": _summary(1, 1.0, 2, 1.0, 1.0, -1),  # nobody rated yet: below every rate
        "u-down": grpc.StatusCode.UNAVAILABLE,
        "u-far": _summary(3, 2.0, 0, 1.0, 1.0, 1.0),  # the best, but in the other town
    })


def _unit_rows(page: str) -> dict[str, list[str]]:
    """The unit table's rows in order: unit id -> the cells' text."""
    body = page.split('data-testid="unit-table"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r'<tr data-testid="unit-([^"]+)">(.*?)</tr>', body, re.S)
    return {unit_id: [html.unescape(re.sub(r"<[^>]+>", "", cell)).strip()
                      for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)] for unit_id, row in rows}


async def test_a_town_office_ranks_its_towns_reporting_units(gateway):
    _offices_world(gateway)
    quarter = previous_quarters(2)[1]
    gateway.sign_in(["town_office"], town_id="chengjiang")
    page = (await gateway.client.get("/office", params={"quarter": quarter})).text
    assert sorted(r.community_id for r in _calls(gateway, "ListRoster")) == ["c1", "c2"]
    asked = _calls(gateway, "UnitReport")
    assert sorted({r.scope_id for r in asked}) == ["u-a", "u-b", "u-c", "u-down", "u-gone", "u-shared"]
    answered = [r.scope_id for r in asked if r.scope_id != "u-down"]  # UNAVAILABLE is retried by the channel
    assert sorted(answered) == sorted(set(answered))  # u-shared, in two communities, is asked once
    assert {r.quarter for r in asked} == {quarter}
    assert {role for m, role, _ in gateway.world.seen if m in ("UnitReport", "ListRoster")} == {"town_office"}
    rows = _unit_rows(page)
    # satisfaction first, then completion; no rate below any rate; no figures after the rest, by name
    unread = [u for _, u in sorted([("县教育局", "u-gone"), ("县水利局", "u-down")])]
    assert list(rows) == ["u-shared", "u-b", "u-a", "u-c", *unread]
    assert rows["u-shared"] == ["1", "县供电公司", "新区社区、玉华社区", "4", "9", "12.5", "0", "100%", "70%", "95%"]
    assert rows["u-b"] == ["2", "县税务局", "新区社区", "1", "2", "3.0", "0", "50%", "95%", "90%"]
    assert rows["u-a"] == ["3", "县卫健局", "新区社区", "2", "4", "6.5", "1", "100%", "80%", "90%"]
    assert rows["u-c"] == ["4", "县人民医院", "玉华社区", "4", "1", "1.0", "2", "100%", "100%", "—"]
    # unavailable is said so, never a zero: no rank, no figures
    assert rows["u-gone"] == ["—", "县教育局", "玉华社区", "1", "本季度暂无统计"]
    assert rows["u-down"] == ["—", "县水利局", "玉华社区", "2", "统计暂时无法读取"]
    assert "上模卫生院" not in page and 'data-testid="unit-count">6<' in page
    assert 'data-testid="ranking-rule"' in page and "先比满意率" in page
    link = f'href="/notices/units/u-a?quarter={quarter}&amp;print=1"'
    assert link in page
    printable = await gateway.client.get(html.unescape(link[6:-1]))  # the public printable notice it opens
    assert printable.status_code == 200 and 'class="printable"' in printable.text
    charted = json.loads(html.unescape(re.search(
        r'<script type="application/json" id="unit-chart-data">(.*?)</script>', page, re.S).group(1)))
    assert [r["unit_id"] for r in charted] == ["u-shared", "u-b", "u-a", "u-c"]  # the units with figures
    gateway.client.cookies.set("lang", "en")
    english = _unit_rows((await gateway.client.get("/office", params={"quarter": quarter})).text)
    assert english["u-shared"][2] == "新区社区, 玉华社区" and english["u-down"][4] == "Figures unavailable now"


async def test_the_county_office_ranks_every_unit_and_says_which_rosters_it_could_not_read(gateway):
    _offices_world(gateway)
    gateway.world.rosters["c2"] = grpc.StatusCode.UNAVAILABLE
    gateway.world.community_notices_refused["c3"] = grpc.StatusCode.PERMISSION_DENIED
    gateway.sign_in(["county_office"], county_id="taihe")
    page = await gateway.client.get("/office")
    assert page.status_code == 200
    assert sorted(r.community_id for r in _calls(gateway, "ListRoster")) == ["c1", "c2", "c3"]
    rows = _unit_rows(page.text)
    assert list(rows) == ["u-far", "u-shared", "u-b", "u-a"]  # c2's units could not be listed
    assert rows["u-far"][:4] == ["1", "上模卫生院", "上模社区", "5"] and rows["u-shared"][3] == "1"
    assert re.search(r'data-testid="rosters-missing">[^<]*玉华社区</p>', page.text)
    # a community scoring does not answer for: its figures are dashes, not zeros, and it comes last
    communities = re.sub(r">\s+<", "><", page.text.split('data-testid="community-table"', 1)[1].split("</table>")[0])
    assert re.findall(r'href="/notices/communities/([^"?]+)', communities) == ["c1", "c2", "c3"]
    assert re.search(r">上模社区</a></th><td>0</td>(<td>—</td>){5}</tr>", communities)
    assert re.search(r">新区社区</a></th><td>0</td><td>0</td><td>0</td><td>0%</td><td>0%</td><td>90%</td>",
                     communities)


async def test_the_office_asks_for_the_units_figures_concurrently_but_bounded(gateway):
    gateway.world.rosters["c1"] = dispatch_pb2.Roster(community_id="c1", units=[
        dispatch_pb2.RosterUnit(unit_id=f"u-{i:03d}", unit_name=f"单位{i:03d}", members_reported=1)
        for i in range(60)])
    gateway.world.unit_reports.update({f"u-{i:03d}": _summary(1, 1.0, 0, 1.0, 1.0, i / 100) for i in range(60)})
    gateway.world.unit_report_seconds = 0.05
    gateway.sign_in(["county_office"], county_id="taihe")
    page = (await gateway.client.get("/office")).text
    assert len(_calls(gateway, "UnitReport")) == 60
    most_at_once = gateway.world.unit_reports_in_flight[1]
    assert 1 < most_at_once <= OFFICE_CALLS_IN_FLIGHT, most_at_once
    assert list(_unit_rows(page))[:3] == ["u-059", "u-058", "u-057"]  # the most satisfied first


# ---- the OpenAPI document is committed and fresh --------------------------------------------------------------------
async def test_committed_openapi_is_fresh(gateway):
    live = (await gateway.client.get("/openapi.json")).json()
    committed = json.loads(OPENAPI.read_text(encoding="utf-8"))
    assert live == committed, "stale: run python -m sandan_gateway.openapi > services/gateway/openapi.json"


# ---- Open311 --------------------------------------------------------------------------------------------------------
async def test_open311_requires_jurisdiction(gateway):
    reply = await gateway.client.get("/open311/v2/services.json")
    assert reply.status_code == 400 and reply.json()[0]["code"] == 400
    assert "jurisdiction_id" in reply.json()[0]["description"]
    unknown = await gateway.client.get("/open311/v2/services.json", params={"jurisdiction_id": "nowhere"})
    assert unknown.status_code == 404


async def test_open311_services_is_the_menu_plus_other(gateway):
    reply = await gateway.client.get("/open311/v2/services.json", params={"jurisdiction_id": "c1"})
    codes = [s["service_code"] for s in reply.json()]
    assert codes == ["m-repair", "other"]
    first = reply.json()[0]
    assert set(first) >= {"service_code", "service_name", "description", "metadata", "type", "keywords", "group"}
    assert first["metadata"] is False and first["type"] == "realtime"


async def test_open311_post_needs_a_key_bound_to_the_jurisdiction(gateway):
    form = {"jurisdiction_id": "c1", "service_code": "m-repair", "address_string": "X 路 1 号", "first_name": "三",
            "last_name": "张", "phone": "13800000000"}
    assert (await gateway.client.post("/open311/v2/requests.json", data=form)).status_code == 403
    wrong = await gateway.client.post("/open311/v2/requests.json", data={**form, "api_key": "nope"})
    assert wrong.status_code == 403
    elsewhere = await gateway.client.post("/open311/v2/requests.json",
                                          data={**form, "api_key": "partner-key-for-tests", "jurisdiction_id": "c2"})
    assert elsewhere.status_code == 403
    ok = await gateway.client.post("/open311/v2/requests.json", data={**form, "api_key": "partner-key-for-tests"})
    assert ok.status_code == 200, ok.text
    created = ok.json()[0]
    assert created["service_request_id"] in gateway.world.demands
    posted = [r for m, role, r in gateway.world.seen if m == "PostDemand"][-1]
    assert posted.channel == "hotline" and posted.grid_id == "g1"
    assert [role for m, role, _ in gateway.world.seen if m in ("RegisterResident", "PostDemand")] == \
        ["service_gateway", "service_gateway"]


async def test_open311_requests_show_status_without_personal_data(gateway):
    gateway.world.orders["o9"] = dispatch_pb2.Order(order_id="o9", demand_id="d9", community_id="c1", status="accepted",
                                                    category="repair", level="town", due_at="2030-01-01T00:00:00Z")
    gateway.world.demands["d9"] = intake_pb2.Demand(demand_id="d9", resident_id="r-secret", community_id="c1")
    one = await gateway.client.get("/open311/v2/requests/d9.json", params={"jurisdiction_id": "c1"})
    assert one.status_code == 200
    view = one.json()[0]
    assert view["status"] == "open" and "accepted" in view["status_notes"] and "town" in view["status_notes"]
    assert view["requested_datetime"] == "2026-11-02T08:00:00Z" and view["expected_datetime"]
    for hidden in ("r-secret", "sub-secret-member"):
        assert hidden not in one.text
    assert view["address"] is None and view["description"] is None and view["lat"] is None
    listed = await gateway.client.get("/open311/v2/requests.json",
                                      params={"jurisdiction_id": "c1", "service_request_id": "d9,unknown"})
    assert [r["service_request_id"] for r in listed.json()] == ["d9"]
    closed = await gateway.client.get("/open311/v2/requests.json",
                                      params={"jurisdiction_id": "c1", "status": "closed",
                                              "start_date": "2026-01-01T00:00:00Z"})
    assert closed.json() == []
    opened = await gateway.client.get("/open311/v2/requests.json",
                                      params={"jurisdiction_id": "c1", "status": "open", "service_code": "m-repair",
                                              "start_date": "2026-01-01T00:00:00Z", "end_date": "2026-12-31T00:00:00Z",
                                              "max_requests": 1})
    assert [r["service_request_id"] for r in opened.json()] == ["d9"]
    bad = await gateway.client.get("/open311/v2/requests.json", params={"jurisdiction_id": "c1", "status": "lost"})
    assert bad.status_code == 400
    bad_date = await gateway.client.get("/open311/v2/requests.json",
                                        params={"jurisdiction_id": "c1", "start_date": "yesterday"})
    assert bad_date.status_code == 400


OPEN311_FORM = {"jurisdiction_id": "c1", "address_string": "X 路 1 号", "first_name": "三", "last_name": "张",
                "phone": "13800000000", "api_key": "partner-key-for-tests"}


def _open_order_for(gateway, demand_id: str) -> None:
    """What dispatch does when it reads DemandPosted: an order with the demand's category."""
    demand = gateway.world.demands[demand_id]
    gateway.world.orders[f"o-{demand_id}"] = dispatch_pb2.Order(
        order_id=f"o-{demand_id}", demand_id=demand_id, community_id="c1", grid_id=demand.grid_id, status="open",
        category=demand.category, due_at="2030-01-01T00:00:00Z")


async def test_open311_a_request_keeps_the_service_code_it_was_posted_with(gateway):
    posted = {}
    for code in ("m-repair", "other"):
        reply = await gateway.client.post("/open311/v2/requests.json",
                                          data={**OPEN311_FORM, "service_code": code, "description": "灯不亮了"})
        assert reply.status_code == 200, reply.text
        posted[code] = reply.json()[0]["service_request_id"]
        _open_order_for(gateway, posted[code])
    listed = (await gateway.client.get("/open311/v2/requests.json", params={"jurisdiction_id": "c1"})).json()
    assert {r["service_request_id"]: r["service_code"] for r in listed} == {v: k for k, v in posted.items()}
    services = {s["service_code"] for s in (await gateway.client.get(
        "/open311/v2/services.json", params={"jurisdiction_id": "c1"})).json()}
    for code, demand_id in posted.items():
        assert code in services
        one = (await gateway.client.get(f"/open311/v2/requests/{demand_id}.json",
                                        params={"jurisdiction_id": "c1"})).json()
        assert one[0]["service_code"] == code
        found = (await gateway.client.get("/open311/v2/requests.json",
                                          params={"jurisdiction_id": "c1", "service_code": code})).json()
        assert [r["service_request_id"] for r in found] == [demand_id]


async def test_open311_listing_reads_histories_only_for_what_it_returns(gateway):
    """Keyless and public: the filters the order list answers are applied first, and an order's history is read
    only when the order is returned; the page size is capped."""
    for n in range(30):
        gateway.world.orders[f"o{n}"] = dispatch_pb2.Order(
            order_id=f"o{n}", demand_id=f"d{n}", community_id="c1", category="repair" if n % 3 else "other",
            status="completed" if n % 2 else "open",
            due_at="2026-06-01T00:00:00Z" if n < 20 else "2030-01-01T00:00:00Z")

    def histories() -> list[str]:
        return [r.order_id for m, _, r in gateway.world.seen if m == "GetOrderHistory"]

    # open, off the menu, opened (so due) after the start: o20 .. o29 -> o24, o26 ... the even multiples of 3
    reply = await gateway.client.get("/open311/v2/requests.json", params={
        "jurisdiction_id": "c1", "status": "open", "service_code": "other", "start_date": "2026-10-01T00:00:00Z"})
    returned = [r["service_request_id"] for r in reply.json()]
    assert returned == ["d24"]
    assert sorted(histories()) == ["o24"]
    gateway.world.seen.clear()
    few = await gateway.client.get("/open311/v2/requests.json", params={
        "jurisdiction_id": "c1", "start_date": "2026-01-01T00:00:00Z", "max_requests": 3})
    assert [r["service_request_id"] for r in few.json()] == ["d29", "d28", "d27"]
    assert sorted(histories()) == ["o27", "o28", "o29"]
    for n in range(30, 130):
        gateway.world.orders[f"o{n}"] = dispatch_pb2.Order(order_id=f"o{n}", demand_id=f"d{n}", community_id="c1",
                                                           category="repair", status="open")
    gateway.world.seen.clear()
    capped = await gateway.client.get("/open311/v2/requests.json", params={
        "jurisdiction_id": "c1", "start_date": "2026-01-01T00:00:00Z", "max_requests": 1000})
    assert len(capped.json()) == MAX_REQUESTS and len(histories()) == MAX_REQUESTS


async def test_open311_discovery(gateway):
    body = (await gateway.client.get("/open311/v2/discovery.json")).json()
    assert body["endpoints"][0]["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert "application/json" in body["endpoints"][0]["formats"]


# ---- sign-in against the real Keycloak, the discovery document read at another address -------------------------------
def other_name(url: str) -> str:
    """The same server under another host name (localhost for 127.0.0.1 and back; else its address)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    other = {"127.0.0.1": "localhost", "localhost": "127.0.0.1"}.get(host) or socket.gethostbyname(host)
    return urlunsplit(parts._replace(netloc=other + (f":{parts.port}" if parts.port else "")))


async def _through_the_login_form(gw, location: str, username: str, password: str) -> httpx.Response:
    """The browser's part: Keycloak's form at `location`, filled in and posted; returns the redirect to the
    gateway's callback (not followed)."""
    form = await gw.client.get(location, follow_redirects=True)
    assert form.status_code == 200, form.text[:300]
    action = html.unescape(re.search(r'<form[^>]*id="kc-form-login"[^>]*action="([^"]+)"', form.text).group(1))
    reply = await gw.client.post(action, data={"username": username, "password": password, "credentialId": ""})
    assert reply.status_code == 302, reply.text[:300]
    return reply


async def test_sign_in_reads_the_discovery_document_at_its_own_address(oidc_gateway, oidc_issuer, keycloak):
    """SANDAN_OIDC_DISCOVERY_URL names the same Keycloak under another host name (standing in for its internal
    address in a cluster). The local Keycloak runs as deployed (deploy/local/keycloak.sh): hostname pinned to the
    issuer, back channel dynamic. So the document read there names the issuer and sends the browser to the
    issuer's address, while the gateway's own requests (code exchange, keys) go to the address it asked at; and the
    whole sign-in works: code exchange, id_token (its iss checked against the document's issuer), access token
    verified with keys found through that document."""
    issuer = oidc_issuer.rstrip("/")
    discovery = other_name(issuer) + "/.well-known/openid-configuration"
    inside, outside = urlsplit(discovery).netloc, urlsplit(issuer).netloc
    assert inside != outside
    person = keycloak.create(f"disc-{uuid.uuid4().hex[:8]}", ["branch_secretary"], community_id="c1")
    async with oidc_gateway(issuer, discovery) as gw:
        login = await gw.client.get("/login?next=/home")
        assert login.status_code in (302, 303), login.text[:300]
        location = login.headers["location"]
        metadata = await gw.auth.metadata()
        assert gw.auth.discovery_url == discovery and metadata["issuer"] == issuer
        # front channel at the public address, back channel at the one the gateway used
        assert urlsplit(metadata["authorization_endpoint"]).netloc == outside
        assert urlsplit(metadata["end_session_endpoint"]).netloc == outside
        assert urlsplit(metadata["token_endpoint"]).netloc == inside
        assert urlsplit(metadata["jwks_uri"]).netloc == inside
        assert location.startswith(metadata["authorization_endpoint"] + "?")
        assert "code_challenge_method=S256" in location
        back = await _through_the_login_form(gw, location, person.username, person.password)
        assert back.headers["location"].startswith("http://127.0.0.1:8000/auth/callback?")
        done = await gw.client.get(back.headers["location"])
        assert done.status_code == 303 and done.headers["location"] == "/home", done.text[:300]
        me = (await gw.client.get("/api/v1/me")).json()
        assert (me["subject"], me["roles"], me["community_id"]) == (person.user_id, ["branch_secretary"], "c1")
        assert gw.auth.verifier.keys.fetches >= 1
        assert gw.auth.verifier.issuer.discovery == discovery


@contextlib.contextmanager
def _serving(document: dict) -> Iterator[str]:
    """A discovery document at a local address of its own; yields its URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(document).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/.well-known/openid-configuration"
    finally:
        server.shutdown()
        server.server_close()


async def test_a_discovery_document_naming_another_issuer_refuses_sign_in(oidc_gateway, oidc_issuer, caplog):
    """A discovery document that names another issuer than SANDAN_OIDC_ISSUER (a misconfigured or hostile address):
    the gateway refuses to send anyone there (tokens would name the wrong issuer): /login answers 503 with no
    redirect, and one log line names both issuers (no traceback)."""
    document = httpx.get(oidc_issuer.rstrip("/") + "/.well-known/openid-configuration", timeout=30).json()
    named = "http://issuer.invalid/realms/sandan"
    with _serving({**document, "issuer": named}) as discovery:
        async with oidc_gateway(oidc_issuer, discovery) as gw:
            with caplog.at_level(logging.INFO, logger="sandan_gateway"):
                reply = await gw.client.get("/login?next=/home")
            assert reply.status_code == 503 and "location" not in reply.headers
            (record,) = [r for r in caplog.records
                         if r.name == "sandan_gateway.auth" and r.levelno >= logging.WARNING]
            assert record.levelno == logging.ERROR and "another issuer" in record.getMessage()
            assert record.fields == {"discovery_url": discovery, "issuer": oidc_issuer.rstrip("/"), "named": named}
            assert record.exc_info is None
            assert not [r for r in caplog.records if r.exc_info]
            logout = await gw.client.post("/logout")  # no session: home, not the other issuer's end_session
            assert logout.status_code == 303 and logout.headers["location"] == "http://127.0.0.1:8000/"


# ---- the 12345 hotline: acting for a caller in a community of their town or county --------------------------------
def _chooser(page: str) -> list[str]:
    form = page.split('data-testid="community-chooser"', 1)[1].split("</form>", 1)[0]
    return re.findall(r'<option value="([^"]+)"', form)


async def test_a_hotline_operator_posts_for_a_caller_in_a_community_they_choose(gateway):
    """A town's hotline chooses among its town's communities only, registers a caller there and posts for them on
    the hotline channel (intake sees the operator's own token); another town's community is refused in plain
    words, and nothing is called."""
    session = gateway.sign_in(["hotline_operator"], subject="sub-hl", county_id="taihe", town_id="chengjiang")
    home = await gateway.client.get("/home")
    assert home.status_code == 303 and home.headers["location"] == "/resident"
    page = (await gateway.client.get("/resident")).text
    assert _chooser(page) == ["c1", "c2"]  # 澄江镇's, not 上模乡's c3
    assert 'data-testid="post-form"' not in page and 'id="party"' not in page  # choose first; no party days
    registering = page.split('data-testid="register-form"', 1)[1].split("</form>", 1)[0]
    assert re.findall(r'<option value="([^"]+)"', registering) == ["c1", "c2"]

    reply = await gateway.client.post("/resident/register", data={
        "csrf_token": session.csrf, "community_id": "c2", "name": "赵敏", "phone": "13900005555",
        "address": "玉华社区 8 栋"})
    assert reply.status_code == 303
    query = dict(re.findall(r"([a-z]+)=([^&]+)", reply.headers["location"].split("?", 1)[1]))
    assert (query["done"], query["community"]) == ("registered", "c2")
    caller = query["resident"]
    method, role, request = gateway.world.seen[-1]
    assert (method, role, request.community_id) == ("RegisterResident", "hotline_operator", "c2")

    page = (await gateway.client.get(reply.headers["location"])).text
    assert 'data-testid="post-form"' in page and '<input type="hidden" name="community_id" value="c2">' in page
    assert 'data-testid="resident-id" required' in page and f'value="{caller}"' in page
    assert _chooser(page) == ["c1", "c2"] and '<option value="c2" selected>' in page
    reply = await gateway.client.post("/resident/demands", data={
        "csrf_token": session.csrf, "client_request_id": "call-1", "community_id": "c2", "resident_id": caller,
        "grid_id": "g-a", "menu_item_id": "other", "other_text": "取药", "description": "腿脚不便 请帮忙取药",
        "urgency": "normal", "care_tags": "elderly_alone"})
    assert reply.status_code == 303 and "done=posted" in reply.headers["location"]
    method, role, request = gateway.world.seen[-1]
    assert (method, role) == ("PostDemand", "hotline_operator")
    assert (request.resident_id, request.community_id, request.grid_id, request.channel, list(request.care_tags)) == (
        caller, "c2", "g-a", "hotline", ["elderly_alone"])
    demand = (await gateway.client.get(reply.headers["location"])).text
    assert f'href="/resident?community=c2&amp;resident={caller}" data-testid="back-to-resident"' in demand

    # another town's community: refused in plain words, on the page and in the forms, before any call
    seen = len(gateway.world.seen)
    refused = await gateway.client.get("/resident", params={"community": "c3", "resident": caller})
    assert refused.status_code == 403
    assert "您没有权限做这件事。" in refused.text and "这个社区不在您的热线服务范围内。" in refused.text
    assert 'data-testid="post-form"' not in refused.text
    for path, data in (("/resident/demands", {"client_request_id": "call-2", "community_id": "c3",
                                              "resident_id": caller, "grid_id": "g-a", "menu_item_id": "other",
                                              "other_text": "取药", "description": "腿脚不便 请帮忙取药"}),
                       ("/resident/register", {"community_id": "c3", "name": "钱七", "phone": "13900006666",
                                               "address": "上模社区 1 栋"})):
        reply = await gateway.client.post(path, data={"csrf_token": session.csrf, **data})
        assert reply.status_code == 403 and "这个社区不在您的热线服务范围内。" in reply.text, path
    assert gateway.world.seen[seen:] == []  # nothing reached intake
    gateway.client.cookies.set("lang", "en")
    refused = await gateway.client.get("/resident", params={"community": "c3"})
    assert refused.status_code == 403 and "This community is not one your hotline serves." in refused.text


async def test_the_county_hotline_chooses_among_every_community_and_another_county_among_none(gateway):
    gateway.sign_in(["hotline_operator"], county_id="taihe")
    assert _chooser((await gateway.client.get("/resident")).text) == ["c1", "c2", "c3"]
    page = (await gateway.client.get("/resident", params={"community": "c3"})).text
    assert 'data-testid="post-form"' in page and '<option value="c3" selected>' in page
    gateway.sign_in(["hotline_operator"], county_id="elsewhere")
    page = await gateway.client.get("/resident")
    assert page.status_code == 200 and 'data-testid="no-reach"' in page.text
    assert 'data-testid="community-chooser"' not in page.text
    assert (await gateway.client.get("/resident", params={"community": "c1"})).status_code == 403
