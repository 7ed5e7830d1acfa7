"""Data keys, stored wrapped by a key-encryption key (KEK), and the KEKs themselves: crypto-shredding's key half.

A service seals personal free text (sandan_eventbus.sealing) under data keys of its own choosing (one per
resident, one per demand...). A data key exists in plaintext only in memory, for one command; the service's own
table (`data_keys_table`) holds it wrapped (AES-256-GCM under a KEK, bound to the keyring's context, the KEK's id
and the key's id), with the id of the KEK that wrapped it. Deleting the row is crypto-shredding: the ciphertext
left in the append-only event store can no longer be read by anyone.

KEKs come from a secret (`keyring_from`: a file or a variable), one `<kek id>:<base64 32 bytes>` per line (or
comma-separated); the first wraps new keys, the others stay readable (rotation: put a new KEK first, restart,
re-wrap with `DataKeys.rewrap`, then drop the old one). A KMS replaces `Keyring` by anything with the same four
members (`KeyEncryption`): current id, holds, wrap and unwrap by KEK id. Each service has its own keyring context
(`Keyring` subclasses set it), so one service's wrapped keys never unwrap as another's.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Engine,
    LargeBinary,
    MetaData,
    String,
    Table,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError

from sandan_eventbus.sealing import KEY_BYTES, NONCE_BYTES, new_data_key

KEK_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
K = TypeVar("K", bound="Keyring")


class KeyringError(Exception):
    """The KEKs given cannot serve the stored data keys (one is missing, or is not the key that wrapped them)."""


class KeyEncryption(Protocol):
    """What wraps data keys: a keyring from a secret here; a KMS client would offer the same."""

    @property
    def current_id(self) -> str: ...

    def holds(self, kek_id: str) -> bool: ...

    def wrap(self, key_id: str, data_key: bytes) -> tuple[str, bytes]: ...

    def unwrap(self, kek_id: str, key_id: str, wrapped: bytes) -> bytes: ...


@dataclass(frozen=True)
class Keyring:
    """KEKs by id, the first one current, for one service's `context` (part of every wrap's associated data; a
    service subclasses this to set its own). `repr` never shows key material."""

    keks: tuple[tuple[str, bytes], ...] = field(repr=False)
    context: str = ""

    def __post_init__(self) -> None:
        if not self.context:
            raise ValueError("a keyring needs its service's context (e.g. sandan.intake.kek)")
        if not self.keks:
            raise ValueError("no KEK given")
        seen: set[str] = set()
        for kek_id, key in self.keks:
            if not KEK_ID.fullmatch(kek_id):
                raise ValueError("a KEK id must be 1-64 letters, digits, '_', '.' or '-'")
            if kek_id in seen:
                raise ValueError(f"KEK id {kek_id} is given twice")
            if len(key) != KEY_BYTES:
                raise ValueError(f"KEK {kek_id} must be {KEY_BYTES} bytes (base64 of 32 random bytes)")
            seen.add(kek_id)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(current={self.current_id!r}, ids={list(self.ids)!r})"

    @classmethod
    def parse(cls: type[K], text: str) -> K:
        """`<id>:<base64>` entries, one per line or comma-separated; `#` starts a comment. Raises ValueError
        (without any key material in the message)."""
        keks = []
        for raw_line in text.splitlines():
            line = raw_line.split("#", 1)[0]
            for entry in (e.strip() for e in line.split(",")):
                if not entry:
                    continue
                kek_id, sep, encoded = entry.partition(":")
                if not sep:
                    raise ValueError("each KEK must be written <kek id>:<base64 of 32 bytes>")
                try:
                    key = base64.b64decode(encoded.strip().replace("-", "+").replace("_", "/"), validate=True)
                except (binascii.Error, ValueError):
                    raise ValueError(f"KEK {kek_id.strip()} is not valid base64") from None
                keks.append((kek_id.strip(), key))
        return cls(tuple(keks))

    @classmethod
    def generate(cls: type[K], kek_id: str = "kek-1") -> K:
        return cls(((kek_id, os.urandom(KEY_BYTES)),))

    def text(self) -> str:
        """The secret's text form (for a secret store or a test's environment; never log it)."""
        return "\n".join(f"{i}:{base64.b64encode(k).decode()}" for i, k in self.keks)

    def with_new_current(self: K, other: Keyring) -> K:
        """`other`'s KEKs first (the new current), then these (kept readable): a rotation's keyring."""
        return replace(self, keks=other.keks + self.keks)

    @property
    def current_id(self) -> str:
        return self.keks[0][0]

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(i for i, _ in self.keks)

    def holds(self, kek_id: str) -> bool:
        return kek_id in self.ids

    def _kek(self, kek_id: str) -> bytes:
        for i, key in self.keks:
            if i == kek_id:
                return key
        raise KeyringError(f"data keys are wrapped by KEK {kek_id!r}, which the keyring does not hold")

    def _ad(self, kek_id: str, key_id: str) -> bytes:
        return f"{self.context}|{kek_id}|{key_id}".encode()

    def wrap(self, key_id: str, data_key: bytes) -> tuple[str, bytes]:
        kek_id = self.current_id
        nonce = os.urandom(NONCE_BYTES)
        return kek_id, nonce + AESGCM(self._kek(kek_id)).encrypt(nonce, data_key, self._ad(kek_id, key_id))

    def unwrap(self, kek_id: str, key_id: str, wrapped: bytes) -> bytes:
        try:
            return AESGCM(self._kek(kek_id)).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:],
                                                     self._ad(kek_id, key_id))
        except InvalidTag:
            raise KeyringError(f"KEK {kek_id!r} is not the key that wrapped the stored data keys "
                               "(a wrong key under that id)") from None


def keyring_from(keyring: type[K], path: str, inline: str, *, file_variable: str, inline_variable: str,
                 why: str) -> K:
    """The KEKs, from a file (a mounted Secret: `file_variable`) or inline (`inline_variable`). Without one the
    service does not start (`why` says what it could not do). Errors never show key material."""
    if path and inline:
        raise ValueError(f"set {file_variable} or {inline_variable}, not both")
    if not path and not inline:
        raise ValueError(f"{file_variable} (a file holding the key-encryption keys) or {inline_variable} is "
                         f"required: {why}")
    source = file_variable if path else inline_variable
    if path:
        try:
            inline = Path(path).read_text(encoding="utf-8")
        except OSError as error:
            raise ValueError(f"{file_variable}: cannot read {path} ({error.strerror})") from None
    try:
        return keyring.parse(inline)
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None


def data_keys_table(name: str, metadata: MetaData, *, owner: str, owner_length: int) -> Table:
    """A service's wrapped data keys: one row per key, `owner` the column whose keys a bulk destroy selects (a
    resident's, a demand's)."""
    return Table(
        name,
        metadata,
        Column("key_id", String(80), primary_key=True),
        Column(owner, String(owner_length), nullable=False, index=True),
        Column("kek_id", String(64), nullable=False, index=True),
        Column("wrapped", LargeBinary, nullable=False),  # nonce || AES-GCM(KEK, data key, ad = context|kek|key id)
        Column("created_at", DateTime(timezone=True), nullable=False),
    )


class DataKeys:
    """The wrapped data keys in a service's own database. `rewrap_hint` is the command an operator runs to move
    keys off an old KEK (named in the start-up error)."""

    def __init__(self, engine: Engine, keyring: KeyEncryption, table: Table, *, owner: str,
                 rewrap_hint: str) -> None:
        self.engine = engine
        self.keyring = keyring
        self.table = table
        self.owner = table.c[owner]
        self.rewrap_hint = rewrap_hint

    def create(self, conn: Connection, key_id: str, owner_id: str) -> bytes:
        """A new data key, inserted in the caller's transaction. IntegrityError when the id has a key already."""
        key = new_data_key()
        kek_id, wrapped = self.keyring.wrap(key_id, key)
        conn.execute(insert(self.table).values({"key_id": key_id, self.owner.name: owner_id, "kek_id": kek_id,
                                                "wrapped": wrapped, "created_at": datetime.now(UTC)}))
        return key

    def get(self, key_id: str, conn: Connection | None = None) -> bytes | None:
        """The data key, or None when it was destroyed (or never made)."""
        if conn is None:
            with self.engine.connect() as own:
                return self.get(key_id, own)
        t = self.table
        row = conn.execute(select(t.c.kek_id, t.c.wrapped).where(t.c.key_id == key_id)).first()
        if row is None:
            return None
        return self.keyring.unwrap(row.kek_id, key_id, bytes(row.wrapped))

    def get_or_create(self, conn: Connection, key_id: str, owner_id: str) -> bytes:
        existing = self.get(key_id, conn)
        if existing is not None:
            return existing
        try:
            with conn.begin_nested():
                return self.create(conn, key_id, owner_id)
        except IntegrityError:  # a concurrent call made it first
            found = self.get(key_id, conn)
            assert found is not None
            return found

    def destroy(self, conn: Connection, *, key_ids: Iterable[str] = (), owner_id: str | None = None) -> int:
        """Delete keys by id, or every key of an owner. Returns how many were destroyed. On SQLite the deleted
        rows are zeroed in the file (secure_delete), not just unlinked."""
        if conn.dialect.name == "sqlite":
            conn.execute(text("PRAGMA secure_delete = ON"))
        count = 0
        ids = list(key_ids)
        if ids:
            count += conn.execute(delete(self.table).where(self.table.c.key_id.in_(ids))).rowcount or 0
        if owner_id is not None:
            count += conn.execute(delete(self.table).where(self.owner == owner_id)).rowcount or 0
        return count

    def count_by_kek(self) -> dict[str, int]:
        t = self.table
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.c.kek_id, func.count()).group_by(t.c.kek_id)).all()
        return {kek_id: n for kek_id, n in rows}

    def verify(self) -> None:
        """At start: every KEK the stored keys name is held, and is the key that wrapped them (one key per KEK id
        is unwrapped as the proof). Raises KeyringError naming the KEK id, never key material."""
        t = self.table
        with self.engine.connect() as conn:
            kek_ids = [r[0] for r in conn.execute(select(t.c.kek_id).distinct())]
            for kek_id in sorted(kek_ids):
                if not self.keyring.holds(kek_id):
                    raise KeyringError(
                        f"data keys are wrapped by KEK {kek_id!r}, which the keyring does not hold: keep every old "
                        f"KEK in the keyring until `{self.rewrap_hint}` has moved its keys")
                sample = conn.execute(select(t.c.key_id, t.c.wrapped).where(t.c.kek_id == kek_id).limit(1)).first()
                if sample is not None:
                    self.keyring.unwrap(kek_id, sample.key_id, bytes(sample.wrapped))

    def rewrap(self, batch: int = 500) -> int:
        """Re-wrap every data key not under the current KEK (key material unchanged: ciphertexts stay valid).
        Returns how many were re-wrapped. Safe to run again, and alongside the service."""
        t = self.table
        moved = 0
        current = self.keyring.current_id
        while True:
            with self.engine.begin() as conn:
                rows = conn.execute(select(t.c.key_id, t.c.kek_id, t.c.wrapped)
                                    .where(t.c.kek_id != current).limit(batch)).all()
                for row in rows:
                    key = self.keyring.unwrap(row.kek_id, row.key_id, bytes(row.wrapped))
                    kek_id, wrapped = self.keyring.wrap(row.key_id, key)
                    # only if untouched meanwhile (a concurrent destroy deletes the row: nothing to move)
                    conn.execute(update(t).where(t.c.key_id == row.key_id, t.c.kek_id == row.kek_id)
                                 .values(kek_id=kek_id, wrapped=wrapped))
            moved += len(rows)
            if len(rows) < batch:
                return moved


