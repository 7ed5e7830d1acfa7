"""The gateway's composition root: settings -> backend (gRPC), sessions, sign-in, live feed, routes, error answers.

`create_app(...)` takes its parts so the tests can give a local issuer, in-process services and no Kafka.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sse_starlette import EventSourceResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from sandan_contracts.rpc import dispatch_pb2, intake_pb2
from sandan_eventbus.auth.principal import Principal
from sandan_gateway import api, contract, open311, pages, problems
from sandan_gateway.auth import KNOWN_ROLES, Auth, Caller, NotSignedIn, check_csrf
from sandan_gateway.backend import Backend, Refused
from sandan_gateway.live import RELOAD, Hub, Interest, LiveFeed, Update
from sandan_gateway.open311 import GeoError, Partners
from sandan_gateway.places import Directory
from sandan_gateway.settings import Settings

log = logging.getLogger("gateway")
HERE = Path(__file__).resolve().parent
SESSION_CHECK_SECONDS = 15.0
MAX_WATCHED_DEMANDS = 20


def _is_api(request: Request) -> bool:
    return request.url.path.startswith(("/api/", "/open311/", "/schemas/"))


def create_app(settings: Settings, backend: Backend, auth: Auth, directory: Directory, partners: Partners,
               feed: LiveFeed | None = None, hub: Hub | None = None) -> FastAPI:
    hub = hub or (feed.hub if feed else Hub())

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if feed is not None:
            feed.start()
        sweeper = asyncio.create_task(_sweep(auth))
        try:
            yield
        finally:
            sweeper.cancel()
            if feed is not None:
                await feed.stop()
            await backend.close()

    app = FastAPI(title="sandan gateway", version="1.0.0", lifespan=lifespan,
                  description="The HTTP edge of sandan 三单: residents post demands, branches dispatch, members serve. "
                              "Sign-in (OpenID Connect) is required except under /api/v1/public and /open311; "
                              "state-changing calls with a session carry X-CSRF-Token. Errors are RFC 9457 "
                              "problem details (application/problem+json).")
    app.state.settings, app.state.backend, app.state.auth = settings, backend, auth
    app.state.directory, app.state.partners, app.state.hub, app.state.feed = directory, partners, hub, feed
    # The short-lived login cookie (state, nonce, PKCE verifier) only; sessions live server-side.
    app.add_middleware(SessionMiddleware, secret_key=settings.signing_secret(), session_cookie="sandan_login",
                       max_age=600, same_site="lax", https_only=settings.secure_cookies)

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        if _is_api(request):
            return problems.from_refusal(exc, request.url.path)
        return pages.refusal_page(request, exc)

    @app.exception_handler(NotSignedIn)
    async def not_signed_in(request: Request, exc: NotSignedIn) -> Response:
        if _is_api(request):
            return api.not_signed_in(request.url.path)
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)

    @app.exception_handler(GeoError)
    async def geo_error(request: Request, exc: GeoError) -> Response:
        return open311.error_response(exc.code, exc.description)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        if request.url.path.startswith("/open311/"):
            first = exc.errors()[0] if exc.errors() else {}
            return open311.error_response(400, f"{'.'.join(map(str, first.get('loc', ())))}: {first.get('msg', '')}")
        if _is_api(request):
            return problems.from_validation(list(exc.errors()), request.url.path)
        return pages.invalid_page(request, list(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path.startswith("/open311/"):
            return open311.error_response(exc.status_code, str(exc.detail))
        if _is_api(request) or exc.status_code == 405:
            return problems.from_http(exc.status_code, str(exc.detail), request.url.path)
        return pages.message_page(request, exc.status_code, "error", str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error", extra={"fields": {"path": request.url.path}})
        if _is_api(request):
            return problems.from_http(500, "", request.url.path)
        return pages.message_page(request, 500, "error", "")

    # ---- sign-in ------------------------------------------------------------------------------------------------
    @app.get("/login", include_in_schema=False)
    async def login(request: Request, next: str = "/") -> Response:
        return await auth.login(request, next)

    @app.get("/auth/callback", include_in_schema=False)
    async def callback(request: Request) -> Response:
        session, next_path = await auth.callback(request)
        response = RedirectResponse(next_path if next_path != "/" else "/home", status_code=303)
        auth.set_cookie(response, session)
        return response

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        session = await auth.session(request)
        if session is not None:
            await check_csrf(request, Caller(Principal.from_claims(session.claims, KNOWN_ROLES), "", session))
            await asyncio.to_thread(auth.store.delete, session.session_id)
        response = RedirectResponse(await auth.logout_url(session), status_code=303)
        auth.clear_cookie(response)
        return response

    # ---- health -------------------------------------------------------------------------------------------------
    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "live": bool(feed and feed.ready.is_set()), "streams": len(hub.subscribers)}

    # ---- live updates (server-sent events) ------------------------------------------------------------------------
    @app.get("/api/v1/events", tags=["live"], response_class=Response,
             responses={200: {"content": {"text/event-stream": {}},
                              "description": "server-sent events: one per fact this person may see"}})
    async def events(request: Request, who: Annotated[Caller, Depends(api.caller)],
                     demand: Annotated[list[str] | None, Query(max_length=MAX_WATCHED_DEMANDS)] = None,
                     ) -> Response:
        """Live updates for the signed-in person, filtered by their scope. Residents name the demands they watch
        (`demand=...`, their own only). Reconnecting with Last-Event-ID resumes, or gets `reload`."""
        interest = await interest_for(who, demand or [], backend, directory)
        subscriber, missed = hub.subscribe(interest, request.headers.get("last-event-id", ""))

        async def stream() -> AsyncIterator[dict[str, str]]:
            try:
                yield {"event": "ready", "data": "{}"}
                if missed is None:
                    yield {"event": RELOAD, "data": "{}"}
                for update in missed or ():
                    yield _sse(update)
                while True:
                    try:
                        item = await asyncio.wait_for(subscriber.queue.get(), SESSION_CHECK_SECONDS)
                    except TimeoutError:
                        if who.session is not None and await auth.fresh(who.session) is None:
                            yield {"event": "signed-out", "data": "{}"}
                            return
                        continue
                    if subscriber.overflowed and subscriber.queue.empty():
                        subscriber.overflowed = False
                        yield {"event": RELOAD, "data": "{}"}
                    if isinstance(item, Update):
                        yield _sse(item)
            finally:
                hub.unsubscribe(subscriber)

        return EventSourceResponse(stream(), ping=15, send_timeout=30)

    app.include_router(api.router)
    app.include_router(api.public)
    app.include_router(open311.router)
    app.include_router(pages.router)
    contract.mount(app)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    return app


def _sse(update: Update) -> dict[str, str]:
    return {"id": update.id, "event": update.kind, "data": json.dumps(update.data, ensure_ascii=False)}


async def interest_for(who: Caller, demand_ids: list[str], backend: Backend, directory: Directory) -> Interest:
    """What this person may see live: their places from the verified token; a member's grid and teams and a
    resident's demands as the services answer them for this person (a demand not theirs is refused there)."""
    p = who.principal
    interest = Interest(roles=p.roles, community_id=p.community_id or "", grid_id=p.grid_id or "")
    if "county_office" in p.roles and p.county_id and p.county_id == directory.county_id:
        interest.county = True
    if "town_office" in p.roles and p.town_id:
        interest.town_communities = frozenset(c.community_id for c in directory.in_town(p.town_id))
    if "member" in p.roles and p.member_id:
        interest.member_id = p.member_id
        try:
            member = await backend.call(backend.dispatch.GetMember, dispatch_pb2.MemberRef(member_id=p.member_id),
                                        who.token)
            interest.member_grid, interest.member_teams = member.grid_id, frozenset(member.teams)
            interest.community_id = interest.community_id or member.community_id
        except Refused:
            pass  # not reported yet: only what names them
    for demand_id in demand_ids[:MAX_WATCHED_DEMANDS]:
        try:
            found = await backend.call(backend.intake.GetDemand, intake_pb2.DemandRef(demand_id=demand_id), who.token)
        except Refused:
            continue
        interest.demand_ids.add(found.demand_id)
    return interest


async def _sweep(auth: Auth) -> None:
    while True:
        await asyncio.sleep(300)
        with contextlib.suppress(Exception):
            await asyncio.to_thread(auth.store.sweep)
