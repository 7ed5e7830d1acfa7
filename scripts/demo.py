"""The main job, locally: intake, dispatch, scoring and notify on SQLite, a real Kafka, a real Keycloak, a
scripted day in one community.

Run through `bash scripts/demo.sh` (it starts the broker and Keycloak). Its people are Keycloak accounts, created
through the realm's admin API and signed in like anyone else; every call carries the token of the person who makes
it, and the services check role and place. Prints each step, each fact as it appears on the topics (with the
opaque subject of whoever caused it), each message notify sends (on its console channel), and one attempt the
services refuse: a member claiming an order offered to another grid.

The gateway (pages and the JSON API) runs beside them on http://127.0.0.1:8000: after the walk the demo prints
the accounts (password `sandan-demo`, local only) and, when run from a terminal, keeps everything up for
clicking through the same loop as each role, until Enter or Ctrl-C.

Environment: KAFKA_BOOTSTRAP_SERVERS, SANDAN_OIDC_ISSUER (default: the local Keycloak), DEMO_GRPC_PORT (the first
of four ports, default 50051), DEMO_HTTP_PORT (the gateway's, default 8000: the local realm's web client accepts
http://127.0.0.1:8000 only), DEMO_STAY (1: stay up after the walk, 0: stop; default: 1 from a terminal).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import secrets
import shutil
import sys
import time
import uuid
from pathlib import Path

import grpc
import httpx
from aiokafka import AIOKafkaConsumer

from sandan_contracts import TOPICS, decode
from sandan_contracts.rpc import dispatch_pb2 as dpb
from sandan_contracts.rpc import dispatch_pb2_grpc, intake_pb2_grpc, scoring_pb2_grpc
from sandan_contracts.rpc import intake_pb2 as ipb
from sandan_contracts.rpc import scoring_pb2 as spb
from sandan_eventbus.auth.client import AioBearerAuth, StaticToken
from sandan_eventbus.auth.keycloak import LOCAL_ISSUER, KeycloakAdmin
from sandan_eventbus.channels import aio_channel
from sandan_eventbus.devtools import ServiceProcess
from sandan_eventbus.kafka import bootstrap_servers, create_topics

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".local" / "demo"
PLACES = ROOT / "deploy" / "local" / "places.toml"  # the county, its towns and communities (an office's reach)
START = time.monotonic()
PASSWORD = "sandan-demo"  # the demo accounts' password: a local Keycloak only, printed for the click-through
COMMUNITY, GRID, OTHER_GRID = "chengjiang-xinqu", "chengjiang-xinqu-g03", "chengjiang-xinqu-g05"
# Who takes part, as Keycloak accounts: roles, and the attributes that say where they act (local demo data).
PEOPLE: dict[str, tuple[str, list[str], dict[str, str]]] = {
    "secretary": ("新区社区党委书记", ["branch_secretary"], {"community_id": COMMUNITY}),
    "worker": ("网格员 小周", ["grid_worker"], {"community_id": COMMUNITY, "grid_id": GRID}),
    "hospital": ("县人民医院党支部", ["unit_admin"], {"unit_id": "taihe-hospital", "community_id": COMMUNITY}),
    "m-liu": ("党员 刘建华", ["member"], {"member_id": "m-liu", "community_id": COMMUNITY, "grid_id": GRID}),
    "m-chen": ("党员 陈思远, 网格党小组组长", ["member", "grid_leader"],
               {"member_id": "m-chen", "community_id": COMMUNITY, "grid_id": GRID}),
    "m-zhou": ("党员 周立新 (网格 g05)", ["member"], {"member_id": "m-zhou", "community_id": COMMUNITY,
                                                 "grid_id": OTHER_GRID}),
    "county": ("县委组织部", ["county_office"], {"county_id": "taihe"}),
    # takes a resident's call and acts for them in any community of the county (pages: choose the community first)
    "hotline": ("县 12345 热线话务员 小吴", ["hotline_operator"], {"county_id": "taihe"}),
    "resident": ("居民 李桂兰 (has an account)", ["resident"], {"community_id": COMMUNITY, "grid_id": GRID}),
    "operator": ("县信息中心 (operator)", ["operator"], {}),
}


def say(text: str) -> None:
    print(f"[{time.monotonic() - START:6.2f}s] {text}", flush=True)


async def tail(bootstrap: str, stop: asyncio.Event) -> None:
    """Print every new fact on the event-log topics (not the dead letters)."""
    topics = [t.name for t in TOPICS.values() if t.dead_letter]
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, group_id=f"demo-tail-{uuid.uuid4().hex[:6]}",
                                auto_offset_reset="latest", enable_auto_commit=False)
    await consumer.start()
    try:
        while not consumer.assignment():  # noqa: ASYNC110 - polling the client's state, no event to await
            await asyncio.sleep(0.1)
        ready.set()
        while not stop.is_set():
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for r in records:
                    envelope, event = decode(r.value)
                    fields = event.model_dump(exclude={"order_id", "demand_id", "community_id"}, mode="json")
                    shown = ", ".join(f"{k}={v}" for k, v in fields.items() if v not in (None, [], ""))
                    cause = f"by subject {envelope.actor[:8]}…" if envelope.actor else \
                        f"caused by {envelope.causation_id or 'a gRPC call'}"
                    say(f"    {r.topic:20} {envelope.type:20} {shown}  (id {envelope.event_id}, {cause})")
    finally:
        await consumer.stop()


ready = asyncio.Event()


async def notifications(path: Path, stop: asyncio.Event) -> None:
    """Print what notify's console channel delivers (one JSON line per message)."""
    seen = 0
    while not stop.is_set():
        text = await asyncio.to_thread(lambda: path.read_text("utf-8") if path.exists() else "")
        if text:
            lines = text.splitlines()
            for line in lines[seen:]:
                m = json.loads(line)
                body = " ".join(m["body"].split())[:90]
                say(f"    ✉ notify → {m['recipient_kind']} {m['recipient_id'][:12]} [{m['template']}] {body}")
            seen = len(lines)
        await asyncio.sleep(0.2)


