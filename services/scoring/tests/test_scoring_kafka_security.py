"""scoring's own Kafka clients (live folding, replays, end offsets, the simulator's producer) connect with the
cluster's security settings (KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_*, KAFKA_SSL_*), as the k8s deployment's
SASL_SSL listener requires. The clients are replaced by recorders: what is checked is what they are given."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import pytest
from faststream.kafka import KafkaBroker

from sandan_scoring import engine, fastreplay, simulate
from sandan_scoring.engine import Scorer
from sandan_scoring.fold import Ledger
from sandan_scoring.rules import RuleBook
from sandan_scoring.store import ScoringStore

BOOTSTRAP = "kafka.sandan.svc:9093"
PASSWORD = "scram-secret"


class Refused(Exception):
    """The recorder's start: the test has seen what it needed."""


class Recorder:
    made: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        Recorder.made.append((args, kwargs))

    async def start(self) -> None:
        raise Refused

    async def stop(self) -> None:
        pass

    def assign(self, parts: Any) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture
def sasl(monkeypatch: pytest.MonkeyPatch) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "scoring")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", PASSWORD)
    for name in ("KAFKA_SASL_PASSWORD_FILE", "KAFKA_SSL_CA_FILE", "KAFKA_SSL_CERT_FILE", "KAFKA_SSL_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    Recorder.made = []
    return Recorder.made


def assert_aiokafka_sasl(kwargs: dict[str, Any]) -> None:
    assert kwargs["bootstrap_servers"] == BOOTSTRAP
    assert (kwargs["security_protocol"], kwargs["sasl_mechanism"]) == ("SASL_SSL", "SCRAM-SHA-512")
    assert (kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == ("scoring", PASSWORD)
    assert isinstance(kwargs["ssl_context"], ssl.SSLContext)


async def test_end_offsets_and_replay_consumers_get_the_security_settings(
        sasl: list[Any], monkeypatch: pytest.MonkeyPatch, rulebook: RuleBook) -> None:
    monkeypatch.setattr(engine, "AIOKafkaConsumer", Recorder)
    with pytest.raises(Refused):
        await engine.end_offsets(BOOTSTRAP)
    with pytest.raises(Refused):
        await engine.replay(BOOTSTRAP, Ledger(rulebook.get("2026.1")), None)
    assert len(sasl) == 2
    for _args, kwargs in sasl:
        assert_aiokafka_sasl(kwargs)
    assert sasl[1][1]["client_id"] == "scoring-replay" and sasl[1][1]["enable_auto_commit"] is False


async def test_live_folding_consumer_gets_the_security_settings(sasl: list[Any], monkeypatch: pytest.MonkeyPatch,
                                                                rulebook: RuleBook, tmp_path: Path) -> None:
    stop = asyncio.Event()

    class StopsTheLoop(Recorder):
        async def start(self) -> None:
            stop.set()  # one attempt is enough
            raise Refused

    monkeypatch.setattr(engine, "AIOKafkaConsumer", StopsTheLoop)
    store = ScoringStore(f"sqlite:///{tmp_path}/scoring.db")
    try:
        scorer = Scorer(store, rulebook, BOOTSTRAP, KafkaBroker(BOOTSTRAP), "2026.1")
        await scorer.run_live(stop)
    finally:
        store.engine.dispose()
    assert len(sasl) == 1
    assert_aiokafka_sasl(sasl[0][1])
    assert sasl[0][1]["client_id"] == "scoring-live"


def test_librdkafka_replay_consumers_get_the_security_settings(sasl: list[Any],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fastreplay, "Consumer", Recorder)
    wanted = {("dispatch.orders.v1", 0): 10, ("dispatch.roster.v1", 0): 5}
    opened = fastreplay.open_consumers(BOOTSTRAP, wanted, {})
    assert len(opened) == fastreplay.FETCHERS == len(sasl)
    for (config,), _kwargs in sasl:
        assert config["bootstrap.servers"] == BOOTSTRAP
        assert (config["security.protocol"], config["sasl.mechanism"]) == ("sasl_ssl", "SCRAM-SHA-512")
        assert (config["sasl.username"], config["sasl.password"]) == ("scoring", PASSWORD)
        assert config["ssl.endpoint.identification.algorithm"] == "https"
        assert config["group.id"].startswith("scoring-replay-")
        assert config["fetch.max.bytes"] == fastreplay.SETTINGS["fetch.max.bytes"]  # the tuning stays


async def test_the_simulators_producer_gets_the_security_settings(sasl: list[Any],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import aiokafka

    monkeypatch.setattr(aiokafka, "AIOKafkaProducer", Recorder)
    with pytest.raises(Refused):
        await simulate.produce(BOOTSTRAP, {})
    assert len(sasl) == 1
    assert_aiokafka_sasl(sasl[0][1])
    assert (sasl[0][1]["enable_idempotence"], sasl[0][1]["acks"]) == (True, "all")


def test_plaintext_stays_plaintext(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(fastreplay, "Consumer", Recorder)
    Recorder.made = []
    fastreplay.open_consumers("127.0.0.1:9092", {("dispatch.orders.v1", 0): 1}, {})
    (config,), _ = Recorder.made[0]
    assert config["security.protocol"] == "plaintext" and not any(k.startswith("sasl") for k in config)
