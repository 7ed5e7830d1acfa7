"""Running the example subscribers of docs/subscribing.md as a subscriber would, and checking what they print.

Events are published the way the relays publish them (the contract's encoder, the `type` / `schema_version`
headers and the CloudEvents headers), the first one twice: a redelivery, same event_id. Java and Maven are
required (CI installs them): without them a Java test FAILS.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from sandan_contracts import encode
from sandan_contracts.cloudevents import ce_type
from sandan_contracts.cloudevents import headers as cloudevent_headers
from sandan_contracts.envelope import headers as event_headers
from sandan_contracts.events import Event

REPO = Path(__file__).resolve().parents[2]
PYTHON_EXAMPLE = REPO / "examples" / "subscribers" / "python" / "subscriber.py"
JAVA_PROJECT = REPO / "examples" / "subscribers" / "java"
MAIN_CLASS = "cn.sandan.examples.subscriber.Subscriber"
RUN_TIMEOUT = 180
CONNECTION = ("KAFKA_BOOTSTRAP_SERVERS", "KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD",
              "KAFKA_SSL_CA_FILE")


@dataclass(frozen=True)
class Published:
    topics: list[str]
    event_ids: list[str]  # distinct events, in publishing order
    keys: dict[str, str]  # event_id -> key
    ce_types: dict[str, str]  # event_id -> the CloudEvents type it was published with
    duplicate: str  # published twice
    records: int


async def create_topic(kafka: dict[str, Any], topic: str) -> None:
    admin = AIOKafkaAdminClient(**kafka)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
        for _ in range(100):
            if topic in await admin.list_topics():
                break
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


async def publish(kafka: dict[str, Any], events: list[tuple[str, Event]], prefix: str) -> Published:
    """Publish (topic, event) pairs with event ids `<prefix>:<n>`, then the first record again."""
    messages, ids, keys, types = [], [], {}, {}
    for n, (topic, event) in enumerate(events, start=1):
        event_id, key = f"{prefix}:{n}", event.key()
        body = encode(event, event_id=event_id, producer=event.TOPIC.split(".")[0], occurred_at=datetime.now(UTC),
                      correlation_id=f"{prefix}-flow", causation_id=None)
        messages.append((topic, key, body, [*event_headers(event), *cloudevent_headers(body)]))
        ids.append(event_id)
        keys[event_id] = key
        types[event_id] = ce_type(event.TOPIC, event.TYPE, event.VERSION)
    messages.append(messages[0])  # a redelivery: the same record again (same event_id)
    producer = AIOKafkaProducer(**kafka, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for topic, key, body, headers in messages:
            await producer.send_and_wait(topic, body, key=key.encode(), headers=headers)
    finally:
        await producer.stop()
    return Published(sorted({m[0] for m in messages}), ids, keys, types, ids[0], len(messages))


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: list[str]
    stderr: str
    seconds: float


def run(command: list[str], connection: dict[str, str], cwd: Path | None = None) -> Ran:
    """Run an example with only the given connection settings (KAFKA_*) in its environment."""
    env = {k: v for k, v in os.environ.items() if k not in CONNECTION}
    env.update(connection)
    started = datetime.now(UTC)
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT,
                          check=False)
    return Ran(done.returncode, done.stdout.splitlines(), done.stderr, (datetime.now(UTC) - started).total_seconds())


def succeeded(ran: Ran, what: str) -> list[str]:
    assert ran.returncode == 0, f"{what} exited {ran.returncode}\n" + "\n".join(ran.stdout) + f"\n{ran.stderr}"
    return ran.stdout


def python_example(*args: str) -> list[str]:
    return [sys.executable, str(PYTHON_EXAMPLE), *args]


def java_example(*args: str) -> list[str]:
    return ["java", "-cp", java_classpath(), MAIN_CLASS, *args]


def check(lines: list[str], published: Published) -> None:
    """Every event once, in order per key, with its CloudEvents type; the redelivery recognised."""
    events = [line.split()[1] for line in lines if line.startswith("event ")]
    duplicates = [line.split()[1] for line in lines if line.startswith("duplicate ")]
    assert sorted(events) == sorted(published.event_ids), lines
    assert duplicates == [published.duplicate], lines
    # one aggregate's events arrive in the order they were published
    for key in set(published.keys.values()):
        of_key = [e for e in events if published.keys[e] == key]
        assert of_key == [e for e in published.event_ids if published.keys[e] == key]
    for line in lines:
        if line.startswith(("event ", "duplicate ")):
            assert f"ce_type={published.ce_types[line.split()[1]]}" in line.split(), line
    assert lines[-1] == f"done: {published.records} record(s)"


def java_classpath() -> str:
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
