"""The gateway against in-process stand-ins of the services: real gRPC servers guarded by the real authentication
interceptor (trusting a local issuer, enforcing the role matrix), with small servicers that answer from a dict and
refuse what is out of scope, so the tests see what the gateway forwards and what it makes of refusals.
Sessions are opened directly in the store (the real sign-in flow is tested against Keycloak in test_stack.py).
`oidc_gateway` is the gateway in-process against the real Keycloak (sign-in only, no services behind it).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
import httpx
import jwt
import pytest

from sandan_contracts.rpc import (
    dispatch_pb2,
    dispatch_pb2_grpc,
    intake_pb2,
    intake_pb2_grpc,
    scoring_pb2,
    scoring_pb2_grpc,
)
from sandan_eventbus.auth.principal import PermissionDenied, Principal, current
from sandan_eventbus.auth.scopes import Places, Scopes
from sandan_eventbus.security import OidcSettings
from sandan_gateway.app import create_app
from sandan_gateway.auth import SESSION_COOKIE, Auth
from sandan_gateway.backend import Backend
from sandan_gateway.live import Hub
from sandan_gateway.open311 import Partner, Partners
from sandan_gateway.places import Directory
from sandan_gateway.sessions import Session, SessionStore
from sandan_gateway.settings import Settings

PLACES = """
[county]
id = "taihe"
name = "泰和县委组织部"
[towns.chengjiang]
name = "澄江镇党委"
[communities.c1]
name = "新区社区"
town = "chengjiang"
grids = ["g1", "g2"]
[communities.c2]
name = "玉华社区"
town = "chengjiang"
[towns.shangmo]
name = "上模乡党委"
[communities.c3]
name = "上模社区"
town = "shangmo"
"""
PARTNER_KEY = "partner-key-for-tests"
SCOPES = Scopes(Places.parse(PLACES))  # where a hotline operator reaches, as intake reads it
CODE = re.compile(r"[a-z][a-z0-9_]{0,39}")


@dataclass
class World:
    """What the stand-ins hold and what they saw."""

    demands: dict[str, intake_pb2.Demand] = field(default_factory=dict)
    orders: dict[str, dispatch_pb2.Order] = field(default_factory=dict)
    activities: dict[str, dispatch_pb2.Activity] = field(default_factory=dict)
    # by community: its roster, or the gRPC code dispatch answers ListRoster with instead
    rosters: dict[str, dispatch_pb2.Roster | grpc.StatusCode] = field(default_factory=dict)
    # a unit's summary for UnitReport, or the gRPC code scoring answers with instead (absent: NOT_FOUND)
    unit_reports: dict[str, scoring_pb2.Summary | grpc.StatusCode] = field(default_factory=dict)
    community_notices_refused: dict[str, grpc.StatusCode] = field(default_factory=dict)  # by community
    public_names: dict[str, str] = field(default_factory=dict)  # member id -> the name they consented to show
    unit_names: dict[str, str] = field(default_factory=dict)  # unit id -> its name (dispatch's roster)
    unit_report_seconds: float = 0.0  # how long each UnitReport takes
    unit_reports_in_flight: list[int] = field(default_factory=lambda: [0, 0])  # now, most at once
    seen: list[tuple[str, str, Any]] = field(default_factory=list)  # (method, acting role, request)

    def saw(self, method: str, request: Any) -> None:
        self.seen.append((method, current().acting_role, request))


def outside(who: Principal, community_id: str) -> bool:
    """As intake: a hotline operator acts only in their county's (or town's) communities. (Other workers are not
    checked here: the tests of their pages need no more.)"""
    return who.acting_role == "hotline_operator" and not SCOPES.covers(who, community_id)


class FakeIntake(intake_pb2_grpc.IntakeServicer):
    def __init__(self, world: World) -> None:
        self.world = world

    async def ListMenu(self, request: Any, context: Any) -> Any:
        self.world.saw("ListMenu", request)
        return intake_pb2.Menu(items=[intake_pb2.MenuItem(community_id=request.community_id, item_id="m-repair",
                                                          category="repair", title="修水管")])

    async def RegisterResident(self, request: Any, context: Any) -> Any:
        self.world.saw("RegisterResident", request)
        who = current()
        if outside(who, request.community_id):
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "outside their scope")
        return intake_pb2.Resident(resident_id=who.resident_id or str(uuid.uuid4()), community_id=request.community_id)

    async def PostDemand(self, request: Any, context: Any) -> Any:
        self.world.saw("PostDemand", request)
        who = current()
        if who.acting_role == "resident" and request.resident_id != who.resident_id:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "a resident may act only on their own records")
        if outside(who, request.community_id):
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "outside their scope")
        if not request.grid_id:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "grid_id: is required")
        demand = intake_pb2.Demand(demand_id=str(uuid.uuid4()), resident_id=request.resident_id,
                                   community_id=request.community_id, grid_id=request.grid_id,
                                   category="repair" if request.menu_item_id == "m-repair" else "other",
                                   menu_item_id=request.menu_item_id, status="posted", urgency=request.urgency,
                                   due_at="2030-01-01T00:00:00Z")
        self.world.demands[demand.demand_id] = demand
        return demand

    async def ListResidentDemands(self, request: Any, context: Any) -> Any:
        """The resident's demands in the world, newest first: a resident their own, a worker their community's."""
        self.world.saw("ListResidentDemands", request)
        who = current()
        if who.acting_role == "resident" and request.resident_id != who.resident_id:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "a resident may act only on their own records")
        theirs = [d for d in reversed(self.world.demands.values()) if d.resident_id == request.resident_id]
        if who.acting_role == "hotline_operator":
            if any(outside(who, d.community_id) for d in theirs):
                await context.abort(grpc.StatusCode.PERMISSION_DENIED, "a resident outside their scope")
        elif who.acting_role != "resident" and any(d.community_id != who.community_id for d in theirs):
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "a resident of another community")
        return intake_pb2.DemandList(demands=theirs[:request.limit or 20])

    def _own(self, demand_id: str) -> intake_pb2.Demand:
        demand = self.world.demands.get(demand_id)
        who = current()
        if demand is None:
            raise LookupError
        if who.acting_role == "resident" and demand.resident_id != who.resident_id:
            raise PermissionDenied("not yours")
        if outside(who, demand.community_id):
            raise PermissionDenied("outside their scope")
        return demand

    async def GetDemand(self, request: Any, context: Any) -> Any:
        self.world.saw("GetDemand", request)
        try:
            return self._own(request.demand_id)
        except LookupError:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"demand {request.demand_id} not found")
        except PermissionDenied as exc:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))

    async def ConfirmCompletion(self, request: Any, context: Any) -> Any:
        self.world.saw("ConfirmCompletion", request)
        demand = self.world.demands[request.demand_id]
        if demand.status != "served":
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "demand is posted, not served")
        demand.status = "confirmed"
        return demand

    async def RequestRedo(self, request: Any, context: Any) -> Any:
        self.world.saw("RequestRedo", request)
        if not CODE.fullmatch(request.reason):  # as intake's check_code
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "reason: must be a lowercase code")
        demand = self.world.demands[request.demand_id]
        if demand.status != "served":
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"demand is {demand.status}, not served")
        demand.status, demand.member_id, demand.redo_count = "posted", "", demand.redo_count + 1
        return demand

    async def WithdrawDemand(self, request: Any, context: Any) -> Any:
        self.world.saw("WithdrawDemand", request)
        if not CODE.fullmatch(request.reason):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "reason: must be a lowercase code")
        demand = self.world.demands[request.demand_id]
        if demand.status not in ("posted", "accepted"):
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"demand is {demand.status}")
        demand.status = "withdrawn"
        return demand

    async def RateService(self, request: Any, context: Any) -> Any:
        self.world.saw("RateService", request)
        demand = self.world.demands[request.demand_id]
        demand.stars = request.stars
        return demand


class FakeDispatch(dispatch_pb2_grpc.DispatchServicer):
    def __init__(self, world: World) -> None:
        self.world = world

    async def ListOrders(self, request: Any, context: Any) -> Any:
        self.world.saw("ListOrders", request)
        return dispatch_pb2.Orders(orders=[o for o in self.world.orders.values()
                                           if o.community_id == request.community_id])

    async def FindOrderByDemand(self, request: Any, context: Any) -> Any:
        self.world.saw("FindOrderByDemand", request)
        for order in self.world.orders.values():
            if order.demand_id == request.demand_id:
                return order
        await context.abort(grpc.StatusCode.NOT_FOUND, "order not found")

    async def GetOrderHistory(self, request: Any, context: Any) -> Any:
        from sandan_contracts.rpc import audit_pb2

        self.world.saw("GetOrderHistory", request)
        return audit_pb2.History(entries=[audit_pb2.Entry(version=1, at="2026-11-02T08:00:00Z", what="Opened"),
                                          audit_pb2.Entry(version=2, at="2026-11-02T09:00:00Z", what="Accepted",
                                                          subject="sub-secret-member")])

    async def AcceptOrder(self, request: Any, context: Any) -> Any:
        self.world.saw("AcceptOrder", request)
        order = self.world.orders[request.order_id]
        order.status, order.member_id = "accepted", request.member_id
        return order

    async def _in_community(self, community_id: str, context: Any) -> None:
        """As dispatch: a caller whose token names a community reaches only that one."""
        who = current()
        if who.acting_role not in ("town_office", "county_office") and who.community_id != community_id:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "outside their scope")

    async def ListActivities(self, request: Any, context: Any) -> Any:
        """The world's activities of the community, soonest first (upcoming_only: the scheduled ones)."""
        self.world.saw("ListActivities", request)
        await self._in_community(request.community_id, context)
        found = sorted((a for a in self.world.activities.values() if a.community_id == request.community_id
                        and (not request.upcoming_only or a.status == "scheduled")), key=lambda a: a.starts_at)
        return dispatch_pb2.Activities(activities=found[:request.limit or 50])

    def _activity(self, activity_id: str) -> dispatch_pb2.Activity:
        return self.world.activities[activity_id]

    async def CheckInMember(self, request: Any, context: Any) -> Any:
        self.world.saw("CheckInMember", request)
        if request.member_id != current().member_id:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "a member checks in only themselves")
        activity = self._activity(request.activity_id)
        if request.member_id not in activity.members_checked_in:
            activity.members_checked_in.append(request.member_id)
        return activity

    async def SignUpResident(self, request: Any, context: Any) -> Any:
        self.world.saw("SignUpResident", request)
        who = current()
        if who.acting_role == "resident" and request.resident_id != who.resident_id:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "a resident may act only on their own records")
        activity = self._activity(request.activity_id)
        if request.resident_id not in activity.residents_signed_up:
            activity.residents_signed_up.append(request.resident_id)
        return activity

    async def CompleteActivity(self, request: Any, context: Any) -> Any:
        self.world.saw("CompleteActivity", request)
        activity = self._activity(request.activity_id)
        await self._in_community(activity.community_id, context)
        if activity.status != "scheduled":
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"activity is {activity.status}")
        activity.status, activity.hours = "completed", request.hours
        return activity

    async def ListRoster(self, request: Any, context: Any) -> Any:
        self.world.saw("ListRoster", request)
        await self._in_community(request.community_id, context)
        found = self.world.rosters.get(request.community_id, dispatch_pb2.Roster(community_id=request.community_id))
        if isinstance(found, grpc.StatusCode):
            await context.abort(found, f"roster of {request.community_id}: {found.name.lower()}")
        return found

    async def SetPublicName(self, request: Any, context: Any) -> Any:
        """As dispatch: only the member themself; "" withdraws."""
        self.world.saw("SetPublicName", request)
        if request.member_id != current().member_id:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "outside their scope")
        if len(request.public_name.strip()) > 20:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "public_name: must be 1 to 20 characters")
        if request.public_name.strip():
            self.world.public_names[request.member_id] = request.public_name.strip()
        else:
            self.world.public_names.pop(request.member_id, None)
        return dispatch_pb2.MemberPublicName(member_id=request.member_id,
                                             public_name=self.world.public_names.get(request.member_id, ""))

    async def PublicNames(self, request: Any, context: Any) -> Any:
        self.world.saw("PublicNames", request)
        names, units = self.world.public_names, self.world.unit_names
        return dispatch_pb2.PublicNamesReply(
            members=[dispatch_pb2.MemberPublicName(member_id=m, public_name=names[m])
                     for m in dict.fromkeys(request.member_ids) if m in names],
            units=[dispatch_pb2.UnitPublicName(unit_id=u, unit_name=units[u])
                   for u in dict.fromkeys(request.unit_ids) if u in units])

    async def GetMember(self, request: Any, context: Any) -> Any:
        self.world.saw("GetMember", request)
        return dispatch_pb2.Member(member_id=request.member_id, community_id="c1", grid_id="g1", teams=["medical"],
                                   active=True)


