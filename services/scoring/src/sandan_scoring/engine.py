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
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from faststream.kafka import KafkaBroker

from sandan_contracts import TOPICS, encode
from sandan_contracts import events as c
from sandan_contracts.envelope import headers as event_headers
from sandan_eventbus.kafka import partitions_of
from sandan_scoring.facts import SKIPPED_TYPES, SOURCE_TOPICS, type_of
from sandan_scoring.fastreplay import replay_blocking
from sandan_scoring.fold import Entry, Ledger
from sandan_scoring.folding import fold_records
from sandan_scoring.parallel import fold_in_parallel
from sandan_scoring.report import Reports
from sandan_scoring.rules import RuleBook
from sandan_scoring.store import GenerationWriter, Positions, ScoringStore

log = logging.getLogger(__name__)
BATCH = 5000


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
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
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
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, client_id="scoring-replay",
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


class Scorer:
    def __init__(self, store: ScoringStore, rulebook: RuleBook, bootstrap: str, broker: KafkaBroker,
                 default_rule_set: str, replay_workers: int = 0) -> None:
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
        self.stars_published: dict[tuple[str, str], int] = {}  # (member, quarter) -> stars last published
        self.dead_lettered = 0
        self.last_progress = Progress("idle", 0, 0)
        self._wake = asyncio.Event()

    # ---- start: restore the ledger the store says we had -------------------------------------------
    async def restore(self) -> None:
        self.stars_published = await asyncio.to_thread(self.store.published_stars)  # spans generations
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
                await self.rebuild(rules.version)
                return
        self._go_live(ledger, generation, positions)
        log.info("ledger restored", extra={"fields": {"generation": generation, "entries": len(ledger.entries),
                                                      "rule_set": rules.version}})

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
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                    client_id="scoring-live", auto_offset_reset="earliest")
        await consumer.start()
        try:
            parts = await _partitions(consumer)
            consumer.assign(parts)
            for tp in parts:
                consumer.seek(tp, self.positions.get((tp.topic, tp.partition), 0))
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=200, max_records=BATCH)
                if batches:
                    await self._apply_live(batches)
        finally:
            await consumer.stop()

    async def _apply_live(self, batches: dict[TopicPartition, list[Any]]) -> None:
        async with self.lock:
            moved: Positions = {}
            skipped: list[tuple[Any, str]] = []
            for tp, records in batches.items():
                start = self.positions.get((tp.topic, tp.partition), 0)
                fresh = [r for r in records if r.offset >= start]  # older ones are in the ledger already
                if fresh:
                    fold_records(self.ledger, [(r.topic, r.value) for r in fresh],
                                 lambda i, error, fresh=fresh: skipped.append((fresh[i], error)))
                    moved[(tp.topic, tp.partition)] = fresh[-1].offset + 1
            if not moved:
                return
            for record, error in skipped:  # dead letters go out before the position moves past them
                await self._dead_letter(record, error)
            new = [self.ledger.entries[i] for i in self.ledger.dirty_entries]
            await asyncio.to_thread(self.store.commit_batch, self.generation, self.ledger.rules.version, new, moved)
            self.positions.update(moved)
            self.pending.update(self.ledger.dirty_entries)
            self.ledger.dirty_entries.clear()
        self._wake.set()

    async def _dead_letter(self, record: Any, error: str) -> None:
        dlq = TOPICS[record.topic].dead_letter
        await self.broker.publish(record.value or b"", dlq, key=record.key, headers={
            "dlq.error": error[:2000], "dlq.source.topic": record.topic,
            "dlq.source.partition": str(record.partition), "dlq.source.offset": str(record.offset),
            "dlq.consumer.group": "scoring", "dlq.at": datetime.now(UTC).isoformat()})
        self.dead_lettered += 1

    # ---- rebuild ------------------------------------------------------------------------------------
    async def rebuild(self, rule_set_version: str | None = None,
                      on_progress: Callable[[Progress], None] = lambda p: None) -> Progress:
        """Fold the whole log into a fresh ledger, swap it in atomically, continue live from its end."""
        rules = self.rulebook.get(rule_set_version or self.ledger.rules.version)
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
        digest = await self.digest()
        self.last_progress = Progress("done", counted[0], counted[0], digest, rules.version, seconds)
        on_progress(self.last_progress)
        self._wake.set()
        return self.last_progress

    async def what_if(self, candidate: str) -> tuple[Ledger, Ledger]:
        """The current ledger and the same log folded under another rule set (nothing is stored)."""
        rules = self.rulebook.get(candidate)
        other = Ledger(rules, track_changes=False)
        async with self.lock:
            until = dict(self.positions)
            current = self.ledger
        await replay(self.bootstrap, other, until, workers=self.replay_workers)
        return current, other

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
        while not stop.is_set():
            try:
                await self.publish_pending()
            except Exception:
                log.exception("publishing failed; retrying")
                await asyncio.sleep(1)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=1.0)

    async def publish_pending(self) -> int:
        if (generation := self.unchecked_generation) is not None:
            found = await asyncio.to_thread(self.store.unpublished_entries, generation)
            async with self.lock:
                if self.unchecked_generation == generation:  # no rebuild meanwhile
                    self.pending |= found
                    self.ledger.dirty_stars |= member_quarters(self.ledger)  # everyone's stars checked again
                    self.unchecked_generation = None
        async with self.lock:
            ledger = self.ledger
            ready = [ledger.entries[i] for i in sorted(self.pending) if ledger.attribution(ledger.entries[i].member_id)]
            dirty, ledger.dirty_stars = ledger.dirty_stars, set()
        sent: list[str] = []
        futures = []
        for e in ready:
            event = self._entry_event(ledger, e)
            futures.append(await self._publish(event, f"scoring:{e.entry_id}", e.occurred_at, e.correlation_id,
                                               e.sources[0]))
            sent.append(f"scoring:{e.entry_id}")
        star_changes = self._star_changes(ledger, dirty)
        for event, event_id in star_changes:
            futures.append(await self._publish(event, event_id, datetime.now(UTC), event_id, None))
            sent.append(event_id)
        await asyncio.gather(*futures)
        if sent:
            await asyncio.to_thread(self.store.mark_published, sent)
            if star_changes:
                levels = {(e.member_id, e.quarter): e.stars for e, _ in star_changes}
                await asyncio.to_thread(self.store.record_stars, levels)
                self.stars_published.update(levels)
        async with self.lock:
            self.pending.difference_update(e.entry_id for e in ready)
        return len(sent)

    def _entry_event(self, ledger: Ledger, e: Entry) -> c.Event:
        community, unit = ledger.attribution(e.member_id) or ("", "")
        common = {"member_id": e.member_id, "community_id": community, "unit_id": unit, "entry_id": e.entry_id,
                  "points": abs(e.points), "rule": e.rule, "rule_set_version": ledger.rules.version,
                  "quarter": e.quarter, "source_event_ids": list(e.sources)}
        return c.PointsRevoked(**common) if e.points < 0 else c.PointsAwarded(**common)

    def _star_changes(self, ledger: Ledger, dirty: set[tuple[str, str]]) -> list[tuple[c.StarRatingChanged, str]]:
        if not dirty:
            return []
        before = self.stars_published
        out = []
        for member, quarter in sorted(dirty):
            attr = ledger.attribution(member)
            if attr is None:
                continue
            points, average, rated, stars = ledger.member_quarter(member, quarter)
            previous = before.get((member, quarter), 0)
            if stars == previous:
                continue
            key = f"{member}|{quarter}|{previous}|{stars}|{ledger.rules.version}"
            event_id = f"scoring:s-{hashlib.sha256(key.encode()).hexdigest()[:32]}"
            out.append((c.StarRatingChanged(member_id=member, community_id=attr[0], unit_id=attr[1], quarter=quarter,
                                            stars=stars, previous_stars=previous, points=points,
                                            average_rating=average, rated_services=rated,
                                            rule_set_version=ledger.rules.version), event_id))
        return out

    async def _publish(self, event: c.Event, event_id: str, at: datetime, correlation: str,
                       causation: str | None) -> Any:
        body = encode(event, event_id=event_id, producer="scoring", occurred_at=at,
                      correlation_id=correlation or event_id, causation_id=causation)
        return await self.broker.publish(body, event.TOPIC, key=event.key().encode(),
                                         headers={k: v.decode() for k, v in event_headers(event)}, no_confirm=True)

    # ---- quarterly notices ------------------------------------------------------------------------------
    async def publish_notices(self, quarter: str) -> list[dict[str, Any]]:
        """每季度通报公示: one notice per community and per unit active in the quarter."""
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
                    notice = c.QuarterlyNoticePublished(
                        notice_id=f"{scope}-{scope_id}-{quarter}-{version}", scope=scope, scope_id=scope_id,
                        quarter=quarter, rule_set_version=version,
                        summary=c.NoticeSummary(**summary.__dict__), ranking=ranking)
                    built.append(notice)
        out = []
        for notice in built:
            body = notice.model_dump(mode="json")
            await asyncio.to_thread(self.store.save_notice, notice.notice_id, notice.scope, notice.scope_id,
                                    quarter, version, body)
            event_id = f"scoring:{notice.notice_id}"
            if await asyncio.to_thread(self.store.unpublished, [event_id]):
                await (await self._publish(notice, event_id, datetime.now(UTC), event_id, None))
                await asyncio.to_thread(self.store.mark_published, [event_id])
            out.append(body)
        return out
