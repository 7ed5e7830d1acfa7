"""The fold does not depend on how topics interleave, nor on a relay delivering a message twice.

A simulated county's log is split the way Kafka would hold it: per topic, into partitions by a hash of the key,
each partition in order. Any interleaving across partitions is a possible consumption order (a rating can be read
before the completion it rates), and a relay re-publishing after a crash appends already-delivered messages again
later in the same partition. Every such delivery must give the same `Reports(ledger).digest()`.
"""

from __future__ import annotations

import random
import zlib
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandan_scoring.facts import Fact, read_fact
from sandan_scoring.fold import Ledger
from sandan_scoring.report import Reports
from sandan_scoring.rules import RuleBook
from sandan_scoring.simulate import County

PARTITIONS = 3
RULES = RuleBook()
Partition = tuple[str, int]


@cache
def county(seed: int, walks: int, party_days: int) -> dict[Partition, tuple[Fact, ...]]:
    """The county's facts per (topic, partition), in partition order (the bytes go through read_fact)."""
    log = County(seed, communities=2, units=4, members=20).run(walks, party_days)
    parts: dict[Partition, list[Fact]] = {}
    for topic, messages in log.items():
        for key, raw in messages:
            fact = read_fact(topic, raw)
            if fact is not None:
                parts.setdefault((topic, zlib.crc32(key.encode()) % PARTITIONS), []).append(fact)
    return {k: tuple(v) for k, v in parts.items()}


def fold(facts: list[Fact], version: str = "2026.1") -> Ledger:
    ledger = Ledger(RULES.get(version))
    for f in facts:
        ledger.apply(f)
    return ledger


def topic_by_topic(parts: dict[Partition, tuple[Fact, ...]], topics: list[str]) -> list[Fact]:
    return [f for topic in topics for (t, _p), facts in sorted(parts.items()) if t == topic for f in facts]


def interleave(queues: list[list[Fact]], rnd: random.Random) -> list[Fact]:
    """Any merge of the queues that keeps each queue's order."""
    heads = [0] * len(queues)
    out: list[Fact] = []
    live = [i for i, q in enumerate(queues) if q]
    while live:
        i = rnd.choice(live)
        out.append(queues[i][heads[i]])
        heads[i] += 1
        if heads[i] == len(queues[i]):
            live.remove(i)
    return out


def with_redeliveries(facts: tuple[Fact, ...], rnd: random.Random, rate: float) -> tuple[list[Fact], int]:
    """A partition where a relay re-published a run of already-delivered messages now and then."""
    out: list[Fact] = []
    extra = 0
    for f in facts:
        out.append(f)
        if rnd.random() < rate:
            start = rnd.randrange(len(out))
            run = out[start:start + rnd.randint(1, 3)]
            out += run
            extra += len(run)
    return out, extra


counties = st.tuples(st.integers(0, 10_000), st.integers(5, 40), st.integers(0, 3))


def reference(seed: int, walks: int, party_days: int) -> str:
    parts = county(seed, walks, party_days)
    topics = sorted({t for t, _ in parts})
    return Reports(fold(topic_by_topic(parts, topics))).digest()


# ---- (a) topic by topic --------------------------------------------------------------------------------------
@settings(max_examples=15, deadline=None)
@given(counties, st.permutations(["dispatch.roster.v1", "dispatch.orders.v1", "intake.demands.v1",
                                  "dispatch.activities.v1"]))
def test_topic_by_topic_in_any_topic_order(params: tuple[int, int, int], topics: list[str]) -> None:
    parts = county(*params)
    assert Reports(fold(topic_by_topic(parts, topics))).digest() == reference(*params)


def test_ratings_read_before_everything_else_give_the_same_state() -> None:
    """The whole demands topic (every rating) first, then the orders, then the roster."""
    parts = county(1, 60, 2)
    first = fold(topic_by_topic(parts, ["intake.demands.v1", "dispatch.orders.v1", "dispatch.activities.v1",
                                        "dispatch.roster.v1"]))
    last = fold(topic_by_topic(parts, ["dispatch.roster.v1", "dispatch.activities.v1", "dispatch.orders.v1",
                                       "intake.demands.v1"]))
    assert first.entries and first.ratings
    assert any(e.rule == "five_star_bonus" for e in first.entries.values())
    assert Reports(first).digest() == Reports(last).digest()


