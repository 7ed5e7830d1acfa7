"""Members' personal data (name, phone): dispatch's own table, never on a topic.

Kept out of the event store on purpose, so it can be corrected or erased when a member leaves.
"""

from __future__ import annotations

from sqlalchemy import Column, MetaData, String, Table, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from sandan_eventbus.sql import engine_for

metadata = MetaData()
member_contacts = Table(
    "dispatch_member_contacts",
    metadata,
    Column("member_id", String(64), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("phone", String(32), nullable=False),
)


class MemberContacts:
    def __init__(self, url: str) -> None:
        self.engine = engine_for(url)
        metadata.create_all(self.engine)

    def put(self, member_id: str, name: str, phone: str) -> None:
        dialect = self.engine.dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        stmt = insert(member_contacts).values(member_id=member_id, name=name, phone=phone)
        stmt = stmt.on_conflict_do_update(index_elements=["member_id"], set_={"name": name, "phone": phone})
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def get(self, member_id: str) -> tuple[str, str] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(member_contacts.c.name, member_contacts.c.phone)
                               .where(member_contacts.c.member_id == member_id)).first()
        return (row[0], row[1]) if row else None
