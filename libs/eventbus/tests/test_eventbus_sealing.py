"""The shared sealing and keyring: values bound to a context, owner and field; keys wrapped under a service's own
context; and intake's values and wrapped keys written before the move (fixed vectors) still open byte-for-byte."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import MetaData, select

from sandan_eventbus.keyring import DataKeys, Keyring, KeyringError, data_keys_table, keyring_from
from sandan_eventbus.sealing import LEGACY, SEALED, Sealer, Unreadable, legacy, new_data_key, seal, unseal
from sandan_eventbus.sql import engine_for

# Written by intake's own crypto.py and keys.py before they moved here (commit 1c7d828): what its stores hold.
KEY = base64.b64decode("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
INTAKE_SEALED = "gcm1:OYudjsEuF_4e8vMQ0P44FtUuayDGks6rHgZajd-1Ba6YKno0UPYJ5NeOew9Luw=="
INTAKE_KEKS = "kek-2025:ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoM="
INTAKE_WRAPPED = base64.b64decode("I/mQRpGXcTQCmkYBOBZgwGGlQUIXrmezM9LMae7cc8SQIx6Q5sAbcCUbgtDyc2BSTtg/oblJ5sGa5RFm")


@dataclass(frozen=True)
class Ring(Keyring):
    """A service's keyring (as each service subclasses it with its own context)."""

    context: str = "sandan.test.kek"


@dataclass(frozen=True)
class IntakeRing(Keyring):
    context: str = "sandan.intake.kek"  # intake's, as sandan_intake.keys sets it


def test_intakes_values_and_wrapped_keys_from_before_the_move_still_open() -> None:
    assert unseal(KEY, INTAKE_SEALED, context="sandan.intake", owner_id="r-1", field_name="phone") == \
        "欧阳 13912345678"
    with pytest.raises(Unreadable):  # bound to its context: not another service's value
        unseal(KEY, INTAKE_SEALED, context="sandan.dispatch", owner_id="r-1", field_name="phone")
    intake = IntakeRing.parse(INTAKE_KEKS)
    assert intake.unwrap("kek-2025", "resident:r-1", INTAKE_WRAPPED) == KEY
    with pytest.raises(KeyringError, match="not the key that wrapped"):
        Keyring(intake.keks, "sandan.dispatch.kek").unwrap("kek-2025", "resident:r-1", INTAKE_WRAPPED)


@settings(max_examples=100)
@given(value=st.text(max_size=300), owner=st.text(alphabet="abc-123", min_size=1, max_size=20),
       context=st.sampled_from(["sandan.intake", "sandan.dispatch"]))
def test_a_sealed_value_opens_only_in_its_context_for_its_owner_and_field(value: str, owner: str,
                                                                          context: str) -> None:
    sealer = Sealer(context, owner, new_data_key())
    sealed = sealer("notes", value)
    assert sealed.startswith(SEALED) and sealer.open("notes", sealed) == value
    if len(value) >= 4:
        assert value not in sealed
    for other in (Sealer("sandan.other", owner, sealer.key), Sealer(context, owner + "x", sealer.key),
                  Sealer(context, owner, new_data_key())):
        with pytest.raises(Unreadable):
            other.open("notes", sealed)
    with pytest.raises(Unreadable):
        sealer.open("note", sealed)
    with pytest.raises(Unreadable):
        unseal(None, sealed, context=context, owner_id=owner, field_name="notes")  # the key destroyed
    assert repr(sealer.key) not in repr(sealer)


def test_legacy_values_read_without_a_key_and_anything_else_is_refused() -> None:
    assert legacy("old note") == LEGACY + "old note"
    assert unseal(None, legacy("old note"), context="c", owner_id="o", field_name="f") == "old note"
    with pytest.raises(ValueError, match="notes: not a sealed value"):
        unseal(KEY, "old note", context="c", owner_id="o", field_name="notes")
    assert seal(KEY, "x", context="c", owner_id="o", field_name="f") != seal(KEY, "x", context="c", owner_id="o",
                                                                             field_name="f")  # fresh nonces


def test_a_keyring_needs_its_context_and_never_shows_a_key() -> None:
    with pytest.raises(ValueError, match="context"):
        Keyring(((("k", KEY)),))
    ring = Keyring(((("kek-a", KEY)),), "sandan.test.kek")
    assert base64.b64encode(KEY).decode() not in repr(ring) and "kek-a" in repr(ring)
    rotated = ring.with_new_current(Keyring(((("kek-b", new_data_key())),), "ignored.kek"))
    assert (rotated.ids, rotated.context) == (("kek-b", "kek-a"), "sandan.test.kek")


def test_keyring_from_a_file_or_inline_names_the_variables(tmp_path: Path) -> None:
    ring = Keyring(((("kek-a", KEY)),), "sandan.test.kek")
    file = tmp_path / "keyring"
    file.write_text(f"# the test's\n{ring.text()}\n", encoding="utf-8")

    def read(path: str, inline: str) -> Keyring:
        return keyring_from(Ring, path, inline, file_variable="T_KEK_FILE", inline_variable="T_KEK", why="tests")

    assert read(str(file), "").keks == ring.keks == read("", ring.text()).keks
    for path, inline, message in (("", "", "T_KEK_FILE (a file holding the key-encryption keys) or T_KEK is "
                                           "required: tests"),
                                  (str(file), ring.text(), "set T_KEK_FILE or T_KEK, not both"),
                                  (str(tmp_path / "absent"), "", "T_KEK_FILE: cannot read"),
                                  ("", "kek-a", "T_KEK: each KEK must be written"),
                                  ("", "kek-a:not base64!", "T_KEK: KEK kek-a is not valid base64")):
        with pytest.raises(ValueError) as info:
            read(path, inline)
        assert str(info.value).startswith(message), info.value
        assert base64.b64encode(KEY).decode() not in str(info.value)


def test_data_keys_are_made_once_destroyed_for_good_and_rewrapped() -> None:
    engine = engine_for("memory://")
    table = data_keys_table("t_data_keys", MetaData(), owner="owner_id", owner_length=36)
    table.metadata.create_all(engine)
    old = Ring(((("kek-a", new_data_key())),))
    keys = DataKeys(engine, old, table, owner="owner_id", rewrap_hint="rewrap it")
    with engine.begin() as conn:
        made = keys.get_or_create(conn, "demand:d1", "d1")
        assert keys.get_or_create(conn, "demand:d1", "d1") == made
        keys.create(conn, "demand:d2", "d2")
    with engine.connect() as conn:
        stored = conn.execute(select(table.c.wrapped)).scalars().all()
    assert len(stored) == 2 and all(made not in bytes(w) for w in stored)  # kept wrapped only

    rotated = Ring((("kek-b", new_data_key()), *old.keks))
    keys = DataKeys(engine, rotated, table, owner="owner_id", rewrap_hint="rewrap it")
    keys.verify()
    assert keys.get("demand:d1") == made
    assert keys.rewrap() == 2 and keys.count_by_kek() == {"kek-b": 2}
    with pytest.raises(KeyringError, match="which the keyring does not hold: keep every old KEK in the keyring "
                                           "until `rewrap it`"):
        DataKeys(engine, old, table, owner="owner_id", rewrap_hint="rewrap it").verify()
    with engine.begin() as conn:
        assert keys.destroy(conn, key_ids=["demand:d1"]) == 1
        assert keys.destroy(conn, key_ids=["demand:d1"]) == 0
        assert keys.destroy(conn, owner_id="d2") == 1
    assert keys.get("demand:d1") is None and keys.count_by_kek() == {}
    engine.dispose()
