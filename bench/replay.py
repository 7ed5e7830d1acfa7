"""Benchmark: scoring's replay of the event log against raw aiokafka consumption of the same topics.

    .venv/bin/python bench/replay.py [--events 1000000] [--workers 2]

Starts its own single-node Kafka (deploy/local/kafka.sh on port 29092, state in .local/bench-kafka; or uses
BENCH_KAFKA=host:port), writes a synthetic county's log (sandan_scoring.simulate) of at least --events
messages to the four source topics, then measures in this same run, each phase in its own process
(so peak memory is per phase):
  raw        one aiokafka consumer, getmany() over every source partition, counting records (the issue's
             ceiling; the ratios are against it)
  raw-rdk    librdkafka with the replay's own settings and consumers, counting records (the fastest the
             replay could read here: how much of it the fold leaves)
  fold-rdk   scoring's replay through librdkafka (fetch in C threads) + decode + fold: the service default
  fold-aio   the same through aiokafka in one process
  fold-py    fold-rdk with the Python rules instead of the native kernel (SCORING_KERNEL=python)
  fold-N     librdkafka on N processes, merged (SCORING_REPLAY_WORKERS=N)
  rebuild    the service's own `Scorer.rebuild()` on a SQLite store: replay, the new generation's rows written
             while it folds, the atomic swap and the published-ids check, up to where live folding resumes
             (the digest it then computes for the operator is timed apart, as "digest")
and prints rates, ratios against raw, and peak RSS. Not run in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _targets(bootstrap: str) -> tuple[list[tuple[str, int]], dict[tuple[str, int], int]]:
    from sandan_scoring.engine import end_offsets

    target = await end_offsets(bootstrap)
    return list(target), target


async def _raw(bootstrap: str, parts: list[tuple[str, int]], target: dict[tuple[str, int], int]) -> int:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                max_partition_fetch_bytes=8 * 1024 * 1024, fetch_max_bytes=64 * 1024 * 1024)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t, p in parts if target[(t, p)] > 0]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        remaining, n = set(tps), 0
        while remaining:
            for tp, records in (await consumer.getmany(timeout_ms=500, max_records=5000)).items():
                n += len(records)
                if await consumer.position(tp) >= target[(tp.topic, tp.partition)]:
                    remaining.discard(tp)
                    consumer.pause(tp)
        return n
    finally:
        await consumer.stop()


def _raw_rdk(bootstrap: str, target: dict[tuple[str, int], int]) -> int:
    from sandan_scoring import fastreplay

    wanted = {k: v for k, v in target.items() if v > 0}
    consumers = fastreplay.open_consumers(bootstrap, wanted, {})
    n = 0
    try:
        while any(left for _, left in consumers):
            for consumer, left in consumers:
                for m in consumer.consume(num_messages=fastreplay.BATCH, timeout=0.05) if left else ():
                    key = (m.topic(), m.partition())
                    if key in left and m.offset() < wanted[key]:
                        n += 1
                        if m.offset() + 1 >= wanted[key]:
                            left.discard(key)
        return n
    finally:
        for consumer, _ in consumers:
            consumer.close()


def phase(name: str, bootstrap: str, workers: int) -> dict[str, object]:
    """Run one measured phase in this (child) process; returns figures as a dict."""
    from faststream.kafka import KafkaBroker

    from sandan_scoring.engine import Scorer, replay
    from sandan_scoring.fold import Ledger
    from sandan_scoring.report import Reports
    from sandan_scoring.rules import RuleBook
    from sandan_scoring.store import ScoringStore

    parts, target = asyncio.run(_targets(bootstrap))
    total = sum(target.values())
    started = time.perf_counter()
    out: dict[str, object] = {"phase": name, "events": total}
    if name == "raw":
        out["events"] = asyncio.run(_raw(bootstrap, parts, target))
    elif name == "raw-rdk":
        out["events"] = _raw_rdk(bootstrap, target)
    elif name == "fold":
        ledger = Ledger(RuleBook().get("2026.1"))
        asyncio.run(replay(bootstrap, ledger, target, workers=workers))
        out["entries"] = len(ledger.entries)
        out["applied"] = ledger.applied
    elif name == "rebuild":
        with tempfile.TemporaryDirectory(dir=ROOT / ".local") as tmp:
            store = ScoringStore(f"sqlite:///{tmp}/scoring.db")
            scorer = Scorer(store, RuleBook(), bootstrap, KafkaBroker(bootstrap), "2026.1", replay_workers=workers)
            asyncio.run(scorer.restore())  # an empty store: generation 1, nothing in it
            started = time.perf_counter()
            progress = asyncio.run(scorer.rebuild())
            out["digest_seconds"] = round(time.perf_counter() - started - progress.seconds, 3)
            ledger = scorer.ledger
            out["entries"] = store.count_entries(scorer.generation)
            seconds = progress.seconds
    if name != "rebuild":
        seconds = time.perf_counter() - started
    if name in ("fold", "rebuild"):
        out["digest"] = Reports(ledger).digest()  # after the clock: equal digests prove fold-1 == fold-N
    out["seconds"] = round(seconds, 3)
    out["rate"] = round(int(out["events"]) / seconds)  # type: ignore[call-overload]
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return out


def run_phase(name: str, bootstrap: str, workers: int, env: dict[str, str] | None = None) -> dict[str, object]:
    result = subprocess.run([sys.executable, __file__, "--phase", name, "--bootstrap", bootstrap,
                             "--workers", str(workers)], capture_output=True, text=True, check=True,
                            env={**os.environ, **(env or {})})
    return json.loads(result.stdout.strip().splitlines()[-1])


def prepare(bootstrap: str, events: int) -> int:
    from sandan_eventbus.kafka import create_topics
    from sandan_scoring.simulate import County, produce

    asyncio.run(create_topics(bootstrap))
    _, target = asyncio.run(_targets(bootstrap))
    have = sum(target.values())
    if have >= events:
        print(f"log already holds {have:,} source events", flush=True)
        return have
    started = time.perf_counter()
    county = County(seed=2026)
    while county.count() < events - have:
        county.run(walks=5000, party_days=20)
    log = county.log
    print(f"generated {county.count():,} events in {time.perf_counter() - started:.1f}s; producing...", flush=True)
    started = time.perf_counter()
    sent = asyncio.run(produce(bootstrap, log))
    print(f"produced {sent:,} in {time.perf_counter() - started:.1f}s", flush=True)
    return have + sent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=0, help="also measure N>1 replay processes")
    parser.add_argument("--phase", default="")
    parser.add_argument("--bootstrap", default="")
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(phase(args.phase, args.bootstrap, args.workers)))
        return

    bootstrap = os.environ.get("BENCH_KAFKA", "")
    env = {**os.environ, "KAFKA_PORT": "29092", "KAFKA_CONTROLLER_PORT": "29093",
           "KAFKA_STATE_DIR": str(ROOT / ".local" / "bench-kafka"), "KAFKA_HEAP": "1g"}
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    if not bootstrap:
        subprocess.run(["bash", str(ROOT / "deploy/local/kafka.sh"), "start"], env=env, check=True)
        bootstrap = "127.0.0.1:29092"
    total = prepare(bootstrap, args.events)
    print(f"\nreplaying {total:,} events from {bootstrap}, {os.cpu_count()} cores, workers={args.workers}\n")
    n = args.workers
    rows = [("raw", run_phase("raw", bootstrap, 1)), ("raw-rdk", run_phase("raw-rdk", bootstrap, 0)),
            ("fold-rdk", run_phase("fold", bootstrap, 0)),
            ("fold-py", run_phase("fold", bootstrap, 0, {"SCORING_KERNEL": "python"})),
            ("fold-aio", run_phase("fold", bootstrap, 1))]
    if n > 1:
        rows.append((f"fold-{n}", run_phase("fold", bootstrap, n)))
    rows.append(("rebuild", run_phase("rebuild", bootstrap, 0)))
    raw = float(rows[0][1]["rate"])  # type: ignore[arg-type]
    print(f"{'phase':10} {'events':>10} {'seconds':>8} {'events/s':>10} {'vs raw':>7} {'peak RSS MB':>12}")
    for label, r in rows:
        rate = float(r["rate"])  # type: ignore[arg-type]
        print(f"{label:10} {r['events']:>10,} {r['seconds']:>8} {rate:>10,.0f} {rate / raw:>7.2f} "
              f"{r['peak_rss_mb']:>12}")
    digests = {label: r["digest"] for label, r in rows if r.get("digest")}
    same = "all equal" if len(set(digests.values())) == 1 else f"DIFFERENT (a bug): {digests}"
    print(f"\nentries: {rows[2][1]['entries']:,}; ledger digests of {', '.join(digests)}: {same}")
    print(f"rebuild: {rows[-1][1]['entries']:,} rows in the new generation; its digest took "
          f"{rows[-1][1]['digest_seconds']} s more (after live folding resumed)")
    print("target: rebuild >= 60% of raw consumption, 1M events in < 15 s")


if __name__ == "__main__":
    main()
