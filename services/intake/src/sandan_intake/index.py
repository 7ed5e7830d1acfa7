"""Which demands a resident posted, which are closed (or served) since when, and which residents were erased: an
in-memory projection of the event store's notification log, caught up before each use (as dispatch's board is).
Demand ids are derived from the resident and the client's request id, so without it a resident's demands could not
be listed (export) and closed ones not found (retention). Ids and times only: nothing personal.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any


class DemandIndex:
    def __init__(self) -> None:
        self.position = 0
        self.by_resident: dict[str, list[str]] = {}
        self.closed_at: dict[str, datetime] = {}  # withdrawn, confirmed or rated: the first of them
        self.served_at: dict[str, datetime] = {}  # served and not sent back for a redo since
        self.shredded: set[str] = set()
        self.erased_residents: set[str] = set()
        self._lock = threading.Lock()

    def catch_up(self, app: Any) -> None:
        with self._lock:
            while True:
                batch = app.recorder.select_notifications(start=self.position + 1, limit=app.log_section_size)
                if not batch:
                    return
                for notification in batch:
                    self._apply(notification.topic, notification, app)
                self.position = batch[-1].id

    def _apply(self, topic: str, notification: Any, app: Any) -> None:
        name = topic.rpartition(":")[2]  # "<module>:<Aggregate>.<Event>"
        if name not in ("Demand.Posted", "Demand.Withdrawn", "Demand.CompletionConfirmed", "Demand.Rated",
                        "Demand.ServiceRecorded", "Demand.RedoRequested", "Demand.TextsShredded", "Resident.Erased"):
            return  # decoded only when needed: most of the log is skipped unread
        e = app.mapper.to_domain_event(notification)
        oid = str(e.originator_id)
        if name == "Demand.Posted":
            self.by_resident.setdefault(e.resident_id, []).append(oid)
        elif name == "Demand.TextsShredded":
            self.shredded.add(oid)
        elif name == "Resident.Erased":
            self.erased_residents.add(oid)
        elif name == "Demand.ServiceRecorded":
            self.served_at[oid] = e.timestamp
        elif name == "Demand.RedoRequested":  # open again: served anew later, if ever
            self.served_at.pop(oid, None)
        else:  # withdrawn, confirmed or rated (a rated demand cannot be redone): closed for good
            self.closed_at.setdefault(oid, e.timestamp)

    def demands_of(self, resident_id: str) -> list[str]:
        with self._lock:
            return list(self.by_resident.get(resident_id, ()))

    def closed_before(self, cutoff: datetime) -> list[str]:
        """Demands whose texts are still held, closed before `cutoff` (a demand served and never closed counts
        as closed when it was served), oldest first."""
        with self._lock:
            since = {**self.served_at, **self.closed_at}
            due = [(at, d) for d, at in since.items() if at < cutoff and d not in self.shredded]
        return [d for _, d in sorted(due)]
