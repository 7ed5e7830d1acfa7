"""Reports computed from the folded ledger: totals, stars, summaries, rankings, notices and the digest.

All are pure functions of the `Ledger`, so a rebuilt ledger gives the same reports; the digest hashes the
ledger and every summary, and is what tests (and operators) compare between live and rebuilt state.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Literal

from sandan_scoring.fold import Entry, Ledger

Scope = Literal["community", "unit"]


@dataclass(frozen=True)
class MemberQuarter:
    member_id: str
    quarter: str
    points: int
    average_rating: float | None
    rated_services: int
    stars: int


@dataclass(frozen=True)
class Summary:
    members_active: int
    services_completed: int
    hours: float
    response_rate: float | None
    completion_rate: float | None
    satisfaction_rate: float | None
    overdue: int
    escalated: int


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


@dataclass
class _Counts:
    completed: int = 0
    hours: float = 0.0
    accepted: int = 0
    in_time: int = 0
    opened: int = 0
    done: int = 0
    rated: int = 0
    satisfied: int = 0
    overdue: int = 0
    escalated: int = 0
    active: set[str] = field(default_factory=set)


def _summarise(c: _Counts) -> Summary:
    return Summary(len(c.active), c.completed, round(c.hours, 2), _ratio(c.in_time, c.accepted),
                   _ratio(c.done, c.opened), _ratio(c.satisfied, c.rated), c.overdue, c.escalated)


_SUMMARY_KEYS = sorted(Summary.__dataclass_fields__)


def _summary_json(s: Summary) -> str:
    """`json.dumps(asdict(s), sort_keys=True)`, written out (the digest makes one per scope and quarter)."""
    values = s.__dict__
    return "{" + ", ".join(f'"{k}": {"null" if (v := values[k]) is None else repr(v)}' for k in _SUMMARY_KEYS) + "}"


class Reports:
    """Indexes built once over a ledger; cheap to rebuild after each batch of facts."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.attribution: dict[str, tuple[str, str]] = {
            m: (community, unit) for m, (_activity, community, unit) in ledger.first_checkin.items()}
        self.attribution.update(ledger.members)
        self.points: dict[tuple[str, str], int] = defaultdict(int)  # (member, quarter)
        for e in ledger.entries.values():
            self.points[(e.member_id, e.quarter)] += e.points
        self.ratings: dict[tuple[str, str], list[int]] = defaultdict(list)
        for r in ledger.ratings.values():
            if r.member_id:
                self.ratings[(r.member_id, r.quarter)].append(r.stars)
        self.demand_community = {o.demand_id: o.community_id for o in ledger.orders.values()}
        self._counts: dict[tuple[str, str, str], _Counts] | None = None
        self._unit_communities: dict[str, frozenset[str]] | None = None

    # ---- members ---------------------------------------------------------------------------------
    def entries_of(self, member_id: str, quarter: str = "") -> list[Entry]:
        return self.ledger.member_entries(member_id, quarter)

    def member_quarter(self, member_id: str, quarter: str) -> MemberQuarter:
        points = self.points.get((member_id, quarter), 0)
        stars_given = self.ratings.get((member_id, quarter), [])
        average = round(sum(stars_given) / len(stars_given), 3) if stars_given else None
        stars = self.ledger.rules.stars_for(points, average, len(stars_given))
        return MemberQuarter(member_id, quarter, points, average, len(stars_given), stars)

    def totals(self, member_id: str) -> dict[str, int]:
        return self.ledger.member_totals(member_id)

    def attribution_of(self, member_id: str) -> tuple[str, str] | None:
        """(community, unit) of a member, as `Ledger.attribution` says."""
        return self.attribution.get(member_id)

    def communities_of(self, unit_id: str) -> frozenset[str]:
        """The communities a unit's members serve in (who may read the unit's figures depends on it)."""
        if self._unit_communities is None:
            index: dict[str, set[str]] = defaultdict(set)
            for community, unit in self.attribution.values():
                index[unit].add(community)
            self._unit_communities = {unit: frozenset(found) for unit, found in index.items()}
        return self._unit_communities.get(unit_id, frozenset())

    def members_in(self, scope: Scope, scope_id: str) -> list[str]:
        index = 0 if scope == "community" else 1
        return sorted(m for m, attr in self.attribution.items() if attr[index] == scope_id)

    # ---- rankings, summaries, notices ------------------------------------------------------------
    def ranking(self, scope: Scope, scope_id: str, quarter: str) -> list[MemberQuarter]:
        rows = [self.member_quarter(m, quarter) for m in self.members_in(scope, scope_id)]
        return sorted(rows, key=lambda r: (-r.points, -r.stars, r.member_id))

    def summary(self, scope: Scope, scope_id: str, quarter: str) -> Summary:
        counts = self.all_counts().get((scope, scope_id, quarter))
        return _summarise(counts or _Counts())

    def all_counts(self) -> dict[tuple[str, str, str], _Counts]:
        """One pass over the ledger, counting for every (scope, scope id, quarter) at once."""
        if self._counts is not None:
            return self._counts
        counts: dict[tuple[str, str, str], _Counts] = defaultdict(_Counts)

        def unit_of(member: str | None) -> str | None:
            attr = self.attribution.get(member) if member else None
            return attr[1] if attr else None

        for o in self.ledger.orders.values():
            units_involved = {u for _, m, _ in o.acceptances if (u := unit_of(m))}
            scopes = [("community", o.community_id)] + [("unit", u) for u in sorted(units_involved)]
            for q, m, h in o.completions:
                for key in (("community", o.community_id), ("unit", unit_of(m))):
                    if key[1]:
                        c = counts[(key[0], key[1], q)]
                        c.completed += 1
                        c.hours += h
            for q, m, ok in o.acceptances:
                for key in (("community", o.community_id), ("unit", unit_of(m))):
                    if key[1]:
                        c = counts[(key[0], key[1], q)]
                        c.accepted += 1
                        c.in_time += ok
            for scope, scope_id in scopes:
                for q in o.overdue:
                    counts[(scope, scope_id, q)].overdue += 1
                for q in o.escalated:
                    counts[(scope, scope_id, q)].escalated += 1
                if not o.cancelled:
                    c = counts[(scope, scope_id, o.opened_quarter)]
                    c.opened += 1
                    c.done += o.status == "completed"
        for r in self.ledger.ratings.values():
            for key in (("community", self.demand_community.get(r.demand_id)), ("unit", unit_of(r.member_id))):
                if key[1]:
                    c = counts[(key[0], key[1], r.quarter)]
                    c.rated += 1
                    c.satisfied += r.stars >= 4
        for (m, q), _ in self.points.items():
            attr = self.attribution.get(m)
            if attr:
                counts[("community", attr[0], q)].active.add(m)
                counts[("unit", attr[1], q)].active.add(m)
        self._counts = dict(counts)
        return self._counts

    def scopes(self) -> dict[Scope, list[str]]:
        return {"community": sorted({c for c, _ in self.attribution.values()} |
                                    {o.community_id for o in self.ledger.orders.values()}),
                "unit": sorted({u for _, u in self.attribution.values()})}

    def quarters(self) -> list[str]:
        return sorted({q for _, q in self.points} | {o.opened_quarter for o in self.ledger.orders.values()})

    # ---- proof ------------------------------------------------------------------------------------
    def digest(self) -> str:
        """SHA-256 over the ledger and every summary: equal digests mean equal state. (Built as one text
        and hashed once: per-line hashing of 400k entries cost more than the hashing itself.)"""
        entries = self.ledger.entries
        lines = [f"{e.entry_id}|{e.member_id}|{e.points}|{e.rule}|{e.quarter}|{','.join(e.sources)}\n"
                 for e in map(entries.__getitem__, sorted(entries))]
        lines += [f"member|{m}|{attr[0]}|{attr[1]}\n" for m, attr in sorted(self.attribution.items())]
        lines += [f"{scope}|{scope_id}|{quarter}|{_summary_json(_summarise(counts))}\n"
                  for (scope, scope_id, quarter), counts in sorted(self.all_counts().items())]
        return hashlib.sha256("".join(lines).encode()).hexdigest()
