"""scoring's gRPC API: ledgers, leaderboards, reports, notices, rule sets, what-if, and the admin rebuild."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import grpc

from sandan_contracts.rpc import scoring_pb2 as pb
from sandan_contracts.rpc import scoring_pb2_grpc as pb_grpc
from sandan_eventbus.checks import ID, VERSION, Shape, quote
from sandan_eventbus.outages import is_outage
from sandan_scoring.engine import Progress, Scorer
from sandan_scoring.report import Summary
from sandan_scoring.rules import RuleError

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Scoring"].full_name
_QUARTER = Shape(re.compile(r"[0-9]{4}Q[1-4]"), 6, 6)
# Error messages name the field and quote at most a short prefix of what was sent (`quote`): a message repeating
# a megabyte of input overflows gRPC's metadata and turns the answer into RESOURCE_EXHAUSTED.


async def _check(context: grpc.aio.ServicerContext, field: str, value: str, shape: Shape, hint: str) -> None:
    """The contract's shape of a value (its pattern and length), checked before the value is used anywhere."""
    if not shape.matches(value):
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{field}: {hint}")


async def _rule_set(context: grpc.aio.ServicerContext, scorer: Scorer, version: str) -> None:
    """A rule set version: well formed (the contract's `Version`), then known."""
    await _check(context, "rule_set_version", version, VERSION, "must be a version like 2026.1 (1-40 letters, "
                 "digits, '_', '.' or '-')")
    try:
        scorer.rulebook.get(version)
    except RuleError as exc:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"rule_set_version: {exc}")


def _summary(s: Summary) -> pb.Summary:
    def rate(v: float | None) -> float:
        return -1.0 if v is None else v

    return pb.Summary(members_active=s.members_active, services_completed=s.services_completed, hours=s.hours,
                      response_rate=rate(s.response_rate), completion_rate=rate(s.completion_rate),
                      satisfaction_rate=rate(s.satisfaction_rate), overdue=s.overdue, escalated=s.escalated)


