"""scoring over the real broker: points from a real walk, crash safety, rebuild equals live, rule changes."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import grpc
import pytest

from sandan_contracts import decode, encode
from sandan_contracts import events as c
from sandan_contracts.rpc import dispatch_pb2 as dpb
from sandan_contracts.rpc import intake_pb2 as ipb
from sandan_contracts.rpc import scoring_pb2 as spb
from sandan_contracts.rpc import scoring_pb2_grpc
from sandan_eventbus.devtools import Received, ServiceProcess, read_topic
from sandan_scoring.engine import end_offsets, replay
from sandan_scoring.fold import Ledger, quarter_of
from sandan_scoring.report import Reports
from sandan_scoring.rules import RuleBook
from sandan_scoring.simulate import County, produce
from tests.integration.conftest import Stack, free_port
from tests.integration.people import Caller, aio_channel_as
from tests.integration.scenario import a_community, demand_reaches, order_for, post

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def scoring(stack: Stack) -> Iterator[ServiceProcess]:
    address = f"127.0.0.1:{free_port()}"
    process = ServiceProcess("sandan_scoring", {
        "KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap,
        "SCORING_DATABASE_URL": f"sqlite:///{stack.workdir}/scoring.db",
        "SCORING_GRPC_ADDRESS": address,
        "LOG_LEVEL": "INFO", **stack.identity(),
    }, address, stack.workdir / "scoring.log")
    process.start(timeout=120)
    try:
        yield process
    finally:
        process.stop()


CHANNELS: list[grpc.aio.Channel] = []  # a channel nobody refers to is closed under its call: keep them


def stub(process: ServiceProcess, who: Caller) -> scoring_pb2_grpc.ScoringStub:
    CHANNELS.append(aio_channel_as(process.grpc_address, who))
    return scoring_pb2_grpc.ScoringStub(CHANNELS[-1])


async def ledger_with(process: ServiceProcess, who: Caller, member_id: str, rules: set[str],
                      timeout: float = 30) -> spb.MemberLedger:
    deadline = time.monotonic() + timeout
    while True:
        try:
            ledger = await stub(process, who).GetMemberLedger(spb.MemberLedgerRequest(member_id=member_id))
            if {e.rule for e in ledger.entries} >= rules:
                return ledger
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"ledger of {member_id} lacks {rules} after {timeout}s")
        await asyncio.sleep(0.3)


async def settled_digest(process: ServiceProcess, who: Caller, quiet: float = 2.0, timeout: float = 360,
                         ) -> spb.DigestReply:
    """The digest once the ledger stopped changing (scoring caught up with the log). The timeout is generous: a
    restarted scoring folds ~8,000 messages in the kill test, which took over 120 s on a loaded CI run while the
    digest kept moving (progress, not a hang: a hang would settle and then fail the comparison after it)."""
    deadline = time.monotonic() + timeout
    last = await stub(process, who).Digest(spb.Empty())
    while time.monotonic() < deadline:
        await asyncio.sleep(quiet)
        now = await stub(process, who).Digest(spb.Empty())
        if now.digest == last.digest:
            return now
        last = now
    raise AssertionError("scoring did not settle")


async def serve_once(stack: Stack, care: bool = True) -> tuple[str, str, str]:
    """A resident's demand served by a member, confirmed and rated 5 stars; (member, demand, community)."""
    c = await a_community(stack, members=1)
    member, resident = stack.dispatch_stub(c.member(0)), stack.intake_stub(c.resident)
    demand = await post(stack, c)  # medical, care tag elderly_alone
    order = await order_for(stack, c, demand.demand_id)
    await stack.dispatch_stub(c.secretary).OfferOrder(dpb.OfferOrderRequest(order_id=order.order_id))
    await member.AcceptOrder(dpb.AcceptOrderRequest(order_id=order.order_id, member_id=c.members[0]))
    await member.CompleteService(dpb.CompleteServiceRequest(order_id=order.order_id, member_id=c.members[0],
                                                            hours=1.5))
    await demand_reaches(stack, c, demand.demand_id, "served")
    await resident.ConfirmCompletion(ipb.DemandRef(demand_id=demand.demand_id))
    await resident.RateService(ipb.RateServiceRequest(demand_id=demand.demand_id, stars=5))
    return c.members[0], demand.demand_id, c.community_id


