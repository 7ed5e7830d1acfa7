"""The pages in real Chromium on the real stack: one demand walked through the whole loop by clicking, as each role.

The stack is test_stack's (the real Keycloak, intake and dispatch as processes, the real Kafka broker, the gateway
as a uvicorn process) with scoring as a process too, for the points and the notice board. Two headless Chromiums:
a phone for the resident and a desk for everyone else (signing in as the next person after clearing cookies).

Every page is photographed into a kept folder ($SANDAN_SCREENSHOTS_DIR, else .local/screenshots/), must leave no
error in the browser's console, and is checked by axe-core (vendored in tests/vendor/) with no serious or critical
violation. Chromium missing fails the test (CI installs Debian's chromium, chromium-driver and fonts-noto-cjk).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
import pytest
from selenium.webdriver.common.by import By

from sandan_contracts.rpc import dispatch_pb2, dispatch_pb2_grpc, scoring_pb2, scoring_pb2_grpc
from sandan_eventbus.channels import options
from sandan_eventbus.devtools import ServiceProcess
from sandan_eventbus.kafka import create_topics
from sandan_gateway.places import current_quarter
from services.gateway.tests.browser import DESK, PHONE, Browser, Forwarder, chromium_paths, screenshots_dir
from services.gateway.tests.test_stack import PUBLIC, Stack

pytestmark = pytest.mark.kafka
KEYCLOAK_OUT_OF_SCOPE = "127.0.0.1:8180"
# The member's name on their contact card (dispatch's, never public) and the name they consent to show on the board.
CONTACT_NAME, PUBLIC_NAME = "李建国", "李**"


class StackWithScoring(Stack):
    """test_stack's stack, with scoring as a process as well (points, stars, notices)."""

    def services(self, common: dict[str, str], run: str) -> list[ServiceProcess]:
        return [*super().services(common, run),
                ServiceProcess("sandan_scoring", {**common, "SCORING_DATABASE_URL": f"sqlite:///{self.workdir}/s.db",
                                                  "SCORING_GRPC_ADDRESS": self.scoring_addr},
                               self.scoring_addr, self.workdir / "scoring.log")]


@dataclass
class World:
    stack: StackWithScoring
    people: dict[str, Any]
    phone: Browser
    desk: Browser
    unit_id: str
    member_id: str
    shots: Path


@pytest.fixture(scope="module")
def world(kafka_bootstrap: str, oidc_issuer: str, keycloak: Any, tmp_path_factory: pytest.TempPathFactory,
          ) -> Iterator[World]:
    chromium_paths()  # before anything starts: no Chromium fails here, loudly
    asyncio.run(create_topics(kafka_bootstrap))
    c = f"gb{uuid.uuid4().hex[:8]}"
    stack = StackWithScoring(oidc_issuer, kafka_bootstrap, tmp_path_factory.mktemp("gateway-browser"), c)
    stack.start()
    forwarder = Forwarder({("127.0.0.1", 8000): ("127.0.0.1", stack.port)})
    shots = screenshots_dir()
    for old in [*shots.glob("[0-9][0-9]-*.png"), *shots.glob("axe-*.json"), *shots.glob("waits.txt")]:  # ours
        old.unlink()
    counter = [0]
    keycloak_host = urlsplit(oidc_issuer).netloc
    phone = desk = None
    try:
        tag = uuid.uuid4().hex[:6]
        member_id = f"m-{tag}"
        people = {
            "resident": keycloak.create(f"gb-{tag}-resident", ["resident"], community_id=c, grid_id="g1"),
            "secretary": keycloak.create(f"gb-{tag}-secretary", ["branch_secretary"], community_id=c),
            "member": keycloak.create(f"gb-{tag}-member", ["member"], community_id=c, grid_id="g1",
                                      member_id=member_id),
            "county": keycloak.create(f"gb-{tag}-county", ["county_office"], county_id="taihe"),
        }
        unit_id = f"u-{c}"
        operator = keycloak.create(f"gb-{tag}-operator", ["operator"], county_id="taihe")
        scoring_at_the_end(stack, keycloak.sign_in(operator))
        asyncio.run(_roster(stack, keycloak, people, unit_id, member_id))
        phone = Browser("resident", PHONE, forwarder.port, keycloak_host, shots, counter)
        desk = Browser("desk", DESK, forwarder.port, keycloak_host, shots, counter)
        yield World(stack, people, phone, desk, unit_id, member_id, shots)
    finally:
        for b in (phone, desk):
            if b is not None:
                b.quit()
        forwarder.close()
        stack.stop()


