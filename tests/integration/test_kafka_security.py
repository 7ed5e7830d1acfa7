"""Kafka clients over TLS with SASL/SCRAM-SHA-512, against a real broker.

A private broker (deploy/local/kafka.sh in its opt-in SASL_SSL mode, on ports of its own; the shared broker is
never touched) gets a throwaway CA and certificate made here. The settings in `sandan_eventbus.kafka` then
create the registry's topics, publish and consume through faststream (`make_broker`), read through raw aiokafka
and librdkafka, and a wrong password, an untrusted CA and a plaintext client are each refused.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import os
import secrets
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from confluent_kafka import Consumer
from confluent_kafka import TopicPartition as RdTopicPartition
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from faststream.kafka import KafkaMessage

from sandan_contracts import TOPICS
from sandan_eventbus.config import ConfigError
from sandan_eventbus.kafka import KafkaSettings, create_topics, kafka_settings, make_broker, partitions_of

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "local" / "kafka.sh"
USER = "sandan-test"
SECRET = "s3cret-never-echoed"


def _free_ports() -> tuple[int, int]:
    """Two consecutive free ports below Linux's ephemeral range (see ARCHITECTURE.md, "Ports")."""
    for _ in range(200):
        port = 20000 + secrets.randbelow(12000)
        try:
            for p in (port, port + 1):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port, port + 1
    raise RuntimeError("no free ports")


