"""Did a call leave a trace? Its correlation id (metadata `x-correlation-id`) in a service's stored events or on
any event-log topic. A refused call must leave none."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from sandan_contracts import TOPICS, Envelope


def stored_with(store: Path, correlation_id: str) -> int:
    """How many events in a SQLite event store carry the correlation id."""
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=30) as db:
        return db.execute("SELECT count(*) FROM stored_events WHERE instr(state, ?) > 0",
                          (correlation_id.encode(),)).fetchone()[0]


async def ends(bootstrap: str) -> dict[TopicPartition, int]:
    """The event-log topics' current ends: read what comes after with `correlations_since`."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(t.name, p) for t in TOPICS.values() if t.dead_letter for p in range(t.partitions)]
        return await consumer.end_offsets(parts)
    finally:
        await consumer.stop()


async def published_since(bootstrap: str, start: dict[TopicPartition, int]) -> list[tuple[str, str, Envelope]]:
    """(topic, key, envelope) of every envelope published on those topics since `start`, up to their ends now."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        last = await consumer.end_offsets(list(start))
        consumer.assign(list(start))
        for tp, offset in start.items():
            consumer.seek(tp, offset)
        found: list[tuple[str, str, Envelope]] = []
        behind = set(start)
        while behind:
            behind = {tp for tp in behind if await consumer.position(tp) < last[tp]}
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    try:
                        envelope = Envelope.model_validate_json(r.value)
                    except ValueError:
                        continue
                    found.append((r.topic, r.key.decode() if r.key else "", envelope))
        return found
    finally:
        await consumer.stop()


async def correlations_since(bootstrap: str, start: dict[TopicPartition, int]) -> set[str]:
    """The correlation ids of every envelope published on those topics since `start`."""
    return {envelope.correlation_id for _, _, envelope in await published_since(bootstrap, start)}
