"""Live updates: ONE Kafka consumer per gateway process fans the topics out to the browsers' server-sent event
streams, each filtered by what that person may see.

- The consumer (`LiveFeed`) reads intake.demands, dispatch.orders, dispatch.activities and scoring.points with
  no consumer group (manual assignment: every gateway replica sees everything; nothing is committed). At start it
  reads back `lookback` seconds, only to learn each order's and demand's community and grid (OrderOverdue names
  neither); facts from before the start are never sent to anyone. It is supervised: an error is logged and the
  loop starts again from where it was, with capped backoff.
- Each stream (`Subscriber`) has a bounded queue; when a slow browser lets it fill, further updates are dropped
  and the stream is told to `reload` (the page fetches its list again) instead of growing without bound.
- `Interest` decides per update: a secretary or grid worker their community, a grid leader their grid, a town
  office its communities, the county office all; a member the offers to their grid or teams and the orders
  dispatched to or held by them, their own points; a resident only the demands they own (checked with the
  services when the stream opens). Topics carry only ids, categories and statuses, and only those go out.
- Ids are `<epoch>-<sequence>`: a browser reconnecting with Last-Event-ID gets what it missed from a bounded
  recent buffer, or `reload` when that is gone (another process, or too long ago).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sandan_contracts.envelope import decode
from sandan_contracts.events import (
    ActivityCompleted,
    ActivityScheduled,
    CompletionConfirmed,
    DemandPosted,
    DemandTextsShredded,
    DemandWithdrawn,
    Event,
    OrderAccepted,
    OrderCancelled,
    OrderDeclined,
    OrderDispatched,
    OrderEscalated,
    OrderOffered,
    OrderOpened,
    OrderOverdue,
    OrderReopened,
    PointsAwarded,
    PointsRevoked,
    RedoRequested,
    ServiceCompleted,
    ServiceRated,
    StarRatingChanged,
)

log = logging.getLogger(__name__)

TOPICS = ("intake.demands.v1", "dispatch.orders.v1", "dispatch.activities.v1", "scoring.points.v1")
QUEUE_SIZE = 200
RECENT = 1000
MAX_PLACES = 500_000  # order and demand ids remembered (a county's few years of orders fit easily)
RELOAD = "reload"


@dataclass(frozen=True)
class Update:
    id: str
    kind: str  # the event's type
    data: dict[str, Any]  # the event's public fields (ids, categories, statuses; the topics hold nothing else)
    community_id: str = ""
    grid_id: str = ""
    order_id: str = ""
    demand_id: str = ""
    member_id: str = ""
    teams: tuple[str, ...] = ()


@dataclass
class Interest:
    """What one person may see, from their verified roles and places (and, for residents, their own demands)."""

    roles: frozenset[str]
    community_id: str = ""
    grid_id: str = ""
    town_communities: frozenset[str] = frozenset()
    county: bool = False
    member_id: str = ""
    member_grid: str = ""
    member_teams: frozenset[str] = frozenset()
    demand_ids: set[str] = field(default_factory=set)
    held_orders: set[str] = field(default_factory=set)

    def wants(self, u: Update) -> bool:
        if self.county and u.community_id:
            return True
        if self.town_communities and u.community_id in self.town_communities:
            return True
        community_wide = bool(self.roles & {"branch_secretary", "grid_worker"}) and bool(self.community_id)
        if community_wide and u.community_id == self.community_id:
            return True
        if ("grid_leader" in self.roles and self.grid_id and u.grid_id == self.grid_id
                and u.community_id == self.community_id):
            return True
        if self.member_id and self._for_member(u):
            return True
        return bool(self.demand_ids) and u.demand_id in self.demand_ids

    def _for_member(self, u: Update) -> bool:
        if u.member_id == self.member_id:
            if u.kind in ("OrderDispatched", "OrderAccepted") and u.order_id:
                self.held_orders.add(u.order_id)
            return True
        if u.order_id and u.order_id in self.held_orders:
            if u.kind in ("OrderReopened", "OrderCancelled", "ServiceCompleted"):
                self.held_orders.discard(u.order_id)
            return True
        if u.kind == "OrderOffered":
            return bool(u.grid_id and u.grid_id == self.member_grid) or bool(self.member_teams & set(u.teams))
        return u.kind == "ActivityScheduled" and bool(self.community_id) and u.community_id == self.community_id


class Subscriber:
    def __init__(self, interest: Interest) -> None:
        self.interest = interest
        self.queue: asyncio.Queue[Update | str] = asyncio.Queue(QUEUE_SIZE)
        self.overflowed = False
        self.dropped = 0

    def offer(self, update: Update) -> None:
        if not self.interest.wants(update):
            return
        if self.overflowed:
            self.dropped += 1
            return
        try:
            self.queue.put_nowait(update)
        except asyncio.QueueFull:
            self.overflowed = True  # the stream sends `reload` once it drains, then live updates again
            self.dropped += 1


class Hub:
    """Routes updates to subscribers; remembers where orders and demands are, and the recent updates."""

    def __init__(self) -> None:
        self.epoch = uuid.uuid4().hex[:8]
        self.sequence = 0
        self.subscribers: set[Subscriber] = set()
        self.recent: deque[tuple[int, Update]] = deque(maxlen=RECENT)
        self.places: OrderedDict[str, tuple[str, str]] = OrderedDict()  # order/demand id -> (community, grid)
        self.delivered = 0

    def subscribe(self, interest: Interest, last_event_id: str = "") -> tuple[Subscriber, list[Update] | None]:
        """A new stream, and what it missed since `last_event_id` (None: too old or unknown; send `reload`)."""
        subscriber = Subscriber(interest)
        self.subscribers.add(subscriber)
        missed: list[Update] | None = []
        if last_event_id:
            epoch, _, seq = last_event_id.partition("-")
            if epoch != self.epoch or not seq.isdigit() or (self.recent and int(seq) < self.recent[0][0] - 1):
                missed = None
            else:
                missed = [u for n, u in self.recent if n > int(seq) and interest.wants(u)]
        return subscriber, missed

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)

    def remember(self, key: str, community_id: str, grid_id: str) -> None:
        self.places[key] = (community_id, grid_id)
        self.places.move_to_end(key)
        while len(self.places) > MAX_PLACES:
            self.places.popitem(last=False)

    def place_of(self, *keys: str) -> tuple[str, str]:
        for key in keys:
            if key and key in self.places:
                return self.places[key]
        return ("", "")

    def learn(self, event: Event) -> None:
        """Record where an order or demand is (from the facts that name it)."""
        if isinstance(event, DemandPosted):
            self.remember(event.demand_id, event.community_id, event.grid_id)
        elif isinstance(event, OrderOpened):
            self.remember(event.order_id, event.community_id, event.grid_id)
            self.remember(event.demand_id, event.community_id, event.grid_id)

    def publish(self, event: Event) -> Update | None:
        update = self.update_for(event)
        if update is None:
            return None
        self.sequence += 1
        update = Update(f"{self.epoch}-{self.sequence}", *_fields(update))
        self.recent.append((self.sequence, update))
        for subscriber in list(self.subscribers):
            subscriber.offer(update)
        self.delivered += 1
        return update

    def update_for(self, event: Event) -> Update | None:
        data = event.model_dump(mode="json")
        kind = event.TYPE
        order_id = str(getattr(event, "order_id", "") or "")
        demand_id = str(getattr(event, "demand_id", "") or "")
        member_id = str(getattr(event, "member_id", "") or "")
        community, grid = getattr(event, "community_id", ""), getattr(event, "grid_id", "")
        if not community:
            community, grid = self.place_of(order_id, demand_id)
        elif not grid:
            grid = self.place_of(order_id, demand_id)[1]
        if isinstance(event, DemandTextsShredded):
            return None  # tells the services holding texts to forget them; news to no one (the pages hold none)
        if isinstance(event, (ActivityScheduled, ActivityCompleted)):
            pass
        elif isinstance(event, (PointsAwarded, PointsRevoked, StarRatingChanged)):
            data.pop("source_event_ids", None)
            community = ""  # a member's points go to the member only
        elif not isinstance(event, (DemandPosted, DemandWithdrawn, RedoRequested, CompletionConfirmed, ServiceRated,
                                    OrderOpened, OrderDispatched, OrderOffered, OrderAccepted, OrderDeclined,
                                    ServiceCompleted, OrderEscalated, OrderOverdue, OrderCancelled, OrderReopened)):
            return None
        if not community and not member_id:
            return None  # an order from before the look-back: nobody can be told safely
        teams = tuple(getattr(event, "teams", ()) or ())
        return Update("", kind, data, community, grid or "", order_id, demand_id, member_id, teams)


def _fields(u: Update) -> tuple[Any, ...]:
    return (u.kind, u.data, u.community_id, u.grid_id, u.order_id, u.demand_id, u.member_id, u.teams)


class LiveFeed:
    """The process's one consumer, supervised: it runs until `stop()`, restarting after any error."""

    def __init__(self, hub: Hub, consumer_factory: Callable[[], Any], lookback_seconds: float,
                 topics: Iterable[str] = TOPICS) -> None:
        self.hub = hub
        self.consumer_factory = consumer_factory
        self.lookback = lookback_seconds
        self.topics = tuple(topics)
        self.started_at = time.time()
        self.positions: dict[Any, int] = {}  # partition -> next offset to read
        self.restarts = 0
        self.ready = asyncio.Event()  # set once the look-back is read and live facts flow
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._supervise(), name="live-feed")

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _supervise(self) -> None:
        backoff = 0.5
        while not self._stopping:
            try:
                await self._consume()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.restarts += 1
                log.warning("live feed failed; restarting", extra={"fields": {
                    "error": f"{type(exc).__name__}: {str(exc)[:200]}", "restarts": self.restarts,
                    "backoff_seconds": backoff}})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    async def _consume(self) -> None:
        from sandan_eventbus.kafka import partitions_of

        consumer = self.consumer_factory()
        await consumer.start()
        try:
            partitions = await partitions_of(consumer, self.topics)
            consumer.assign(partitions)
            await self._seek(consumer, partitions)
            ends = await consumer.end_offsets(partitions)
            self._mark_ready_when(ends)
            while not self._stopping:
                batches = await consumer.getmany(timeout_ms=500, max_records=500)
                for tp, records in batches.items():
                    for record in records:
                        self._apply(record)
                        self.positions[tp] = record.offset + 1
                self._mark_ready_when(ends)
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()

    def _mark_ready_when(self, ends: dict[Any, int]) -> None:
        if not self.ready.is_set() and all(self.positions.get(tp, 0) >= end for tp, end in ends.items()):
            self.ready.set()

    async def _seek(self, consumer: Any, partitions: list[Any]) -> None:
        fresh = [tp for tp in partitions if tp not in self.positions]
        for tp in partitions:
            if tp in self.positions:
                consumer.seek(tp, self.positions[tp])  # a restart resumes where it was
        if not fresh:
            return
        since = int((self.started_at - self.lookback) * 1000)
        found = await consumer.offsets_for_times(dict.fromkeys(fresh, since))
        ends = await consumer.end_offsets(fresh)
        for tp in fresh:
            at = found.get(tp)
            offset = at.offset if at is not None else ends[tp]
            consumer.seek(tp, offset)
            self.positions[tp] = offset

    def _apply(self, record: Any) -> None:
        try:
            _envelope, event = decode(record.value)
        except Exception:
            return
        self.hub.learn(event)
        # Facts from before this process started only teach places; they are news to nobody now.
        if record.timestamp is not None and record.timestamp < (self.started_at - 1) * 1000:
            return
        self.hub.publish(event)
