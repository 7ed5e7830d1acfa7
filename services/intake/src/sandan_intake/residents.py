"""Residents' personal data: name, phone, address (and optionally e-mail and WeChat openid, for notify), kept in
intake's own tables, sealed under the resident's own data key (crypto.py, keys.py), never published.

SQL rows rather than events on purpose: personal data must be correctable and erasable. The table holds ciphertext
only (`*_sealed`); the plaintext columns of the table's first release stay empty, and rows written before
encryption are sealed when the store opens. Erasure destroys the resident's data keys (theirs and their demands')
and clears the sealed columns in one transaction; the row stays with its community, so the resident's demands keep
their scope and read as "erased". On SQLite, deleted and overwritten content is zeroed (`secure_delete`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    MetaData,
    String,
    Table,
    Text,
    event,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError

from sandan_eventbus.checks import check_email, check_id, check_openid, check_phone, check_text, quote
from sandan_eventbus.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from sandan_eventbus.sql import engine_for
from sandan_intake.crypto import Sealer, Unreadable, unseal
from sandan_intake.keys import DataKeys, KeyEncryption, demand_key_id, resident_key_id
from sandan_intake.keys import metadata as keys_metadata

FIELDS = ("name", "phone", "address", "email", "wechat_openid")
REQUIRED_FIELDS = ("name", "phone", "address")

metadata = MetaData()
residents = Table(
    "intake_residents",
    metadata,
    Column("resident_id", String(36), primary_key=True),
    Column("community_id", String(64), nullable=False, index=True),
    # The first release's plaintext columns: written empty ("" or NULL) since the fields are sealed.
    Column("name", String(100), nullable=False),
    Column("phone", String(30), nullable=False),
    Column("address", String(200), nullable=False),
    Column("registered_at", DateTime(timezone=True), nullable=False),
    Column("email", String(254), nullable=True),
    Column("wechat_openid", String(64), nullable=True),
    # The fields, sealed under the resident's data key; NULL when absent, and all of them once erased.
    *(Column(f"{name}_sealed", Text, nullable=True) for name in FIELDS),
    Column("erased_at", DateTime(timezone=True), nullable=True),
    # The role that registered the record, when it acts for the resident only through it: `service_gateway` for a
    # partner system's caller (Open311), whom the gateway may then post for. NULL for everyone else, and for rows
    # from before the column (the gateway is refused them: it registers a new record for every request it posts).
    Column("registered_by", String(32), nullable=True),
)
# Columns added after the table's first release: created on start in stores that predate them.
_ADDED_COLUMNS = ("email", "wechat_openid", *(f"{name}_sealed" for name in FIELDS), "erased_at", "registered_by")


@dataclass(frozen=True)
class ResidentRecord:
    """A resident's record as read paths see it: decrypted, or, once erased, nothing but ids."""

    resident_id: str
    community_id: str
    name: str
    phone: str
    address: str
    email: str | None = None
    wechat_openid: str | None = None
    registered_at: datetime | None = None
    erased_at: datetime | None = None
    registered_by: str | None = None  # see the column: `service_gateway`, or None


    @property
    def erased(self) -> bool:
        return self.erased_at is not None


def _optional(field: str, value: str | None, check: Callable[[str, str], str]) -> str | None:
    value = (value or "").strip()
    return check(field, value) if value else None


def check_field(name: str, value: str | None) -> str | None:
    """One field as RegisterResident accepts it (None: an optional field left out)."""
    if name == "name":
        return check_text("name", value, 1, 100)
    if name == "address":
        return check_text("address", value, 1, 200)
    if name == "phone":
        return check_phone("phone", (value or "").strip())
    if name == "email":
        return _optional("email", value, check_email)
    if name == "wechat_openid":
        return _optional("wechat_openid", value, check_openid)
    raise InvalidArgument(name, "is no field of a resident's record")


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)  # SQLite drops the zone


