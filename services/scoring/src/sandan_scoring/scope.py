"""Whose figures a caller may read: the scope part of access.toml's scoring rows, as data.

The interceptor has allowed the caller's role before any of this runs; here each of the caller's roles that the
method's row names is asked whether it reaches what was asked for (a person may hold several, e.g. a member who
is also their community's secretary: any one suffices). Where a member belongs is what the ledger says
(attribution: MemberReported, else their first check-in), not a token claim: it is what the figures count.
Which town a community is in comes from the places directory (`SANDAN_PLACES_FILE`, via `Scopes`).

A refusal is `PermissionDenied` before anything is read, and it is decided before "not found", so a caller
outside the scope cannot learn which ids exist. Internal work (`SYSTEM`, no interceptor) passes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from sandan_contracts.access import ACCESS
from sandan_eventbus.auth.principal import PermissionDenied, Principal
from sandan_eventbus.auth.scopes import Scopes
from sandan_scoring.fold import Ledger

SERVICE = "sandan.scoring.v1.Scoring"


class Roster(Protocol):
    """What the ledger knows of where members are (the live ledger's reports)."""

    def attribution_of(self, member_id: str) -> tuple[str, str] | None: ...  # (community, unit)

    def communities_of(self, unit_id: str) -> frozenset[str]: ...  # where the unit's members serve


@dataclass(frozen=True)
class LedgerRoster:
    """The roster straight from a ledger, for a single member's ledger (building the reports would cost more)."""

    ledger: Ledger

    def attribution_of(self, member_id: str) -> tuple[str, str] | None:
        return self.ledger.attribution(member_id)

    def communities_of(self, unit_id: str) -> frozenset[str]:
        found: set[str] = set()
        for member in {*self.ledger.members, *self.ledger.first_checkin}:
            where = self.ledger.attribution(member)
            if where is not None and where[1] == unit_id:
                found.add(where[0])
        return frozenset(found)


@dataclass(frozen=True)
class Asked:
    """What a call reads: one member's ledger, one community's or one unit's figures, or the county's."""

    member_id: str | None = None
    community_id: str | None = None
    unit_id: str | None = None

    def communities(self, roster: Roster) -> frozenset[str]:
        """The communities the asked figures belong to (a unit's: where its members serve)."""
        if self.member_id is not None:
            where = roster.attribution_of(self.member_id)
            return frozenset({where[0]}) if where else frozenset()
        if self.community_id is not None:
            return frozenset({self.community_id})
        if self.unit_id is not None:
            return roster.communities_of(self.unit_id)
        return frozenset()

    def unit(self, roster: Roster) -> str | None:
        if self.member_id is not None:
            where = roster.attribution_of(self.member_id)
            return where[1] if where else None
        return self.unit_id


Reach = Callable[[Scopes, Principal, Asked, Roster], bool]


def _self(scopes: Scopes, who: Principal, asked: Asked, roster: Roster) -> bool:
    """member: their own ledger."""
    return bool(who.member_id) and asked.member_id == who.member_id


def _own_community(scopes: Scopes, who: Principal, asked: Asked, roster: Roster) -> bool:
    """member: the community the ledger attributes them to."""
    mine = roster.attribution_of(who.member_id) if who.member_id else None
    return mine is not None and asked.community_id is not None and asked.community_id == mine[0]


def _own_community_or_unit(scopes: Scopes, who: Principal, asked: Asked, roster: Roster) -> bool:
    """member: their community or their unit, as the ledger attributes them."""
    mine = roster.attribution_of(who.member_id) if who.member_id else None
    if mine is None:
        return False
    return asked.community_id == mine[0] if asked.community_id is not None else asked.unit_id == mine[1]


def _unit(scopes: Scopes, who: Principal, asked: Asked, roster: Roster) -> bool:
    """unit_admin: their unit (its figures, or the ledger of one of its members)."""
    unit = asked.unit(roster)
    return asked.community_id is None and unit is not None and scopes.covers(who, "", unit_id=unit)


def _community(scopes: Scopes, who: Principal, asked: Asked, roster: Roster) -> bool:
    """branch_secretary: their community (its figures, or the ledger of a member serving there)."""
    return asked.unit_id is None and any(scopes.covers(who, c) for c in asked.communities(roster))


def _community_units(scopes: Scopes, who: Principal, asked: Asked, roster: Roster) -> bool:
    """branch_secretary: a unit of their community (one with members serving there)."""
    return asked.unit_id is not None and any(scopes.covers(who, c) for c in asked.communities(roster))


def _places(scopes: Scopes, who: Principal, asked: Asked, roster: Roster) -> bool:
    """town_office: a community of their town, or a unit with members serving there; county_office: the county
    (every community of the places directory's county)."""
    if who.acting_role == "county_office":
        return scopes.covers(who, "")
    return any(scopes.covers(who, c) for c in asked.communities(roster))


def _county(scopes: Scopes, who: Principal, asked: Asked, roster: Roster) -> bool:
    """county_office: their county is the places directory's county."""
    return scopes.covers(who, "")


def _any(scopes: Scopes, who: Principal, asked: Asked, roster: Roster) -> bool:
    """The published notice figures (partner, the gateway), the rules, and county IT (operator)."""
    return True


OFFICES: Mapping[str, Reach] = {"town_office": _places, "county_office": _places}
PUBLIC: Mapping[str, Reach] = {"partner": _any, "service_gateway": _any}
COUNTY: Mapping[str, Reach] = {"county_office": _county, "operator": _any}

# Per method, per role of its row: what the role reaches (access.toml's `scope` text, in code).
SCOPES: dict[str, Mapping[str, Reach]] = {
    "GetMemberLedger": {"member": _self, "unit_admin": _unit, "branch_secretary": _community, **OFFICES},
    "Leaderboard": {"member": _own_community_or_unit, "unit_admin": _unit, "branch_secretary": _community,
                    **OFFICES, **PUBLIC},
    "UnitReport": {"unit_admin": _unit, "branch_secretary": _community_units, **OFFICES, **PUBLIC},
    "CommunityNotice": {"member": _own_community, "branch_secretary": _community, **OFFICES, **PUBLIC},
    "PublishQuarterlyNotices": {"county_office": _county},
    "RuleSets": {role: _any for role in ACCESS.roles_for(f"/{SERVICE}/RuleSets")},
    "WhatIf": COUNTY,
    "Rebuild": {"operator": _any},
    "Digest": COUNTY,
    "Publishing": COUNTY,
}


class FigureScope:
    def __init__(self, scopes: Scopes) -> None:
        self.scopes = scopes

    def check(self, who: Principal, method: str, roster: Roster, asked: Asked = Asked()) -> None:
        """PermissionDenied unless one of the caller's roles that `method`'s row names reaches `asked`."""
        if who.is_system:
            return
        reaches = SCOPES[method]
        for role in ACCESS.roles_for(f"/{SERVICE}/{method}"):
            reach = reaches.get(role)
            if role in who.roles and reach is not None and reach(self.scopes, who.as_role(role), asked, roster):
                return
        raise PermissionDenied(f"{method}: {_what(asked)} is outside the caller's scope "
                               f"({', '.join(sorted(who.roles & set(reaches))) or 'no role of this method'})")


def _what(asked: Asked) -> str:
    if asked.member_id is not None:
        return "this member's ledger"
    if asked.community_id is not None:
        return "this community's figures"
    if asked.unit_id is not None:
        return "this unit's figures"
    return "the county's figures"
