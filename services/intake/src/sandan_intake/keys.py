"""Residents' data keys, stored wrapped by a key-encryption key (KEK), and the KEKs themselves.

Each resident has a data key (`resident:<resident id>`: their record's fields) and each of their demands one more
(`demand:<demand id>`: what they or a worker typed about it), so a demand's texts can be shredded on their own
after the retention period while erasure destroys every key the resident has. A data key exists in plaintext only
in memory, for one command; the table `intake_data_keys` holds it wrapped (AES-256-GCM under a KEK, bound to the
key's id), with the id of the KEK that wrapped it. Destroying the row is crypto-shredding: the ciphertext left in
the append-only event store can no longer be read by anyone.

KEKs come from a secret (`Keyring.parse`: `INTAKE_KEK_FILE` or `INTAKE_KEK`), one `<kek id>:<base64 32 bytes>`
per line (or comma-separated); the first wraps new keys, the others stay readable. Rotation: put a new KEK first,
restart, run `python -m sandan_intake.keys rewrap`, then drop the old one. A KMS replaces `Keyring` by anything
with the same four members (`KeyEncryption`): ids, wrap and unwrap by KEK id.

    python -m sandan_intake.keys generate [--id kek-2026-01]   # print a new KEK line for the secret
    python -m sandan_intake.keys status                        # data keys per KEK id (no key material)
    python -m sandan_intake.keys rewrap                        # re-wrap every data key under the current KEK
"""

from __future__ import annotations

import argparse
import base64
import binascii
import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

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
    update,
)
from sqlalchemy.exc import IntegrityError

from sandan_intake.crypto import KEY_BYTES, NONCE_BYTES, new_data_key

KEK_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
metadata = MetaData()
data_keys = Table(
    "intake_data_keys",
    metadata,
    Column("key_id", String(80), primary_key=True),  # resident:<uuid> | demand:<uuid>
    Column("resident_id", String(36), nullable=False, index=True),  # whose key (erasure destroys all of them)
    Column("kek_id", String(64), nullable=False, index=True),
    Column("wrapped", LargeBinary, nullable=False),  # nonce || AES-GCM(KEK, data key, ad = kek id + key id)
    Column("created_at", DateTime(timezone=True), nullable=False),
)


def resident_key_id(resident_id: str) -> str:
    return f"resident:{resident_id}"


def demand_key_id(demand_id: str) -> str:
    return f"demand:{demand_id}"


class KeyringError(Exception):
    """The KEKs given cannot serve the stored data keys (one is missing, or is not the key that wrapped them)."""


class KeyEncryption(Protocol):
    """What wraps data keys: a keyring from a secret here; a KMS client would offer the same."""

    @property
    def current_id(self) -> str: ...

    def holds(self, kek_id: str) -> bool: ...

    def wrap(self, key_id: str, data_key: bytes) -> tuple[str, bytes]: ...

    def unwrap(self, kek_id: str, key_id: str, wrapped: bytes) -> bytes: ...


def _wrap_ad(kek_id: str, key_id: str) -> bytes:
    return f"sandan.intake.kek|{kek_id}|{key_id}".encode()


@dataclass(frozen=True)
class Keyring:
    """KEKs by id, the first one current. `repr` never shows key material."""

    keks: tuple[tuple[str, bytes], ...] = field(repr=False)

    def __post_init__(self) -> None:
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
        return f"Keyring(current={self.current_id!r}, ids={list(self.ids)!r})"

    @classmethod
    def parse(cls, text: str) -> Keyring:
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
    def generate(cls, kek_id: str = "kek-1") -> Keyring:
        return cls(((kek_id, os.urandom(KEY_BYTES)),))

    def text(self) -> str:
        """The secret's text form (for a secret store or a test's environment; never log it)."""
        return "\n".join(f"{i}:{base64.b64encode(k).decode()}" for i, k in self.keks)

    def with_new_current(self, other: Keyring) -> Keyring:
        """`other`'s KEKs first (the new current), then these (kept readable): a rotation's keyring."""
        return Keyring(other.keks + self.keks)

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

    def wrap(self, key_id: str, data_key: bytes) -> tuple[str, bytes]:
        kek_id = self.current_id
        nonce = os.urandom(NONCE_BYTES)
        return kek_id, nonce + AESGCM(self._kek(kek_id)).encrypt(nonce, data_key, _wrap_ad(kek_id, key_id))

    def unwrap(self, kek_id: str, key_id: str, wrapped: bytes) -> bytes:
        try:
            return AESGCM(self._kek(kek_id)).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:],
                                                     _wrap_ad(kek_id, key_id))
        except InvalidTag:
            raise KeyringError(f"KEK {kek_id!r} is not the key that wrapped the stored data keys "
                               "(a wrong key under that id)") from None


