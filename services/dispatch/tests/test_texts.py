"""What members and secretaries write about a service to a resident (a completion's notes, an escalation's note) is
sealed under the demand's data key: never in plaintext in dispatch's files, readable while the key exists, gone
for good once it is destroyed; old plaintext events still load; the service does not start without its KEK.

On a SQLite file (the event store, its -wal, and the contacts/keys tables in the same file) the raw bytes are read;
on PostgreSQL (a schema of its own) every value of every table in the schema is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import psycopg
import pytest
from eventsourcing.persistence import StoredEvent, Tracking
from sqlalchemy import select

from sandan_contracts import Event, decode, encode
from sandan_contracts.events import DemandPosted, DemandTextsShredded, RedoRequested
from sandan_dispatch.application import DispatchApplication
from sandan_dispatch.contacts import Contacts
from sandan_dispatch.domain import Member, Order
from sandan_dispatch.keys import DemandKeys, Keyring, KeyringError, data_keys, demand_key_id
from sandan_dispatch.publishing import to_contract
from sandan_eventbus.audit import history
from sandan_eventbus.auth.principal import Principal, acting_as
from sandan_eventbus.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from sandan_eventbus.trace import traced

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
NOTES = "Mrs Ouyang-7Q3 fell on the stairs; her son's number is 13912345678"
NOTE = "escalating: the landlord-X9K refuses to fix the heating for Mrs Ouyang-7Q3"
NOTE_COUNTY = "county: a joint meeting about the heating of building 4-Z2W"
SECRETS = (NOTES, NOTE, NOTE_COUNTY, "Ouyang-7Q3", "13912345678", "landlord-X9K", "4-Z2W")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/dispatch.db"
    else:
        yield request.getfixturevalue("postgres_schema_url")  # root conftest: a schema of its own


def open_app(url: str, keyring: Keyring) -> DispatchApplication:
    """As __main__ wires it: the contacts and the demands' keys on DISPATCH_DATABASE_URL (here the store's URL)."""
    contacts = Contacts(url)
    return DispatchApplication(url, contacts=contacts, keys=DemandKeys(contacts.engine, keyring),
                               clock=lambda: T0)


def close(app: DispatchApplication) -> None:
    app.close()
    app.keys.close()
    assert app.contacts is not None
    app.contacts.engine.dispose()


_offsets = iter(range(1, 1_000_000))


def consume(app: DispatchApplication, event: Event) -> list[Any]:
    """What the inbox does with a fact from intake: handle it under the fact's trace, save with the position."""
    offset = next(_offsets)
    envelope, decoded = decode(encode(event, event_id=f"intake:{offset}", producer="intake", occurred_at=T0,
                                      correlation_id=f"corr-{offset}", causation_id=None))
    with traced(envelope.correlation_id, envelope.event_id):
        changed = app.on_demand_event(envelope, decoded)
        app.save_tracked(*changed, tracking=Tracking("kafka:intake.demands.v1:0", offset))
    return changed


def served_order(app: DispatchApplication, demand_id: str, *, notes: str = NOTES, note: str = NOTE) -> str:
    """An order escalated to the town with `note`, then dispatched, accepted and completed with `notes`."""
    if app._maybe(Member, Member.create_id("m1")) is None:
        app.report_unit("u1", "c1", "County Health Bureau")
        app.report_member("m1", "u1", "c1", "g1", ["medical"], [])
    consume(app, DemandPosted(demand_id=demand_id, community_id="c1", grid_id="g1", category="medical",
                              urgency="normal", channel="hotline", due_at=T0 + timedelta(days=1),
                              deadline_seconds=86_400))
    order_id = str(Order.create_id(demand_id))
    app.escalate_order(order_id, "no_capacity", [], note)
    app.dispatch_order(order_id, "m1")
    app.accept_order(order_id, "m1")
    app.complete_service(order_id, "m1", 1.5, notes)
    return order_id


def raw_bytes(url: str) -> bytes:
    """Everything dispatch's database holds, as bytes: the SQLite file and its -wal/-shm/-journal, or every value
    of every table in the PostgreSQL schema (bytea as its bytes, text as UTF-8)."""
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        return b"".join(Path(path + suffix).read_bytes() for suffix in ("", "-wal", "-shm", "-journal")
                        if Path(path + suffix).exists())
    schema = parse_qs(urlparse(url).query)["schema"][0]
    out = []
    with psycopg.connect(url.split("?", 1)[0], autocommit=True) as conn:
        tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,))]
        assert tables
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{schema}"."{table}"'):
                for value in row:
                    if isinstance(value, bytes | bytearray | memoryview):
                        out.append(bytes(value))
                    elif value is not None:
                        out.append(str(value).encode())
    return b"\n".join(out)