def _pem(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def make_ca(directory: Path, name: str) -> tuple[Path, x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return _pem(directory / f"{name}.pem", cert.public_bytes(serialization.Encoding.PEM)), cert, key


def make_server_cert(directory: Path, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH,
                                                  x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_path = _pem(directory / "server.pem", cert.public_bytes(serialization.Encoding.PEM))
    key_path = _pem(directory / "server.key", key.private_bytes(serialization.Encoding.PEM,
                                                                serialization.PrivateFormat.PKCS8,
                                                                serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


@dataclass(frozen=True)
class SecureBroker:
    bootstrap: str
    ca_file: Path
    other_ca_file: Path  # a CA that did not sign the broker's certificate
    password_file: Path
    log: Path

    def settings(self, **overrides: object) -> KafkaSettings:
        fields = {"bootstrap_servers": self.bootstrap, "security_protocol": "SASL_SSL", "sasl_username": USER,
                  "sasl_password_file": self.password_file, "ssl_ca_file": self.ca_file, **overrides}
        return KafkaSettings(**fields)  # type: ignore[arg-type]


def _script(env: dict[str, str], command: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), command], env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    if os.environ.get("SANDAN_UNIT_ONLY") == "1":
        pytest.skip("SANDAN_UNIT_ONLY=1: no private broker for the unit subset")
    if not shutil.which(os.environ.get("JAVA", "java")):
        pytest.fail("java is needed for the private SASL_SSL broker (apt-get install openjdk-17-jre-headless)")
    work = tmp_path_factory.mktemp("kafka-sasl")
    ca_file, ca, ca_key = make_ca(work, "test-ca")
    other_ca_file, _, _ = make_ca(work, "other-ca")
    cert_file, key_file = make_server_cert(work, ca, ca_key)
    password = secrets.token_urlsafe(18)
    password_file = _pem(work / "password", password.encode() + b"\n")
    port, controller_port = _free_ports()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
    env.update(KAFKA_SASL_SSL="1", KAFKA_PORT=str(port), KAFKA_CONTROLLER_PORT=str(controller_port),
               KAFKA_STATE_DIR=str(work / "state"), KAFKA_BROKER_CERT_FILE=str(cert_file),
               KAFKA_BROKER_KEY_FILE=str(key_file), KAFKA_BROKER_CA_FILE=str(ca_file),
               KAFKA_SCRAM_USERS=f"{USER}={password}", KAFKA_HEAP="384m", KAFKA_WAIT_TIMEOUT="180")
    started = _script(env, "start", timeout=400)
    try:
        assert started.returncode == 0, f"private SASL_SSL broker did not start:\n{started.stderr[-4000:]}"
        config = (work / "state" / "server.properties").read_text()
        assert f"listeners=SASL_SSL://127.0.0.1:{port}," in config and "PLAINTEXT://" not in config
        yield SecureBroker(f"127.0.0.1:{port}", ca_file, other_ca_file, password_file, work / "state" / "kafka.log")
    finally:
        stopped = _script(env, "stop", timeout=120)
        assert stopped.returncode == 0, stopped.stderr[-2000:]


async def test_topics_are_created_and_messages_flow_through_make_broker(
        secure_broker: SecureBroker, monkeypatch: pytest.MonkeyPatch) -> None:
    # The services' way: everything from the environment.
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", secure_broker.bootstrap)
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", USER)
    monkeypatch.setenv("KAFKA_SASL_PASSWORD_FILE", str(secure_broker.password_file))
    monkeypatch.setenv("KAFKA_SSL_CA_FILE", str(secure_broker.ca_file))
    settings = kafka_settings()
    assert settings.security_protocol == "SASL_SSL"
    assert settings.password() == secure_broker.password_file.read_text().strip()

    await asyncio.wait_for(create_topics(), 120)
    admin = AIOKafkaAdminClient(**settings.aiokafka_kwargs())
    await admin.start()
    try:
        assert set(TOPICS) <= set(await admin.list_topics())
    finally:
        await admin.close()

    topic, key = "intake.demands.v1", uuid.uuid4().hex
    received: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    broker = make_broker("security-test")
    subscriber = broker.subscriber(topic, group_id=f"security-test-{key[:8]}", auto_offset_reset="earliest")

    @subscriber
    async def handle(message: KafkaMessage) -> None:
        if message.raw_message.key == key.encode() and not received.done():  # type: ignore[union-attr]
            received.set_result(message.body)

    await asyncio.wait_for(broker.start(), 60)
    try:
        await broker.publish(b"over tls", topic, key=key.encode())
        assert await asyncio.wait_for(received, 60) == b"over tls"
    finally:
        await broker.stop()

    # Raw aiokafka (devtools, scoring's replay) reads it with the same settings.
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **settings.aiokafka_kwargs())
    await consumer.start()
    try:
        parts = await partitions_of(consumer, [topic])
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        batches = await consumer.getmany(timeout_ms=10_000)
        keys = {r.key for records in batches.values() for r in records}
        assert key.encode() in keys
    finally:
        await consumer.stop()


def test_librdkafka_reads_with_the_same_settings(secure_broker: SecureBroker) -> None:
    """scoring's replay consumers (confluent-kafka) connect with `librdkafka_config()`."""
    settings = secure_broker.settings()
    topic = "dispatch.orders.v1"
    payload = uuid.uuid4().hex.encode()

    async def publish() -> None:
        await create_topics(settings=settings)
        broker = make_broker("security-test-rd", settings=settings)
        await broker.connect()
        try:
            await broker.publish(payload, topic, key=b"k", partition=0)
        finally:
            await broker.stop()

    asyncio.run(publish())
    config = settings.librdkafka_config()
    assert config["security.protocol"] == "sasl_ssl" and config["sasl.mechanism"] == "SCRAM-SHA-512"
    consumer = Consumer({**config, "group.id": f"security-test-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False,
                         "auto.offset.reset": "earliest"})
    try:
        consumer.assign([RdTopicPartition(topic, 0, 0)])
        seen = []
        for _ in range(30):
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                seen.append(message.value())
                if payload in seen:
                    break
        assert payload in seen
    finally:
        consumer.close()


async def _admin_start(settings: KafkaSettings) -> None:
    admin = AIOKafkaAdminClient(request_timeout_ms=10_000, **settings.aiokafka_kwargs())
    try:
        await asyncio.wait_for(admin.start(), 45)
        await asyncio.wait_for(admin.list_topics(), 30)
    finally:
        await admin.close()


async def test_a_wrong_password_is_refused(secure_broker: SecureBroker) -> None:
    await _admin_start(secure_broker.settings())  # the right one is accepted
    with pytest.raises(Exception):  # noqa: B017 - aiokafka reports it as a failed bootstrap
        await _admin_start(secure_broker.settings(sasl_password_file=None, sasl_password="not-the-password"))
    assert "invalid credentials with SASL mechanism SCRAM-SHA-512" in secure_broker.log.read_text()


async def test_an_untrusted_broker_certificate_and_plaintext_are_refused(secure_broker: SecureBroker) -> None:
    with pytest.raises(Exception):  # noqa: B017 - the TLS handshake fails: certificate verify failed
        await _admin_start(secure_broker.settings(ssl_ca_file=secure_broker.other_ca_file))
    with pytest.raises(Exception):  # noqa: B017 - the SASL_SSL listener does not speak PLAINTEXT
        await _admin_start(KafkaSettings(bootstrap_servers=secure_broker.bootstrap))


@pytest.mark.parametrize("env, problem", [
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_PASSWORD": SECRET}, "KAFKA_SASL_USERNAME is required"),
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "u"}, "KAFKA_SASL_PASSWORD"),
    ({"KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": SECRET}, "KAFKA_SECURITY_PROTOCOL is PLAINTEXT"),
    ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_FILE": "/nonexistent/ca.pem"}, "does not exist"),
    ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CERT_FILE": __file__}, "go together"),
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"}, "KAFKA_SECURITY_PROTOCOL"),
])
def test_inconsistent_settings_fail_fast_without_echoing_values(
        monkeypatch: pytest.MonkeyPatch, env: dict[str, str], problem: str) -> None:
    for name in [n for n in os.environ if n.startswith("KAFKA_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=problem) as error:
        kafka_settings()
    assert SECRET not in str(error.value)
