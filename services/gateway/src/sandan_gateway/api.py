"""The JSON API (`/api/v1`): the residents', members', secretaries' and offices' actions, for the pages' scripts and
for other clients (a WeChat mini-program with its own bearer token). Every route forwards the caller's token: the
services decide what is allowed; the gateway only fills in what the token already says (a member's own member id,
a resident's own resident id) and checks the shape of the input.

Sign-in is the default: only routes under `/api/v1/public` are open, and they call as the gateway itself.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from sandan_contracts.rpc import dispatch_pb2, intake_pb2, scoring_pb2
from sandan_gateway import models as m
from sandan_gateway.auth import Caller, check_csrf
from sandan_gateway.backend import Backend
from sandan_gateway.places import Directory, current_quarter


async def caller(request: Request) -> Caller:
    return await request.app.state.auth.caller(request)


async def writer(request: Request, who: Annotated[Caller, Depends(caller)]) -> Caller:
    """A caller allowed to change something: with a session, the CSRF token must come along."""
    await check_csrf(request, who)
    return who


def backend(request: Request) -> Backend:
    return request.app.state.backend


def directory(request: Request) -> Directory:
    return request.app.state.directory


Who = Annotated[Caller, Depends(caller)]
Writer = Annotated[Caller, Depends(writer)]
Services = Annotated[Backend, Depends(backend)]
Places = Annotated[Directory, Depends(directory)]
QuarterQ = Annotated[str | None, Query(pattern=r"^\d{4}Q[1-4]$", description="e.g. 2026Q4; default: this quarter")]

STATUSES = r"^(|open|dispatched|offered|accepted|completed|cancelled)$"
router = APIRouter(prefix="/api/v1")
public = APIRouter(prefix="/api/v1/public", tags=["public (no sign-in)"])


def activity_out(a: dispatch_pb2.Activity) -> m.Activity:
    """Residents who signed up are counted, never listed."""
    return m.Activity(activity_id=a.activity_id, unit_id=a.unit_id, community_id=a.community_id, theme=a.theme,
                      title=a.title, starts_at=a.starts_at, ends_at=a.ends_at, capacity=a.capacity, status=a.status,
                      residents_signed_up=len(a.residents_signed_up), members_checked_in=list(a.members_checked_in),
                      hours=a.hours)


# ---- who am I ------------------------------------------------------------------------------------------------------
@router.get("/me", response_model=m.Me, tags=["identity"])
async def me(who: Who) -> m.Me:
    p = who.principal
    return m.Me(subject=p.subject, username=str(p.claims.get("preferred_username", "")), roles=sorted(p.roles),
                county_id=p.county_id, town_id=p.town_id, community_id=p.community_id, grid_id=p.grid_id,
                unit_id=p.unit_id, member_id=p.member_id, resident_id=p.resident_id, csrf_token=who.csrf)


@public.get("/communities", response_model=list[m.Community])
async def communities(places: Places) -> list[m.Community]:
    return [m.Community(community_id=c.community_id, name=c.name, town_id=c.town_id, grids=list(c.grids))
            for c in places.communities.values()]


# ---- residents and demands (intake) -----------------------------------------------------------------------------
@router.post("/residents", response_model=m.Resident, status_code=201, tags=["residents"])
async def register_resident(body: m.RegisterResidentIn, who: Writer, services: Services) -> m.Resident:
    reply = await services.call(services.intake.RegisterResident, intake_pb2.RegisterResidentRequest(
        community_id=body.community_id, name=body.name, phone=body.phone, address=body.address), who.token)
    return m.from_pb(m.Resident, reply)


@router.get("/communities/{community_id}/menu", response_model=m.Menu, tags=["residents"])
async def menu(community_id: str, who: Who, services: Services) -> m.Menu:
    reply = await services.call(services.intake.ListMenu, intake_pb2.ListMenuRequest(community_id=community_id),
                                who.token)
    return m.from_pb(m.Menu, reply)


@router.post("/communities/{community_id}/menu", response_model=m.MenuItem, status_code=201, tags=["secretaries"])
async def publish_menu_item(community_id: str, body: m.MenuItemIn, who: Writer, services: Services) -> m.MenuItem:
    reply = await services.call(services.intake.PublishMenuItem, intake_pb2.PublishMenuItemRequest(
        community_id=community_id, item_id=body.item_id, category=body.category, title=body.title), who.token)
    return m.from_pb(m.MenuItem, reply)


def post_request(body: m.PostDemandIn, who: Caller) -> intake_pb2.PostDemandRequest:
    """A resident posts as themselves (their id and places from their token); a worker names the resident."""
    p = who.principal
    own = "resident" in p.roles and not body.resident_id
    return intake_pb2.PostDemandRequest(
        client_request_id=body.client_request_id,
        resident_id=(p.resident_id or "") if own else (body.resident_id or ""),
        community_id=body.community_id or p.community_id or "", grid_id=body.grid_id or p.grid_id or "",
        menu_item_id=body.menu_item_id or "", other_text=body.other_text or "", description=body.description,
        urgency=body.urgency, care_tags=list(body.care_tags),
        channel=body.channel or ("app" if own else "grid_worker"))


@router.post("/demands", response_model=m.Demand, status_code=201, tags=["residents"])
async def post_demand(body: m.PostDemandIn, who: Writer, services: Services) -> m.Demand:
    return m.from_pb(m.Demand, await services.call(services.intake.PostDemand, post_request(body, who), who.token))


@router.get("/demands", response_model=m.Demands, tags=["residents"])
async def list_demands(who: Who, services: Services,
                       resident_id: Annotated[str, Query(max_length=64, description=(
                           "a worker: the resident they act for; a resident: their own (the default)"))] = "",
                       limit: Annotated[int, Query(ge=1, le=100)] = 20,
                       before: Annotated[str, Query(max_length=64, description=(
                           "an earlier page's next_before: the demands posted before that one"))] = "") -> m.Demands:
    """A resident's demands, newest first (from any device: intake keeps them, not the session)."""
    reply = await services.call(services.intake.ListResidentDemands, intake_pb2.ListResidentDemandsRequest(
        resident_id=resident_id or who.principal.resident_id or "", limit=limit, before=before), who.token)
    return m.from_pb(m.Demands, reply)


