"""The gateway on the real stack: the real Keycloak (sign-in through the authorisation code flow with PKCE, driven
by httpx posting Keycloak's own login form), intake and dispatch as real processes on SQLite, the real Kafka broker
feeding the live stream, and the gateway itself as a real uvicorn process.

The gateway's public address is http://127.0.0.1:8000 (the redirect URI the local realm allows); it listens on a
free port, and the test's transport sends what is addressed to :8000 there, as a reverse proxy would.
"""

from __future__ import annotations

import asyncio
import html
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from sandan_contracts import TOPICS
from sandan_contracts.rpc import dispatch_pb2, dispatch_pb2_grpc
from sandan_eventbus.channels import options
from sandan_eventbus.devtools import ServiceProcess, groups_at_end
from sandan_eventbus.kafka import create_topics

PUBLIC = "http://127.0.0.1:8000"
pytestmark = pytest.mark.kafka

# dispatch's own KEK (never intake's): base64 of "sandan gateway dispatch only!!!!" (the tests' own, not a secret)
DISPATCH_KEK = {"DISPATCH_KEK": "gw-dispatch-kek:c2FuZGFuIGdhdGV3YXkgZGlzcGF0Y2ggb25seSEhISE="}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ToGateway(httpx.AsyncBaseTransport):
    """Requests for the public address go to the gateway's real port; everything else (Keycloak) as addressed."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "127.0.0.1" and request.url.port == 8000:
            request.url = request.url.copy_with(port=self.port)
        response = await self.inner.handle_async_request(request)
        if request.url.host != "127.0.0.1" or "set-cookie" not in response.headers:
            return response
        # Browsers treat http://127.0.0.1 as a secure context and send `Secure` cookies back to it (Keycloak sets
        # its login cookies so); http.cookiejar does not, so the flag is dropped here, for loopback only.
        headers = [(k, re.sub(rb";\s*Secure", b"", v, flags=re.IGNORECASE) if k.lower() == b"set-cookie" else v)
                   for k, v in response.headers.raw]
        return httpx.Response(response.status_code, headers=headers, stream=response.stream,
                              extensions=response.extensions)

    async def aclose(self) -> None:
        await self.inner.aclose()


def identity_env(issuer: str, places: Path) -> dict[str, str]:
    return {"SANDAN_OIDC_ISSUER": issuer, "SANDAN_OIDC_AUDIENCE": "sandan", "SANDAN_GRPC_PLAINTEXT": "allow",
            "SANDAN_PLACES_FILE": str(places)}


class Stack:
    def __init__(self, issuer: str, bootstrap: str, workdir: Path, community: str) -> None:
        self.issuer, self.bootstrap, self.workdir, self.community = issuer, bootstrap, workdir, community
        self.places = workdir / "places.toml"
        self.places.write_text('[county]\nid = "taihe"\nname = "泰和县委组织部"\n'
                               '[towns.chengjiang]\nname = "澄江镇党委"\n'
                               f'[communities.{community}]\nname = "测试社区"\ntown = "chengjiang"\ngrids = ["g1"]\n',
                               encoding="utf-8")
        self.keys = workdir / "open311.toml"
        self.keys.write_text(f'[partners.hotline]\nkey = "stack-key"\njurisdictions = ["{community}"]\n',
                             encoding="utf-8")
        self.processes: list[ServiceProcess] = []
        self.gateway: subprocess.Popen[bytes] | None = None
        self.port = free_port()

    def services(self, common: dict[str, str], run: str) -> list[ServiceProcess]:
        """The service processes behind the gateway (intake and dispatch; a subclass adds its own)."""
        return [
            ServiceProcess("sandan_intake", {**common, "INTAKE_EVENTSTORE_URL": f"sqlite:///{self.workdir}/i.db",
                                             "INTAKE_DATABASE_URL": f"sqlite:///{self.workdir}/ip.db",
                                             "INTAKE_GRPC_ADDRESS": self.intake_addr,
                                             "INTAKE_CONSUMER_GROUP": f"intake-{run}",
                                             "INTAKE_KEK": "gw-test-kek:c2FuZGFuIGdhdGV3YXkgdGVzdHMgb25seSEhISEhISE="},
                           self.intake_addr, self.workdir / "intake.log"),
            ServiceProcess("sandan_dispatch", {**common, "DISPATCH_EVENTSTORE_URL": f"sqlite:///{self.workdir}/d.db",
                                               "DISPATCH_DATABASE_URL": f"sqlite:///{self.workdir}/dp.db",
                                               "DISPATCH_GRPC_ADDRESS": self.dispatch_addr,
                                               "DISPATCH_CONSUMER_GROUP": f"dispatch-{run}",
                                               "DISPATCH_DEADLINE_SWEEP_SECONDS": "5",
                                               **DISPATCH_KEK},
                           self.dispatch_addr, self.workdir / "dispatch.log"),
        ]

    def start(self) -> None:
        run = uuid.uuid4().hex[:8]
        common = {"KAFKA_BOOTSTRAP_SERVERS": self.bootstrap, "LOG_LEVEL": "INFO",
                  **identity_env(self.issuer, self.places)}
        self.intake_addr, self.dispatch_addr = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
        self.scoring_addr = f"127.0.0.1:{free_port()}"  # nothing listens there unless `services` starts scoring
        self.processes = self.services(common, run)
        # The new consumer groups start at the topics' current end: this stack's community is new, and on a broker
        # that other tests have filled, reading (and dead-lettering) their whole history first would take minutes.
        asyncio.run(groups_at_end(self.bootstrap, {f"intake-{run}": list(TOPICS), f"dispatch-{run}": list(TOPICS)}))
        # all at once (each waits for its own health): a loaded machine imports slowly
        starting = ThreadPoolExecutor(len(self.processes))
        started = [starting.submit(p.start, 180) for p in self.processes]
        env = {**os.environ, **common, "GATEWAY_HTTP_PORT": str(self.port), "GATEWAY_PUBLIC_URL": PUBLIC,
               "GATEWAY_INTAKE_ADDRESS": self.intake_addr, "GATEWAY_DISPATCH_ADDRESS": self.dispatch_addr,
               "GATEWAY_SCORING_ADDRESS": self.scoring_addr, "GATEWAY_NOTIFY_ADDRESS": f"127.0.0.1:{free_port()}",
               "GATEWAY_WEB_CLIENT_SECRET": "local-web-secret", "GATEWAY_SESSION_SECRET": "s" * 40,
               "GATEWAY_SESSION_URL": f"sqlite:///{self.workdir}/sessions.db", "GATEWAY_LIVE_LOOKBACK_SECONDS": "300",
               "GATEWAY_OPEN311_KEYS_FILE": str(self.keys),
               "SANDAN_OIDC_CLIENT_ID": "sandan-gateway", "SANDAN_OIDC_CLIENT_SECRET": "local-gateway-secret"}
        log = (self.workdir / "gateway.log").open("ab")
        self.gateway = subprocess.Popen([sys.executable, "-m", "sandan_gateway"], env=env, stdout=log,
                                        stderr=subprocess.STDOUT)
        starting.shutdown()
        for future in started:
            future.result()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.gateway.poll() is not None:
                raise RuntimeError("gateway exited:\n" + (self.workdir / "gateway.log").read_text()[-3000:])
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).json()["live"]:
                    return
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            time.sleep(0.3)
        raise TimeoutError("gateway not live; see " + str(self.workdir / "gateway.log"))

    def stop(self) -> None:
        if self.gateway is not None:
            self.gateway.terminate()
            try:
                self.gateway.wait(20)
            except subprocess.TimeoutExpired:
                self.gateway.kill()
        for p in reversed(self.processes):
            p.stop()

    def browser(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=ToGateway(self.port), base_url=PUBLIC, timeout=30)


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, oidc_issuer: str, keycloak: Any, tmp_path_factory: pytest.TempPathFactory,
          ) -> Iterator[Stack]:
    asyncio.run(create_topics(kafka_bootstrap))
    s = Stack(oidc_issuer, kafka_bootstrap, tmp_path_factory.mktemp("gateway-stack"), f"gw{uuid.uuid4().hex[:8]}")
    s.start()
    try:
        yield s
    finally:
        s.stop()


async def sign_in(browser: httpx.AsyncClient, username: str, password: str, next_path: str = "/home") -> httpx.Response:
    """The authorisation code flow as a browser does it: /login -> Keycloak's form -> post it -> callback."""
    reply = await browser.get(f"/login?next={next_path}", follow_redirects=True)
    assert reply.url.host == "127.0.0.1" and reply.url.port == 8180, reply.url
    assert "code_challenge_method=S256" in str(reply.history[-1].headers["location"])
    action = html.unescape(re.search(r'<form[^>]*id="kc-form-login"[^>]*action="([^"]+)"', reply.text).group(1))
    return await browser.post(action, data={"username": username, "password": password, "credentialId": ""},
                              follow_redirects=True)


