"""Residents' personal data with the services as real processes (issue 9): sealed at rest, erased on request, read
through a KEK rotation.

Given an intake of the test's own (its SQLite files and its log in a directory of their own, trusting the real
Keycloak), the shared stack's dispatch, and a resident with no account whom the grid worker registered with a
distinctive name, phone, address and e-mail, whose demand (its texts, a care tag, a rated comment) was served:
- before and after the erasure, no file in intake's directory (the event store, its -wal and -shm, the tables,
  the log) holds any of them, as UTF-8 or JSON escapes;
- before the erasure, the resident's and the demand's wrapped data keys are in those files, and a copy of them with
  the KEK opens the resident's name and the demand's description; after it, those wrapped keys' bytes and the
  record's old ciphertexts are in no file (secure_delete and the WAL checkpoint), and a fresh copy with the KEK
  opens neither, with any key it holds;
- the erasure publishes only that the demand's texts are gone (DemandTextsShredded, cause erasure, by demand id,
  nothing personal): the records before it, keyed by the demand and its order, are what they were, and scoring's
  rebuild (a replay of the whole log as of the erasure, and as of now) gives the digest it gave before, the
  member's points too;
- the erased resident's demand still walks through the read APIs, which say plainly that the contact was erased.
Then a rotated KEK reads what the old one sealed, `keys rewrap` moves every key, and the old KEK alone no longer
starts the service.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from sandan_contracts.rpc import dispatch_pb2 as dpb
from sandan_contracts.rpc import intake_pb2 as ipb
from sandan_contracts.rpc import intake_pb2_grpc
from sandan_eventbus.devtools import Received, ServiceProcess, read_topic
from sandan_intake.crypto import Unreadable, unseal
from sandan_intake.keys import Keyring, KeyringError, demand_key_id, resident_key_id
from sandan_scoring.engine import end_offsets, replay
from sandan_scoring.fold import Ledger
from sandan_scoring.report import Reports
from sandan_scoring.rules import RuleBook
from services.intake.tests.test_service import group_starts_at_end
from tests.integration.conftest import Stack, free_port
from tests.integration.people import Caller, CommunityPool, People
from tests.integration.scenario import Community, a_community, demand_reaches, order_for

pytestmark = pytest.mark.kafka


@dataclass
class OwnIntake:
    """The given-steps' services (scenario.Services): this test's intake, the shared stack's dispatch and people."""

    stack: Stack
    process: ServiceProcess

    @property
    def people(self) -> People:
        return self.stack.people

    @property
    def communities(self) -> CommunityPool:
        return self.stack.communities

    def intake_stub(self, caller: Caller | None) -> intake_pb2_grpc.IntakeStub:
        return intake_pb2_grpc.IntakeStub(self.stack.channel(self.process.grpc_address, caller))

    def dispatch_stub(self, caller: Caller | None):  # type: ignore[no-untyped-def]
        return self.stack.dispatch_stub(caller)


def intake_env(stack: Stack, directory: Path, group: str, kek: str, address: str = "") -> dict[str, str]:
    return {"KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap, "LOG_LEVEL": "INFO", **stack.identity(),
            "INTAKE_EVENTSTORE_URL": f"sqlite:///{directory}/intake-events.db",
            "INTAKE_DATABASE_URL": f"sqlite:///{directory}/intake.db", "INTAKE_GRPC_ADDRESS": address,
            "INTAKE_CONSUMER_GROUP": group, "INTAKE_KEK": kek}


@asynccontextmanager
async def intake_of_its_own(stack: Stack, directory: Path, group: str, kek: str) -> AsyncIterator[OwnIntake]:
    """An intake process on `directory` (its log there too), reading dispatch's facts from now on."""
    directory.mkdir(exist_ok=True)
    address = f"127.0.0.1:{free_port()}"
    process = ServiceProcess("sandan_intake", intake_env(stack, directory, group, kek, address), address,
                             directory / "intake.log")
    try:
        await asyncio.to_thread(process.start)
        yield OwnIntake(stack, process)
    finally:
        await asyncio.to_thread(process.stop)


