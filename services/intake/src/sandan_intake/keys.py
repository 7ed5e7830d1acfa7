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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

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
    from sandan_eventbus.config import load_or_exit
    from sandan_intake.residents import ResidentStore
    from sandan_intake.settings import database_url_from_env, keyring_from_env

    # opening the store also seals rows from before encryption
    return shared.keys_command(
        argv, service="intake", description=__doc__.split("\n\n")[0], keyring=Keyring,
        load_keyring=lambda: load_or_exit("intake", keyring_from_env),
        open_store=lambda keyring: ResidentStore(load_or_exit("intake", database_url_from_env), keyring))


if __name__ == "__main__":
    raise SystemExit(main())