# ---- (b) random cross-topic interleavings ------------------------------------------------------------------------
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(counties, st.randoms(use_true_random=False))
def test_any_interleaving_that_keeps_partition_order(params: tuple[int, int, int], rnd: random.Random) -> None:
    parts = county(*params)
    delivered = interleave([list(q) for q in parts.values()], rnd)
    ledger = fold(delivered)
    assert ledger.duplicates == 0
    assert Reports(ledger).digest() == reference(*params)


# ---- (c) duplicated deliveries --------------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(counties, st.randoms(use_true_random=False), st.floats(0.01, 0.3))
def test_redelivered_messages_change_nothing(params: tuple[int, int, int], rnd: random.Random,
                                             rate: float) -> None:
    parts = county(*params)
    queues, injected = [], 0
    for facts in parts.values():
        queue, extra = with_redeliveries(facts, rnd, rate)
        queues.append(queue)
        injected += extra
    ledger = fold(interleave(queues, rnd))
    assert ledger.duplicates == injected
    assert Reports(ledger).digest() == reference(*params)


# ---- what-if: another rule set gives another, distinguishable ledger -------------------------------------------
def test_a_ledger_under_2026_2_differs_from_2026_1() -> None:
    parts = county(3, 80, 3)
    facts = topic_by_topic(parts, sorted({t for t, _ in parts}))
    current, candidate = fold(facts, "2026.1"), fold(facts, "2026.2")
    assert Reports(current).digest() != Reports(candidate).digest()
    assert current.entries and candidate.entries
    assert not set(current.entries) & set(candidate.entries)  # ids name the version
    # the same rules fired on the same sources; only the numbers differ
    assert sorted((e.rule, e.sources) for e in current.entries.values()) == \
        sorted((e.rule, e.sources) for e in candidate.entries.values())
    care = [e.points for e in candidate.entries.values() if e.rule == "special_care_bonus"]
    assert care and set(care) == {12}
    assert {e.points for e in current.entries.values() if e.rule == "activity_check_in"} == {8}
    assert {e.points for e in candidate.entries.values() if e.rule == "activity_check_in"} == {5}
    assert sum(e.points for e in current.entries.values()) != sum(e.points for e in candidate.entries.values())
    # the same log, folded twice under one version, is the same
    assert Reports(fold(facts, "2026.2")).digest() == Reports(candidate).digest()


# ---- parallel replay: partitions folded apart, then merged ----------------------------------------------------------
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(counties, st.integers(2, 6), st.randoms(use_true_random=False), st.floats(0.0, 0.2))
def test_partitions_folded_apart_and_merged_equal_one_fold(params: tuple[int, int, int], workers: int,
                                                           rnd: random.Random, rate: float) -> None:
    """What a parallel replay does: each worker folds a share of the partitions (with whatever redeliveries
    they hold), the parent merges the workers' ledgers in any order."""
    parts = county(*params)
    shares: list[list[list[Fact]]] = [[] for _ in range(workers)]
    injected = 0
    for facts in parts.values():
        queue, extra = with_redeliveries(facts, rnd, rate)
        shares[rnd.randrange(workers)].append(queue)
        injected += extra
    ledgers = [fold(interleave(share, rnd)) for share in shares]
    rnd.shuffle(ledgers)
    merged = Ledger(RULES.get("2026.1"))
    for ledger in ledgers:
        merged.merge(ledger)
    assert merged.duplicates == injected
    assert merged.applied == sum(len(f) for f in parts.values())
    assert Reports(merged).digest() == reference(*params)


def test_ledgers_of_different_rule_sets_do_not_merge() -> None:
    with pytest.raises(ValueError, match="different rule sets"):
        Ledger(RULES.get("2026.1")).merge(Ledger(RULES.get("2026.2")))