@dataclass(frozen=True)
class Someone:
    """A resident as distinctive as a test can make them: none of these strings occurs anywhere by chance."""

    name: str
    phone: str
    address: str
    email: str
    description: str
    other_text: str
    comment: str

    @classmethod
    def make(cls) -> Someone:
        tag = uuid.uuid4().hex[:8]
        digits = f"{random.randrange(10**8):08d}"
        return cls(f"Ximen Qiaoyun {tag}", f"+86 137 {digits[:4]} {digits[4:]}", f"{tag} Osmanthus Alley, Tower 9",
                   f"ximen.{tag}@example.org", f"Roof tiles cracked above the bedroom {tag}",
                   f"Roof repair {tag}", f"Fixed before the rain came {tag}")

    @property
    def secrets(self) -> list[str]:
        return [self.name, self.phone, self.address, self.email, self.description, self.other_text, self.comment]


def traces_of(directory: Path, who: Someone) -> dict[str, list[str]]:
    """`strings` over every file in the directory: which of the resident's strings each file holds."""
    found = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        raw = path.read_bytes()
        hits = [s for s in who.secrets if s.encode() in raw or s.encode("utf-16-le") in raw]
        if hits:
            found[path.name] = hits
    return found


@dataclass(frozen=True)
class Copied:
    """What a copy of intake's files holds of the resident, read with sqlite3 as anyone holding the files would."""

    wrapped: dict[str, bytes]  # every wrapped data key in the copy, by key id
    kek_ids: dict[str, str]
    sealed_name: str | None  # the record's sealed name (None once erased)
    sealed_description: str  # the demand's sealed description, in the append-only event store


def copy_of(directory: Path, into: Path, resident_id: str) -> Copied:
    """Copy every database file (each with its -wal and -shm, as a backup of the directory would) and read it."""
    into.mkdir()
    for path in directory.iterdir():
        if ".db" in path.name:
            shutil.copy2(path, into / path.name)
    with sqlite3.connect(into / "intake.db") as db:
        keys = db.execute("SELECT key_id, kek_id, wrapped FROM intake_data_keys").fetchall()
        (name,) = db.execute("SELECT name_sealed FROM intake_residents WHERE resident_id = ?",
                             (resident_id,)).fetchone()
    with sqlite3.connect(into / "intake-events.db") as db:
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                  if {"topic", "state"} <= {c[1] for c in db.execute(f"PRAGMA table_info({t})")}]
        states = [json.loads(state) for t in tables
                  for (state,) in db.execute(f"SELECT state FROM {t} WHERE topic LIKE '%Demand.Posted'")]
    (posted,) = [s for s in states if s.get("resident_id") == resident_id]
    return Copied({k: bytes(w) for k, _, w in keys}, {k: kek for k, kek, _ in keys}, name, posted["description"])


def opened_from(copied: Copied, kek: Keyring, resident_id: str, sealed_name: str) -> list[str]:
    """What the KEK and the copy's keys open: the resident's name (`sealed_name`, from a copy taken before the
    erasure) and the demand's description, each tried with every data key the copy holds."""
    data_keys = []
    for key_id, wrapped in copied.wrapped.items():
        try:
            data_keys.append(kek.unwrap(copied.kek_ids[key_id], key_id, wrapped))
        except KeyringError:
            continue
    found = []
    for field_name, sealed in (("name", sealed_name), ("description", copied.sealed_description)):
        for key in data_keys:
            try:
                found.append(unseal(key, sealed, resident_id=resident_id, field_name=field_name))
            except Unreadable:
                continue
    return found


def files_holding(directory: Path, needles: dict[str, bytes]) -> dict[str, list[str]]:
    """Which of `needles` (raw bytes) each file in the directory holds."""
    found = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        raw = path.read_bytes()
        hits = [name for name, needle in needles.items() if needle in raw]
        if hits:
            found[path.name] = hits
    return found