class DataKeys:
    """The wrapped data keys in intake's own database (the residents' tables' engine)."""

    def __init__(self, engine: Engine, keyring: KeyEncryption) -> None:
        self.engine = engine
        self.keyring = keyring

    def create(self, conn: Connection, key_id: str, resident_id: str) -> bytes:
        """A new data key, inserted in the caller's transaction. IntegrityError when the id has a key already."""
        key = new_data_key()
        kek_id, wrapped = self.keyring.wrap(key_id, key)
        conn.execute(insert(data_keys).values(key_id=key_id, resident_id=resident_id, kek_id=kek_id,
                                              wrapped=wrapped, created_at=datetime.now(UTC)))
        return key

    def get(self, key_id: str, conn: Connection | None = None) -> bytes | None:
        """The data key, or None when it was destroyed (or never made)."""
        if conn is None:
            with self.engine.connect() as own:
                return self.get(key_id, own)
        row = conn.execute(select(data_keys.c.kek_id, data_keys.c.wrapped)
                           .where(data_keys.c.key_id == key_id)).first()
        if row is None:
            return None
        return self.keyring.unwrap(row.kek_id, key_id, bytes(row.wrapped))

    def get_or_create(self, conn: Connection, key_id: str, resident_id: str) -> bytes:
        existing = self.get(key_id, conn)
        if existing is not None:
            return existing
        try:
            with conn.begin_nested():
                return self.create(conn, key_id, resident_id)
        except IntegrityError:  # a concurrent call made it first
            found = self.get(key_id, conn)
            assert found is not None
            return found

    def destroy(self, conn: Connection, *, key_ids: Iterable[str] = (), resident_id: str | None = None) -> int:
        """Delete keys by id, or every key of a resident. Returns how many were destroyed."""
        count = 0
        ids = list(key_ids)
        if ids:
            count += conn.execute(delete(data_keys).where(data_keys.c.key_id.in_(ids))).rowcount or 0
        if resident_id is not None:
            count += conn.execute(delete(data_keys).where(data_keys.c.resident_id == resident_id)).rowcount or 0
        return count

    def count_by_kek(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(data_keys.c.kek_id, func.count()).group_by(data_keys.c.kek_id)).all()
        return {kek_id: n for kek_id, n in rows}

    def verify(self) -> None:
        """At start: every KEK the stored keys name is held, and is the key that wrapped them (one key per KEK id
        is unwrapped as the proof). Raises KeyringError naming the KEK id, never key material."""
        with self.engine.connect() as conn:
            kek_ids = [r[0] for r in conn.execute(select(data_keys.c.kek_id).distinct())]
            for kek_id in sorted(kek_ids):
                if not self.keyring.holds(kek_id):
                    raise KeyringError(
                        f"data keys are wrapped by KEK {kek_id!r}, which the keyring does not hold: keep every old "
                        "KEK in the keyring until `python -m sandan_intake.keys rewrap` has moved its keys")
                sample = conn.execute(select(data_keys.c.key_id, data_keys.c.wrapped)
                                      .where(data_keys.c.kek_id == kek_id).limit(1)).first()
                if sample is not None:
                    self.keyring.unwrap(kek_id, sample.key_id, bytes(sample.wrapped))

    def rewrap(self, batch: int = 500) -> int:
        """Re-wrap every data key not under the current KEK (key material unchanged: ciphertexts stay valid).
        Returns how many were re-wrapped. Safe to run again, and alongside the service."""
        moved = 0
        current = self.keyring.current_id
        while True:
            with self.engine.begin() as conn:
                rows = conn.execute(select(data_keys.c.key_id, data_keys.c.kek_id, data_keys.c.wrapped)
                                    .where(data_keys.c.kek_id != current).limit(batch)).all()
                for row in rows:
                    key = self.keyring.unwrap(row.kek_id, row.key_id, bytes(row.wrapped))
                    kek_id, wrapped = self.keyring.wrap(row.key_id, key)
                    # only if untouched meanwhile (a concurrent erasure deletes the row: nothing to move)
                    conn.execute(update(data_keys).where(data_keys.c.key_id == row.key_id,
                                                         data_keys.c.kek_id == row.kek_id)
                                 .values(kek_id=kek_id, wrapped=wrapped))
            moved += len(rows)
            if len(rows) < batch:
                return moved


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandan_intake.keys", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="print a new KEK line (id:base64) for the keyring secret")
    gen.add_argument("--id", default=f"kek-{datetime.now(UTC):%Y%m%d}", help="the new KEK's id")
    sub.add_parser("status", help="how many data keys each KEK wraps")
    sub.add_parser("rewrap", help="re-wrap every data key under the keyring's current (first) KEK")
    args = parser.parse_args(argv)
    if args.command == "generate":
        print(Keyring.generate(args.id).text())
        return 0

    from sandan_eventbus.config import load_or_exit
    from sandan_intake import keys  # run as __main__, this module's classes are not the ones the store raises
    from sandan_intake.residents import ResidentStore
    from sandan_intake.settings import database_url_from_env, keyring_from_env

    keyring = load_or_exit("intake", keyring_from_env)
    try:  # opening verifies the keyring against the stored keys (and seals rows from before encryption)
        store = ResidentStore(load_or_exit("intake", database_url_from_env), keyring)
    except keys.KeyringError as error:
        print(f"intake: {error}", file=sys.stderr)
        return 2
    try:
        if args.command == "rewrap":
            moved = store.keys.rewrap()
            print(f"re-wrapped {moved} data keys under {keyring.current_id}")
        counts = store.keys.count_by_kek()
        for kek_id in sorted(counts):
            print(f"{kek_id}\t{counts[kek_id]}{'  (current)' if kek_id == keyring.current_id else ''}")
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
