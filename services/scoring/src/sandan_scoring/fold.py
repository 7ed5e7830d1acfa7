"""The ledger as a fold of facts: pure, in memory, no I/O.

Why the result does not depend on how topics interleave: every points rule reads either one fact alone
(a rating, a check-in) or the facts of one order, and one order's facts share a topic and a key, so Kafka
keeps them in order. Facts from other topics (who belongs to which unit, which community a rated demand
was in) are only joined when a report is computed, never when an entry is made.

Duplicates (a relay re-publishing after a crash) are dropped by (producer, key, sequence): a producer's
event ids are `<app>:<notification id>`, increasing per key within a partition.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

from sandan_scoring.facts import Fact
from sandan_scoring.rules import RuleSet

CHINA = timezone(timedelta(hours=8))  # quarters follow China Standard Time (no DST)
_EIGHT_HOURS = timedelta(hours=8)


def quarter_of(at: datetime) -> str:
    """The quarter of an aware time, in China Standard Time (UTC+8 all year, so a shift is enough)."""
    local = (at if at.tzinfo is UTC else at.astimezone(UTC)) + _EIGHT_HOURS
    return f"{local.year}Q{(local.month - 1) // 3 + 1}"


@dataclass(slots=True)
class Entry:
    entry_id: str
    member_id: str
    points: int  # negative for a revocation
    rule: str
    quarter: str
    sources: tuple[str, ...]
    occurred_at: datetime
    correlation_id: str = ""

    @property
    def revoked(self) -> bool:
        return self.points < 0


@dataclass(slots=True)
class OrderFacts:
    order_id: str
    demand_id: str
    community_id: str
    category: str
    care: bool
    due_at: datetime
    opened_quarter: str
    status: str = "open"
    holder: str | None = None
    cancelled: bool = False
    completed_quarter: str | None = None
    # (quarter, member, accepted within the deadline?)
    acceptances: list[tuple[str, str, bool]] = field(default_factory=list)
    # (quarter, member, hours)
    completions: list[tuple[str, str, float]] = field(default_factory=list)
    overdue: list[str] = field(default_factory=list)  # quarters
    escalated: list[str] = field(default_factory=list)  # quarters


@dataclass(slots=True)
class Rating:
    demand_id: str
    member_id: str | None
    stars: int
    quarter: str


@dataclass(slots=True)
class CheckIn:
    member_id: str
    quarter: str
    community_id: str
    unit_id: str


class Ledger:
    """Everything scoring knows, folded from facts under one rule set."""

    def __init__(self, rules: RuleSet, track_changes: bool = True) -> None:
        self.rules = rules
        # Live folding records what changed (for persistence and publishing); a whole-log replay does not
        # need to, and skipping it is measurably faster.
        self.track_changes = track_changes
        self.entries: dict[str, Entry] = {}
        self.by_member: dict[str, list[str]] = {}
        self.members: dict[str, tuple[str, str]] = {}  # member -> (community, unit)
        self.orders: dict[str, OrderFacts] = {}
        self.ratings: dict[str, Rating] = {}  # by demand (rated once)
        self.checkins: dict[tuple[str, str], CheckIn] = {}  # (activity, member)
        # A member known only from check-ins belongs where their first activity (smallest id) was:
        # a min, so the answer does not depend on which partition was read first.
        self.first_checkin: dict[str, tuple[str, str, str]] = {}  # member -> (activity, community, unit)
        self.last_seq: dict[tuple[str, str], int] = {}
        self.seen_other: set[str] = set()
        self.applied = 0
        self.duplicates = 0
        # what changed since the last `take_changes()` (for incremental persistence)
        self.dirty_entries: set[str] = set()
        self.dirty_stars: set[tuple[str, str]] = set()  # (member, quarter) whose stars may have changed
        self.ratings_by_member: dict[str, list[str]] = {}

    def member_quarter(self, member_id: str, quarter: str) -> tuple[int, float | None, int, int]:
        """(points, average rating, rated services, stars) of one member in one quarter."""
        points = sum(e.points for i in self.by_member.get(member_id, ()) if (e := self.entries[i]).quarter == quarter)
        given = [r.stars for d in self.ratings_by_member.get(member_id, ())
                 if (r := self.ratings[d]).quarter == quarter]
        average = round(sum(given) / len(given), 3) if given else None
        return points, average, len(given), self.rules.stars_for(points, average, len(given))

    def merge(self, other: Ledger) -> None:
        """Absorb a ledger folded from *other partitions* of the same log (a parallel replay).

        Exact because every fold key lives in one partition: an order's facts, a demand's rating, an
        activity's check-ins, a member's report. So the union equals the fold of all partitions."""
        if other.rules != self.rules:
            raise ValueError("cannot merge ledgers folded under different rule sets")
        self.entries.update(other.entries)
        for member, ids in other.by_member.items():
            self.by_member.setdefault(member, []).extend(ids)
        self.members.update(other.members)
        self.orders.update(other.orders)
        self.ratings.update(other.ratings)
        for member, demands in other.ratings_by_member.items():
            self.ratings_by_member.setdefault(member, []).extend(demands)
        self.checkins.update(other.checkins)
        for member, first in other.first_checkin.items():
            if member not in self.first_checkin or first < self.first_checkin[member]:
                self.first_checkin[member] = first
        self.last_seq.update(other.last_seq)
        self.seen_other |= other.seen_other
        self.applied += other.applied
        self.duplicates += other.duplicates
        self.dirty_entries |= other.dirty_entries
        self.dirty_stars |= other.dirty_stars

    def attribution(self, member_id: str) -> tuple[str, str] | None:
        """(community, unit) of a member: from MemberReported, else from a check-in (the first activity id,
        so the answer does not depend on which topic was read first)."""
        if member_id in self.members:
            return self.members[member_id]
        first = self.first_checkin.get(member_id)
        return (first[1], first[2]) if first else None

    def member_entries(self, member_id: str, quarter: str = "") -> list[Entry]:
        """A member's ledger entries (of one quarter, or all), in the order they happened."""
        entries = (self.entries[i] for i in self.by_member.get(member_id, ()))
        return sorted((e for e in entries if not quarter or e.quarter == quarter),
                      key=lambda e: (e.occurred_at, e.entry_id))

    def member_totals(self, member_id: str) -> dict[str, int]:
        """A member's points per quarter and per year ("2026": ...), plus "all"."""
        out: dict[str, int] = {}
        for i in self.by_member.get(member_id, ()):
            e = self.entries[i]
            for period in (e.quarter, e.quarter[:4], "all"):
                out[period] = out.get(period, 0) + e.points
        return dict(sorted(out.items()))

    # ---- applying facts -----------------------------------------------------------------------
    def apply(self, fact: Fact) -> None:
        if self._duplicate(fact):
            self.duplicates += 1
            return
        handler = _HANDLERS.get(fact.type)
        if handler is not None:
            fact.quarter = quarter_of(fact.occurred_at)  # once per fact; every rule below reads it
            handler(self, fact)
        self.applied += 1

    def _duplicate(self, fact: Fact) -> bool:
        producer, _, seq = fact.event_id.rpartition(":")
        if seq.isdigit() and producer:
            k = (fact.topic, fact.key)
            n = int(seq)
            if self.last_seq.get(k, 0) >= n:
                return True
            self.last_seq[k] = n
            return False
        if fact.event_id in self.seen_other:
            return True
        self.seen_other.add(fact.event_id)
        return False

    def _award(self, member_id: str, points: int, rule: str, fact: Fact) -> None:
        if points == 0:
            return
        sources = (fact.event_id,)
        digest = hashlib.blake2b(f"{self.rules.version}|{rule}|{member_id}|{fact.event_id}".encode(),
                                 digest_size=16).hexdigest()
        entry_id = f"e-{digest}"
        if entry_id in self.entries:
            # Another fact under an event id already used (re-deliveries of the same fact were dropped above):
            # producers must not reuse ids. The id keeps naming the first fact; the second earns nothing here
            # (overwriting would change a published entry, and storing both would break the unique id).
            return
        entry = Entry(entry_id, member_id, points, rule, fact.quarter, sources, fact.occurred_at,
                      fact.correlation_id)
        self.entries[entry.entry_id] = entry
        self.by_member.setdefault(member_id, []).append(entry.entry_id)
        if self.track_changes:
            self.dirty_entries.add(entry.entry_id)
            self.dirty_stars.add((member_id, entry.quarter))

    # ---- the rules, one per fact ----------------------------------------------------------------
    def member_reported(self, f: Fact) -> None:
        d = f.data
        self.members[d["member_id"]] = (d["community_id"], d["unit_id"])

    def order_opened(self, f: Fact) -> None:
        d = f.data
        # special care: the flag, or (facts from before the flag) any tag, so old and new logs fold the same
        care = d["special_care"] or bool(d["care_tags"])
        self.orders[d["order_id"]] = OrderFacts(
            d["order_id"], d["demand_id"], d["community_id"], d["category"], care, d["due_at"], f.quarter)

    def _order(self, f: Fact) -> OrderFacts | None:
        # An order's facts arrive in order; one seen without its opening (a topic trimmed by hand) is skipped.
        return self.orders.get(f.data["order_id"])

    def order_dispatched(self, f: Fact) -> None:
        if (o := self._order(f)) is not None:
            o.status, o.holder = "dispatched", f.data["member_id"]

    def order_offered(self, f: Fact) -> None:
        if (o := self._order(f)) is not None:
            o.status, o.holder = "offered", None

    def order_accepted(self, f: Fact) -> None:
        if (o := self._order(f)) is not None:
            o.status, o.holder = "accepted", f.data["member_id"]
            o.acceptances.append((f.quarter, o.holder, f.occurred_at <= o.due_at))

    def order_declined(self, f: Fact) -> None:
        if (o := self._order(f)) is not None:
            if o.status == "accepted" and o.holder == f.data["member_id"]:
                self._award(o.holder, -self.rules.abandoned_order, "abandoned_order", f)
            o.status, o.holder = "offered", None

    def service_completed(self, f: Fact) -> None:
        if (o := self._order(f)) is None:
            return
        member, hours = f.data["member_id"], float(f.data["hours"])
        q = f.quarter
        o.status, o.completed_quarter = "completed", q
        o.completions.append((q, member, hours))
        self._award(member, self.rules.completed_points(o.category), "service_completed", f)
        self._award(member, self.rules.hours_points(hours), "service_hours", f)
        if o.care:
            self._award(member, self.rules.special_care_bonus, "special_care_bonus", f)

    def order_escalated(self, f: Fact) -> None:
        if (o := self._order(f)) is not None:
            o.escalated.append(f.quarter)
            o.due_at = f.data["due_at"]

    def order_overdue(self, f: Fact) -> None:
        if (o := self._order(f)) is None:
            return
        o.overdue.append(f.quarter)
        member = f.data.get("member_id")
        if member and f.data["status"] == "accepted":  # overdue because of the member who holds it
            self._award(member, -self.rules.overdue_while_held, "overdue_while_held", f)

    def order_cancelled(self, f: Fact) -> None:
        if (o := self._order(f)) is not None:
            o.status, o.cancelled, o.holder = "cancelled", True, None

    def order_reopened(self, f: Fact) -> None:
        if (o := self._order(f)) is None:
            return
        previous = f.data.get("previous_member_id")
        if previous:
            self._award(previous, -self.rules.redo_required, "redo_required", f)
        o.status, o.holder, o.completed_quarter = "open", None, None
        o.due_at = f.data["due_at"]

    def service_rated(self, f: Fact) -> None:
        d = f.data
        if d["demand_id"] in self.ratings:
            return  # rated once; intake enforces it, the fold does not trust it blindly
        member = d.get("member_id")
        rating = Rating(d["demand_id"], member, d["stars"], f.quarter)
        self.ratings[d["demand_id"]] = rating
        if member:
            self.ratings_by_member.setdefault(member, []).append(d["demand_id"])
            if self.track_changes:
                self.dirty_stars.add((member, rating.quarter))
        if member and d["stars"] == 5:
            self._award(member, self.rules.five_star_bonus, "five_star_bonus", f)

    def member_checked_in(self, f: Fact) -> None:
        d = f.data
        key = (d["activity_id"], d["member_id"])
        if key in self.checkins:
            return
        self.checkins[key] = CheckIn(d["member_id"], f.quarter, d["community_id"], d["unit_id"])
        first = (d["activity_id"], d["community_id"], d["unit_id"])
        if d["member_id"] not in self.first_checkin or first < self.first_checkin[d["member_id"]]:
            self.first_checkin[d["member_id"]] = first
        self._award(d["member_id"], self.rules.activity_check_in, "activity_check_in", f)


_HANDLERS = {
    "MemberReported": Ledger.member_reported,
    "OrderOpened": Ledger.order_opened,
    "OrderDispatched": Ledger.order_dispatched,
    "OrderOffered": Ledger.order_offered,
    "OrderAccepted": Ledger.order_accepted,
    "OrderDeclined": Ledger.order_declined,
    "ServiceCompleted": Ledger.service_completed,
    "OrderEscalated": Ledger.order_escalated,
    "OrderOverdue": Ledger.order_overdue,
    "OrderCancelled": Ledger.order_cancelled,
    "OrderReopened": Ledger.order_reopened,
    "ServiceRated": Ledger.service_rated,
    "MemberCheckedIn": Ledger.member_checked_in,
}