def overseer(stack: Stack) -> Caller:
    """The county office: it oversees every community's points, ledgers and notices (and publishes them)."""
    return stack.people.county_office()


EARNED = {"service_completed", "service_hours", "special_care_bonus", "five_star_bonus"}


async def test_a_served_demand_earns_the_expected_points(stack: Stack, scoring: ServiceProcess) -> None:
    member, demand_id, community = await serve_once(stack)
    ledger = await ledger_with(scoring, overseer(stack), member, EARNED)
    by_rule = {e.rule: e.points for e in ledger.entries}
    # 2026.1: medical 12, 1.5 h x 4 = 6, special care 6, five stars 5
    assert by_rule == {"service_completed": 12, "service_hours": 6, "special_care_bonus": 6, "five_star_bonus": 5}
    assert {t.period: t.points for t in ledger.totals}["all"] == 29
    assert ledger.community_id == community and all(e.rule_set_version == "2026.1" for e in ledger.entries)

    # each entry names its source event, and is published once on scoring.points.v1 with an id from it
    demands = await stack.read("intake.demands.v1", demand_id, 3)
    rated = next(r.envelope for r in demands if r.envelope.type == "ServiceRated")
    five = next(e for e in ledger.entries if e.rule == "five_star_bonus")
    assert list(five.source_event_ids) == [rated.event_id]
    published = await stack.read("scoring.points.v1", member, 4)
    facts = [decode(r.raw) for r in published]
    assert {f.entry_id for _, f in facts} == {e.entry_id for e in ledger.entries}
    assert all(env.event_id == f"scoring:{f.entry_id}" and env.causation_id == f.source_event_ids[0]
               for env, f in facts)
    assert {type(f).__name__ for _, f in facts} == {"PointsAwarded"}


async def test_the_rebuild_equals_the_live_state(stack: Stack, scoring: ServiceProcess) -> None:
    member, _, _ = await serve_once(stack)
    await ledger_with(scoring, overseer(stack), member, EARNED)
    live = await settled_digest(scoring, overseer(stack))
    progress = [p async for p in stub(scoring, stack.people.operator()).Rebuild(spb.RebuildRequest())]
    assert [p.phase for p in progress][-1] == "done"
    assert progress[-1].digest == live.digest
    after = await stub(scoring, overseer(stack)).Digest(spb.Empty())
    assert after.digest == live.digest and after.generation == live.generation + 1


async def test_a_rule_change_recomputes_history(stack: Stack, scoring: ServiceProcess) -> None:
    member, _, _ = await serve_once(stack)
    before = await ledger_with(scoring, overseer(stack), member, EARNED)
    quarter = quarter_of(datetime.now(UTC))
    try:
        operator = stub(scoring, stack.people.operator())
        progress = [p async for p in operator.Rebuild(spb.RebuildRequest(rule_set_version="2026.2"))]
        assert progress[-1].rule_set_version == "2026.2"
        after = await stub(scoring, overseer(stack)).GetMemberLedger(spb.MemberLedgerRequest(member_id=member))
        # 2026.2: medical 12, 1.5 h x 5 = 8 (rounded), special care 12, five stars 5
        assert {e.rule: e.points for e in after.entries} == {
            "service_completed": 12, "service_hours": 8, "special_care_bonus": 12, "five_star_bonus": 5}
        assert all(e.rule_set_version == "2026.2" for e in after.entries)
        assert not {e.entry_id for e in after.entries} & {e.entry_id for e in before.entries}
        sets = await stub(scoring, overseer(stack)).RuleSets(spb.Empty())
        assert [r.version for r in sets.rule_sets if r.active] == ["2026.2"]
        report = await stub(scoring, overseer(stack)).WhatIf(spb.WhatIfRequest(rule_set_version="2026.1",
                                                                             quarter=quarter))
        row = next(m for m in report.members if m.member_id == member)
        assert (row.current_points, row.candidate_points) == (37, 29)
    finally:
        back = [p async for p in stub(scoring, stack.people.operator()).Rebuild(
            spb.RebuildRequest(rule_set_version="2026.1"))]
        assert back[-1].rule_set_version == "2026.1"
    again = await stub(scoring, overseer(stack)).GetMemberLedger(spb.MemberLedgerRequest(member_id=member))
    assert {e.entry_id for e in again.entries} == {e.entry_id for e in before.entries}