class FakeScoring(scoring_pb2_grpc.ScoringServicer):
    def __init__(self, world: World) -> None:
        self.world = world

    async def CommunityNotice(self, request: Any, context: Any) -> Any:
        self.world.saw("CommunityNotice", request)
        refused = self.world.community_notices_refused.get(request.scope_id)
        if refused is not None:
            await context.abort(refused, f"community {request.scope_id}: {refused.name.lower()}")
        return scoring_pb2.Report(scope="community", scope_id=request.scope_id, quarter=request.quarter,
                                  rule_set_version="2026.1", summary=scoring_pb2.Summary(
                                      members_active=3, services_completed=5, hours=7.5, satisfaction_rate=0.9),
                                  ranking=[scoring_pb2.RankedMember(rank=1, member_id="m-1", points=30, stars=4),
                                           scoring_pb2.RankedMember(rank=2, member_id="m-2", points=20, stars=3)],
                                  published=True)

    async def UnitReport(self, request: Any, context: Any) -> Any:
        self.world.saw("UnitReport", request)
        counts = self.world.unit_reports_in_flight
        counts[0] += 1
        counts[1] = max(counts)
        try:
            await asyncio.sleep(self.world.unit_report_seconds)
        finally:
            counts[0] -= 1
        found = self.world.unit_reports.get(request.scope_id, grpc.StatusCode.NOT_FOUND)
        if isinstance(found, grpc.StatusCode):
            await context.abort(found, f"unit {request.scope_id}: {found.name.lower()}")
        return scoring_pb2.Report(scope="unit", scope_id=request.scope_id, quarter=request.quarter,
                                  rule_set_version="2026.1", summary=found)

    async def GetMemberLedger(self, request: Any, context: Any) -> Any:
        self.world.saw("GetMemberLedger", request)
        return scoring_pb2.MemberLedger(member_id=request.member_id, stars=3, entries=[
            scoring_pb2.LedgerEntry(entry_id="e1", points=10, rule="service_completed", quarter="2026Q4",
                                    occurred_at="2026-11-02T10:00:00Z")],
            totals=[scoring_pb2.Total(period="2026Q4", points=10)])


