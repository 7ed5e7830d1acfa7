"""Replay on several cores: each worker process folds a share of the partitions (through librdkafka), the
parent merges.

Exact, not approximate: the fold's keys never span partitions (see `Ledger.merge`). Workers are spawned
(not forked) because the parent runs gRPC and asyncio, which do not survive a fork.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing as mp
import pickle
from collections.abc import Callable
from multiprocessing.sharedctypes import Synchronized

from sandan_scoring.fastreplay import replay_blocking, share_partitions
from sandan_scoring.fold import Ledger
from sandan_scoring.rules import RuleSet
from sandan_scoring.store import Positions


def _worker(bootstrap: str, rules: RuleSet, parts: list[tuple[str, int]], target: Positions,
            counter: Synchronized, out: mp.connection.Connection) -> None:  # type: ignore[type-arg]
    ledger = Ledger(rules, track_changes=False)
    done = [0]

    def progress(n: int) -> None:
        with counter.get_lock():
            counter.value += n - done[0]
        done[0] = n

    replay_blocking(bootstrap, ledger, {}, {p: target[p] for p in parts}, progress)
    out.send_bytes(pickle.dumps(ledger, protocol=pickle.HIGHEST_PROTOCOL))
    out.close()


async def fold_in_parallel(bootstrap: str, rules: RuleSet, parts: list[tuple[str, int]], target: Positions,
                           workers: int, progress: Callable[[int], None] = lambda n: None) -> Ledger:
    ctx = mp.get_context("spawn")
    counter = ctx.Value("q", 0)
    procs = []
    for part_share in share_partitions({p: target.get(p, 0) for p in parts}, workers):
        receive, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_worker, args=(bootstrap, rules, part_share, target, counter, send), daemon=True)
        proc.start()
        send.close()
        procs.append((proc, receive))
    ledger = Ledger(rules, track_changes=False)
    try:
        for proc, receive in procs:
            while not await asyncio.to_thread(receive.poll, 0.2):
                progress(counter.value)
                if not proc.is_alive() and not receive.poll(0):
                    raise RuntimeError(f"replay worker exited with {proc.exitcode}")
            raw = await asyncio.to_thread(receive.recv_bytes)
            gc.disable()  # millions of new long-lived objects, no cycles: see fastreplay
            try:
                ledger.merge(pickle.loads(raw))  # noqa: S301 - our own child process
            finally:
                gc.enable()
            proc.join()
        progress(counter.value)
        return ledger
    finally:
        for proc, _ in procs:
            if proc.is_alive():
                proc.kill()