async def test_the_quarterly_notice_is_published_for_the_community(stack: Stack, scoring: ServiceProcess) -> None:
    member, _, community = await serve_once(stack)
    await ledger_with(scoring, overseer(stack), member, EARNED)
    quarter = quarter_of(datetime.now(UTC))
    published = await stub(scoring, overseer(stack)).PublishQuarterlyNotices(spb.QuarterRef(quarter=quarter))
    notice_id = f"community-{community}-{quarter}-2026.1"
    assert notice_id in published.notice_ids
    found = await stack.read("scoring.notices.v1", notice_id, 1)
    _, notice = decode(found[0].raw)
    assert notice.scope == "community" and notice.summary.services_completed == 1
    assert [(r.rank, r.member_id, r.points) for r in notice.ranking] == [(1, member, 29)]
    report = await stub(scoring, overseer(stack)).CommunityNotice(spb.ScopeQuarter(scope_id=community, quarter=quarter))
    assert report.published and report.summary.satisfaction_rate == 1.0
    # publishing again sends nothing new
    await stub(scoring, overseer(stack)).PublishQuarterlyNotices(spb.QuarterRef(quarter=quarter))
    again = await stack.read_all("scoring.notices.v1", notice_id)
    assert len({r.envelope.event_id for r in again}) == 1 and len(again) == 1



async def test_every_replay_path_folds_the_same_ledger(stack: Stack, scoring: ServiceProcess) -> None:
    """librdkafka (the default), aiokafka, and two merged worker processes: one ledger, one digest."""
    member, _, _ = await serve_once(stack)
    await ledger_with(scoring, overseer(stack), member, EARNED)
    target = await end_offsets(stack.bootstrap)
    digests = {}
    for workers in (0, 1, 2):
        ledger = Ledger(RuleBook().get("2026.1"))
        await replay(stack.bootstrap, ledger, target, workers=workers)
        assert member in ledger.by_member
        digests[workers] = Reports(ledger).digest()
    assert len(set(digests.values())) == 1, digests


def _with_correlation(event: c.Event, correlation_id: str, number: int) -> bytes:
    """The event as dispatch's relay would write it, but carrying `correlation_id` (the contract's encoder
    refuses an oversized one, so it is swapped in afterwards: what a faulty or hostile producer could send)."""
    env = json.loads(encode(event, event_id=f"dispatch:{number}", producer="dispatch",
                            occurred_at=datetime.now(UTC), correlation_id="x", causation_id=None))
    env["correlation_id"] = correlation_id
    return json.dumps(env, separators=(",", ":")).encode()


