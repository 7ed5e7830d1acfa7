"""Who may read which figures: every Scoring method with real signed tokens through the production chain.

For each method: allowed inside the caller's scope, PERMISSION_DENIED for an allowed role outside it (another
member's ledger, another unit, another community, a town office of another town, a county office of another
county), PERMISSION_DENIED for a role outside the method's row, UNAUTHENTICATED without a token; and a refused
call reads or publishes nothing.

The hand-made county (support.hand_county): m1 serves in c1 for u1, m2 in c1 for u2, m3 in c2 for u1; c1 is in
the town of north, c2 in south, both in the county taihe.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from sandan_contracts.access import ACCESS
from sandan_contracts.rpc import scoring_pb2 as pb
from sandan_eventbus.auth.devissuer import LocalIssuer
from sandan_scoring.engine import Progress
from sandan_scoring.scope import SCOPES, SERVICE
from services.scoring.tests.support import Client, serving

Code = grpc.StatusCode
Q = "2026Q2"

# Who calls: roles and the claims that place them.
PEOPLE: dict[str, tuple[list[str], dict[str, str]]] = {
    "member m1": (["member"], {"member_id": "m1"}),
    "member m3": (["member"], {"member_id": "m3"}),
    "member m-new": (["member"], {"member_id": "m-new", "community_id": "c1", "unit_id": "u1"}),
    "unit admin u1": (["unit_admin"], {"unit_id": "u1"}),
    "unit admin u2": (["unit_admin"], {"unit_id": "u2"}),
    "secretary c1": (["branch_secretary"], {"community_id": "c1"}),
    "secretary c2": (["branch_secretary"], {"community_id": "c2"}),
    "town north": (["town_office"], {"town_id": "north"}),
    "town south": (["town_office"], {"town_id": "south"}),
    "county taihe": (["county_office"], {"county_id": "taihe"}),
    "county elsewhere": (["county_office"], {"county_id": "elsewhere"}),
    "partner": (["partner"], {}),
    "gateway": (["service_gateway"], {}),
    "operator": (["operator"], {}),
    "resident": (["resident"], {}),
    "notify": (["service_notify"], {}),
    "secretary c1 and member m3": (["member", "branch_secretary"], {"member_id": "m3", "community_id": "c1"}),
}


def ledger(member: str) -> Callable[[Any], Any]:
    return lambda s: s.GetMemberLedger(pb.MemberLedgerRequest(member_id=member))


def board(community: str = "", unit: str = "") -> Callable[[Any], Any]:
    return lambda s: s.Leaderboard(pb.LeaderboardRequest(community_id=community, unit_id=unit, quarter=Q))


def unit_report(unit: str) -> Callable[[Any], Any]:
    return lambda s: s.UnitReport(pb.ScopeQuarter(scope_id=unit, quarter=Q))


def notice(community: str) -> Callable[[Any], Any]:
    return lambda s: s.CommunityNotice(pb.ScopeQuarter(scope_id=community, quarter=Q))


def publish(quarter: str = "2026Q3") -> Callable[[Any], Any]:  # a quarter without figures: nothing to send
    return lambda s: s.PublishQuarterlyNotices(pb.QuarterRef(quarter=quarter))


def rule_sets() -> Callable[[Any], Any]:
    return lambda s: s.RuleSets(pb.Empty())


def what_if() -> Callable[[Any], Any]:
    return lambda s: s.WhatIf(pb.WhatIfRequest(rule_set_version="2026.2", quarter=Q))


def rebuild() -> Callable[[Any], Any]:
    return lambda s: s.Rebuild(pb.RebuildRequest()).read()


def digest() -> Callable[[Any], Any]:
    return lambda s: s.Digest(pb.Empty())


def publishing() -> Callable[[Any], Any]:
    return lambda s: s.Publishing(pb.Empty())


OK, DENIED, MISSING = Code.OK, Code.PERMISSION_DENIED, Code.NOT_FOUND

# (method, who, the call, what they get)
CASES: list[tuple[str, str, Callable[[Any], Any], Code]] = [
    # GetMemberLedger: member themselves; unit admin their unit's members; others their community, town, county
    ("GetMemberLedger", "member m1", ledger("m1"), OK),
    ("GetMemberLedger", "member m1", ledger("m2"), DENIED),
    ("GetMemberLedger", "unit admin u1", ledger("m3"), OK),
    ("GetMemberLedger", "unit admin u2", ledger("m1"), DENIED),
    ("GetMemberLedger", "secretary c1", ledger("m2"), OK),
    ("GetMemberLedger", "secretary c1", ledger("m3"), DENIED),
    ("GetMemberLedger", "secretary c1", ledger("m-404"), DENIED),  # outside scope first: existence is not told
    ("GetMemberLedger", "town north", ledger("m1"), OK),
    ("GetMemberLedger", "town north", ledger("m3"), DENIED),
    ("GetMemberLedger", "county taihe", ledger("m3"), OK),
    ("GetMemberLedger", "county taihe", ledger("m-404"), MISSING),
    ("GetMemberLedger", "county elsewhere", ledger("m3"), DENIED),
    ("GetMemberLedger", "secretary c1 and member m3", ledger("m3"), OK),  # as the member
    ("GetMemberLedger", "secretary c1 and member m3", ledger("m1"), OK),  # as the secretary
    ("GetMemberLedger", "partner", ledger("m1"), DENIED),  # not in the row
    # Leaderboard: member their community or unit; unit admin their unit; secretary their community; offices
    # their town or county; partner and gateway any
    ("Leaderboard", "member m1", board(community="c1"), OK),
    ("Leaderboard", "member m1", board(unit="u1"), OK),
    ("Leaderboard", "member m1", board(community="c2"), DENIED),
    ("Leaderboard", "member m1", board(unit="u2"), DENIED),
    ("Leaderboard", "member m-new", board(community="c1"), DENIED),  # the ledger places members, not the token
    ("Leaderboard", "unit admin u1", board(unit="u1"), OK),
    ("Leaderboard", "unit admin u1", board(unit="u2"), DENIED),
    ("Leaderboard", "unit admin u1", board(community="c1"), DENIED),
    ("Leaderboard", "secretary c1", board(community="c1"), OK),
    ("Leaderboard", "secretary c1", board(community="c2"), DENIED),
    ("Leaderboard", "secretary c1", board(unit="u2"), DENIED),
    ("Leaderboard", "town north", board(community="c1"), OK),
    ("Leaderboard", "town north", board(community="c2"), DENIED),
    ("Leaderboard", "town south", board(unit="u1"), OK),  # m3 serves in c2 for u1
    ("Leaderboard", "town south", board(unit="u2"), DENIED),
    ("Leaderboard", "county taihe", board(unit="u2"), OK),
    ("Leaderboard", "county elsewhere", board(community="c1"), DENIED),
    ("Leaderboard", "partner", board(community="c2"), OK),
    ("Leaderboard", "gateway", board(unit="u2"), OK),
    ("Leaderboard", "operator", board(community="c1"), DENIED),  # not in the row
    # UnitReport: unit admin their unit; secretary a unit of their community; offices their town or county
    ("UnitReport", "unit admin u1", unit_report("u1"), OK),
    ("UnitReport", "unit admin u1", unit_report("u2"), DENIED),
    ("UnitReport", "secretary c2", unit_report("u1"), OK),
    ("UnitReport", "secretary c2", unit_report("u2"), DENIED),
    ("UnitReport", "town south", unit_report("u1"), OK),
    ("UnitReport", "town south", unit_report("u2"), DENIED),
    ("UnitReport", "town south", unit_report("u-404"), DENIED),
    ("UnitReport", "county taihe", unit_report("u2"), OK),
    ("UnitReport", "county taihe", unit_report("u-404"), MISSING),
    ("UnitReport", "county elsewhere", unit_report("u2"), DENIED),
    ("UnitReport", "partner", unit_report("u2"), OK),
    ("UnitReport", "gateway", unit_report("u1"), OK),
    ("UnitReport", "member m1", unit_report("u1"), DENIED),  # not in the row
    # CommunityNotice: member, secretary their community; offices their town or county; partner, gateway any
    ("CommunityNotice", "member m3", notice("c2"), OK),
    ("CommunityNotice", "member m3", notice("c1"), DENIED),
    ("CommunityNotice", "secretary c1", notice("c1"), OK),
    ("CommunityNotice", "secretary c1", notice("c2"), DENIED),
    ("CommunityNotice", "town north", notice("c1"), OK),
    ("CommunityNotice", "town north", notice("c2"), DENIED),
    ("CommunityNotice", "county taihe", notice("c2"), OK),
    ("CommunityNotice", "county elsewhere", notice("c2"), DENIED),
    ("CommunityNotice", "partner", notice("c1"), OK),
    ("CommunityNotice", "gateway", notice("c2"), OK),
    ("CommunityNotice", "unit admin u1", notice("c1"), DENIED),  # not in the row
    # PublishQuarterlyNotices: the county office of this county
    ("PublishQuarterlyNotices", "county taihe", publish(), OK),
    ("PublishQuarterlyNotices", "county elsewhere", publish(), DENIED),
    ("PublishQuarterlyNotices", "operator", publish(), DENIED),  # not in the row
    # RuleSets: every role of the row
    ("RuleSets", "member m1", rule_sets(), OK),
    ("RuleSets", "partner", rule_sets(), OK),
    ("RuleSets", "operator", rule_sets(), OK),
    ("RuleSets", "resident", rule_sets(), DENIED),  # not in the row
    # WhatIf, Digest, Publishing: the county office of this county, and county IT; Rebuild: county IT
    ("WhatIf", "county taihe", what_if(), OK),
    ("WhatIf", "operator", what_if(), OK),
    ("WhatIf", "county elsewhere", what_if(), DENIED),
    ("WhatIf", "secretary c1", what_if(), DENIED),  # not in the row
    ("Rebuild", "operator", rebuild(), OK),
    ("Rebuild", "county taihe", rebuild(), DENIED),  # not in the row
    ("Digest", "county taihe", digest(), OK),
    ("Digest", "operator", digest(), OK),
    ("Digest", "county elsewhere", digest(), DENIED),
    ("Digest", "notify", digest(), DENIED),  # not in the row
    ("Publishing", "county taihe", publishing(), OK),
    ("Publishing", "operator", publishing(), OK),
    ("Publishing", "county elsewhere", publishing(), DENIED),
    ("Publishing", "partner", publishing(), DENIED),  # not in the row
]


class Spy:
    """Stands in for the replays WhatIf and Rebuild start (they read Kafka): records that they were reached."""

    def __init__(self, client: Client) -> None:
        self.calls: list[str] = []
        scorer = client.scorer

        async def what_if(version: str, **who: Any) -> Any:
            self.calls.append("what_if")
            return scorer.ledger, scorer.ledger

        async def rebuild(version: str | None, progress: Callable[[Progress], None], **who: Any) -> None:
            self.calls.append("rebuild")
            progress(Progress("done", 0, 0, digest="d", rule_set_version="2026.1"))

        scorer.what_if = what_if  # type: ignore[method-assign]
        scorer.rebuild = rebuild  # type: ignore[assignment,method-assign]


@pytest.fixture
async def client(tmp_path: Path, local_issuer: LocalIssuer) -> AsyncIterator[Client]:
    async with serving(tmp_path, local_issuer) as c:
        yield c


def token(issuer: LocalIssuer, who: str) -> tuple[tuple[str, str]]:
    roles, claims = PEOPLE[who]
    return issuer.metadata(who.replace(" ", "-"), roles, **claims)


async def outcome(call: Any) -> Code:
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error.code()
    return Code.OK


@pytest.mark.parametrize(("method", "who", "call", "expected"), CASES,
                         ids=[f"{m}-{who}-{i}" for i, (m, who, _c, _e) in enumerate(CASES)])
async def test_each_method_inside_and_outside_the_callers_scope(client: Client, local_issuer: LocalIssuer,
                                                                method: str, who: str, call: Any,
                                                                expected: Code) -> None:
    spy = Spy(client)
    bare = client.unauthenticated
    assert await outcome(call(Carrying(bare, token(local_issuer, who)))) == expected
    reached = {"WhatIf": "what_if", "Rebuild": "rebuild"}.get(method)
    if reached:  # a refused call starts no replay
        assert spy.calls == ([reached] if expected == OK else [])


def test_every_scoring_method_is_covered_and_every_role_of_its_row_has_a_scope() -> None:
    methods = {path.rsplit("/", 1)[1]: rule.roles for path, rule in ACCESS.rules.items()
               if path.startswith(f"/{SERVICE}/")}
    assert set(SCOPES) == set(methods)
    for method, roles in methods.items():
        assert set(SCOPES[method]) == set(roles), method
    assert {m for m, _who, _c, _e in CASES} == set(methods)
    for method in methods:  # each method is tried inside and outside
        assert {e for m, _w, _c, e in CASES if m == method} >= {OK, DENIED}, method


@pytest.mark.parametrize("call", [ledger("m1"), board(community="c1"), unit_report("u1"), notice("c1"), publish(),
                                  rule_sets(), what_if(), rebuild(), digest(), publishing()],
                         ids=["GetMemberLedger", "Leaderboard", "UnitReport", "CommunityNotice",
                              "PublishQuarterlyNotices", "RuleSets", "WhatIf", "Rebuild", "Digest", "Publishing"])
async def test_without_a_token_every_method_is_unauthenticated(client: Client, call: Any) -> None:
    spy = Spy(client)
    assert await outcome(call(client.unauthenticated)) == Code.UNAUTHENTICATED
    assert spy.calls == []


async def test_a_refused_publication_publishes_and_stores_nothing(client: Client, local_issuer: LocalIssuer) -> None:
    stub = Carrying(client.unauthenticated, token(local_issuer, "county elsewhere"))
    assert await outcome(publish(Q)(stub)) == DENIED  # Q has figures: allowed, it would publish c1, c2, u1, u2
    for scope, scope_id in (("community", "c1"), ("community", "c2"), ("unit", "u1"), ("unit", "u2")):
        assert client.scorer.store.notice(scope, scope_id, Q) is None
    assert client.scorer.pending == set() and client.scorer.publishing_state().set_aside == []
    assert client.scorer.store.requests() == []  # refused before it started: not a request scoring acted on


async def test_the_answer_inside_scope_is_the_figures_asked_for(client: Client, local_issuer: LocalIssuer) -> None:
    as_member = Carrying(client.unauthenticated, token(local_issuer, "member m1"))
    mine = await as_member.GetMemberLedger(pb.MemberLedgerRequest(member_id="m1"))
    assert (mine.member_id, mine.community_id, mine.unit_id) == ("m1", "c1", "u1")
    as_town = Carrying(client.unauthenticated, token(local_issuer, "town south"))
    report = await as_town.UnitReport(pb.ScopeQuarter(scope_id="u1", quarter=Q))
    assert [r.member_id for r in report.ranking] == ["m1", "m3"]  # the unit's figures, whole


class Carrying:
    """A stub whose every call carries `metadata`."""

    def __init__(self, stub: Any, metadata: tuple[tuple[str, str]]) -> None:
        self.stub = stub
        self.metadata = metadata

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.stub, name)
        return lambda request, **kw: method(request, metadata=self.metadata, **kw)
