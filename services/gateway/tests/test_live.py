"""The live hub: who gets which update, bounded queues, resuming with Last-Event-ID."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sandan_contracts import encode
from sandan_contracts.events import (
    DemandPosted,
    DemandTextsShredded,
    OrderDispatched,
    OrderOffered,
    OrderOpened,
    OrderOverdue,
    PointsAwarded,
)
from sandan_gateway.live import QUEUE_SIZE, Hub, Interest, LiveFeed

DUE = datetime.now(UTC) + timedelta(hours=2)


def opened(order: str, community: str, grid: str = "g1") -> OrderOpened:
    return OrderOpened(order_id=order, demand_id=f"d-{order}", community_id=community, grid_id=grid,
                       category="repair", urgency="normal", due_at=DUE)


def test_secretary_sees_their_community_only_and_overdue_orders_by_place():
    hub = Hub()
    mine, theirs = hub.subscribe(Interest(frozenset({"branch_secretary"}), community_id="c1"))[0], \
        hub.subscribe(Interest(frozenset({"branch_secretary"}), community_id="c2"))[0]
    hub.learn(opened("o1", "c1"))
    hub.publish(opened("o1", "c1"))
    hub.publish(OrderOverdue(order_id="o1", demand_id="d-o1", level="community", due_at=DUE, status="open"))
    assert [mine.queue.get_nowait().kind for _ in range(2)] == ["OrderOpened", "OrderOverdue"]
    assert theirs.queue.empty()


def test_an_order_from_before_the_lookback_goes_to_nobody():
    hub = Hub()
    county = hub.subscribe(Interest(frozenset({"county_office"}), county=True))[0]
    assert hub.publish(OrderOverdue(order_id="old", demand_id="d-old", level="community", due_at=DUE,
                                    status="open")) is None
    assert county.queue.empty()


def test_member_sees_offers_to_their_grid_or_teams_and_what_is_theirs():
    hub = Hub()
    member = hub.subscribe(Interest(frozenset({"member"}), member_id="m1", member_grid="g1",
                                    member_teams=frozenset({"medical"})))[0]
    other = hub.subscribe(Interest(frozenset({"member"}), member_id="m2", member_grid="g9"))[0]
    for order, grid in (("o1", "g1"), ("o2", "g2"), ("o3", "g3")):
        hub.learn(opened(order, "c1", grid))
    hub.publish(OrderOffered(order_id="o1", demand_id="d-o1", grid_id="g1"))
    hub.publish(OrderOffered(order_id="o2", demand_id="d-o2", grid_id="g2", teams=["medical"]))
    hub.publish(OrderOffered(order_id="o3", demand_id="d-o3", grid_id="g3", teams=["legal"]))
    hub.publish(OrderDispatched(order_id="o3", demand_id="d-o3", member_id="m1", dispatched_by="branch"))
    hub.publish(PointsAwarded(member_id="m2", community_id="c1", unit_id="u1", entry_id="e1", points=5,
                              rule="service_completed", rule_set_version="2026.1", quarter="2026Q4",
                              source_event_ids=["dispatch:1"]))
    got = [member.queue.get_nowait() for _ in range(member.queue.qsize())]
    assert [(u.kind, u.order_id) for u in got] == [("OrderOffered", "o1"), ("OrderOffered", "o2"),
                                                   ("OrderDispatched", "o3")]
    points = [other.queue.get_nowait() for _ in range(other.queue.qsize())]
    assert [u.kind for u in points] == ["PointsAwarded"] and "source_event_ids" not in points[0].data


def test_a_slow_stream_is_bounded_and_told_to_reload():
    hub = Hub()
    slow = hub.subscribe(Interest(frozenset({"county_office"}), county=True))[0]
    for n in range(QUEUE_SIZE + 10):
        hub.learn(opened(f"o{n}", "c1"))
        hub.publish(opened(f"o{n}", "c1"))
    assert slow.queue.qsize() == QUEUE_SIZE and slow.overflowed and slow.dropped == 10


def test_resume_from_last_event_id_or_reload():
    hub = Hub()
    interest = Interest(frozenset({"branch_secretary"}), community_id="c1")
    hub.learn(opened("o1", "c1"))
    first = hub.publish(opened("o1", "c1"))
    hub.publish(opened("o2", "c2"))
    hub.learn(opened("o3", "c1"))
    third = hub.publish(opened("o3", "c1"))
    _, missed = hub.subscribe(interest, first.id)
    assert [u.id for u in missed] == [third.id]  # c2's order is not theirs
    _, unknown = hub.subscribe(interest, "another-process-7")
    assert unknown is None


def test_shredded_texts_are_news_to_no_one_and_never_an_error():
    """Intake's DemandTextsShredded tells the services holding a demand's texts to forget them: the feed reads it
    like any fact (no error, no restart) and sends it to nobody, not even the resident or the county."""
    hub = Hub()
    feed = LiveFeed(hub, consumer_factory=lambda: None, lookback_seconds=60)
    county = hub.subscribe(Interest(frozenset({"county_office"}), county=True))[0]
    resident = hub.subscribe(Interest(frozenset({"resident"}), demand_ids={"d-1"}))[0]
    secretary = hub.subscribe(Interest(frozenset({"branch_secretary"}), community_id="c1"))[0]

    def record(event, n):  # a record as the consumer hands it over, written now
        raw = encode(event, event_id=f"intake:{n}", producer="intake", occurred_at=datetime.now(UTC),
                     correlation_id=f"intake:{n}", causation_id=None)
        return type("Record", (), {"value": raw, "timestamp": int(datetime.now(UTC).timestamp() * 1000)})()

    feed._apply(record(DemandPosted(demand_id="d-1", community_id="c1", grid_id="g1", category="repair",
                                    urgency="normal", channel="app", due_at=DUE, deadline_seconds=3600), 1))
    assert [q.queue.qsize() for q in (county, resident, secretary)] == [1, 1, 1]  # the demand reached them
    for n, cause in enumerate(("retention", "erasure"), start=2):
        feed._apply(record(DemandTextsShredded(demand_id="d-1", cause=cause), n))
        assert hub.publish(DemandTextsShredded(demand_id="d-1", cause=cause)) is None
    assert [q.queue.qsize() for q in (county, resident, secretary)] == [1, 1, 1]
    assert [u.kind for _, u in hub.recent] == ["DemandPosted"] and hub.delivered == 1
    assert hub.place_of("d-1") == ("c1", "g1")  # what it knew of the demand still routes its next facts