async def test_an_oversized_fact_is_dead_lettered_and_later_points_still_flow(stack: Stack,
                                                                             scoring: ServiceProcess) -> None:
    """issue 11, 1: a ServiceCompleted and a MemberCheckedIn whose correlation_id has 900,000 characters (the
    contract allows 200) are dead-lettered by scoring, not folded; a later member's points are published."""
    tag = uuid.uuid4().hex[:8]
    member, later = f"m-{tag}", f"m-later-{tag}"
    huge = "c" * 900_000
    completed = c.ServiceCompleted(order_id=f"o-{tag}", demand_id=f"d-{tag}", member_id=member, hours=1.0)
    checked_in = c.MemberCheckedIn(activity_id=f"a-{tag}", community_id=f"c-{tag}", member_id=member,
                                   unit_id=f"u-{tag}")
    await produce(stack.bootstrap, {"dispatch.orders.v1": [(completed.order_id, _with_correlation(completed, huge, 1))],
                                    "dispatch.activities.v1": [(checked_in.activity_id,
                                                                _with_correlation(checked_in, huge, 1))]})
    reported = c.MemberReported(member_id=later, community_id=f"c-{tag}", unit_id=f"u-{tag}", grid_id=f"g-{tag}")
    later_check_in = c.MemberCheckedIn(activity_id=f"a-later-{tag}", community_id=f"c-{tag}", member_id=later,
                                       unit_id=f"u-{tag}")
    await produce(stack.bootstrap, {
        "dispatch.roster.v1": [(later, _with_correlation(reported, "walk-1", 1))],
        "dispatch.activities.v1": [(later_check_in.activity_id, _with_correlation(later_check_in, "walk-1", 1))]})

    for topic, key in (("dispatch.orders.v1.dlq", completed.order_id), ("dispatch.activities.v1.dlq",
                                                                         checked_in.activity_id)):
        dead = await read_topic(stack.bootstrap, topic, until=lambda found: bool(found), timeout=60,
                                where=lambda r, key=key: r.key == key
                                and r.headers.get("dlq.consumer.group") == "scoring")
        assert dead, f"scoring did not dead-letter the oversized fact on {topic}"
        assert len(dead[0].raw) > 900_000 and "correlation_id" in dead[0].headers["dlq.error"]
    points = await stack.read("scoring.points.v1", later, 1, timeout=60)
    _, awarded = decode(points[0].raw)
    assert (awarded.rule, awarded.points, awarded.member_id) == ("activity_check_in", 8, later)
    code = None
    try:
        await stub(scoring, overseer(stack)).GetMemberLedger(spb.MemberLedgerRequest(member_id=member))
    except grpc.aio.AioRpcError as exc:
        code = exc.code()
    assert code == grpc.StatusCode.NOT_FOUND  # nothing of the oversized facts was folded


async def _stars_of(stack: Stack, member: str, stars: int, timeout: float = 60) -> list[Received]:
    """Every StarRatingChanged of `member` on the points topic, once the latest says `stars`."""
    def reached(found: list[Received]) -> bool:
        changes = [r for r in found if r.envelope and r.envelope.type == "StarRatingChanged"]
        return bool(changes) and decode(changes[-1].raw)[1].stars == stars

    found = await read_topic(stack.bootstrap, "scoring.points.v1", until=reached, timeout=timeout,
                             where=lambda r: r.key == member)
    assert reached(found), f"{member} never reached {stars} stars"
    return found


