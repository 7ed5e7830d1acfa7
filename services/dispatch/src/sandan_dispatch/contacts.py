"""How to reach members and units: dispatch's own tables, never in the event store, never on a topic.

- `dispatch_member_contacts`: a member's personal data (name, phone, and optionally email and WeChat
  openid). Kept out of the event store on purpose, so it can be corrected or erased when a member leaves.
- `dispatch_unit_contacts`: a unit organisation's addresses (contact email, webhook URL) for its quarterly
  notice. Not personal, but still only served through the authorised contact call.
- `dispatch_public_names`: the display name a member consented to show on the public notice board (公示). A row
  exists only while the consent stands: withdrawing (or leaving) deletes it, so nothing of it remains.

Tables are created with `create_all`; columns added later are added to existing tables at start-up
(`_add_missing_columns`, additive only).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Column, Engine, MetaData, String, Table, delete, inspect, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError

from sandan_eventbus.sql import engine_for

metadata = MetaData()
member_contacts = Table(
    "dispatch_member_contacts",
    metadata,
    Column("member_id", String(64), primary_key=True),
    Column("name", String(100), nullable=False),   # "" when not given
    Column("phone", String(32), nullable=False),   # "" when not given
    Column("email", String(254), nullable=True),
    Column("wechat_openid", String(64), nullable=True),
)
unit_contacts = Table(
    "dispatch_unit_contacts",
    metadata,
    Column("unit_id", String(64), primary_key=True),
    Column("contact_email", String(254), nullable=True),
    Column("webhook_url", String(500), nullable=True),
)

public_names = Table(
    "dispatch_public_names",
    metadata,
    Column("member_id", String(64), primary_key=True),
    Column("public_name", String(20), nullable=False),
)


@dataclass(frozen=True)
class MemberContact:
    name: str
    phone: str
    email: str | None = None
    wechat_openid: str | None = None


@dataclass(frozen=True)
class UnitContact:
    contact_email: str | None = None
    webhook_url: str | None = None


def _columns(engine: Engine, table: Table) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns(table.name)}


def _add_missing_columns(engine: Engine) -> None:
    """Add nullable columns a newer version declares to tables an older version created."""
    for table in metadata.sorted_tables:
        for column in table.columns:
            if column.name in _columns(engine, table):
                continue
            if not column.nullable:
                raise RuntimeError(f"{table.name}.{column.name}: only nullable columns can be added")
            ddl = column.type.compile(dialect=engine.dialect)
            try:
                with engine.begin() as conn:
                    conn.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {ddl}'))
            except DBAPIError:
                if column.name not in _columns(engine, table):
                    raise
                # another replica starting at the same time added it first


class Contacts:
    def __init__(self, url: str) -> None:
        self.engine = engine_for(url)
        metadata.create_all(self.engine)
        _add_missing_columns(self.engine)

    def _upsert(self, table: Table, key: str, values: dict[str, str | None], update: dict[str, str | None]) -> None:
        insert = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        stmt = insert(table).values(**values)
        stmt = stmt.on_conflict_do_update(index_elements=[key], set_=update) if update else \
            stmt.on_conflict_do_nothing(index_elements=[key])
        with self.engine.begin() as conn:
            conn.execute(stmt)

    # ---- members -------------------------------------------------------------------------------
    def put_member(self, member_id: str, name: str, phone: str, email: str | None = None,
                   wechat_openid: str | None = None) -> None:
        """Set a member's contact (every field: what is not given is erased)."""
        row = {"name": name, "phone": phone, "email": email or None, "wechat_openid": wechat_openid or None}
        self._upsert(member_contacts, "member_id", {"member_id": member_id, **row}, row)

    def member(self, member_id: str) -> MemberContact | None:
        t = member_contacts
        with self.engine.connect() as conn:
            row = conn.execute(select(t.c.name, t.c.phone, t.c.email, t.c.wechat_openid)
                               .where(t.c.member_id == member_id)).first()
        return MemberContact(*row) if row else None

    # ---- units ---------------------------------------------------------------------------------
    def put_unit(self, unit_id: str, contact_email: str | None = None, webhook_url: str | None = None) -> None:
        """Set the given addresses of a unit; an address not given keeps its stored value."""
        given = {k: v for k, v in (("contact_email", contact_email), ("webhook_url", webhook_url)) if v}
        self._upsert(unit_contacts, "unit_id", {"unit_id": unit_id, **given}, given)

    def unit(self, unit_id: str) -> UnitContact | None:
        t = unit_contacts
        with self.engine.connect() as conn:
            row = conn.execute(select(t.c.contact_email, t.c.webhook_url).where(t.c.unit_id == unit_id)).first()
        return UnitContact(*row) if row else None

    # ---- public names (a member's consent to be named on the notice board) ------------------------------
    def put_public_name(self, member_id: str, public_name: str) -> None:
        row = {"public_name": public_name}
        self._upsert(public_names, "member_id", {"member_id": member_id, **row}, row)

    def remove_public_name(self, member_id: str) -> bool:
        """Withdraw the consent: the row goes. True when there was one."""
        with self.engine.begin() as conn:
            return conn.execute(delete(public_names).where(public_names.c.member_id == member_id)).rowcount > 0

    def public_names(self, member_ids: Iterable[str]) -> dict[str, str]:
        """The public names of those of these members who consented."""
        wanted = list(dict.fromkeys(member_ids))
        if not wanted:
            return {}
        t = public_names
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.c.member_id, t.c.public_name).where(t.c.member_id.in_(wanted))).all()
        return {member_id: name for member_id, name in rows}