def assert_no_secret_in(raw: bytes) -> None:
    assert b"d-sealed" in raw  # the dump does hold the store (its ids), so an absence below means something
    for secret in SECRETS:
        assert secret.encode() not in raw, secret


# ---- sealed at rest, read while the key exists, gone once it is destroyed -----------------------------------------
def test_notes_are_sealed_at_rest_read_back_and_forgotten_for_good(store_url: str) -> None:
    keyring = Keyring.generate("kek-2025")
    app = open_app(store_url, keyring)
    try:
        order_id = served_order(app, "d-sealed")
        texts = app.order_texts(order_id)
        assert (texts.notes, texts.escalation_notes, texts.shredded) == (NOTES, {"town": NOTE}, False)
        # the published fact says only that there are notes
        [completed] = [to_contract(app.mapper.to_domain_event(n)) for n in app.recorder.select_notifications(1, 100)
                       if n.topic.endswith("Order.Completed")]
        assert completed.model_dump()["has_notes"] is True
    finally:
        close(app)
    assert_no_secret_in(raw_bytes(store_url))

    app = open_app(store_url, keyring)  # a restart reads them again
    try:
        assert app.order_texts(order_id).notes == NOTES
        events_before = len(list(app.recorder.select_notifications(1, 1000)))
        office = Principal(subject="sub-dpo", roles=frozenset({"county_office"}), county_id="k1",
                           acting_role="county_office")
        with acting_as(office), pytest.raises(PermissionDenied):  # internal work only: no person forgets texts
            app.forget_demand_texts("d-sealed", "erasure")
        with traced("corr-erasure", "intake:erasure-1"):
            forgotten = app.forget_demand_texts("d-sealed", "erasure")
        assert forgotten is not None and forgotten.texts_shredded
        texts = app.order_texts(order_id)
        assert (texts.notes, texts.escalation_notes, texts.shredded) == ("", {"town": ""}, True)
        with app.keys.engine.connect() as conn:  # the key row is gone
            assert conn.execute(select(data_keys.c.key_id)
                                .where(data_keys.c.key_id == demand_key_id("d-sealed"))).all() == []
        assert app.keys.opener("d-sealed") is None
        # recorded once, with its cause and who caused it (SYSTEM: no subject, the causing fact instead)
        last = history(app, Order.create_id("d-sealed"))[-1]
        assert (last.what, last.subject, last.caused_by) == ("TextsShredded", "", "intake:erasure-1")
        stored = app.mapper.to_domain_event(list(app.recorder.select_notifications(1, 1000))[-1])
        assert (stored.cause, stored.fields) == ("erasure", ["notes", "note"])
        assert to_contract(stored) is None  # internal: nothing of it goes out
        assert app.forget_demand_texts("d-sealed", "retention") is not None  # idempotent: nothing more recorded
        assert len(list(app.recorder.select_notifications(1, 1000))) == events_before + 1
        # a redo brings the order back: new texts about the demand are refused, and no key is made again
        consume(app, RedoRequested(demand_id="d-sealed", redo_count=1, member_id="m1"))
        with pytest.raises(FailedPrecondition, match="cannot keep the note: the texts of demand d-sealed were "
                                                     "shredded"):
            app.escalate_order(order_id, "needs_resources", ["u1"], "more about her")
        assert app.keys.opener("d-sealed") is None
        assert app.escalate_order(order_id, "needs_resources", ["u1"]).level == "county"  # the work goes on
    finally:
        close(app)
    assert_no_secret_in(raw_bytes(store_url))


def test_intakes_fact_forgets_the_texts_once_and_a_demand_never_seen_is_no_effect(store_url: str) -> None:
    """DemandTextsShredded from intake.demands.v1, as the inbox hands it: the key destroyed, TextsShredded recorded
    as caused by the fact (SYSTEM: no subject); again (the other cause) adds nothing; an unknown demand is a no-op
    (saved with its position only: never refused, so never dead-lettered)."""
    app = open_app(store_url, Keyring.generate())
    try:
        order_id = served_order(app, "d-sealed")
        [forgotten] = consume(app, DemandTextsShredded(demand_id="d-sealed", cause="retention"))
        assert forgotten.texts_shredded and app.keys.opener("d-sealed") is None
        assert (app.order_texts(order_id).notes, app.order_texts(order_id).escalation_notes) == ("", {"town": ""})
        last = history(app, Order.create_id("d-sealed"))[-1]
        assert (last.what, last.subject, last.role) == ("TextsShredded", "", "")
        assert last.caused_by.startswith("intake:")
        count = len(list(app.recorder.select_notifications(1, 1000)))
        consume(app, DemandTextsShredded(demand_id="d-sealed", cause="erasure"))
        assert consume(app, DemandTextsShredded(demand_id="d-never-seen", cause="erasure")) == []
        assert len(list(app.recorder.select_notifications(1, 1000))) == count
        assert app.recorder.max_tracking_id("kafka:intake.demands.v1:0") is not None  # the positions were saved
    finally:
        close(app)
    assert_no_secret_in(raw_bytes(store_url))


