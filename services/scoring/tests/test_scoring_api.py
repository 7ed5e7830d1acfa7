"""scoring's gRPC edge, served in-process on a real socket, over a ledger filled directly (no Kafka).

Only the RPCs that read the ledger and the store are called; the broker is constructed but never started.
The numbers are those of the hand-made county (see test_scoring_reports.py). The server has the production chain
(`edge.server` with the authentication interceptor) and these calls carry a real signed token of the county
office who is also county IT, whose scope is everything (scope itself: test_scoring_access.py).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from libs.eventbus.tests.tls_support import throwaway_pki
from sandan_contracts import decode
from sandan_contracts.rpc import scoring_pb2 as pb
from sandan_eventbus.auth.devissuer import LocalIssuer
from sandan_eventbus.rpc import CORRELATION_HEADER
from sandan_eventbus.trace import Actor
from sandan_scoring import healthcheck
from sandan_scoring.report import Reports
from sandan_scoring.rules import RuleBook, RuleError
from services.scoring.tests.support import (
    HAND_COUNTY_DIGEST,
    Client,
    Events,
    FakeBroker,
    fold,
    hand_county,
    replaying,
    serving,
)

Code = grpc.StatusCode
Q = "2026Q2"


@pytest.fixture
async def client(tmp_path: Path, local_issuer: LocalIssuer) -> AsyncIterator[Client]:
    async with serving(tmp_path, local_issuer) as c:
        yield c


@pytest.fixture
async def servicer_alone(tmp_path: Path, local_issuer: LocalIssuer) -> AsyncIterator[Client]:
    """Without the edge's input policy in front: the servicer's own argument checks answer."""
    async with serving(tmp_path, local_issuer, input_policy=False) as c:
        yield c


async def status_of(call) -> tuple[grpc.StatusCode, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value.code(), err.value.details() or ""


# ---- GetMemberLedger ---------------------------------------------------------------------------------------
async def test_member_ledger_lists_entries_totals_and_attribution(client: Client) -> None:
    reply = await client.stub.GetMemberLedger(pb.MemberLedgerRequest(member_id="m1"))
    assert (reply.member_id, reply.community_id, reply.unit_id) == ("m1", "c1", "u1")
    assert sorted((e.rule, e.points) for e in reply.entries) == [
        ("five_star_bonus", 5), ("service_completed", 12), ("service_hours", 8), ("special_care_bonus", 6)]
    assert {e.rule_set_version for e in reply.entries} == {"2026.1"}
    assert {e.quarter for e in reply.entries} == {Q}
    assert all(e.source_event_ids and e.entry_id.startswith("e-") and e.occurred_at for e in reply.entries)
    assert {t.period: t.points for t in reply.totals} == {"2026": 31, Q: 31, "all": 31}
    assert reply.stars == 0  # no quarter asked


async def test_member_ledger_for_one_quarter(client: Client) -> None:
    reply = await client.stub.GetMemberLedger(pb.MemberLedgerRequest(member_id="m3", quarter=Q))
    assert sum(e.points for e in reply.entries) == 22
    other = await client.stub.GetMemberLedger(pb.MemberLedgerRequest(member_id="m3", quarter="2026Q3"))
    assert list(other.entries) == []
    assert {t.period: t.points for t in other.totals} == {"2026": 22, Q: 22, "all": 22}  # totals are all periods


async def test_member_ledger_stars_for_the_quarter(client: Client) -> None:
    ev = Events()
    facts = hand_county(ev)
    facts += [ev.checked_in(f"a{i}", "m1") for i in range(4)]  # 31 + 32 = 63 points
    facts += [ev.rated(f"dx{i}", 5, "m1") for i in range(2)]  # 3 ratings of 5, two more bonuses: 73
    client.scorer.ledger = fold(client.scorer.rulebook.get("2026.1"), facts)
    reply = await client.stub.GetMemberLedger(pb.MemberLedgerRequest(member_id="m1", quarter=Q))
    assert sum(e.points for e in reply.entries) == 73
    assert reply.stars == 3


async def test_unknown_member_is_not_found(client: Client) -> None:
    code, details = await status_of(client.stub.GetMemberLedger(pb.MemberLedgerRequest(member_id="m-404")))
    assert code == Code.NOT_FOUND
    assert "m-404" in details


@pytest.mark.parametrize(("request_", "field"), [
    (pb.MemberLedgerRequest(member_id="m1", quarter="2026Q5"), "quarter"),
    (pb.MemberLedgerRequest(member_id="m1", quarter="Q2-2026"), "quarter"),
    (pb.MemberLedgerRequest(member_id=""), "member_id"),
    (pb.MemberLedgerRequest(member_id="not an id"), "member_id"),
    (pb.MemberLedgerRequest(member_id="m" * 65), "member_id"),
])
async def test_member_ledger_invalid_arguments_name_the_field(client: Client, request_: pb.MemberLedgerRequest,
                                                              field: str) -> None:
    code, details = await status_of(client.stub.GetMemberLedger(request_))
    assert code == Code.INVALID_ARGUMENT
    assert details.startswith(f"{field}:")


# ---- Leaderboard ---------------------------------------------------------------------------------------------
async def test_leaderboard_by_community_and_unit(client: Client) -> None:
    by_community = await client.stub.Leaderboard(pb.LeaderboardRequest(community_id="c1", quarter=Q))
    assert [(r.rank, r.member_id, r.points) for r in by_community.members] == [(1, "m1", 31), (2, "m2", 14)]
    first = by_community.members[0]
    assert (first.stars, first.average_rating, first.rated_services) == (0, 5.0, 1)
    by_unit = await client.stub.Leaderboard(pb.LeaderboardRequest(unit_id="u1", quarter=Q))
    assert [(r.rank, r.member_id, r.points) for r in by_unit.members] == [(1, "m1", 31), (2, "m3", 22)]
    top = await client.stub.Leaderboard(pb.LeaderboardRequest(unit_id="u1", quarter=Q, limit=1))
    assert [r.member_id for r in top.members] == ["m1"]


async def test_leaderboard_of_an_unrated_member_reports_no_average(client: Client) -> None:
    ev = Events()
    client.scorer.ledger = fold(client.scorer.rulebook.get("2026.1"),
                                [ev.reported("m9", "c1", "u1"), ev.checked_in("a1", "m9")])
    reply = await client.stub.Leaderboard(pb.LeaderboardRequest(community_id="c1", quarter=Q))
    assert [(r.member_id, r.points, r.average_rating, r.rated_services) for r in reply.members] == \
        [("m9", 8, 0.0, 0)]


@pytest.mark.parametrize(("request_", "field"), [
    (pb.LeaderboardRequest(community_id="c1", unit_id="u1", quarter=Q), "community_id"),
    (pb.LeaderboardRequest(quarter=Q), "community_id"),
    (pb.LeaderboardRequest(community_id="c1", quarter="2026Q0"), "quarter"),
    (pb.LeaderboardRequest(unit_id="u1"), "quarter"),
])
async def test_leaderboard_invalid_arguments_name_the_field(client: Client, request_: pb.LeaderboardRequest,
                                                            field: str) -> None:
    code, details = await status_of(client.stub.Leaderboard(request_))
    assert code == Code.INVALID_ARGUMENT
    assert details.startswith(f"{field}:")
    if request_.community_id and request_.unit_id:
        assert "unit_id" in details


# ---- UnitReport and CommunityNotice ------------------------------------------------------------------------------
async def test_unit_report(client: Client) -> None:
    reply = await client.stub.UnitReport(pb.ScopeQuarter(scope_id="u1", quarter=Q))
    assert (reply.scope, reply.scope_id, reply.quarter, reply.rule_set_version) == ("unit", "u1", Q, "2026.1")
    s = reply.summary
    assert (s.members_active, s.services_completed, s.overdue, s.escalated) == (2, 2, 1, 1)
    assert (s.hours, s.response_rate, s.satisfaction_rate) == (6.0, 1.0, 1.0)
    assert s.completion_rate == pytest.approx(0.6667)
    assert [(r.rank, r.member_id, r.points) for r in reply.ranking] == [(1, "m1", 31), (2, "m3", 22)]
    assert reply.published is False


async def test_community_notice_and_its_published_flag(client: Client) -> None:
    reply = await client.stub.CommunityNotice(pb.ScopeQuarter(scope_id="c1", quarter=Q))
    assert reply.scope == "community"
    s = reply.summary
    assert (s.members_active, s.services_completed, s.hours, s.overdue, s.escalated) == (2, 2, 3.5, 1, 1)
    assert (s.response_rate, s.completion_rate, s.satisfaction_rate) == pytest.approx((0.6667, 0.6667, 0.5))
    assert reply.published is False
    client.scorer.store.save_notice(f"community-c1-{Q}-2026.1", "community", "c1", Q, "2026.1", {"x": 1})
    again = await client.stub.CommunityNotice(pb.ScopeQuarter(scope_id="c1", quarter=Q))
    assert again.published is True


async def test_a_quarter_without_data_reports_minus_one_rates(client: Client) -> None:
    reply = await client.stub.UnitReport(pb.ScopeQuarter(scope_id="u2", quarter="2026Q3"))
    s = reply.summary
    assert (s.members_active, s.services_completed, s.hours) == (0, 0, 0.0)
    assert (s.response_rate, s.completion_rate, s.satisfaction_rate) == (-1.0, -1.0, -1.0)
    assert [(r.member_id, r.points) for r in reply.ranking] == [("m2", 0)]


async def test_unknown_unit_or_community_is_not_found(client: Client) -> None:
    code, details = await status_of(client.stub.UnitReport(pb.ScopeQuarter(scope_id="u-404", quarter=Q)))
    assert code == Code.NOT_FOUND and "u-404" in details
    # a community id is not a unit id
    code, _ = await status_of(client.stub.UnitReport(pb.ScopeQuarter(scope_id="c1", quarter=Q)))
    assert code == Code.NOT_FOUND
    code, details = await status_of(client.stub.CommunityNotice(pb.ScopeQuarter(scope_id="c-404", quarter=Q)))
    assert code == Code.NOT_FOUND and "c-404" in details


@pytest.mark.parametrize(("request_", "field"), [
    (pb.ScopeQuarter(scope_id="u1", quarter="2026q2"), "quarter"),
    (pb.ScopeQuarter(scope_id="u1"), "quarter"),
    (pb.ScopeQuarter(scope_id="", quarter=Q), "scope_id"),
    (pb.ScopeQuarter(scope_id="u 1", quarter=Q), "scope_id"),
])
async def test_report_invalid_arguments_name_the_field(client: Client, request_: pb.ScopeQuarter,
                                                       field: str) -> None:
    for call in (client.stub.UnitReport, client.stub.CommunityNotice):
        code, details = await status_of(call(request_))
        assert code == Code.INVALID_ARGUMENT
        assert details.startswith(f"{field}:")


# ---- RuleSets and Digest -------------------------------------------------------------------------------------------
async def test_rule_sets_list_every_version_and_the_active_one(client: Client) -> None:
    reply = await client.stub.RuleSets(pb.Empty())
    assert [(r.version, r.active) for r in reply.rule_sets] == [("2026.1", True), ("2026.2", False)]
    assert all(r.description for r in reply.rule_sets)
    client.scorer.ledger = fold(client.scorer.rulebook.get("2026.2"), hand_county(Events()))
    reply = await client.stub.RuleSets(pb.Empty())
    assert [(r.version, r.active) for r in reply.rule_sets] == [("2026.1", False), ("2026.2", True)]


async def test_digest_of_the_ledger(client: Client) -> None:
    reply = await client.stub.Digest(pb.Empty())
    assert reply.digest == Reports(client.scorer.ledger).digest()
    assert (reply.generation, reply.rule_set_version, reply.entries) == (0, "2026.1", 8)
    client.scorer.ledger = fold(client.scorer.rulebook.get("2026.2"), hand_county(Events()))
    other = await client.stub.Digest(pb.Empty())
    assert other.digest != reply.digest
    assert other.rule_set_version == "2026.2"


async def test_arguments_of_kafka_rpcs_are_checked_before_touching_kafka(client: Client) -> None:
    code, details = await status_of(client.stub.WhatIf(pb.WhatIfRequest(rule_set_version="2026.1", quarter="Q")))
    assert code == Code.INVALID_ARGUMENT and details.startswith("quarter:")
    code, details = await status_of(client.stub.PublishQuarterlyNotices(pb.QuarterRef(quarter="")))
    assert code == Code.INVALID_ARGUMENT and details.startswith("quarter:")
    code, details = await status_of(client.stub.Rebuild(pb.RebuildRequest(rule_set_version="2099.9")).read())
    assert code == Code.INVALID_ARGUMENT and details.startswith("rule_set_version:")


@pytest.mark.parametrize("call", ["ledger-member", "ledger-quarter", "leaderboard-quarter", "report-quarter"])
async def test_a_trailing_newline_is_not_a_valid_argument(client: Client, call: str) -> None:
    rpc = {
        "ledger-member": lambda: client.stub.GetMemberLedger(pb.MemberLedgerRequest(member_id="m1\n")),
        "ledger-quarter": lambda: client.stub.GetMemberLedger(pb.MemberLedgerRequest(member_id="m1",
                                                                                     quarter=Q + "\n")),
        "leaderboard-quarter": lambda: client.stub.Leaderboard(pb.LeaderboardRequest(community_id="c1",
                                                                                     quarter=Q + "\n")),
        "report-quarter": lambda: client.stub.UnitReport(pb.ScopeQuarter(scope_id="u1", quarter=Q + "\n")),
    }[call]
    code, _ = await status_of(rpc())
    assert code == Code.INVALID_ARGUMENT


async def test_reports_are_built_once_per_state_of_the_ledger(client: Client) -> None:
    """Dashboards poll: the same ledger state gives the same Reports object; one more fact gives a new one."""
    first = await client.scorer.reports()
    assert await client.scorer.reports() is first
    await client.stub.Leaderboard(pb.LeaderboardRequest(community_id="c1", quarter=Q))
    assert await client.scorer.reports() is first
    ev = Events()
    client.scorer.ledger.apply(ev.reported("m-new", "c1", "u9"))
    again = await client.scorer.reports()
    assert again is not first and "m-new" in again.members_in("unit", "u9")


# ---- hostile input: errors name the field and quote at most a short prefix -------------------------------------
MEGABYTE = "9" * 1_000_000


@pytest.mark.parametrize("call", ["what-if", "rebuild"])
@pytest.mark.parametrize("version", [MEGABYTE, "2026.1\n", "../2026.1", "成" * 10, "-2026", "v" * 41])
async def test_a_malformed_rule_set_version_is_an_invalid_argument(servicer_alone: Client, call: str,
                                                                 version: str) -> None:
    """A 1 MB rule_set_version answered RESOURCE_EXHAUSTED: the error message repeated it in full. (Through the
    edge, its input policy answers first for some: test_a_malformed_rule_set_version_through_the_edge.)"""
    client = servicer_alone
    rpc = (client.stub.WhatIf(pb.WhatIfRequest(rule_set_version=version, quarter=Q)) if call == "what-if"
           else client.stub.Rebuild(pb.RebuildRequest(rule_set_version=version)).read())
    code, details = await status_of(rpc)
    assert code == Code.INVALID_ARGUMENT
    assert details.startswith("rule_set_version: must be a version") and len(details) < 120


@pytest.mark.parametrize("call", ["what-if", "rebuild"])
@pytest.mark.parametrize("version", [MEGABYTE, "2026.1\n", "../2026.1", "成" * 10, "-2026", "v" * 41])
async def test_a_malformed_rule_set_version_through_the_edge(client: Client, call: str, version: str) -> None:
    rpc = (client.stub.WhatIf(pb.WhatIfRequest(rule_set_version=version, quarter=Q)) if call == "what-if"
           else client.stub.Rebuild(pb.RebuildRequest(rule_set_version=version)).read())
    code, details = await status_of(rpc)
    assert code == Code.INVALID_ARGUMENT
    assert details.startswith("rule_set_version: must ") and len(details) < 120


@pytest.mark.parametrize("call", ["what-if", "rebuild"])
async def test_an_unknown_rule_set_is_named_by_a_short_prefix_only(client: Client, call: str) -> None:
    version = "2099." + "9" * 35  # well formed (40 characters), but no such rule set
    rpc = (client.stub.WhatIf(pb.WhatIfRequest(rule_set_version=version, quarter=Q)) if call == "what-if"
           else client.stub.Rebuild(pb.RebuildRequest(rule_set_version=version)).read())
    code, details = await status_of(rpc)
    assert code == Code.INVALID_ARGUMENT
    assert details.startswith(f"rule_set_version: unknown rule set '{version}'") and "2026.1, 2026.2" in details


def test_an_unknown_rule_set_quotes_at_most_a_prefix() -> None:
    with pytest.raises(RuleError) as err:
        RuleBook().get("x" * 100_000)
    assert str(err.value).startswith("unknown rule set '" + "x" * 40 + "…'") and len(str(err.value)) < 120


@pytest.mark.parametrize(("rpc", "field"), [
    (lambda s: s.GetMemberLedger(pb.MemberLedgerRequest(member_id=MEGABYTE)), "member_id"),
    (lambda s: s.GetMemberLedger(pb.MemberLedgerRequest(member_id="m1", quarter=MEGABYTE)), "quarter"),
    (lambda s: s.Leaderboard(pb.LeaderboardRequest(community_id=MEGABYTE, quarter=Q)), "community_id"),
    (lambda s: s.Leaderboard(pb.LeaderboardRequest(unit_id=MEGABYTE, quarter=Q)), "unit_id"),
    (lambda s: s.UnitReport(pb.ScopeQuarter(scope_id=MEGABYTE, quarter=Q)), "scope_id"),
    (lambda s: s.CommunityNotice(pb.ScopeQuarter(scope_id="c1", quarter=MEGABYTE)), "quarter"),
    (lambda s: s.PublishQuarterlyNotices(pb.QuarterRef(quarter=MEGABYTE)), "quarter"),
], ids=["member", "ledger-quarter", "community", "unit", "scope", "report-quarter", "notices-quarter"])
async def test_a_megabyte_argument_is_an_invalid_argument_with_a_short_message(client: Client, rpc, field: str
                                                                               ) -> None:  # type: ignore[no-untyped-def]
    code, details = await status_of(rpc(client.stub))
    assert code == Code.INVALID_ARGUMENT
    assert details.startswith(f"{field}:") and len(details) < 120


# ---- Publishing and the health check -------------------------------------------------------------------------------
async def test_publishing_reports_what_waits_and_what_was_set_aside(client: Client) -> None:
    reply = await client.stub.Publishing(pb.Empty())
    assert (reply.pending, reply.set_aside, list(reply.items), list(reply.paused)) == (0, 0, [], [])
    await client.scorer._set_aside("scoring:e-1", "entry", ValueError("source_event_ids: bad " + "x" * 1000))
    client.scorer.pending.add("e-2")
    reply = await client.stub.Publishing(pb.Empty())
    assert (reply.pending, reply.set_aside) == (1, 1)
    item = reply.items[0]
    assert (item.event_id, item.kind, item.attempts) == ("scoring:e-1", "entry", 1)
    assert item.error.startswith("ValueError: source_event_ids: bad") and len(item.error) < 450
    assert item.first_at == item.last_at and item.first_at.endswith("+00:00")


def probe_env(monkeypatch: pytest.MonkeyPatch, client: Client, **env: str) -> None:
    """The probe's settings: the service's address, a token for Publishing (county office and county IT), and
    only the TLS settings given."""
    for name in ("SANDAN_GRPC_TLS_CA_FILE", "SANDAN_GRPC_TLS_SERVER_NAME", "SANDAN_GRPC_PLAINTEXT",
                 "SANDAN_GRPC_TLS_CERT_FILE", "SANDAN_GRPC_TLS_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {"SCORING_GRPC_ADDRESS": client.address, "SANDAN_TOKEN": client.token, **env}.items():
        monkeypatch.setenv(name, value)


def prober(capsys: pytest.CaptureFixture[str]) -> Any:
    async def probe(*args: str) -> tuple[int, dict[str, object]]:
        with pytest.raises(SystemExit) as done:
            await asyncio.to_thread(healthcheck.main, list(args))  # a blocking client: not on the server's loop
        return int(done.value.code or 0), json.loads(capsys.readouterr().out)
    return probe


async def test_the_health_check_shows_set_aside_items(client: Client, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    probe_env(monkeypatch, client, SANDAN_GRPC_PLAINTEXT="allow")  # a local run
    probe = prober(capsys)
    assert await probe() == (0, {"serving": True, "pending": 0, "set_aside": 0, "paused": {}, "dead_lettered": 0})
    await client.scorer._set_aside("scoring:e-1", "entry", ValueError("bad"))
    code, shown = await probe()
    assert (code, shown["set_aside"]) == (0, 1)  # set aside is no reason to restart or drain the service
    code, shown = await probe("--strict")
    assert (code, shown["set_aside"]) == (1, 1)  # for monitoring


async def test_the_health_check_asks_over_tls_for_the_services_name(tmp_path: Path, local_issuer: LocalIssuer,
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    pki = throwaway_pki(tmp_path, "scoring", "localhost")
    probe = prober(capsys)
    async with serving(tmp_path, local_issuer, pki=pki) as tls_client:
        await tls_client.scorer._set_aside("scoring:e-1", "entry", ValueError("bad"))
        # the service speaks only TLS: the probe's answer (the token's, too) came over it, checked for `scoring`
        probe_env(monkeypatch, tls_client, SANDAN_GRPC_TLS_CA_FILE=str(pki.ca))
        assert await probe("--strict") == (1, {"serving": True, "pending": 0, "set_aside": 1, "paused": {},
                                               "dead_lettered": 0})
        # a certificate not issued for the name asked for is not the service (plaintext either: where allowed)
        for env in ({"SANDAN_GRPC_TLS_CA_FILE": str(pki.ca), "SANDAN_GRPC_TLS_SERVER_NAME": "dispatch"},
                    {"SANDAN_GRPC_TLS_CA_FILE": str(pki.stranger_ca)}, {"SANDAN_GRPC_PLAINTEXT": "allow"}):
            probe_env(monkeypatch, tls_client, **env)
            assert await probe() == (1, {"serving": False}), env


async def test_the_health_check_sends_no_token_in_plaintext_unless_allowed(client: Client,
                                                                           monkeypatch: pytest.MonkeyPatch,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    probe = prober(capsys)
    await client.scorer._set_aside("scoring:e-1", "entry", ValueError("bad"))
    probe_env(monkeypatch, client)  # neither a CA nor plaintext allowed
    code, shown = await probe()
    # health needs no token and says it serves; the publisher was not asked (its set-aside item unseen), and why
    assert code == 0 and shown["serving"] is True and "set_aside" not in shown
    assert "SANDAN_GRPC_TLS_CA_FILE" in str(shown["publishing"])
    assert await probe("--strict") == (1, shown)  # it cannot know
    probe_env(monkeypatch, client, SANDAN_GRPC_PLAINTEXT="allow")
    assert (await probe("--strict"))[1]["set_aside"] == 1  # allowed, it asks


# ---- who acted: the caller of PublishQuarterlyNotices, WhatIf and Rebuild -------------------------------------------
# What a Keycloak token says of a person besides their subject: none of it may reach a message or a record.
NAME_CLAIMS = {"name": "王芳", "preferred_username": "wangfang", "given_name": "芳", "family_name": "王",
               "email": "wangfang@example.cn"}


async def test_the_caller_is_recorded_by_subject_and_role_and_never_by_name(client: Client, local_issuer: LocalIssuer,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    broker = FakeBroker()
    client.scorer.broker = broker  # type: ignore[assignment]
    ev = Events()
    hand_county(ev)
    replaying(monkeypatch, ev.log)
    office, operator = "9b1f0c2e-3d4a-4b5c-8d6e-7f8091a2b3c4", "4c3b2a19-0807-4f6e-9d5c-4b3a29180706"
    as_office = local_issuer.metadata(office, ["county_office"], county_id="taihe", **NAME_CLAIMS)
    as_operator = local_issuer.metadata(operator, ["operator"], **NAME_CLAIMS)

    published = await client.unauthenticated.PublishQuarterlyNotices(
        pb.QuarterRef(quarter=Q), metadata=(*as_office, (CORRELATION_HEADER, "corr-notices")))
    assert sorted(published.notice_ids) == [f"{s}-{Q}-2026.1" for s in ("community-c1", "community-c2", "unit-u1",
                                                                       "unit-u2")]
    assert len(broker.sent) == 4
    for sent in broker.sent:
        assert decode(sent.body)[0].actor == office
        stored = client.scorer.store.stored_notice(decode(sent.body)[1].notice_id)
        assert stored is not None and stored.actor == Actor(office, "county_office") and stored.message == sent.body
    await client.unauthenticated.WhatIf(pb.WhatIfRequest(rule_set_version="2026.2", quarter=Q), metadata=as_office)
    progress = [p async for p in client.unauthenticated.Rebuild(pb.RebuildRequest(), metadata=as_operator)]
    assert progress[-1].phase == "done" and progress[-1].digest == HAND_COUNTY_DIGEST["2026.1"]

    requests = client.scorer.store.requests()
    assert [(r.action, r.subject, r.role, r.rule_set_version, r.quarter, r.outcome) for r in requests] == [
        ("PublishQuarterlyNotices", office, "county_office", "2026.1", Q, "done"),
        ("WhatIf", office, "county_office", "2026.2", Q, "done"),
        ("Rebuild", operator, "operator", "2026.1", "", "done")]
    assert requests[0].correlation_id == "corr-notices"  # the caller's, when they sent one
    assert requests[1].correlation_id and requests[1].correlation_id != requests[2].correlation_id
    names = [v.encode() for v in NAME_CLAIMS.values()]
    recorded = [json.dumps(r.__dict__, default=str, ensure_ascii=False).encode() for r in requests]
    for data in [*recorded, *(s.body for s in broker.sent), *(json.dumps(s.headers).encode() for s in broker.sent)]:
        assert not any(name in data for name in names)
