"""The main job, locally: intake, dispatch, scoring and notify on SQLite, a real Kafka, a scripted day in
one community.

Run through `bash scripts/demo.sh` (it starts the broker). Prints each step, each fact as it appears on the
topics, and each message notify sends (on its console channel), so the three orders can be watched
travelling between the services, earning points, and reaching the people they concern.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sys
import time
import uuid
from pathlib import Path

import grpc
from aiokafka import AIOKafkaConsumer

from sandan_contracts import TOPICS, decode
from sandan_contracts.rpc import dispatch_pb2 as dpb
from sandan_contracts.rpc import dispatch_pb2_grpc, intake_pb2_grpc, scoring_pb2_grpc
from sandan_contracts.rpc import intake_pb2 as ipb
from sandan_contracts.rpc import scoring_pb2 as spb
from sandan_eventbus.channels import aio_channel
from sandan_eventbus.devtools import ServiceProcess
from sandan_eventbus.kafka import bootstrap_servers, create_topics

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".local" / "demo"
START = time.monotonic()


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
                    say(f"    {r.topic:20} {envelope.type:20} {shown}  (id {envelope.event_id}, "
                        f"caused by {envelope.causation_id or 'a gRPC call'})")
    finally:
        await consumer.stop()


ready = asyncio.Event()
TOKEN = "demo-notify-token"  # local demo only: intake and dispatch hand contacts to this token's holder
OFFICES = """
[county]
id = "taihe"
name = "泰和县委组织部"

[towns.chengjiang]
name = "澄江镇党委"

