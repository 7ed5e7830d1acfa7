"""The pages: server-rendered Jinja2, Chinese first (English switch), mobile first, an elderly mode (长辈版).

Every form posts back here with the session's CSRF token and is answered with a redirect (post/redirect/get), so
a reload never posts twice. A refusal from a service becomes a plain message with a way back, never a trace.
Each page works without JavaScript; a little plain JS adds live updates (EventSource) and deadline countdowns.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import grpc
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from sandan_contracts.rpc import dispatch_pb2, intake_pb2, scoring_pb2
from sandan_gateway import api
from sandan_gateway.auth import Caller, check_csrf, safe_next
from sandan_gateway.backend import Backend, Refused
from sandan_gateway.models import REDO_REASONS, WITHDRAW_REASONS, most
from sandan_gateway.places import Directory, Place, current_quarter, previous_quarters

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(include_in_schema=False)

LANG_COOKIE, ELDER_COOKIE = "lang", "elder"
# The county's (or a town's) 12345 hotline: acts for callers as a grid worker does, in a community they choose.
HOTLINE = "hotline_operator"
WORKERS = ("grid_worker", "branch_secretary", HOTLINE)
CONSOLE = ("branch_secretary", "grid_leader", "grid_worker")
OFFICES = ("town_office", "county_office")

# Plain words for codes the services use (Chinese, English).
WORDS: dict[str, tuple[str, str]] = {
    "posted": ("已提交，等待社区派单", "posted, waiting for the community"),
    "accepted": ("党员已接单", "accepted by a party member"),
    "served": ("服务已完成，请确认", "served: please confirm"),
    "confirmed": ("已确认完成", "confirmed"),
    "withdrawn": ("已撤回", "withdrawn"),
    "open": ("待派单", "waiting for dispatch"),
    "dispatched": ("已派给党员", "dispatched to a member"),
    "offered": ("待认领", "offered to volunteers"),
    "completed": ("已完成", "completed"),
    "cancelled": ("已取消", "cancelled"),
    "scheduled": ("报名中", "open for sign-up"),
    "urgent": ("紧急", "urgent"), "normal": ("一般", "normal"), "routine": ("不急", "not urgent"),
    "elderly_alone": ("孤寡/空巢老人", "elderly living alone"),
    "student_hardship": ("困难大学生", "student in hardship"),
    "left_behind_child": ("留守儿童", "left-behind child"), "disabled": ("残疾人", "disabled"),
    "community": ("社区", "community"), "town": ("镇街", "town"), "county": ("县", "county"),
    "service_completed": ("完成服务", "service completed"), "resident_rating": ("居民好评", "resident's rating"),
    "activity_check_in": ("参加主题党日", "themed party day"), "on_time": ("按时完成", "on time"),
    "claim": ("主动认领", "claimed an offer"),
    "service_hours": ("服务时长", "hours served"), "five_star_bonus": ("五星好评", "five-star rating"),
    "special_care_bonus": ("照顾特殊群体", "special care"), "abandoned_order": ("接单后放弃", "order abandoned"),
    "overdue_while_held": ("接单后超时", "overdue while held"), "redo_required": ("需要返工", "redo required"),
    "all": ("累计", "all time"),
    # why a redo (models.REDO_REASONS) or a withdrawal (models.WITHDRAW_REASONS)
    "not_solved": ("问题没有解决", "the problem is not solved"), "partly_done": ("只做了一部分", "only partly done"),
    "poorly_done": ("做得不好", "poorly done"), "nobody_came": ("党员没有上门", "nobody came"),
    "solved_myself": ("自己解决了", "I solved it myself"), "no_longer_needed": ("不需要了", "no longer needed"),
    "posted_by_mistake": ("填错了", "posted by mistake"), "other_reason": ("其他原因", "another reason"),
    # service categories (a community's menu items each have one)
    "repair": ("维修", "repairs"), "medical": ("医疗", "medical"), "legal": ("法律", "legal"),
    "mediation": ("调解", "mediation"), "policy": ("政策", "policy"), "information": ("信息", "information"),
    "other": ("其他", "other"),
    # themes of party days (the console's schedule form)
    "free_health_check": ("免费体检", "free health check"), "festival_visit": ("节日敬老", "festival visit"),
    "study_aid": ("爱心助学", "study aid"), "policy_promotion": ("政策宣传", "policy promotion"),
}
STATUS_STEPS = ("posted", "accepted", "served", "confirmed")
MESSAGES: dict[str, tuple[str, str]] = {
    "PERMISSION_DENIED": ("您没有权限做这件事。", "You are not allowed to do this."),
    "NOT_FOUND": ("没有找到。请检查编号。", "Not found. Please check the number."),
    "INVALID_ARGUMENT": ("填写的内容有误，请检查后重试。", "Something you entered is not right. Please check it."),
    "FAILED_PRECONDITION": ("现在不能这样做（状态已变化）。", "This cannot be done now (the state has changed)."),
    "ALREADY_EXISTS": ("已经存在。", "It exists already."),
    "UNAUTHENTICATED": ("请重新登录。", "Please sign in again."),
    "UNAVAILABLE": ("服务暂时不可用，请稍后再试。", "The service is not reachable. Please try again later."),
    "RESOURCE_EXHAUSTED": ("服务繁忙，请稍后再试。", "The service is busy. Please try again in a moment."),
    "DEADLINE_EXCEEDED": ("服务没有及时响应，请稍后再试。", "The service did not answer in time."),
    "bad_input": ("填写的内容有误。", "Something you entered is not right."),
    "bad_reason": ("请从列表中选一个原因。", "Please choose a reason from the list."),
    "error": ("出了点问题。", "Something went wrong."),
}
DONE: dict[str, tuple[str, str]] = {
    "posted": ("已提交！社区会尽快安排。", "Posted! The community will arrange it soon."),
    "registered": ("登记成功。", "Registered."),
    "saved": ("已完成。", "Done."),
}


def lang_of(request: Request) -> str:
    return "en" if request.cookies.get(LANG_COOKIE) == "en" else "zh"


def context(request: Request, who: Caller | None = None, **extra: Any) -> dict[str, Any]:
    lang = lang_of(request)

    def t(zh: str, en: str) -> str:
        return zh if lang == "zh" else en

    def word(code: str) -> str:
        found = WORDS.get(code)
        return (found[0] if lang == "zh" else found[1]) if found else code

    directory: Directory = request.app.state.directory
    done = DONE.get(request.query_params.get("done", ""))
    return {"request": request, "lang": lang, "elder": request.cookies.get(ELDER_COOKIE) == "1", "t": t,
            "word": word, "who": who, "roles": who.principal.roles if who else frozenset(),
            "csrf": who.csrf if who else "", "community_name": directory.name_of, "directory": directory,
            "done": (done[0] if lang == "zh" else done[1]) if done else "", "path": request.url.path,
            "most": most, **extra}


def render(request: Request, name: str, who: Caller | None = None, status: int = 200, **extra: Any) -> HTMLResponse:
    response = templates.TemplateResponse(request, name, context(request, who, **extra), status_code=status)
    response.headers["cache-control"] = "no-store"
    return response


def message_page(request: Request, status: int, key: str, detail: str = "") -> HTMLResponse:
    zh, en = MESSAGES.get(key, MESSAGES["error"])
    return render(request, "message.html", None, status, message_zh=zh, message_en=en, detail=detail[:300])


# The form fields by name, for a plain message naming the one that is not right (Chinese, English).
FIELDS: dict[str, tuple[str, str]] = {
    "description": ("具体情况", "Details"), "other_text": ("其他：简单说一下", "Other"),
    "comment": ("想说的话", "Comment"), "name": ("姓名", "Name"), "phone": ("手机号", "Phone"),
    "address": ("住址", "Address"), "hours": ("服务时长", "Hours served"), "notes": ("服务记录", "Notes"),
    "stars": ("评分", "Rating"), "title": ("标题", "Title"), "capacity": ("人数上限", "Capacity"),
    "note": ("说明", "Note"), "reason": ("原因", "Reason"), "client_request_id": ("提交编号", "Request number"),
    "community_id": ("社区", "Community"), "member_id": ("党员编号", "Member number"),
    "unit_id": ("单位编号", "Unit number"), "teams": ("小分队", "Teams"), "units": ("联席单位", "Joint units"),
    "starts_at": ("开始时间", "Starts"), "ends_at": ("结束时间", "Ends"), "menu_item_id": ("服务项目", "Service"),
    "urgency": ("急不急", "Urgency"), "care_tags": ("特别照顾", "Special care"), "activity_id": ("活动", "Activity"),
    "resident_id": ("居民编号", "Resident number"), "theme": ("主题", "Theme"), "grid_id": ("网格", "Grid"),
    "csrf_token": ("页面已过期", "The page expired"), "public_name": ("公示姓名", "Name on the notice board"),
}
OUTSIDE_HOTLINE = ("这个社区不在您的热线服务范围内。", "This community is not one your hotline serves.")


def validation_message(lang: str, errors: list[dict[str, Any]]) -> str:
    """FastAPI's validation errors as plain words in the page's language, each naming its field (pydantic's own
    text is English and technical)."""
    zh = lang == "zh"
    said = []
    for error in errors:
        name = next((str(p) for p in reversed(error.get("loc", ())) if isinstance(p, str)), "")
        label = FIELDS.get(name, (name, name))[0 if zh else 1] or ("填写的内容" if zh else "A field")
        kind, ctx = str(error.get("type", "")), error.get("ctx") or {}
        if kind == "missing":
            what = ("必须填写", "is required")
        elif kind == "string_too_long":
            most_chars = ctx.get("max_length")
            what = (f"太长了，最多 {most_chars} 个字", f"is too long: at most {most_chars} characters")
        elif kind == "string_too_short":
            least = ctx.get("min_length")
            what = (f"太短了，至少 {least} 个字", f"is too short: at least {least} characters")
        elif kind in ("int_parsing", "float_parsing", "int_from_float"):
            what = ("请填写数字", "must be a number")
        elif kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
            bound = next(iter(ctx.values()), "")
            what = {"greater_than": (f"必须大于 {bound}", f"must be more than {bound}"),
                    "greater_than_equal": (f"不能小于 {bound}", f"must be at least {bound}"),
                    "less_than": (f"必须小于 {bound}", f"must be less than {bound}"),
                    "less_than_equal": (f"不能大于 {bound}", f"must be at most {bound}")}[kind]
        elif kind in ("literal_error", "enum"):
            what = ("请从列表中选择", "must be one of the choices")
        else:
            what = ("填写有误", "is not right")
        said.append(f"{label}：{what[0]}" if zh else f"{label} {what[1]}")
    return ("；" if zh else "; ").join(dict.fromkeys(said))


def invalid_page(request: Request, errors: list[dict[str, Any]]) -> HTMLResponse:
    return message_page(request, 400, "bad_input", validation_message(lang_of(request), errors))


def refusal_page(request: Request, error: Refused) -> HTMLResponse:
    from sandan_gateway.problems import http_status

    return message_page(request, http_status(error.code), error.code.name, error.message)


async def page_caller(request: Request) -> Caller:
    return await request.app.state.auth.caller(request)


async def form_caller(request: Request, who: Annotated[Caller, Depends(page_caller)]) -> Caller:
    await check_csrf(request, who)
    return who


Who = Annotated[Caller, Depends(page_caller)]
Poster = Annotated[Caller, Depends(form_caller)]


def services(request: Request) -> Backend:
    return request.app.state.backend


def back(path: str, done: str = "saved") -> RedirectResponse:
    return RedirectResponse(f"{path}?done={done}", status_code=303)


async def _party_days(backend: Backend, token: str, community: str, upcoming_only: bool = True,
                      limit: int = 0) -> tuple[list[Any], bool]:
    """A community's themed party days, soonest first, and whether they could be read (a page still shows the
    rest when dispatch refuses or is away)."""
    if not community:
        return [], True
    try:
        listed = await backend.call(backend.dispatch.ListActivities, dispatch_pb2.ListActivitiesRequest(
            community_id=community, upcoming_only=upcoming_only, limit=limit), token)
    except Refused:
        return [], False
    return list(listed.activities), True


# ---- public ----------------------------------------------------------------------------------------------------
@router.get("/")
async def landing(request: Request) -> Response:
    who = await request.app.state.auth.optional_caller(request)
    return render(request, "landing.html", who)


@router.get("/prefs")
async def prefs(request: Request, lang: str = "", elder: str = "", next: str = "/") -> Response:
    """Language and elderly mode: plain cookies (no personal data, no session needed, readable by the pages)."""
    response = RedirectResponse(safe_next(next), status_code=303)
    secure = request.app.state.settings.secure_cookies
    if lang in ("zh", "en"):
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax", secure=secure)
    if elder in ("0", "1"):
        response.set_cookie(ELDER_COOKIE, elder, max_age=365 * 86400, samesite="lax", secure=secure)
    return response


@router.get("/home")
async def home(request: Request, who: Who) -> Response:
    roles = who.principal.roles
    for path, wanted in (("/office", OFFICES), ("/console", CONSOLE), ("/member", ("member",)),
                         ("/resident", ("resident", HOTLINE))):
        if roles & set(wanted):
            return RedirectResponse(path, status_code=303)
    return RedirectResponse("/notices", status_code=303)


@router.get("/notices")
async def notices(request: Request, quarter: str = "") -> Response:
    who = await request.app.state.auth.optional_caller(request)
    return render(request, "notices.html", who, quarters=previous_quarters(4), quarter=quarter or current_quarter())


async def _notice(request: Request, scope: str, scope_id: str, quarter: str) -> Any:
    backend: Backend = request.app.state.backend
    method = backend.scoring.CommunityNotice if scope == "community" else backend.scoring.UnitReport
    return await backend.as_gateway(method, scoring_pb2.ScopeQuarter(scope_id=scope_id, quarter=quarter))


@router.get("/notices/communities/{community_id}")
async def community_notice(request: Request, community_id: str, quarter: str = "") -> Response:
    quarter = quarter if _is_quarter(quarter) else current_quarter()
    report = await _notice(request, "community", community_id, quarter)
    names, _ = await request.app.state.backend.public_names([r.member_id for r in report.ranking], [])
    return render(request, "notice.html", await request.app.state.auth.optional_caller(request), report=report,
                  scope="community", scope_id=community_id, quarter=quarter, quarters=previous_quarters(4),
                  names=names)


@router.get("/notices/units/lookup")
async def unit_lookup(unit: str = "") -> Response:
    from urllib.parse import quote

    return RedirectResponse(f"/notices/units/{quote(unit.strip(), safe='')}" if unit.strip() else "/notices",
                            status_code=303)


@router.get("/notices/units/{unit_id}")
async def unit_notice(request: Request, unit_id: str, quarter: str = "", print: str = "") -> Response:
    quarter = quarter if _is_quarter(quarter) else current_quarter()
    report = await _notice(request, "unit", unit_id, quarter)
    names, units = await request.app.state.backend.public_names([r.member_id for r in report.ranking], [unit_id])
    return render(request, "notice.html", await request.app.state.auth.optional_caller(request), report=report,
                  scope="unit", scope_id=unit_id, quarter=quarter, quarters=previous_quarters(4),
                  printable=print == "1", names=names, unit_name=units.get(unit_id, ""))


def _is_quarter(value: str) -> bool:
    return len(value) == 6 and value[:4].isdigit() and value[4] == "Q" and value[5] in "1234"


# ---- residents (and workers acting for them) ------------------------------------------------------------------
def hotline_reach(directory: Directory, who: Caller) -> list[Place] | None:
    """The communities a hotline operator chooses from: their town's when the token names one, else every one of
    their county's (as intake's scope reads the same places file); None for anyone else (tied to their token's
    community, or their own records). Only communities with a town: intake's scope knows no others."""
    p = who.principal
    if HOTLINE not in p.roles:
        return None
    if p.county_id and p.county_id != directory.county_id:
        return []
    if p.town_id:
        return directory.in_town(p.town_id)
    return [c for c in directory.communities.values() if c.town_id] if p.county_id else []


