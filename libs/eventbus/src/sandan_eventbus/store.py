"""The event-sourced application base every sandan service uses.

Each service's store is its own (SQLite file by default, PostgreSQL in production, in-memory for unit
tests). The recorder is a *process* recorder: it can store, in the same transaction as new events,
a tracking record (which Kafka offset caused them, or how far the relay has published).
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from eventsourcing.application import Application, ProcessingEvent
from eventsourcing.persistence import IntegrityError, Mapper, ProcessRecorder, Tracking

from sandan_eventbus.config import eventstore_env
from sandan_eventbus.trace import Trace, TracingMapper

CONNECT_TIMEOUT_SECONDS = 5
RECONNECT_SECONDS = 10.0


class ServiceApplication(Application[Any]):
    """An eventsourcing Application with tracking, traces and optimistic retries."""

    log_section_size = 500
    # Subclasses set a stable name: it prefixes table names and tracking keys.
    name: ClassVar[str] = "Service"

    def __init__(self, store_url: str = "memory://", env: dict[str, str] | None = None) -> None:
        merged = eventstore_env(store_url)
        if merged["PERSISTENCE_MODULE"] == "eventsourcing.postgres":
            # eventsourcing retries each call 10 times; with the pool's default 30 s wait per try, one call
            # could hang 5 minutes in an outage (past Kafka's max poll interval). 5 s per try bounds it near 1 min.
            merged.setdefault("POSTGRES_CONNECT_TIMEOUT", str(CONNECT_TIMEOUT_SECONDS))
        merged.update(env or {})
        super().__init__(env=merged)
        pool = getattr(getattr(self.recorder, "datastore", None), "pool", None)
        if pool is not None and hasattr(pool, "reconnect_timeout"):
            # psycopg_pool retries a lost connection with doubling waits (1, 2, 4 ... 128 s) for 5 minutes: after
            # a long outage the store would be back a minute before the pool noticed. Giving up a slot after 10 s
            # lets the next caller grow a fresh one (first try at once), so the pool retries every few seconds.
            pool.reconnect_timeout = RECONNECT_SECONDS

    # --- wiring -----------------------------------------------------------------------------
    def construct_mapper(self) -> Mapper[Any]:
        return TracingMapper(transcoder=self.construct_transcoder())

    def construct_recorder(self) -> ProcessRecorder:
        return self.factory.process_recorder()

    @property
    def tracking_recorder(self) -> ProcessRecorder:
        recorder = self.recorder
        assert isinstance(recorder, ProcessRecorder)
        return recorder

    # --- saving -----------------------------------------------------------------------------
    def save_tracked(self, *aggregates: Any, tracking: Tracking | None) -> None:
        """Save the aggregates' new events and the tracking record atomically (or just the tracking)."""
        processing = ProcessingEvent[Any](tracking=tracking)
        processing.collect_events(*aggregates)
        self._record(processing)
        self._take_snapshots(processing)

    def ping(self, timeout: float = 3.0) -> None:
        """Raise unless the store answers within `timeout` (readiness). Skips eventsourcing's retries."""
        datastore = getattr(self.recorder, "datastore", None)
        pool = getattr(datastore, "pool", None)
        if pool is not None and hasattr(pool, "connection"):  # PostgreSQL: one round trip from the pool
            pool.open(wait=False)
            with pool.connection(timeout=timeout) as conn:
                conn.execute("SELECT 1")
            return
        self.tracking_recorder.max_tracking_id("ping")  # SQLite, memory: a read through the recorder

    def trace_of(self, originator_id: Any, version: int = 1) -> Trace | None:
        """The trace stored with one event of an aggregate (by default its first): work taken up later from the
        aggregate continues that trace (`sandan_eventbus.tracing.resumed`)."""
        stored = self.recorder.select_events(originator_id, gt=version - 1, lte=version, limit=1)
        mapper = self.mapper
        if not stored or not isinstance(mapper, TracingMapper):
            return None
        return mapper.trace_of(stored[0])

    def already_processed(self, tracking: Tracking) -> bool:
        return self.tracking_recorder.has_tracking_id(tracking.application_name, tracking.notification_id)

    def retrying(self, command: Any, *args: Any, attempts: int = 5, **kwargs: Any) -> Any:
        """Run a read-modify-save command again when another writer saved the same aggregate first.

        Optimistic concurrency: the loser re-reads the aggregate and re-decides, so "first claim wins"
        and the second claim gets the refusal the new state implies.
        """
        for attempt in range(attempts):
            try:
                return command(*args, **kwargs)
            except IntegrityError:
                if attempt == attempts - 1:
                    raise
                time.sleep(0.005 * (attempt + 1))
        raise AssertionError("unreachable")
