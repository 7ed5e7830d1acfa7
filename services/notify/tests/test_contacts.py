"""notify's contact look-ups call intake and dispatch as notify itself, against real gRPC servers with the
authentication interceptor: a service_notify token reads contacts, a token of another role is refused (the
look-up waits: "unavailable, try later", never "no contact"), over TLS where configured; notify's own
identity from the client credentials grant (the real Keycloak), a refused client secret making look-ups wait
with one log line and no secret in it; and without an identity notify does not start."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sandan_contracts.rpc import dispatch_pb2, dispatch_pb2_grpc, intake_pb2, intake_pb2_grpc
from sandan_eventbus import edge
from sandan_eventbus.auth.client import ClientCredentials, StaticToken, TokenSource
from sandan_eventbus.auth.devissuer import LocalIssuer
from sandan_eventbus.config import ConfigError
from sandan_eventbus.security import GrpcTlsSettings, OidcSettings
from sandan_notify import __main__ as notify_main
from sandan_notify.contacts import Contact, ContactErased, ContactNotFound, ContactUnavailable, GrpcContacts
from sandan_notify.directory import Offices
from sandan_notify.settings import Settings

NOTIFY_SECRET = "local-notify-secret"  # deploy/local/keycloak/sandan-realm.json: the local realm's, not a real one


class Intake(intake_pb2_grpc.IntakeServicer):
    async def GetDemandContact(self, request: intake_pb2.DemandRef, context: grpc.aio.ServicerContext) -> Any:
        if request.demand_id == "d-erased":  # the resident's data was erased: intake says so, with nothing else
            return intake_pb2.ResidentContact(demand_id="d-erased", resident_id="r-9", community_id="c-1",
                                              erased=True)
        if request.demand_id != "d-1":
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such demand")
        return intake_pb2.ResidentContact(resident_id="r-1", name="王秀英", phone="13800001234")


class Dispatch(dispatch_pb2_grpc.DispatchServicer):
    async def GetMemberContact(self, request: dispatch_pb2.MemberRef, context: grpc.aio.ServicerContext) -> Any:
        return dispatch_pb2.MemberContact(member_id=request.member_id, name="党员甲", email="m1@example.org")

    async def GetUnitContact(self, request: dispatch_pb2.UnitRef, context: grpc.aio.ServicerContext) -> Any:
        return dispatch_pb2.UnitContact(unit_id=request.unit_id, unit_name="县财政局",
                                        webhook_url="http://unit.example/hook")


@asynccontextmanager
async def owners(guards: list[Any], tls: GrpcTlsSettings | None = None) -> AsyncIterator[str]:
    """intake's and dispatch's contact methods on one server with the production chain; its address."""
    server = edge.server("intake", guards=guards)
    intake_pb2_grpc.add_IntakeServicer_to_server(Intake(), server)
    dispatch_pb2_grpc.add_DispatchServicer_to_server(Dispatch(), server)
    port = (tls or GrpcTlsSettings(plaintext="allow")).bind(server, "127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(None)


def contacts(address: str, identity: TokenSource, offices: Offices,
             credentials: grpc.ChannelCredentials | None = None) -> GrpcContacts:
    return GrpcContacts(address, address, identity, offices, credentials=credentials, timeout=5.0)


async def lookup(book: GrpcContacts, kind: str, ref: str) -> Contact:
    return await asyncio.to_thread(book.lookup, kind, ref)  # a blocking client: not on the servers' loop


@pytest.fixture
def trouble(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.ERROR, logger="sandan_notify.contacts"):
        yield caplog


async def test_a_service_notify_token_reads_contacts(local_issuer: LocalIssuer, offices: Offices) -> None:
    async with owners(local_issuer.guards()) as address:
        book = contacts(address, StaticToken(local_issuer.token("notify", ["service_notify"])), offices)
        try:
            assert await lookup(book, "resident", "d-1") == Contact("r-1", "王秀英", phone="13800001234")
            assert await lookup(book, "member", "m-1") == Contact("m-1", "党员甲", email="m1@example.org")
            assert await lookup(book, "unit", "u-2") == Contact("u-2", "县财政局",
                                                               webhook_url="http://unit.example/hook")
            with pytest.raises(ContactNotFound) as unknown:  # the owner's NOT_FOUND still means "no contact"
                await lookup(book, "resident", "d-404")
            assert unknown.value.reason == "no_contact"
            with pytest.raises(ContactErased) as erased:  # an erased resident: given up with its own reason
                await lookup(book, "resident", "d-erased")
            assert erased.value.reason == "recipient_erased"
        finally:
            book.close()


@pytest.mark.parametrize("roles", [["service_scoring"], ["member"], ["operator"]])
async def test_a_token_of_another_role_is_refused_and_the_look_up_waits(
        local_issuer: LocalIssuer, offices: Offices, trouble: pytest.LogCaptureFixture, roles: list[str]) -> None:
    async with owners(local_issuer.guards()) as address:
        book = contacts(address, StaticToken(local_issuer.token("not-notify", roles, member_id="m-1")), offices)
        try:
            for kind, ref in (("resident", "d-1"), ("member", "m-1"), ("unit", "u-1")):
                with pytest.raises(ContactUnavailable, match="contact_permission_denied"):
                    await lookup(book, kind, ref)
        finally:
            book.close()
    assert [r.getMessage() for r in trouble.records] == ["the owner refused notify's token: contact look-ups wait"]


async def test_without_a_token_the_owner_says_unauthenticated(local_issuer: LocalIssuer, offices: Offices) -> None:
    async with owners(local_issuer.guards()) as address:
        book = contacts(address, StaticToken(local_issuer.token("notify", ["service_notify"], aud="elsewhere")),
                        offices)
        try:
            with pytest.raises(ContactUnavailable, match="contact_unauthenticated"):
                await lookup(book, "member", "m-1")
        finally:
            book.close()


# ---- TLS -------------------------------------------------------------------------------------------------------
def _certificates(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it: (ca, cert, key) PEM files."""
    now = dt.datetime.now(dt.UTC)

    def name(text: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("sandan test CA")).issuer_name(name("sandan test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(name("intake")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


async def test_look_ups_go_over_tls_when_a_ca_is_configured(local_issuer: LocalIssuer, offices: Offices,
                                                           tmp_path: Path) -> None:
    ca, cert, key = _certificates(tmp_path)
    server_tls = GrpcTlsSettings(tls_cert_file=str(cert), tls_key_file=str(key))
    client_tls = GrpcTlsSettings(tls_ca_file=str(ca))
    identity = StaticToken(local_issuer.token("notify", ["service_notify"]))
    async with owners(local_issuer.guards(), server_tls) as address:
        book = contacts(address, identity, offices, client_tls.channel_credentials())
        plaintext = contacts(address, identity, offices)
        try:
            assert (await lookup(book, "member", "m-1")).name == "党员甲"
            with pytest.raises(ContactUnavailable, match="contact_unavailable"):  # a plaintext client gets nowhere
                await lookup(plaintext, "member", "m-1")
        finally:
            book.close()
            plaintext.close()


# ---- notify's own identity: the client credentials grant against the real identity provider ---------------------
async def test_notifys_client_credentials_read_contacts(oidc_issuer: str, offices: Offices) -> None:
    identity = ClientCredentials.for_issuer(oidc_issuer, "sandan-notify", NOTIFY_SECRET)
    async with owners(OidcSettings(issuer=oidc_issuer).guards()) as address:
        book = contacts(address, identity, offices)
        try:
            assert (await lookup(book, "resident", "d-1")).recipient_id == "r-1"
            assert (await lookup(book, "unit", "u-1")).webhook_url == "http://unit.example/hook"
        finally:
            book.close()


async def test_another_services_client_credentials_are_refused(oidc_issuer: str, offices: Offices) -> None:
    identity = ClientCredentials.for_issuer(oidc_issuer, "sandan-scoring", "local-scoring-secret")
    async with owners(OidcSettings(issuer=oidc_issuer).guards()) as address:
        book = contacts(address, identity, offices)
        try:
            with pytest.raises(ContactUnavailable, match="contact_permission_denied"):
                await lookup(book, "member", "m-1")
        finally:
            book.close()


async def test_a_client_secret_the_issuer_refuses_makes_look_ups_wait_logged_once_without_the_secret(
        oidc_issuer: str, offices: Offices, trouble: pytest.LogCaptureFixture) -> None:
    wrong = "not-the-notify-secret-7f3a"
    identity = ClientCredentials.for_issuer(oidc_issuer, "sandan-notify", wrong)
    async with owners(OidcSettings(issuer=oidc_issuer).guards()) as address:
        book = contacts(address, identity, offices)
        try:
            for kind, ref in (("resident", "d-1"), ("member", "m-1"), ("member", "m-2"), ("unit", "u-1")):
                with pytest.raises(ContactUnavailable, match="contact_no_token"):  # wait and retry, not "no contact"
                    await lookup(book, kind, ref)
            assert (await asyncio.to_thread(book.lookup, "branch", "c-1")).name == "城江社区党委"  # offices: local
        finally:
            book.close()
    assert len(trouble.records) == 1
    record = trouble.records[0]
    shown = record.getMessage() + repr(getattr(record, "fields", {}))
    assert "SANDAN_OIDC_CLIENT_ID" in shown and "sandan-notify" in shown
    assert wrong not in shown and NOTIFY_SECRET not in shown


# ---- without an identity, notify does not start -------------------------------------------------------------
@pytest.fixture
def notify_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    import os

    for name in list(os.environ):
        if name.startswith(("NOTIFY_", "SANDAN_OIDC_", "SANDAN_GRPC_")):
            monkeypatch.delenv(name)
    for name, value in {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092", "NOTIFY_EVENTSTORE_URL": "memory://",
                        "NOTIFY_INTAKE_ADDRESS": "127.0.0.1:50051", "NOTIFY_DISPATCH_ADDRESS": "127.0.0.1:50052",
                        "NOTIFY_CONSOLE": "stderr", "SANDAN_OIDC_ISSUER": "http://127.0.0.1:8180/realms/sandan",
                        "SANDAN_GRPC_PLAINTEXT": "allow"}.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_without_client_credentials_notify_does_not_start(notify_env: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match="SANDAN_OIDC_CLIENT_ID and SANDAN_OIDC_CLIENT_SECRET"):
        notify_main.build_runtime(Settings.from_env())
    notify_env.setattr(notify_main, "setup", lambda *args: logging.getLogger("notify-test"))
    with pytest.raises(SystemExit) as stopped:
        notify_main.main()
    assert stopped.value.code == 2
    assert "SANDAN_OIDC_CLIENT_ID" in capsys.readouterr().err


def test_without_a_ca_or_plaintext_allowed_notify_does_not_start(notify_env: pytest.MonkeyPatch) -> None:
    notify_env.setenv("SANDAN_OIDC_CLIENT_ID", "sandan-notify")
    notify_env.setenv("SANDAN_OIDC_CLIENT_SECRET", NOTIFY_SECRET)
    notify_env.delenv("SANDAN_GRPC_PLAINTEXT")
    with pytest.raises(ConfigError, match="SANDAN_GRPC_TLS_CA_FILE"):
        notify_main.build_runtime(Settings.from_env())


def test_with_its_identity_notify_is_built(notify_env: pytest.MonkeyPatch) -> None:
    notify_env.setenv("SANDAN_OIDC_CLIENT_ID", "sandan-notify")
    notify_env.setenv("SANDAN_OIDC_CLIENT_SECRET", NOTIFY_SECRET)
    runtime = notify_main.build_runtime(Settings.from_env())
    try:
        contacts_book = runtime.relay.app.contacts
        assert isinstance(contacts_book, GrpcContacts)
        assert runtime.oidc is not None and runtime.oidc.client_id == "sandan-notify"
    finally:
        runtime.relay.app.contacts.close()
        runtime.relay.app.close()
