"""Resilience under faults: while residents' demands keep walking the whole loop (posted, order opened,
dispatched, accepted, completed, confirmed, rated, points), each of the four services is killed with SIGKILL once
and started again, the broker crashes and comes back once, and dispatch's PostgreSQL freezes once (SIGSTOP, then
SIGCONT). Afterwards:

- every demand is in one consistent final state in intake (confirmed, rated 5 stars, served by its member) and in
  dispatch (one order for it, completed by that member);
- every fact each service stored for publishing is on its topic exactly once by event_id: none lost, nothing
  published that was never stored, none doubled. The one repeat the contract allows is the outbox relay's after a
  crash (a batch published, its position not yet recorded): the same event id with the same bytes, the first copy
  before a crash of that producer (or of the broker) and the next after it. Those are counted, not doubled;
- no notification twice in effect: one notification id per event and recipient (notify's console channel), its
  outcome recorded once. A send not yet recorded when notify was killed goes out again with the same id, the
  channels' idempotency key (services/notify/README.md, "What once means"): counted as re-sent, not doubled;
- scoring's live ledger has every entry and equals a rebuild from the log, its publisher set nothing aside;
- nothing was dead-lettered (every fact here is good).

It prints the counts: facts produced, faults injected, lost, doubled, re-sent after a crash.

Everything runs on a broker and a PostgreSQL of the suite's own (deploy/local scripts on private ports and state):
the shared ones are never touched. Sized for a 2-core machine: 30-48 demands, about 4 minutes.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from pathlib import Path

import pytest

from sandan_contracts.rpc import dispatch_pb2 as dpb
from sandan_contracts.rpc import intake_pb2 as ipb
from sandan_contracts.rpc import scoring_pb2 as spb
from sandan_dispatch.publishing import to_contract as dispatch_contract
from sandan_intake.publishing import to_contract as intake_contract
from sandan_notify.publishing import to_contract as notify_contract
from tests.integration.chaos import (
    Clients,
    Compared,
    Copy,
    Faults,
    Walked,
    compare,
    console_notifications,
    dead_letters,
    notifications,
    on_topics,
    scoring_facts,
    scoring_process,
    stored_facts,
    walk,
)
from tests.integration.conftest import Stack, places
from tests.integration.people import People, identity_env
from tests.integration.scenario import a_community
from tests.integration.test_outage import PrivateBroker, PrivatePostgres, _free_port, _processes, broker, store

pytestmark = pytest.mark.kafka

__all__ = ["broker", "store"]  # the private broker and PostgreSQL fixtures of test_outage

DEMANDS = (30, 48)     # at least, at most
POST_EVERY = 2.0       # seconds between two residents' demands: the steady load
BETWEEN_FAULTS = 6.0   # seconds of load between two faults
FREEZE_SECONDS = 10.0  # how long dispatch's PostgreSQL stays frozen
BROKER_DOWN = 5.0      # seconds between the broker's crash and its start
COMMUNITIES, MEMBERS = 3, 2
# 2026.1 for a medical demand with special care, 1.5 h, rated 5 stars: completed, hours, special care, five stars
ENTRIES_PER_DEMAND = 4
TOPICS_OF = {"intake": ("intake.demands.v1",),
             "dispatch": ("dispatch.orders.v1", "dispatch.roster.v1", "dispatch.activities.v1"),
             "notify": ("notify.deliveries.v1",),
             "scoring": ("scoring.points.v1", "scoring.notices.v1")}


async def test_under_kill_9_a_broker_crash_and_a_frozen_store_nothing_is_lost_or_doubled(
        broker: PrivateBroker, store: PrivatePostgres, people: People, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    began = time.monotonic()
    communities, places_file = places(tmp_path)
    identity = identity_env(people.issuer, places_file)
    services = _processes(broker.bootstrap, tmp_path, identity, dispatch_store=store.url)
    services["scoring"] = scoring_process(broker.bootstrap, tmp_path, identity, _free_port())
    stack = Stack(broker.bootstrap, tmp_path, services["intake"], services["dispatch"], people, communities,
                  places_file)
    clients = Clients(stack)
    broker.env["KAFKA_WAIT_TIMEOUT"] = "300"  # its restart: log recovery on a busy machine can outlast 90 s
    try:
        for service in services.values():
            await asyncio.to_thread(service.start, 180)
        given = await asyncio.gather(*(a_community(clients, members=MEMBERS) for _ in range(COMMUNITIES)))
        started = time.monotonic()

        # when residents keep ordering while every part of the stack fails once
        faults = Faults()
        walks: list[asyncio.Task[Walked]] = []
        faulted = asyncio.Event()

        async def residents() -> None:
            while len(walks) < DEMANDS[1] and (len(walks) < DEMANDS[0] or not faulted.is_set()):
                n = len(walks)
                c = given[n % COMMUNITIES]
                walks.append(asyncio.create_task(walk(clients, c, (n // COMMUNITIES) % MEMBERS)))
                await asyncio.sleep(POST_EVERY)

        async def bad_day() -> None:
            try:
                await asyncio.sleep(BETWEEN_FAULTS)
                for name in ("intake", "dispatch"):
                    await faults.kill9(services[name], name)
                    await asyncio.sleep(BETWEEN_FAULTS)
                await faults.freeze_store(store, FREEZE_SECONDS)
                await asyncio.sleep(BETWEEN_FAULTS)
                await faults.kill9(services["notify"], "notify")
                await asyncio.sleep(BETWEEN_FAULTS)
                await faults.crash_broker(broker.kill, broker.start, BROKER_DOWN)
                await asyncio.sleep(BETWEEN_FAULTS)
                await faults.kill9(services["scoring"], "scoring")
            finally:
                faulted.set()

        await asyncio.gather(residents(), bad_day())
        walked = await asyncio.gather(*walks)
        loaded = time.monotonic()

        # then every demand ended consistently in both services, with one order
        for w in walked:
            demand = await clients.intake_stub(w.community.secretary).GetDemand(ipb.DemandRef(demand_id=w.demand_id))
            order = await clients.dispatch_stub(w.community.secretary).GetOrder(dpb.OrderRef(order_id=w.order_id))
            assert (demand.status, demand.stars, demand.member_id) == ("confirmed", 5, w.member_id), demand
            assert (order.status, order.member_id, order.demand_id, order.redo_count) == \
                ("completed", w.member_id, w.demand_id, 0), order

        # scoring folded every fact once, and its live ledger equals a rebuild from the log
        county, operator = people.county_office(), people.operator()
        scoring = services["scoring"].grpc_address
        live = await settled(clients, scoring, county, entries=ENTRIES_PER_DEMAND * len(walked))
        rebuilt = [p async for p in clients.scoring_stub(scoring, operator).Rebuild(spb.RebuildRequest())][-1]
        assert rebuilt.phase == "done" and rebuilt.digest == live.digest, (live, rebuilt)
        publishing = await clients.scoring_stub(scoring, operator).Publishing(spb.Empty())
        assert publishing.set_aside == 0 and not publishing.paused, publishing  # nothing stuck or set aside

        # every stored fact is on its topic once (the relays may still be finishing: looked at until they are);
        # a copy with the same bytes after a crash of its producer is the relay's documented re-publish
        compared, published = await published_once(broker.bootstrap, tmp_path, store.url, faults)
        opened: dict[str, set[str]] = defaultdict(set)
        outcomes: dict[str, set[str]] = defaultdict(set)
        for event_id, copies in published.items():
            envelope = copies[0].envelope
            if envelope.type == "OrderOpened":
                opened[envelope.data["demand_id"]].add(event_id)
            if envelope.type in ("NotificationSent", "NotificationFailed"):
                outcomes[f"{envelope.type}:{envelope.data['notification_id']}"].add(event_id)
        orders_per_demand = {w.demand_id: len(opened.get(w.demand_id, ())) for w in walked}

        # no notification twice in effect: one notification id per event and recipient, its outcome recorded once
        lines = console_notifications(tmp_path / "notify-console.txt")
        sent, ids = notifications(lines), {m["notification_id"] for m in lines}
        recorded = {key: len(found) for key, found in outcomes.items()}
        dead = await dead_letters(broker.bootstrap)

        lost = sum(len(c.lost) for c in compared.values())
        doubled = (sum(len(c.doubled) + len(c.strays) for c in compared.values())
                   + sum(len(found) - 1 for found in sent.twice.values())
                   + sum(n - 1 for n in orders_per_demand.values() if n > 1)
                   + sum(n - 1 for n in recorded.values()))
        republished = sum(len(c.republished) for c in compared.values())
        kills = faults.count("kill -9")
        summary = (f"chaos: produced {len(walked)} demands ({sum(c.stored for c in compared.values())} facts, "
                   f"{sent.lines} notifications), faults {len(faults.done)} (kill -9 x{kills}, broker restart "
                   f"x{faults.count('broker')}, store pause x{faults.count('store')}), lost {lost}, doubled {doubled}"
                   f"; re-sent after a crash with the same id: {republished} events, {sent.resent} notifications")
        with capsys.disabled():
            print(f"\n{summary}")
            for name, c in compared.items():
                print(f"chaos: {name}: stored {c.stored}, lost {len(c.lost)}, doubled {len(c.doubled)}, "
                      f"never stored {len(c.strays)}, re-published after a crash {len(c.republished)}")
            print("chaos: faults " + ", ".join(f"{f.what} ({f.seconds:.0f}s)" for f in faults.done)
                  + f"; load {loaded - started:.0f}s, longest walk {max(w.seconds for w in walked):.0f}s, "
                  f"total {time.monotonic() - began:.0f}s")

        assert (kills, faults.count("broker"), faults.count("store")) == (4, 1, 1), faults.done
        assert {name: (c.lost[:5], c.doubled[:5], c.strays[:5]) for name, c in compared.items()} == \
            {name: ([], [], []) for name in compared}, summary
        assert orders_per_demand == {w.demand_id: 1 for w in walked}
        assert sent.lines and sent.twice == {}, sent.twice
        assert not sent.resent or faults.count("kill -9 notify"), "notifications re-sent with no crash of notify"
        assert {f"NotificationSent:{i}" for i in ids} <= set(recorded), "a notification sent was never recorded"
        assert not [key for key in recorded if key.startswith("NotificationFailed")], recorded
        assert dead == {}, dead
        assert lost == 0 and doubled == 0, summary
    finally:
        await clients.close()
        for service in reversed(services.values()):
            service.stop()


async def settled(clients: Clients, scoring: str, county: object, entries: int, timeout: float = 120,
                  ) -> spb.DigestReply:
    """scoring's digest once it holds `entries` entries and stopped changing."""
    deadline = time.monotonic() + timeout
    last: spb.DigestReply | None = None
    while True:
        now = await clients.scoring_stub(scoring, county).Digest(spb.Empty(), timeout=30)
        if now.entries == entries and last is not None and now.digest == last.digest:
            return now
        assert time.monotonic() < deadline, f"scoring holds {now.entries} entries, not {entries}"
        last = now
        await asyncio.sleep(2)


async def published_once(bootstrap: str, workdir: Path, dispatch_store: str, faults: Faults,
                         timeout: float = 60) -> tuple[dict[str, Compared], dict[str, list[Copy]]]:
    """Each service's stored facts against its topics, once nothing stored is missing any more (or at the
    timeout: what is missing then is lost); and everything on the topics."""
    deadline = time.monotonic() + timeout
    while True:
        facts = {
            "intake": stored_facts("intake", f"sqlite:///{workdir}/intake-events.db", intake_contract),
            "dispatch": stored_facts("dispatch", dispatch_store, dispatch_contract),
            "notify": stored_facts("notify", f"sqlite:///{workdir}/notify-events.db", notify_contract),
            "scoring": scoring_facts(f"sqlite:///{workdir}/scoring.db"),
        }
        published = await on_topics(bootstrap, {t for topics in TOPICS_OF.values() for t in topics})
        compared = {name: compare(facts[name], published, name, TOPICS_OF[name], faults.crashes_of(name))
                    for name in facts}
        if not any(c.lost for c in compared.values()) or time.monotonic() > deadline:
            return compared, published
        await asyncio.sleep(3)