async def register_and_serve(own: OwnIntake, c: Community, who: Someone) -> tuple[str, str, str]:
    """The grid worker registers `who` (no account) and posts their demand; a member serves it; the grid worker
    confirms and rates it for them. Returns (resident id, demand id, order id)."""
    worker = own.intake_stub(c.grid_worker)
    resident_id = (await worker.RegisterResident(ipb.RegisterResidentRequest(
        community_id=c.community_id, name=who.name, phone=who.phone, address=who.address,
        email=who.email))).resident_id
    demand = await worker.PostDemand(ipb.PostDemandRequest(
        client_request_id=uuid.uuid4().hex, resident_id=resident_id, community_id=c.community_id, grid_id=c.grid_id,
        other_text=who.other_text, description=who.description, urgency="urgent", care_tags=["disabled"],
        channel="hotline"))
    order = await order_for(own, c, demand.demand_id)
    member = own.dispatch_stub(c.member(0))
    await own.dispatch_stub(c.secretary).OfferOrder(dpb.OfferOrderRequest(order_id=order.order_id))
    await member.AcceptOrder(dpb.AcceptOrderRequest(order_id=order.order_id, member_id=c.members[0]))
    await demand_reaches(own, c, demand.demand_id, "accepted")
    contact = await own.intake_stub(c.member(0)).GetServiceContact(ipb.ServiceContactRequest(
        demand_id=demand.demand_id, member_id=c.members[0]))
    assert (contact.phone, contact.description) == (who.phone, who.description)  # opened for the holder
    await member.CompleteService(dpb.CompleteServiceRequest(order_id=order.order_id, member_id=c.members[0],
                                                            hours=2.0))
    await demand_reaches(own, c, demand.demand_id, "served")
    await worker.ConfirmCompletion(ipb.DemandRef(demand_id=demand.demand_id))
    await worker.RateService(ipb.RateServiceRequest(demand_id=demand.demand_id, stars=5, comment=who.comment))
    return resident_id, demand.demand_id, order.order_id


async def rebuilt(bootstrap: str, target: dict) -> Ledger:  # type: ignore[type-arg]
    """scoring's rebuild: the whole log folded up to `target` with the current rules."""
    ledger = Ledger(RuleBook().get("2026.1"))
    await replay(bootstrap, ledger, target)
    return ledger


def points_of(ledger: Ledger, member_id: str) -> list[tuple[str, str, int]]:
    return sorted((e.entry_id, e.rule, e.points) for e in (ledger.entries[i] for i in ledger.by_member.get(member_id,
                                                                                                         [])))


