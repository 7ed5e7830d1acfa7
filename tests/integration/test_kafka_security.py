"""Kafka clients over TLS with SASL/SCRAM-SHA-512, against a real broker.

The private broker of tests/kafka_tls.py (`secure_broker`: deploy/local/kafka.sh in its opt-in SASL_SSL mode, on
ports of its own, with a throwaway CA; the shared broker is never touched). The settings in
`sandan_eventbus.kafka` then create the registry's topics, publish and consume through faststream
(`make_broker`), read through raw aiokafka and librdkafka, and a wrong password, an untrusted CA and a plaintext
client are each refused.
"""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from confluent_kafka import Consumer
from confluent_kafka import TopicPartition as RdTopicPartition
from faststream.kafka import KafkaMessage

from sandan_contracts import TOPICS
from sandan_eventbus.config import ConfigError
from sandan_eventbus.kafka import KafkaSettings, create_topics, kafka_settings, make_broker, partitions_of
from tests.kafka_tls import USER, SecureBroker

pytestmark = pytest.mark.kafka

SECRET = "s3cret-never-echoed"


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