@router.get("/demands/{demand_id}", response_model=m.Demand, tags=["residents"])
async def get_demand(demand_id: str, who: Who, services: Services) -> m.Demand:
    reply = await services.call(services.intake.GetDemand, intake_pb2.DemandRef(demand_id=demand_id), who.token)
    return m.from_pb(m.Demand, reply)


@router.get("/demands/{demand_id}/history", response_model=m.History, tags=["residents"])
async def demand_history(demand_id: str, who: Who, services: Services) -> m.History:
    reply = await services.call(services.intake.GetDemandHistory, intake_pb2.DemandRef(demand_id=demand_id),
                                who.token)
    return m.from_pb(m.History, reply)


@router.post("/demands/{demand_id}/withdraw", response_model=m.Demand, tags=["residents"])
async def withdraw(demand_id: str, body: m.WithdrawIn, who: Writer, services: Services) -> m.Demand:
    reply = await services.call(services.intake.WithdrawDemand, intake_pb2.WithdrawDemandRequest(
        demand_id=demand_id, reason=body.reason), who.token)
    return m.from_pb(m.Demand, reply)


@router.post("/demands/{demand_id}/confirm", response_model=m.Demand, tags=["residents"])
async def confirm(demand_id: str, who: Writer, services: Services) -> m.Demand:
    reply = await services.call(services.intake.ConfirmCompletion, intake_pb2.DemandRef(demand_id=demand_id),
                                who.token)
    return m.from_pb(m.Demand, reply)


@router.post("/demands/{demand_id}/rate", response_model=m.Demand, tags=["residents"])
async def rate(demand_id: str, body: m.RateIn, who: Writer, services: Services) -> m.Demand:
    reply = await services.call(services.intake.RateService, intake_pb2.RateServiceRequest(
        demand_id=demand_id, stars=body.stars, comment=body.comment), who.token)
    return m.from_pb(m.Demand, reply)