class KeyStore(Protocol):
    """What the keys command opens: a service's data keys on its own database."""

    @property
    def keys(self) -> DataKeys: ...

    def close(self) -> None: ...


def keys_command(argv: Sequence[str] | None, *, service: str, description: str, keyring: type[Keyring],
                 load_keyring: Callable[[], KeyEncryption], open_store: Callable[[KeyEncryption], KeyStore]) -> int:
    """`python -m sandan_<service>.keys generate|status|rewrap`: a new KEK line for the secret, the data keys per
    KEK id (no key material), or every data key re-wrapped under the current KEK. Opening the store verifies the
    keyring against the stored keys: a missing or wrong KEK exits 2 with the reason."""
    parser = argparse.ArgumentParser(prog=f"python -m sandan_{service}.keys", description=description)
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="print a new KEK line (id:base64) for the keyring secret")
    gen.add_argument("--id", default=f"kek-{datetime.now(UTC):%Y%m%d}", help="the new KEK's id")
    sub.add_parser("status", help="how many data keys each KEK wraps")
    sub.add_parser("rewrap", help="re-wrap every data key under the keyring's current (first) KEK")
    args = parser.parse_args(argv)
    if args.command == "generate":
        print(keyring.generate(args.id).text())
        return 0
    keys = load_keyring()
    try:
        store = open_store(keys)
    except KeyringError as error:
        print(f"{service}: {error}", file=sys.stderr)
        return 2
    try:
        if args.command == "rewrap":
            moved = store.keys.rewrap()
            print(f"re-wrapped {moved} data keys under {keys.current_id}")
        counts = store.keys.count_by_kek()
        for kek_id in sorted(counts):
            print(f"{kek_id}\t{counts[kek_id]}{'  (current)' if kek_id == keys.current_id else ''}")
    finally:
        store.close()
    return 0
