"""Summaries, rankings and totals on small logs whose numbers can be worked out by hand.

The hand-made county (support.hand_county), all in 2026Q2, rules 2026.1:

    member  community unit   orders                                        points
    m1      c1        u1     o1 medical+care, 2.0 h, rated 5; o3 accepted  12 + 8 + 6 + 5 = 31
    m2      c1        u2     o2 policy, 1.5 h, accepted late, rated 3      8 + 6 = 14
    m3      c2        u1     o5 information, 4.0 h, rated 4                6 + 16 = 22

    o3 (c1) ran overdue while offered, was escalated with a new deadline, then m1 accepted it in time;
    o4 (c1) was cancelled before anyone took it (not counted as opened).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime

import pytest

from sandan_contracts import decode
from sandan_scoring.report import Reports, Summary, _summary_json
from sandan_scoring.rules import RuleBook, RuleSet
from services.scoring.tests.support import HAND_COUNTY_DIGEST, Events, assert_same, fold, hand_county

Q = "2026Q2"


@pytest.fixture
def reports(ev: Events, rules: RuleSet) -> Reports:
    return Reports(fold(rules, hand_county(ev)))


def test_member_points_in_the_hand_county(reports: Reports) -> None:
    assert [reports.member_quarter(m, Q).points for m in ("m1", "m2", "m3")] == [31, 14, 22]
    m1 = reports.member_quarter("m1", Q)
    assert (m1.average_rating, m1.rated_services, m1.stars) == (5.0, 1, 0)  # one rating: no stars yet


@pytest.mark.parametrize(("scope", "scope_id", "expected"), [
    # c1: o1, o2 completed (2.0 + 1.5 h); accepted o1 in time, o2 late, o3 in time (after the new deadline);
    # opened o1, o2, o3 (o4 cancelled), done o1, o2; rated 5 and 3; o3 overdue and escalated once.
    ("community", "c1", Summary(2, 2, 3.5, 0.6667, 0.6667, 0.5, 1, 1)),
    # c2: o5 alone.
    ("community", "c2", Summary(1, 1, 4.0, 1.0, 1.0, 1.0, 0, 0)),
    # u1 (m1 and m3): completed o1, o5 (6.0 h); accepted o1, o3, o5 in time; opened o1, o3, o5, done o1, o5;
    # rated 5 and 4; o3's overdue and escalation count for every unit whose member accepted the order.
    ("unit", "u1", Summary(2, 2, 6.0, 1.0, 0.6667, 1.0, 1, 1)),
    # u2 (m2): o2 accepted late, completed, rated 3.
    ("unit", "u2", Summary(1, 1, 1.5, 0.0, 1.0, 0.0, 0, 0)),
])
def test_summaries_per_community_and_unit(reports: Reports, scope: str, scope_id: str, expected: Summary) -> None:
    assert reports.summary(scope, scope_id, Q) == expected  # type: ignore[arg-type]


def test_a_quarter_or_scope_without_data_has_no_rates(reports: Reports) -> None:
    empty = Summary(0, 0, 0.0, None, None, None, 0, 0)
    assert reports.summary("community", "c1", "2026Q3") == empty
    assert reports.summary("unit", "u-none", Q) == empty


def test_scopes_quarters_and_members(reports: Reports) -> None:
    assert reports.scopes() == {"community": ["c1", "c2"], "unit": ["u1", "u2"]}
    assert reports.quarters() == [Q]
    assert reports.members_in("community", "c1") == ["m1", "m2"]
    assert reports.members_in("unit", "u1") == ["m1", "m3"]


def test_rankings_per_community_and_unit(reports: Reports) -> None:
    assert [(r.member_id, r.points) for r in reports.ranking("community", "c1", Q)] == [("m1", 31), ("m2", 14)]
    assert [(r.member_id, r.points) for r in reports.ranking("unit", "u1", Q)] == [("m1", 31), ("m3", 22)]
    assert [(r.member_id, r.points) for r in reports.ranking("community", "c2", Q)] == [("m3", 22)]
    # a quarter without activity still lists the community's members, with nothing
    assert [(r.member_id, r.points, r.stars) for r in reports.ranking("community", "c1", "2026Q3")] == \
        [("m1", 0, 0), ("m2", 0, 0)]


def test_ranking_order_points_then_stars_then_member_id(ev: Events, rules: RuleSet) -> None:
    """e: 24 points; b and a: 16 points each, b has a star (3 ratings of 4), a none; c and d: 8 points, no
    stars, so by member id; f: a penalty only."""
    facts = [ev.reported(m, "c9", "u9") for m in ("a", "b", "c", "d", "e", "f")]
    facts += [ev.checked_in(f"act{i}", "e", community="c9", unit="u9") for i in range(3)]
    facts += [ev.checked_in(f"act{i}", m, community="c9", unit="u9") for m in ("a", "b") for i in range(2)]
    facts += [ev.rated(f"db{i}", 4, "b") for i in range(3)]
    facts += [ev.checked_in("act0", m, community="c9", unit="u9") for m in ("d", "c")]
    facts += [ev.opened("o1", community="c9"), ev.accepted("o1", "f"), ev.declined("o1", "f")]
    ranking = Reports(fold(rules, facts)).ranking("community", "c9", Q)
    assert [(r.member_id, r.points, r.stars) for r in ranking] == [
        ("e", 24, 0), ("b", 16, 1), ("a", 16, 0), ("c", 8, 0), ("d", 8, 0), ("f", -6, 0)]
    b = ranking[1]
    assert (b.average_rating, b.rated_services) == (4.0, 3)


def test_stars_need_enough_rated_services_in_the_quarter(ev: Events, rules: RuleSet) -> None:
    """Two 5-star ratings in Q1 and one in Q2 are not three rated services in any one quarter."""
    q1 = datetime(2026, 2, 1, tzinfo=UTC)
    facts = [ev.reported("m1", "c1", "u1")]
    facts += [ev.checked_in(f"a{i}", "m1", at=q1) for i in range(5)]
    facts += [ev.rated("d1", 5, "m1", at=q1), ev.rated("d2", 5, "m1", at=q1), ev.rated("d3", 5, "m1")]
    reports = Reports(fold(rules, facts))
    assert reports.member_quarter("m1", "2026Q1").stars == 0
    facts.append(ev.rated("d4", 5, "m1", at=q1))
    reports = Reports(fold(rules, facts))
    first = reports.member_quarter("m1", "2026Q1")
    assert (first.points, first.rated_services, first.average_rating) == (5 * 8 + 3 * 5, 3, 5.0)
    assert first.stars == 2  # 55 points: enough for 2 stars (30), not 3 (60)


def test_totals_per_quarter_and_per_year(ev: Events, rules: RuleSet) -> None:
    facts = [
        ev.checked_in("a1", "m1", at=datetime(2025, 11, 2, tzinfo=UTC)),  # 2025Q4
        ev.checked_in("a2", "m1", at=datetime(2025, 12, 31, 16, 30, tzinfo=UTC)),  # 00:30 Jan 1st in China: 2026Q1
        ev.checked_in("a3", "m1", at=datetime(2026, 3, 1, tzinfo=UTC)),  # 2026Q1
        ev.rated("d1", 5, "m1", at=datetime(2026, 5, 1, tzinfo=UTC)),  # 2026Q2
        ev.opened("o1", at=datetime(2026, 5, 2, tzinfo=UTC)),
        ev.accepted("o1", "m1", at=datetime(2026, 5, 2, 1, tzinfo=UTC)),
        ev.declined("o1", "m1", at=datetime(2026, 5, 2, 2, tzinfo=UTC)),  # -6 in 2026Q2
        ev.checked_in("a4", "m2", at=datetime(2026, 5, 1, tzinfo=UTC)),  # someone else
    ]
    reports = Reports(fold(rules, facts))
    assert reports.totals("m1") == {"2025": 8, "2025Q4": 8, "2026": 15, "2026Q1": 16, "2026Q2": -1, "all": 23}
    assert reports.totals("m2") == {"2026": 8, "2026Q2": 8, "all": 8}
    assert reports.totals("nobody") == {}
    assert [e.quarter for e in reports.entries_of("m1")] == ["2025Q4", "2026Q1", "2026Q1", "2026Q2", "2026Q2"]
    assert [e.rule for e in reports.entries_of("m1", "2026Q2")] == ["five_star_bonus", "abandoned_order"]


def test_an_order_spanning_quarters_counts_where_each_fact_happened(ev: Events, rules: RuleSet) -> None:
    """Opened on June 30th (China), completed on July 1st (China): the completion and its hours count in Q3,
    the order (opened, and done) in Q2."""
    opened = datetime(2026, 6, 30, 12, 0, tzinfo=UTC)
    done = datetime(2026, 6, 30, 17, 0, tzinfo=UTC)
    facts = [ev.reported("m1", "c1", "u1"), ev.opened("o1", at=opened, due=datetime(2026, 7, 1, tzinfo=UTC)),
             ev.accepted("o1", "m1", at=opened), ev.completed("o1", "m1", 2.0, at=done)]
    reports = Reports(fold(rules, facts))
    assert reports.summary("community", "c1", "2026Q2") == Summary(0, 0, 0.0, 1.0, 1.0, None, 0, 0)
    assert reports.summary("community", "c1", "2026Q3") == Summary(1, 1, 2.0, None, None, None, 0, 0)


def test_a_rating_without_a_member_counts_for_the_community_only(ev: Events, rules: RuleSet) -> None:
    facts = [ev.reported("m1", "c1", "u1"), ev.opened("o1"), ev.accepted("o1", "m1"), ev.completed("o1", "m1"),
             ev.rated("do1", 2, None)]
    reports = Reports(fold(rules, facts))
    assert reports.summary("community", "c1", Q).satisfaction_rate == 0.0
    assert reports.summary("unit", "u1", Q).satisfaction_rate is None


def test_members_known_from_check_ins_only_are_reported_under_that_unit(ev: Events, rules: RuleSet) -> None:
    reports = Reports(fold(rules, [ev.checked_in("a1", "m7", community="c3", unit="u3")]))
    assert reports.members_in("unit", "u3") == ["m7"]
    assert reports.summary("unit", "u3", Q).members_active == 1
    assert reports.scopes() == {"community": ["c3"], "unit": ["u3"]}


def test_digest_is_a_function_of_the_state(ev: Events, rules: RuleSet) -> None:
    facts = hand_county(ev)
    one, two = Reports(fold(rules, facts)), Reports(fold(rules, facts))
    assert one.digest() == two.digest()
    assert len(one.digest()) == 64
    more = Reports(fold(rules, [*facts, ev.rated("dx", 4, "m2")]))
    assert more.digest() != one.digest()  # a summary changed, not an entry


@pytest.mark.parametrize("version", sorted(HAND_COUNTY_DIGEST))
def test_the_digest_of_the_same_facts_is_the_one_before_actors(rulebook: RuleBook, version: str) -> None:
    rules = rulebook.get(version)
    assert Reports(fold(rules, hand_county(Events()))).digest() == HAND_COUNTY_DIGEST[version]
    acted = Events(actor="f3c1e9a0-5b7d-4c2e-9a61-0d8e4b2f7c15")  # each fact caused by a person (a Keycloak sub)
    facts = hand_county(acted)
    assert {decode(raw)[0].actor for _, raw in acted.log} == {acted.actor}  # the envelopes do carry it
    assert Reports(fold(rules, facts)).digest() == HAND_COUNTY_DIGEST[version]
    _, native = assert_same(acted.log, version=version)  # and the kernel, which reads the envelope itself
    assert Reports(native).digest() == HAND_COUNTY_DIGEST[version]


@pytest.mark.parametrize("summary", [Summary(1, 2, 3.5, None, 0.25, 1.0, 0, 7),
                                     Summary(0, 0, 0.0, None, None, None, 0, 0),
                                     Summary(5, 1, 12.75, 0.3333, 1e-05, 0.1, 3, 2)])
def test_the_digest_writes_a_summary_as_sorted_json(summary: Summary) -> None:
    assert _summary_json(summary) == json.dumps(asdict(summary), sort_keys=True)
