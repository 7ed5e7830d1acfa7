"""The Kafka client settings every service uses, and topic creation from the registry.

`KafkaSettings` is the one place that says how to reach the broker: bootstrap servers, and TLS and SASL/SCRAM
from the environment (KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_*, KAFKA_SSL_*). It yields the same connection for
the three client libraries in use: faststream (`make_broker`), raw aiokafka consumers, producers and admin
clients (`aiokafka_kwargs`), and librdkafka (`librdkafka_config`, scoring's replay).
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.helpers import create_ssl_context
from faststream.kafka import KafkaBroker
from faststream.security import BaseSecurity, SASLScram512
from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sandan_contracts import TOPICS
from sandan_eventbus.config import ConfigError

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


def bootstrap_servers() -> str:
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip() or DEFAULT_BOOTSTRAP


class KafkaSettings(BaseSettings):
    """How to connect to Kafka, from KAFKA_* variables (empty values count as unset).

    PLAINTEXT (local runs), SSL (TLS, optionally with a client certificate: mutual TLS) or SASL_SSL (TLS plus
    SCRAM-SHA-512 user and password, as Strimzi's `scram-sha-512` listeners want). The password comes from
    KAFKA_SASL_PASSWORD or, better, KAFKA_SASL_PASSWORD_FILE (a mounted Secret; read when a client is made).
    """

    model_config = SettingsConfigDict(env_prefix="KAFKA_", env_ignore_empty=True, extra="ignore", frozen=True)

    bootstrap_servers: str = Field(DEFAULT_BOOTSTRAP, description=(
        "the brokers, `host:port[,host:port...]`; a service's own settings require it (the gateway: for live "
        "updates, unless `GATEWAY_LIVE=off`)"))
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_SSL"] = Field("PLAINTEXT", description=(
        "`PLAINTEXT` for local runs, `SSL` (TLS, optionally mutual) or `SASL_SSL` (TLS + SCRAM-SHA-512, Strimzi's "
        "`scram-sha-512` listeners). A TLS or SASL setting that this protocol would ignore is refused"))
    sasl_mechanism: Literal["SCRAM-SHA-512"] = Field("SCRAM-SHA-512", description="the only mechanism offered")
    sasl_username: str = Field("", description="with `SASL_SSL`: the Kafka user (a KafkaUser per service on k8s)")
    sasl_password: SecretStr = Field(SecretStr(""), description="with `SASL_SSL`: its password (or the `_FILE`)")
    sasl_password_file: Path | None = Field(None, description=(
        "the password in a file (a mounted Secret), read whenever a client is made, so a rotation needs no restart"))
    ssl_ca_file: Path | None = Field(None, description="with `SSL`/`SASL_SSL`: the CA the brokers are checked "
                                                       "with (PEM; default: the system's)")
    ssl_cert_file: Path | None = Field(None, description="a client certificate (PEM), for mutual TLS")
    ssl_key_file: Path | None = Field(None, description="its private key (PEM, unencrypted)")
    ssl_check_hostname: bool = Field(True, description="check the brokers' certificates name them")

    @model_validator(mode="after")
    def _consistent(self) -> KafkaSettings:
        sasl = self.security_protocol == "SASL_SSL"
        if sasl and not self.sasl_username:
            raise ValueError("KAFKA_SASL_USERNAME is required with KAFKA_SECURITY_PROTOCOL=SASL_SSL")
        if sasl and not (self.sasl_password.get_secret_value() or self.sasl_password_file):
            raise ValueError("KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE is required with SASL_SSL")
        if self.sasl_password.get_secret_value() and self.sasl_password_file:
            raise ValueError("set one of KAFKA_SASL_PASSWORD and KAFKA_SASL_PASSWORD_FILE, not both")
        # Credentials or TLS files that would be silently ignored mean a misconfiguration: refuse them.
        if not sasl and (self.sasl_username or self.sasl_password.get_secret_value() or self.sasl_password_file):
            raise ValueError(f"KAFKA_SASL_* is set but KAFKA_SECURITY_PROTOCOL is {self.security_protocol}")
        tls_files = [f for f in (self.ssl_ca_file, self.ssl_cert_file, self.ssl_key_file) if f]
        if self.security_protocol == "PLAINTEXT" and tls_files:
            raise ValueError("KAFKA_SSL_* files are set but KAFKA_SECURITY_PROTOCOL is PLAINTEXT")
        if bool(self.ssl_cert_file) != bool(self.ssl_key_file):
            raise ValueError("KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE go together")
        for path in [*tls_files, *([self.sasl_password_file] if self.sasl_password_file else [])]:
            if not path.is_file():
                raise ValueError(f"{path} does not exist")
        return self

    @property
    def tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    def password(self) -> str:
        """The SASL password, read from its file each time (a rotated Secret is picked up by new clients)."""
        if self.sasl_password_file:
            return self.sasl_password_file.read_text(encoding="utf-8").strip()
        return self.sasl_password.get_secret_value()

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        context = create_ssl_context(cafile=self.ssl_ca_file, certfile=self.ssl_cert_file,
                                     keyfile=self.ssl_key_file)
        context.check_hostname = self.ssl_check_hostname
        return context

    def faststream_security(self) -> BaseSecurity | None:
        """The `security=` of faststream's KafkaBroker."""
        if self.security_protocol == "SASL_SSL":
            return SASLScram512(self.sasl_username, self.password(), ssl_context=self.ssl_context(), use_ssl=True)
        if self.security_protocol == "SSL":
            return BaseSecurity(ssl_context=self.ssl_context(), use_ssl=True)
        return None

    def aiokafka_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for AIOKafkaConsumer, AIOKafkaProducer and AIOKafkaAdminClient (bootstrap included)."""
        kwargs: dict[str, Any] = {"bootstrap_servers": self.bootstrap_servers,
                                  "security_protocol": self.security_protocol}
        if self.tls:
            kwargs["ssl_context"] = self.ssl_context()
        if self.security_protocol == "SASL_SSL":
            kwargs.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.sasl_username,
                          sasl_plain_password=self.password())
        return kwargs

    def librdkafka_config(self) -> dict[str, str]:
        """librdkafka (confluent-kafka) settings for the same connection (bootstrap.servers included)."""
        config = {"bootstrap.servers": self.bootstrap_servers, "security.protocol": self.security_protocol.lower()}
        if self.tls:
            config["ssl.endpoint.identification.algorithm"] = "https" if self.ssl_check_hostname else "none"
            if self.ssl_ca_file:
                config["ssl.ca.location"] = str(self.ssl_ca_file)
            if self.ssl_cert_file and self.ssl_key_file:
                config["ssl.certificate.location"] = str(self.ssl_cert_file)
                config["ssl.key.location"] = str(self.ssl_key_file)
        if self.security_protocol == "SASL_SSL":
            config.update({"sasl.mechanism": self.sasl_mechanism, "sasl.username": self.sasl_username,
                           "sasl.password": self.password()})
        return config


def kafka_settings(bootstrap: str | None = None) -> KafkaSettings:
    """The settings from the environment (`bootstrap`, when given, overrides KAFKA_BOOTSTRAP_SERVERS).

    Raises ConfigError naming the offending variables; never echoes a value (it may be a password)."""
    try:
        return KafkaSettings(**({"bootstrap_servers": bootstrap} if bootstrap else {}))
    except ValidationError as error:
        problems = "; ".join((f"KAFKA_{str(e['loc'][0]).upper()}: " if e["loc"] else "")
                             + e["msg"].removeprefix("Value error, ") for e in error.errors())
        raise ConfigError(f"Kafka settings: {problems}") from None


def aiokafka_kwargs(bootstrap: str | None = None) -> dict[str, Any]:
    """`kafka_settings(bootstrap).aiokafka_kwargs()`: e.g. `AIOKafkaConsumer(*topics, **aiokafka_kwargs(b))`."""
    return kafka_settings(bootstrap).aiokafka_kwargs()


def librdkafka_config(bootstrap: str | None = None) -> dict[str, str]:
    """`kafka_settings(bootstrap).librdkafka_config()`: e.g. `Consumer({**librdkafka_config(b), "group.id": g})`."""
    return kafka_settings(bootstrap).librdkafka_config()


async def partitions_of(consumer: AIOKafkaConsumer, topics: Iterable[str]) -> list[TopicPartition]:
    """Every partition of `topics`, from fresh cluster metadata; LookupError for a topic that is missing."""
    cluster = await consumer._client.fetch_all_metadata()
    out: list[TopicPartition] = []
    for topic in topics:
        parts = cluster.partitions_for_topic(topic)
        if not parts:
            raise LookupError(f"topic {topic} does not exist; create the topics from the registry first")
        out += [TopicPartition(topic, p) for p in sorted(parts)]
    return out


def make_broker(client_id: str, bootstrap: str | None = None, settings: KafkaSettings | None = None) -> KafkaBroker:
    # Idempotent producer with acks=all: a retried send is never written twice, nothing acked is lost.
    # linger 0: handlers and the relay await their sends; lingering would add latency to each.
    settings = settings or kafka_settings(bootstrap)
    return KafkaBroker(
        settings.bootstrap_servers,
        security=settings.faststream_security(),
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=0,
        logger=None,
    )


async def create_topics(bootstrap: str | None = None, timeout_s: float = 60,
                        settings: KafkaSettings | None = None) -> int:
    """Create every registry topic that does not exist yet; returns how many were created."""
    settings = settings or kafka_settings(bootstrap)
    admin = AIOKafkaAdminClient(client_id="sandan-topics", **settings.aiokafka_kwargs())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(t.name, num_partitions=t.partitions, replication_factor=1, topic_configs=t.config)
            for t in TOPICS.values()
            if t.name not in existing
        ]
        if missing:
            try:
                await admin.create_topics(missing, timeout_ms=int(timeout_s * 1000))
            except TopicAlreadyExistsError:
                pass
        # Wait until the broker's metadata shows them all, so the first publish does not race creation.
        for _ in range(int(timeout_s * 10)):
            if set(TOPICS) <= set(await admin.list_topics()):
                break
            await asyncio.sleep(0.1)
        return len(missing)
    finally:
        await admin.close()


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="sandan topics, from the registry in sandan_contracts.topics")
    parser.add_argument("command", choices=["list", "create"])
    args = parser.parse_args()
    if args.command == "list":
        for t in TOPICS.values():
            print(f"{t.name:28} owner={t.owner:9} partitions={t.partitions} retention.ms={t.retention_ms} "
                  f"dlq={t.dead_letter or '-'} events={','.join(t.events) or '-'}")
        return
    created = asyncio.run(create_topics())
    print(f"topics ready on {bootstrap_servers()}: {len(TOPICS)} ({created} created)")


if __name__ == "__main__":
    main()
