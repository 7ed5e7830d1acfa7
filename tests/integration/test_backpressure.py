"""Backpressure at the running intake: more concurrent calls than its in-flight limit, from the shipped client."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import grpc
import pytest

from sandan_contracts.rpc import intake_pb2 as ipb
from sandan_contracts.rpc import intake_pb2_grpc
from sandan_eventbus.auth.client import AioBearerAuth
from sandan_eventbus.devtools import ServiceProcess
from tests.integration.conftest import INTAKE_KEK, Stack, free_port
from tests.integration.people import aio_channel_as
from tests.integration.scenario import a_community

pytestmark = pytest.mark.kafka


async def test_two_thousand_identical_posts_all_get_the_one_demand(stack: Stack) -> None:
    c = await a_community(stack, members=0)
    request = ipb.PostDemandRequest(
        client_request_id=uuid.uuid4().hex, resident_id=c.resident_id, community_id=c.community_id,
        grid_id=c.grid_id, menu_item_id=c.item_id, description="家中老人需要每周送降压药上门", urgency="normal",
        channel="app")
    stub = stack.intake_stub(c.resident)  # the resident's app: one channel, as a busy front end would hold

    answers = await asyncio.gather(*(stub.PostDemand(request) for _ in range(2000)), return_exceptions=True)

    failed = [a for a in answers if not isinstance(a, ipb.Demand)]
    assert failed == [], {a.code() if isinstance(a, grpc.aio.AioRpcError) else repr(a) for a in failed}
    assert len({a.demand_id for a in answers}) == 1  # type: ignore[union-attr]
    demand_id = answers[0].demand_id  # type: ignore[union-attr]
    posted = await stack.read_all("intake.demands.v1", demand_id)
    assert len({r.envelope.event_id for r in posted if r.envelope and r.envelope.type == "DemandPosted"}) == 1


@pytest.fixture(scope="module")
def narrow_intake(stack: Stack) -> Iterator[ServiceProcess]:
    """An intake of its own that handles 2 calls at a time (INTAKE_GRPC_MAX_IN_FLIGHT), so a burst must overflow."""
    address = f"127.0.0.1:{free_port()}"
    process = ServiceProcess("sandan_intake", {
        "KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap, "LOG_LEVEL": "INFO", **stack.identity(),
        "INTAKE_EVENTSTORE_URL": f"sqlite:///{stack.workdir}/narrow-intake-events.db",
        "INTAKE_DATABASE_URL": f"sqlite:///{stack.workdir}/narrow-intake.db",
        "INTAKE_GRPC_ADDRESS": address, "INTAKE_CONSUMER_GROUP": f"intake-narrow-{uuid.uuid4().hex[:8]}",
        "INTAKE_GRPC_MAX_IN_FLIGHT": "2", **INTAKE_KEK,
    }, address, stack.workdir / "narrow-intake.log")
    process.start()
    try:
        yield process
    finally:
        process.stop()


async def test_beyond_the_limit_calls_are_refused_with_a_retry_hint_and_the_shipped_client_retries_them(
        narrow_intake: ServiceProcess, stack: Stack) -> None:
    # a write (a row committed per call) keeps each call in flight long enough for a burst to overlap: a grid
    # worker registers residents of their community who have no account (each call a new resident)
    community_id = stack.communities.take()
    worker = stack.people.person(f"grid_worker-{community_id}", ["grid_worker"], community_id=community_id)
    register = ipb.RegisterResidentRequest(community_id=community_id, name="王秀英", phone="13800001234",
                                           address="澄江镇 3 栋")
    # a client without the retry policy sees the refusals: RESOURCE_EXHAUSTED with the pushback hint
    worker.token()
    async with grpc.aio.insecure_channel(narrow_intake.grpc_address,
                                         interceptors=[AioBearerAuth(worker)]) as plain:
        stub = intake_pb2_grpc.IntakeStub(plain)
        answers = await asyncio.gather(*(stub.RegisterResident(register) for _ in range(200)),
                                       return_exceptions=True)
    refused = [a for a in answers if isinstance(a, grpc.aio.AioRpcError)]
    assert refused, "200 concurrent calls never exceeded 2 in flight"
    assert {a.code() for a in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert all(int(dict(a.trailing_metadata())["grpc-retry-pushback-ms"]) > 0 for a in refused)
    # the shipped channel retries them (a refused call did not run, so even this non-idempotent write is
    # retried) until every call is answered
    async with aio_channel_as(narrow_intake.grpc_address, worker) as retrying:
        stub = intake_pb2_grpc.IntakeStub(retrying)
        answers = await asyncio.gather(*(stub.RegisterResident(register) for _ in range(200)),
                                       return_exceptions=True)
    assert [a for a in answers if not isinstance(a, ipb.Resident)] == []
    assert len({a.resident_id for a in answers}) == 200  # type: ignore[union-attr]  # each ran exactly once