async def until(what: str, check, timeout: float = 30):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = await check()
            if result:
                return result
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


class Person:
    """Someone of the demo, signed in through Keycloak: their token goes on every call they make."""

    def __init__(self, key: str, title: str, roles: list[str], subject: str, token: str, ports: dict[str, int]
                 ) -> None:
        self.key, self.title, self.roles, self.subject = key, title, roles, subject
        auth = [AioBearerAuth(StaticToken(token))]  # the demo is shorter than a token's life (300 s)
        # with the retry policy (a busy service's refusal is retried) and the token on unary and streaming calls
        channels = {name: aio_channel(f"127.0.0.1:{port}", interceptors=auth) for name, port in ports.items()}
        self._channels = list(channels.values())
        self.intake = intake_pb2_grpc.IntakeStub(channels["intake"])
        self.dispatch = dispatch_pb2_grpc.DispatchStub(channels["dispatch"])
        self.scoring = scoring_pb2_grpc.ScoringStub(channels["scoring"])

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()


class Gateway(ServiceProcess):
    """The HTTP edge as a process; healthy once /healthz says it is live."""

    def __init__(self, env: dict[str, str], port: int, log_path: Path) -> None:
        super().__init__("sandan_gateway", env, "", log_path)
        self.url = f"http://127.0.0.1:{port}"

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"the gateway exited with {self.proc.returncode}; see {self.log_path}:\n"
                                   + self.log_path.read_text(errors="replace")[-3000:])
            with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                if httpx.get(f"{self.url}/healthz", timeout=1).json()["live"]:
                    return
            time.sleep(0.3)
        raise TimeoutError(f"the gateway is not live after {timeout}s; see {self.log_path}")


