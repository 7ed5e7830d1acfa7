"""scoring's gRPC API: ledgers, leaderboards, reports, notices, rule sets, what-if, and the admin rebuild.

Every call has passed the interceptor (a verified token whose role access.toml's row names); each method then
checks its arguments, then the caller's scope (`scope.py`: whose figures this role may read), then whether what
was asked for exists. Refusals are raised as the shared domain errors and become their status in one place
(`_refusals`), with bounded messages that name the field and quote at most a short prefix of what was sent.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc

from sandan_contracts.events.scoring import Quarter
from sandan_contracts.rpc import scoring_pb2 as pb
from sandan_contracts.rpc import scoring_pb2_grpc as pb_grpc
from sandan_eventbus.auth.principal import current
from sandan_eventbus.auth.scopes import Scopes
from sandan_eventbus.checks import Shape, check_id, check_version, quote
from sandan_eventbus.errors import DomainError, FailedPrecondition, InvalidArgument, NotFound
from sandan_eventbus.outages import is_outage
from sandan_eventbus.rpc import correlation_id, details, status_for
from sandan_eventbus.trace import current_actor, traced
from sandan_scoring.engine import Progress, Scorer
from sandan_scoring.report import Summary
from sandan_scoring.rules import RuleError
from sandan_scoring.scope import Asked, FigureScope, LedgerRoster

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Scoring"].full_name
# The contract's pattern; a quarter is always six characters (2026Q4)
_QUARTER = Shape(Shape.of(Quarter).pattern, 6, 6)
R = TypeVar("R")


def check_quarter(value: str) -> str:
    if not _QUARTER.matches(value):
        raise InvalidArgument("quarter", "must look like 2026Q4")
    return value


def _rule_set(scorer: Scorer, version: str) -> None:
    """A rule set version: well formed (the contract's `Version`), then known."""
    check_version("rule_set_version", version)
    try:
        scorer.rulebook.get(version)
    except RuleError as exc:
        raise InvalidArgument("rule_set_version", str(exc)) from None


def _refusals(method: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
    """A unary method whose refusals (DomainError) are answered with their status code."""

    @functools.wraps(method)
    async def guarded(self: Any, request: Any, context: grpc.aio.ServicerContext) -> R:
        try:
            return await method(self, request, context)
        except DomainError as error:
            await context.abort(status_for(error), details(error))
            raise  # unreachable: abort raises

    return guarded


def _summary(s: Summary) -> pb.Summary:
    def rate(v: float | None) -> float:
        return -1.0 if v is None else v

    return pb.Summary(members_active=s.members_active, services_completed=s.services_completed, hours=s.hours,
                      response_rate=rate(s.response_rate), completion_rate=rate(s.completion_rate),
                      satisfaction_rate=rate(s.satisfaction_rate), overdue=s.overdue, escalated=s.escalated)


class ScoringServicer(pb_grpc.ScoringServicer):
    def __init__(self, scorer: Scorer, scopes: Scopes | None = None) -> None:
        self.scorer = scorer
        self.scope = FigureScope(scopes or Scopes())
        self.rebuilding = asyncio.Lock()

    @_refusals
    async def GetMemberLedger(self, request: pb.MemberLedgerRequest,
                              context: grpc.aio.ServicerContext) -> pb.MemberLedger:
        check_id("member_id", request.member_id)
        if request.quarter:
            check_quarter(request.quarter)
        ledger = self.scorer.ledger
        self.scope.check(current(), "GetMemberLedger", LedgerRoster(ledger), Asked(member_id=request.member_id))
        attr = ledger.attribution(request.member_id)
        if attr is None and request.member_id not in ledger.by_member:
            raise NotFound(f"member {quote(request.member_id)} not known to scoring")
        entries = [pb.LedgerEntry(entry_id=e.entry_id, points=e.points, rule=e.rule,
                                  rule_set_version=ledger.rules.version, quarter=e.quarter,
                                  source_event_ids=list(e.sources), occurred_at=e.occurred_at.isoformat())
                   for e in ledger.member_entries(request.member_id, request.quarter)]
        totals = [pb.Total(period=k, points=v) for k, v in ledger.member_totals(request.member_id).items()]
        stars = ledger.member_quarter(request.member_id, request.quarter)[3] if request.quarter else 0
        community, unit = attr or ("", "")
        return pb.MemberLedger(member_id=request.member_id, community_id=community, unit_id=unit, entries=entries,
                               totals=totals, stars=stars)

    @_refusals
    async def Leaderboard(self, request: pb.LeaderboardRequest, context: grpc.aio.ServicerContext) -> pb.Ranking:
        if bool(request.community_id) == bool(request.unit_id):
            raise InvalidArgument("community_id", "give exactly one of community_id, unit_id")
        check_quarter(request.quarter)
        scope, scope_id = ("community", request.community_id) if request.community_id else ("unit", request.unit_id)
        check_id(f"{scope}_id", scope_id)
        reports = await self.scorer.reports()
        self.scope.check(current(), "Leaderboard", reports,
                         Asked(community_id=request.community_id or None, unit_id=request.unit_id or None))
        rows = reports.ranking(scope, scope_id, request.quarter)  # type: ignore[arg-type]
        limit = request.limit if request.limit > 0 else 50
        return pb.Ranking(members=[
            pb.RankedMember(rank=i + 1, member_id=r.member_id, points=r.points, stars=r.stars,
                            average_rating=r.average_rating or 0.0, rated_services=r.rated_services)
            for i, r in enumerate(rows[:limit])])

    async def _report(self, scope: str, request: pb.ScopeQuarter) -> pb.Report:
        check_id("scope_id", request.scope_id)
        check_quarter(request.quarter)
        reports = await self.scorer.reports()
        asked = Asked(community_id=request.scope_id) if scope == "community" else Asked(unit_id=request.scope_id)
        self.scope.check(current(), "CommunityNotice" if scope == "community" else "UnitReport", reports, asked)
        if request.scope_id not in reports.scopes()[scope]:  # type: ignore[index]
            raise NotFound(f"{scope} {quote(request.scope_id)} not known to scoring")
        rows = reports.ranking(scope, request.scope_id, request.quarter)  # type: ignore[arg-type]
        published = await asyncio.to_thread(self.scorer.store.notice, scope, request.scope_id, request.quarter)
        return pb.Report(scope=scope, scope_id=request.scope_id, quarter=request.quarter,
                         rule_set_version=self.scorer.ledger.rules.version,
                         summary=_summary(reports.summary(scope, request.scope_id, request.quarter)),  # type: ignore[arg-type]
                         ranking=[pb.RankedMember(rank=i + 1, member_id=r.member_id, points=r.points, stars=r.stars,
                                                  average_rating=r.average_rating or 0.0,
                                                  rated_services=r.rated_services) for i, r in enumerate(rows)],
                         published=published is not None)

    @_refusals
    async def UnitReport(self, request: pb.ScopeQuarter, context: grpc.aio.ServicerContext) -> pb.Report:
        return await self._report("unit", request)

    @_refusals
    async def CommunityNotice(self, request: pb.ScopeQuarter, context: grpc.aio.ServicerContext) -> pb.Report:
        return await self._report("community", request)

    @_refusals
    async def PublishQuarterlyNotices(self, request: pb.QuarterRef,
                                      context: grpc.aio.ServicerContext) -> pb.NoticesPublished:
        check_quarter(request.quarter)
        self._county("PublishQuarterlyNotices")
        try:
            with traced(correlation_id(context)):  # the caller is the notices' actor, and the request's
                notices = await self.scorer.publish_notices(request.quarter, current_actor())
        except Exception as exc:
            if not is_outage(exc):
                raise
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the broker or the store is not reachable now; "
                                "ask again (notices already published are not published twice)")
        return pb.NoticesPublished(notice_ids=[n["notice_id"] for n in notices])

    async def RuleSets(self, request: pb.Empty, context: grpc.aio.ServicerContext) -> pb.RuleSetList:
        # the published points rules: every role of the row may read them (the interceptor checked the role)
        active = self.scorer.ledger.rules.version
        return pb.RuleSetList(rule_sets=[pb.RuleSet(version=r.version, description=r.description,
                                                    active=r.version == active)
                                         for r in sorted(self.scorer.rulebook.sets.values(), key=lambda r: r.version)])

    @_refusals
    async def WhatIf(self, request: pb.WhatIfRequest, context: grpc.aio.ServicerContext) -> pb.WhatIfReport:
        check_quarter(request.quarter)
        _rule_set(self.scorer, request.rule_set_version)
        self._county("WhatIf")
        with traced(correlation_id(context)):  # recorded with who asked
            current_ledger, candidate = await self.scorer.what_if(request.rule_set_version, actor=current_actor(),
                                                                  quarter=request.quarter)
        members = sorted(set(current_ledger.by_member) | set(candidate.by_member))
        rows = []
        for m in members:
            now = current_ledger.member_quarter(m, request.quarter)
            then = candidate.member_quarter(m, request.quarter)
            if now[0] or then[0]:
                rows.append(pb.MemberComparison(member_id=m, current_points=now[0], candidate_points=then[0],
                                                current_stars=now[3], candidate_stars=then[3]))
        return pb.WhatIfReport(current_version=current_ledger.rules.version,
                               candidate_version=candidate.rules.version, members=rows)

    async def Rebuild(self, request: pb.RebuildRequest,
                      context: grpc.aio.ServicerContext) -> AsyncIterator[pb.RebuildProgress]:
        # operators only (the interceptor's role check is the whole scope: the county's ledger)
        try:
            if request.rule_set_version:  # empty: the active rule set
                _rule_set(self.scorer, request.rule_set_version)
            if self.rebuilding.locked():
                raise FailedPrecondition("a rebuild is already running")
        except DomainError as error:
            await context.abort(status_for(error), details(error))
        queue: asyncio.Queue[Progress] = asyncio.Queue()
        async with self.rebuilding:
            with traced(correlation_id(context)):  # the task's context is copied here: recorded with who asked
                task = asyncio.create_task(self.scorer.rebuild(request.rule_set_version or None, queue.put_nowait,
                                                               actor=current_actor()))
            while True:
                getter = asyncio.create_task(queue.get())
                done, _ = await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    p = getter.result()
                    yield pb.RebuildProgress(phase=p.phase, events_read=p.events_read, events_total=p.events_total,
                                             digest=p.digest, rule_set_version=p.rule_set_version, seconds=p.seconds)
                    if p.phase == "done":
                        break
                else:
                    getter.cancel()
                    task.result()  # re-raises a failed rebuild
            await task

    @_refusals
    async def Digest(self, request: pb.Empty, context: grpc.aio.ServicerContext) -> pb.DigestReply:
        self._county("Digest")
        digest = await self.scorer.digest()
        return pb.DigestReply(digest=digest, generation=self.scorer.generation,
                              rule_set_version=self.scorer.ledger.rules.version,
                              entries=len(self.scorer.ledger.entries))

    @_refusals
    async def Publishing(self, request: pb.Empty, context: grpc.aio.ServicerContext) -> pb.PublishingReport:
        self._county("Publishing")
        state = self.scorer.publishing_state()
        return pb.PublishingReport(
            pending=state.pending, unmarked=state.unmarked, set_aside=len(state.set_aside),
            items=[pb.SetAsideItem(event_id=i.event_id, kind=i.kind, error=i.error, attempts=i.attempts,
                                   first_at=i.first_at.isoformat(), last_at=i.last_at.isoformat())
                   for i in state.set_aside[:100]],
            paused=[pb.Pause(part=part, reason=reason) for part, reason in sorted(state.paused.items())],
            dead_lettered=state.dead_lettered)

    def _county(self, method: str) -> None:
        """The county-wide methods: a county office of the places directory's county, or county IT."""
        self.scope.check(current(), method, LedgerRoster(self.scorer.ledger))


def register(server: grpc.aio.Server, servicer: ScoringServicer) -> list[str]:
    pb_grpc.add_ScoringServicer_to_server(servicer, server)
    return [SERVICE_NAME]
