"""The county's places for the pages: town and community names, and each community's grids, from the same places
file every service reads (`SANDAN_PLACES_FILE`: `[county]`, `[towns.<id>]`, `[communities.<id>]` with `name`,
`town` and optionally `grids = [...]`). Public administrative names only: nothing personal.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

CHINA = timezone(timedelta(hours=8))


@dataclass(frozen=True)
class Place:
    community_id: str
    name: str
    town_id: str = ""
    grids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Directory:
    county_id: str = ""
    county_name: str = ""
    towns: dict[str, str] = field(default_factory=dict)  # town id -> name
    communities: dict[str, Place] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Directory:
        data = tomllib.loads(text)
        county = data.get("county") or {}
        towns = {str(k): str((v or {}).get("name", k)) for k, v in (data.get("towns") or {}).items()}
        communities = {}
        for cid, v in (data.get("communities") or {}).items():
            if isinstance(v, dict):
                grids = tuple(str(g) for g in v.get("grids", ()) if isinstance(g, str))
                communities[str(cid)] = Place(str(cid), str(v.get("name", cid)), str(v.get("town", "")), grids)
        return cls(str(county.get("id", "")), str(county.get("name", "")), towns, communities)

    @classmethod
    def from_file(cls, path: str | None) -> Directory:
        return cls.parse(Path(path).read_text(encoding="utf-8")) if path else cls()

    def name_of(self, community_id: str) -> str:
        place = self.communities.get(community_id)
        return place.name if place else community_id

    def in_town(self, town_id: str) -> list[Place]:
        return [p for p in self.communities.values() if p.town_id == town_id]


def current_quarter(now: datetime | None = None) -> str:
    """The quarter in China's time (a notice for 2026Q4 is the quarter people there lived)."""
    local = (now or datetime.now(UTC)).astimezone(CHINA)
    return f"{local.year}Q{(local.month - 1) // 3 + 1}"


def previous_quarters(count: int, now: datetime | None = None) -> list[str]:
    quarter = current_quarter(now)
    year, q = int(quarter[:4]), int(quarter[-1])
    found = []
    for _ in range(count):
        found.append(f"{year}Q{q}")
        q -= 1
        if q == 0:
            year, q = year - 1, 4
    return found
