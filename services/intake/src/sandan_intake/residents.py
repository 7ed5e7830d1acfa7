"""Residents' personal data: name, phone, address. Kept in intake's own tables and never published.

Plain SQLAlchemy rows rather than events on purpose: personal data must be correctable and erasable,
which an append-only event log is not. Events elsewhere carry only the opaque `resident_id`.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Column, DateTime, MetaData, String, Table, insert, select

from sandan_eventbus.errors import InvalidArgument, NotFound
from sandan_eventbus.sql import engine_for
from sandan_intake.domain import check_id, check_text

_PHONE = re.compile(r"^\+?[0-9][0-9 -]{2,29}$")

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
)


@dataclass(frozen=True)
class Resident:
    resident_id: str
    community_id: str
    name: str
    phone: str
    address: str


class ResidentStore:
    def __init__(self, url: str = "memory://") -> None:
        self.engine = engine_for(url)
        metadata.create_all(self.engine)

    def register(self, community_id: str, name: str, phone: str, address: str) -> Resident:
        phone = (phone or "").strip()
        if not _PHONE.match(phone):
            raise InvalidArgument("phone", "must be 3 to 30 digits, spaces or '-', optionally after '+'")
        resident = Resident(
            resident_id=str(uuid.uuid4()),
            community_id=check_id("community_id", community_id),
            name=check_text("name", name, 1, 100),
            phone=phone,
            address=check_text("address", address, 1, 200),
        )
        with self.engine.begin() as conn:
            conn.execute(insert(residents).values(
                resident_id=resident.resident_id, community_id=resident.community_id, name=resident.name,
                phone=resident.phone, address=resident.address, registered_at=datetime.now(UTC),
            ))
        return resident

    def get(self, resident_id: str) -> Resident:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(residents.c.resident_id, residents.c.community_id, residents.c.name,
                       residents.c.phone, residents.c.address)
                .where(residents.c.resident_id == resident_id)
            ).first()
        if row is None:
            raise NotFound(f"resident {resident_id} not found")
        return Resident(*row)

    def close(self) -> None:
        self.engine.dispose()
