"""The Kafka client settings every service uses, and topic creation from the registry."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream.kafka import KafkaBroker

from sandan_contracts import TOPICS

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


def bootstrap_servers() -> str:
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip() or DEFAULT_BOOTSTRAP


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


def make_broker(client_id: str, bootstrap: str | None = None) -> KafkaBroker:
    # Idempotent producer with acks=all: a retried send is never written twice, nothing acked is lost.
    # linger 0: handlers and the relay await their sends; lingering would add latency to each.
    return KafkaBroker(
        bootstrap or bootstrap_servers(),
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=0,
        logger=None,
    )


async def create_topics(bootstrap: str | None = None, timeout_s: float = 60) -> int:
    """Create every registry topic that does not exist yet; returns how many were created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap or bootstrap_servers(), client_id="sandan-topics")
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