async def csrf(browser: httpx.AsyncClient) -> str:
    return (await browser.get("/api/v1/me")).json()["csrf_token"]


# A fresh stack's consumer groups read the shared broker's whole history first (old facts are dead-lettered on
# the way), so a fact that crosses services may take minutes to apply here: a wait, not a timing assertion.
async def eventually(check: Any, timeout: float = 420, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.5)


@pytest.fixture(scope="module")
def people(stack: Stack, keycloak: Any) -> dict[str, Any]:
    tag, c = uuid.uuid4().hex[:6], stack.community
    return {
        "resident": keycloak.create(f"gw-{tag}-resident", ["resident"], community_id=c, grid_id="g1"),
        "secretary": keycloak.create(f"gw-{tag}-secretary", ["branch_secretary"], community_id=c),
        "member": keycloak.create(f"gw-{tag}-member", ["member"], community_id=c, grid_id="g1",
                                  member_id=f"m-{tag}"),
        "other": keycloak.create(f"gw-{tag}-other", ["resident"], community_id=c, grid_id="g1"),
    }


async def test_sign_in_session_cookie_and_logout(stack: Stack, people: dict[str, Any]) -> None:
    async with stack.browser() as browser:
        landed = await sign_in(browser, people["resident"].username, people["resident"].password)
        assert landed.status_code == 200 and landed.url.path == "/resident", landed.url
        cookie = next(c for c in browser.cookies.jar if c.name == "sandan_session")
        assert cookie.has_nonstandard_attr("HttpOnly") and cookie.path == "/"
        me = (await browser.get("/api/v1/me")).json()
        assert me["roles"] == ["resident"] and me["community_id"] == stack.community
        refused = await browser.post("/logout", data={}, follow_redirects=False)
        assert refused.status_code == 403  # no CSRF token: the session stays
        assert (await browser.get("/api/v1/me")).status_code == 200
        out = await browser.post("/logout", data={"csrf_token": me["csrf_token"]}, follow_redirects=False)
        assert out.status_code == 303 and "/protocol/openid-connect/logout" in out.headers["location"]
        assert "id_token_hint=" in out.headers["location"]
        assert (await browser.get("/api/v1/me")).status_code == 401