def outside_hotline(request: Request, who: Caller, community_id: str) -> HTMLResponse | None:
    """A plain refusal, before any call, of a community the operator's chooser does not offer (intake refuses it
    too; this keeps the operator on words they can act on)."""
    reach = hotline_reach(request.app.state.directory, who)
    if reach is None or any(c.community_id == community_id for c in reach):
        return None
    return message_page(request, 403, "PERMISSION_DENIED", OUTSIDE_HOTLINE[lang_of(request) == "en"])


@router.get("/resident")
async def resident(request: Request, who: Who) -> Response:
    backend: Backend = request.app.state.backend
    p = who.principal
    community = request.query_params.get("community") or p.community_id or ""
    reach = hotline_reach(request.app.state.directory, who)
    if community and (refused := outside_hotline(request, who, community)):
        return refused
    menu: list[Any] = []
    if community:
        try:
            menu = [i for i in (await backend.call(backend.intake.ListMenu, intake_pb2.ListMenuRequest(
                community_id=community), who.token)).items if not i.retired]
        except Refused:
            menu = []
    acting_for_others = bool(p.roles & set(WORKERS))
    # a resident's own demands, from intake (any device, any session); a worker's, for the resident they name
    resident_id = request.query_params.get("resident", "") if acting_for_others else (p.resident_id or "")
    mine: list[Any] = []
    mine_error: tuple[str, str] | None = None
    if resident_id:
        try:
            mine = list((await backend.call(backend.intake.ListResidentDemands, intake_pb2.ListResidentDemandsRequest(
                resident_id=resident_id), who.token)).demands)
        except Refused as refused:
            if refused.code != grpc.StatusCode.NOT_FOUND:  # not registered yet: nothing posted
                mine_error = MESSAGES.get(refused.code.name, MESSAGES["error"])
    # party days are dispatch's, which a hotline operator does not call (access.toml): not offered to them
    party_days, party_read = await _party_days(backend, who.token, community if reach is None else "")
    return render(request, "resident.html", who, community=community, menu=menu, mine=mine, mine_error=mine_error,
                  acting_for_others=acting_for_others, party_days=party_days, party_read=party_read,
                  resident_id=resident_id, reach=reach)