async def test_up_down_and_up_again_publishes_each_fact_once_under_its_own_id(stack: Stack,
                                                                                scoring: ServiceProcess) -> None:
    """issue 11, 7: 2★→3★, 3★→2★, 2★→3★ in one quarter are three facts with three ids (the third once reused
    the first one's id, marking it failed, and the whole pending batch was published again on every pass)."""
    tag = uuid.uuid4().hex[:8]
    member, community, unit = f"m-{tag}", f"c-{tag}", f"u-{tag}"
    numbers = itertools.count(1)

    def rated(stars: int) -> tuple[str, list[tuple[str, bytes]]]:
        n = next(numbers)
        event = c.ServiceRated(demand_id=f"d-{tag}-{n}", member_id=member, stars=stars)
        raw = encode(event, event_id=f"intake:{n}", producer="intake", occurred_at=datetime.now(UTC),
                     correlation_id=f"walk-{tag}", causation_id=None)
        return "intake.demands.v1", [(event.demand_id, raw)]

    def checked_in() -> tuple[str, list[tuple[str, bytes]]]:
        n = next(numbers)  # event ids are unique, as a relay's are
        event = c.MemberCheckedIn(activity_id=f"a-{tag}-{n}", community_id=community, member_id=member,
                                  unit_id=unit)
        return "dispatch.activities.v1", [(event.activity_id, _with_correlation(event, f"walk-{tag}", n))]

    async def send(*parts: tuple[str, list[tuple[str, bytes]]]) -> None:
        log: dict[str, list[tuple[str, bytes]]] = {}
        for topic, messages in parts:
            log.setdefault(topic, []).extend(messages)
        await produce(stack.bootstrap, log)

    reported = c.MemberReported(member_id=member, community_id=community, unit_id=unit, grid_id=f"g-{tag}")
    await send(("dispatch.roster.v1", [(member, _with_correlation(reported, f"walk-{tag}", 1))]),
               *[rated(5) for _ in range(3)], checked_in(), checked_in())  # 31 points, average 5: 2★
    await _stars_of(stack, member, 2)
    await send(*[checked_in() for _ in range(4)])  # 63 points: 3★
    await _stars_of(stack, member, 3)
    await send(rated(1))  # average 4.0: 2★
    await _stars_of(stack, member, 2)
    await send(rated(5))  # average 4.2, 68 points: 3★
    await _stars_of(stack, member, 3)

    found = await stack.read_all("scoring.points.v1", member, settle=5)
    ids = [r.envelope.event_id for r in found if r.envelope]
    assert len(ids) == len(found) == len(set(ids)), "a fact reached the points topic more than once"
    changes = [decode(r.raw)[1] for r in found if r.envelope and r.envelope.type == "StarRatingChanged"]
    assert [(ch.previous_stars, ch.stars) for ch in changes][-3:] == [(2, 3), (3, 2), (2, 3)]
    ledger = await stub(scoring, overseer(stack)).GetMemberLedger(spb.MemberLedgerRequest(member_id=member))
    assert {decode(r.raw)[1].entry_id for r in found if r.envelope and r.envelope.type == "PointsAwarded"} == \
        {e.entry_id for e in ledger.entries}


# Last in this module: its burst of simulated events keeps the other services busy for a while.
async def test_scoring_killed_mid_stream_awards_nothing_twice(stack: Stack, scoring: ServiceProcess) -> None:
    tag = uuid.uuid4().hex[:6]
    county = County(seed=int(tag, 16), communities=3, units=10, members=200, prefix=f"{tag}-")
    first = county.run(walks=600, party_days=6)
    first_half = {topic: list(messages) for topic, messages in first.items()}
    second = county.run(walks=600, party_days=6)  # continues the same county (run() extends its log)
    second_half = {topic: messages[len(first_half.get(topic, [])):] for topic, messages in second.items()}
    # it folds the first half, is killed, misses part of the stream, and comes back
    assert await produce(stack.bootstrap, first_half) > 4000
    await asyncio.sleep(0.3)
    scoring.stop(kill=True)
    assert await produce(stack.bootstrap, second_half) > 4000
    scoring.start(timeout=120)
    live = await settled_digest(scoring, overseer(stack))
    rebuilt = [p async for p in stub(scoring, stack.people.operator()).Rebuild(spb.RebuildRequest())][-1]
    assert rebuilt.digest == live.digest
    # the rebuilt generation's stored rows are exactly its ledger: a restart restores it without rebuilding
    swapped = await stub(scoring, overseer(stack)).Digest(spb.Empty())
    scoring.stop(kill=True)
    scoring.start(timeout=120)
    restored = await settled_digest(scoring, overseer(stack))
    assert (restored.digest, restored.generation) == (live.digest, swapped.generation)
    # one published entry id per ledger entry: a member's distinct PointsAwarded ids match the ledger
    member = county.members[0][0]
    ledger = await stub(scoring, overseer(stack)).GetMemberLedger(spb.MemberLedgerRequest(member_id=member))
    entries = {e.entry_id for e in ledger.entries}
    found = await read_topic(stack.bootstrap, "scoring.points.v1", until=lambda f: False,
                             where=lambda r: r.key == member, timeout=4)
    published = {decode(r.raw)[1].entry_id for r in found if r.envelope and r.envelope.type != "StarRatingChanged"}
    assert published == entries
