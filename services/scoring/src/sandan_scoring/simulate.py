"""A synthetic county's event log, for tests and benchmarks (not for production use).

Produces what intake and dispatch would publish: members reporting, demands walking through the three
orders (with declines, redos, overdue escalations, withdrawals, ratings) and themed party days. Every
message is encoded with the real contract; event ids are `<producer>:<n>` and increase per producer, as
the relays write them. The output is per topic, in topic order: a list of (key, raw bytes) each.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from sandan_contracts import encode
from sandan_contracts import events as c

CATEGORIES = ("medical", "legal", "mediation", "policy", "environment", "information", "other")
CARE = ("elderly_alone", "student_hardship", "left_behind_child")


class County:
    def __init__(self, seed: int = 7, communities: int = 9, units: int = 130, members: int = 2600,
                 start: datetime = datetime(2026, 1, 5, 1, 0, tzinfo=UTC), prefix: str = "") -> None:
        self.rng = random.Random(seed)  # noqa: S311 - synthetic data, not secrets
        self.now = start
        self.seq: dict[str, int] = defaultdict(int)
        self.log: dict[str, list[tuple[str, bytes]]] = defaultdict(list)
        self.communities = [f"{prefix}3608261000{i:02d}" for i in range(1, communities + 1)]
        self.units = [f"{prefix}360826-u-{i:04d}" for i in range(1, units + 1)]
        self.members: list[tuple[str, str, str, str]] = []  # (member, community, grid, unit)
        for i in range(members):
            community = self.rng.choice(self.communities)
            grid = f"{community}-g{self.rng.randint(1, 12):02d}"
            unit = self.rng.choice(self.units)
            member = f"m-{prefix}{i:05d}"
            self.members.append((member, community, grid, unit))
            teams = self.rng.sample(CATEGORIES[:6], k=self.rng.randint(1, 2))
            self.emit("dispatch", c.MemberReported(member_id=member, unit_id=unit, community_id=community,
                                                   grid_id=grid, teams=teams))

    def tick(self, minutes: float) -> datetime:
        self.now += timedelta(minutes=minutes)
        return self.now

    def emit(self, producer: str, event: c.Event, causation: str | None = None, correlation: str | None = None) -> str:
        self.seq[producer] += 1
        event_id = f"{producer}:{self.seq[producer]}"
        raw = encode(event, event_id=event_id, producer=producer, occurred_at=self.now,
                     correlation_id=correlation or event_id, causation_id=causation)
        self.log[event.TOPIC].append((event.key(), raw))
        return event_id

    def walk(self) -> None:
        """One demand through the loop, with the variety a real quarter has."""
        rng = self.rng
        member, community, grid, _unit = rng.choice(self.members)
        demand = f"d-{rng.getrandbits(64):016x}"
        order = f"o-{rng.getrandbits(64):016x}"
        category = rng.choice(CATEGORIES)
        urgency = rng.choice(("urgent", "normal", "normal", "routine"))
        care = [rng.choice(CARE)] if rng.random() < 0.25 else []
        deadline = {"urgent": 7200, "normal": 86400, "routine": 604800}[urgency]
        self.tick(rng.uniform(1, 30))
        due = self.now + timedelta(seconds=deadline)
        posted = self.emit("intake", c.DemandPosted(demand_id=demand, community_id=community, grid_id=grid,
                                                    category=category, urgency=urgency, care_tags=care,
                                                    channel=rng.choice(("app", "hotline", "grid_worker")),
                                                    due_at=due, deadline_seconds=deadline))
        corr = posted
        # half the orders as dispatch writes them now (special_care), half as before (the tags): one meaning
        flagged = int(order[-1], 16) % 2 == 0
        opened = self.emit("dispatch", c.OrderOpened(order_id=order, demand_id=demand, community_id=community,
                                                     grid_id=grid, category=category, urgency=urgency,
                                                     care_tags=[] if flagged else care,
                                                     special_care=flagged and bool(care), due_at=due), posted, corr)
        if rng.random() < 0.05:
            self.tick(10)
            w = self.emit("intake", c.DemandWithdrawn(demand_id=demand, reason="solved_myself"), None, corr)
            self.emit("dispatch", c.OrderCancelled(order_id=order, demand_id=demand, reason="demand_withdrawn"), w,
                      corr)
            return
        self.emit("dispatch", c.OrderOffered(order_id=order, demand_id=demand, grid_id=grid, teams=[category]),
                  opened, corr)
        if rng.random() < 0.08:  # nobody in time: overdue, escalated to the town
            self.tick(deadline / 60 + 1)
            self.emit("dispatch", c.OrderOverdue(order_id=order, demand_id=demand, level="community", due_at=due,
                                                 status="offered"), None, corr)
            due = self.now + timedelta(seconds=deadline)
            self.emit("dispatch", c.OrderEscalated(order_id=order, demand_id=demand, from_level="community",
                                                   to_level="town", reason="deadline_missed", automatic=True,
                                                   due_at=due), None, corr)
        self.tick(rng.uniform(5, 90))
        self.emit("dispatch", c.OrderAccepted(order_id=order, demand_id=demand, member_id=member, via="claim"),
                  None, corr)
        if rng.random() < 0.04:  # the member gives it back; another takes it
            self.tick(20)
            self.emit("dispatch", c.OrderDeclined(order_id=order, demand_id=demand, member_id=member,
                                                  reason="unavailable"), None, corr)
            member = rng.choice(self.members)[0]
            self.emit("dispatch", c.OrderAccepted(order_id=order, demand_id=demand, member_id=member,
                                                  via="claim"), None, corr)
        self.tick(rng.uniform(30, 300))
        hours = round(rng.uniform(0.5, 4), 1)
        done = self.emit("dispatch", c.ServiceCompleted(order_id=order, demand_id=demand, member_id=member,
                                                        hours=hours, has_notes=True), None, corr)
        if rng.random() < 0.05:  # not satisfied: redo
            self.tick(60)
            r = self.emit("intake", c.RedoRequested(demand_id=demand, redo_count=1, member_id=member), done, corr)
            self.emit("dispatch", c.OrderReopened(order_id=order, demand_id=demand, redo_count=1,
                                                  previous_member_id=member, due_at=self.now + timedelta(days=1)),
                      r, corr)
            self.emit("dispatch", c.OrderAccepted(order_id=order, demand_id=demand, member_id=member, via="claim"),
                      None, corr)
            self.tick(120)
            done = self.emit("dispatch", c.ServiceCompleted(order_id=order, demand_id=demand, member_id=member,
                                                            hours=1.0), None, corr)
        self.tick(rng.uniform(10, 600))
        self.emit("intake", c.CompletionConfirmed(demand_id=demand, member_id=member), done, corr)
        if rng.random() < 0.8:
            stars = rng.choices((5, 4, 3, 2, 1), weights=(60, 25, 8, 4, 3))[0]
            self.emit("intake", c.ServiceRated(demand_id=demand, member_id=member, stars=stars), done, corr)

    def party_day(self) -> None:
        rng = self.rng
        _, community, _, unit = rng.choice(self.members)  # a unit brings an activity to a community it reported to
        activity = f"act-{rng.getrandbits(48):012x}"
        self.tick(60)
        self.emit("dispatch", c.ActivityScheduled(activity_id=activity, community_id=community, unit_id=unit,
                                                  theme="free_health_check", title="免费义诊",
                                                  starts_at=self.now + timedelta(days=2),
                                                  ends_at=self.now + timedelta(days=2, hours=3), capacity=100))
        attendees = [m for m in self.members if m[3] == unit and m[1] == community][:12]
        for member, _, _, _ in attendees:
            self.emit("dispatch", c.MemberCheckedIn(activity_id=activity, community_id=community, member_id=member,
                                                    unit_id=unit))
        self.emit("dispatch", c.ActivityCompleted(activity_id=activity, community_id=community, unit_id=unit,
                                                  hours=3.0, members_checked_in=len(attendees),
                                                  residents_signed_up=0))

    def run(self, walks: int, party_days: int = 0) -> dict[str, list[tuple[str, bytes]]]:
        every = max(1, walks // party_days) if party_days else 0
        for i in range(walks):
            self.walk()
            if every and i % every == 0:
                self.party_day()
        return dict(self.log)

    def count(self) -> int:
        return sum(len(v) for v in self.log.values())


async def produce(bootstrap: str, log: dict[str, list[tuple[str, bytes]]]) -> int:
    """Write a simulated log to the real topics (keyed, so each key keeps its order)."""
    from aiokafka import AIOKafkaProducer

    from sandan_eventbus.kafka import aiokafka_kwargs

    producer = AIOKafkaProducer(**aiokafka_kwargs(bootstrap), enable_idempotence=True, acks="all",
                                linger_ms=20, max_batch_size=512 * 1024, compression_type=None)
    await producer.start()
    try:
        sent = 0
        futures = []
        for topic, messages in log.items():
            for key, raw in messages:
                # the type header, as the services' relays write it (readers may route on it unparsed)
                type_name = raw[raw.index(b'"type":"') + 8:].split(b'"', 1)[0]
                futures.append(await producer.send(topic, raw, key=key.encode(),
                                                   headers=[("type", type_name), ("schema_version", b"1")]))
                sent += 1
                if len(futures) >= 20_000:
                    for f in futures:
                        await f
                    futures.clear()
        for f in futures:
            await f
        return sent
    finally:
        await producer.stop()
