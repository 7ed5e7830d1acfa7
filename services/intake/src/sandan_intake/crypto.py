"""Field encryption of residents' personal data: sandan_eventbus.sealing bound to intake's context.

Every value is bound to `sandan.intake|<resident>|<field>` (the associated data), so a ciphertext copied into
another field or another resident's record does not decrypt. `plain:` (LEGACY) marks a value stored before
encryption existed (upcast from an old event; see domain.py): it reads, but only erasure of the key can make sealed
values unreadable, and such a legacy value never had one. The generic parts live in the shared library (dispatch
seals its free texts the same way); these names stay so intake's callers read as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sandan_eventbus import sealing
from sandan_eventbus.sealing import KEY_BYTES, LEGACY, NONCE_BYTES, SEALED, Unreadable, is_sealed, new_data_key

__all__ = ["CONTEXT", "KEY_BYTES", "LEGACY", "NONCE_BYTES", "SEALED", "Sealer", "Unreadable", "associated_data",
           "is_sealed", "new_data_key", "seal", "unseal"]

CONTEXT = "sandan.intake"  # every stored ciphertext is bound to it: never change it


def associated_data(resident_id: str, field_name: str) -> bytes:
    return sealing.associated_data(CONTEXT, resident_id, field_name)


def seal(key: bytes, value: str, *, resident_id: str, field_name: str) -> str:
    return sealing.seal(key, value, context=CONTEXT, owner_id=resident_id, field_name=field_name)


def unseal(key: bytes | None, value: str, *, resident_id: str, field_name: str) -> str:
    """The plaintext of a sealed (or legacy) value. Raises Unreadable when `key` is None (destroyed) or wrong."""
    return sealing.unseal(key, value, context=CONTEXT, owner_id=resident_id, field_name=field_name)


@dataclass(frozen=True)
class Sealer:
    """Seals values for one resident under one data key: what a domain command is handed (`seal(field, value)`),
    so aggregates keep ciphertext only and never hold a key beyond the command."""

    resident_id: str
    key: bytes = field(repr=False)

    def __call__(self, field_name: str, value: str) -> str:
        return seal(self.key, value, resident_id=self.resident_id, field_name=field_name)

    def open(self, field_name: str, value: str) -> str:
        return unseal(self.key, value, resident_id=self.resident_id, field_name=field_name)
