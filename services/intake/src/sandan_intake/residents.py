"""Residents' personal data: name, phone, address (and optionally e-mail and WeChat openid, for notify).
Kept in intake's own tables and never published.

Plain SQLAlchemy rows rather than events on purpose: personal data must be correctable and erasable,
which an append-only event log is not. Events elsewhere carry only the opaque `resident_id`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Column, DateTime, MetaData, String, Table, insert, inspect, select, text
from sqlalchemy.exc import IntegrityError

from sandan_eventbus.checks import check_email, check_id, check_openid, check_phone, check_text, quote
from sandan_eventbus.errors import AlreadyExists, NotFound
from sandan_eventbus.sql import engine_for

metadata = MetaData()
residents = Table(
    "intake_residents",
    metadata,
    Column("resident_id", String(36), primary_key=True),
    Column("community_id", String(64), nullable=False, index=True),
    Column("name", String(100), nullable=False),
    Column("phone", String(30), nullable=False),
    Column("address", String(200), nullable=False),
    Column("registered_at", DateTime(timezone=True), nullable=False),
    # Optional ways to reach the resident (notify reads them through the authorised GetDemandContact).
    Column("email", String(254), nullable=True),
    Column("wechat_openid", String(64), nullable=True),
)
# Columns added after the table's first release: created on start in stores that predate them.
_ADDED_COLUMNS = {"email": "VARCHAR(254)", "wechat_openid": "VARCHAR(64)"}


@dataclass(frozen=True)
class Resident:
    resident_id: str
    community_id: str
    name: str
    phone: str
    address: str
    email: str | None = None
    wechat_openid: str | None = None


def _optional(field: str, value: str | None, check: Callable[[str, str], str]) -> str | None:
    value = (value or "").strip()
    return check(field, value) if value else None


class ResidentStore:
    def __init__(self, url: str = "memory://") -> None:
        self.engine = engine_for(url)
        metadata.create_all(self.engine)
        self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        present = {c["name"] for c in inspect(self.engine).get_columns(residents.name)}
        with self.engine.begin() as conn:
            for column, ddl in _ADDED_COLUMNS.items():
                if column not in present:
                    conn.execute(text(f"ALTER TABLE {residents.name} ADD COLUMN {column} {ddl}"))

    def register(self, community_id: str, name: str, phone: str, address: str, *,
                 email: str | None = None, wechat_openid: str | None = None,
                 resident_id: str | None = None) -> Resident:
        """A new record: under `resident_id` (a resident's own account) or a fresh uuid. AlreadyExists when the
        id has a record already."""
        resident = Resident(
            resident_id=resident_id or str(uuid.uuid4()),
            community_id=check_id("community_id", community_id),
            name=check_text("name", name, 1, 100),
            phone=check_phone("phone", (phone or "").strip()),
            address=check_text("address", address, 1, 200),
            email=_optional("email", email, check_email),
            wechat_openid=_optional("wechat_openid", wechat_openid, check_openid),
        )
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(residents).values(
                    resident_id=resident.resident_id, community_id=resident.community_id, name=resident.name,
                    phone=resident.phone, address=resident.address, registered_at=datetime.now(UTC),
                    email=resident.email, wechat_openid=resident.wechat_openid,
                ))
        except IntegrityError:  # the primary key: this resident id is registered already
            raise AlreadyExists(f"resident {resident.resident_id} is already registered") from None
        return resident

    def get(self, resident_id: str) -> Resident:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(residents.c.resident_id, residents.c.community_id, residents.c.name,
                       residents.c.phone, residents.c.address, residents.c.email, residents.c.wechat_openid)
                .where(residents.c.resident_id == resident_id)
            ).first()
        if row is None:
            raise NotFound(f"resident {quote(resident_id)} not found")
        return Resident(*row)

    def close(self) -> None:
        self.engine.dispose()
