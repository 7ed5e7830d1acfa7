"""Field encryption of personal free text: AES-256-GCM (the `cryptography` package), one value at a time.

Every value gets a fresh 96-bit random nonce and is bound by the associated data to `<context>|<owner>|<field>`
(the context names the service, e.g. `sandan.intake`; the owner is whose value it is: a resident, a demand), so a
ciphertext copied into another field, another owner's record or another service's store does not decrypt. A sealed
value is a string (it lives in JSON events and text columns): `gcm1:` + base64url(nonce || ciphertext || tag).
`plain:` marks a value stored before encryption existed (upcast from an old event): it reads, but only destroying
the key can make sealed values unreadable, and such a legacy value never had one.

Pure apart from the nonces' randomness: no keys are stored here (sandan_eventbus.keyring keeps them).
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SEALED = "gcm1:"
LEGACY = "plain:"
KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # GCM's standard nonce; random per value (a data key seals a handful of values in its life)
TAG_BYTES = 16


class Unreadable(Exception):
    """The value cannot be opened: its key was destroyed (erasure, retention), or it was not sealed with this key
    for this owner and field. Carries no part of the value."""


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=8 * KEY_BYTES)


def associated_data(context: str, owner_id: str, field_name: str) -> bytes:
    return f"{context}|{owner_id}|{field_name}".encode()


def legacy(value: str) -> str:
    """A plaintext value stored before sealing existed, marked so it reads (an upcast's helper)."""
    return LEGACY + value


def seal(key: bytes, value: str, *, context: str, owner_id: str, field_name: str) -> str:
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, value.encode("utf-8"), associated_data(context, owner_id, field_name))
    return SEALED + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")


def is_sealed(value: str | None) -> bool:
    return value is not None and value.startswith(SEALED)


def unseal(key: bytes | None, value: str, *, context: str, owner_id: str, field_name: str) -> str:
    """The plaintext of a sealed (or legacy) value. Raises Unreadable when `key` is None (destroyed) or wrong."""
    if value.startswith(LEGACY):
        return value[len(LEGACY):]
    if not value.startswith(SEALED):
        raise ValueError(f"{field_name}: not a sealed value")
    if key is None:
        raise Unreadable(f"{field_name}: the key is gone")
    try:
        raw = base64.urlsafe_b64decode(value[len(SEALED):].encode("ascii"))
        if len(raw) < NONCE_BYTES + TAG_BYTES:
            raise Unreadable(f"{field_name}: too short to be sealed")
        plain = AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:],
                                    associated_data(context, owner_id, field_name))
    except (InvalidTag, binascii.Error, ValueError) as error:
        raise Unreadable(f"{field_name}: not sealed with this key for this owner and field") from error
    return plain.decode("utf-8")


@dataclass(frozen=True)
class Sealer:
    """Seals values for one owner under one data key: what a domain command is handed (`seal(field, value)`),
    so aggregates keep ciphertext only and never hold a key beyond the command."""

    context: str
    owner_id: str
    key: bytes = field(repr=False)

    def __call__(self, field_name: str, value: str) -> str:
        return seal(self.key, value, context=self.context, owner_id=self.owner_id, field_name=field_name)

    def open(self, field_name: str, value: str) -> str:
        return unseal(self.key, value, context=self.context, owner_id=self.owner_id, field_name=field_name)