def scoring_at_the_end(stack: StackWithScoring, operator_token: str) -> None:
    """scoring, new, would fold the shared broker's whole history live, record by record, before this test's facts
    (minutes when other tests have filled it). An operator's rebuild replays it in one fast pass and stores the
    ledger with the end positions; restarted, scoring restores that (one more fast pass) and folds live from there."""

    async def rebuild() -> list[str]:
        async with grpc.aio.insecure_channel(stack.scoring_addr, options=options()) as channel:
            progress = scoring_pb2_grpc.ScoringStub(channel).Rebuild(
                scoring_pb2.RebuildRequest(), metadata=(("authorization", f"Bearer {operator_token}"),), timeout=240)
            return [p.phase async for p in progress]

    phases = asyncio.run(rebuild())
    assert phases and phases[-1] == "done", phases
    scoring = next(p for p in stack.processes if p.module == "sandan_scoring")
    scoring.stop()
    scoring.start(timeout=180)


async def _roster(stack: Stack, keycloak: Any, people: dict[str, Any], unit_id: str, member_id: str) -> None:
    """The reporting unit and the member on the roster, over gRPC (no page reports units yet)."""
    c = stack.community
    async with grpc.aio.insecure_channel(stack.dispatch_addr, options=options()) as channel:
        roster = dispatch_pb2_grpc.DispatchStub(channel)
        secretary = (("authorization", f"Bearer {keycloak.sign_in(people['secretary'])}"),)
        await roster.ReportUnit(dispatch_pb2.ReportUnitRequest(unit_id=unit_id, community_id=c,
                                                               unit_name="县人民医院"), metadata=secretary)
        member = (("authorization", f"Bearer {keycloak.sign_in(people['member'])}"),)
        await roster.ReportMember(dispatch_pb2.ReportMemberRequest(
            member_id=member_id, unit_id=unit_id, community_id=c, grid_id="g1", teams=["repair"], name=CONTACT_NAME),
            metadata=member)


