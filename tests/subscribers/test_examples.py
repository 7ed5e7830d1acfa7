"""The example subscribers of docs/subscribing.md, run as a subscriber would run them, against the real broker.

A few real events are published the way the relays publish them (tests/subscribers/support.py) on a topic of
their own, one of them twice (a redelivery: same event_id); each example reads them with a new consumer group and
must print every event once, in order per key, and recognise the duplicate. The Python example then reads them
again with another group into the same store: all duplicates. The local broker is PLAINTEXT; the way agencies
connect (SASL_SSL, a read-only user) is test_examples_secure.py.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from sandan_contracts.events import DemandWithdrawn
from sandan_eventbus.kafka import aiokafka_kwargs
from tests.subscribers.support import (
    Published,
    check,
    create_topic,
    java_example,
    publish,
    python_example,
    run,
    succeeded,
)

pytestmark = pytest.mark.kafka


async def _publish(bootstrap: str, topic: str, prefix: str) -> Published:
    await create_topic(aiokafka_kwargs(bootstrap), topic)
    # two events of one aggregate: their order is kept
    events = [DemandWithdrawn(demand_id=key, reason="example_subscriber")
              for key in (f"{prefix}-a", f"{prefix}-b", f"{prefix}-a")]
    return await publish(aiokafka_kwargs(bootstrap), [(topic, e) for e in events], prefix)


async def _delete(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(**aiokafka_kwargs(bootstrap))
    await admin.start()
    try:
        await admin.delete_topics([topic])
    finally:
        await admin.close()


@pytest.fixture(scope="module")
def published(kafka_bootstrap: str) -> Iterator[Published]:
    run_id = uuid.uuid4().hex[:8]
    topic = f"examples.subscribers.{run_id}"
    yield asyncio.run(_publish(kafka_bootstrap, topic, f"ex-{run_id}"))
    try:
        asyncio.run(_delete(kafka_bootstrap, topic))
    except Exception as exc:  # cleanup only
        print(f"could not delete {topic}: {exc!r}")


def test_the_python_subscriber_reads_each_event_once(published: Published, kafka_bootstrap: str,
                                                     tmp_path: Path) -> None:
    db = tmp_path / "events.sqlite"
    plaintext = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}  # the local broker: no TLS, no credentials

    def subscriber(group: str) -> list[str]:
        ran = run(python_example("--topic", published.topics[0], "--group", group, "--db", str(db),
                                 "--max-records", str(published.records), "--timeout", "120"), plaintext)
        return succeeded(ran, "the Python example")

    check(subscriber(f"example-py-{uuid.uuid4().hex[:6]}"), published)
    # another group replaying the topic into the same store: every record is recognised as already handled
    again = subscriber(f"example-py-{uuid.uuid4().hex[:6]}")
    assert not [line for line in again if line.startswith("event ")], again
    assert len([line for line in again if line.startswith("duplicate ")]) == published.records


def test_the_java_subscriber_reads_each_event_once(published: Published, kafka_bootstrap: str,
                                                   tmp_path: Path) -> None:
    ran = run(java_example("--topic", published.topics[0], "--group", f"example-java-{uuid.uuid4().hex[:6]}",
                           "--dedup-file", str(tmp_path / "ids.txt"), "--max-records", str(published.records),
                           "--timeout", "120"), {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap})
    check(succeeded(ran, "the Java example"), published)
