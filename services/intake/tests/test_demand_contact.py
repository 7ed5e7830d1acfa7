"""GetDemandContact: how notify reaches a demand's resident, only for notify's service identity (a real signed
token with role service_notify); and the optional e-mail / WeChat openid a resident may register."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from sqlalchemy import create_engine, text

from sandan_contracts.rpc import intake_pb2 as pb
from sandan_eventbus.auth.devissuer import LocalIssuer
from sandan_eventbus.config import ConfigError
from sandan_eventbus.errors import InvalidArgument
from sandan_intake.keys import Keyring
from sandan_intake.residents import ResidentStore
from sandan_intake.settings import Settings
from services.intake.tests.support import Caller, Served, serving

# Every role of the matrix but notify's: none may read a resident's contact for delivery.
NOT_NOTIFY = ["resident", "grid_worker", "member", "grid_leader", "branch_secretary", "town_office", "county_office",
              "unit_admin", "partner", "operator", "service_intake", "service_dispatch", "service_scoring",
              "service_gateway"]


@pytest.fixture
async def served(local_issuer: LocalIssuer) -> AsyncIterator[Served]:
    async with serving(local_issuer) as served:
        yield served


def notify(served: Served) -> Caller:
    return served.as_("service-account-notify", ["service_notify"])


def secretary(served: Served) -> Caller:
    return served.as_("sub-secretary", ["branch_secretary"], community_id="c-1")


async def a_demand(served: Served, **resident: str) -> pb.Demand:
    stub = secretary(served)
    who = await stub.RegisterResident(pb.RegisterResidentRequest(
        community_id="c-1", name="Liu Yang", phone="13900001111", address="12 Well Street", **resident))
    return await stub.PostDemand(pb.PostDemandRequest(
        client_request_id="r-1", resident_id=who.resident_id, community_id="c-1", grid_id="g-1",
        other_text="errand", description="Please fetch my medicine", urgency="normal", channel="app"))


async def test_notify_gets_the_contact_with_its_token(served: Served) -> None:
    demand = await a_demand(served, email="liu@example.org", wechat_openid="oWx_123456")
    contact = await notify(served).GetDemandContact(pb.DemandRef(demand_id=demand.demand_id))
    assert (contact.demand_id, contact.resident_id, contact.community_id) == (
        demand.demand_id, demand.resident_id, "c-1")
    assert (contact.name, contact.phone, contact.email, contact.wechat_openid) == (
        "Liu Yang", "13900001111", "liu@example.org", "oWx_123456")


async def test_optional_fields_come_back_empty(served: Served) -> None:
    demand = await a_demand(served)
    contact = await notify(served).GetDemandContact(pb.DemandRef(demand_id=demand.demand_id))
    assert (contact.email, contact.wechat_openid, contact.phone) == ("", "", "13900001111")


async def test_without_or_with_a_wrong_token_it_is_refused(served: Served) -> None:
    demand = await a_demand(served)
    before = served.stored()
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await served.stub.GetDemandContact(pb.DemandRef(demand_id=demand.demand_id))
    assert missing.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as wrong:  # a valid token of a person, not notify's identity
        await secretary(served).GetDemandContact(pb.DemandRef(demand_id=demand.demand_id))
    assert wrong.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert served.stored() == before  # no release was recorded


async def test_unknown_demand_is_not_found(served: Served) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await notify(served).GetDemandContact(pb.DemandRef(demand_id="6b1a3c4e-0000-4000-8000-000000000000"))
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


async def test_only_notify_may_read_contacts_for_delivery(served: Served) -> None:
    """What used to be "no tokens configured refuses everyone": no role but service_notify gets through."""
    demand = await a_demand(served)
    before = served.stored()
    for role in NOT_NOTIFY:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await served.as_(f"sub-{role}", [role], community_id="c-1", member_id="m-1").GetDemandContact(
                pb.DemandRef(demand_id=demand.demand_id))
        assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED, role
    assert served.stored() == before


async def test_malformed_optional_fields_are_refused(served: Served) -> None:
    for field, value in (("email", "not-an-address"), ("wechat_openid", "bad id!")):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await secretary(served).RegisterResident(pb.RegisterResidentRequest(
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
    store = ResidentStore(url, Keyring.generate())
    assert store.get("r-old").email is None
    added = store.register("c-1", "New", "1234567", "y", email="new@example.org")
    assert store.get(added.resident_id).email == "new@example.org"
    store.close()
    with pytest.raises(InvalidArgument):
        ResidentStore("memory://", Keyring.generate()).register("c-1", "Li", "1234567", "y", wechat_openid="x")


def test_places_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The shared contact tokens are gone (notify calls with its own identity); SANDAN_PLACES_FILE says which
    town each community is in, read at start."""
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    monkeypatch.setenv("INTAKE_EVENTSTORE_URL", "memory://")
    monkeypatch.setenv("INTAKE_CONTACT_TOKENS", "a1")  # ignored now
    monkeypatch.setenv("INTAKE_KEK", Keyring.generate().text())
    monkeypatch.delenv("SANDAN_PLACES_FILE", raising=False)
    settings = Settings.from_env()
    assert not hasattr(settings, "contact_tokens")
    assert (settings.places.county_id, settings.places.towns) == (None, {})
    places = tmp_path / "places.toml"
    places.write_text('[county]\nid = "taihe"\n[communities.c-1]\ntown = "t-1"\n', encoding="utf-8")
    monkeypatch.setenv("SANDAN_PLACES_FILE", str(places))
    assert (Settings.from_env().places.county_id, Settings.from_env().places.town_of("c-1")) == ("taihe", "t-1")
    for broken in ("[county", "communities = 3\n"):
        places.write_text(broken, encoding="utf-8")
        with pytest.raises(ConfigError, match="SANDAN_PLACES_FILE"):
            Settings.from_env()
    monkeypatch.setenv("SANDAN_PLACES_FILE", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="SANDAN_PLACES_FILE: cannot read"):
        Settings.from_env()
