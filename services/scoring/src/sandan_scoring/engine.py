"""Where scoring meets Kafka: live folding, restore on start, rebuild with an atomic swap, and publishing.

One `Scorer` per county: the ledger is a single fold, so scoring runs as one replica (it needs no consumer
group: positions live in its own store, written with the ledger rows in one transaction).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import itertools
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from faststream.kafka import KafkaBroker

from sandan_contracts import TOPICS, encode
from sandan_contracts import events as c
from sandan_contracts.cloudevents import carried
from sandan_contracts.cloudevents import headers as cloudevent_headers
from sandan_contracts.envelope import headers as event_headers
from sandan_eventbus import metrics, tracing
from sandan_eventbus.kafka import aiokafka_kwargs, partitions_of
from sandan_eventbus.outages import describe, is_outage
from sandan_eventbus.readiness import Readiness
from sandan_eventbus.trace import Actor
from sandan_eventbus.trace import current as current_trace
from sandan_scoring.facts import SKIPPED_TYPES, SOURCE_TOPICS, type_of
from sandan_scoring.fastreplay import replay_blocking
from sandan_scoring.fold import Entry, Ledger
from sandan_scoring.folding import fold_records
from sandan_scoring.parallel import fold_in_parallel
from sandan_scoring.report import Reports
from sandan_scoring.rules import RuleBook
from sandan_scoring.store import GenerationWriter, Positions, ScoringStore, SetAside, StarChange, StoredNotice

log = logging.getLogger(__name__)
BATCH = 5000
DEAD_LETTER_KEEP = 64 * 1024  # of a message too large for its dead-letter topic, the first bytes kept
TRACES_KEPT = 20_000  # source facts whose trace context the publisher remembers (for the entries they cause)
T = TypeVar("T")


@dataclass
class Progress:
    phase: str  # reading | writing | done
    events_read: int
    events_total: int
    digest: str = ""
    rule_set_version: str = ""
    seconds: float = 0.0


async def _partitions(consumer: AIOKafkaConsumer) -> list[TopicPartition]:
    return await partitions_of(consumer, SOURCE_TOPICS)


async def end_offsets(bootstrap: str) -> Positions:
    """The current end offset of every source partition (a replay's natural target)."""
    consumer = AIOKafkaConsumer(**aiokafka_kwargs(bootstrap))  # TLS and SASL from KAFKA_* (sandan_eventbus.kafka)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(await _partitions(consumer))
        return {(tp.topic, tp.partition): offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def replay(bootstrap: str, ledger: Ledger, until: Positions | None,
                 progress: Callable[[int, int], None] = lambda n, total: None, workers: int = 1,
                 after_batch: Callable[[Ledger], None] = lambda ledger: None) -> Positions:
    """Fold every source partition from the earliest offset up to `until` (default: the end offsets now).

    workers=0: through librdkafka (fetch in C threads, fold here); 1: aiokafka in this process;
    N>1: librdkafka on N processes, merged (then `after_batch` runs only once, at the end)."""
    consumer = AIOKafkaConsumer(**aiokafka_kwargs(bootstrap), enable_auto_commit=False, client_id="scoring-replay",
                                max_partition_fetch_bytes=8 * 1024 * 1024, fetch_max_bytes=64 * 1024 * 1024)
    await consumer.start()
    try:
        parts = await _partitions(consumer)
        consumer.assign(parts)
        begin = await consumer.beginning_offsets(parts)
        end = {(tp.topic, tp.partition): off for tp, off in (await consumer.end_offsets(parts)).items()}
        target = dict(end) if until is None else {k: until.get(k, 0) for k in end}
        total = sum(max(0, target[(tp.topic, tp.partition)] - begin[tp]) for tp in parts)
        if workers == 0 and total > 0:  # librdkafka fetches in C threads while this thread folds
            await consumer.stop()
            loop = asyncio.get_running_loop()
            starts = {(tp.topic, tp.partition): off for tp, off in begin.items()}
            await asyncio.to_thread(replay_blocking, bootstrap, ledger, starts, target,
                                    lambda n: loop.call_soon_threadsafe(progress, n, total), after_batch)
            return target
        if workers > 1 and total > 0:
            await consumer.stop()
            folded = await fold_in_parallel(bootstrap, ledger.rules, [(tp.topic, tp.partition) for tp in parts],
                                            target, workers, lambda n: progress(n, total))
            ledger.merge(folded)
            after_batch(ledger)
            return target
        remaining = {tp for tp in parts if target[(tp.topic, tp.partition)] > begin[tp]}
        for tp in parts:
            consumer.seek(tp, begin[tp])
        consumer.pause(*[tp for tp in parts if tp not in remaining])
        read = 0
        while remaining:
            batches = await consumer.getmany(timeout_ms=500, max_records=BATCH)
            for tp, records in batches.items():
                stop_at = target[(tp.topic, tp.partition)]
                wanted = [(r.topic, r.value) for r in records if r.offset < stop_at]
                # types the fold never uses are skipped unparsed (live folding judged them when they came)
                fold_records(ledger, [(t, v) for t, v in wanted if v is None or type_of(v) not in SKIPPED_TYPES])
                after_batch(ledger)
                read += len(wanted)
                if await consumer.position(tp) >= stop_at:
                    remaining.discard(tp)
                    consumer.pause(tp)
            progress(read, total)
        return target
    finally:
        await consumer.stop()  # a second stop after the parallel branch is harmless


def member_quarters(ledger: Ledger) -> set[tuple[str, str]]:
    """Every (member, quarter) with an entry, from the ledger's per-member index (far fewer than entries)."""
    entries = ledger.entries
    return {(member, entries[i].quarter) for member, ids in ledger.by_member.items() for i in ids}


class EntryFeed:
    """Hands a rebuild's new ledger entries to its writer while the fold goes on (`after_batch`), so the
    rows are written on the other core instead of after the fold. Entries are only ever added to the
    ledger, in order, so "new" is everything past what was sent."""

    def __init__(self, writer: GenerationWriter, every: int = 20_000) -> None:
        self.writer, self.every, self.sent = writer, every, 0

    def __call__(self, ledger: Ledger) -> None:
        if len(ledger.entries) - self.sent >= self.every:
            self.flush(ledger)

    def flush(self, ledger: Ledger) -> None:
        fresh = list(itertools.islice(ledger.entries.values(), self.sent, None))
        self.sent += len(fresh)
        self.writer.add(fresh)


@dataclass(frozen=True)
class Outbound:
    """One message the publisher sends: what it announces, as bytes, and where."""

    event_id: str
    kind: str  # entry | stars | notice
    topic: str
    key: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class PublishingState:
    """What the publisher is doing, for the API and the health check."""

    pending: int  # ledger entries and star changes waiting to be published
    unmarked: int  # published, not yet recorded as published (the store was away)
    set_aside: list[SetAside]  # could not be encoded or published: the rest flowed past them
    paused: dict[str, str]  # part ("live folding", "publishing") -> why it waits (an outage, or a failure)
    dead_lettered: int  # source facts dead-lettered since start


class Paused:
    """A part of scoring that cannot do its work now (the store or the broker away, or a failure): it waits and
    tries again with capped backoff, never skipping or dropping anything. Not ready meanwhile (readiness, so the
    service's health says NOT_SERVING), with one log line when the pause starts and one when it ends."""

    START, CAP = 0.5, 30.0  # seconds between attempts: doubling from START up to CAP

    def __init__(self, part: str, readiness: Readiness) -> None:
        self.part, self.readiness = part, readiness
        self.reason = ""
        self.since: float | None = None
        self.attempts = 0

    async def until_done(self, work: Callable[[], Awaitable[T]]) -> T:
        while True:
            try:
                result = await work()
            except Exception as exc:
                await self.failed(exc)
                continue
            self.done()
            return result

    async def failed(self, exc: Exception) -> None:
        """Note one failed attempt, then wait before the next."""
        self.attempts += 1
        if self.since is None:
            self.since, self.reason = time.monotonic(), describe(exc)
            fields = {"part": self.part, "error": self.reason}
            if is_outage(exc):
                log.warning(f"scoring {self.part} paused: waiting for the store or the broker",
                            extra={"fields": fields})
            else:  # not an outage: a bug or a refusal that will fail again; retried so nothing is skipped
                log.error(f"scoring {self.part} paused by a failure; retrying", exc_info=exc,
                          extra={"fields": fields})
            self.readiness.set(f"scoring {self.part}", False, self.reason)
        delay = min(self.CAP, self.START * 2 ** min(self.attempts - 1, 10))
        await asyncio.sleep(delay * random.uniform(0.8, 1.0))  # noqa: S311 - jitter, not secrecy

    def done(self) -> None:
        if self.since is not None:
            log.info(f"scoring {self.part} resumed", extra={"fields": {
                "part": self.part, "paused_seconds": round(time.monotonic() - self.since, 1),
                "attempts": self.attempts}})
            self.readiness.set(f"scoring {self.part}", True)
        self.since, self.reason, self.attempts = None, "", 0


class Scorer:
    def __init__(self, store: ScoringStore, rulebook: RuleBook, bootstrap: str, broker: KafkaBroker,
                 default_rule_set: str, replay_workers: int = 0, readiness: Readiness | None = None) -> None:
        self.replay_workers = replay_workers
        self.store = store
        self.rulebook = rulebook
        self.bootstrap = bootstrap
        self.broker = broker
        self.default_rule_set = default_rule_set
        self.ledger = Ledger(rulebook.get(default_rule_set))
        self.generation = 0
        self.positions: Positions = {}
        self.lock = asyncio.Lock()
        self.pending: set[str] = set()  # entry ids not yet published
        # After a restore or rebuild, which of that generation's entries were never published is looked up
        # by the publisher, off the critical path (one anti-join over the whole ledger).
        self.unchecked_generation: int | None = None
        self._reports: tuple[Ledger, int, Reports] | None = None  # (ledger, facts applied, its reports)
        # Star levels per (member, quarter) as last decided, and how many changes each has had (both span
        # generations: a rebuild under the same rules decides nothing new).
        self.star_levels: dict[tuple[str, str], int] = {}
        self.star_changes: dict[tuple[str, str], int] = {}
        self.star_outbox: dict[str, StarChange] = {}  # decided and recorded, not yet published
        self.unmarked: set[str] = set()  # published, not yet recorded as published (the store was away)
        self.set_aside: dict[str, SetAside] = {}
        self.dead_lettered = 0
        self.last_progress = Progress("idle", 0, 0)
        self.readiness = readiness or Readiness("scoring")
        self.live_paused = Paused("live folding", self.readiness)
        self.publishing_paused = Paused("publishing", self.readiness)
        self._wake = asyncio.Event()
        # per source event id folded live, the trace headers of its consumer span: the entries it causes are
        # published as its children (in memory only: after a restart or a rebuild they start traces of their own)
        self.trace_headers: OrderedDict[str, dict[str, str]] = OrderedDict()

    # ---- start: restore the ledger the store says we had -------------------------------------------
    async def restore(self) -> None:
        await asyncio.to_thread(self.store.requests_interrupted)  # what the last process left running
        await self.load_publishing_state()
        generation, version = await asyncio.to_thread(self.store.current)
        rules = self.rulebook.get(version or self.default_rule_set)
        ledger = Ledger(rules, track_changes=False)  # the restore is a replay; live tracking starts below
        if generation == 0:
            generation = 1
            await asyncio.to_thread(self.store.swap_in, generation, rules.version, [], {})
            positions: Positions = {}
        else:
            await asyncio.to_thread(self.store.drop_other_generations, generation)  # a crashed rebuild's table
            positions = await asyncio.to_thread(self.store.positions, generation)
            if any(positions.values()):
                await replay(self.bootstrap, ledger, positions, workers=self.replay_workers)
                gc.freeze()  # the ledger: millions of long-lived, acyclic objects the cyclic GC need not rescan
            stored = await asyncio.to_thread(self.store.entry_ids, generation)
            if stored != set(ledger.entries):
                # The store and the log disagree (a topic trimmed, a rule file edited in place): rebuild.
                log.error("restored ledger differs from the store; rebuilding",
                          extra={"fields": {"stored": len(stored), "folded": len(ledger.entries)}})
                self.ledger, self.generation, self.positions = ledger, generation, positions
                await self.rebuild(rules.version, reason="at start: the stored ledger differs from the log")
                return
        self._go_live(ledger, generation, positions)
        log.info("ledger restored", extra={"fields": {"generation": generation, "entries": len(ledger.entries),
                                                      "rule_set": rules.version}})

    async def load_publishing_state(self) -> None:
        """What the publisher keeps in the store: star levels and changes, changes decided but never published
        (sent again, byte for byte), and what was set aside (tried once more: a fix may have been deployed)."""
        self.star_levels, self.star_changes = await asyncio.to_thread(self.store.star_history)
        self.star_outbox = {ch.event_id: ch for ch in await asyncio.to_thread(self.store.unpublished_star_changes)}
        self.set_aside = {item.event_id: item for item in await asyncio.to_thread(self.store.set_aside_items)}
        self.unmarked = set()

    def _go_live(self, ledger: Ledger, generation: int, positions: Positions) -> None:
        """A restored or rebuilt ledger becomes the live one: changes are tracked from here; which of its
        entries were never published, and everyone's stars, the publisher checks (`unchecked_generation`)."""
        ledger.dirty_entries.clear()
        ledger.track_changes = True
        self.ledger, self.generation, self.positions = ledger, generation, positions
        self.pending, self.unchecked_generation = set(), generation
        self._reports = None  # cached reports hold the previous ledger: let it go

    # ---- live ---------------------------------------------------------------------------------------
    async def run_live(self, stop: asyncio.Event) -> None:
        """Fold what arrives, batch by batch. Whatever fails (the broker away, a bug) pauses live folding and is
        retried from the stored positions: nothing is skipped (the fold drops what it already has)."""
        while not stop.is_set():
            consumer = AIOKafkaConsumer(**aiokafka_kwargs(self.bootstrap), enable_auto_commit=False,
                                        client_id="scoring-live", auto_offset_reset="earliest")
            try:
                await consumer.start()
                parts = await _partitions(consumer)
                consumer.assign(parts)
                metrics.inbox_subscribed({tp.topic for tp in parts if TOPICS[tp.topic].dead_letter})
                for tp in parts:
                    consumer.seek(tp, self.positions.get((tp.topic, tp.partition), 0))
                while not stop.is_set():
                    batches = await consumer.getmany(timeout_ms=200, max_records=BATCH)
                    if batches:
                        await self._apply_live(batches)
                    self.live_paused.done()
                    metrics.scoring_lag(self._behind(consumer, parts))
            except Exception as exc:
                await self.live_paused.failed(exc)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(consumer.stop(), 5)

    def _behind(self, consumer: AIOKafkaConsumer, parts: list[TopicPartition]) -> dict[tuple[str, int], int]:
        """Per partition, the records live folding has yet to read (from the consumer's last fetch)."""
        behind = {}
        for tp in parts:
            end = consumer.highwater(tp)
            if end is not None:
                behind[(tp.topic, tp.partition)] = end - self.positions.get((tp.topic, tp.partition), 0)
        return behind

    async def _apply_live(self, batches: dict[TopicPartition, list[Any]]) -> None:
        # each record folded live gets a consumer span, the child of its traceparent header (OpenTelemetry)
        spans: list[Any] = []
        try:
            await self._apply_live_traced(batches, spans)
        finally:
            for span in spans:
                span.end()

    def _traced(self, records: list[Any]) -> list[Any]:
        spans = []
        for r in records:
            span = tracing.consumer_span(r.topic, getattr(r, "headers", None), group="scoring", partition=r.partition,
                                         offset=r.offset)
            event_id = next((v for k, v in getattr(r, "headers", None) or () if k == "ce_id"), None)
            if isinstance(event_id, bytes) and (headers := tracing.kafka_headers(span)):
                self.trace_headers[event_id.decode(errors="replace")] = headers
                if len(self.trace_headers) > TRACES_KEPT:
                    self.trace_headers.popitem(last=False)
            spans.append(span)
        return spans

    async def _apply_live_traced(self, batches: dict[TopicPartition, list[Any]], spans: list[Any]) -> None:
        async with self.lock:
            moved: Positions = {}
            skipped: list[tuple[Any, str]] = []
            for tp, records in batches.items():
                start = self.positions.get((tp.topic, tp.partition), 0)
                fresh = [r for r in records if r.offset >= start]  # older ones are in the ledger already
                if fresh:
                    spans += self._traced(fresh)
                    fold_records(self.ledger, [(r.topic, r.value) for r in fresh],
                                 lambda i, error, fresh=fresh: skipped.append((fresh[i], error)))
                    moved[(tp.topic, tp.partition)] = fresh[-1].offset + 1
            if not moved:
                return
            # The batch is folded (in memory) once; from here on only its writing is retried, however long the
            # broker or the store is away. Dead letters go out before the position moves past them.
            for record, error in skipped:
                await self.live_paused.until_done(lambda record=record, error=error: self._dead_letter(record, error))
            new = [self.ledger.entries[i] for i in self.ledger.dirty_entries]
            generation, version = self.generation, self.ledger.rules.version
            await self.live_paused.until_done(lambda: asyncio.to_thread(
                self.store.commit_batch, generation, version, new, moved))
            self.positions.update(moved)
            self.pending.update(self.ledger.dirty_entries)
            self.ledger.dirty_entries.clear()
        self._wake.set()

    async def _dead_letter(self, record: Any, error: str) -> None:
        dlq = TOPICS[record.topic].dead_letter
        # what it was, for a CloudEvents reader (when it said so), and why it is here
        headers = {**carried(getattr(record, "headers", None)),
                   "dlq.error": error[:2000], "dlq.source.topic": record.topic,
                   "dlq.source.partition": str(record.partition), "dlq.source.offset": str(record.offset),
                   "dlq.consumer.group": "scoring", "dlq.at": datetime.now(UTC).isoformat()}
        value = record.value or b""
        try:
            await self.broker.publish(value, dlq, key=record.key, headers=headers)
        except Exception as exc:
            if is_outage(exc) or len(value) <= DEAD_LETTER_KEEP:
                raise
            # too large for the dead-letter topic: keep its start, and say so
            await self.broker.publish(value[:DEAD_LETTER_KEEP], dlq, key=record.key,
                                      headers={**headers, "dlq.truncated": "true", "dlq.size": str(len(value))})
        self.dead_lettered += 1
        metrics.dead_lettered(record.topic, error)

    # ---- rebuild ------------------------------------------------------------------------------------
    async def rebuild(self, rule_set_version: str | None = None,
                      on_progress: Callable[[Progress], None] = lambda p: None, actor: Actor | None = None,
                      reason: str = "") -> Progress:
        """Fold the whole log into a fresh ledger, swap it in atomically, continue live from its end. Recorded
        with who asked (`actor`; None when no person did: then `reason` says why) and how it ended."""
        version = rule_set_version or self.ledger.rules.version
        request = await self._request_started("Rebuild", actor, rule_set_version=version, detail=reason)
        try:
            done = await self._rebuild(version, on_progress)
        except Exception as exc:
            await self._request_failed(request, exc)
            raise
        await self._request_finished(request, "done", f"{done.events_read} events in {done.seconds:.3f} s; "
                                                       f"digest {done.digest}")
        return done

    async def _rebuild(self, rule_set_version: str, on_progress: Callable[[Progress], None]) -> Progress:
        rules = self.rulebook.get(rule_set_version)
        started = time.monotonic()
        async with self.lock:  # live folding pauses; what arrives meanwhile is read after the swap
            fresh = Ledger(rules, track_changes=False)

            counted = [0]

            def tick(n: int, total: int) -> None:
                counted[0] = n
                self.last_progress = Progress("reading", n, total, rule_set_version=rules.version)
                on_progress(self.last_progress)

            generation = self.generation + 1
            writer = await asyncio.to_thread(self.store.generation_writer, generation, rules.version)
            feed = EntryFeed(writer)
            try:
                end = await replay(self.bootstrap, fresh, None, tick, workers=self.replay_workers, after_batch=feed)
                gc.freeze()  # the new ledger: millions of long-lived, acyclic objects the GC need not rescan
                self.last_progress = Progress("writing", counted[0], counted[0], rule_set_version=rules.version)
                on_progress(self.last_progress)
                feed.flush(fresh)
                await asyncio.to_thread(writer.close)
            except BaseException:
                await asyncio.to_thread(writer.abort)
                raise
            await asyncio.to_thread(self.store.make_current, generation, rules.version, end)
            self._go_live(fresh, generation, end)
            seconds = round(time.monotonic() - started, 3)  # live folding resumes from here
            metrics.scoring_rebuilt(seconds)
        digest = await self.digest()
        self.last_progress = Progress("done", counted[0], counted[0], digest, rules.version, seconds)
        on_progress(self.last_progress)
        self._wake.set()
        return self.last_progress

    async def what_if(self, candidate: str, actor: Actor | None = None, quarter: str = "") -> tuple[Ledger, Ledger]:
        """The current ledger and the same log folded under another rule set (no ledger is stored; the request
        is recorded, with who asked and for which `quarter`)."""
        request = await self._request_started("WhatIf", actor, rule_set_version=candidate, quarter=quarter)
        try:
            rules = self.rulebook.get(candidate)
            other = Ledger(rules, track_changes=False)
            async with self.lock:
                until = dict(self.positions)
                current = self.ledger
            await replay(self.bootstrap, other, until, workers=self.replay_workers)
        except Exception as exc:
            await self._request_failed(request, exc)
            raise
        await self._request_finished(request, "done", f"compared with {current.rules.version}: "
                                                       f"{len(current.entries)} entries now, {len(other.entries)}")
        return current, other

    # ---- who asked for what (scoring's own record: these requests change no aggregate) ----------------------
    async def _request_started(self, action: str, actor: Actor | None, **what: str) -> int:
        """Recorded before the work starts: when the store cannot take it, nothing is done (and the caller is
        told), so nothing is done that no record says who asked for."""
        trace = current_trace()
        return await asyncio.to_thread(self.store.request_started, action, actor,
                                       correlation_id=trace.correlation_id if trace else "", **what)

    async def _request_finished(self, request_id: int, outcome: str, detail: str) -> None:
        try:
            await asyncio.to_thread(self.store.request_finished, request_id, outcome, detail)
        except Exception as exc:  # the work is done: its outcome is lost, not the work (`interrupted` at start)
            log.warning("a request's outcome could not be recorded", extra={"fields": {
                "request_id": request_id, "outcome": outcome, "error": describe(exc)}})

    async def _request_failed(self, request_id: int, exc: Exception) -> None:
        await self._request_finished(request_id, "failed", describe(exc, 400))

    async def digest(self) -> str:
        """The digest of the current state; live folding waits meanwhile (the fold must not move under it)."""
        async with self.lock:
            reports = await self._current_reports()
            return await asyncio.to_thread(reports.digest)

    async def reports(self) -> Reports:
        """Reports over the current ledger (rankings, summaries, scopes)."""
        async with self.lock:
            return await self._current_reports()

    async def _current_reports(self) -> Reports:
        """Built once per state of the ledger (dashboards poll the same reports), in a worker thread while live
        folding waits: built on the event loop, they stalled every call for ~1 s on a 1M-event ledger.
        Every change to a ledger counts one more applied fact, so (ledger, applied) names its state.
        The caller holds the lock."""
        ledger = self.ledger
        cached = self._reports
        if cached is None or cached[0] is not ledger or cached[1] != ledger.applied:
            def build() -> Reports:
                reports = Reports(ledger)
                reports.all_counts()
                return reports

            cached = self._reports = (ledger, ledger.applied, await asyncio.to_thread(build))
        return cached[2]

    # ---- publishing -----------------------------------------------------------------------------------
    async def run_publisher(self, stop: asyncio.Event) -> None:
        """Publish what the ledger gained. An outage (or any failure outside one item) pauses publishing and
        retries with capped backoff; an item that cannot be encoded or published is set aside (`publish_pending`)."""
        while not stop.is_set():
            await self.publishing_paused.until_done(self.publish_pending)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=1.0)

    def publishing_state(self) -> PublishingState:
        paused = {p.part: p.reason for p in (self.live_paused, self.publishing_paused) if p.since is not None}
        return PublishingState(len(self.pending) + len(self.star_outbox), len(self.unmarked),
                               sorted(self.set_aside.values(), key=lambda i: i.last_at, reverse=True), paused,
                               self.dead_lettered)

    async def publish_pending(self) -> int:
        """One pass: every pending entry and star change is sent once. Each outcome is per item: published
        (then marked, idempotently), set aside with its error (it will fail again: the rest flow past it), or
        left pending (the broker is away: the pass ends with that error and is retried)."""
        if self.unmarked:  # published earlier while the store was away: only the marking is repeated
            marked = sorted(self.unmarked)
            await asyncio.to_thread(self.store.mark_published, marked)
            self.unmarked.difference_update(marked)
        if (generation := self.unchecked_generation) is not None:
            found = await asyncio.to_thread(self.store.unpublished_entries, generation)
            async with self.lock:
                if self.unchecked_generation == generation:  # no rebuild meanwhile
                    self.pending |= found
                    self.ledger.dirty_stars |= member_quarters(self.ledger)  # everyone's stars checked again
                    self.unchecked_generation = None
        async with self.lock:
            ledger = self.ledger
            ready = [ledger.entries[i] for i in sorted(self.pending)
                     if ledger.attribution(ledger.entries[i].member_id)]
            dirty, ledger.dirty_stars = ledger.dirty_stars, set()
        try:
            await self._decide_star_changes(ledger, dirty)
        except BaseException:
            self.ledger.dirty_stars |= dirty  # decided nothing: look at them again next pass
            raise
        outbound = []
        for e in ready:
            try:
                outbound.append(_entry_message(ledger, e, self.trace_headers.get(e.sources[0], {})))
            except ValueError as exc:  # the contract refuses it: it will fail again
                await self._set_aside(f"scoring:{e.entry_id}", "entry", exc)
        outbound += [_star_message(ch) for ch in self.star_outbox.values()]
        sent, outage = await self._send(outbound)
        self.unmarked.update(sent)
        self.pending.difference_update(i.removeprefix("scoring:") for i in sent)
        for event_id in sent:
            self.star_outbox.pop(event_id, None)
            self.set_aside.pop(event_id, None)
        if sent:
            await asyncio.to_thread(self.store.mark_published, sent)
            self.unmarked.difference_update(sent)
        if outage is not None:
            raise outage
        return len(sent)

    async def _send(self, outbound: list[Outbound]) -> tuple[list[str], Exception | None]:
        """Send each message (acks awaited together); what was published, and the outage that stopped the rest."""
        futures: list[tuple[Outbound, Any]] = []
        outage: Exception | None = None
        for item in outbound:
            try:
                headers = item.headers | {k: v.decode() for k, v in cloudevent_headers(item.body)}
                future = await self.broker.publish(item.body, item.topic, key=item.key.encode(),
                                                   headers=headers, no_confirm=True)
            except Exception as exc:  # refused at once (e.g. too large), or the broker is away
                if is_outage(exc):
                    outage = exc
                    break  # the rest wait for the broker too
                await self._set_aside(item.event_id, item.kind, exc)
                continue
            futures.append((item, future))
        results = await asyncio.gather(*(f for _, f in futures), return_exceptions=True)
        sent = []
        for (item, _), result in zip(futures, results, strict=True):
            if not isinstance(result, BaseException):
                sent.append(item.event_id)
            elif isinstance(result, Exception) and not is_outage(result):
                await self._set_aside(item.event_id, item.kind, result)
            elif isinstance(result, Exception):
                outage = outage or result
            else:
                raise result  # cancelled: shutting down
        return sent, outage

    async def _set_aside(self, event_id: str, kind: str, exc: Exception) -> None:
        """An item that will fail again: recorded with its error, counted, and passed over (the rest flow)."""
        error = describe(exc, 400)
        await asyncio.to_thread(self.store.set_aside, event_id, kind, error)
        now = datetime.now(UTC)
        before = self.set_aside.get(event_id)
        self.set_aside[event_id] = SetAside(event_id, kind, error, (before.attempts if before else 0) + 1,
                                            before.first_at if before else now, now)
        if kind == "entry":
            self.pending.discard(event_id.removeprefix("scoring:"))
        self.star_outbox.pop(event_id, None)  # a recorded change that cannot be published: aside, not re-sent
        log.error("publishing: an item set aside; the rest flow", extra={"fields": {
            "event_id": event_id, "kind": kind, "error": error}})

    async def _decide_star_changes(self, ledger: Ledger, dirty: set[tuple[str, str]]) -> None:
        """Every (member, quarter) whose level differs from the last one decided gets a change: its place in the
        member's changes of that quarter is part of its id (2★→3★, 3★→2★, 2★→3★ are three facts, three ids). The
        changes and their messages are recorded before anything is published (a re-publish sends the same bytes)."""
        if not dirty:
            return
        changes = []
        for member, quarter in sorted(dirty):
            attr = ledger.attribution(member)
            if attr is None:
                continue
            points, average, rated, stars = ledger.member_quarter(member, quarter)
            previous = self.star_levels.get((member, quarter), 0)
            if stars == previous:
                continue
            seq = self.star_changes.get((member, quarter), 0) + 1
            key = f"{member}|{quarter}|{seq}|{previous}|{stars}|{ledger.rules.version}"
            event_id = f"scoring:s-{hashlib.sha256(key.encode()).hexdigest()[:32]}"
            try:
                event = c.StarRatingChanged(member_id=member, community_id=attr[0], unit_id=attr[1],
                                            quarter=quarter, stars=stars, previous_stars=previous, points=points,
                                            average_rating=average, rated_services=rated,
                                            rule_set_version=ledger.rules.version)
                body = encode(event, event_id=event_id, producer="scoring", occurred_at=datetime.now(UTC),
                              correlation_id=event_id, causation_id=None)
            except ValueError as exc:
                await self._set_aside(event_id, "stars", exc)
                continue
            changes.append(StarChange(event_id, member, quarter, seq, stars, body))
        if changes:
            await asyncio.to_thread(self.store.record_star_changes, changes)
        for ch in changes:
            self.star_levels[(ch.member_id, ch.quarter)] = ch.stars
            self.star_changes[(ch.member_id, ch.quarter)] = ch.seq
            self.star_outbox[ch.event_id] = ch

    # ---- quarterly notices ------------------------------------------------------------------------------
    async def publish_notices(self, quarter: str, actor: Actor | None = None) -> list[dict[str, Any]]:
        """每季度通报公示: one notice per community and per unit active in the quarter, announced as caused by
        `actor` (the caller: its opaque subject in the envelope, subject and role stored with the notice). A notice
        that cannot be encoded or published is set aside (and left out of the answer); the others are published.

        A notice's id names one fact forever: asked again (by anyone), a notice already published is not published
        again, and one stored but not yet published (a crash, an outage, a refusal) is sent with the bytes stored
        the first time, whoever asks now. Every request is recorded with who asked and what it published."""
        request = await self._request_started("PublishQuarterlyNotices", actor, quarter=quarter,
                                              rule_set_version=self.ledger.rules.version)
        try:
            out, counts = await self._publish_notices(quarter, actor)
        except Exception as exc:
            await self._request_failed(request, exc)
            raise
        await self._request_finished(request, "done", ", ".join(f"{what} {n}" for what, n in counts.items()))
        return out

    async def _publish_notices(self, quarter: str, actor: Actor | None) -> tuple[list[dict[str, Any]], dict[str, int]]:
        counts = {"published": 0, "already published": 0, "set aside": 0}
        async with self.lock:
            reports = await self._current_reports()
            version = self.ledger.rules.version
            built = []
            for scope, ids in reports.scopes().items():
                for scope_id in ids:
                    summary = reports.summary(scope, scope_id, quarter)
                    if not (summary.members_active or summary.services_completed):
                        continue
                    ranking = [c.RankedMember(rank=i + 1, member_id=r.member_id, points=r.points, stars=r.stars)
                               for i, r in enumerate(reports.ranking(scope, scope_id, quarter))]
                    notice_id = f"{scope}-{scope_id}-{quarter}-{version}"
                    try:
                        notice = c.QuarterlyNoticePublished(
                            notice_id=notice_id, scope=scope, scope_id=scope_id, quarter=quarter,
                            rule_set_version=version, summary=c.NoticeSummary(**summary.__dict__), ranking=ranking)
                    except ValueError as exc:
                        await self._set_aside(f"scoring:{notice_id}", "notice", exc)
                        counts["set aside"] += 1
                        continue
                    built.append(notice)
        out = []
        for notice in built:
            event_id = f"scoring:{notice.notice_id}"
            stored = await asyncio.to_thread(self.store.stored_notice, notice.notice_id)
            if stored is None:
                at = datetime.now(UTC)
                try:
                    message = encode(notice, event_id=event_id, producer="scoring", occurred_at=at,
                                     correlation_id=event_id, causation_id=None,
                                     actor=actor.subject if actor else None)  # opaque: never a name
                except ValueError as exc:
                    await self._set_aside(event_id, "notice", exc)
                    counts["set aside"] += 1
                    continue
                # what is stored is the notice (another request may have stored it meanwhile: then theirs)
                stored = await asyncio.to_thread(self.store.save_notice, notice.notice_id, notice.scope,
                                                 notice.scope_id, quarter, version, notice.model_dump(mode="json"),
                                                 message, actor, at)
            if not await asyncio.to_thread(self.store.unpublished, [event_id]):
                counts["already published"] += 1
                out.append(stored.body)
                continue
            try:
                message = stored.message or _stored_notice_message(stored, event_id)
            except ValueError as exc:
                await self._set_aside(event_id, "notice", exc)
                counts["set aside"] += 1
                continue
            sent, outage = await self._send([Outbound(event_id, "notice", notice.TOPIC, notice.key(), message,
                                                      _headers(notice))])
            if outage is not None:
                raise outage
            if not sent:
                counts["set aside"] += 1
                continue
            await asyncio.to_thread(self.store.mark_published, sent)
            self.set_aside.pop(event_id, None)  # published at last
            counts["published"] += 1
            out.append(stored.body)
        return out, counts


def _stored_notice_message(stored: StoredNotice, event_id: str) -> bytes:
    """The message of a notice stored before messages were kept: from what was stored (its body, when it was
    made), with no actor (none was recorded), so every re-publish of it gives the same bytes too."""
    notice = c.QuarterlyNoticePublished.model_validate(stored.body)
    return encode(notice, event_id=event_id, producer="scoring", occurred_at=stored.created_at,
                  correlation_id=event_id, causation_id=None)


def _entry_message(ledger: Ledger, e: Entry, trace_headers: dict[str, str] | None = None) -> Outbound:
    """PointsAwarded/PointsRevoked announcing an entry (with `trace_headers`: the traceparent of its source's
    consumer span). Raises ValueError when the contract refuses it."""
    community, unit = ledger.attribution(e.member_id) or ("", "")
    common = {"member_id": e.member_id, "community_id": community, "unit_id": unit, "entry_id": e.entry_id,
              "points": abs(e.points), "rule": e.rule, "rule_set_version": ledger.rules.version,
              "quarter": e.quarter, "source_event_ids": list(e.sources)}
    event_id = f"scoring:{e.entry_id}"
    event = c.PointsRevoked(**common) if e.points < 0 else c.PointsAwarded(**common)
    body = encode(event, event_id=event_id, producer="scoring", occurred_at=e.occurred_at,
                  correlation_id=e.correlation_id or event_id, causation_id=e.sources[0])
    return Outbound(event_id, "entry", event.TOPIC, event.key(), body, _headers(event) | (trace_headers or {}))


def _headers(event: c.Event) -> dict[str, str]:
    return {k: v.decode() for k, v in event_headers(event)}


def _star_message(ch: StarChange) -> Outbound:
    return Outbound(ch.event_id, "stars", c.StarRatingChanged.TOPIC, ch.member_id, ch.body,
                    {"type": c.StarRatingChanged.TYPE, "schema_version": str(c.StarRatingChanged.VERSION)})