@router.post("/demands/{demand_id}/redo", response_model=m.Demand, tags=["residents"])
async def redo(demand_id: str, body: m.RedoIn, who: Writer, services: Services) -> m.Demand:
    reply = await services.call(services.intake.RequestRedo, intake_pb2.RequestRedoRequest(
        demand_id=demand_id, reason=body.reason), who.token)
    return m.from_pb(m.Demand, reply)


# ---- orders (dispatch) ------------------------------------------------------------------------------------------
@router.get("/orders", response_model=m.Orders, tags=["orders"])
async def list_orders(who: Who, services: Services, community_id: str = "",
                      status: Annotated[str, Query(pattern=STATUSES)] = "") -> m.Orders:
    reply = await services.call(services.dispatch.ListOrders, dispatch_pb2.ListOrdersRequest(
        community_id=community_id or who.principal.community_id or "", status=status), who.token)
    return m.from_pb(m.Orders, reply)


@router.get("/orders/by-demand/{demand_id}", response_model=m.Order, tags=["orders"])
async def order_by_demand(demand_id: str, who: Who, services: Services) -> m.Order:
    reply = await services.call(services.dispatch.FindOrderByDemand, dispatch_pb2.DemandRef(demand_id=demand_id),
                                who.token)
    return m.from_pb(m.Order, reply)


@router.get("/orders/{order_id}", response_model=m.Order, tags=["orders"])
async def get_order(order_id: str, who: Who, services: Services) -> m.Order:
    reply = await services.call(services.dispatch.GetOrder, dispatch_pb2.OrderRef(order_id=order_id), who.token)
    return m.from_pb(m.Order, reply)


@router.get("/orders/{order_id}/history", response_model=m.History, tags=["orders"])
async def order_history(order_id: str, who: Who, services: Services) -> m.History:
    reply = await services.call(services.dispatch.GetOrderHistory, dispatch_pb2.OrderRef(order_id=order_id),
                                who.token)
    return m.from_pb(m.History, reply)


@router.get("/orders/{order_id}/suggestions", response_model=m.Suggestions, tags=["orders"])
async def suggestions(order_id: str, who: Who, services: Services,
                      limit: Annotated[int, Query(ge=1, le=50)] = 5) -> m.Suggestions:
    reply = await services.call(services.dispatch.SuggestMembers, dispatch_pb2.SuggestMembersRequest(
        order_id=order_id, limit=limit), who.token)
    return m.from_pb(m.Suggestions, reply)


@router.post("/orders/{order_id}/dispatch", response_model=m.Order, tags=["orders"])
async def dispatch_order(order_id: str, body: m.DispatchIn, who: Writer, services: Services) -> m.Order:
    by = "branch" if who.principal.has("branch_secretary") else "grid_leader"
    reply = await services.call(services.dispatch.DispatchOrder, dispatch_pb2.DispatchOrderRequest(
        order_id=order_id, member_id=body.member_id, dispatched_by=by), who.token)
    return m.from_pb(m.Order, reply)


@router.post("/orders/{order_id}/offer", response_model=m.Order, tags=["orders"])
async def offer_order(order_id: str, body: m.OfferIn, who: Writer, services: Services) -> m.Order:
    reply = await services.call(services.dispatch.OfferOrder, dispatch_pb2.OfferOrderRequest(
        order_id=order_id, teams=list(body.teams)), who.token)
    return m.from_pb(m.Order, reply)


@router.post("/orders/{order_id}/accept", response_model=m.Order, tags=["orders"])
async def accept_order(order_id: str, who: Writer, services: Services) -> m.Order:
    reply = await services.call(services.dispatch.AcceptOrder, dispatch_pb2.AcceptOrderRequest(
        order_id=order_id, member_id=who.principal.member_id or ""), who.token)
    return m.from_pb(m.Order, reply)


@router.post("/orders/{order_id}/decline", response_model=m.Order, tags=["orders"])
async def decline_order(order_id: str, body: m.DeclineIn, who: Writer, services: Services) -> m.Order:
    reply = await services.call(services.dispatch.DeclineOrder, dispatch_pb2.DeclineOrderRequest(
        order_id=order_id, member_id=who.principal.member_id or "", reason=body.reason), who.token)
    return m.from_pb(m.Order, reply)


