"""GetDemandContact: how notify reaches a demand's resident, only with a configured bearer token;
and the optional e-mail / WeChat openid a resident may register."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from sqlalchemy import create_engine, text

from sandan_contracts.rpc import intake_pb2 as pb
from sandan_contracts.rpc.intake_pb2_grpc import IntakeStub
from sandan_eventbus.errors import InvalidArgument
from sandan_intake.api import add_to_server
from sandan_intake.application import IntakeApplication
from sandan_intake.residents import ResidentStore
from sandan_intake.settings import Settings

TOKEN = "notify-secret-1"


@pytest.fixture
async def stub() -> AsyncIterator[IntakeStub]:
    app = IntakeApplication(ResidentStore("memory://"), "memory://")
    server = grpc.aio.server()
    add_to_server(server, app, lambda: None, frozenset({TOKEN, "other-token"}))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield IntakeStub(channel)
    finally:
        await server.stop(None)
        app.close()


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def a_demand(stub: IntakeStub, **resident: str) -> pb.Demand:
    who = await stub.RegisterResident(pb.RegisterResidentRequest(
        community_id="c-1", name="Liu Yang", phone="13900001111", address="12 Well Street", **resident))
    return await stub.PostDemand(pb.PostDemandRequest(
        client_request_id="r-1", resident_id=who.resident_id, community_id="c-1", grid_id="g-1",
        other_text="errand", description="Please fetch my medicine", urgency="normal", channel="app"))


async def test_notify_gets_the_contact_with_its_token(stub: IntakeStub) -> None:
    demand = await a_demand(stub, email="liu@example.org", wechat_openid="oWx_123456")
    contact = await stub.GetDemandContact(pb.DemandRef(demand_id=demand.demand_id), metadata=bearer(TOKEN))
    assert (contact.demand_id, contact.resident_id, contact.community_id) == (
        demand.demand_id, demand.resident_id, "c-1")
    assert (contact.name, contact.phone, contact.email, contact.wechat_openid) == (
        "Liu Yang", "13900001111", "liu@example.org", "oWx_123456")


async def test_optional_fields_come_back_empty(stub: IntakeStub) -> None:
    demand = await a_demand(stub)
    contact = await stub.GetDemandContact(pb.DemandRef(demand_id=demand.demand_id), metadata=bearer("other-token"))
    assert (contact.email, contact.wechat_openid, contact.phone) == ("", "", "13900001111")


async def test_without_or_with_a_wrong_token_it_is_refused(stub: IntakeStub) -> None:
    demand = await a_demand(stub)
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stub.GetDemandContact(pb.DemandRef(demand_id=demand.demand_id))
    assert missing.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as wrong:
        await stub.GetDemandContact(pb.DemandRef(demand_id=demand.demand_id), metadata=bearer("guess"))
    assert wrong.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_unknown_demand_is_not_found(stub: IntakeStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stub.GetDemandContact(pb.DemandRef(demand_id="6b1a3c4e-0000-4000-8000-000000000000"),
                                    metadata=bearer(TOKEN))
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


async def test_no_tokens_configured_refuses_everyone() -> None:
    app = IntakeApplication(ResidentStore("memory://"), "memory://")
    server = grpc.aio.server()
    add_to_server(server, app, lambda: None)  # the default: no token may read contacts
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await IntakeStub(channel).GetDemandContact(pb.DemandRef(demand_id="x"), metadata=bearer(TOKEN))
        assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        await server.stop(None)
        app.close()


async def test_malformed_optional_fields_are_refused(stub: IntakeStub) -> None:
    for field, value in (("email", "not-an-address"), ("wechat_openid", "bad id!")):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await stub.RegisterResident(pb.RegisterResidentRequest(
                community_id="c-1", name="Li", phone="13900001111", address="x", **{field: value}))
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error.value.details().startswith(f"{field}:")


def test_store_from_before_the_optional_columns_is_upgraded(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/old.db"
    old = create_engine(url)
    with old.begin() as conn:  # the table as the first release created it
        conn.execute(text("CREATE TABLE intake_residents (resident_id VARCHAR(36) PRIMARY KEY, community_id "
                          "VARCHAR(64) NOT NULL, name VARCHAR(100) NOT NULL, phone VARCHAR(30) NOT NULL, "
                          "address VARCHAR(200) NOT NULL, registered_at DATETIME NOT NULL)"))
        conn.execute(text("INSERT INTO intake_residents VALUES ('r-old', 'c-1', 'Old', '123456', 'x', "
                          "'2025-01-01 00:00:00')"))
    old.dispose()
    store = ResidentStore(url)
    assert store.get("r-old").email is None
    added = store.register("c-1", "New", "1234567", "y", email="new@example.org")
    assert store.get(added.resident_id).email == "new@example.org"
    store.close()
    with pytest.raises(InvalidArgument):
        ResidentStore("memory://").register("c-1", "Li", "1234567", "y", wechat_openid="x")


def test_contact_tokens_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    monkeypatch.setenv("INTAKE_EVENTSTORE_URL", "memory://")
    monkeypatch.delenv("INTAKE_CONTACT_TOKENS", raising=False)
    assert Settings.from_env().contact_tokens == frozenset()
    monkeypatch.setenv("INTAKE_CONTACT_TOKENS", " a1 , b2,,")
    assert Settings.from_env().contact_tokens == frozenset({"a1", "b2"})