class ResidentStore:
    def __init__(self, url: str, keyring: KeyEncryption) -> None:
        self.engine = engine_for(url)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _secure_delete)
        metadata.create_all(self.engine)
        keys_metadata.create_all(self.engine)
        self._add_missing_columns()
        self.keys = DataKeys(self.engine, keyring)
        self.keys.verify()  # a wrong or missing KEK stops here, before anything is served
        self._seal_legacy_rows()

    def _add_missing_columns(self) -> None:
        present = {c["name"] for c in inspect(self.engine).get_columns(residents.name)}
        with self.engine.begin() as conn:
            for name in _ADDED_COLUMNS:
                if name not in present:
                    ddl = residents.c[name].type.compile(dialect=self.engine.dialect)
                    conn.execute(text(f"ALTER TABLE {residents.name} ADD COLUMN {name} {ddl}"))

    def _seal_legacy_rows(self) -> None:
        """Rows from before encryption: seal their fields under a new resident key and empty the old columns."""
        with self.engine.begin() as conn:
            legacy = conn.execute(select(residents).where(residents.c.name != "",
                                                          residents.c.erased_at.is_(None))).all()
            for row in legacy:
                rid = row.resident_id
                sealer = Sealer(rid, self.keys.get_or_create(conn, resident_key_id(rid), rid))
                values = {f"{f}_sealed": sealer(f, getattr(row, f)) if getattr(row, f) else None for f in FIELDS}
                conn.execute(update(residents).where(residents.c.resident_id == rid).values(
                    name="", phone="", address="", email=None, wechat_openid=None, **values))

    # ---- writes --------------------------------------------------------------------------------------------
    def register(self, community_id: str, name: str, phone: str, address: str, *,
                 email: str | None = None, wechat_openid: str | None = None,
                 resident_id: str | None = None, registered_by: str | None = None) -> ResidentRecord:
        """A new record: under `resident_id` (a resident's own account) or a fresh uuid. AlreadyExists when the
        id has a record already. `registered_by`: see the column."""
        rid = resident_id or str(uuid.uuid4())
        fields = {"name": name, "phone": phone, "address": address, "email": email, "wechat_openid": wechat_openid}
        checked = {f: check_field(f, v) for f, v in fields.items()}
        record = ResidentRecord(rid, check_id("community_id", community_id), registered_at=datetime.now(UTC),
                                registered_by=registered_by, **checked)  # type: ignore[arg-type]
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(residents).values(
                    resident_id=rid, community_id=record.community_id, name="", phone="", address="",
                    registered_at=record.registered_at, email=None, wechat_openid=None, registered_by=registered_by,
                    **self._sealed(Sealer(rid, self.keys.create(conn, resident_key_id(rid), rid)), checked)))
        except IntegrityError:  # the primary key: this resident id is registered already
            raise AlreadyExists(f"resident {rid} is already registered") from None
        return record

    @staticmethod
    def _sealed(sealer: Sealer, values: Mapping[str, str | None]) -> dict[str, str | None]:
        return {f"{f}_sealed": sealer(f, v) if v else None for f, v in values.items()}

    def correct(self, resident_id: str, changes: Mapping[str, str | None]) -> list[str]:
        """Replace the given fields (each sealed again, with a fresh nonce); an optional field given empty is
        removed. Returns the names of the fields whose value changed."""
        checked = {f: check_field(f, v) for f, v in changes.items()}
        with self.engine.begin() as conn:
            row = self._row(conn, resident_id, lock=True)
            if row.erased_at is not None:
                raise FailedPrecondition("cannot correct: this resident's personal data was erased")
            sealer = self._sealer(conn, resident_id)
            current = self._open(sealer, row)
            changed = [f for f in FIELDS if f in checked and checked[f] != getattr(current, f)]
            if changed:
                conn.execute(update(residents).where(residents.c.resident_id == resident_id)
                             .values(**self._sealed(sealer, {f: checked[f] for f in changed})))
        return changed

    def erase(self, resident_id: str) -> int:
        """Destroy every data key of the resident and clear their sealed fields, in one transaction. Returns how
        many keys were destroyed (0 when erased before)."""
        with self.engine.begin() as conn:
            row = self._row(conn, resident_id, lock=True)
            destroyed = self.keys.destroy(conn, resident_id=resident_id)
            values: dict[str, Any] = {f"{f}_sealed": None for f in FIELDS}
            conn.execute(update(residents).where(residents.c.resident_id == resident_id).values(
                name="", phone="", address="", email=None, wechat_openid=None,
                erased_at=row.erased_at or datetime.now(UTC), **values))
        self.checkpoint()
        return destroyed

    # ---- demand keys ------------------------------------------------------------------------------------------
    def demand_sealer(self, resident_id: str, demand_id: str, *, create: bool = False) -> Sealer | None:
        """The sealer of a demand's texts, or None when its key is gone. `create` makes the key of a demand being
        posted, unless the resident is erased (checked under the resident row's lock, so an erasure running at
        the same time either sees the new key and destroys it, or refuses the post)."""
        key_id = demand_key_id(demand_id)
        if not create:
            key = self.keys.get(key_id)
            return Sealer(resident_id, key) if key is not None else None
        with self.engine.begin() as conn:
            row = self._row(conn, resident_id, lock=True)
            if row.erased_at is not None:
                raise FailedPrecondition("cannot post: this resident's personal data was erased")
            return Sealer(resident_id, self.keys.get_or_create(conn, key_id, resident_id))

    def shred_demands(self, demand_ids: Iterable[str]) -> int:
        """Destroy the data keys of these demands' texts (retention). Returns how many existed."""
        with self.engine.begin() as conn:
            destroyed = self.keys.destroy(conn, key_ids=[demand_key_id(d) for d in demand_ids])
        self.checkpoint()
        return destroyed

    # ---- reads -------------------------------------------------------------------------------------------------
    def get(self, resident_id: str) -> ResidentRecord:
        """The decrypted record (only ids, and `erased_at`, once erased). NotFound for an unknown id."""
        with self.engine.connect() as conn:
            row = self._row(conn, resident_id)
            sealer = None if row.erased_at is not None else self._sealer(conn, resident_id)
        return self._open(sealer, row)

    def community_of(self, resident_id: str) -> ResidentRecord:
        """The record without its personal fields (no decryption): for scope checks."""
        with self.engine.connect() as conn:
            row = self._row(conn, resident_id)
        return ResidentRecord(row.resident_id, row.community_id, "", "", "", registered_at=_utc(row.registered_at),
                              erased_at=_utc(row.erased_at), registered_by=row.registered_by)

    def _row(self, conn: Connection, resident_id: str, *, lock: bool = False) -> Any:
        """`lock`: the row is held until the transaction ends. A no-op UPDATE takes the lock on both databases
        (SQLite opens its write transaction only at the first write, so a SELECT ... FOR UPDATE would not)."""
        if lock:
            conn.execute(update(residents).where(residents.c.resident_id == resident_id)
                         .values(resident_id=residents.c.resident_id))
        row = conn.execute(select(residents).where(residents.c.resident_id == resident_id)).first()
        if row is None:
            raise NotFound(f"resident {quote(resident_id)} not found")
        return row

    def _sealer(self, conn: Connection, resident_id: str) -> Sealer | None:
        key = self.keys.get(resident_key_id(resident_id), conn)
        return Sealer(resident_id, key) if key is not None else None

    @staticmethod
    def _open(sealer: Sealer | None, row: Any) -> ResidentRecord:
        values: dict[str, str | None] = {}
        for f in FIELDS:
            sealed = getattr(row, f"{f}_sealed")
            if sealed is None or row.erased_at is not None:
                values[f] = None
            elif sealer is None:
                raise Unreadable(f"{f}: the resident's key is missing")  # never expected: erasure clears both
            else:
                values[f] = unseal(sealer.key, sealed, resident_id=row.resident_id, field_name=f)
        return ResidentRecord(row.resident_id, row.community_id, values["name"] or "", values["phone"] or "",
                              values["address"] or "", values["email"], values["wechat_openid"],
                              _utc(row.registered_at), _utc(row.erased_at), row.registered_by)

    # ---- housekeeping ------------------------------------------------------------------------------------------
    def checkpoint(self) -> None:
        """SQLite in WAL mode keeps old page images (a destroyed key's among them) in the -wal file until a
        checkpoint: fold them into the database (zeroed there by secure_delete) and truncate the WAL. Best effort:
        a reader still holding an old snapshot makes the checkpoint partial, and the next one finishes it."""
        if self.engine.dialect.name != "sqlite":
            return
        with self.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        self.engine.dispose()


def _secure_delete(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA secure_delete = ON")
    cursor.close()