@router.post("/orders/{order_id}/complete", response_model=m.Order, tags=["orders"])
async def complete_service(order_id: str, body: m.CompleteIn, who: Writer, services: Services) -> m.Order:
    reply = await services.call(services.dispatch.CompleteService, dispatch_pb2.CompleteServiceRequest(
        order_id=order_id, member_id=who.principal.member_id or "", hours=body.hours, notes=body.notes), who.token)
    return m.from_pb(m.Order, reply)


@router.post("/orders/{order_id}/escalate", response_model=m.Order, tags=["orders"])
async def escalate_order(order_id: str, body: m.EscalateIn, who: Writer, services: Services) -> m.Order:
    reply = await services.call(services.dispatch.EscalateOrder, dispatch_pb2.EscalateOrderRequest(
        order_id=order_id, reason=body.reason, joint_meeting_units=list(body.joint_meeting_units), note=body.note),
        who.token)
    return m.from_pb(m.Order, reply)


@router.get("/orders/{order_id}/contact", response_model=m.ServiceContact, tags=["orders"])
async def service_contact(order_id: str, who: Who, services: Services) -> m.ServiceContact:
    """The resident's contact for the member who holds the order (every release is recorded by intake)."""
    order = await services.call(services.dispatch.GetOrder, dispatch_pb2.OrderRef(order_id=order_id), who.token)
    reply = await services.call(services.intake.GetServiceContact, intake_pb2.ServiceContactRequest(
        demand_id=order.demand_id, member_id=who.principal.member_id or ""), who.token)
    return m.from_pb(m.ServiceContact, reply)


# ---- members ----------------------------------------------------------------------------------------------------
@router.get("/members/{member_id}", response_model=m.Member, tags=["members"])
async def get_member(member_id: str, who: Who, services: Services) -> m.Member:
    reply = await services.call(services.dispatch.GetMember, dispatch_pb2.MemberRef(member_id=member_id), who.token)
    return m.from_pb(m.Member, reply)


@router.post("/members/{member_id}/teams", response_model=m.Member, tags=["members"])
async def join_team(member_id: str, body: m.TeamIn, who: Writer, services: Services) -> m.Member:
    reply = await services.call(services.dispatch.JoinTeam, dispatch_pb2.JoinTeamRequest(
        member_id=member_id, team=body.team), who.token)
    return m.from_pb(m.Member, reply)


@router.get("/members/{member_id}/ledger", response_model=m.Ledger, tags=["members"])
async def ledger(member_id: str, who: Who, services: Services, quarter: QuarterQ = None) -> m.Ledger:
    """The member's points, each entry with the rule that gave it; `stars` for the quarter asked."""
    reply = await services.call(services.scoring.GetMemberLedger, scoring_pb2.MemberLedgerRequest(
        member_id=member_id, quarter=quarter or ""), who.token)
    return m.from_pb(m.Ledger, reply)


# ---- themed party days ------------------------------------------------------------------------------------------
@router.post("/activities", response_model=m.Activity, status_code=201, tags=["activities"])
async def schedule_activity(body: m.ScheduleIn, who: Writer, services: Services) -> m.Activity:
    reply = await services.call(services.dispatch.ScheduleActivity, dispatch_pb2.ScheduleActivityRequest(
        **body.model_dump()), who.token)
    return activity_out(reply)


@router.get("/activities/{activity_id}", response_model=m.Activity, tags=["activities"])
async def get_activity(activity_id: str, who: Who, services: Services) -> m.Activity:
    reply = await services.call(services.dispatch.GetActivity, dispatch_pb2.ActivityRef(activity_id=activity_id),
                                who.token)
    return activity_out(reply)


@router.post("/activities/{activity_id}/sign-up", response_model=m.Activity, tags=["activities"])
async def sign_up(activity_id: str, body: m.SignUpIn, who: Writer, services: Services) -> m.Activity:
    resident_id = body.resident_id or who.principal.resident_id or ""
    reply = await services.call(services.dispatch.SignUpResident, dispatch_pb2.SignUpResidentRequest(
        activity_id=activity_id, resident_id=resident_id), who.token)
    return activity_out(reply)