def sign_in(issuer: str) -> dict[str, tuple[str, str]]:
    """Create the demo's people in Keycloak (replacing earlier runs' accounts) and sign each one in: their subject
    and access token by key."""
    admin = KeycloakAdmin(issuer)
    try:
        signed_in = {}
        for key, (title, roles, places) in PEOPLE.items():
            account = admin.create(f"demo-{key}", roles, password=PASSWORD, **places)
            signed_in[key] = (account.user_id, admin.sign_in(account))
            where = ", ".join(f"{k}={v}" for k, v in places.items()) or "the county"
            say(f"   {title} signed in as demo-{key} ({'+'.join(roles)}; {where}; subject {account.user_id[:8]}…)")
        return signed_in
    finally:
        admin.close()


async def scenario(p: dict[str, Person]) -> None:
    secretary, worker, hospital, county, operator = (p[k] for k in ("secretary", "worker", "hospital", "county",
                                                                    "operator"))
    say("澄江镇新区社区's secretary publishes its service menu: 送医送药 (medicine delivery), urgent within 2 h")
    await secretary.intake.PublishMenuItem(ipb.PublishMenuItemRequest(
        community_id=COMMUNITY, item_id="med-delivery", category="medical", title="送医送药",
        deadlines=ipb.DeadlineSeconds(urgent=7200, normal=86400, routine=604800)))
    say("泰和县人民医院's party branch reports its unit to the community (单位报到)")
    await hospital.dispatch.ReportUnit(dpb.ReportUnitRequest(unit_id="taihe-hospital", community_id=COMMUNITY,
                                                             unit_name="泰和县人民医院",
                                                             contact_email="dangban@hospital.taihe.example"))
    for key, grid, teams in (("m-liu", GRID, ["medical"]), ("m-chen", GRID, ["medical", "policy"]),
                             ("m-zhou", OTHER_GRID, ["legal_aid"])):
        say(f"member {key} reports in person, joins grid {grid[-3:]} and teams {teams} (党员报到)")
        await p[key].dispatch.ReportMember(dpb.ReportMemberRequest(
            member_id=key, unit_id="taihe-hospital", community_id=COMMUNITY, grid_id=grid, teams=teams,
            name=p[key].title.split()[1].rstrip(","), phone="13900000000"))
    await secretary.dispatch.FormGridGroup(dpb.FormGridGroupRequest(community_id=COMMUNITY, grid_id=GRID))
    await secretary.dispatch.AppointGridLeader(dpb.AppointGridLeaderRequest(grid_id=GRID, member_id="m-chen"))
    say("the grid worker registers 王秀英, who lives alone and has no account: the worker acts for her")
    resident = await worker.intake.RegisterResident(ipb.RegisterResidentRequest(
        community_id=COMMUNITY, name="王秀英", phone="13800000000", address="澄江镇新区 3 栋 2 单元"))

    walk = f"demo-{uuid.uuid4().hex[:6]}"
    meta = (("x-correlation-id", walk),)
    say(f"① the grid worker posts her demand (居民点单), correlation {walk}")
    demand = await worker.intake.PostDemand(ipb.PostDemandRequest(
        client_request_id=walk, resident_id=resident.resident_id, community_id=COMMUNITY, grid_id=GRID,
        menu_item_id="med-delivery", description="独居老人需要每周送降压药上门", urgency="urgent",
        care_tags=["elderly_alone"], channel="grid_worker"), metadata=meta)
    leader = p["m-chen"]  # a member, and the grid's party group leader
    order = await until("the order", lambda: leader.dispatch.FindOrderByDemand(
        dpb.DemandRef(demand_id=demand.demand_id)))
    say(f"   dispatch opened order {order.order_id[:8]} from DemandPosted; due {order.due_at}")
    ranked = await leader.dispatch.SuggestMembers(dpb.SuggestMembersRequest(order_id=order.order_id, limit=2))
    say("   the grid leader asks for suggestions: " + ", ".join(f"{c.member_id} (score {c.score:g})"
                                                           for c in ranked.candidates))
    say("② the grid leader offers it to grid g03's pool (支部下单)")
    await leader.dispatch.OfferOrder(dpb.OfferOrderRequest(order_id=order.order_id), metadata=meta)
    say("   member m-zhou, of grid g05 and the legal aid team, tries to claim it:")
    try:
        await p["m-zhou"].dispatch.AcceptOrder(dpb.AcceptOrderRequest(order_id=order.order_id, member_id="m-zhou"),
                                               metadata=meta)
        raise RuntimeError("the claim from outside the grid was accepted: the demo expected a refusal")
    except grpc.aio.AioRpcError as refused:
        if refused.code() != grpc.StatusCode.PERMISSION_DENIED:
            raise
        say(f"   ✗ refused: {refused.code().name}: {refused.details()} (nothing was recorded)")
    say("   two members of grid g03 claim at once")
    claims = await asyncio.gather(*(p[m].dispatch.AcceptOrder(dpb.AcceptOrderRequest(
        order_id=order.order_id, member_id=m), metadata=meta) for m in ("m-liu", "m-chen")), return_exceptions=True)
    for m, claim in zip(("m-liu", "m-chen"), claims, strict=True):
        say(f"   {m}: " + ("accepted (党员接单)" if isinstance(claim, dpb.Order) else f"refused: {claim.details()}"))
    winner = p[next(c for c in claims if isinstance(c, dpb.Order)).member_id]
    contact = await until("acceptance at intake", lambda: _contact(winner, demand.demand_id))
    say(f"   {winner.key} fetches the resident's contact from intake as themselves ({len(contact.phone)} digits; "
        "the release is recorded)")
    say("③ the member serves and reports 1.5 hours")
    await winner.dispatch.CompleteService(dpb.CompleteServiceRequest(
        order_id=order.order_id, member_id=winner.key, hours=1.5, notes="送药上门, 测量血压"), metadata=meta)
    await until("served at intake", lambda: _status(worker, demand.demand_id, "served"))
    say("④ the grid worker calls 王秀英 back, and confirms and rates 5 stars for her")
    await worker.intake.ConfirmCompletion(ipb.DemandRef(demand_id=demand.demand_id), metadata=meta)
    rated = await worker.intake.RateService(ipb.RateServiceRequest(demand_id=demand.demand_id, stars=5),
                                            metadata=meta)
    say(f"   demand {rated.demand_id[:8]} is {rated.status}, {rated.stars}★, served by {rated.member_id}")
    ledger = await until("the points", lambda: _ledger(winner, 4))
    total = next(t.points for t in ledger.totals if t.period == "all")
    say(f"⑤ scoring: {winner.key} reads their ledger: " + ", ".join(f"{e.rule} {e.points:+d}" for e in ledger.entries)
        + f" = {total} points (rules {ledger.entries[0].rule_set_version})")
    quarter = ledger.entries[0].quarter
    shown = {"m-liu": "刘**", "m-chen": "陈**"}[winner.key]  # of their choosing: consent, never the contact name
    await winner.dispatch.SetPublicName(dpb.SetPublicNameRequest(member_id=winner.key, public_name=shown),
                                        metadata=meta)
    say(f"   {winner.key} consents to be named {shown} on the public notice board (withdrawn any time)")
    published = await county.scoring.PublishQuarterlyNotices(spb.QuarterRef(quarter=quarter))
    say(f"⑥ the county office publishes the quarterly notice for {quarter} (每季度通报公示): "
        + ", ".join(published.notice_ids))
    rebuilt = [r async for r in operator.scoring.Rebuild(spb.RebuildRequest())][-1]
    live = await operator.scoring.Digest(spb.Empty())
    same = "equals" if rebuilt.digest == live.digest else "DIFFERS FROM"
    say(f"⑦ the county's operator rebuilds the ledger from the event log in {rebuilt.seconds:.2f}s: digest "
        f"{rebuilt.digest[:12]}… {same} the live state")
    history = await secretary.intake.GetDemandHistory(ipb.DemandRef(demand_id=demand.demand_id))
    who = {person.subject: person.key for person in p.values()}
    say("⑧ the secretary reads the demand's audit trail (opaque subjects; names only in Keycloak):")
    for e in history.entries:
        actor = f"{who.get(e.subject, e.subject[:8])} as {e.role}" if e.subject else f"caused by {e.caused_by}"
        behalf = f", for resident {e.on_behalf_of[:8]}…" if e.on_behalf_of else ""
        say(f"   v{e.version} {e.what:20} {actor}{behalf}")
    await asyncio.sleep(3)  # let the last facts and messages reach the tails


