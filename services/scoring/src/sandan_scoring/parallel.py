"""Replay on several cores: each worker process folds a share of the partitions, the parent merges.

Exact, not approximate: the fold's keys never span partitions (see `Ledger.merge`). Workers are spawned
(not forked) because the parent runs gRPC and asyncio, which do not survive a fork.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import pickle
from collections.abc import Callable
from multiprocessing.sharedctypes import Synchronized

from aiokafka import AIOKafkaConsumer, TopicPartition

from sandan_scoring.fold import Ledger
from sandan_scoring.rules import RuleSet
from sandan_scoring.store import Positions

BATCH = 5000


async def _fold_partitions(bootstrap: str, ledger: Ledger, parts: list[tuple[str, int]], target: Positions,
                           counter: Synchronized | None) -> None:  # type: ignore[type-arg]
    from sandan_scoring.engine import fold_records

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                max_partition_fetch_bytes=8 * 1024 * 1024, fetch_max_bytes=64 * 1024 * 1024)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t, p in parts]
        consumer.assign(tps)
        begin = await consumer.beginning_offsets(tps)
        remaining = {tp for tp in tps if target.get((tp.topic, tp.partition), 0) > begin[tp]}
        for tp in tps:
            consumer.seek(tp, begin[tp])
        if tps and set(tps) - remaining:
            consumer.pause(*(set(tps) - remaining))
        while remaining:
            batches = await consumer.getmany(timeout_ms=500, max_records=BATCH)
            for tp, records in batches.items():
                stop_at = target[(tp.topic, tp.partition)]
                wanted = [r for r in records if r.offset < stop_at]
                fold_records(ledger, wanted)
                if counter is not None:
                    with counter.get_lock():
                        counter.value += len(wanted)
                if await consumer.position(tp) >= stop_at:
                    remaining.discard(tp)
                    consumer.pause(tp)
    finally:
        await consumer.stop()


def _worker(bootstrap: str, rules: RuleSet, parts: list[tuple[str, int]], target: Positions,
            counter: Synchronized, out: mp.connection.Connection) -> None:  # type: ignore[type-arg]
    ledger = Ledger(rules)
    asyncio.run(_fold_partitions(bootstrap, ledger, parts, target, counter))
    out.send_bytes(pickle.dumps(ledger, protocol=pickle.HIGHEST_PROTOCOL))
    out.close()


def split(parts: list[tuple[str, int]], target: Positions, workers: int) -> list[list[tuple[str, int]]]:
    """Share partitions so each worker gets about the same number of records (largest first)."""
    shares: list[list[tuple[str, int]]] = [[] for _ in range(workers)]
    loads = [0] * workers
    for part in sorted(parts, key=lambda p: -target.get(p, 0)):
        i = loads.index(min(loads))
        shares[i].append(part)
        loads[i] += target.get(part, 0)
    return [s for s in shares if s]


async def fold_in_parallel(bootstrap: str, rules: RuleSet, parts: list[tuple[str, int]], target: Positions,
                           workers: int, progress: Callable[[int], None] = lambda n: None) -> Ledger:
    ctx = mp.get_context("spawn")
    counter = ctx.Value("q", 0)
    procs = []
    for share in split(parts, target, workers):
        receive, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_worker, args=(bootstrap, rules, share, target, counter, send), daemon=True)
        proc.start()
        send.close()
        procs.append((proc, receive))
    ledger = Ledger(rules)
    try:
        for proc, receive in procs:
            while not await asyncio.to_thread(receive.poll, 0.2):
                progress(counter.value)
                if not proc.is_alive() and not receive.poll(0):
                    raise RuntimeError(f"replay worker exited with {proc.exitcode}")
            part = pickle.loads(await asyncio.to_thread(receive.recv_bytes))  # noqa: S301 - our own child process
            ledger.merge(part)
            proc.join()
        progress(counter.value)
        return ledger
    finally:
        for proc, _ in procs:
            if proc.is_alive():
                proc.kill()
