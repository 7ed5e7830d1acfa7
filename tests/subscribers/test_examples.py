"""The example subscribers of docs/subscribing.md, run as a subscriber would run them, against the real broker.

A few real events are published the way the relays publish them (the contract's encoder, the `type` /
`schema_version` headers and the CloudEvents headers) on a topic of their own, one of them twice (a redelivery:
same event_id); each example reads them with a new consumer group and must print every event once, in order per
key, and recognise the duplicate. The Python example then reads them again with another group into the same store:
all duplicates. Java and Maven are required (CI installs them): without them the Java test FAILS.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from sandan_contracts import encode
from sandan_contracts.cloudevents import ce_type
from sandan_contracts.cloudevents import headers as cloudevent_headers
from sandan_contracts.envelope import headers as event_headers
from sandan_contracts.events import DemandWithdrawn
from sandan_eventbus.kafka import aiokafka_kwargs

pytestmark = pytest.mark.kafka

REPO = Path(__file__).resolve().parents[2]
PYTHON_EXAMPLE = REPO / "examples" / "subscribers" / "python" / "subscriber.py"
JAVA_PROJECT = REPO / "examples" / "subscribers" / "java"
MAIN_CLASS = "cn.sandan.examples.subscriber.Subscriber"
RUN_TIMEOUT = 180


@dataclass(frozen=True)
class Published:
    topic: str
    event_ids: list[str]  # distinct events, in publishing order
    keys: dict[str, str]  # event_id -> key
    duplicate: str  # published twice
    records: int


async def _publish(bootstrap: str, topic: str, prefix: str) -> Published:
    admin = AIOKafkaAdminClient(**aiokafka_kwargs(bootstrap))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
        for _ in range(100):
            if topic in await admin.list_topics():
                break
            await asyncio.sleep(0.1)
    finally:
        await admin.close()
    keys = [f"{prefix}-a", f"{prefix}-b", f"{prefix}-a"]  # two events of one aggregate: their order is kept
    messages = []
    for n, key in enumerate(keys, start=1):
        event = DemandWithdrawn(demand_id=key, reason="example_subscriber")
        body = encode(event, event_id=f"{prefix}:{n}", producer="intake", occurred_at=datetime.now(UTC),
                      correlation_id=f"{prefix}-flow", causation_id=None)
        messages.append((key, body, [*event_headers(event), *cloudevent_headers(body)]))
    messages.append(messages[0])  # a redelivery: the same record again (same event_id)
    producer = AIOKafkaProducer(**aiokafka_kwargs(bootstrap), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for key, body, headers in messages:
            await producer.send_and_wait(topic, body, key=key.encode(), headers=headers)
    finally:
        await producer.stop()
    ids = [f"{prefix}:{n}" for n in range(1, len(keys) + 1)]
    return Published(topic, ids, dict(zip(ids, keys, strict=True)), ids[0], len(messages))


async def _delete(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(**aiokafka_kwargs(bootstrap))
    await admin.start()
    try:
        await admin.delete_topics([topic])
    finally:
        await admin.close()


@pytest.fixture(scope="module")
def published(kafka_bootstrap: str) -> Iterator[Published]:
    run = uuid.uuid4().hex[:8]
    topic = f"examples.subscribers.{run}"
    yield asyncio.run(_publish(kafka_bootstrap, topic, f"ex-{run}"))
    try:
        asyncio.run(_delete(kafka_bootstrap, topic))
    except Exception as exc:  # cleanup only
        print(f"could not delete {topic}: {exc!r}")


def _run(command: list[str], bootstrap: str, cwd: Path | None = None) -> list[str]:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap}
    for name in ("KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD", "KAFKA_SSL_CA_FILE"):
        env.pop(name, None)  # the local broker: PLAINTEXT
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT,
                          check=False)
    assert done.returncode == 0, f"{command[0]} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout.splitlines()


def _check(lines: list[str], published: Published) -> None:
    events = [line.split()[1] for line in lines if line.startswith("event ")]
    duplicates = [line.split()[1] for line in lines if line.startswith("duplicate ")]
    assert sorted(events) == sorted(published.event_ids), lines
    assert duplicates == [published.duplicate], lines
    # one aggregate's events arrive in the order they were published
    for key in set(published.keys.values()):
        of_key = [e for e in events if published.keys[e] == key]
        assert of_key == [e for e in published.event_ids if published.keys[e] == key]
    expected_type = ce_type(DemandWithdrawn.TOPIC, "DemandWithdrawn", 1)
    assert all(f"ce_type={expected_type}" in line for line in lines if line.startswith(("event ", "duplicate ")))
    assert lines[-1] == f"done: {published.records} record(s)"


def test_the_python_subscriber_reads_each_event_once(published: Published, kafka_bootstrap: str,
                                                     tmp_path: Path) -> None:
    db = tmp_path / "events.sqlite"

    def subscriber(group: str) -> list[str]:
        return _run([sys.executable, str(PYTHON_EXAMPLE), "--topic", published.topic, "--group", group,
                     "--db", str(db), "--max-records", str(published.records), "--timeout", "120"], kafka_bootstrap)

    _check(subscriber(f"example-py-{uuid.uuid4().hex[:6]}"), published)
    # another group replaying the topic into the same store: every record is recognised as already handled
    again = subscriber(f"example-py-{uuid.uuid4().hex[:6]}")
    assert not [line for line in again if line.startswith("event ")], again
    assert len([line for line in again if line.startswith("duplicate ")]) == published.records


def _java_classpath() -> str:
    """Build the Java example (offline when ~/.m2 has everything, else online); its runtime classpath."""
    mvn, java = shutil.which("mvn"), shutil.which("java")
    if not (mvn and java):
        pytest.fail("the Java example needs `java` (17+) and `mvn` on PATH (.ci/run installs them)")
    sources = [JAVA_PROJECT / "pom.xml", *(JAVA_PROJECT / "src").rglob("*")]
    classpath_file = JAVA_PROJECT / "target" / "classpath.txt"
    stamp = JAVA_PROJECT / "target" / "classes" / MAIN_CLASS.replace(".", "/")
    built = stamp.with_suffix(".class")
    fresh = (classpath_file.is_file() and built.is_file()
             and built.stat().st_mtime >= max(p.stat().st_mtime for p in sources if p.is_file())
             and all(Path(jar).is_file() for jar in classpath_file.read_text().strip().split(os.pathsep)))
    if not fresh:
        build = [mvn, "-q", "-B", "-Dstyle.color=never", "compile", "dependency:build-classpath",
                 f"-Dmdep.outputFile={classpath_file}"]
        offline = subprocess.run([build[0], "-o", *build[1:]], cwd=JAVA_PROJECT, capture_output=True, text=True,
                                 timeout=600, check=False)
        if offline.returncode != 0:  # a cold ~/.m2: fetch from Maven Central once
            online = subprocess.run(build, cwd=JAVA_PROJECT, capture_output=True, text=True, timeout=900,
                                    check=False)
            assert online.returncode == 0, f"mvn failed:\n{online.stdout}\n{online.stderr}"
    return f"{JAVA_PROJECT / 'target' / 'classes'}{os.pathsep}{classpath_file.read_text().strip()}"


def test_the_java_subscriber_reads_each_event_once(published: Published, kafka_bootstrap: str,
                                                   tmp_path: Path) -> None:
    classpath = _java_classpath()
    lines = _run(["java", "-cp", classpath, MAIN_CLASS, "--topic", published.topic,
                  "--group", f"example-java-{uuid.uuid4().hex[:6]}", "--dedup-file", str(tmp_path / "ids.txt"),
                  "--max-records", str(published.records), "--timeout", "120"], kafka_bootstrap)
    _check(lines, published)