[communities.chengjiang-xinqu]
name = "澄江镇新区社区党委"
town = "chengjiang"
"""


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


async def scenario(intake: intake_pb2_grpc.IntakeStub, dispatch: dispatch_pb2_grpc.DispatchStub,
                   scoring: scoring_pb2_grpc.ScoringStub) -> None:
    community, grid = "chengjiang-xinqu", "chengjiang-xinqu-g03"
    say("澄江镇新区社区 publishes its service menu: 送医送药 (medicine delivery), urgent within 2 h")
    await intake.PublishMenuItem(ipb.PublishMenuItemRequest(
        community_id=community, item_id="med-delivery", category="medical", title="送医送药",
        deadlines=ipb.DeadlineSeconds(urgent=7200, normal=86400, routine=604800)))
    say("泰和县人民医院 party branch reports to the community (单位报到)")
    await dispatch.ReportUnit(dpb.ReportUnitRequest(unit_id="taihe-hospital", community_id=community,
                                                    unit_name="泰和县人民医院",
                                                    contact_email="dangban@hospital.taihe.example"))
    for member_id, teams in (("m-liu", ["medical"]), ("m-chen", ["medical", "policy"])):
        say(f"member {member_id} reports in person, joins grid g03 and teams {teams} (党员报到)")
        await dispatch.ReportMember(dpb.ReportMemberRequest(
            member_id=member_id, unit_id="taihe-hospital", community_id=community, grid_id=grid, teams=teams,
            name={"m-liu": "刘建华", "m-chen": "陈思远"}[member_id], phone="13900000000"))
    await dispatch.FormGridGroup(dpb.FormGridGroupRequest(community_id=community, grid_id=grid))
    await dispatch.AppointGridLeader(dpb.AppointGridLeaderRequest(grid_id=grid, member_id="m-chen"))
    resident = await intake.RegisterResident(ipb.RegisterResidentRequest(
        community_id=community, name="王秀英", phone="13800000000", address="澄江镇新区 3 栋 2 单元"))

    walk = f"demo-{uuid.uuid4().hex[:6]}"
    meta = (("x-correlation-id", walk),)
    say(f"① a grid worker posts a demand for an elderly resident living alone (居民点单), correlation {walk}")
    demand = await intake.PostDemand(ipb.PostDemandRequest(
        client_request_id=walk, resident_id=resident.resident_id, community_id=community, grid_id=grid,
        menu_item_id="med-delivery", description="独居老人需要每周送降压药上门", urgency="urgent",
        care_tags=["elderly_alone"], channel="grid_worker"), metadata=meta)
    order = await until("the order", lambda: dispatch.FindOrderByDemand(dpb.DemandRef(demand_id=demand.demand_id)))
    say(f"   dispatch opened order {order.order_id[:8]} from DemandPosted; due {order.due_at}")
    ranked = await dispatch.SuggestMembers(dpb.SuggestMembersRequest(order_id=order.order_id, limit=2))
    say("   suggested: " + ", ".join(f"{c.member_id} (score {c.score:g})" for c in ranked.candidates))
    say("② the branch offers it to the grid's pool (支部下单); two members claim at once")
    await dispatch.OfferOrder(dpb.OfferOrderRequest(order_id=order.order_id), metadata=meta)
    claims = await asyncio.gather(*(dispatch.AcceptOrder(dpb.AcceptOrderRequest(order_id=order.order_id,
                                                                                member_id=m), metadata=meta)
                                    for m in ("m-liu", "m-chen")), return_exceptions=True)
    for m, claim in zip(("m-liu", "m-chen"), claims, strict=True):
        say(f"   {m}: " + ("accepted (党员接单)" if isinstance(claim, dpb.Order) else f"refused: {claim.details()}"))
    winner = next(c for c in claims if isinstance(c, dpb.Order)).member_id
    contact = await until("acceptance at intake", lambda: _contact(intake, demand.demand_id, winner))
    say(f"   {winner} fetches the resident's contact through intake's authorised call ({len(contact.phone)} digits)")
    say("③ the member serves and reports 1.5 hours")
    await dispatch.CompleteService(dpb.CompleteServiceRequest(order_id=order.order_id, member_id=winner, hours=1.5,
                                                              notes="送药上门, 测量血压"), metadata=meta)
    await until("served at intake", lambda: _status(intake, demand.demand_id, "served"))
    say("④ the resident confirms and rates 5 stars")
    await intake.ConfirmCompletion(ipb.DemandRef(demand_id=demand.demand_id), metadata=meta)
    rated = await intake.RateService(ipb.RateServiceRequest(demand_id=demand.demand_id, stars=5), metadata=meta)
    say(f"   demand {rated.demand_id[:8]} is {rated.status}, {rated.stars}★, served by {rated.member_id}")
    ledger = await until("the points", lambda: _ledger(scoring, winner, 4))
    total = next(t.points for t in ledger.totals if t.period == "all")
    say(f"⑤ scoring: {winner} earned " + ", ".join(f"{e.rule} {e.points:+d}" for e in ledger.entries)
        + f" = {total} points (rules {ledger.entries[0].rule_set_version})")
    quarter = ledger.entries[0].quarter
    published = await scoring.PublishQuarterlyNotices(spb.QuarterRef(quarter=quarter))
    say(f"⑥ the quarterly notice for {quarter} is published (每季度通报公示): {', '.join(published.notice_ids)}")
    rebuilt = [p async for p in scoring.Rebuild(spb.RebuildRequest())][-1]
    live = await scoring.Digest(spb.Empty())
    same = "equals" if rebuilt.digest == live.digest else "DIFFERS FROM"
    say(f"⑦ scoring rebuilt its ledger from the event log in {rebuilt.seconds:.2f}s: digest "
        f"{rebuilt.digest[:12]}… {same} the live state")
    await asyncio.sleep(3)  # let the last facts and messages reach the tails


async def _contact(intake: intake_pb2_grpc.IntakeStub, demand_id: str, member_id: str):  # type: ignore[no-untyped-def]
    try:
        return await intake.GetServiceContact(ipb.ServiceContactRequest(demand_id=demand_id, member_id=member_id))
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
            return None
        raise


async def _ledger(scoring: scoring_pb2_grpc.ScoringStub, member_id: str, entries: int):  # type: ignore[no-untyped-def]
    ledger = await scoring.GetMemberLedger(spb.MemberLedgerRequest(member_id=member_id))
    return ledger if len(ledger.entries) >= entries else None


async def _status(intake: intake_pb2_grpc.IntakeStub, demand_id: str, status: str) -> bool:
    return (await intake.GetDemand(ipb.DemandRef(demand_id=demand_id))).status == status


async def main() -> int:
    bootstrap = bootstrap_servers()
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    created = await create_topics(bootstrap)
    say(f"topics ready on {bootstrap} ({created} created from the registry)")
    common = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING")}
    run = uuid.uuid4().hex[:6]
    (WORK / "offices.toml").write_text(OFFICES, "utf-8")
    intake = ServiceProcess("sandan_intake", {**common, "INTAKE_EVENTSTORE_URL": f"sqlite:///{WORK}/intake.db",
                                              "INTAKE_GRPC_ADDRESS": "127.0.0.1:50051",
                                              "INTAKE_CONSUMER_GROUP": f"intake-demo-{run}",
                                              "INTAKE_CONTACT_TOKENS": TOKEN},
                            "127.0.0.1:50051", WORK / "intake.log")
    dispatch = ServiceProcess("sandan_dispatch", {**common,
                                                  "DISPATCH_EVENTSTORE_URL": f"sqlite:///{WORK}/dispatch.db",
                                                  "DISPATCH_GRPC_ADDRESS": "127.0.0.1:50052",
                                                  "DISPATCH_CONSUMER_GROUP": f"dispatch-demo-{run}",
                                                  "DISPATCH_CONTACT_TOKENS": TOKEN},
                              "127.0.0.1:50052", WORK / "dispatch.log")
    scoring = ServiceProcess("sandan_scoring", {**common, "SCORING_DATABASE_URL": f"sqlite:///{WORK}/scoring.db",
                                                "SCORING_GRPC_ADDRESS": "127.0.0.1:50053"},
                             "127.0.0.1:50053", WORK / "scoring.log")
    notify = ServiceProcess("sandan_notify", {**common, "NOTIFY_EVENTSTORE_URL": f"sqlite:///{WORK}/notify.db",
                                              "NOTIFY_GRPC_ADDRESS": "127.0.0.1:50054",
                                              "NOTIFY_CONSUMER_GROUP": f"notify-demo-{run}",
                                              "NOTIFY_INTAKE_ADDRESS": "127.0.0.1:50051",
                                              "NOTIFY_DISPATCH_ADDRESS": "127.0.0.1:50052",
                                              "NOTIFY_CONTACT_TOKEN": TOKEN,
                                              "NOTIFY_OFFICES_FILE": str(WORK / "offices.toml"),
                                              "NOTIFY_CONSOLE": str(WORK / "notifications.jsonl"),
                                              "NOTIFY_QUIET_HOURS": "off"},
                            "127.0.0.1:50054", WORK / "notify.log")
    stop = asyncio.Event()
    services = [intake, dispatch, scoring, notify]
    try:
        for service in services:
            service.start(timeout=120)
        say("intake :50051, dispatch :50052, scoring :50053, notify :50054 are SERVING; stores in .local/demo/")
        tailer = asyncio.create_task(tail(bootstrap, stop))
        mailer = asyncio.create_task(notifications(WORK / "notifications.jsonl", stop))
        await asyncio.wait_for(ready.wait(), 30)
        async with aio_channel("127.0.0.1:50051") as ic, aio_channel("127.0.0.1:50052") as dc, \
                aio_channel("127.0.0.1:50053") as sc:  # with the retry policy: a busy service's refusal is retried
            await scenario(intake_pb2_grpc.IntakeStub(ic), dispatch_pb2_grpc.DispatchStub(dc),
                           scoring_pb2_grpc.ScoringStub(sc))
        stop.set()
        with contextlib.suppress(Exception):
            await tailer
            await mailer
        say("done: the demand travelled the whole loop. Logs: .local/demo/*.log; messages: "
            ".local/demo/notifications.jsonl")
        return 0
    finally:
        stop.set()
        for service in reversed(services):
            service.stop()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