@router.post("/resident/register")
async def resident_register(request: Request, who: Poster, community_id: Annotated[str, Form()],
                            name: Annotated[str, Form(max_length=most("name"))],
                            phone: Annotated[str, Form(max_length=most("phone"))],
                            address: Annotated[str, Form(max_length=most("address"))]) -> Response:
    backend: Backend = request.app.state.backend
    if refused := outside_hotline(request, who, community_id):
        return refused
    reply = await backend.call(backend.intake.RegisterResident, intake_pb2.RegisterResidentRequest(
        community_id=community_id, name=name, phone=phone, address=address), who.token)
    if who.principal.roles & set(WORKERS):  # a worker needs the new resident's number (and community) to post
        query = urlencode({"done": "registered", "resident": reply.resident_id, "community": reply.community_id})
        return RedirectResponse(f"/resident?{query}", status_code=303)
    return back("/resident", "registered")


@router.post("/resident/demands")
async def resident_post(request: Request, who: Poster,
                        client_request_id: Annotated[str, Form(max_length=most("client_request_id"))],
                        menu_item_id: Annotated[str, Form()] = "",
                        other_text: Annotated[str, Form(max_length=most("other_text"))] = "",
                        description: Annotated[str, Form(max_length=most("description"))] = "",
                        urgency: Annotated[str, Form()] = "normal", care_tags: Annotated[list[str], Form()] = (),  # type: ignore[assignment]
                        community_id: Annotated[str, Form()] = "", grid_id: Annotated[str, Form()] = "",
                        resident_id: Annotated[str, Form()] = "") -> Response:
    backend: Backend = request.app.state.backend
    p = who.principal
    worker = bool(p.roles & set(WORKERS)) and bool(resident_id)
    community_id = community_id or p.community_id or ""
    if worker and (refused := outside_hotline(request, who, community_id)):
        return refused
    # how the demand came in: the hotline's call, a worker's visit, or the resident online
    channel = ("hotline" if HOTLINE in p.roles else "grid_worker") if worker else "app"
    item = "" if menu_item_id == "other" else menu_item_id
    reply = await backend.call(backend.intake.PostDemand, intake_pb2.PostDemandRequest(
        client_request_id=client_request_id, resident_id=resident_id if worker else (p.resident_id or ""),
        community_id=community_id, grid_id=grid_id or p.grid_id or "",
        menu_item_id=item, other_text=other_text if not item else "", description=description, urgency=urgency,
        care_tags=[c for c in care_tags if c], channel=channel), who.token)
    return RedirectResponse(f"/resident/demands/{reply.demand_id}?done=posted", status_code=303)