@router.post("/activities/{activity_id}/check-in", response_model=m.Activity, tags=["activities"])
async def check_in(activity_id: str, body: m.CheckInIn, who: Writer, services: Services) -> m.Activity:
    reply = await services.call(services.dispatch.CheckInMember, dispatch_pb2.CheckInMemberRequest(
        activity_id=activity_id, member_id=body.member_id or who.principal.member_id or ""), who.token)
    return activity_out(reply)


@router.post("/activities/{activity_id}/complete", response_model=m.Activity, tags=["activities"])
async def complete_activity(activity_id: str, body: m.HoursIn, who: Writer, services: Services) -> m.Activity:
    reply = await services.call(services.dispatch.CompleteActivity, dispatch_pb2.CompleteActivityRequest(
        activity_id=activity_id, hours=body.hours), who.token)
    return activity_out(reply)


# ---- scoring: rankings, reports, notices ----------------------------------------------------------------------
@router.get("/leaderboard", response_model=m.Ranking, tags=["scoring"])
async def leaderboard(who: Who, services: Services, community_id: str = "", unit_id: str = "",
                      quarter: QuarterQ = None, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> m.Ranking:
    reply = await services.call(services.scoring.Leaderboard, scoring_pb2.LeaderboardRequest(
        community_id=community_id, unit_id=unit_id, quarter=quarter or current_quarter(), limit=limit), who.token)
    return m.from_pb(m.Ranking, reply)


@router.get("/reports/communities/{community_id}", response_model=m.Report, tags=["scoring"])
async def community_report(community_id: str, who: Who, services: Services, quarter: QuarterQ = None) -> m.Report:
    reply = await services.call(services.scoring.CommunityNotice, scoring_pb2.ScopeQuarter(
        scope_id=community_id, quarter=quarter or current_quarter()), who.token)
    return m.from_pb(m.Report, reply)


@router.get("/reports/units/{unit_id}", response_model=m.Report, tags=["scoring"])
async def unit_report(unit_id: str, who: Who, services: Services, quarter: QuarterQ = None) -> m.Report:
    reply = await services.call(services.scoring.UnitReport, scoring_pb2.ScopeQuarter(
        scope_id=unit_id, quarter=quarter or current_quarter()), who.token)
    return m.from_pb(m.Report, reply)


@router.post("/notices/{quarter}/publish", response_model=m.Published, tags=["scoring"])
async def publish_notices(quarter: str, who: Writer, services: Services) -> m.Published:
    reply = await services.call(services.scoring.PublishQuarterlyNotices, scoring_pb2.QuarterRef(quarter=quarter),
                                who.token)
    return m.from_pb(m.Published, reply)


# ---- public: the quarterly notice (公示), as the gateway itself -------------------------------------------------
@public.get("/communities/{community_id}/notice", response_model=m.Report)
async def public_community_notice(community_id: str, services: Services, quarter: QuarterQ = None) -> m.Report:
    reply = await services.as_gateway(services.scoring.CommunityNotice, scoring_pb2.ScopeQuarter(
        scope_id=community_id, quarter=quarter or current_quarter()))
    return await _named(services, m.from_pb(m.Report, reply))


@public.get("/units/{unit_id}/notice", response_model=m.Report)
async def public_unit_notice(unit_id: str, services: Services, quarter: QuarterQ = None) -> m.Report:
    reply = await services.as_gateway(services.scoring.UnitReport, scoring_pb2.ScopeQuarter(
        scope_id=unit_id, quarter=quarter or current_quarter()))
    return await _named(services, m.from_pb(m.Report, reply), unit_id)


async def _named(services: Backend, report: m.Report, unit_id: str = "") -> m.Report:
    """The public notice with the names the board may show: members who consented, the unit's name."""
    members, units = await services.public_names([r.member_id for r in report.ranking], [unit_id] if unit_id else [])
    for r in report.ranking:
        r.public_name = members.get(r.member_id, "")
    report.scope_name = units.get(unit_id, "")
    return report


def not_signed_in(instance: str) -> JSONResponse:
    from sandan_gateway.problems import problem

    return problem(401, "Sign in first", "this call needs a session or a bearer token", slug="not-signed-in",
                   instance=instance, headers={"www-authenticate": 'Bearer realm="sandan"'})