class ScoringServicer(pb_grpc.ScoringServicer):
    def __init__(self, scorer: Scorer) -> None:
        self.scorer = scorer
        self.rebuilding = asyncio.Lock()

    async def GetMemberLedger(self, request: pb.MemberLedgerRequest,
                              context: grpc.aio.ServicerContext) -> pb.MemberLedger:
        await _check(context, "member_id", request.member_id, ID, "must be an opaque id")
        if request.quarter:
            await _check(context, "quarter", request.quarter, _QUARTER, "must look like 2026Q4")
        ledger = self.scorer.ledger
        attr = ledger.attribution(request.member_id)
        if attr is None and request.member_id not in ledger.by_member:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"member {quote(request.member_id)} not known to scoring")
        entries = [pb.LedgerEntry(entry_id=e.entry_id, points=e.points, rule=e.rule,
                                  rule_set_version=ledger.rules.version, quarter=e.quarter,
                                  source_event_ids=list(e.sources), occurred_at=e.occurred_at.isoformat())
                   for e in ledger.member_entries(request.member_id, request.quarter)]
        totals = [pb.Total(period=k, points=v) for k, v in ledger.member_totals(request.member_id).items()]
        stars = ledger.member_quarter(request.member_id, request.quarter)[3] if request.quarter else 0
        community, unit = attr or ("", "")
        return pb.MemberLedger(member_id=request.member_id, community_id=community, unit_id=unit, entries=entries,
                               totals=totals, stars=stars)

    async def Leaderboard(self, request: pb.LeaderboardRequest, context: grpc.aio.ServicerContext) -> pb.Ranking:
        if bool(request.community_id) == bool(request.unit_id):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "community_id: give exactly one of community_id, unit_id")
        await _check(context, "quarter", request.quarter, _QUARTER, "must look like 2026Q4")
        scope, scope_id = ("community", request.community_id) if request.community_id else ("unit", request.unit_id)
        await _check(context, f"{scope}_id", scope_id, ID, "must be an opaque id")
        rows = (await self.scorer.reports()).ranking(scope, scope_id, request.quarter)  # type: ignore[arg-type]
        limit = request.limit if request.limit > 0 else 50
        return pb.Ranking(members=[
            pb.RankedMember(rank=i + 1, member_id=r.member_id, points=r.points, stars=r.stars,
                            average_rating=r.average_rating or 0.0, rated_services=r.rated_services)
            for i, r in enumerate(rows[:limit])])

    async def _report(self, scope: str, request: pb.ScopeQuarter, context: grpc.aio.ServicerContext) -> pb.Report:
        await _check(context, "scope_id", request.scope_id, ID, "must be an opaque id")
        await _check(context, "quarter", request.quarter, _QUARTER, "must look like 2026Q4")
        reports = await self.scorer.reports()
        if request.scope_id not in reports.scopes()[scope]:  # type: ignore[index]
            await context.abort(grpc.StatusCode.NOT_FOUND, f"{scope} {quote(request.scope_id)} not known to scoring")
        rows = reports.ranking(scope, request.scope_id, request.quarter)  # type: ignore[arg-type]
        published = await asyncio.to_thread(self.scorer.store.notice, scope, request.scope_id, request.quarter)
        return pb.Report(scope=scope, scope_id=request.scope_id, quarter=request.quarter,
                         rule_set_version=self.scorer.ledger.rules.version,
                         summary=_summary(reports.summary(scope, request.scope_id, request.quarter)),  # type: ignore[arg-type]
                         ranking=[pb.RankedMember(rank=i + 1, member_id=r.member_id, points=r.points, stars=r.stars,
                                                  average_rating=r.average_rating or 0.0,
                                                  rated_services=r.rated_services) for i, r in enumerate(rows)],
                         published=published is not None)

    async def UnitReport(self, request: pb.ScopeQuarter, context: grpc.aio.ServicerContext) -> pb.Report:
        return await self._report("unit", request, context)

    async def CommunityNotice(self, request: pb.ScopeQuarter, context: grpc.aio.ServicerContext) -> pb.Report:
        return await self._report("community", request, context)

    async def PublishQuarterlyNotices(self, request: pb.QuarterRef,
                                      context: grpc.aio.ServicerContext) -> pb.NoticesPublished:
        await _check(context, "quarter", request.quarter, _QUARTER, "must look like 2026Q4")
        try:
            notices = await self.scorer.publish_notices(request.quarter)
        except Exception as exc:
            if not is_outage(exc):
                raise
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the broker or the store is not reachable now; "
                                "ask again (notices already published are not published twice)")
        return pb.NoticesPublished(notice_ids=[n["notice_id"] for n in notices])

    async def RuleSets(self, request: pb.Empty, context: grpc.aio.ServicerContext) -> pb.RuleSetList:
        active = self.scorer.ledger.rules.version
        return pb.RuleSetList(rule_sets=[pb.RuleSet(version=r.version, description=r.description,
                                                    active=r.version == active)
                                         for r in sorted(self.scorer.rulebook.sets.values(), key=lambda r: r.version)])

    async def WhatIf(self, request: pb.WhatIfRequest, context: grpc.aio.ServicerContext) -> pb.WhatIfReport:
        await _check(context, "quarter", request.quarter, _QUARTER, "must look like 2026Q4")
        await _rule_set(context, self.scorer, request.rule_set_version)
        current, candidate = await self.scorer.what_if(request.rule_set_version)
        members = sorted(set(current.by_member) | set(candidate.by_member))
        rows = []
        for m in members:
            now, then = current.member_quarter(m, request.quarter), candidate.member_quarter(m, request.quarter)
            if now[0] or then[0]:
                rows.append(pb.MemberComparison(member_id=m, current_points=now[0], candidate_points=then[0],
                                                current_stars=now[3], candidate_stars=then[3]))
        return pb.WhatIfReport(current_version=current.rules.version, candidate_version=candidate.rules.version,
                               members=rows)

    async def Rebuild(self, request: pb.RebuildRequest,
                      context: grpc.aio.ServicerContext) -> AsyncIterator[pb.RebuildProgress]:
        if request.rule_set_version:  # empty: the active rule set
            await _rule_set(context, self.scorer, request.rule_set_version)
        if self.rebuilding.locked():
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "a rebuild is already running")
        queue: asyncio.Queue[Progress] = asyncio.Queue()
        async with self.rebuilding:
            task = asyncio.create_task(self.scorer.rebuild(request.rule_set_version or None, queue.put_nowait))
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

    async def Digest(self, request: pb.Empty, context: grpc.aio.ServicerContext) -> pb.DigestReply:
        digest = await self.scorer.digest()
        return pb.DigestReply(digest=digest, generation=self.scorer.generation,
                              rule_set_version=self.scorer.ledger.rules.version,
                              entries=len(self.scorer.ledger.entries))


    async def Publishing(self, request: pb.Empty, context: grpc.aio.ServicerContext) -> pb.PublishingReport:
        state = self.scorer.publishing_state()
        return pb.PublishingReport(
            pending=state.pending, unmarked=state.unmarked, set_aside=len(state.set_aside),
            items=[pb.SetAsideItem(event_id=i.event_id, kind=i.kind, error=i.error, attempts=i.attempts,
                                   first_at=i.first_at.isoformat(), last_at=i.last_at.isoformat())
                   for i in state.set_aside[:100]],
            paused=[pb.Pause(part=part, reason=reason) for part, reason in sorted(state.paused.items())],
            dead_lettered=state.dead_lettered)


def register(server: grpc.aio.Server, servicer: ScoringServicer) -> list[str]:
    pb_grpc.add_ScoringServicer_to_server(servicer, server)
    return [SERVICE_NAME]