class StaticIdentity:
    def __init__(self, issuer: Any) -> None:
        self.issuer = issuer

    def token(self) -> str:
        return self.issuer.token("service-account-sandan-gateway", ["service_gateway"], azp="sandan-gateway")


@dataclass
class Gateway:
    client: httpx.AsyncClient
    world: World
    store: SessionStore
    issuer: Any
    hub: Hub

    def sign_in(self, roles: list[str], subject: str | None = None, **claims: str) -> Session:
        """A session for a person with these roles and places (as the callback would open it); `subject`: the same
        person again (a new session: another device, or after signing out)."""
        token = self.issuer.token(subject or f"sub-{uuid.uuid4().hex[:8]}", roles, **claims)
        decoded = jwt.decode(token, options={"verify_signature": False})
        session = self.store.create(Session(access_token=token, refresh_token="r", access_expires_at=time.time() + 300,
                                            claims=decoded))
        self.client.cookies.set(SESSION_COOKIE, session.session_id)
        return session


@pytest.fixture
async def gateway(local_issuer: Any, tmp_path: Any) -> AsyncIterator[Gateway]:
    world = World()
    server = grpc.aio.server(interceptors=local_issuer.guards())
    intake_pb2_grpc.add_IntakeServicer_to_server(FakeIntake(world), server)
    dispatch_pb2_grpc.add_DispatchServicer_to_server(FakeDispatch(world), server)
    scoring_pb2_grpc.add_ScoringServicer_to_server(FakeScoring(world), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    address = f"127.0.0.1:{port}"
    settings = Settings(session_secret="x" * 40, web_client_secret="s", session_url=f"sqlite:///{tmp_path}/s.db",
                        live="off")
    backend = Backend({k: address for k in ("intake", "dispatch", "scoring", "notify")}, None,
                      StaticIdentity(local_issuer), timeout=5)
    store = SessionStore(settings.session_url)
    verifier = local_issuer.guards()[0].verifier
    auth = Auth(local_issuer.url, "sandan-web", "s", verifier, store, settings.public_url, False)
    hub = Hub()
    partners = Partners([Partner("hotline", __import__("hashlib").sha256(PARTNER_KEY.encode()).hexdigest(),
                                 frozenset({"c1"}))])
    app = create_app(settings, backend, auth, Directory.parse(PLACES), partners, None, hub)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
        yield Gateway(client, world, store, local_issuer, hub)
    await backend.close()
    await server.stop(0)
    store.close()


# ---- the gateway against the real Keycloak ---------------------------------------------------------------------------
REALM_FILE = Path(__file__).resolve().parents[3] / "deploy" / "local" / "keycloak" / "sandan-realm.json"


class ToApp(httpx.AsyncBaseTransport):
    """What is addressed to the gateway's public address goes to the app in-process, everything else (Keycloak)
    over the network. Browsers send `Secure` cookies back to http://127.0.0.1 (Keycloak sets its login cookies
    so), http.cookiejar does not: the flag is dropped from Keycloak's answers."""

    def __init__(self, app: Any, public_url: str) -> None:
        self.public = urlsplit(public_url)
        self.app = httpx.ASGITransport(app=app)
        self.net = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if (request.url.host, request.url.port) == (self.public.hostname, self.public.port):
            return await self.app.handle_async_request(request)
        response = await self.net.handle_async_request(request)
        if "set-cookie" not in response.headers:
            return response
        headers = [(k, re.sub(rb";\s*Secure", b"", v, flags=re.IGNORECASE) if k.lower() == b"set-cookie" else v)
                   for k, v in response.headers.raw]
        return httpx.Response(response.status_code, headers=headers, stream=response.stream,
                              extensions=response.extensions)

    async def aclose(self) -> None:
        await self.net.aclose()
        await self.app.aclose()


@dataclass
class OidcGateway:
    client: httpx.AsyncClient  # a browser: the gateway at its public address, Keycloak as addressed
    auth: Auth


@pytest.fixture
def oidc_gateway() -> Callable[[str, str], contextlib.AbstractAsyncContextManager[OidcGateway]]:
    """`async with oidc_gateway(issuer, discovery_url) as gw:` the gateway in-process, built from OidcSettings as
    __main__ builds it, signing people in through the local realm's web client."""

    @contextlib.asynccontextmanager
    async def start(issuer: str, discovery_url: str) -> AsyncIterator[OidcGateway]:
        oidc = OidcSettings(issuer=issuer, discovery_url=discovery_url, jwks_url="", ca_file="")
        settings = Settings(session_secret="x" * 40, web_client_secret="local-web-secret", session_url="memory://",
                            live="off")
        store = SessionStore(settings.session_url)
        auth = Auth(oidc.issuer, settings.web_client_id, settings.web_secret(), oidc.verifier(), store,
                    settings.public_url, False, discovery_url=oidc.discovery_url, verify_tls=oidc.verify_tls())
        backend = Backend({k: "127.0.0.1:1" for k in ("intake", "dispatch", "scoring", "notify")}, None, None,
                          timeout=1)
        app = create_app(settings, backend, auth, Directory.parse(PLACES), Partners([]), None, Hub())
        try:
            async with httpx.AsyncClient(transport=ToApp(app, settings.public_url), base_url=settings.public_url,
                                         timeout=30) as client:
                yield OidcGateway(client, auth)
        finally:
            await backend.close()
            store.close()

    return start