@router.get("/resident/demands/{demand_id}")
async def resident_demand(request: Request, demand_id: str, who: Who) -> Response:
    backend: Backend = request.app.state.backend
    demand = await backend.call(backend.intake.GetDemand, intake_pb2.DemandRef(demand_id=demand_id), who.token)
    steps = STATUS_STEPS if demand.status != "withdrawn" else ("posted", "withdrawn")
    # back to the resident page for the same resident and community (a worker or operator acting for them)
    acting_for_others = bool(who.principal.roles & set(WORKERS))
    back_to = ("/resident?" + urlencode({"community": demand.community_id, "resident": demand.resident_id})
               if acting_for_others else "/resident")
    return render(request, "demand.html", who, demand=demand, steps=steps,
                  reached=steps.index(demand.status) if demand.status in steps else 0,
                  redo_reasons=REDO_REASONS, withdraw_reasons=WITHDRAW_REASONS, back_to=back_to)


@router.post("/resident/demands/{demand_id}/{action}")
async def resident_action(request: Request, demand_id: str, action: str, who: Poster,
                          stars: Annotated[int, Form(ge=0, le=5)] = 0,
                          comment: Annotated[str, Form(max_length=most("comment"))] = "",
                          reason: Annotated[str, Form(max_length=40)] = "") -> Response:
    backend: Backend = request.app.state.backend
    ref = intake_pb2.DemandRef(demand_id=demand_id)
    allowed = {"redo": REDO_REASONS, "withdraw": WITHDRAW_REASONS}.get(action)
    if allowed is not None and reason not in allowed:  # intake keeps a code, never free text
        return message_page(request, 400, "bad_reason")
    if action == "confirm":
        await backend.call(backend.intake.ConfirmCompletion, ref, who.token)
    elif action == "rate":
        await backend.call(backend.intake.RateService, intake_pb2.RateServiceRequest(
            demand_id=demand_id, stars=stars, comment=comment), who.token)
    elif action == "redo":
        await backend.call(backend.intake.RequestRedo, intake_pb2.RequestRedoRequest(
            demand_id=demand_id, reason=reason), who.token)
    elif action == "withdraw":
        await backend.call(backend.intake.WithdrawDemand, intake_pb2.WithdrawDemandRequest(
            demand_id=demand_id, reason=reason), who.token)
    else:
        raise Refused(grpc.StatusCode.NOT_FOUND, f"no action {action}")
    return back(f"/resident/demands/{demand_id}")


