"""The roster (双报到): units and members report to a community, members join teams or leave, grid groups get a
leader. Who may do each (access.toml): a member only as themselves (and reports only into the community and grid
their token names), a unit admin for their unit, a grid leader in their grid, the branch secretary in their
community; offices read in their town or county.

Contacts and addresses stay out of the event store, but every write of them is a stored event naming the caller:
the report itself, or `ContactChanged` (internal, never published: it names the fields, not the values). A
member's public name (their consent to be named on the 公示 board) is kept the same way: the name in the contacts
database, `PublicNameChanged` (shown or not; internal) in the store; leaving withdraws it.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

from sandan_dispatch.base import DispatchBase
from sandan_dispatch.board import GridRow, MemberRow
from sandan_dispatch.domain import GridGroup, Member, Unit
from sandan_dispatch.scope import Rule, anyone
from sandan_eventbus.audit import AuditEntry, history
from sandan_eventbus.checks import (
    check_code,
    check_email,
    check_id,
    check_many,
    check_openid,
    check_phone,
    check_text,
    check_webhook_url,
    limit_of,
)
from sandan_eventbus.errors import AlreadyExists, FailedPrecondition


@dataclass(frozen=True)
class RosterUnit:
    unit_id: str
    unit_name: str
    members_reported: int  # active members of the unit in this community (in the caller's view)


@dataclass(frozen=True)
class RosterView:
    """A community's roster as ListRoster shows it: what GetMember shows the same caller, no name, no contact."""

    community_id: str
    units: list[RosterUnit]
    members: list[MemberRow]
    grid_groups: list[GridRow]


@dataclass(frozen=True)
class MemberContactCard:
    """What notify may learn about a member (the authorised GetMemberContact call)."""

    member_id: str
    community_id: str
    unit_id: str
    name: str = ""
    phone: str = ""
    email: str = ""
    wechat_openid: str = ""


@dataclass(frozen=True)
class UnitContactCard:
    """Where a unit organisation's notices go (the authorised GetUnitContact call)."""

    unit_id: str
    community_id: str
    unit_name: str
    contact_email: str = ""
    webhook_url: str = ""


@dataclass(frozen=True)
class PublicNamesView:
    """What the public notice board may show: consenting members' public names, reported units' names."""

    members: dict[str, str]  # member_id -> public name, only those who consented
    units: dict[str, str]    # unit_id -> unit name, only units that reported


CONTACT_FIELDS = ("name", "phone", "email", "wechat_openid")  # a member's contact, in put_member's order
MAX_PUBLIC_IDS = limit_of("member_ids").max_items or 0  # ids of each kind per PublicNames call (the documented bound)
# Who may read public names: the roles that may read a notice (scoring's CommunityNotice row); the names are public.
PUBLIC_READERS = ("member", "branch_secretary", "town_office", "county_office", "partner", "service_gateway")