async def test_wrong_password_opens_no_session(stack: Stack, people: dict[str, Any]) -> None:
    async with stack.browser() as browser:
        reply = await sign_in(browser, people["resident"].username, "wrong")
        assert reply.url.port == 8180  # still on Keycloak's form
        assert (await browser.get("/api/v1/me")).status_code == 401


async def read_events(lines: Any, until: Any, timeout: float) -> list[tuple[str, dict[str, Any]]]:
    """Server-sent events from a stream's line iterator until `until(found)` holds (or the timeout)."""
    found: list[tuple[str, dict[str, Any]]] = []
    kind = ""

    async def read() -> None:
        nonlocal kind
        async for line in lines:
            if line.startswith("event:"):
                kind = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and kind:
                found.append((kind, json.loads(line.split(":", 1)[1])))
                if until(found):
                    return

    await asyncio.wait_for(read(), timeout)
    return found


async def test_the_loop_through_the_gateway_with_live_updates(stack: Stack, people: dict[str, Any],
                                                              keycloak: Any) -> None:
    c = stack.community
    member_id = people["member"].attributes["member_id"]
    # The roster, set up over gRPC as the secretary (no page for reporting units yet).
    token = keycloak.sign_in(people["secretary"])
    async with grpc.aio.insecure_channel(stack.dispatch_addr, options=options()) as channel:
        roster = dispatch_pb2_grpc.DispatchStub(channel)
        meta = (("authorization", f"Bearer {token}"),)
        await roster.ReportUnit(dispatch_pb2.ReportUnitRequest(
            unit_id=f"u-{c}", community_id=c, unit_name="县人民医院"), metadata=meta)
    member_token = keycloak.sign_in(people["member"])
    async with grpc.aio.insecure_channel(stack.dispatch_addr, options=options()) as channel:
        await dispatch_pb2_grpc.DispatchStub(channel).ReportMember(dispatch_pb2.ReportMemberRequest(
            member_id=member_id, unit_id=f"u-{c}", community_id=c, grid_id="g1", teams=["repair"]),
            metadata=(("authorization", f"Bearer {member_token}"),))

    async with stack.browser() as secretary, stack.browser() as resident, stack.browser() as member, \
            stack.browser() as other:
        await sign_in(secretary, people["secretary"].username, people["secretary"].password)
        s_csrf = await csrf(secretary)
        item = await secretary.post(f"/api/v1/communities/{c}/menu", headers={"x-csrf-token": s_csrf},
                                    json={"item_id": "fix-pipe", "category": "repair", "title": "修水管"})
        assert item.status_code == 201, item.text

        # The secretary's live stream is open before the resident posts.
        async with secretary.stream("GET", "/api/v1/events") as live:
            assert live.status_code == 200 and live.headers["content-type"].startswith("text/event-stream")
            lines = live.aiter_lines()
            await read_events(lines, lambda f: f and f[-1][0] == "ready", 30)

            await sign_in(resident, people["resident"].username, people["resident"].password)
            r_csrf = await csrf(resident)
            page = await resident.get("/resident")
            assert 'data-testid="menu-fix-pipe"' in page.text
            registered = await resident.post("/resident/register", data={
                "csrf_token": r_csrf, "community_id": c, "name": "王奶奶", "phone": "13900000001",
                "address": "东门路 1 号"})
            assert registered.status_code in (200, 303), registered.text
            posted = await resident.post("/resident/demands", data={
                "csrf_token": r_csrf, "client_request_id": uuid.uuid4().hex, "menu_item_id": "fix-pipe",
                "urgency": "urgent", "care_tags": "elderly_alone", "description": "厨房水管漏水了"},
                follow_redirects=False)
            assert posted.status_code == 303, posted.text
            demand_id = posted.headers["location"].split("/")[-1].split("?")[0]

            seen = await read_events(lines, lambda f: any(k == "OrderOpened" for k, _ in f), 120)
        kinds = dict(seen)
        assert kinds["DemandPosted"]["demand_id"] == demand_id
        # the tags are sensitive personal information: only the coarse flag is published (contracts/README.md)
        assert (kinds["DemandPosted"]["care_tags"], kinds["DemandPosted"]["special_care"]) == ([], True)
        text = json.dumps(seen, ensure_ascii=False)
        for personal in ("王奶奶", "13900000001", "东门路", "厨房水管"):
            assert personal not in text

        # Another resident may not see it: the service says no, the page says so plainly.
        await sign_in(other, people["other"].username, people["other"].password)
        assert (await other.get(f"/api/v1/demands/{demand_id}")).status_code == 403

        async def the_order() -> Any:
            found = await secretary.get(f"/api/v1/orders/by-demand/{demand_id}")
            return found.json() if found.status_code == 200 else None

        order = await eventually(the_order, 120, "the secretary finds the demand's order")
        inbox = await secretary.get("/console")
        assert f'data-testid="inbox-order-{order["order_id"]}"' in inbox.text
        dispatched = await secretary.post(f"/api/v1/orders/{order['order_id']}/dispatch",
                                          headers={"x-csrf-token": s_csrf}, json={"member_id": member_id})
        assert dispatched.status_code == 200, dispatched.text

        await sign_in(member, people["member"].username, people["member"].password)
        m_csrf = await csrf(member)
        mine = await member.get("/member")
        assert f'data-testid="accept-{order["order_id"]}"' in mine.text
        accepted = await member.post(f"/member/orders/{order['order_id']}/accept", data={"csrf_token": m_csrf})
        assert accepted.status_code in (200, 303)

        async def contact_released() -> Any:  # once intake has read the acceptance from the orders topic
            reply = await member.get(f"/api/v1/orders/{order['order_id']}/contact")
            assert reply.status_code in (200, 409), reply.text
            return reply.json() if reply.status_code == 200 else None

        contact = await eventually(contact_released, what="intake records the acceptance")
        assert contact["name"] == "王奶奶" and contact["phone"] == "13900000001"
        done = await member.post(f"/api/v1/orders/{order['order_id']}/complete", headers={"x-csrf-token": m_csrf},
                                 json={"hours": 1.5, "notes": "换了阀门"})
        assert done.status_code == 200 and done.json()["status"] == "completed"

        async def served() -> bool:
            return (await resident.get(f"/api/v1/demands/{demand_id}")).json()["status"] == "served"

        await eventually(served, what="intake records the service")
        page = await resident.get(f"/resident/demands/{demand_id}")
        assert 'data-testid="confirm"' in page.text
        confirmed = await resident.post(f"/resident/demands/{demand_id}/confirm", data={"csrf_token": r_csrf})
        assert confirmed.status_code in (200, 303)
        rated = await resident.post(f"/api/v1/demands/{demand_id}/rate", headers={"x-csrf-token": r_csrf},
                                    json={"stars": 5, "comment": "谢谢"})
        assert rated.status_code == 200 and rated.json()["stars"] == 5