# ---- members ---------------------------------------------------------------------------------------------------
@router.get("/member")
async def member(request: Request, who: Who, quarter: str = "") -> Response:
    backend: Backend = request.app.state.backend
    p = who.principal
    quarter = quarter if _is_quarter(quarter) else current_quarter()
    me = ledger = None
    public_name = ""  # the name the member shows on the public notice board ("" when none)
    offers: list[Any] = []
    mine: list[Any] = []
    party_days: list[Any] = []
    party_read = True
    if p.member_id:
        try:
            me = await backend.call(backend.dispatch.GetMember, dispatch_pb2.MemberRef(member_id=p.member_id),
                                    who.token)
        except Refused:
            me = None
        community = (me.community_id if me else "") or p.community_id or ""
        orders, ledger, party, named = await asyncio.gather(
            backend.call(backend.dispatch.ListOrders, dispatch_pb2.ListOrdersRequest(community_id=community),
                         who.token),
            backend.call(backend.scoring.GetMemberLedger, scoring_pb2.MemberLedgerRequest(
                member_id=p.member_id, quarter=quarter), who.token),
            _party_days(backend, who.token, community if me else ""),
            backend.call(backend.dispatch.PublicNames, dispatch_pb2.PublicNamesRequest(member_ids=[p.member_id]),
                         who.token), return_exceptions=True)
        if not isinstance(named, BaseException):
            public_name = next((m.public_name for m in named.members if m.member_id == p.member_id), "")
        party_days, party_read = ([], False) if isinstance(party, BaseException) else party
        if isinstance(orders, BaseException):
            orders = dispatch_pb2.Orders()
        if isinstance(ledger, BaseException):
            ledger = None
        teams = set(me.teams) if me else set()
        for o in orders.orders:
            if o.member_id == p.member_id and o.status in ("dispatched", "accepted"):
                mine.append(o)
            elif o.status == "offered" and me and (o.grid_id == me.grid_id or teams & set(o.offered_teams)):
                offers.append(o)
    return render(request, "member.html", who, me=me, offers=offers, mine=mine, ledger=ledger, quarter=quarter,
                  party_days=party_days, party_read=party_read, public_name=public_name)