class Roster(DispatchBase):
    # ---- units -----------------------------------------------------------------------------------
    def report_unit(self, unit_id: str, community_id: str, unit_name: str, contact_email: str = "",
                    webhook_url: str = "") -> Unit:
        """A unit reports; its addresses (optional) go to the contacts table, never into an event.
        Reporting again to the same community is a retry; addresses given then replace the stored ones
        (so only the unit's admin or the secretary of the community it reports to may do it: a webhook is where
        the unit's notices go), and the change is recorded under the caller (Unit.ContactChanged, internal)."""
        check_id("unit_id", unit_id)
        check_id("community_id", community_id)
        unit_name = check_text("unit_name", unit_name, 1, 100)
        contact_email, webhook_url = contact_email.strip(), webhook_url.strip()
        if contact_email:
            check_email("contact_email", contact_email)
        if webhook_url:
            check_webhook_url("webhook_url", webhook_url)
        place = self.guard.at(community_id, unit_id=unit_id)
        with self.guard.acting(f"report unit {unit_id} to community {community_id}", unit_admin=place,
                               branch_secretary=place):
            written: set[str] = set()  # what an earlier attempt of this call wrote (see _report_unit)
            return self.retrying(self._report_unit, unit_id, community_id, unit_name, contact_email, webhook_url,
                                 written)

    def _report_unit(self, unit_id: str, community_id: str, unit_name: str, contact_email: str,
                     webhook_url: str, written: set[str]) -> Unit:
        existing = self._maybe(Unit, Unit.create_id(unit_id))
        if existing is not None and existing.community_id != community_id:
            raise AlreadyExists(f"unit {unit_id} already reported to {existing.community_id}")
        given = {k: v for k, v in (("contact_email", contact_email), ("webhook_url", webhook_url)) if v}
        if self.contacts is None:
            given = {}
        changed: set[str] = set()
        if existing is not None and given:
            stored = self.contacts.unit(unit_id) if self.contacts is not None else None
            changed = {k for k, v in given.items() if stored is None or getattr(stored, k) != v}
            # an earlier attempt that lost a race already wrote them: its write is this caller's change too
            changed |= written & given.keys()
        if self.contacts is not None and given:
            self.contacts.put_unit(unit_id, contact_email, webhook_url)  # the addresses first, then the fact
            written.update(given)
        if existing is None:
            unit = Unit(unit_id=unit_id, community_id=community_id, unit_name=unit_name)
            self.save(unit)
            return unit
        existing.contact_changed(sorted(changed))  # reporting again is a retry; new addresses are a change
        self.save(existing)  # no change saves nothing
        return existing

    # ---- members ---------------------------------------------------------------------------------
    def report_member(self, member_id: str, unit_id: str, community_id: str, grid_id: str,
                      teams: list[str], skills: list[str], name: str = "", phone: str = "", email: str = "",
                      wechat_openid: str = "") -> Member:
        check_id("member_id", member_id)
        check_id("unit_id", unit_id)
        check_id("community_id", community_id)
        check_id("grid_id", grid_id)
        check_many("teams", teams, 10, check_code)
        check_many("skills", skills, 20, check_code)
        name = check_text("name", name, 1, 100) if name else ""
        phone, email, wechat_openid = phone.strip(), email.strip(), wechat_openid.strip()
        if phone:
            check_phone("phone", phone)
        if email:
            check_email("email", email)
        if wechat_openid:
            check_openid("wechat_openid", wechat_openid)
        with self.guard.acting(f"report member {member_id} of unit {unit_id} to community {community_id}",
                               member=self.guard.reporting(member_id, community_id, grid_id),
                               unit_admin=self.guard.at(community_id, unit_id=unit_id),
                               branch_secretary=self.guard.at(community_id)):
            unit = self._get(Unit, Unit.create_id(unit_id), f"unit {unit_id} has not reported")
            if unit.community_id != community_id:  # a unit admin's members report where their unit did
                raise FailedPrecondition(f"unit {unit_id} reported to {unit.community_id}, not {community_id}")
            grid = self._maybe(GridGroup, GridGroup.create_id(grid_id))
            if grid is not None and grid.community_id != community_id:
                raise FailedPrecondition(f"grid {grid_id} belongs to {grid.community_id}, not {community_id}")
            contact = (name, phone, email, wechat_openid)
            written: list[bool] = []  # whether an earlier attempt of this call wrote the contact
            return self.retrying(self._report_member, member_id, unit_id, community_id, grid_id, teams, skills,
                                 contact, written)

    def _report_member(self, member_id: str, unit_id: str, community_id: str, grid_id: str,
                       teams: list[str], skills: list[str], contact: tuple[str, str, str, str],
                       written: list[bool]) -> Member:
        existing = self._maybe(Member, Member.create_id(member_id))
        if existing is not None and written:
            # another report of this member saved first, after this call had written the contact: the write
            # stands, so it is recorded under this caller before the refusal
            existing.contact_changed([f for f, v in zip(CONTACT_FIELDS, contact, strict=True) if v])
            self.save(existing)
        if existing is not None and existing.active:
            raise AlreadyExists(f"member {member_id} already reported to {existing.community_id}")
        if existing is not None:
            raise FailedPrecondition(f"member {member_id} has left; re-reporting needs a new member id")
        if self.contacts is not None and any(contact):
            self.contacts.put_member(member_id, *contact)  # personal data first, then the fact
            written.append(True)
        member = Member(member_id=member_id, unit_id=unit_id, community_id=community_id, grid_id=grid_id,
                        teams=teams, skills=skills)
        self.save(member)
        return member

    def join_team(self, member_id: str, team: str) -> Member:
        check_code("team", team)
        known = self._member(member_id)  # a member's community, grid and unit never change: checked once
        with self.guard.acting(f"change the teams of member {member_id}",
                               member=self.guard.themselves(known.member_id),
                               grid_leader=self.guard.at(known.community_id, grid_id=known.grid_id),
                               branch_secretary=self.guard.at(known.community_id)):
            def command() -> Member:
                member = self._member(member_id)
                member.join_team(team)
                self.save(member)
                return member

            return self.retrying(command)

    def member_leaves(self, member_id: str, reason: str) -> Member:
        """The member leaves the community; orders they still hold go back to the pool (part of the same act,
        recorded under the same caller)."""
        check_code("reason", reason)
        known = self._member(member_id)
        with self.guard.acting(f"record that member {member_id} leaves",
                               member=self.guard.themselves(known.member_id),
                               unit_admin=self.guard.at(known.community_id, unit_id=known.unit_id),
                               branch_secretary=self.guard.at(known.community_id)):
            def command() -> Member:
                member = self._member(member_id)
                member.leave(reason)
                self.save(member)
                return member

            member = self.retrying(command)
            self._withdraw_public_name(member_id)  # under the same caller: leaving withdraws the consent
            self.board.catch_up(self)
            for order_id in self.board.held_by(member_id):
                self._on_order(order_id, lambda _: nullcontext(),  # in scope: the member's leaving is
                               lambda o: o.decline(member_id, "member_left") if o.member_id == member_id else None)
            return member

    # ---- public names (the 公示 board) ---------------------------------------------------------------
    def set_public_name(self, member_id: str, public_name: str) -> tuple[str, str]:
        """A member gives ("王芳", "王**": 1-20 characters) or withdraws ("") their consent to be named on the
        public notice board. Only the member themself; the name goes to the contacts database first, then the
        fact (`PublicNameChanged`, naming the caller) is stored. Returns (member_id, the name now shown)."""
        public_name = check_text("public_name", public_name, 1, 20) if public_name.strip() else ""
        known = self._member(member_id)
        with self.guard.acting(f"set the public name of member {member_id}",
                               member=self.guard.themselves(known.member_id)):
            if not public_name:
                self._withdraw_public_name(member_id)
                return member_id, ""
            if self.contacts is None:
                raise FailedPrecondition("dispatch keeps no contacts database here: public names cannot be stored")
            if not known.active:
                raise FailedPrecondition(f"member {member_id} has left")
            if self.contacts.public_names([member_id]).get(member_id) != public_name:
                self.contacts.put_public_name(member_id, public_name)  # the name first, then the fact
                try:
                    self._record_public_name(member_id, shown=True)
                except FailedPrecondition:  # they left meanwhile (and leaving withdrew it): the name goes too
                    self.contacts.remove_public_name(member_id)
                    raise
            return member_id, public_name

    def _withdraw_public_name(self, member_id: str) -> None:
        """Remove the member's public name, recording the withdrawal when there was one (a repeat is no fact)."""
        if self.contacts is not None and self.contacts.remove_public_name(member_id):
            self._record_public_name(member_id, shown=False)

    def _record_public_name(self, member_id: str, shown: bool) -> None:
        def command() -> None:
            member = self._member(member_id)
            member.public_name_changed(shown)
            self.save(member)

        self.retrying(command)

    def public_names(self, member_ids: list[str], unit_ids: list[str]) -> PublicNamesView:
        """The public names of those members who consented, and the names of those units that reported; ids
        without either are left out (an unknown id is not an error: a notice may name a unit reported elsewhere)."""
        member_ids = check_many("member_ids", member_ids, MAX_PUBLIC_IDS, check_id)
        unit_ids = check_many("unit_ids", unit_ids, MAX_PUBLIC_IDS, check_id)
        rules: dict[str, Rule] = {role: anyone for role in PUBLIC_READERS}
        self.guard.require("read public names", **rules)
        members = self.contacts.public_names(member_ids) if self.contacts is not None and member_ids else {}
        self.board.catch_up(self)
        units = {u: self.board.units[u].unit_name for u in dict.fromkeys(unit_ids) if u in self.board.units}
        # only members still serving: a name written by a consent that raced the member's leaving is never shown
        active = {m for m in members if (row := self.board.members.get(m)) is not None and row.active}
        return PublicNamesView({m: members[m] for m in dict.fromkeys(member_ids) if m in active}, units)

    def member(self, member_id: str) -> Member:
        member = self._member(member_id)
        place = self.guard.at(member.community_id, grid_id=member.grid_id, unit_id=member.unit_id)
        self.guard.require(f"read member {member_id}", member=self.guard.themselves(member.member_id),
                           grid_leader=place, unit_admin=place, branch_secretary=place, town_office=place,
                           county_office=place)
        return member

    def member_history(self, member_id: str) -> list[AuditEntry]:
        """Who did what to the member's roster record, and when, in order."""
        member = self._member(member_id)
        place = self.guard.at(member.community_id, unit_id=member.unit_id)
        self.guard.require(f"read the history of member {member_id}",
                           member=self.guard.themselves(member.member_id), unit_admin=place,
                           branch_secretary=place, town_office=place, county_office=place)
        return history(self, member.id)

    def roster(self, community_id: str) -> RosterView:
        """One community's roster: its units with their reported members counted, its members (id, unit, grid,
        teams, whether active; names and contacts stay with notify's GetMemberContact) and grid groups. The branch
        secretary and the town and county offices see the community; a grid leader their grid's members, the
        units they serve and their grid group."""
        check_id("community_id", community_id)
        place = self.guard.at(community_id)
        who = self.guard.require(f"read the roster of community {community_id}", grid_leader=place,
                                 branch_secretary=place, town_office=place, county_office=place)
        self.board.catch_up(self)
        units, members, grids = self.board.roster_of(community_id)
        grid = (who.grid_id or "") if who.acting_role == "grid_leader" else None
        if grid is not None:  # a grid leader's reach is their grid (a token naming none reaches no grid)
            members = [m for m in members if m.grid_id == grid]
            grids = [g for g in grids if g.grid_id == grid]
            units = [u for u in units if any(m.unit_id == u.unit_id for m in members)]
        counts: dict[str, int] = {}
        for m in members:
            counts[m.unit_id] = counts.get(m.unit_id, 0) + m.active
        return RosterView(community_id, [RosterUnit(u.unit_id, u.unit_name, counts.get(u.unit_id, 0)) for u in units],
                          members, grids)

    # ---- grid groups -----------------------------------------------------------------------------
    def form_grid_group(self, community_id: str, grid_id: str) -> GridGroup:
        check_id("community_id", community_id)
        check_id("grid_id", grid_id)
        with self.guard.acting(f"form grid groups in community {community_id}",
                               branch_secretary=self.guard.at(community_id)):
            return self.retrying(self._form_grid_group, community_id, grid_id)

    def _form_grid_group(self, community_id: str, grid_id: str) -> GridGroup:
        existing = self._maybe(GridGroup, GridGroup.create_id(grid_id))
        if existing is not None:
            if existing.community_id != community_id:
                raise AlreadyExists(f"grid {grid_id} belongs to {existing.community_id}")
            return existing
        group = GridGroup(grid_id=grid_id, community_id=community_id)
        self.save(group)
        return group

    def appoint_grid_leader(self, grid_id: str, member_id: str) -> GridGroup:
        def command() -> GridGroup:
            group = self._grid(grid_id)
            with self.guard.acting(f"appoint the leader of grid {grid_id}",
                                   branch_secretary=self.guard.at(group.community_id)):
                group.appoint_leader(self._member(member_id))
                self.save(group)
            return group

        return self.retrying(command)

    # ---- contacts for notify (GetMemberContact / GetUnitContact: notify's service identity only) -------
    def member_contact(self, member_id: str) -> MemberContactCard:
        """How to reach a member; empty fields when the member gave none."""
        member = self._member(member_id)
        self.guard.require(f"read the contact of member {member_id}", service_notify=anyone)
        found = self.contacts.member(member_id) if self.contacts is not None else None
        if found is None:
            return MemberContactCard(member.member_id, member.community_id, member.unit_id)
        return MemberContactCard(member.member_id, member.community_id, member.unit_id, found.name, found.phone,
                                 found.email or "", found.wechat_openid or "")

    def unit_contact(self, unit_id: str) -> UnitContactCard:
        """Where a unit's notices go; empty addresses when the unit gave none."""
        unit = self._unit(unit_id)
        self.guard.require(f"read the contact of unit {unit_id}", service_notify=anyone)
        found = self.contacts.unit(unit_id) if self.contacts is not None else None
        return UnitContactCard(unit.unit_id, unit.community_id, unit.unit_name,
                               (found.contact_email or "") if found else "", (found.webhook_url or "") if found else "")
