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
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, MetaData

from sandan_eventbus import keyring as shared
from sandan_eventbus.keyring import KEK_ID, KeyEncryption, KeyringError

__all__ = ["KEK_ID", "DataKeys", "KeyEncryption", "Keyring", "KeyringError", "data_keys", "demand_key_id",
           "metadata", "resident_key_id"]

metadata = MetaData()
# resident:<uuid> | demand:<uuid>, owned by a resident (erasure destroys all of them)
data_keys = shared.data_keys_table("intake_data_keys", metadata, owner="resident_id", owner_length=36)


def resident_key_id(resident_id: str) -> str:
    return f"resident:{resident_id}"


def demand_key_id(demand_id: str) -> str:
    return f"demand:{demand_id}"


@dataclass(frozen=True)
class Keyring(shared.Keyring):
    """intake's KEKs (sandan_eventbus.keyring.Keyring with intake's wrapping context; never change it: every
    stored data key is bound to it)."""

    context: str = "sandan.intake.kek"


class DataKeys(shared.DataKeys):
    """The wrapped data keys in intake's own database (the residents' tables' engine), by resident."""

    def __init__(self, engine: Engine, keyring: KeyEncryption) -> None:
        super().__init__(engine, keyring, data_keys, owner="resident_id",
                         rewrap_hint="python -m sandan_intake.keys rewrap")

    def destroy(self, conn: Connection, *, key_ids: Iterable[str] = (), resident_id: str | None = None) -> int:
        """Delete keys by id, or every key of a resident. Returns how many were destroyed."""
        return super().destroy(conn, key_ids=key_ids, owner_id=resident_id)


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