@router.post("/member/public-name")
async def member_public_name(request: Request, who: Poster,
                             public_name: Annotated[str, Form(max_length=most("public_name"))] = "",
                             withdraw: Annotated[str, Form(max_length=1)] = "") -> Response:
    """The member gives (or withdraws) their consent to be named on the public notice board; dispatch checks the
    name and that it is the member themself."""
    backend: Backend = request.app.state.backend
    await backend.call(backend.dispatch.SetPublicName, dispatch_pb2.SetPublicNameRequest(
        member_id=who.principal.member_id or "", public_name="" if withdraw else public_name), who.token)
    return back("/member")


@router.post("/member/orders/{order_id}/{action}")
async def member_action(request: Request, order_id: str, action: str, who: Poster,
                        hours: Annotated[float, Form(ge=0, le=72)] = 0,
                        notes: Annotated[str, Form(max_length=most("notes"))] = "",
                        reason: Annotated[str, Form(max_length=40)] = "unavailable") -> Response:
    backend: Backend = request.app.state.backend
    member_id = who.principal.member_id or ""
    if action == "accept":
        await backend.call(backend.dispatch.AcceptOrder, dispatch_pb2.AcceptOrderRequest(
            order_id=order_id, member_id=member_id), who.token)
    elif action == "decline":
        await backend.call(backend.dispatch.DeclineOrder, dispatch_pb2.DeclineOrderRequest(
            order_id=order_id, member_id=member_id, reason=reason), who.token)
    elif action == "complete":
        await backend.call(backend.dispatch.CompleteService, dispatch_pb2.CompleteServiceRequest(
            order_id=order_id, member_id=member_id, hours=hours, notes=notes), who.token)
    else:
        raise Refused(grpc.StatusCode.NOT_FOUND, f"no action {action}")
    return back("/member")


@router.get("/member/orders/{order_id}")
async def member_order(request: Request, order_id: str, who: Who) -> Response:
    backend: Backend = request.app.state.backend
    order = await backend.call(backend.dispatch.GetOrder, dispatch_pb2.OrderRef(order_id=order_id), who.token)
    contact, pending = None, False
    if order.member_id and order.member_id == who.principal.member_id and order.status == "accepted":
        try:
            contact = await backend.call(backend.intake.GetServiceContact, intake_pb2.ServiceContactRequest(
                demand_id=order.demand_id, member_id=order.member_id), who.token)
        except Refused as refused:
            # intake releases the contact once it has read the acceptance (a moment later): the page says so
            if refused.code != grpc.StatusCode.FAILED_PRECONDITION:
                raise
            pending = True
    return render(request, "member_order.html", who, order=order, contact=contact, pending=pending)


@router.post("/activities/{action}")
async def activity_action(request: Request, action: str, who: Poster, activity_id: Annotated[str, Form()],
                          resident_id: Annotated[str, Form()] = "") -> Response:
    backend: Backend = request.app.state.backend
    p = who.principal
    if action == "check-in":
        await backend.call(backend.dispatch.CheckInMember, dispatch_pb2.CheckInMemberRequest(
            activity_id=activity_id, member_id=p.member_id or ""), who.token)
        return back("/member")
    if action == "sign-up":
        await backend.call(backend.dispatch.SignUpResident, dispatch_pb2.SignUpResidentRequest(
            activity_id=activity_id, resident_id=resident_id or p.resident_id or ""), who.token)
        return back("/resident")
    raise Refused(grpc.StatusCode.NOT_FOUND, f"no action {action}")


# ---- branch secretary, grid leader, grid worker -------------------------------------------------------------------
@router.get("/console")
async def console(request: Request, who: Who, quarter: str = "") -> Response:
    backend: Backend = request.app.state.backend
    p = who.principal
    community = p.community_id or ""
    quarter = quarter if _is_quarter(quarter) else current_quarter()
    orders: list[Any] = []
    summary = None
    if p.roles & {"branch_secretary", "grid_leader"}:
        listed = await backend.call(backend.dispatch.ListOrders, dispatch_pb2.ListOrdersRequest(
            community_id=community), who.token)
        orders = [o for o in listed.orders if o.status not in ("completed", "cancelled")
                  and ("branch_secretary" in p.roles or o.grid_id == p.grid_id)]
        orders.sort(key=lambda o: o.due_at)
    party_days: list[Any] = []
    party_read = True
    if "branch_secretary" in p.roles:
        try:
            summary = await backend.call(backend.scoring.CommunityNotice, scoring_pb2.ScopeQuarter(
                scope_id=community, quarter=quarter), who.token)
        except Refused:
            summary = None
        # the ones not completed yet, ended or not (a party day is completed after it ends)
        listed_days, party_read = await _party_days(backend, who.token, community, upcoming_only=False, limit=200)
        party_days = [a for a in listed_days if a.status == "scheduled"]
    return render(request, "console.html", who, community=community, orders=orders, summary=summary,
                  quarter=quarter, party_days=party_days, party_read=party_read)