def test_a_demand_never_seen_has_nothing_to_forget_and_bad_input_names_the_field() -> None:
    app = DispatchApplication("memory://", contacts=Contacts("memory://"), clock=lambda: T0)
    try:
        assert app.forget_demand_texts("d-unknown", "retention") is None
        assert list(app.recorder.select_notifications(1, 10)) == []
        with pytest.raises(InvalidArgument) as info:
            app.forget_demand_texts("d-unknown", "because")
        assert info.value.field == "cause"
        with pytest.raises(InvalidArgument) as info:
            app.forget_demand_texts("", "erasure")
        assert info.value.field == "demand_id"
    finally:
        app.close()


def test_empty_texts_make_no_key(store_url: str) -> None:
    app = open_app(store_url, Keyring.generate())
    try:
        order_id = served_order(app, "d-sealed", notes="", note="")
        texts = app.order_texts(order_id)
        assert (texts.notes, texts.escalation_notes) == ("", {})
        assert app.keys.keys.count_by_kek() == {}
    finally:
        close(app)


# ---- events stored before sealing --------------------------------------------------------------------------------
def test_events_stored_before_sealing_still_load_and_read_as_they_were(store_url: str) -> None:
    """Order.Completed and Order.Escalated of class version 1 carried the texts in plaintext: they load (legacy
    values), read back, and once the demand's texts are shredded the read path shows nothing of them either."""
    app = open_app(store_url, Keyring.generate())
    try:
        served_order(app, "d-sealed", notes="x", note="y")  # templates of today's events
        notifications = list(app.recorder.select_notifications(1, 1000))
        template = {n.topic.rsplit(".", 1)[1]: json.loads(n.state) for n in notifications
                    if n.originator_id == Order.create_id("d-sealed")}
        consume(app, DemandPosted(demand_id="d-old", community_id="c1", grid_id="g1", category="medical",
                                  urgency="normal", channel="hotline", due_at=T0 + timedelta(days=1),
                                  deadline_seconds=86_400))
        order_id = Order.create_id("d-old")
        topic = next(n.topic for n in notifications if n.topic.endswith("Order.Escalated")).rsplit(".", 1)[0]
        old = []
        for version, (name, text_field, text) in enumerate(
                (("Escalated", "note", "the town should call her daughter"),
                 ("Completed", "notes", "changed the bulb in her kitchen")), start=2):
            state = {k: v for k, v in template[name].items() if k not in ("class_version", "__trace__")}
            old.append(StoredEvent(order_id, version, f"{topic}.{name}",
                                   json.dumps({**state, "demand_id": "d-old", text_field: text}).encode()))
        # (Accepted between them is not needed: the aggregate applies what it is given)
        app.recorder.insert_events(old)
        order = app.order(str(order_id))
        assert (order.status, order.level) == ("completed", "town")
        texts = app.order_texts(str(order_id))
        assert (texts.notes, texts.escalation_notes) == ("changed the bulb in her kitchen",
                                                         {"town": "the town should call her daughter"})
        completed = [to_contract(app.mapper.to_domain_event(n)) for n in app.recorder.select_notifications(1, 1000)
                     if n.originator_id == order_id and n.topic.endswith("Completed")]
        assert [c.model_dump()["has_notes"] for c in completed] == [True]  # published as before
        app.forget_demand_texts("d-old", "retention")
        texts = app.order_texts(str(order_id))
        assert (texts.notes, texts.escalation_notes, texts.shredded) == ("", {"town": ""}, True)
    finally:
        close(app)
    # the control for the raw reads above: a plaintext note is seen there (legacy ones stay until a migration)
    assert b"changed the bulb in her kitchen" in raw_bytes(store_url)


# ---- the KEK: rotation, and the service's start -----------------------------------------------------------------
def test_a_rotated_kek_reads_old_texts_and_a_missing_or_wrong_one_is_refused(store_url: str) -> None:
    old = Keyring.generate("kek-2025")
    app = open_app(store_url, old)
    try:
        order_id = served_order(app, "d-sealed")
    finally:
        close(app)
    with pytest.raises(KeyringError, match="KEK 'kek-2025' is not the key that wrapped"):
        open_app(store_url, Keyring.generate("kek-2025"))
    with pytest.raises(KeyringError, match="wrapped by KEK 'kek-2025', which the keyring does not hold"):
        open_app(store_url, Keyring.generate("kek-2026"))

    rotated = old.with_new_current(Keyring.generate("kek-2026"))
    app = open_app(store_url, rotated)
    try:
        assert app.order_texts(order_id).notes == NOTES
        served_order(app, "d-sealed-2")  # a new key goes under the new KEK
        assert app.keys.keys.count_by_kek() == {"kek-2025": 1, "kek-2026": 1}
        assert app.keys.keys.rewrap() == 1
        assert app.keys.keys.count_by_kek() == {"kek-2026": 2}
    finally:
        close(app)
    app = open_app(store_url, Keyring(rotated.keks[:1]))  # the old KEK dropped after the rewrap
    try:
        assert app.order_texts(order_id).escalation_notes == {"town": NOTE}
    finally:
        close(app)


