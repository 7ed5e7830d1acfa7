"""Replay through librdkafka (confluent-kafka): fetching and parsing run in librdkafka's own C threads,
so on a 2-core machine they overlap with the Python fold instead of competing with it.

Used for whole-log replays (restore, rebuild, what-if); live folding stays on aiokafka. Blocking calls:
run it in a worker thread.
"""

from __future__ import annotations

import gc
import uuid
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from sandan_eventbus.kafka import librdkafka_config
from sandan_scoring.facts import SKIPPED_TYPES, type_of
from sandan_scoring.fold import Ledger
from sandan_scoring.folding import fold_records, folder
from sandan_scoring.store import Positions

BATCH = 10_000
# Two consumers, each fetching half of the partitions over its own connection: one fetch in flight per
# connection left consume() waiting; two took consumption alone from ~365k to ~580k msg/s here (three: no better).
FETCHERS = 2
# librdkafka settings: keep the prefetch queue deep and refilled at once. With the defaults (queue low-water
# 100k messages, 500 ms fetch wait, and a 1 s pause whenever the queue is full) consume() starved at ~175k
# msg/s here; tuned, ~365k msg/s per consumer (a 1M-message log, broker on loopback).
SETTINGS = {
    "enable.auto.commit": False,
    "enable.partition.eof": False,
    "fetch.max.bytes": 64 * 1024 * 1024,
    "max.partition.fetch.bytes": 16 * 1024 * 1024,
    "queued.max.messages.kbytes": 32 * 1024,  # per consumer
    "queued.min.messages": 1_000_000,
    "fetch.wait.max.ms": 10,
    "fetch.queue.backoff.ms": 10,
}


def replay_blocking(bootstrap: str, ledger: Ledger, begin: dict[tuple[str, int], int], target: Positions,
                    progress: Callable[[int], None] = lambda n: None,
                    after_batch: Callable[[Ledger], None] = lambda ledger: None) -> int:
    """Fold every partition from `begin` up to (not including) `target`; returns how many records were read.
    `after_batch(ledger)` runs after each batch is folded (a rebuild hands new entries to its writer).

    Partitions are shared among the consumers, and each partition's messages are folded in order; how the
    partitions interleave does not matter to the fold (see fold.py)."""
    wanted = {k: v for k, v in target.items() if v > begin.get(k, 0)}
    assigned = open_consumers(bootstrap, wanted, begin)
    consumers = [consumer for consumer, _ in assigned]
    remaining = [left for _, left in assigned]
    # The fold builds millions of long-lived objects and no cycles: the cyclic GC would rescan them over and
    # over (measured: ~20% of a 1M-event replay). Paused for the replay only.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        read = 0
        native = folder(ledger, skip=SKIPPED_TYPES)
        while any(remaining):
            for consumer, left in zip(consumers, remaining, strict=True):
                if not left:
                    continue
                # With several consumers, none may block long while another has messages waiting.
                messages = consumer.consume(num_messages=BATCH, timeout=0.05 if len(consumers) > 1 else 1.0)
                if native is not None:  # the kernel walks the batch itself: offsets, skipped types, fold
                    n, finished = native.fold_messages(messages, {k: wanted[k] for k in left}, _raise)
                else:
                    n, finished = _fold_in_python(ledger, messages, wanted, left)
                read += n
                for key in finished:
                    left.discard(key)
                    consumer.pause([TopicPartition(key[0], key[1])])
                if messages:
                    after_batch(ledger)
                    progress(read)
        return read
    finally:
        if gc_was_enabled:
            gc.enable()
        for consumer in consumers:
            consumer.close()


def open_consumers(bootstrap: str, wanted: Positions, begin: Positions) -> list[tuple[Consumer, set[tuple[str, int]]]]:
    """FETCHERS consumers, each assigned its share of the wanted partitions from `begin` (default 0), with the
    partitions it has left to read."""
    group = f"scoring-replay-{uuid.uuid4().hex[:8]}"  # never committed: positions live in our store
    connection = librdkafka_config(bootstrap)  # TLS and SASL from KAFKA_* (a worker process reads the same env)
    assigned = []
    for part_share in share_partitions(wanted, FETCHERS):
        consumer = Consumer({**connection, "group.id": group, **SETTINGS})
        consumer.assign([TopicPartition(t, p, begin.get((t, p), 0)) for (t, p) in part_share])
        assigned.append((consumer, set(part_share)))
    return assigned


def _fold_in_python(ledger: Ledger, messages: list[Message], wanted: Positions, left: set[tuple[str, int]]
                    ) -> tuple[int, list[tuple[str, int]]]:
    """What `Folder.fold_messages` does, for when the kernel is not installed."""
    batch: list[tuple[str, bytes | None]] = []
    read, finished = 0, []
    for m in messages:
        value = m.value()
        if value is None and m.error():
            _raise(m.error())
        topic, offset = m.topic(), m.offset()
        key = (topic, m.partition())
        if key not in left or offset >= wanted[key]:
            continue
        read += 1
        if offset + 1 >= wanted[key]:
            finished.append(key)
        if value is not None and type_of(value) in SKIPPED_TYPES:
            continue  # a contract type the fold never uses (e.g. DemandPosted): skipped unparsed
        batch.append((topic, value))
    fold_records(ledger, batch)
    return read, finished


def share_partitions(sizes: Positions, ways: int) -> list[list[tuple[str, int]]]:
    """Partitions shared `ways` ways so each share has about the same number of records (largest first);
    never an empty share, and at least one (empty when there is nothing to read)."""
    shares: list[list[tuple[str, int]]] = [[] for _ in range(max(1, ways))]
    loads = [0] * len(shares)
    for part in sorted(sizes, key=lambda p: -sizes[p]):
        i = loads.index(min(loads))
        shares[i].append(part)
        loads[i] += sizes[part]
    return [s for s in shares if s] or [[]]


def _raise(error: KafkaError) -> None:
    raise KafkaException(error)