@router.get("/console/orders/{order_id}")
async def console_order(request: Request, order_id: str, who: Who) -> Response:
    backend: Backend = request.app.state.backend
    order = await backend.call(backend.dispatch.GetOrder, dispatch_pb2.OrderRef(order_id=order_id), who.token)
    suggestions: list[Any] = []
    if order.status in ("open", "offered"):
        try:
            suggestions = list((await backend.call(backend.dispatch.SuggestMembers, dispatch_pb2.SuggestMembersRequest(
                order_id=order_id, limit=5), who.token)).candidates)
        except Refused:
            suggestions = []
    demand = None
    try:
        demand = await backend.call(backend.intake.GetDemand, intake_pb2.DemandRef(demand_id=order.demand_id),
                                    who.token)
    except Refused:
        demand = None
    return render(request, "console_order.html", who, order=order, suggestions=suggestions, demand=demand)


@router.post("/console/orders/{order_id}/{action}")
async def console_action(request: Request, order_id: str, action: str, who: Poster,
                         member_id: Annotated[str, Form()] = "", teams: Annotated[str, Form(max_length=400)] = "",
                         reason: Annotated[str, Form(max_length=40)] = "no_capacity",
                         note: Annotated[str, Form(max_length=most("note"))] = "",
                         units: Annotated[str, Form(max_length=2000)] = "") -> Response:
    backend: Backend = request.app.state.backend
    if action == "dispatch":
        by = "branch" if "branch_secretary" in who.principal.roles else "grid_leader"
        await backend.call(backend.dispatch.DispatchOrder, dispatch_pb2.DispatchOrderRequest(
            order_id=order_id, member_id=member_id, dispatched_by=by), who.token)
    elif action == "offer":
        await backend.call(backend.dispatch.OfferOrder, dispatch_pb2.OfferOrderRequest(
            order_id=order_id, teams=[t.strip() for t in teams.split(",") if t.strip()]), who.token)
    elif action == "escalate":
        await backend.call(backend.dispatch.EscalateOrder, dispatch_pb2.EscalateOrderRequest(
            order_id=order_id, reason=reason, note=note,
            joint_meeting_units=[u.strip() for u in units.split(",") if u.strip()]), who.token)
    else:
        raise Refused(grpc.StatusCode.NOT_FOUND, f"no action {action}")
    target = "/office" if who.principal.roles & set(OFFICES) else f"/console/orders/{order_id}"
    return back(target)


@router.get("/console/roster")
async def roster(request: Request, who: Who, member_id: str = "", community: str = "") -> Response:
    """The community's roster (units, grid groups, members: what GetMember shows, no name or contact) and the
    lookup of one member. Offices name the community (`community`), the others read their own."""
    backend: Backend = request.app.state.backend
    p = who.principal
    community = (community if p.roles & set(OFFICES) else "") or p.community_id or ""
    found = None
    if member_id:
        found = await backend.call(backend.dispatch.GetMember, dispatch_pb2.MemberRef(member_id=member_id),
                                   who.token)
    listed, roster_read = None, True
    if community and p.roles & {"branch_secretary", "grid_leader", *OFFICES}:
        try:
            listed = await backend.call(backend.dispatch.ListRoster, dispatch_pb2.RosterRequest(
                community_id=community), who.token)
        except Refused:
            roster_read = False
    return render(request, "roster.html", who, member=found, roster=listed, roster_read=roster_read,
                  community=community)


@router.post("/console/activities")
async def schedule(request: Request, who: Poster, unit_id: Annotated[str, Form()], theme: Annotated[str, Form()],
                   title: Annotated[str, Form(max_length=most("title"))], starts_at: Annotated[str, Form()],
                   ends_at: Annotated[str, Form()], capacity: Annotated[int, Form(ge=1, le=10000)]) -> Response:
    backend: Backend = request.app.state.backend
    activity_id = f"act-{uuid.uuid4().hex[:12]}"
    reply = await backend.call(backend.dispatch.ScheduleActivity, dispatch_pb2.ScheduleActivityRequest(
        activity_id=activity_id, unit_id=unit_id, community_id=who.principal.community_id or "", theme=theme,
        title=title, starts_at=_with_offset(starts_at), ends_at=_with_offset(ends_at), capacity=capacity), who.token)
    return RedirectResponse(f"/activities/{reply.activity_id}?done=saved", status_code=303)


@router.post("/console/activities/{activity_id}/complete")
async def complete_activity(request: Request, activity_id: str, who: Poster,
                            hours: Annotated[float, Form(gt=0, le=24)]) -> Response:
    backend: Backend = request.app.state.backend
    await backend.call(backend.dispatch.CompleteActivity, dispatch_pb2.CompleteActivityRequest(
        activity_id=activity_id, hours=hours), who.token)
    return RedirectResponse(f"/activities/{activity_id}?done=saved", status_code=303)


def _with_offset(local: str) -> str:
    """A datetime-local field (no offset) is China time."""
    local = local.strip()
    if local and len(local) <= 19 and "+" not in local and not local.endswith("Z"):
        return (local + ":00" if len(local) == 16 else local) + "+08:00"
    return local


@router.get("/activities/{activity_id}")
async def activity(request: Request, activity_id: str, who: Who) -> Response:
    backend: Backend = request.app.state.backend
    found = await backend.call(backend.dispatch.GetActivity, dispatch_pb2.ActivityRef(activity_id=activity_id),
                               who.token)
    return render(request, "activity.html", who, activity=api.activity_out(found))


