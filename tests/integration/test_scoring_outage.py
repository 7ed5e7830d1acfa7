"""scoring and a store outage: live folding pauses (not ready, one log line when it starts and one when it ends),
nothing is dead-lettered, skipped or doubled, and everything that arrived meanwhile is folded and published once
the store is back.

scoring runs as a real process on the shared broker and on a PostgreSQL of its own (deploy/local/postgres.sh on
a private port and state directory), which this test stops: the shared database is never touched.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sandan_contracts import decode, encode
from sandan_contracts import events as c
from sandan_contracts.rpc import scoring_pb2 as spb
from sandan_contracts.rpc import scoring_pb2_grpc
from sandan_eventbus.devtools import Received, ServiceProcess, read_topic
from sandan_eventbus.kafka import create_topics
from sandan_scoring.simulate import produce
from tests.integration.conftest import free_port, places
from tests.integration.people import People, aio_channel_as, identity_env
from tests.integration.test_outage import PrivatePostgres

pytestmark = pytest.mark.kafka

# Longer than any retry budget the store path had: today's scoring had none (its live folding stopped for good
# at the first failed commit, while its health said SERVING).
OUTAGE_SECONDS = 40
SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
def database() -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres()
    try:
        pg.start()
        yield pg
    finally:
        pg.remove()


async def health(address: str) -> int:
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)
        except grpc.aio.AioRpcError:
            return -1
    return reply.status


async def eventually(what: str, check: Callable[[], object], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"not within {timeout}s: {what}")


class Member:
    """A member who reports and checks in at themed party days: facts as dispatch's relay writes them."""

    numbers = iter(range(1, 1_000_000))

    def __init__(self, tag: str, name: str) -> None:
        self.id, self.tag = f"m-{name}-{tag}", tag

    def _raw(self, event: c.Event) -> tuple[str, bytes]:
        raw = encode(event, event_id=f"dispatch:{next(self.numbers)}", producer="dispatch",
                     occurred_at=datetime.now(UTC), correlation_id=f"walk-{self.tag}", causation_id=None)
        return event.key(), raw

    def reported(self) -> dict[str, list[tuple[str, bytes]]]:
        event = c.MemberReported(member_id=self.id, community_id=f"c-{self.tag}", unit_id=f"u-{self.tag}",
                                 grid_id=f"g-{self.tag}")
        return {event.TOPIC: [self._raw(event)]}

    def checked_in(self, times: int) -> dict[str, list[tuple[str, bytes]]]:
        events = [c.MemberCheckedIn(activity_id=f"a-{self.id}-{i}", community_id=f"c-{self.tag}",
                                    member_id=self.id, unit_id=f"u-{self.tag}") for i in range(times)]
        return {"dispatch.activities.v1": [self._raw(e) for e in events]}


def log_lines(path: Path, message: str) -> int:
    lines = [json.loads(line) for line in path.read_text(errors="replace").splitlines() if line.startswith("{")]
    return sum(1 for line in lines if line.get("msg") == message)


async def test_a_store_outage_pauses_live_folding_and_loses_nothing(kafka_bootstrap: str,
                                                                    database: PrivatePostgres, people: People,
                                                                    tmp_path: Path) -> None:
    await create_topics(kafka_bootstrap)
    address = f"127.0.0.1:{free_port()}"
    log = tmp_path / "scoring.log"
    _, places_file = places(tmp_path)
    scoring = ServiceProcess("sandan_scoring", {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "SCORING_DATABASE_URL": database.url,
        "SCORING_GRPC_ADDRESS": address,
        "LOG_LEVEL": "info",  # lower case: it once crashed the start
        **identity_env(people.issuer, places_file),
    }, address, log)
    # what scoring published (the operator), a member's ledger (the county office); each channel kept while used
    as_operator = aio_channel_as(address, people.operator())
    as_county = aio_channel_as(address, people.county_office())
    scoring.start(timeout=180)
    tag = uuid.uuid4().hex[:8]
    before, during, later = Member(tag, "before"), Member(tag, "during"), Member(tag, "later")
    try:
        # given scoring folding and publishing
        await produce(kafka_bootstrap, before.reported())
        await produce(kafka_bootstrap, before.checked_in(1))
        await read_points(kafka_bootstrap, before.id, 1, timeout=60)

        # when its store goes away while facts keep coming
        database.stop()
        await produce(kafka_bootstrap, during.reported())
        await produce(kafka_bootstrap, during.checked_in(2))
        await eventually("scoring not ready", lambda: _is(address, NOT_SERVING), timeout=60)
        await asyncio.sleep(OUTAGE_SECONDS / 2)
        await produce(kafka_bootstrap, later.reported())
        await produce(kafka_bootstrap, later.checked_in(1))
        await asyncio.sleep(OUTAGE_SECONDS / 2)
        assert await health(address) == NOT_SERVING  # still waiting, still alive
        report = await scoring_pb2_grpc.ScoringStub(as_operator).Publishing(spb.Empty())
        assert "live folding" in {p.part for p in report.paused}

        # then, once it is back, everything that came is folded and published once; nothing was dead-lettered
        database.start()
        await eventually("scoring ready again", lambda: _is(address, SERVING), timeout=120)
        for member, entries in ((during, 2), (later, 1)):
            await read_points(kafka_bootstrap, member.id, entries, timeout=60)
            await asyncio.sleep(2)  # anything published twice would be there by now
            every = await read_points(kafka_bootstrap, member.id, entries, timeout=4, everything=True)
            assert len(every) == entries == len({decode(r.raw)[0].event_id for r in every}), \
                f"{member.id}: {len(every)} points records for {entries} entries"
            ledger = await scoring_pb2_grpc.ScoringStub(as_county).GetMemberLedger(
                spb.MemberLedgerRequest(member_id=member.id))
            assert len(ledger.entries) == entries  # applied once
        for topic in ("dispatch.roster.v1.dlq", "dispatch.activities.v1.dlq"):
            dead = await read_topic(kafka_bootstrap, topic, until=lambda f: False, timeout=3,
                                    where=lambda r: tag in (r.key or "")
                                    and r.headers.get("dlq.consumer.group") == "scoring")
            assert dead == []
        assert log_lines(log, "scoring live folding paused: waiting for the store or the broker") == 1
        assert log_lines(log, "scoring live folding resumed") == 1
    finally:
        scoring.stop()


async def _is(address: str, status: int) -> bool:
    return await health(address) == status


async def read_points(bootstrap: str, member: str, count: int, timeout: float, everything: bool = False
                      ) -> list[Received]:
    """The PointsAwarded records keyed `member` (duplicates included): once there are `count`, or all of them
    (`everything`: read until the timeout)."""
    found = await read_topic(bootstrap, "scoring.points.v1", timeout=timeout,
                             until=lambda f: not everything and len(f) >= count,
                             where=lambda r: r.key == member and r.headers.get("type") == "PointsAwarded")
    assert len(found) >= count, f"{member}: {len(found)} of {count} points records"
    return found