def test_intakes_keyring_never_opens_dispatchs_keys() -> None:
    """Same KEK bytes, other service: the wrapping context differs, so a shared secret would still not cross."""
    from sandan_eventbus.keyring import Keyring as Shared

    dispatch = Keyring.generate("kek-1")
    wrapped = dispatch.wrap("demand:d1", b"k" * 32)
    with pytest.raises(KeyringError):
        Shared(dispatch.keks, context="sandan.intake.kek").unwrap(wrapped[0], "demand:d1", wrapped[1])
    assert dispatch.unwrap(wrapped[0], "demand:d1", wrapped[1]) == b"k" * 32


def run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCH_")}
    return subprocess.run([sys.executable, "-m", "sandan_dispatch"], env={**base, **env}, capture_output=True,
                          text=True, timeout=120, check=False)


def test_a_missing_or_wrong_kek_stops_the_service_at_start_with_a_clear_message(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/dispatch.db"
    keyring = Keyring.generate("kek-2025")
    app = open_app(url, keyring)
    try:
        served_order(app, "d-sealed")
    finally:
        close(app)
    env = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9", "DISPATCH_EVENTSTORE_URL": url,
           "SANDAN_OIDC_ISSUER": "http://127.0.0.1:9/realms/none", "SANDAN_GRPC_PLAINTEXT": "allow"}
    wrong = Keyring.generate("kek-2025")  # the right id, another key
    kek_file = tmp_path / "kek"
    kek_file.write_text("# not a keyring\nkek-2025\n", encoding="utf-8")
    cases = [
        ({}, "dispatch: DISPATCH_KEK_FILE (a file holding the key-encryption keys) or DISPATCH_KEK is required"),
        ({"DISPATCH_KEK": wrong.text()}, "dispatch: DISPATCH_KEK_FILE/DISPATCH_KEK: KEK 'kek-2025' is not the key "
                                         "that wrapped the stored data keys"),
        ({"DISPATCH_KEK": Keyring.generate("kek-2026").text()},
         "dispatch: DISPATCH_KEK_FILE/DISPATCH_KEK: data keys are wrapped by KEK 'kek-2025', which the keyring "
         "does not hold"),
        ({"DISPATCH_KEK_FILE": str(kek_file)}, "DISPATCH_KEK_FILE: each KEK must be written <kek id>:<base64"),
        ({"DISPATCH_KEK_FILE": str(tmp_path / "absent")}, "DISPATCH_KEK_FILE: cannot read"),
        ({"DISPATCH_KEK": keyring.text(), "DISPATCH_KEK_FILE": str(kek_file)},
         "set DISPATCH_KEK_FILE or DISPATCH_KEK"),
    ]
    for extra, message in cases:
        done = run({**env, **extra})
        assert done.returncode == 2, done.stderr
        assert message in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
        for secret in (keyring.text().split(":", 1)[1], wrong.text().split(":", 1)[1]):
            assert secret not in done.stderr


def test_the_keys_command_generates_reports_and_rewraps(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/dispatch.db"

    def keys(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCH_")}
        return subprocess.run([sys.executable, "-m", "sandan_dispatch.keys", *args], env={**base, **env},
                              capture_output=True, text=True, timeout=120, check=False)

    generated = keys({}, "generate", "--id", "kek-2026")
    assert generated.returncode == 0
    new = Keyring.parse(generated.stdout)
    assert new.ids == ("kek-2026",)
    old = Keyring.generate("kek-2025")
    app = open_app(url, old)
    try:
        order_id = served_order(app, "d-sealed")
    finally:
        close(app)
    env = {"DISPATCH_EVENTSTORE_URL": url, "DISPATCH_KEK": old.with_new_current(new).text()}
    assert keys(env, "status").stdout.splitlines() == ["kek-2025\t1"]
    assert keys(env, "rewrap").stdout.splitlines() == ["re-wrapped 1 data keys under kek-2026",
                                                       "kek-2026\t1  (current)"]
    refused = keys({**env, "DISPATCH_KEK": old.text()}, "status")
    assert refused.returncode == 2 and "which the keyring does not hold" in refused.stderr
    app = open_app(url, new)  # the old KEK is no longer needed
    try:
        assert app.order_texts(order_id).notes == NOTES
    finally:
        close(app)
