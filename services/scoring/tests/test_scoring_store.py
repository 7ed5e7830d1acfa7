"""scoring's tables on SQLite and PostgreSQL: atomic batches, the generation swap, published ids, notices, and
who asked for what (the requests)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from sandan_eventbus.sql import engine_for
from sandan_eventbus.trace import Actor
from sandan_scoring.fold import Entry
from sandan_scoring.store import ScoringStore, StarChange, entries_table
from services.scoring.tests.support import Events, fold, hand_county

AT = datetime(2026, 4, 6, 1, 0, tzinfo=UTC)


def entry(n: int, member: str = "m1", points: int = 10, quarter: str = "2026Q2") -> Entry:
    return Entry(f"e-{n:032x}", member, points, "service_completed", quarter, (f"dispatch:{n}", f"intake:{n}"),
                 AT, f"corr-{n}")


@pytest.fixture
def store(store_url: str) -> ScoringStore:
    s = ScoringStore(store_url)
    yield s  # type: ignore[misc]
    s.engine.dispose()


def test_a_fresh_store_is_empty(store: ScoringStore) -> None:
    assert store.current() == (0, None)
    assert store.positions(1) == {}
    assert store.entry_ids(1) == set()
    assert store.star_history() == ({}, {})


def test_creating_the_tables_twice_is_harmless(store_url: str, store: ScoringStore) -> None:
    store.commit_batch(1, "2026.1", [entry(1)], {("dispatch.orders.v1", 0): 5})
    again = ScoringStore(store_url)
    try:
        assert again.entry_ids(1) == {entry(1).entry_id}
    finally:
        again.engine.dispose()


def test_commit_batch_writes_entries_and_positions(store: ScoringStore) -> None:
    store.commit_batch(1, "2026.1", [entry(1), entry(2, points=-6)], {("dispatch.orders.v1", 0): 7,
                                                                      ("intake.demands.v1", 2): 3})
    assert store.entry_ids(1) == {entry(1).entry_id, entry(2).entry_id}
    assert store.count_entries(1) == 2
    assert store.positions(1) == {("dispatch.orders.v1", 0): 7, ("intake.demands.v1", 2): 3}
    store.commit_batch(1, "2026.1", [entry(3)], {("dispatch.orders.v1", 0): 9})
    assert store.positions(1) == {("dispatch.orders.v1", 0): 9, ("intake.demands.v1", 2): 3}
    assert store.count_entries(1) == 3


def test_rows_keep_the_rule_set_version_sources_and_time(store: ScoringStore) -> None:
    store.commit_batch(1, "2026.2", [entry(1, points=-4)], {})
    with store.engine.connect() as conn:
        row = conn.execute(select(entries_table(1))).one()
    assert (row.rule_set_version, row.points, row.rule, row.quarter) == ("2026.2", -4, "service_completed", "2026Q2")
    assert row.sources == "dispatch:1,intake:1"
    assert row.correlation_id == "corr-1"
    at = row.occurred_at if row.occurred_at.tzinfo else row.occurred_at.replace(tzinfo=UTC)  # SQLite drops it
    assert at == AT


def test_a_batch_with_no_entries_still_moves_positions(store: ScoringStore) -> None:
    store.commit_batch(1, "2026.1", [], {("dispatch.roster.v1", 1): 40})
    assert store.positions(1) == {("dispatch.roster.v1", 1): 40}


def test_a_failing_batch_writes_nothing(store: ScoringStore) -> None:
    """A duplicate entry id fails the insert: neither the new rows nor the moved positions are kept."""
    store.commit_batch(1, "2026.1", [entry(1)], {("dispatch.orders.v1", 0): 5})
    with pytest.raises(IntegrityError):
        store.commit_batch(1, "2026.1", [entry(2), entry(1)], {("dispatch.orders.v1", 0): 9,
                                                               ("intake.demands.v1", 0): 4})
    assert store.entry_ids(1) == {entry(1).entry_id}
    assert store.positions(1) == {("dispatch.orders.v1", 0): 5}


def test_generations_are_separate(store: ScoringStore) -> None:
    store.commit_batch(1, "2026.1", [entry(1)], {("dispatch.orders.v1", 0): 5})
    store.commit_batch(2, "2026.1", [entry(1)], {("dispatch.orders.v1", 0): 8})  # same id, other generation
    assert store.entry_ids(1) == store.entry_ids(2) == {entry(1).entry_id}
    assert store.positions(1) == {("dispatch.orders.v1", 0): 5}
    assert store.positions(2) == {("dispatch.orders.v1", 0): 8}


def test_swap_in_makes_a_generation_current_and_drops_the_old(store: ScoringStore) -> None:
    store.swap_in(1, "2026.1", [], {})
    assert store.current() == (1, "2026.1")
    store.commit_batch(1, "2026.1", [entry(1), entry(2)], {("dispatch.orders.v1", 0): 5})
    rebuilt = [entry(1), entry(2), entry(3)]
    store.swap_in(2, "2026.2", rebuilt, {("dispatch.orders.v1", 0): 6, ("intake.demands.v1", 0): 2})
    assert store.current() == (2, "2026.2")
    assert store.entry_ids(2) == {e.entry_id for e in rebuilt}
    assert store.positions(2) == {("dispatch.orders.v1", 0): 6, ("intake.demands.v1", 0): 2}
    assert store.entry_ids(1) == set()
    assert store.positions(1) == {}


def test_swap_in_of_a_large_generation(store: ScoringStore, ev: Events, rules) -> None:  # type: ignore[no-untyped-def]
    """More rows than one insert chunk (5,000), and a real folded ledger."""
    many = [entry(n) for n in range(12_345)]
    store.swap_in(3, "2026.1", many, {("dispatch.orders.v1", 0): 12_345})
    assert store.count_entries(3) == 12_345
    ledger = fold(rules, hand_county(ev))
    store.swap_in(4, "2026.1", list(ledger.entries.values()), {("dispatch.orders.v1", 0): 20})
    assert store.entry_ids(4) == set(ledger.entries)
    assert store.count_entries(3) == 0


def test_swap_in_rewrites_a_generation_that_already_had_rows(store: ScoringStore) -> None:
    """A swap into a generation number that holds leftovers (a crashed earlier attempt) replaces them."""
    store.commit_batch(5, "2026.1", [entry(1), entry(9)], {("dispatch.orders.v1", 0): 99})
    store.swap_in(5, "2026.1", [entry(1), entry(2)], {("dispatch.orders.v1", 0): 3})
    assert store.entry_ids(5) == {entry(1).entry_id, entry(2).entry_id}
    assert store.positions(5) == {("dispatch.orders.v1", 0): 3}


def test_a_failing_swap_keeps_the_current_generation(store: ScoringStore) -> None:
    store.swap_in(1, "2026.1", [entry(1)], {("dispatch.orders.v1", 0): 5})
    with pytest.raises(IntegrityError):
        store.swap_in(2, "2026.2", [entry(2), entry(2)], {("dispatch.orders.v1", 0): 9})
    assert store.current() == (1, "2026.1")
    assert store.entry_ids(1) == {entry(1).entry_id}
    assert store.positions(1) == {("dispatch.orders.v1", 0): 5}
    assert store.entry_ids(2) == set()


def test_published_ids_survive_a_swap(store: ScoringStore) -> None:
    store.swap_in(1, "2026.1", [entry(1), entry(2)], {})
    store.mark_published(["scoring:" + entry(1).entry_id, "scoring:s-abc"])
    store.swap_in(2, "2026.1", [entry(1), entry(2), entry(3)], {})
    wanted = ["scoring:" + entry(n).entry_id for n in (1, 2, 3)] + ["scoring:s-abc"]
    assert store.unpublished(wanted) == {"scoring:" + entry(2).entry_id, "scoring:" + entry(3).entry_id}
    assert store.unpublished([]) == set()


def test_unpublished_over_many_ids(store: ScoringStore) -> None:
    ids = [f"scoring:e-{n}" for n in range(1_234)]
    store.mark_published(ids[::2])
    assert store.unpublished(ids) == set(ids[1::2])
    store.mark_published([])  # nothing to do


def test_marking_an_id_published_twice_is_harmless(store: ScoringStore) -> None:
    """A re-publish after a crash marks an id again: that must not fail the batch (it then looped)."""
    store.mark_published(["scoring:e-1"])
    store.mark_published(["scoring:e-2", "scoring:e-1", "scoring:e-2"])
    assert store.unpublished(["scoring:e-1", "scoring:e-2", "scoring:e-3"]) == {"scoring:e-3"}


def change(member: str, quarter: str, seq: int, stars: int) -> StarChange:
    return StarChange(f"scoring:s-{member}-{quarter}-{seq}", member, quarter, seq, stars,
                      f'{{"stars":{stars},"seq":{seq}}}'.encode())


def test_star_changes_are_recorded_with_their_levels_and_places(store: ScoringStore) -> None:
    assert store.star_history() == ({}, {})
    store.record_star_changes([change("m1", "2026Q1", 1, 2), change("m2", "2026Q1", 1, 1)])
    store.record_star_changes([change("m1", "2026Q1", 2, 3), change("m1", "2026Q2", 1, 1)])
    store.record_star_changes([change("m1", "2026Q1", 3, 2)])
    levels, counts = store.star_history()
    assert levels == {("m1", "2026Q1"): 2, ("m2", "2026Q1"): 1, ("m1", "2026Q2"): 1}
    assert counts == {("m1", "2026Q1"): 3, ("m2", "2026Q1"): 1, ("m1", "2026Q2"): 1}


def test_recorded_star_changes_wait_for_publishing_with_their_bytes(store: ScoringStore) -> None:
    first, second = change("m1", "2026Q1", 1, 2), change("m1", "2026Q1", 2, 3)
    store.record_star_changes([first, second])
    store.record_star_changes([first])  # recorded again (a retry): nothing changes
    assert store.unpublished_star_changes() == [first, second]
    store.mark_published([first.event_id])
    assert store.unpublished_star_changes() == [second]


def test_one_place_in_a_members_changes_is_one_change(store: ScoringStore) -> None:
    store.record_star_changes([change("m1", "2026Q1", 1, 2)])
    other = StarChange("scoring:s-other", "m1", "2026Q1", 1, 3, b"{}")
    with pytest.raises(IntegrityError):
        store.record_star_changes([other])


def test_set_aside_items_count_their_attempts_until_published(store: ScoringStore) -> None:
    store.set_aside("scoring:e-1", "entry", "ValidationError: " + "x" * 1000)
    store.set_aside("scoring:s-1", "stars", "MessageSizeTooLargeError")
    store.set_aside("scoring:e-1", "entry", "ValidationError again")
    items = {i.event_id: i for i in store.set_aside_items()}
    assert (items["scoring:e-1"].attempts, items["scoring:e-1"].error) == (2, "ValidationError again")
    assert items["scoring:s-1"].kind == "stars" and items["scoring:s-1"].last_at.tzinfo is not None
    store.mark_published(["scoring:e-1"])
    assert [i.event_id for i in store.set_aside_items()] == ["scoring:s-1"]
    store.set_aside("scoring:n-1", "notice", "x" * 1000)
    assert max(len(i.error) for i in store.set_aside_items()) == 500


def test_a_notice_is_saved_once_and_read_back(store: ScoringStore) -> None:
    body = {"notice_id": "unit-u1-2026Q2-2026.1", "summary": {"members_active": 2}, "title": "每季度通报公示"}
    first = Actor("sub-county-1", "county_office")
    stored = store.save_notice("unit-u1-2026Q2-2026.1", "unit", "u1", "2026Q2", "2026.1", body, b'{"m":1}', first,
                               AT)
    assert (stored.body, stored.message, stored.actor, stored.created_at) == (body, b'{"m":1}', first, AT)
    # saved again (a second request, someone else): the first one stays, with its message and its actor
    again = store.save_notice("unit-u1-2026Q2-2026.1", "unit", "u1", "2026Q2", "2026.1", {"changed": True},
                              b'{"m":2}', Actor("sub-county-2", "county_office"), AT + timedelta(hours=1))
    assert again == stored == store.stored_notice("unit-u1-2026Q2-2026.1")
    assert store.notice("unit", "u1", "2026Q2") == body
    assert store.notice("unit", "u1", "2026Q3") is None
    assert store.notice("community", "u1", "2026Q2") is None
    assert store.stored_notice("unit-u2-2026Q2-2026.1") is None


def test_notices_stored_before_messages_and_actors_are_read_and_new_ones_keep_both(store_url: str) -> None:
    """A store an older version made: its notices table gains the new (nullable) columns at start, and a notice
    stored then reads back with no message and no actor."""
    engine = engine_for(store_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE scoring_notices (notice_id VARCHAR(200) PRIMARY KEY, scope VARCHAR(20) NOT "
                          "NULL, scope_id VARCHAR(64) NOT NULL, quarter VARCHAR(6) NOT NULL, rule_set_version "
                          "VARCHAR(40) NOT NULL, body TEXT NOT NULL, created_at TIMESTAMP NOT NULL)"))
        conn.execute(text("INSERT INTO scoring_notices VALUES ('unit-u1-2026Q1-2026.1', 'unit', 'u1', '2026Q1', "
                          "'2026.1', '{\"old\": true}', '2026-03-31 16:00:00')"))
    engine.dispose()
    store = ScoringStore(store_url)
    try:
        old = store.stored_notice("unit-u1-2026Q1-2026.1")
        assert old is not None and (old.body, old.message, old.actor) == ({"old": True}, None, None)
        assert old.created_at == datetime(2026, 3, 31, 16, 0, tzinfo=UTC)
        who = Actor("sub-county-1", "county_office")
        new = store.save_notice("unit-u1-2026Q2-2026.1", "unit", "u1", "2026Q2", "2026.1", {"new": True}, b"{}", who)
        assert (new.message, new.actor) == (b"{}", who)
        assert ScoringStore(store_url).stored_notice("unit-u1-2026Q2-2026.1") == new  # a restart adds nothing
    finally:
        store.engine.dispose()


def test_requests_are_recorded_with_who_asked_and_read_in_order(store: ScoringStore) -> None:
    operator, office = Actor("sub-op-1", "operator"), Actor("sub-county-1", "county_office", None)
    first = store.request_started("Rebuild", operator, rule_set_version="2026.1", correlation_id="corr-1")
    second = store.request_started("WhatIf", office, rule_set_version="2026.2", quarter="2026Q2")
    third = store.request_started("Rebuild", None, rule_set_version="2026.1", detail="at start: the store differs")
    running = store.requests()
    assert [(r.request_id, r.action, r.subject, r.role, r.outcome) for r in running] == [
        (first, "Rebuild", "sub-op-1", "operator", "running"), (second, "WhatIf", "sub-county-1", "county_office",
                                                                 "running"), (third, "Rebuild", "", "", "running")]
    assert running[0].correlation_id == "corr-1" and running[0].finished_at is None and running[0].seconds is None
    assert running[2].detail == "at start: the store differs"
    store.request_finished(first, "done", "12 events in 0.100 s; digest abc")
    store.request_finished(second, "failed", "KafkaConnectionError: " + "x" * 1000)
    done = {r.request_id: r for r in store.requests()}
    assert (done[first].outcome, done[first].detail) == ("done", "12 events in 0.100 s; digest abc")
    assert done[first].finished_at is not None and done[first].seconds is not None and done[first].seconds >= 0
    assert done[second].outcome == "failed" and len(done[second].detail) == 500
    assert store.requests_interrupted() == 1  # what a stopped process left running
    assert store.requests(action="Rebuild")[-1].outcome == "interrupted"
    assert [r.request_id for r in store.requests(action="Rebuild")] == [first, third]
    assert [r.request_id for r in store.requests(subject="sub-county-1")] == [second]
    assert [r.request_id for r in store.requests(quarter="2026Q2")] == [second]
    assert [r.request_id for r in store.requests(limit=2)] == [second, third]  # the newest, still oldest first
    assert store.requests(since=datetime.now(UTC) + timedelta(minutes=1)) == []


def test_the_newest_notice_of_a_scope_and_quarter_is_read(store: ScoringStore) -> None:
    """A notice published again under another rule set is a second notice; the newest one is read."""
    store.save_notice("unit-u1-2026Q2-2026.1", "unit", "u1", "2026Q2", "2026.1", {"v": "2026.1"})
    store.save_notice("unit-u1-2026Q2-2026.2", "unit", "u1", "2026Q2", "2026.2", {"v": "2026.2"})
    assert store.notice("unit", "u1", "2026Q2") == {"v": "2026.2"}


def test_a_bulk_written_generation_reads_back_like_a_live_one(store: ScoringStore) -> None:
    """The rebuild's bulk path (JSON unpacked by SQLite itself) stores exactly what SQLAlchemy's insert does."""
    times = [AT, AT.replace(microsecond=123456), AT.replace(microsecond=1), datetime(2026, 12, 31, 23, 59, 59,
                                                                                  999999, tzinfo=UTC)]
    rows = [Entry(f"e-{n:032x}", f"m-{n}", n - 2, "five_star_bonus", "2026Q4", (f"intake:{n}",) * (n % 2 + 1),
                  at, f"corr-{n}") for n, at in enumerate(times)]
    store.commit_batch(1, "2026.1", rows, {})
    writer = store.generation_writer(2, "2026.1")  # written, not swapped in (a swap drops generation 1)
    writer.add(rows)
    writer.close()
    with store.engine.connect() as conn:
        live = conn.execute(select(entries_table(1)).order_by("entry_id")).all()
        bulk = conn.execute(select(entries_table(2)).order_by("entry_id")).all()
        raw = conn.exec_driver_sql("SELECT occurred_at FROM scoring_entries_2 ORDER BY entry_id").scalars().all()
    assert bulk == live
    assert len(bulk) == len(rows)
    if store.engine.dialect.name == "sqlite":
        assert raw[0] == "2026-04-06 01:00:00.000000"


def test_a_rebuild_that_fails_midway_leaves_nothing_behind(store: ScoringStore) -> None:
    store.swap_in(1, "2026.1", [entry(1)], {("dispatch.orders.v1", 0): 5})
    writer = store.generation_writer(2, "2026.1")
    writer.add([entry(2), entry(3)])
    writer.abort()
    assert store.entry_ids(2) == set()
    assert store.current() == (1, "2026.1")
    # a crash before the swap leaves a table; the next start or swap drops it
    crashed = store.generation_writer(3, "2026.1")
    crashed.add([entry(4)])
    crashed.close()
    store.drop_other_generations(1)
    assert store.entry_ids(3) == set() and store.entry_ids(1) == {entry(1).entry_id}


def test_unpublished_entries_of_a_generation(store: ScoringStore) -> None:
    store.swap_in(1, "2026.1", [entry(1), entry(2), entry(3)], {})
    assert store.unpublished_entries(1) == {entry(n).entry_id for n in (1, 2, 3)}
    store.mark_published(["scoring:" + entry(2).entry_id, "scoring:s-abc"])
    assert store.unpublished_entries(1) == {entry(1).entry_id, entry(3).entry_id}
    assert store.unpublished_entries(7) == set()  # no such generation


def test_the_batched_insert_path_writes_a_generation_too(store: ScoringStore) -> None:
    """What PostgreSQL, and a SQLite older than 3.38 (no `->>`), use instead of the JSON bulk insert."""
    writer = store.generation_writer(1, "2026.1")
    writer.bulk = None
    writer.add([entry(n) for n in range(7)])
    writer.close()
    store.make_current(1, "2026.1", {("dispatch.orders.v1", 0): 7})
    assert store.entry_ids(1) == {entry(n).entry_id for n in range(7)}


def test_a_rebuild_writes_its_rows_in_chunks_while_folding(store: ScoringStore, rulebook) -> None:  # type: ignore[no-untyped-def]
    """The rebuild's feed hands over new entries after each batch (every 50 here), the rest at the end: the
    stored generation is exactly the folded ledger, in as many chunks as it took."""
    from sandan_scoring.engine import EntryFeed
    from sandan_scoring.fold import Ledger
    from sandan_scoring.folding import fold_records
    from sandan_scoring.simulate import County

    log = County(3, communities=2, units=4, members=30).run(150, 3)
    records: list[tuple[str, bytes | None]] = [(t, raw) for t, messages in log.items() for _k, raw in messages]
    ledger = Ledger(rulebook.get("2026.1"), track_changes=False)
    writer = store.generation_writer(2, "2026.1")
    feed = EntryFeed(writer, every=50)
    chunks = []
    writer.add = lambda chunk, add=writer.add: (chunks.append(len(chunk)), add(chunk))  # type: ignore[method-assign]
    for start in range(0, len(records), 40):
        fold_records(ledger, records[start:start + 40])
        feed(ledger)
    feed.flush(ledger)
    writer.close()
    store.make_current(2, "2026.1", {})
    assert len(chunks) > 3 and sum(chunks) == len(ledger.entries) > 200
    assert store.entry_ids(2) == set(ledger.entries)
