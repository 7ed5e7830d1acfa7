"""scoring's publisher: one id per fact forever, each fact on the points topic once, and no single item (nor an
outage) stalls the rest.

The store is real (SQLite, and PostgreSQL where marked); the broker is a stand-in that keeps what was published
and can refuse, fail or be away on demand (the real broker's part is in tests/integration/test_scoring.py).
Facts go in the way live folding takes them (`_apply_live`), so ids, levels and messages are the service's own.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError, UnsupportedVersionError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.exc import OperationalError

from sandan_contracts import Event, decode
from sandan_contracts import events as c
from sandan_eventbus.readiness import Readiness
from sandan_scoring import engine
from sandan_scoring.engine import Paused, Scorer
from sandan_scoring.rules import RuleBook
from sandan_scoring.store import ScoringStore
from services.scoring.tests.support import Events

Q = "2026Q2"


class Crash(BaseException):
    """The process dies here (nothing after it runs; what was stored stays)."""


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


async def scorer_on(url: str, broker: FakeBroker, readiness: Readiness | None = None) -> Scorer:
    store = ScoringStore(url)
    scorer = Scorer(store, RuleBook(), "unused:9092", broker, "2026.1", readiness=readiness)  # type: ignore[arg-type]
    generation, _ = store.current()
    if generation == 0:
        store.swap_in(1, "2026.1", [], {})
    await scorer.load_publishing_state()
    scorer._go_live(scorer.ledger, 1, {})
    return scorer


async def feed(scorer: Scorer, ev: Events, *events: Event, event_id: str | None = None) -> None:
    """The events, as live folding receives them (one batch, partition 0 of each topic)."""
    batches: dict[TopicPartition, list[Any]] = {}
    for event in events:
        tp = TopicPartition(event.TOPIC, 0)
        offset = scorer.positions.get((event.TOPIC, 0), 0) + len(batches.get(tp, []))
        batches.setdefault(tp, []).append(Record(event.TOPIC, 0, offset, event.key().encode(),
                                                 ev.raw(event, event_id=event_id)))
    await scorer._apply_live(batches)


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes


def reported(member: str = "m1") -> Event:
    return c.MemberReported(member_id=member, community_id="c1", unit_id="u1", grid_id="g1")


_demands = iter(range(1, 1_000_000))
_activities = iter(range(1, 1_000_000))


def rated(stars: int, member: str = "m1") -> Event:
    return c.ServiceRated(demand_id=f"d{next(_demands)}", member_id=member, stars=stars)


def checked_in(member: str = "m1") -> Event:
    return c.MemberCheckedIn(activity_id=f"a{next(_activities)}", community_id="c1", member_id=member, unit_id="u1")


@pytest.fixture
async def setup(store_url: str) -> AsyncIterator[tuple[Scorer, FakeBroker, Events, str]]:
    broker = FakeBroker()
    scorer = await scorer_on(store_url, broker)
    yield scorer, broker, Events(), store_url
    scorer.store.engine.dispose()


@pytest.fixture(autouse=True)
def quick_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Paused, "START", 0.01)
    monkeypatch.setattr(Paused, "CAP", 0.05)


# ---- a published id names one fact forever -------------------------------------------------------------------------
async def test_up_down_and_up_again_are_three_changes_with_three_ids(setup) -> None:  # type: ignore[no-untyped-def]
    """2★→3★, 3★→2★, 2★→3★ in one quarter: the third change once got the first one's id (and then the whole
    pending batch looped on the unique constraint)."""
    scorer, broker, ev, _ = setup
    await feed(scorer, ev, reported(), *[rated(5) for _ in range(3)], checked_in(), checked_in())  # 31 points
    await scorer.publish_pending()
    await feed(scorer, ev, *[checked_in() for _ in range(4)])  # 63 points: 3★
    await scorer.publish_pending()
    await feed(scorer, ev, rated(1))  # average 4.0: 2★
    await scorer.publish_pending()
    await feed(scorer, ev, rated(5))  # average 4.2, 68 points: 3★
    await scorer.publish_pending()
    changes = [(s.event.previous_stars, s.event.stars) for s in broker.stars()]
    assert changes == [(0, 2), (2, 3), (3, 2), (2, 3)]
    ids = [s.event_id for s in broker.points()]
    assert len(ids) == len(set(ids))  # each fact once, each with its own id
    assert await scorer.publish_pending() == 0  # nothing left: no batch published again
    assert scorer.store.unpublished(ids) == set()


OPS = {
    "rate5": lambda: [rated(5)], "rate4": lambda: [rated(4)], "rate1": lambda: [rated(1)],
    "checkin": lambda: [checked_in()], "checkins": lambda: [checked_in() for _ in range(4)],
}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.sampled_from(sorted(OPS)), min_size=1, max_size=3), min_size=1, max_size=14))
def test_any_sequence_of_ups_and_downs_publishes_each_fact_once_under_its_own_id(steps: list[list[str]]) -> None:
    async def run() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            broker = FakeBroker()
            scorer = await scorer_on(f"sqlite:///{tmp}/scoring.db", broker)
            ev = Events()
            await feed(scorer, ev, reported())
            for step in steps:
                await feed(scorer, ev, *[e for op in step for e in OPS[op]()])
                await scorer.publish_pending()
            ids = [s.event_id for s in broker.points()]
            assert len(ids) == len(set(ids))
            # the entries published are exactly the ledger's, and the changes chain from 0 to today's level
            entries = {s.event.entry_id for s in broker.points() if s.headers["type"] != "StarRatingChanged"}
            assert entries == set(scorer.ledger.entries)
            level = 0
            for s in broker.stars():
                assert s.event.previous_stars == level and s.event.stars != level
                level = s.event.stars
            assert level == scorer.ledger.member_quarter("m1", Q)[3]
            scorer.store.engine.dispose()

    asyncio.run(run())


async def test_a_change_recorded_but_not_published_goes_out_after_a_crash_with_the_same_bytes(setup) -> None:  # type: ignore[no-untyped-def]
    scorer, broker, ev, url = setup
    await feed(scorer, ev, reported(), *[rated(5) for _ in range(3)], checked_in(), checked_in())
    broker.refuse = lambda s: Crash() if s.headers["type"] == "StarRatingChanged" else None  # type: ignore[assignment,return-value]
    with pytest.raises(Crash):
        await scorer.publish_pending()
    recorded = scorer.store.unpublished_star_changes()
    assert len(recorded) == 1 and broker.stars() == []
    # restarted: the same ledger (a restore re-folds it), the stored outbox
    broker.refuse = lambda s: None  # type: ignore[assignment]
    again = await scorer_on(url, broker)
    again._go_live(scorer.ledger, 1, scorer.positions)
    await again.publish_pending()
    assert [s.body for s in broker.stars()] == [recorded[0].body]
    assert again.store.unpublished_star_changes() == []
    assert await again.publish_pending() == 0  # the level was recorded: no second change
    again.store.engine.dispose()


async def test_published_but_not_marked_is_published_again_after_a_crash_with_the_same_bytes(setup) -> None:  # type: ignore[no-untyped-def]
    scorer, broker, ev, url = setup
    await feed(scorer, ev, reported(), *[rated(5) for _ in range(3)], checked_in(), checked_in())
    mark = scorer.store.mark_published
    scorer.store.mark_published = lambda ids: (_ for _ in ()).throw(Crash())  # type: ignore[method-assign]
    with pytest.raises(Crash):
        await scorer.publish_pending()
    scorer.store.mark_published = mark  # type: ignore[method-assign]
    first = {s.event_id: s.body for s in broker.points()}
    assert len(first) == 6  # 3 five-star bonuses, 2 check-ins, 1 star change
    again = await scorer_on(url, broker)
    again._go_live(scorer.ledger, 1, scorer.positions)
    await again.publish_pending()
    second = broker.points()[len(first):]
    assert {s.event_id: s.body for s in second} == first  # re-published after the crash: the same bytes
    assert await again.publish_pending() == 0
    again.store.engine.dispose()


async def test_an_id_already_marked_never_makes_the_batch_loop(setup) -> None:  # type: ignore[no-untyped-def]
    scorer, _, ev, _ = setup
    await feed(scorer, ev, reported(), checked_in(), checked_in())
    already = next(iter(scorer.pending))
    scorer.store.mark_published([f"scoring:{already}"])  # e.g. marked by a process that crashed right after
    assert await scorer.publish_pending() == 2
    assert await scorer.publish_pending() == 0


# ---- a publisher never stalls on one item ----------------------------------------------------------------------------
async def test_an_entry_the_contract_refuses_is_set_aside_and_the_rest_flow(setup) -> None:  # type: ignore[no-untyped-def]
    """A source event id with a space is a valid envelope (a free string) but not a valid `Ref`: the entry's
    PointsAwarded cannot be encoded, ever. It is set aside with its error; everything else is published."""
    scorer, _, ev, _ = setup
    await feed(scorer, ev, reported())
    await feed(scorer, ev, rated(5), event_id="intake 7")
    await feed(scorer, ev, checked_in(), checked_in())
    assert await scorer.publish_pending() == 2
    state = scorer.publishing_state()
    assert [(i.kind, i.attempts) for i in state.set_aside] == [("entry", 1)]
    assert state.set_aside[0].error.startswith("ValidationError") and state.pending == 0
    await feed(scorer, ev, checked_in())
    assert await scorer.publish_pending() == 1  # later entries flow; the set-aside one is not retried
    assert [i.event_id for i in scorer.store.set_aside_items()] == [state.set_aside[0].event_id]


@pytest.mark.parametrize("how", ["refused at once", "refused on acknowledgement"])
async def test_a_message_the_broker_refuses_is_set_aside_and_the_rest_flow(setup, how: str) -> None:  # type: ignore[no-untyped-def]
    scorer, broker, ev, _ = setup
    await feed(scorer, ev, reported(), reported("m2"), checked_in("m1"), checked_in("m2"))
    refuse = lambda s: MessageSizeTooLargeError() if s.key == b"m2" else None  # noqa: E731
    if how == "refused at once":
        broker.refuse = refuse  # type: ignore[assignment]
    else:
        broker.fail_ack = lambda s: UnsupportedVersionError() if s.key == b"m2" else None  # type: ignore[assignment]
    assert await scorer.publish_pending() == 1
    assert [s.key for s in broker.points()] == [b"m1"]
    assert [i.kind for i in scorer.publishing_state().set_aside] == ["entry"]


async def test_set_aside_items_are_tried_again_after_a_restart(setup) -> None:  # type: ignore[no-untyped-def]
    scorer, broker, ev, url = setup
    await feed(scorer, ev, reported(), checked_in())
    broker.refuse = lambda s: MessageSizeTooLargeError()  # type: ignore[assignment]
    await scorer.publish_pending()
    assert len(scorer.store.set_aside_items()) == 1
    broker.refuse = lambda s: None  # type: ignore[assignment]  # fixed (a deploy): the next start publishes it
    again = await scorer_on(url, broker)
    again._go_live(scorer.ledger, 1, scorer.positions)
    assert await again.publish_pending() == 1
    assert again.store.set_aside_items() == [] and again.publishing_state().set_aside == []
    again.store.engine.dispose()


# ---- outages pause, then everything goes once -------------------------------------------------------------------
async def test_a_broker_outage_pauses_publishing_and_nothing_is_set_aside_or_lost(setup) -> None:  # type: ignore[no-untyped-def]
    scorer, broker, ev, _ = setup
    changes: list[bool] = []
    scorer.readiness.listen(changes.append)
    await feed(scorer, ev, reported(), checked_in(), checked_in())
    broker.away = True
    stop = asyncio.Event()
    task = asyncio.create_task(scorer.run_publisher(stop))
    while scorer.publishing_paused.attempts < 3:
        await asyncio.sleep(0.01)
    assert not scorer.readiness.ready and "publishing" in scorer.publishing_state().paused
    broker.away = False
    while scorer.publishing_state().pending or not scorer.readiness.ready:
        await asyncio.sleep(0.01)
    stop.set()
    await task
    assert len(broker.points()) == 2 and scorer.publishing_state().set_aside == []
    assert changes == [False, True]


async def test_a_store_outage_while_marking_publishes_nothing_twice(setup) -> None:  # type: ignore[no-untyped-def]
    scorer, broker, ev, _ = setup
    await feed(scorer, ev, reported(), checked_in(), checked_in())
    mark, failures = scorer.store.mark_published, [0]

    def away_then_back(ids: list[str]) -> None:
        if failures[0] < 3:
            failures[0] += 1
            raise OperationalError("INSERT", {}, ConnectionRefusedError("the store is away"))
        mark(ids)

    scorer.store.mark_published = away_then_back  # type: ignore[method-assign]
    stop = asyncio.Event()
    task = asyncio.create_task(scorer.run_publisher(stop))
    while failures[0] < 3 or scorer.publishing_state().unmarked or not scorer.readiness.ready:
        await asyncio.sleep(0.01)
    stop.set()
    await task
    ids = [s.event_id for s in broker.points()]
    assert len(ids) == 2 == len(set(ids))  # published once; only the marking was repeated
    assert scorer.store.unpublished(ids) == set()


# ---- live folding waits out a store outage ----------------------------------------------------------------------
async def test_live_folding_waits_out_a_store_outage_and_loses_nothing(setup, caplog) -> None:  # type: ignore[no-untyped-def]
    scorer, broker, ev, _ = setup
    changes: list[bool] = []
    scorer.readiness.listen(changes.append)
    commit, failures = scorer.store.commit_batch, [0]

    def away_then_back(*args: Any) -> None:
        if failures[0] < 5:
            failures[0] += 1
            raise OperationalError("INSERT", {}, ConnectionRefusedError("the store is away"))
        commit(*args)

    scorer.store.commit_batch = away_then_back  # type: ignore[method-assign]
    caplog.set_level(logging.INFO, logger=engine.__name__)
    await feed(scorer, ev, reported(), checked_in(), checked_in())
    assert failures[0] == 5 and changes == [False, True]
    assert scorer.positions == {("dispatch.roster.v1", 0): 1, ("dispatch.activities.v1", 0): 2}
    assert scorer.store.positions(1) == scorer.positions
    assert scorer.store.entry_ids(1) == set(scorer.ledger.entries) and len(scorer.ledger.entries) == 2
    assert broker.sent == []  # nothing dead-lettered
    lines = [r.getMessage() for r in caplog.records if r.name == engine.__name__]
    assert lines == ["scoring live folding paused: waiting for the store or the broker",
                     "scoring live folding resumed"]


def test_paused_backoff_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Paused, "START", 0.5)
    monkeypatch.setattr(Paused, "CAP", 30.0)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(engine.asyncio, "sleep", sleep)
    paused = Paused("publishing", Readiness("scoring"))

    async def run() -> None:
        for _ in range(12):
            await paused.failed(OperationalError("SELECT", {}, ConnectionRefusedError()))

    asyncio.run(run())
    assert waits[0] <= 0.5 and max(waits) <= 30.0 and waits[-1] >= 24.0  # doubling, then at most the cap
    assert all(b >= a * 0.8 for a, b in itertools.pairwise(waits))


# ---- quarterly notices ------------------------------------------------------------------------------------------
async def test_notices_are_published_once_and_a_refused_one_is_set_aside(setup) -> None:  # type: ignore[no-untyped-def]
    scorer, broker, ev, _ = setup
    await feed(scorer, ev, reported(), checked_in())
    broker.refuse = lambda s: (MessageSizeTooLargeError()  # type: ignore[assignment]
                               if s.topic == "scoring.notices.v1" and s.key.startswith(b"unit-") else None)
    bodies = await scorer.publish_notices(Q)
    assert [b["notice_id"] for b in bodies] == [f"community-c1-{Q}-2026.1"]  # the unit's notice was set aside
    notices = [s for s in broker.sent if s.topic == "scoring.notices.v1"]
    assert [s.event_id for s in notices] == [f"scoring:community-c1-{Q}-2026.1"]
    assert [(i.event_id, i.kind) for i in scorer.publishing_state().set_aside] == [(f"scoring:unit-u1-{Q}-2026.1",
                                                                                  "notice")]
    broker.refuse = lambda s: None  # type: ignore[assignment]
    await scorer.publish_notices(Q)  # asked again: the one published is not published twice
    assert [s.event_id for s in broker.sent if s.topic == "scoring.notices.v1"] == \
        [f"scoring:community-c1-{Q}-2026.1", f"scoring:unit-u1-{Q}-2026.1"]
    assert scorer.publishing_state().set_aside == [] and scorer.store.set_aside_items() == []
