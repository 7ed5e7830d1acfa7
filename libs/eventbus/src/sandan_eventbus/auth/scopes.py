"""Scope: where a caller may act, checked by the application layer (which knows an order's community).

The role part (may this role call this method at all?) is the interceptor's; this is the second part: may
*this* secretary act in *this* community, this grid leader in this grid, this member on this order? Each check
raises `PermissionDenied` (PERMISSION_DENIED at the edge) before anything is decided or saved, so a refusal
changes nothing. Internal work (`SYSTEM`: consumers, sweeps) passes every check.

Which town a community belongs to comes from the places directory (`SANDAN_PLACES_FILE`, the same TOML file
notify's office directory reads: `[county] id`, `[towns.<id>]`, `[communities.<id>] town = "<town id>"`).
"""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from sandan_eventbus.auth.principal import PermissionDenied, Principal

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Places:
    county_id: str | None = None
    towns: dict[str, str] = field(default_factory=dict)  # community id -> town id

    @classmethod
    def parse(cls, text: str) -> Places:
        data = tomllib.loads(text)
        county = (data.get("county") or {}).get("id")
        towns = {str(c): str(v["town"]) for c, v in (data.get("communities") or {}).items()
                 if isinstance(v, dict) and v.get("town")}
        return cls(str(county) if county else None, towns)

    @classmethod
    def from_file(cls, path: str | Path | None) -> Places:
        if not path:
            log.warning("no places directory (SANDAN_PLACES_FILE): town and county offices have no scope")
            return cls()
        return cls.parse(Path(path).read_text(encoding="utf-8"))

    def town_of(self, community_id: str) -> str | None:
        return self.towns.get(community_id)


class Scopes:
    def __init__(self, places: Places | None = None) -> None:
        self.places = places or Places()

    # ---- places -----------------------------------------------------------------------------------------
    def covers(self, who: Principal, community_id: str, grid_id: str | None = None, unit_id: str | None = None,
               ) -> bool:
        """Does the caller's acting role reach this place? (Members and residents act on their own records:
        see `member`, `resident`.)"""
        if who.is_system:
            return True
        role = who.acting_role
        if role in ("branch_secretary", "grid_worker"):
            return bool(who.community_id) and who.community_id == community_id
        if role == "grid_leader":
            if who.community_id != community_id or not who.community_id:
                return False
            return grid_id is None or (bool(who.grid_id) and who.grid_id == grid_id)
        if role == "town_office":
            return bool(who.town_id) and self.places.town_of(community_id) == who.town_id
        if role == "county_office":
            return bool(who.county_id) and self.places.county_id == who.county_id
        if role == "hotline_operator":
            # A hotline acts for callers, so only a community the directory lists (one of the county's): a town's
            # hotline (the token names a town) in that town's communities, the county's in any of them.
            town = self.places.town_of(community_id)
            if town is None or (who.county_id and who.county_id != self.places.county_id):
                return False
            if who.town_id:
                return town == who.town_id
            return bool(who.county_id)
        if role == "unit_admin":
            return unit_id is not None and bool(who.unit_id) and who.unit_id == unit_id
        return False

    def place(self, who: Principal, community_id: str, grid_id: str | None = None, unit_id: str | None = None,
              what: str = "this") -> None:
        if not self.covers(who, community_id, grid_id, unit_id):
            raise PermissionDenied(f"{who.acting_role or 'caller'} may not act on {what} outside their scope")

    # ---- own records --------------------------------------------------------------------------------------
    @staticmethod
    def member(who: Principal, member_id: str) -> None:
        """A member acts only as the member record their token is bound to."""
        if who.is_system:
            return
        if not who.member_id or who.member_id != member_id:
            raise PermissionDenied("a member may act only as themselves (member_id is not theirs)")

    @staticmethod
    def resident(who: Principal, resident_id: str) -> None:
        if who.is_system:
            return
        if not who.resident_id or who.resident_id != resident_id:
            raise PermissionDenied("a resident may act only on their own records")