async def test_erasure_leaves_no_trace_in_intakes_files_and_changes_no_digest(stack: Stack, tmp_path: Path) -> None:
    directory, group = tmp_path / "intake", f"intake-pd-{uuid.uuid4().hex[:8]}"
    await group_starts_at_end(stack.bootstrap, group, "dispatch.orders.v1")
    who, kek = Someone.make(), Keyring.generate("it-pd")
    async with intake_of_its_own(stack, directory, group, kek.text()) as own:
        c = await a_community(own, members=1)
        resident_id, demand_id, order_id = await register_and_serve(own, c, who)
        secretary = own.intake_stub(c.secretary)
        export = await secretary.ExportResidentData(ipb.ResidentRef(resident_id=resident_id))
        (exported,) = export.demands
        assert (export.name, export.phone, exported.description, exported.comment, list(exported.care_tags)) == (
            who.name, who.phone, who.description, who.comment, ["disabled"])
        assert [(r.role, r.member_id) for r in exported.contact_releases] == [("member", c.members[0])]

        # before the erasure: sealed, in every file and on every topic; the wrapped keys are in the files, and
        # a copy of them with the KEK opens what the resident and the worker typed
        assert traces_of(directory, who) == {}
        key_ids = (resident_key_id(resident_id), demand_key_id(demand_id))
        before_copy = copy_of(directory, tmp_path / "copy-before", resident_id)
        assert set(key_ids) <= set(before_copy.wrapped)
        assert before_copy.sealed_name is not None and before_copy.sealed_name.startswith("gcm1:")
        sealed_name = before_copy.sealed_name
        assert opened_from(before_copy, kek, resident_id, sealed_name) == [who.name, who.description]
        needles = {**{k: before_copy.wrapped[k] for k in key_ids}, "name_sealed": sealed_name.encode()}
        held = files_holding(directory, needles)
        assert {k for hits in held.values() for k in hits} == set(needles)
        assert set(held) <= {"intake.db", "intake.db-wal"}, held
        published = {topic: await stack.read_all(topic, key) for topic, key in (
            ("intake.demands.v1", demand_id), ("dispatch.orders.v1", order_id))}
        assert [r.envelope.type for r in published["intake.demands.v1"]] == [
            "DemandPosted", "CompletionConfirmed", "ServiceRated"]
        assert not [s for records in published.values() for r in records for s in who.secrets if s.encode() in r.raw]
        posted = next(r for r in published["intake.demands.v1"] if r.envelope.type == "DemandPosted")
        assert (posted.envelope.data["care_tags"], posted.envelope.data["special_care"]) == ([], True)
        at_erasure = await end_offsets(stack.bootstrap)
        before = await rebuilt(stack.bootstrap, at_erasure)
        points = points_of(before, c.members[0])
        assert {rule for _, rule, _ in points} >= {"service_completed", "special_care_bonus"}

        erased = await secretary.EraseResident(ipb.EraseResidentRequest(resident_id=resident_id,
                                                                        reason="resident_request"))
        assert erased.keys_destroyed == 2  # the resident's and the demand's

        # after: still nothing in any file; the wrapped keys and the record's ciphertext are gone from every
        # file (tables, event store, their -wal), and a copy with the KEK opens nothing of the resident's
        assert traces_of(directory, who) == {}
        assert files_holding(directory, needles) == {}
        after_copy = copy_of(directory, tmp_path / "copy-after", resident_id)
        assert not set(key_ids) & set(after_copy.wrapped)
        assert after_copy.sealed_name is None
        assert after_copy.sealed_description == before_copy.sealed_description  # the log keeps its ciphertext
        assert opened_from(after_copy, kek, resident_id, sealed_name) == []
        # the erased resident's demand walks through the read APIs
        for caller in (c.secretary, c.grid_worker, c.grid_leader):
            seen = await own.intake_stub(caller).GetDemand(ipb.DemandRef(demand_id=demand_id))
            assert (seen.status, seen.stars, seen.member_id, seen.special_care, seen.resident_erased) == (
                "confirmed", 5, c.members[0], True, True)
            assert list(seen.care_tags) == []
        history = await secretary.GetDemandHistory(ipb.DemandRef(demand_id=demand_id))
        assert [e.what for e in history.entries] == ["Posted", "AcceptanceRecorded", "ContactReleased",
                                                     "ServiceRecorded", "CompletionConfirmed", "Rated",
                                                     "TextsShredded"]
        contact = await secretary.GetServiceContact(ipb.ServiceContactRequest(demand_id=demand_id))
        assert (contact.erased, contact.name, contact.phone, contact.address, contact.description) == (
            True, "", "", "", "")
        reached = await own.intake_stub(stack.people.client("sandan-notify")).GetDemandContact(
            ipb.DemandRef(demand_id=demand_id))
        assert (reached.erased, reached.phone, reached.email) == (True, "", "")
        export = await secretary.ExportResidentData(ipb.ResidentRef(resident_id=resident_id))
        assert (export.erased, export.name, export.demands[0].description, export.demands[0].stars) == (
            True, "", "", 5)
        assert [(e.what, e.role) for e in export.record_history.entries] == [
            ("Registered", "grid_worker"), ("Exported", "branch_secretary"), ("Erased", "branch_secretary"),
            ("Exported", "branch_secretary")]
        assert traces_of(directory, who) == {}

    # published: only that the demand's texts are gone (so the others forget their copies), by demand id; what
    # the topics held is unchanged, and scoring's rebuild, as of the erasure and as of now, gives the same digest
    def shredded(found: list[Received]) -> bool:
        return any(r.envelope is not None and r.envelope.type == "DemandTextsShredded" for r in found)

    demands = await read_topic(stack.bootstrap, "intake.demands.v1", until=shredded,
                               where=lambda r: r.key == demand_id, timeout=60)
    assert [r.raw for r in demands[:len(published["intake.demands.v1"])]] == [
        r.raw for r in published["intake.demands.v1"]]
    (gone,) = demands[len(published["intake.demands.v1"]):]
    assert gone.envelope is not None and (gone.envelope.type, gone.envelope.data) == (
        "DemandTextsShredded", {"demand_id": demand_id, "cause": "erasure"})
    assert resident_id.encode() not in gone.raw and not [s for s in who.secrets if s.encode() in gone.raw]
    orders = await stack.read_all("dispatch.orders.v1", order_id)
    assert [r.raw for r in orders] == [r.raw for r in published["dispatch.orders.v1"]]
    again = await rebuilt(stack.bootstrap, at_erasure)
    assert Reports(again).digest() == Reports(before).digest()
    now = await rebuilt(stack.bootstrap, await end_offsets(stack.bootstrap))
    assert points_of(now, c.members[0]) == points


