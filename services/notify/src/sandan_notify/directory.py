"""notify's own read model of the roster and the orders (from dispatch.roster.v1, dispatch.orders.v1 and
intake.demands.v1), and the office directory from its configuration file.

The read model is plain SQL rows updated by idempotent upserts: applying a fact twice (a crash between this
write and the inbox's tracking record) leaves the same rows. It holds ids only, never contact details.
"""

from __future__ import annotations

import logging
import os
import threading
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Boolean, Column, MetaData, String, Table, and_, delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine

from sandan_contracts import Event
from sandan_contracts.events import (
    DemandPosted,
    MemberLeft,
    MemberReported,
    OrderAccepted,
    OrderCancelled,
    OrderDeclined,
    OrderDispatched,
    OrderOpened,
    TeamJoined,
    UnitReported,
)
from sandan_notify.routing import OrderInfo

log = logging.getLogger(__name__)

metadata = MetaData()
members = Table(
    "notify_members", metadata,
    Column("member_id", String(64), primary_key=True),
    Column("community_id", String(64), nullable=False, index=True),
    Column("unit_id", String(64), nullable=False),
    Column("grid_id", String(64), nullable=False, index=True),
    Column("active", Boolean, nullable=False),
)
member_teams = Table(
    "notify_member_teams", metadata,
    Column("member_id", String(64), primary_key=True),
    Column("team", String(40), primary_key=True),
    Column("community_id", String(64), nullable=False, index=True),
)
units = Table(
    "notify_units", metadata,
    Column("unit_id", String(64), primary_key=True),
    Column("community_id", String(64), nullable=False, index=True),
)
orders = Table(
    "notify_orders", metadata,
    Column("order_id", String(64), primary_key=True),
    Column("demand_id", String(64), nullable=False),
    Column("community_id", String(64), nullable=False),
    Column("grid_id", String(64), nullable=False),
    Column("category", String(40), nullable=False),
    Column("urgency", String(10), nullable=False),
    Column("member_id", String(64), nullable=True),
)
demands = Table(
    "notify_demands", metadata,
    Column("demand_id", String(64), primary_key=True),
    Column("community_id", String(64), nullable=False),
    Column("grid_id", String(64), nullable=False),
)


def upsert(engine: Engine, conn: Any, table: Table, values: dict[str, Any], keys: list[str]) -> None:
    insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(table).values(**values)
    changes = {k: v for k, v in values.items() if k not in keys}
    stmt = stmt.on_conflict_do_update(index_elements=keys, set_=changes) if changes else \
        stmt.on_conflict_do_nothing(index_elements=keys)
    conn.execute(stmt)


