"""Open311 GeoReport v2 (JSON) on the same edge, for partner systems (the 12345 hotline, a civil-affairs system).

- `discovery.json`; `services.json?jurisdiction_id=<community>` (the community's service menu, plus `other`);
  `services/<code>.json`; `requests.json` POST (a demand on behalf of a caller) and GET; `requests/<id>.json`.
- `jurisdiction_id` is a community id and is required. Writes need an `api_key` (GATEWAY_OPEN311_KEYS_FILE: each
  key bound to a partner name and the communities it may post in); reads are public, like FixMyStreet's.
- The gateway calls the services as itself (`sandan-gateway`, role service_gateway), never as the partner.
- A request's `service_code` is the code it was filed under (the menu item, or `other`), in the answers and in
  the `service_code` filter alike (see `service_codes`). GET `requests.json` is keyless, so its work is capped:
  MAX_REQUESTS a page, order histories read only for the orders returned (plus HISTORY_SLACK at most).
- Personal data never appears in an answer: no name, phone, address, coordinates, description or comment; a
  request's status (open/closed) and status notes come from dispatch's order.
- Errors are GeoReport's own shape: `[{"code": 400, "description": "..."}]`.

Keys file (TOML): `[partners.hotline12345] key_sha256 = "<hex>"` (or `key = "..."` for local runs only),
`jurisdictions = ["chengjiang-xinqu", ...]` (or `["*"]`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import tomllib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import grpc
from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import JSONResponse

from sandan_contracts.rpc import dispatch_pb2, intake_pb2
from sandan_eventbus.config import ConfigError
from sandan_gateway.backend import Backend, Refused
from sandan_gateway.models import most
from sandan_gateway.places import Directory

SPEC = "http://wiki.open311.org/GeoReport_v2"
OTHER = "other"
MAX_REQUESTS = 50  # the cap on a listing (GeoReport lets a server limit it; FixMyStreet caps too)
HISTORY_SLACK = 20  # order histories a listing may read beyond MAX_REQUESTS (for those its dates then exclude)
DEFAULT_DAYS = 90
OPEN_STATES = ("open", "dispatched", "offered", "accepted")
NOTES = {
    "open": "received; waiting for the community to dispatch",
    "dispatched": "dispatched to a party member",
    "offered": "offered to the community's volunteers",
    "accepted": "accepted by a party member",
    "completed": "service completed",
    "cancelled": "withdrawn",
}


class GeoError(Exception):
    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code, self.description = code, description


def error_response(code: int, description: str) -> JSONResponse:
    return JSONResponse([{"code": code, "description": description}], status_code=code)


@dataclass(frozen=True)
class Partner:
    name: str
    key_sha256: str
    jurisdictions: frozenset[str]

    def may_post_in(self, community_id: str) -> bool:
        return "*" in self.jurisdictions or community_id in self.jurisdictions


class Partners:
    def __init__(self, partners: list[Partner]) -> None:
        self.partners = partners

    @classmethod
    def from_file(cls, path: str) -> Partners:
        if not path:
            return cls([])
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"GATEWAY_OPEN311_KEYS_FILE: {exc}") from None
        found = []
        for name, entry in (data.get("partners") or {}).items():
            digest = entry.get("key_sha256") or (hashlib.sha256(entry["key"].encode()).hexdigest()
                                                  if entry.get("key") else "")
            if not digest or not entry.get("jurisdictions"):
                raise ConfigError(f"GATEWAY_OPEN311_KEYS_FILE: partner {name} needs key_sha256 and jurisdictions")
            found.append(Partner(str(name), str(digest).lower(), frozenset(map(str, entry["jurisdictions"]))))
        return cls(found)

    def by_key(self, api_key: str) -> Partner | None:
        digest = hashlib.sha256(api_key.encode()).hexdigest()
        for partner in self.partners:
            if hmac.compare_digest(digest, partner.key_sha256):
                return partner
        return None


router = APIRouter(prefix="/open311/v2", tags=["Open311 GeoReport v2"])


def _state(request: Request) -> tuple[Backend, Directory, Partners]:
    s = request.app.state
    return s.backend, s.directory, s.partners


def _jurisdiction(directory: Directory, jurisdiction_id: str | None) -> str:
    if not jurisdiction_id:
        raise GeoError(400, "jurisdiction_id is required (a community id)")
    if directory.communities and jurisdiction_id not in directory.communities:
        raise GeoError(404, f"jurisdiction_id {jurisdiction_id} is not a community of this county")
    return jurisdiction_id


async def _gateway(backend: Backend, method: Any, request: Any) -> Any:
    try:
        return await backend.as_gateway(method, request)
    except Refused as exc:
        code = {grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.NOT_FOUND: 404,
                grpc.StatusCode.PERMISSION_DENIED: 403, grpc.StatusCode.FAILED_PRECONDITION: 400,
                grpc.StatusCode.ALREADY_EXISTS: 400}.get(exc.code, 503)
        raise GeoError(code, exc.message) from None


@router.get("/discovery.json")
async def discovery(request: Request) -> dict[str, Any]:
    base = request.app.state.settings.public_url
    return {"changeset": "2026-12-01T00:00:00Z", "contact": "the county party committee's organisation department",
            "key_service": "ask the county office for an API key (bound to your organisation and communities)",
            "endpoints": [{"specification": SPEC, "url": f"{base}/open311/v2", "changeset": "2026-12-01T00:00:00Z",
                           "type": "production", "formats": ["application/json"]}]}


def _service(item_id: str, title: str, category: str, community: str) -> dict[str, Any]:
    return {"service_code": item_id, "service_name": title, "description": title, "metadata": False,
            "type": "realtime", "keywords": category, "group": community}


@router.get("/services.json")
async def services(request: Request, jurisdiction_id: str | None = None) -> Any:
    backend, directory, _ = _state(request)
    community = _jurisdiction(directory, jurisdiction_id)
    menu = await _gateway(backend, backend.intake.ListMenu, intake_pb2.ListMenuRequest(community_id=community))
    name = directory.name_of(community)
    found = [_service(i.item_id, i.title, i.category, name) for i in menu.items if not i.retired]
    found.append(_service(OTHER, "其他 (other)", OTHER, name))
    return found


@router.get("/services/{service_code}.json")
async def service_definition(request: Request, service_code: str, jurisdiction_id: str | None = None) -> Any:
    backend, directory, _ = _state(request)
    community = _jurisdiction(directory, jurisdiction_id)
    if service_code != OTHER:
        menu = await _gateway(backend, backend.intake.ListMenu, intake_pb2.ListMenuRequest(community_id=community))
        if not any(i.item_id == service_code and not i.retired for i in menu.items):
            raise GeoError(404, f"service_code {service_code} is not on this community's menu")
    # No extra attributes are required; `attribute[grid_id]` may name the grid.
    return {"service_code": service_code, "attributes": []}


@router.post("/requests.json")
async def post_request(
    request: Request,
    api_key: Annotated[str, Form()] = "", jurisdiction_id: Annotated[str, Form()] = "",
    service_code: Annotated[str, Form()] = "", description: Annotated[str, Form(max_length=most("description"))] = "",
    lat: Annotated[str, Form()] = "", long: Annotated[str, Form()] = "",
    address_string: Annotated[str, Form(max_length=most("address"))] = "", address_id: Annotated[str, Form()] = "",
    first_name: Annotated[str, Form(max_length=50)] = "", last_name: Annotated[str, Form(max_length=50)] = "",
    phone: Annotated[str, Form(max_length=most("phone"))] = "",
    email: Annotated[str, Form(max_length=most("email"))] = "",
    device_id: Annotated[str, Form(max_length=64)] = "", account_id: Annotated[str, Form(max_length=64)] = "",
    media_url: Annotated[str, Form(max_length=500)] = "",
) -> Any:
    backend, directory, partners = _state(request)
    partner = partners.by_key(api_key) if api_key else None
    if partner is None:
        raise GeoError(403, "a valid api_key is required to post requests")
    community = _jurisdiction(directory, jurisdiction_id)
    if not partner.may_post_in(community):
        raise GeoError(403, f"this api_key may not post in {community}")
    if not service_code:
        raise GeoError(400, "service_code is required")
    if not (address_string or address_id or (lat and long)):
        raise GeoError(400, "a location is required: lat and long, address_string or address_id")
    name = f"{last_name}{first_name}".strip()
    if not name or not phone:
        raise GeoError(400, "first_name or last_name, and phone, are required (the member who serves calls back)")
    if service_code == OTHER and not description.strip():
        raise GeoError(400, "description is required for service_code other")
    form = await request.form()
    grid = str(form.get("attribute[grid_id]", "") or "")
    place = directory.communities.get(community)
    grid = grid or (place.grids[0] if place and place.grids else "unassigned")
    address = address_string or address_id or f"{lat},{long}"
    resident = await _gateway(backend, backend.intake.RegisterResident, intake_pb2.RegisterResidentRequest(
        community_id=community, name=name, phone=phone, address=address, email=email))
    # A retry with the same device_id + account_id posts once (intake's idempotency key).
    key = f"open311:{partner.name}:{device_id}:{account_id}" if device_id else f"open311:{uuid.uuid4()}"
    demand = await _gateway(backend, backend.intake.PostDemand, intake_pb2.PostDemandRequest(
        client_request_id=key[:100], resident_id=resident.resident_id, community_id=community, grid_id=grid,
        menu_item_id="" if service_code == OTHER else service_code,
        other_text=description[:100] if service_code == OTHER else "", description=description,
        urgency="normal", channel="hotline"))
    return [{"service_request_id": demand.demand_id, "service_notice": "received; the community will dispatch it",
             "account_id": None}]


def service_codes(menu: intake_pb2.Menu) -> dict[str, str]:
    """category -> the service_code a request of that category was filed under. dispatch's order carries the
    category, not the menu item (and the gateway may not read intake's demand): a category with one item on the
    community's menu (retired ones included) names that item; `other` is reserved for demands off the menu; a
    category several items share cannot be told apart and stays the category's code."""
    items: dict[str, list[str]] = {}
    for item in menu.items:
        items.setdefault(item.category, []).append(item.item_id)
    codes = {category: ids[0] for category, ids in items.items() if len(ids) == 1}
    codes[OTHER] = OTHER
    return codes


async def _codes(backend: Backend, community: str) -> dict[str, str]:
    return service_codes(await _gateway(backend, backend.intake.ListMenu,
                                        intake_pb2.ListMenuRequest(community_id=community)))


def _code(codes: dict[str, str], order: dispatch_pb2.Order) -> str:
    return codes.get(order.category, order.category)


def _status(order: dispatch_pb2.Order) -> str:
    return "open" if order.status in OPEN_STATES else "closed"


async def _history(backend: Backend, order: dispatch_pb2.Order) -> list[str]:
    history = await _gateway(backend, backend.dispatch.GetOrderHistory, dispatch_pb2.OrderRef(order_id=order.order_id))
    return [e.at for e in history.entries if e.at]


def _request_view(directory: Directory, order: dispatch_pb2.Order, code: str, times: list[str]) -> dict[str, Any]:
    notes = NOTES.get(order.status, order.status)
    if order.level in ("town", "county") and order.status in OPEN_STATES:
        notes += f"; escalated to the {order.level}"
    return {
        "service_request_id": order.demand_id, "status": _status(order),
        "status_notes": notes, "service_name": order.category, "service_code": code,
        "description": None, "agency_responsible": directory.name_of(order.community_id),
        "service_notice": None, "requested_datetime": times[0] if times else None,
        "updated_datetime": times[-1] if times else None, "expected_datetime": order.due_at or None,
        "address": None, "address_id": None, "zipcode": None, "lat": None, "long": None, "media_url": None,
    }


def _parse_date(name: str, value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise GeoError(400, f"{name} must be a W3C datetime like 2026-12-01T00:00:00Z") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@router.get("/requests.json", description=(
    f"The jurisdiction's requests, newest first (by default of the last {DEFAULT_DAYS} days). At most {MAX_REQUESTS} "
    f"a page: a larger max_requests is cut to {MAX_REQUESTS}. With service_request_id the other filters do not apply."))
async def get_requests(
    request: Request, jurisdiction_id: str | None = None, service_request_id: str | None = None,
    service_code: str | None = None, start_date: str | None = None, end_date: str | None = None,
    status: str | None = None, max_requests: Annotated[int | None, Query()] = None,
) -> Any:
    # Public and keyless, so the work is bounded: every filter the order list can answer (status, service_code,
    # and start_date against the deadline: an order due before it was opened before it) is applied before any
    # order's history is read; histories are read only for as many orders as are still to be returned, at most
    # MAX_REQUESTS + HISTORY_SLACK in all (requested_datetime, which the date filters need, is in the history).
    backend, directory, _ = _state(request)
    community = _jurisdiction(directory, jurisdiction_id)
    start, end = _parse_date("start_date", start_date), _parse_date("end_date", end_date)
    statuses = {s.strip() for s in (status or "").split(",") if s.strip()}
    if statuses - {"open", "closed"}:
        raise GeoError(400, "status must be open, closed or both (comma-separated)")
    wanted = {c.strip() for c in (service_code or "").split(",") if c.strip()}
    limit = min(max(max_requests or MAX_REQUESTS, 1), MAX_REQUESTS)
    codes = await _codes(backend, community)
    if service_request_id:
        ids = [i.strip() for i in service_request_id.split(",") if i.strip()][:MAX_REQUESTS]
        orders = []
        for demand_id in ids:
            try:
                found = await _gateway(backend, backend.dispatch.FindOrderByDemand,
                                       dispatch_pb2.DemandRef(demand_id=demand_id))
            except GeoError as exc:
                if exc.code in (400, 404):
                    continue  # an unknown id is simply not in the answer
                raise
            if found.community_id == community:
                orders.append(found)
        histories = await asyncio.gather(*(_history(backend, o) for o in orders))
        # the other filters do not apply when ids are given (GeoReport v2)
        return [_request_view(directory, o, _code(codes, o), times) for o, times in zip(orders, histories, strict=True)]
    listed = await _gateway(backend, backend.dispatch.ListOrders, dispatch_pb2.ListOrdersRequest(
        community_id=community))
    if not start and not end:
        start = datetime.now(UTC) - timedelta(days=DEFAULT_DAYS)
    candidates = [o for o in reversed(listed.orders)  # the newest first
                  if (not wanted or _code(codes, o) in wanted) and (not statuses or _status(o) in statuses)
                  and not (start and o.due_at and _before(o.due_at, start))]
    views: list[dict[str, Any]] = []
    budget = MAX_REQUESTS + HISTORY_SLACK
    while candidates and len(views) < limit and budget > 0:
        batch = candidates[:min(limit - len(views), budget)]  # no more than are still wanted
        candidates, budget = candidates[len(batch):], budget - len(batch)
        for order, times in zip(batch, await asyncio.gather(*(_history(backend, o) for o in batch)), strict=True):
            requested = _parse_date("requested_datetime", times[0]) if times else None
            if requested and ((start and requested < start) or (end and requested > end)):
                continue
            views.append(_request_view(directory, order, _code(codes, order), times))
    return views[:limit]


def _before(at: str, moment: datetime) -> bool:
    try:
        return _parse_date("due_at", at) < moment  # type: ignore[operator]
    except GeoError:
        return False  # not a time: keep it, the history decides


@router.get("/requests/{service_request_id}.json")
async def get_request(request: Request, service_request_id: str, jurisdiction_id: str | None = None) -> Any:
    backend, directory, _ = _state(request)
    community = _jurisdiction(directory, jurisdiction_id)
    order = await _gateway(backend, backend.dispatch.FindOrderByDemand,
                           dispatch_pb2.DemandRef(demand_id=service_request_id))
    if order.community_id != community:
        raise GeoError(404, f"request {service_request_id} not found in {community}")
    codes = await _codes(backend, community)
    return [_request_view(directory, order, _code(codes, order), await _history(backend, order))]
