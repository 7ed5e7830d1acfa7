"""Replay through librdkafka (confluent-kafka): fetching and parsing run in librdkafka's own C threads,
so on a 2-core machine they overlap with the Python fold instead of competing with it.

Used for whole-log replays (restore, rebuild, what-if); live folding stays on aiokafka. Blocking calls:
run it in a worker thread.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException, TopicPartition

from sandan_scoring.fold import Ledger
from sandan_scoring.store import Positions

BATCH = 10_000


def replay_blocking(bootstrap: str, ledger: Ledger, begin: dict[tuple[str, int], int], target: Positions,
                    progress: Callable[[int], None] = lambda n: None) -> int:
    """Fold every partition from `begin` up to (not including) `target`; returns how many records were read."""
    from sandan_scoring.engine import fold_records_values

    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"scoring-replay-{uuid.uuid4().hex[:8]}",  # never committed: positions live in our store
        "enable.auto.commit": False,
        "enable.partition.eof": False,
        "fetch.max.bytes": 64 * 1024 * 1024,
        "max.partition.fetch.bytes": 8 * 1024 * 1024,
        "queued.max.messages.kbytes": 256 * 1024,
    })
    try:
        wanted = {k: v for k, v in target.items() if v > begin.get(k, 0)}
        consumer.assign([TopicPartition(t, p, begin.get((t, p), 0)) for (t, p) in wanted])
        remaining = set(wanted)
        read = 0
        while remaining:
            messages = consumer.consume(num_messages=BATCH, timeout=1.0)
            batch = []
            for m in messages:
                if m.error():
                    raise KafkaException(m.error())
                key = (m.topic(), m.partition())
                stop_at = wanted.get(key)
                if stop_at is None or m.offset() >= stop_at:
                    continue
                batch.append((m.topic(), m.value()))
                if m.offset() + 1 >= stop_at:
                    remaining.discard(key)
                    consumer.pause([TopicPartition(key[0], key[1])])
            fold_records_values(ledger, batch)
            read += len(batch)
            progress(read)
        return read
    finally:
        consumer.close()