class Directory:
    """Members (grid, teams, active), units, orders and demands by id: enough to route, nothing personal."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        metadata.create_all(engine)

    def apply(self, event: Event) -> None:
        with self.engine.begin() as conn:
            if isinstance(event, MemberReported):
                upsert(self.engine, conn, members, {
                    "member_id": event.member_id, "community_id": event.community_id, "unit_id": event.unit_id,
                    "grid_id": event.grid_id, "active": True}, ["member_id"])
                conn.execute(delete(member_teams).where(member_teams.c.member_id == event.member_id))
                for team in dict.fromkeys(event.teams):
                    upsert(self.engine, conn, member_teams, {"member_id": event.member_id, "team": team,
                                                             "community_id": event.community_id},
                           ["member_id", "team"])
            elif isinstance(event, TeamJoined):
                upsert(self.engine, conn, member_teams, {"member_id": event.member_id, "team": event.team,
                                                         "community_id": event.community_id}, ["member_id", "team"])
            elif isinstance(event, MemberLeft):
                conn.execute(update(members).where(members.c.member_id == event.member_id).values(active=False))
            elif isinstance(event, UnitReported):
                upsert(self.engine, conn, units, {"unit_id": event.unit_id, "community_id": event.community_id},
                       ["unit_id"])
            elif isinstance(event, DemandPosted):
                upsert(self.engine, conn, demands, {"demand_id": event.demand_id,
                                                    "community_id": event.community_id,
                                                    "grid_id": event.grid_id}, ["demand_id"])
            elif isinstance(event, OrderOpened):
                upsert(self.engine, conn, orders, {
                    "order_id": event.order_id, "demand_id": event.demand_id, "community_id": event.community_id,
                    "grid_id": event.grid_id, "category": event.category, "urgency": event.urgency,
                    "member_id": None}, ["order_id"])
            elif isinstance(event, OrderDispatched | OrderAccepted):
                conn.execute(update(orders).where(orders.c.order_id == event.order_id)
                             .values(member_id=event.member_id))
            elif isinstance(event, OrderDeclined | OrderCancelled):
                conn.execute(update(orders).where(orders.c.order_id == event.order_id).values(member_id=None))

    # ---- the routing view ------------------------------------------------------------------------
    def order(self, order_id: str) -> OrderInfo | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(orders.c.order_id, orders.c.demand_id, orders.c.community_id,
                                      orders.c.grid_id, orders.c.category, orders.c.urgency, orders.c.member_id)
                               .where(orders.c.order_id == order_id)).first()
        return OrderInfo(*row) if row else None

    def demand_community(self, demand_id: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(demands.c.community_id).where(demands.c.demand_id == demand_id)).scalar()

    def members_for_offer(self, community_id: str | None, grid_id: str, teams: list[str]) -> list[str]:
        in_team = select(member_teams.c.member_id).where(member_teams.c.team.in_(teams or [""]))
        if community_id:
            in_team = in_team.where(member_teams.c.community_id == community_id)
        where = and_(members.c.active.is_(True), or_(members.c.grid_id == grid_id, members.c.member_id.in_(in_team)))
        if community_id:
            where = and_(where, members.c.community_id == community_id)
        with self.engine.connect() as conn:
            return list(conn.execute(select(members.c.member_id).where(where).order_by(members.c.member_id)).scalars())

    def units_of(self, community_id: str) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(units.c.unit_id).where(units.c.community_id == community_id)
                                     .order_by(units.c.unit_id)).scalars())


# ---- offices: branch secretaries, towns, the county (configuration file) ---------------------------
@dataclass(frozen=True)
class Office:
    kind: str  # branch | town | county
    office_id: str
    name: str
    email: str = ""
    phone: str = ""
    wechat_openid: str = ""
    webhook_url: str = ""
    channels: tuple[str, ...] = ()
    town: str = ""  # branch offices: the community's town


@dataclass
class _OfficeBook:
    county: Office | None = None
    towns: dict[str, Office] = field(default_factory=dict)
    branches: dict[str, Office] = field(default_factory=dict)


def _office(kind: str, office_id: str, raw: dict[str, Any]) -> Office:
    return Office(kind=kind, office_id=office_id, name=str(raw.get("name", office_id)),
                  email=str(raw.get("email", "")), phone=str(raw.get("phone", "")),
                  wechat_openid=str(raw.get("wechat_openid", "")), webhook_url=str(raw.get("webhook_url", "")),
                  channels=tuple(raw.get("channels", ())), town=str(raw.get("town", "")))


def parse_offices(text: str) -> _OfficeBook:
    """Parse the TOML office directory (format in the README); raises ValueError when malformed."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"offices file is not valid TOML: {exc}") from None
    book = _OfficeBook()
    if "county" in raw:
        county = raw["county"]
        if "id" not in county:
            raise ValueError("[county] needs an id")
        book.county = _office("county", str(county["id"]), county)
    for town_id, town in raw.get("towns", {}).items():
        book.towns[town_id] = _office("town", town_id, town)
    for community_id, branch in raw.get("communities", {}).items():
        book.branches[community_id] = _office("branch", community_id, branch)
    return book


class Offices:
    """The office directory from a TOML file, re-read when the file changes (no restart to add a community)."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path else None
        self._lock = threading.Lock()
        self._stamp: tuple[float, int] | None = None
        self._book = _OfficeBook()
        self._load()

    def _load(self) -> _OfficeBook:
        if self.path is None:
            return self._book
        with self._lock:
            try:
                stat = os.stat(self.path)
            except FileNotFoundError:
                log.error("offices file is missing", extra={"fields": {"path": str(self.path)}})
                return self._book
            stamp = (stat.st_mtime, stat.st_size)
            if stamp != self._stamp:
                try:
                    self._book = parse_offices(self.path.read_text(encoding="utf-8"))
                    self._stamp = stamp
                except ValueError:
                    if self._stamp is None:
                        raise
                    log.exception("offices file is malformed; keeping the previous directory")
            return self._book

    def branch(self, community_id: str) -> Office | None:
        book = self._load()
        office = book.branches.get(community_id) or book.branches.get("*")
        if office is not None and office.office_id == "*":  # the catch-all entry answers for the community
            office = Office(**{**office.__dict__, "office_id": community_id})
        return office

    def town_of(self, community_id: str) -> str | None:
        branch = self.branch(community_id)
        return branch.town if branch and branch.town else None

    def town(self, town_id: str) -> Office | None:
        return self._load().towns.get(town_id)

    def county(self) -> Office | None:
        return self._load().county

    def county_id(self) -> str | None:
        county = self.county()
        return county.office_id if county else None

    def office(self, kind: str, office_id: str) -> Office | None:
        if kind == "branch":
            return self.branch(office_id)
        if kind == "town":
            return self.town(office_id)
        if kind == "county":
            county = self.county()
            return county if county and county.office_id == office_id else None
        return None