# ---- town and county offices ------------------------------------------------------------------------------------
# One office page's calls to the services in flight at once: a county has ~130 reporting units and scores of
# communities, and thousands of concurrent calls on one channel were seen CANCELLED (ARCHITECTURE.md).
OFFICE_CALLS_IN_FLIGHT = 12


def ranked(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The office's ranking, of communities and of units alike (office.html says it in words): rows with figures
    first, then the higher satisfaction rate, then the higher completion rate, then the name. A rate without data
    (-1) ranks below every rate."""
    return sorted(rows, key=lambda r: (not r["figures"], -r["satisfaction"], -r["completion"], r["name"]))


def _rates(summary: Any) -> dict[str, Any]:
    return {"response": summary.response_rate, "completion": summary.completion_rate,
            "satisfaction": summary.satisfaction_rate}


def _units(rows: list[tuple[Any, Any, Any, Any]]) -> dict[str, dict[str, Any]]:
    """The reporting units of the communities whose roster was read, once each: a unit reported to several of
    them is one row, naming them all, with its members there added up."""
    units: dict[str, dict[str, Any]] = {}
    for place, _, _, roster in rows:
        for u in roster.units if isinstance(roster, dispatch_pb2.Roster) else ():
            row = units.setdefault(u.unit_id, {"unit_id": u.unit_id, "name": u.unit_name or u.unit_id,
                                               "communities": [], "members": 0})
            row["communities"].append(place.name)
            row["members"] += u.members_reported
    return units


@router.get("/office")
async def office(request: Request, who: Who, quarter: str = "") -> Response:
    backend: Backend = request.app.state.backend
    directory: Directory = request.app.state.directory
    p = who.principal
    quarter = quarter if _is_quarter(quarter) else current_quarter()
    county = "county_office" in p.roles
    places = list(directory.communities.values()) if county else directory.in_town(p.town_id or "")
    in_flight = asyncio.Semaphore(OFFICE_CALLS_IN_FLIGHT)

    async def ask(method: Any, message: Any) -> Any:
        """The answer, or the refusal (one community or unit the services cannot answer for is shown as such)."""
        async with in_flight:
            try:
                return await backend.call(method, message, who.token)
            except Refused as refusal:
                return refusal

    async def one(place: Any) -> tuple[Any, Any, Any, Any]:
        listed, report, roster = await asyncio.gather(
            ask(backend.dispatch.ListOrders, dispatch_pb2.ListOrdersRequest(community_id=place.community_id)),
            ask(backend.scoring.CommunityNotice, scoring_pb2.ScopeQuarter(scope_id=place.community_id,
                                                                          quarter=quarter)),
            ask(backend.dispatch.ListRoster, dispatch_pb2.RosterRequest(community_id=place.community_id)))
        return place, listed, report, roster

    rows = await asyncio.gather(*(one(pl) for pl in places))
    escalated, table = [], []
    for place, listed, report, _ in rows:
        orders = list(listed.orders) if isinstance(listed, dispatch_pb2.Orders) else []
        escalated += [(place, o) for o in orders if o.level in ("town", "county")
                      and o.status not in ("completed", "cancelled")]
        s = report.summary if isinstance(report, scoring_pb2.Report) else None
        table.append({"community_id": place.community_id, "name": place.name, "figures": s is not None,
                      "open": sum(o.status not in ("completed", "cancelled") for o in orders),
                      "overdue": s.overdue if s else 0, "escalated": s.escalated if s else 0,
                      **(_rates(s) if s else {"response": -1, "completion": -1, "satisfaction": -1}),
                      "reachable": isinstance(listed, dispatch_pb2.Orders)})

    units = _units(rows)
    reports = await asyncio.gather(*(ask(backend.scoring.UnitReport, scoring_pb2.ScopeQuarter(
        scope_id=unit_id, quarter=quarter)) for unit_id in units))
    for row, report in zip(units.values(), reports, strict=True):
        if isinstance(report, scoring_pb2.Report):
            s = report.summary
            row.update(figures=True, missing="", services=s.services_completed, hours=s.hours, overdue=s.overdue,
                       **_rates(s))
        else:  # scoring has no figures for it yet (NOT_FOUND), or could not answer now: said so, never a zero
            row.update(figures=False, missing="none" if report.code == grpc.StatusCode.NOT_FOUND else "unavailable",
                       response=-1, completion=-1, satisfaction=-1)
    rosters_missing = [place.name for place, _, _, roster in rows if not isinstance(roster, dispatch_pb2.Roster)]
    return render(request, "office.html", who, escalated=escalated, table=ranked(table), quarter=quarter,
                  quarters=previous_quarters(4), units=ranked(list(units.values())), rosters_missing=rosters_missing)


@router.post("/office/notices/{quarter}")
async def publish(request: Request, quarter: str, who: Poster) -> Response:
    backend: Backend = request.app.state.backend
    await backend.call(backend.scoring.PublishQuarterlyNotices, scoring_pb2.QuarterRef(quarter=quarter), who.token)
    return back("/office")