def keys_command(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sandan_intake.keys", *args],
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=60, check=False)


async def test_a_rotated_kek_still_reads_old_data_and_the_old_one_alone_no_longer_starts(stack: Stack,
                                                                                        tmp_path: Path) -> None:
    directory, group = tmp_path / "intake", f"intake-kek-{uuid.uuid4().hex[:8]}"
    await group_starts_at_end(stack.bootstrap, group, "dispatch.orders.v1")
    old, new = Keyring.generate("kek-2025"), Keyring.generate("kek-2026")
    who = Someone.make()
    async with intake_of_its_own(stack, directory, group, old.text()) as own:
        c = await a_community(own, members=1)
        resident_id = (await own.intake_stub(c.grid_worker).RegisterResident(ipb.RegisterResidentRequest(
            community_id=c.community_id, name=who.name, phone=who.phone, address=who.address))).resident_id

    rotated = old.with_new_current(new)  # the new KEK first; the old one kept readable
    async with intake_of_its_own(stack, directory, group, rotated.text()) as own:
        export = await own.intake_stub(c.secretary).ExportResidentData(ipb.ResidentRef(resident_id=resident_id))
        assert (export.name, export.phone, export.address) == (who.name, who.phone, who.address)

    env = intake_env(stack, directory, group, rotated.text())
    status = keys_command(env, "status")
    assert status.returncode == 0, status.stderr
    wrapped = {kek: int(n.split()[0]) for kek, n in (line.split("\t") for line in status.stdout.splitlines())}
    assert wrapped.get("kek-2025", 0) >= 1  # at least the resident's key; the community's accounts may add more
    moved = keys_command(env, "rewrap")
    assert moved.returncode == 0, moved.stderr
    assert moved.stdout.splitlines()[0] == f"re-wrapped {wrapped['kek-2025']} data keys under kek-2026"
    assert moved.stdout.splitlines()[1:] == [f"kek-2026\t{sum(wrapped.values())}  (current)"]

    async with intake_of_its_own(stack, directory, group, new.text()) as own:  # the old KEK retired
        export = await own.intake_stub(c.secretary).ExportResidentData(ipb.ResidentRef(resident_id=resident_id))
        assert export.phone == who.phone

    with pytest.raises(RuntimeError, match="exited with 2") as refused:
        async with intake_of_its_own(stack, directory, group, old.text()):
            pass
    assert "data keys are wrapped by KEK 'kek-2026', which the keyring does not hold" in str(refused.value)
    assert traces_of(directory, who) == {}