async def test_open311_on_the_real_stack(stack: Stack, people: dict[str, Any]) -> None:
    async with stack.browser() as partner:
        services = await partner.get("/open311/v2/services.json", params={"jurisdiction_id": stack.community})
        assert services.status_code == 200 and services.json()[-1]["service_code"] == "other"
        missing = await partner.get("/open311/v2/services.json")
        assert missing.status_code == 400
        posted = await partner.post("/open311/v2/requests.json", data={
            "api_key": "stack-key", "jurisdiction_id": stack.community, "service_code": "other",
            "description": "路灯不亮, 晚上很黑", "address_string": "文田路 8 号", "last_name": "李", "first_name": "四",
            "phone": "13700000002"})
        assert posted.status_code == 200, posted.text
        request_id = posted.json()[0]["service_request_id"]

        async def listed() -> Any:
            reply = await partner.get(f"/open311/v2/requests/{request_id}.json",
                                      params={"jurisdiction_id": stack.community})
            return reply.json() if reply.status_code == 200 else None

        found = await eventually(listed, what="dispatch opens the order")
        assert found[0]["status"] == "open" and found[0]["requested_datetime"]
        for personal in ("路灯不亮", "文田路", "13700000002", "李"):
            assert personal not in json.dumps(found, ensure_ascii=False)
