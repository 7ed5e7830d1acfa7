"""The demands' data keys: what seals the free texts members and secretaries type about a service to a resident
(a completion's `notes`, an escalation's `note`), so they can be forgotten although the event store is append-only.

Each demand that has such a text gets one data key (`demand:<demand id>`), kept wrapped by dispatch's own KEK in
the table `dispatch_data_keys`, in dispatch's own database (DISPATCH_DATABASE_URL, beside the contact tables).
The events hold only ciphertext (sandan_eventbus.sealing, bound to `sandan.dispatch|<demand id>|<field>`);
destroying the key (intake's DemandTextsShredded: retention or erasure) makes them unreadable for good.

KEKs: `DISPATCH_KEK_FILE` (a mounted Secret) or `DISPATCH_KEK`, the same format as intake's but never the same key.
Rotation: put a new KEK first, restart (old data still reads), run `python -m sandan_dispatch.keys rewrap`, then
drop the old one.

    python -m sandan_dispatch.keys generate [--id kek-2026-01]   # print a new KEK line for the secret
    python -m sandan_dispatch.keys status                        # data keys per KEK id (no key material)
    python -m sandan_dispatch.keys rewrap                        # re-wrap every data key under the current KEK
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, MetaData

from sandan_eventbus import keyring as shared
from sandan_eventbus.keyring import KeyEncryption, KeyringError
from sandan_eventbus.sealing import Sealer
from sandan_eventbus.sql import engine_for

__all__ = ["CONTEXT", "DemandKeys", "Keyring", "KeyringError", "data_keys", "demand_key_id", "metadata"]

CONTEXT = "sandan.dispatch"  # every sealed text is bound to it: never change it
metadata = MetaData()
data_keys = shared.data_keys_table("dispatch_data_keys", metadata, owner="demand_id", owner_length=64)


def demand_key_id(demand_id: str) -> str:
    return f"demand:{demand_id}"


@dataclass(frozen=True)
class Keyring(shared.Keyring):
    """dispatch's KEKs (its own wrapping context: a key wrapped by intake never unwraps here, nor the reverse)."""

    context: str = "sandan.dispatch.kek"


class DemandKeys:
    """The demands' data keys on dispatch's own database. Opening checks the keyring against the stored keys: a
    missing or wrong KEK raises KeyringError (the service then does not start)."""

    def __init__(self, engine: Engine, keyring: KeyEncryption) -> None:
        self.engine = engine
        metadata.create_all(engine)
        self.keys = shared.DataKeys(engine, keyring, data_keys, owner="demand_id",
                                    rewrap_hint="python -m sandan_dispatch.keys rewrap")
        self.keys.verify()

    @classmethod
    def ephemeral(cls) -> DemandKeys:
        """Not for production: a throwaway key store (a temporary SQLite file, a generated KEK) for tests and tools
        that build the application without dispatch's database. The service always opens its own (__main__)."""
        return cls(engine_for("memory://"), Keyring.generate("ephemeral"))

    def sealer(self, demand_id: str) -> Sealer:
        """The demand's sealer, its key made on first use."""
        with self.engine.begin() as conn:
            key = self.keys.get_or_create(conn, demand_key_id(demand_id), demand_id)
        return Sealer(CONTEXT, demand_id, key)

    def opener(self, demand_id: str) -> Sealer | None:
        """The demand's sealer for reading, or None when its key is gone (or never made)."""
        key = self.keys.get(demand_key_id(demand_id))
        return Sealer(CONTEXT, demand_id, key) if key is not None else None

    def forget(self, demand_id: str) -> bool:
        """Destroy the demand's key (crypto-shredding its texts). True when there was one; safe to repeat."""
        with self.engine.begin() as conn:
            return self.keys.destroy(conn, key_ids=[demand_key_id(demand_id)]) > 0

    def close(self) -> None:
        self.engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    from sandan_dispatch.settings import database_url_from_env, keyring_from_env
    from sandan_eventbus.config import load_or_exit

    return shared.keys_command(
        argv, service="dispatch", description=__doc__.split("\n\n")[0], keyring=Keyring,
        load_keyring=lambda: load_or_exit("dispatch", keyring_from_env),
        open_store=lambda keyring: DemandKeys(engine_for(load_or_exit("dispatch", database_url_from_env)), keyring))


if __name__ == "__main__":
    raise SystemExit(main())