def api_call(browser: Browser, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """A JSON call from the page itself (the session cookie and the CSRF header), as the pages' own JS would."""
    return browser.driver.execute_async_script(
        "var path = arguments[0], method = arguments[1], body = arguments[2];"
        "var done = arguments[arguments.length - 1];"
        "fetch('/api/v1/me').then(function (r) { return r.json(); }).then(function (me) {"
        "  return fetch(path, {method: method, body: JSON.stringify(body),"
        "                      headers: {'content-type': 'application/json', 'x-csrf-token': me.csrf_token}}); })"
        ".then(function (r) { return r.json().then(function (j) { done({status: r.status, body: j}); }); })"
        ".catch(function (e) { done({status: 0, body: String(e)}); });",
        path, method, body)


def test_one_demand_through_the_whole_loop_by_clicking(world: World) -> None:
    phone, desk, c = world.phone, world.desk, world.stack.community
    people = world.people
    quarter = current_quarter()

    # -- the secretary signs in; the service menu gets its first item; the console is open and listening
    desk.sign_in(PUBLIC, people["secretary"].username, people["secretary"].password, "/console")
    item = api_call(desk, "POST", f"/api/v1/communities/{c}/menu",
                    {"item_id": "fix-pipe", "category": "repair", "title": "修水管"})
    assert item["status"] == 201, item
    desk.open(PUBLIC + "/console")
    desk.wait(lambda: desk.driver.find_element(By.TAG_NAME, "body").get_attribute("data-live") == "ready", 30,
              "the console's live stream is open")
    desk.driver.execute_script("window.sandanNotReloaded = true;")
    assert desk.find("inbox-count").text == "0"
    desk.check("console-empty")

    # -- the resident, on a phone: signs in, registers, posts by clicking
    phone.sign_in(PUBLIC, people["resident"].username, people["resident"].password, "/resident")
    phone.check("resident-first-time")
    phone.type("#reg-name", "王奶奶")
    phone.type("#reg-phone", "13900000001")
    phone.type("#reg-address", "东门路 1 号")
    phone.click(phone.find("register-submit"))
    assert phone.find("done").text
    phone.click(phone.find("menu-fix-pipe"))
    phone.type("#description", "厨房水管漏水了。请尽快来看看")
    # not urgent, but special care: the inbox must mark it for the care alone
    phone.click(phone.css('input[name="urgency"][value="routine"]'))
    phone.click(phone.css('input[name="care_tags"][value="elderly_alone"]'))
    phone.driver.execute_script("document.activeElement && document.activeElement.blur()")
    phone.check("resident-form-filled")
    phone.screenshot("resident-phone", first_screen=True)  # the README's
    phone.click(phone.find("post-submit"))
    phone.wait(lambda: phone.path().startswith("/resident/demands/"), 30, "the demand's page")
    demand_id = phone.path().rsplit("/", 1)[-1]
    assert phone.find("done").text and phone.find("demand-status").text.startswith("已提交")
    phone.check("resident-demand-posted")

    # -- the secretary's inbox shows it live: the stream swaps the inbox in, the page is not reloaded
    card = f'[data-demand="{demand_id}"]'
    desk.wait(lambda: desk.driver.find_elements(By.CSS_SELECTOR, card), 60, "the new demand in the live inbox")
    assert desk.driver.execute_script("return window.sandanNotReloaded === true"), "the console was reloaded"
    assert desk.find("inbox-count").text == "1"
    order_id = desk.css(card).get_attribute("data-testid").removeprefix("inbox-order-")
    classes = desk.css(card).get_attribute("class").split()
    assert "care" in classes and "urgent" not in classes, classes
    assert "需特别关照" in desk.find(f"care-{order_id}").text  # in words, not colour alone
    desk.check("console-live-inbox")

    # -- the secretary offers it to the pool; the member claims it, serves and reports the hours
    desk.click(desk.css(f"{card} h3 a"))
    assert desk.path() == f"/console/orders/{order_id}"
    desk.check("console-order")
    desk.click(desk.find("offer"))
    desk.wait(lambda: desk.find("order-status").text == "待认领", 10, "offered")
    desk.check("console-order-offered")

    desk.clear_cookies()
    desk.sign_in(PUBLIC, people["member"].username, people["member"].password, "/member")
    desk.wait(lambda: desk.has(f"claim-{order_id}"), 30, "the offer on the member's page")
    desk.check("member-offer")
    desk.click(desk.find(f"claim-{order_id}"))
    desk.wait(lambda: desk.has(f"complete-{order_id}"), 30, "the claimed order is mine")
    desk.check("member-accepted")

    desk.open(f"{PUBLIC}/member/orders/{order_id}")
    if desk.has("contact-pending"):  # intake has not read the acceptance yet: the page says so, no error
        desk.check("member-order-contact-pending")

    def contact_shown() -> bool:
        desk.driver.refresh()
        desk.wait_loaded()
        return desk.has("contact")

    desk.wait(contact_shown, 120, "the resident's contact for the member")
    assert "王奶奶" in desk.find("contact").text and "13900000001" in desk.find("contact").text
    desk.check("member-order-contact")
    desk.open(PUBLIC + "/member")
    desk.type(f"#hours-{order_id}", "1.5")
    desk.type(f"#notes-{order_id}", "换了阀门")
    desk.click(desk.find(f"complete-{order_id}"))
    assert desk.has("done") and not desk.has(f"my-order-{order_id}")

    # -- the resident's page turns to "served" by itself; confirms and rates
    phone.wait(lambda: phone.has("confirm"), 120, "the resident's page offers to confirm")
    phone.check("resident-served")
    phone.click(phone.find("confirm"))
    phone.wait(lambda: phone.has("rate"), 30, "the rating form")
    phone.click(phone.find("stars-5"))
    phone.type("#comment", "谢谢! 修得很好")
    phone.driver.execute_script("document.activeElement && document.activeElement.blur()")
    phone.check("resident-rate")
    phone.click(phone.find("rate"))
    assert phone.find("demand-status").text == "已确认完成"
    assert "★★★★★" in phone.css("#demand-live").text
    phone.check("resident-done")

    # -- the member sees the points (scoring folds the facts from the log)
    def points_listed() -> bool:
        desk.open(PUBLIC + "/member")
        return desk.has("ledger") and len(desk.find("ledger").find_elements(By.CSS_SELECTOR, "tbody tr")) >= 2

    desk.wait(points_listed, 120, "the member's points")
    ledger = desk.find("ledger").text
    assert "完成服务" in ledger, ledger
    desk.check("member-points")

    # -- the member consents to be named on the public notice board (the name they choose, not their contact's)
    assert "任何人都能看到" in desk.css("#public-name").text
    desk.type("#public-name-input", PUBLIC_NAME)
    desk.click(desk.find("public-name-save"))
    assert PUBLIC_NAME in desk.find("my-public-name").text and desk.has("public-name-withdraw")
    desk.check("member-public-name")

    # -- the public notice board (no sign-in) shows the quarter, with the member and nothing about the resident
    desk.clear_cookies()
    desk.open(PUBLIC + "/notices")
    desk.check("notices")
    desk.click(desk.find(f"notice-{c}-{quarter}"))
    assert desk.path() == f"/notices/communities/{c}"

    def member_ranked() -> bool:
        desk.driver.refresh()
        desk.wait_loaded()
        return PUBLIC_NAME in desk.find("ranking").text

    desk.wait(member_ranked, 60, "the member, by the name they chose, in the quarter's notice")
    notice = desk.find("notice").text
    assert quarter in notice and world.member_id not in notice
    for personal in ("王奶奶", "13900000001", "东门路", "厨房", CONTACT_NAME):
        assert personal not in desk.driver.page_source
    desk.check("notice-community")
    desk.open(f"{PUBLIC}/notices/units/{world.unit_id}?quarter={quarter}&print=1")
    assert PUBLIC_NAME in desk.find("ranking").text and CONTACT_NAME not in desk.driver.page_source
    assert "县人民医院" in desk.css("h1").text and world.unit_id not in desk.css("h1").text
    desk.check("notice-unit-printable")


def test_the_other_pages(world: World) -> None:
    """The pages outside the loop: landing, English and 长辈版, the office with its charts, the roster, a themed
    party day, and a refusal's message page."""
    phone, desk = world.phone, world.desk
    desk.clear_cookies()
    desk.open(PUBLIC + "/")
    desk.check("landing")

    # the resident's phone in English and in the elderly mode (large text)
    phone.open(PUBLIC + "/resident")
    phone.click(phone.find("lang-en"))
    assert phone.driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
    phone.click(phone.find("elder-on"))
    assert "elder" in phone.driver.find_element(By.TAG_NAME, "html").get_attribute("class")
    phone.check("resident-english-elder")
    phone.click(phone.find("lang-zh"))
    phone.check("resident-elder")
    phone.click(phone.find("elder-off"))

    # a demand that is not there: a plain message, no trace (the 404 itself is the one console line expected)
    phone.open(f"{PUBLIC}/resident/demands/{uuid.uuid4()}")
    assert phone.has("message")
    phone.screenshot("message", allow=("the server responded with a status of 40",))
    phone.axe("message")

    # the county office: escalations, the communities ranked, ECharts
    desk.sign_in(PUBLIC, world.people["county"].username, world.people["county"].password, "/office")
    desk.wait(lambda: desk.driver.execute_script(
        "return !!document.querySelector('#chart-rates canvas, #chart-rates svg')"), 30, "the charts drawn")
    assert desk.find("community-table").text
    # the reporting units ranked: the stack's one unit, with the figures of the service the loop test rated
    assert "先比满意率" in desk.find("ranking-rule").text
    unit_row = desk.find(f"unit-{world.unit_id}")
    cells = [c.text for c in unit_row.find_elements(By.CSS_SELECTOR, "th, td")]
    assert cells[:4] == ["1", "县人民医院", "测试社区", "1"], cells
    assert cells[-1] == "100%", cells  # five stars from the resident
    desk.wait(lambda: desk.driver.execute_script(
        "return !!document.querySelector('#chart-units canvas, #chart-units svg')"), 30, "the units' chart drawn")
    desk.check("office")
    desk.click(unit_row.find_element(By.CSS_SELECTOR, "th a"))
    assert desk.path() == f"/notices/units/{world.unit_id}" and "print=1" in desk.driver.current_url
    assert PUBLIC_NAME in desk.find("ranking").text and "县人民医院" in desk.css("h1").text
    desk.check("office-unit-notice")

    # the secretary: the roster and a themed party day
    desk.clear_cookies()
    desk.sign_in(PUBLIC, world.people["secretary"].username, world.people["secretary"].password, "/console")
    desk.open(PUBLIC + "/console/roster")
    desk.type("#member_id", world.member_id)
    desk.click(desk.css('form[role="search"] button'))
    assert world.unit_id in desk.find("member-card").text
    assert world.unit_id in desk.find(f"roster-member-{world.member_id}").text  # the list, no name or phone
    assert world.unit_id in desk.find("roster-units").text
    desk.check("roster")
    desk.open(PUBLIC + "/console#party")
    desk.type("#a-unit", world.unit_id)
    desk.type("#a-title", "重阳节敬老")
    for field, when in (("#a-start", "2030-10-10T09:00"), ("#a-end", "2030-10-10T11:00")):
        desk.driver.execute_script("document.querySelector(arguments[0]).value = arguments[1]", field, when)
    desk.click(desk.find("schedule-submit"))
    desk.wait(lambda: desk.path().startswith("/activities/"), 30, "the activity's page")
    assert desk.find("activity").text
    desk.check("activity")
    activity_id = desk.path().rsplit("/", 1)[-1]
    desk.open(PUBLIC + "/console#party")
    assert desk.has(f"complete-{activity_id}")  # listed to complete, under the schedule form's section
    desk.check("console-party-days")

    # the member checks in from the list of their community's party days
    desk.clear_cookies()
    desk.sign_in(PUBLIC, world.people["member"].username, world.people["member"].password, "/member")
    desk.click(desk.find(f"checkin-{activity_id}"))
    desk.wait(lambda: desk.has(f"checked-in-{activity_id}"), 30, "the member checked in")
    desk.check("member-party-day")
