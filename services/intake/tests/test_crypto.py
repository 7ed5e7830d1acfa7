"""The crypto helpers, property by property: sealed values round-trip, open only with their key, resident and
field, never repeat a nonce; the keyring wraps and unwraps by KEK id, refuses a wrong KEK, never shows a key."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandan_intake.crypto import LEGACY, NONCE_BYTES, SEALED, Sealer, Unreadable, new_data_key, seal, unseal
from sandan_intake.keys import Keyring, KeyringError

texts = st.text(max_size=600)  # any Unicode, surrogates excluded by hypothesis' default alphabet
ids = st.text(alphabet="abcdef0123456789-", min_size=1, max_size=36)
fields = st.sampled_from(["name", "phone", "address", "email", "wechat_openid", "description", "other_text",
                          "care_tags", "comment"])


@settings(max_examples=200)
@given(value=texts, resident_id=ids, field=fields)
def test_a_sealed_value_opens_to_itself_and_shows_nothing_of_it(value: str, resident_id: str, field: str) -> None:
    key = new_data_key()
    sealed = seal(key, value, resident_id=resident_id, field_name=field)
    assert sealed.startswith(SEALED)
    assert unseal(key, sealed, resident_id=resident_id, field_name=field) == value
    if len(value) >= 4:
        assert value not in sealed


@settings(max_examples=100)
@given(value=texts, resident_id=ids, other_id=ids, field=fields, other_field=fields)
def test_only_its_key_resident_and_field_open_it(value: str, resident_id: str, other_id: str, field: str,
                                                 other_field: str) -> None:
    key = new_data_key()
    sealed = seal(key, value, resident_id=resident_id, field_name=field)
    with pytest.raises(Unreadable):
        unseal(new_data_key(), sealed, resident_id=resident_id, field_name=field)  # another key
    with pytest.raises(Unreadable):
        unseal(None, sealed, resident_id=resident_id, field_name=field)  # the key destroyed
    if other_id != resident_id:
        with pytest.raises(Unreadable):
            unseal(key, sealed, resident_id=other_id, field_name=field)  # copied to another resident
    if other_field != field:
        with pytest.raises(Unreadable):
            unseal(key, sealed, resident_id=resident_id, field_name=other_field)  # copied to another field


@settings(max_examples=100)
@given(value=st.text(min_size=1, max_size=50), position=st.integers(min_value=0))
def test_a_tampered_ciphertext_is_refused(value: str, position: int) -> None:
    key = new_data_key()
    raw = bytearray(base64.urlsafe_b64decode(seal(key, value, resident_id="r", field_name="name")[len(SEALED):]))
    raw[position % len(raw)] ^= 0x01
    tampered = SEALED + base64.urlsafe_b64encode(bytes(raw)).decode()
    with pytest.raises(Unreadable):
        unseal(key, tampered, resident_id="r", field_name="name")
    with pytest.raises(Unreadable):
        unseal(key, SEALED + "AAAA", resident_id="r", field_name="name")  # too short to hold a nonce and tag


def test_nonces_are_fresh_for_every_value() -> None:
    key = new_data_key()
    sealer = Sealer("r-1", key)
    sealed = [sealer("name", "王秀英") for _ in range(2000)]
    nonces = {base64.urlsafe_b64decode(s[len(SEALED):])[:NONCE_BYTES] for s in sealed}
    assert len(nonces) == len(sealed) == len(set(sealed))  # the same value never seals the same twice
    assert {sealer.open("name", s) for s in sealed} == {"王秀英"}


def test_legacy_values_read_without_a_key_and_other_strings_are_no_sealed_values() -> None:
    assert unseal(None, LEGACY + "old text", resident_id="r", field_name="description") == "old text"
    with pytest.raises(ValueError, match="not a sealed value"):
        unseal(new_data_key(), "plain text", resident_id="r", field_name="description")


def test_a_sealer_never_shows_its_key() -> None:
    sealer = Sealer("r-1", new_data_key())
    assert sealer.key.hex() not in repr(sealer) and "key" not in repr(sealer)


# ---- the keyring --------------------------------------------------------------------------------------------
@settings(max_examples=50)
@given(key_id=st.text(alphabet="abcdefr:0123456789-", min_size=1, max_size=80))
def test_a_wrapped_key_unwraps_under_its_kek_and_id_only(key_id: str) -> None:
    ring = Keyring.generate("kek-a")
    data_key = new_data_key()
    kek_id, wrapped = ring.wrap(key_id, data_key)
    assert kek_id == "kek-a" and data_key not in wrapped
    assert ring.unwrap(kek_id, key_id, wrapped) == data_key
    with pytest.raises(KeyringError, match="not the key that wrapped"):
        ring.unwrap(kek_id, key_id + "x", wrapped)  # another key's row
    with pytest.raises(KeyringError, match="not the key that wrapped"):
        Keyring.generate("kek-a").unwrap(kek_id, key_id, wrapped)  # same id, another key
    with pytest.raises(KeyringError, match="does not hold"):
        Keyring.generate("kek-b").unwrap(kek_id, key_id, wrapped)


def test_a_rotated_keyring_wraps_with_the_new_kek_and_reads_the_old() -> None:
    old = Keyring.generate("kek-2025")
    kek_id, wrapped = old.wrap("resident:r-1", key := new_data_key())
    rotated = old.with_new_current(Keyring.generate("kek-2026"))
    assert rotated.current_id == "kek-2026" and rotated.ids == ("kek-2026", "kek-2025")
    assert rotated.unwrap(kek_id, "resident:r-1", wrapped) == key
    assert rotated.wrap("resident:r-2", new_data_key())[0] == "kek-2026"
    assert Keyring.parse(rotated.text()) == rotated  # the secret's text form round-trips


def test_the_secret_text_form() -> None:
    one, two = Keyring.generate("a"), Keyring.generate("b.2")
    text = f"# sandan intake KEKs\n{one.text()}  # current\n\n{two.text()}\n"
    assert Keyring.parse(text).ids == ("a", "b.2")
    assert Keyring.parse(f"{one.text()},{two.text()}").ids == ("a", "b.2")  # one line, for an env variable
    secret = one.text().split(":", 1)[1]
    for bad, message in (("", "no KEK"), ("kek-1", "<kek id>:<base64"), ("k:!!!", "not valid base64"),
                         ("k:" + base64.b64encode(b"short").decode(), "must be 32 bytes"),
                         (f"a:{secret}\na:{secret}", "given twice"), (f"bad id:{secret}", "a KEK id must")):
        with pytest.raises(ValueError, match=message) as refused:
            Keyring.parse(bad)
        assert secret not in str(refused.value)
    assert secret not in repr(one) and "a" in repr(one)
