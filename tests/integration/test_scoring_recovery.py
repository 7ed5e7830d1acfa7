"""Disaster recovery of scoring: its database is a cache of the Kafka log, not a record of its own.

A scoring process folds a generated county's facts from the shared broker into its SQLite file; the file is then
deleted (a lost volume, a dropped database) and a fresh scoring on a new file rebuilds from the topics at start-up.
It must come back with the same ledger: per member the same entries and, for the county, the same digest. This is
the claim docs/operations/backup-and-restore.md rests on (scoring's database needs no backup of its own; the topics
do: replication 3, min.insync.replicas 2, MirrorMaker 2 to a second cluster).

On a shared broker other runs may publish facts while this test runs, and then the rebuilt process has folded more
than the lost one (another digest, rightly). Each process's positions are read from its file after it stopped
(stored with its ledger rows in one transaction): when they are equal, the digests and the stored entries must be;
when they are not, the lost file's entries must equal a fold of the topics up to the lost file's positions (the
engine's replay, what Rebuild runs), and the generated county's members' ledgers must be equal either way.
"""

from __future__ import annotations

import asyncio
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from sandan_contracts.rpc import scoring_pb2 as spb
from sandan_contracts.rpc import scoring_pb2_grpc
from sandan_eventbus.devtools import ServiceProcess
from sandan_scoring.engine import end_offsets, replay
from sandan_scoring.fold import Ledger
from sandan_scoring.report import Reports
from sandan_scoring.rules import RuleBook
from sandan_scoring.simulate import County, produce
from sandan_scoring.store import Positions, ScoringStore
from tests.integration.conftest import free_port, places
from tests.integration.people import Caller, People, aio_channel_as, identity_env

pytestmark = pytest.mark.kafka

SAMPLE = 25  # members whose ledgers are compared entry by entry
Ledgers = dict[str, set[tuple[str, int, str, str]]]


@dataclass(frozen=True)
class Seen:
    """What a stopped scoring process had: its digest and members' ledgers (asked while it ran), and the
    positions and entry ids its file holds."""

    digest: spb.DigestReply
    ledgers: Ledgers
    ends_before_digest: Positions
    positions: Positions
    entry_ids: set[str]
    rule_set_version: str

def _moved(positions: Positions) -> Positions:
    """Positions without the partitions still at 0 (a store records only those it read from)."""
    return {tp: offset for tp, offset in positions.items() if offset}


class Scoring:
    """One scoring process on its own SQLite file, and channels to it as the county office and the operator."""

    def __init__(self, bootstrap: str, workdir: Path, name: str, identity: dict[str, str]) -> None:
        self.database = workdir / f"{name}.db"
        address = f"127.0.0.1:{free_port()}"
        self.process = ServiceProcess("sandan_scoring", {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "SCORING_DATABASE_URL": f"sqlite:///{self.database}",
            "SCORING_GRPC_ADDRESS": address,
            "LOG_LEVEL": "INFO", **identity,
        }, address, workdir / f"{name}.log")
        self.channels: list[grpc.aio.Channel] = []

    def stub(self, who: Caller) -> scoring_pb2_grpc.ScoringStub:
        self.channels.append(aio_channel_as(self.process.grpc_address, who))
        return scoring_pb2_grpc.ScoringStub(self.channels[-1])

    async def settled(self, who: Caller, quiet: float = 2.0, timeout: float = 120) -> spb.DigestReply:
        """The digest once it stopped changing (the process caught up with the log)."""
        deadline = time.monotonic() + timeout
        last = await self.stub(who).Digest(spb.Empty())
        while time.monotonic() < deadline:
            await asyncio.sleep(quiet)
            now = await self.stub(who).Digest(spb.Empty())
            if now.digest == last.digest and now.entries > 0:
                return now
            last = now
        raise AssertionError(f"scoring on {self.database.name} did not settle in {timeout}s")

    async def ledgers(self, who: Caller, members: list[str]) -> Ledgers:
        out = {}
        for member in members:
            ledger = await self.stub(who).GetMemberLedger(spb.MemberLedgerRequest(member_id=member))
            out[member] = {(e.entry_id, e.points, e.rule, e.quarter) for e in ledger.entries}
        return out

    async def close(self) -> None:
        for channel in self.channels:
            await channel.close()
        self.channels.clear()

    async def run_until_settled(self, bootstrap: str, office: Caller, members: list[str]) -> Seen:
        """Start on its file, wait until it caught up, note what it serves, stop it and read its file."""
        self.process.start(timeout=120)
        try:
            ends = await end_offsets(bootstrap)
            digest = await self.settled(office)
            ledgers = await self.ledgers(office, members)
        finally:
            await self.close()
            self.process.stop()
        store = ScoringStore(f"sqlite:///{self.database}")
        try:
            generation, version = store.current()
            assert generation > 0 and version
            stored = (store.positions(generation), store.entry_ids(generation), version)
        finally:
            store.engine.dispose()
        return Seen(digest, ledgers, ends, *stored)

    def lose_database(self) -> None:
        """Delete its database with the journal files: nothing of it is left."""
        assert self.process.proc is None, "stopped first"
        for path in self.database.parent.glob(f"{self.database.name}*"):
            path.unlink()
        assert not self.database.exists()


async def test_scoring_rebuilds_the_same_ledger_from_the_topics_after_losing_its_database(
        kafka_bootstrap: str, people: People, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:6]
    county = County(seed=int(tag, 16), communities=2, units=6, members=80, prefix=f"rec{tag}-")
    assert await produce(kafka_bootstrap, county.run(walks=160, party_days=2)) > 500
    members = [m for m, *_ in county.members[:SAMPLE]]
    _, places_file = places(tmp_path)
    identity = identity_env(people.issuer, places_file)
    office = people.county_office()

    lost = Scoring(kafka_bootstrap, tmp_path, "scoring-lost", identity)
    before = await lost.run_until_settled(kafka_bootstrap, office, members)
    assert sum(map(len, before.ledgers.values())) > 0, "the generated county earned no points"
    lost.lose_database()

    # a fresh scoring on a new, empty file: it folds the topics from the beginning at start-up
    fresh = Scoring(kafka_bootstrap, tmp_path, "scoring-fresh", identity)
    after = await fresh.run_until_settled(kafka_bootstrap, office, members)

    assert after.ledgers == before.ledgers  # the county's members: the same entries, points and rules
    assert after.rule_set_version == before.rule_set_version
    if _moved(after.positions) == _moved(before.positions):  # nothing was published in between (CI's own broker)
        assert (after.digest.digest, after.digest.entries) == (before.digest.digest, before.digest.entries)
        assert after.entry_ids == before.entry_ids
        return
    # Others published meanwhile: the lost file must be exactly the fold of the topics up to where it was.
    warnings.warn("facts were published while scoring was replaced: the digests were not compared directly, the "
                  "lost file was compared with a replay of the topics up to its positions", stacklevel=1)
    ledger = Ledger(RuleBook().get(before.rule_set_version))
    await replay(kafka_bootstrap, ledger, before.positions)
    assert set(ledger.entries) == before.entry_ids
    if _moved(before.ends_before_digest) == _moved(before.positions):  # its digest was taken at those positions
        assert await asyncio.to_thread(lambda: Reports(ledger).digest()) == before.digest.digest
