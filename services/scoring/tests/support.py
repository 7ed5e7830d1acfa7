"""Helpers for scoring's tests: facts built from real contract events, encoded with the real codec
and read back through `facts.read_fact`, so every test goes through the decoding the service uses.

A `Events` clock/producer hands out `<producer>:<n>` ids the way the relays do (increasing per producer),
and `hand_county` is a small log whose summaries can be computed by hand (the numbers are worked out in
test_scoring_reports.py).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiokafka.errors import KafkaConnectionError
from faststream.kafka import KafkaBroker

from libs.eventbus.tests.tls_support import Pki
from sandan_contracts import Event, decode, encode
from sandan_contracts import events as c
from sandan_contracts.rpc import scoring_pb2_grpc as pb_grpc
from sandan_eventbus import channels, edge
from sandan_eventbus.auth.client import AioBearerAuth, StaticToken
from sandan_eventbus.auth.devissuer import LocalIssuer
from sandan_eventbus.auth.scopes import Places, Scopes
from sandan_eventbus.rpc import add_health, set_serving
from sandan_scoring import engine
from sandan_scoring.api import SERVICE_NAME, ScoringServicer, register
from sandan_scoring.engine import Scorer
from sandan_scoring.facts import Fact, read_fact
from sandan_scoring.fold import Ledger
from sandan_scoring.folding import fold_records
from sandan_scoring.report import Reports
from sandan_scoring.rules import RuleBook, RuleSet
from sandan_scoring.store import ScoringStore

# 2026-04-06 09:00 in China: well inside 2026Q2.
T0 = datetime(2026, 4, 6, 1, 0, tzinfo=UTC)
_RULES = RuleBook()


class Events:
    """Builds facts from contract events with relay-style ids and a movable clock."""

    def __init__(self, now: datetime = T0, actor: str | None = None) -> None:
        self.now = now
        self.seq: dict[str, int] = defaultdict(int)
        self.actor = actor  # the envelopes' actor (as intake's and dispatch's relays write it), or none
        self.log: list[tuple[str, bytes]] = []  # every message built, as (topic, bytes): a log to replay

    def at(self, **delta: float) -> datetime:
        return self.now + timedelta(**delta)

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now

    def raw(self, event: Event, *, at: datetime | None = None, event_id: str | None = None,
            producer: str | None = None) -> bytes:
        producer = producer or event.TOPIC.split(".", 1)[0]
        if event_id is None:
            self.seq[producer] += 1
            event_id = f"{producer}:{self.seq[producer]}"
        raw = encode(event, event_id=event_id, producer=producer, occurred_at=at or self.now,
                     correlation_id=event_id, causation_id=None, actor=self.actor)
        self.log.append((event.TOPIC, raw))
        return raw

    def fact(self, event: Event, *, at: datetime | None = None, event_id: str | None = None,
             producer: str | None = None) -> Fact:
        fact = read_fact(event.TOPIC, self.raw(event, at=at, event_id=event_id, producer=producer))
        assert fact is not None, f"{event.TYPE} is not a fact the fold uses"
        return fact

    # ---- shorthands for the events the fold reads ------------------------------------------------------
    def reported(self, member: str, community: str, unit: str, **kw: object) -> Fact:
        return self.fact(c.MemberReported(member_id=member, community_id=community, unit_id=unit,
                                          grid_id=f"{community}-g1"), **kw)  # type: ignore[arg-type]

    def opened(self, order: str, *, community: str = "c1", category: str = "medical", care: list[str] | None = None,
               due: datetime | None = None, special_care: bool = False, **kw: object) -> Fact:
        """`care`: the tags, as dispatch wrote them before `special_care` (now it sends [] and the flag)."""
        return self.fact(c.OrderOpened(order_id=order, demand_id=f"d{order}", community_id=community,
                                       grid_id=f"{community}-g1", category=category, urgency="normal",
                                       care_tags=care or [], special_care=special_care,
                                       due_at=due or self.at(days=1)), **kw)  # type: ignore[arg-type]

    def dispatched(self, order: str, member: str, **kw: object) -> Fact:
        return self.fact(c.OrderDispatched(order_id=order, demand_id=f"d{order}", member_id=member,
                                           dispatched_by="branch"), **kw)  # type: ignore[arg-type]

    def offered(self, order: str, **kw: object) -> Fact:
        return self.fact(c.OrderOffered(order_id=order, demand_id=f"d{order}", grid_id="g1"),
                         **kw)  # type: ignore[arg-type]

    def accepted(self, order: str, member: str, **kw: object) -> Fact:
        return self.fact(c.OrderAccepted(order_id=order, demand_id=f"d{order}", member_id=member, via="claim"),
                         **kw)  # type: ignore[arg-type]

    def declined(self, order: str, member: str, **kw: object) -> Fact:
        return self.fact(c.OrderDeclined(order_id=order, demand_id=f"d{order}", member_id=member,
                                         reason="unavailable"), **kw)  # type: ignore[arg-type]

    def completed(self, order: str, member: str, hours: float = 2.0, **kw: object) -> Fact:
        return self.fact(c.ServiceCompleted(order_id=order, demand_id=f"d{order}", member_id=member, hours=hours),
                         **kw)  # type: ignore[arg-type]

    def overdue(self, order: str, status: str, member: str | None = None, **kw: object) -> Fact:
        return self.fact(c.OrderOverdue(order_id=order, demand_id=f"d{order}", level="community",
                                        due_at=self.now, status=status, member_id=member),
                         **kw)  # type: ignore[arg-type]

    def escalated(self, order: str, due: datetime, **kw: object) -> Fact:
        return self.fact(c.OrderEscalated(order_id=order, demand_id=f"d{order}", from_level="community",
                                          to_level="town", reason="deadline_missed", due_at=due),
                         **kw)  # type: ignore[arg-type]

    def cancelled(self, order: str, **kw: object) -> Fact:
        return self.fact(c.OrderCancelled(order_id=order, demand_id=f"d{order}", reason="demand_withdrawn"),
                         **kw)  # type: ignore[arg-type]

    def reopened(self, order: str, previous: str | None, **kw: object) -> Fact:
        return self.fact(c.OrderReopened(order_id=order, demand_id=f"d{order}", redo_count=1,
                                         previous_member_id=previous, due_at=self.at(days=1)),
                         **kw)  # type: ignore[arg-type]

    def rated(self, demand: str, stars: int, member: str | None, **kw: object) -> Fact:
        return self.fact(c.ServiceRated(demand_id=demand, member_id=member, stars=stars),
                         **kw)  # type: ignore[arg-type]

    def checked_in(self, activity: str, member: str, *, community: str = "c1", unit: str = "u1",
                   **kw: object) -> Fact:
        return self.fact(c.MemberCheckedIn(activity_id=activity, community_id=community, member_id=member,
                                           unit_id=unit), **kw)  # type: ignore[arg-type]


def fold(rules: RuleSet, facts: list[Fact]) -> Ledger:
    ledger = Ledger(rules)
    for f in facts:
        ledger.apply(f)
    return ledger


def hand_county(ev: Events) -> list[Fact]:
    """Two communities, two units, three members, six orders in 2026Q2 (see test_scoring_reports.py).

    m1: c1/u1, m2: c1/u2, m3: c2/u1.
    o1 (c1, medical, care): m1 accepts in time, serves 2.0 h, resident rates 5 (bonus).
    o2 (c1, policy): m2 accepts after the deadline, serves 1.5 h, rated 3.
    o3 (c1, other): offered, runs overdue unclaimed, escalated with a new deadline, m1 accepts in time (open).
    o4 (c1, legal): cancelled before anyone took it.
    o5 (c2, information): m3 accepts in time, serves 4.0 h, rated 4.
    """
    facts = [ev.reported("m1", "c1", "u1"), ev.reported("m2", "c1", "u2"), ev.reported("m3", "c2", "u1")]
    facts += [ev.opened("o1", category="medical", care=["elderly_alone"], due=ev.at(hours=24)),
              ev.accepted("o1", "m1", at=ev.at(hours=1)),
              ev.completed("o1", "m1", 2.0, at=ev.at(hours=3)),
              ev.rated("do1", 5, "m1", at=ev.at(hours=5))]
    facts += [ev.opened("o2", category="policy", due=ev.at(hours=2)),
              ev.accepted("o2", "m2", at=ev.at(hours=4)),
              ev.completed("o2", "m2", 1.5, at=ev.at(hours=6)),
              ev.rated("do2", 3, "m2", at=ev.at(hours=8))]
    facts += [ev.opened("o3", category="other", due=ev.at(hours=2)),
              ev.offered("o3"),
              ev.overdue("o3", "offered", at=ev.at(hours=3)),
              ev.escalated("o3", ev.at(days=2), at=ev.at(hours=3)),
              ev.accepted("o3", "m1", at=ev.at(hours=10))]
    facts += [ev.opened("o4", category="legal"), ev.cancelled("o4", at=ev.at(hours=1))]
    facts += [ev.opened("o5", community="c2", category="information", due=ev.at(hours=24)),
              ev.accepted("o5", "m3", at=ev.at(hours=2)),
              ev.completed("o5", "m3", 4.0, at=ev.at(hours=7)),
              ev.rated("do5", 4, "m3", at=ev.at(hours=9))]
    return facts


# The hand-made county's digest per rule set, taken before envelopes carried an actor and before scoring recorded
# who asked for its notices, rebuilds and what-ifs: none of that is state the digest covers (the ledger, the
# attributions, the summaries), so the same facts must keep giving these. A change here is a change of what every
# existing deployment's rebuild proves: make it on purpose.
HAND_COUNTY_DIGEST = {"2026.1": "fe84a9df795a86d7ae6435577b40eab56f26fe079d99ac6aa91fc91729d9b37e",
                      "2026.2": "71c689fbf3c097491dff77de2db025dcf910c87dac4ce43804634c7f7679300d"}


# ---- the kernel against the reference: fold the same records both ways, compare every container -------------
Record = tuple[str, bytes | None]


def state(ledger: Ledger) -> dict[str, Any]:
    """Everything the fold leaves behind, comparable with ==."""
    return {name: getattr(ledger, name) for name in (
        "entries", "by_member", "members", "orders", "ratings", "checkins", "first_checkin", "last_seq",
        "seen_other", "applied", "duplicates", "dirty_entries", "dirty_stars", "ratings_by_member")}


def fold_both(records: list[Record], version: str = "2026.1", track: bool = True, batch: int = 50
              ) -> tuple[Ledger, Ledger, list[tuple[int, str]], list[tuple[int, str]]]:
    """The records folded by the Python reference and by the kernel, with the invalid ones each reported."""
    ledgers, invalid = [], []
    for native in (False, True):
        ledger = Ledger(_RULES.get(version), track_changes=track)
        bad: list[tuple[int, str]] = []
        for start in range(0, len(records), batch):
            fold_records(ledger, records[start:start + batch],
                         lambda i, error, start=start, bad=bad: bad.append((start + i, error)), native=native)
        ledgers.append(ledger)
        invalid.append(bad)
    return ledgers[0], ledgers[1], invalid[0], invalid[1]


def assert_same(records: list[Record], **kw: Any) -> tuple[Ledger, Ledger]:
    python, native, bad_python, bad_native = fold_both(records, **kw)
    assert bad_native == bad_python
    reference, kernel = state(python), state(native)
    for name, value in reference.items():
        assert kernel[name] == value, name
    assert list(native.entries) == list(python.entries)  # the same order too
    assert Reports(native).digest() == Reports(python).digest()
    return python, native


# ---- a broker that keeps what was published ----------------------------------------------------------------------
@dataclass
class Sent:
    topic: str
    key: bytes
    body: bytes
    headers: dict[str, str]

    @property
    def event_id(self) -> str:
        return decode(self.body)[0].event_id

    @property
    def event(self) -> Any:
        return decode(self.body)[1]


@dataclass
class FakeBroker:
    """Keeps what was published. `refuse(sent) -> Exception | None` fails a publish at once, `fail_ack` when
    its acknowledgement comes; `away` makes every publish fail as an unreachable broker does."""

    sent: list[Sent] = field(default_factory=list)
    refuse: Callable[[Sent], Exception | None] = lambda s: None
    fail_ack: Callable[[Sent], Exception | None] = lambda s: None
    away: bool = False

    async def publish(self, body: bytes, topic: str, *, key: bytes | None = None,
                      headers: dict[str, str] | None = None, no_confirm: bool = False) -> Any:
        item = Sent(topic, key or b"", body, dict(headers or {}))
        if self.away:
            raise KafkaConnectionError("the broker is not reachable")
        if (error := self.refuse(item)) is not None:
            raise error
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if (error := self.fail_ack(item)) is not None:
            future.set_exception(error)
        else:
            self.sent.append(item)
            future.set_result(None)
        return future if no_confirm else await future

    def points(self) -> list[Sent]:
        return [s for s in self.sent if s.topic == "scoring.points.v1"]

    def stars(self) -> list[Sent]:
        return [s for s in self.points() if s.headers.get("type") == "StarRatingChanged"]


def replaying(monkeypatch: pytest.MonkeyPatch, log: list[tuple[str, bytes]], error: Exception | None = None) -> None:
    """The log replays as `log` (the broker's part is the integration tests'), or fails with `error`."""
    async def replay(bootstrap: str, ledger: Any, until: Any, progress: Any = lambda n, t: None, workers: int = 1,
                     after_batch: Any = lambda ledger: None) -> dict[tuple[str, int], int]:
        if error is not None:
            raise error
        fold_records(ledger, log)
        after_batch(ledger)
        progress(len(log), len(log))
        return {(topic, 0): sum(1 for t, _ in log if t == topic) for topic in {t for t, _ in log}}

    monkeypatch.setattr(engine, "replay", replay)


# ---- the gRPC edge, served in-process -----------------------------------------------------------------------
# The hand-made county's places: c1 in the town of north, c2 in south.
PLACES = """
[county]
id = "taihe"
[communities.c1]
town = "north"
[communities.c2]
town = "south"
"""


@dataclass
class Client:
    stub: pb_grpc.ScoringStub
    scorer: Scorer
    address: str
    token: str  # the county office's who is also county IT, which `stub` sends on every call
    unauthenticated: pb_grpc.ScoringStub  # sends no token of its own: give one per call (metadata=...)


@asynccontextmanager
async def serving(tmp_path: Path, issuer: LocalIssuer, *, input_policy: bool = True,
                  pki: Pki | None = None) -> AsyncIterator[Client]:
    """scoring's servicer on a real socket, behind the authentication interceptor (and, unless `input_policy` is
    off, the edge's whole chain), called as the county office who is also county IT; over TLS with `pki`'s
    certificate (reached at localhost: issue it for that name too)."""
    rulebook = RuleBook()
    store = ScoringStore(f"sqlite:///{tmp_path}/scoring.db")
    scorer = Scorer(store, rulebook, "unused:9092", KafkaBroker("unused:9092"), "2026.1")
    scorer.ledger = fold(rulebook.get("2026.1"), hand_county(Events()))
    server = (edge.server("scoring", guards=issuer.guards()) if input_policy
              else grpc.aio.server(interceptors=issuer.guards()))
    assert register(server, ScoringServicer(scorer, Scopes(Places.parse(PLACES)))) == [SERVICE_NAME]
    health = add_health(server)
    port = pki.server().bind(server, "127.0.0.1:0") if pki else server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await set_serving(health, [SERVICE_NAME], True)
    token = issuer.token("county-it", ["county_office", "operator"], county_id="taihe")
    address = f"localhost:{port}" if pki else f"127.0.0.1:{port}"
    credentials = grpc.ssl_channel_credentials(pki.ca.read_bytes()) if pki else None
    try:
        async with channels.aio_channel(address, credentials, [AioBearerAuth(StaticToken(token))]) as channel, \
                channels.aio_channel(address, credentials) as bare:
            yield Client(pb_grpc.ScoringStub(channel), scorer, address, token, pb_grpc.ScoringStub(bare))
    finally:
        await server.stop(None)
        store.engine.dispose()