async def _contact(member: Person, demand_id: str):  # type: ignore[no-untyped-def]
    try:
        return await member.intake.GetServiceContact(ipb.ServiceContactRequest(demand_id=demand_id,
                                                                               member_id=member.key))
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
            return None
        raise


async def _ledger(member: Person, entries: int):  # type: ignore[no-untyped-def]
    ledger = await member.scoring.GetMemberLedger(spb.MemberLedgerRequest(member_id=member.key))
    return ledger if len(ledger.entries) >= entries else None


async def _status(worker: Person, demand_id: str, status: str) -> bool:
    return (await worker.intake.GetDemand(ipb.DemandRef(demand_id=demand_id))).status == status


async def main() -> int:
    bootstrap = bootstrap_servers()
    issuer = os.environ.get("SANDAN_OIDC_ISSUER", "").strip() or LOCAL_ISSUER
    base = int(os.environ.get("DEMO_GRPC_PORT", "50051"))
    http_port = int(os.environ.get("DEMO_HTTP_PORT", "8000"))
    stay = os.environ.get("DEMO_STAY", "1" if sys.stdin.isatty() else "0") == "1"
    ports = {name: base + i for i, name in enumerate(("intake", "dispatch", "scoring", "notify"))}
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    created = await create_topics(bootstrap)
    say(f"topics ready on {bootstrap} ({created} created from the registry)")
    # local run: plaintext gRPC is allowed explicitly; every call is still verified against the issuer
    common = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
              "SANDAN_OIDC_ISSUER": issuer, "SANDAN_GRPC_PLAINTEXT": "allow", "SANDAN_PLACES_FILE": str(PLACES)}
    run = uuid.uuid4().hex[:6]
    address = {name: f"127.0.0.1:{port}" for name, port in ports.items()}
    # intake seals residents' personal data under a key-encryption key; the demo's store is new each run, so is
    # its key (local demo only: production reads INTAKE_KEK_FILE from a secret)
    kek = "demo-kek:" + base64.b64encode(secrets.token_bytes(32)).decode()
    intake = ServiceProcess("sandan_intake", {**common, "INTAKE_EVENTSTORE_URL": f"sqlite:///{WORK}/intake.db",
                                              "INTAKE_GRPC_ADDRESS": address["intake"], "INTAKE_KEK": kek,
                                              "INTAKE_CONSUMER_GROUP": f"intake-demo-{run}"},
                            address["intake"], WORK / "intake.log")
    dispatch = ServiceProcess("sandan_dispatch", {**common,
                                                  "DISPATCH_EVENTSTORE_URL": f"sqlite:///{WORK}/dispatch.db",
                                                  "DISPATCH_GRPC_ADDRESS": address["dispatch"],
                                                  "DISPATCH_CONSUMER_GROUP": f"dispatch-demo-{run}",
                                                  # dispatch's own, never intake's (new each run, as the store)
                                                  "DISPATCH_KEK": "demo-dispatch-kek:"
                                                  + base64.b64encode(secrets.token_bytes(32)).decode()},
                              address["dispatch"], WORK / "dispatch.log")
    scoring = ServiceProcess("sandan_scoring", {**common, "SCORING_DATABASE_URL": f"sqlite:///{WORK}/scoring.db",
                                                "SCORING_GRPC_ADDRESS": address["scoring"]},
                             address["scoring"], WORK / "scoring.log")
    # notify reads contacts from intake and dispatch as itself (client credentials; deploy/local/keycloak)
    notify = ServiceProcess("sandan_notify", {**common, "NOTIFY_EVENTSTORE_URL": f"sqlite:///{WORK}/notify.db",
                                              "NOTIFY_GRPC_ADDRESS": address["notify"],
                                              "NOTIFY_CONSUMER_GROUP": f"notify-demo-{run}",
                                              "NOTIFY_INTAKE_ADDRESS": address["intake"],
                                              "NOTIFY_DISPATCH_ADDRESS": address["dispatch"],
                                              "SANDAN_OIDC_CLIENT_ID": "sandan-notify",
                                              "SANDAN_OIDC_CLIENT_SECRET": "local-notify-secret",
                                              "NOTIFY_OFFICES_FILE": str(PLACES),
                                              "NOTIFY_CONSOLE": str(WORK / "notifications.jsonl"),
                                              "NOTIFY_QUIET_HOURS": "off"},
                            address["notify"], WORK / "notify.log")
    # the pages and the JSON API; it signs people in with the local realm's web client and calls as itself
    # (sandan-gateway) only for the public notice board
    gateway = Gateway({**common, "GATEWAY_HTTP_PORT": str(http_port), "GATEWAY_PUBLIC_URL": f"http://127.0.0.1:{http_port}",
                       "GATEWAY_INTAKE_ADDRESS": address["intake"], "GATEWAY_DISPATCH_ADDRESS": address["dispatch"],
                       "GATEWAY_SCORING_ADDRESS": address["scoring"], "GATEWAY_NOTIFY_ADDRESS": address["notify"],
                       "GATEWAY_WEB_CLIENT_SECRET": "local-web-secret",
                       "GATEWAY_SESSION_SECRET": secrets.token_urlsafe(32),
                       "GATEWAY_SESSION_URL": f"sqlite:///{WORK}/gateway-sessions.db",
                       "SANDAN_OIDC_CLIENT_ID": "sandan-gateway", "SANDAN_OIDC_CLIENT_SECRET": "local-gateway-secret"},
                      http_port, WORK / "gateway.log")
    stop = asyncio.Event()
    services = [intake, dispatch, scoring, notify, gateway]
    people: dict[str, Person] = {}
    try:
        for service in services:
            service.start(timeout=120)
        say(f"intake :{ports['intake']}, dispatch :{ports['dispatch']}, scoring :{ports['scoring']}, notify "
            f":{ports['notify']} are SERVING (tokens from {issuer}); the gateway is live on {gateway.url}; stores "
            "in .local/demo/")
        tailer = asyncio.create_task(tail(bootstrap, stop))
        mailer = asyncio.create_task(notifications(WORK / "notifications.jsonl", stop))
        await asyncio.wait_for(ready.wait(), 30)
        say("the people sign in through Keycloak (accounts created for the demo):")
        signed_in = await asyncio.to_thread(sign_in, issuer)
        people = {key: Person(key, PEOPLE[key][0], PEOPLE[key][1], subject, token, ports)
                  for key, (subject, token) in signed_in.items()}
        await scenario(people)
        stop.set()
        with contextlib.suppress(Exception):
            await tailer
            await mailer
        say("done: the demand travelled the whole loop, each step by the person allowed to take it. Logs: "
            ".local/demo/*.log; messages: .local/demo/notifications.jsonl")
        say(f"the pages: open {gateway.url} and sign in as one of (password {PASSWORD}):")
        for key, (title, roles, _) in PEOPLE.items():
            say(f"   demo-{key:10} {'+'.join(roles):22} {title}")
        say(f"   the public notice board (公示) needs no sign-in: {gateway.url}/notices")
        if stay:
            say("everything stays up for clicking through; press Enter or Ctrl-C to stop")
            with contextlib.suppress(EOFError, KeyboardInterrupt):
                await asyncio.to_thread(input)
        return 0
    finally:
        stop.set()
        for person in people.values():
            await person.close()
        for service in reversed(services):
            service.stop()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
