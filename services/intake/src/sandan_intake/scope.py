"""Who may act on what in intake: the scope half of access.toml's rows for sandan.intake.v1.Intake.

The interceptor has already allowed the caller's role for the method; these checks say whether *this* caller
may act on *this* resident, demand or menu. The use cases call them with `current()` before deciding or saving
anything, so a refusal (`PermissionDenied`, PERMISSION_DENIED at the edge) changes nothing. Internal work
(`SYSTEM`: consumers, tests of the use cases) passes every check.

Each check is one rule per role its scope text speaks of (a role it does not name is refused, so a use case called
under any other role, not through the interceptor, is refused too). A person may hold several roles of a row (a
member who is also a grid leader or their community's secretary): the role the interceptor chose is tried first,
then every other role of theirs the check names, and the check returns the caller *as the role that allowed it*;
the use case runs under that role, so the events it stores and the releases it records name it (as dispatch's
`Guard` and scoring's `FigureScope` do).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping

from sandan_eventbus.auth.principal import PermissionDenied, Principal
from sandan_eventbus.auth.scopes import Places, Scopes
from sandan_intake.domain import Demand
from sandan_intake.residents import ResidentRecord

RESIDENT, GRID_WORKER, MEMBER, GRID_LEADER = "resident", "grid_worker", "member", "grid_leader"
# The county's (or a town's) 12345 hotline: takes a resident's call and acts for them as a grid worker would, in any
# community of the county (of the town when the token names one; `Scopes.covers` reads the places directory).
HOTLINE = "hotline_operator"
SECRETARY, TOWN_OFFICE, COUNTY_OFFICE, NOTIFY = "branch_secretary", "town_office", "county_office", "service_notify"
# The HTTP edge posting for a partner system's caller (Open311). The gateway checks the partner's API key and the
# community it is bound to; intake checks what it knows: the gateway acts only for residents it registered itself
# (their record says so: `ResidentRecord.registered_by`), in their community, like a worker acting for them.
GATEWAY = "service_gateway"
# Act for residents (who may have no account) where they reach; what they do is recorded on the resident's behalf.
WORKERS = (GRID_WORKER, HOTLINE, SECRETARY)
OFFICES = (TOWN_OFFICE, COUNTY_OFFICE)

Rule = Callable[[Principal], None]  # raises PermissionDenied when this role does not reach the thing


def _anyone(_: Principal) -> None:
    """No place to match: everyone holding the role."""


def allowed_as(who: Principal, rules: Mapping[str, Rule], what: str) -> Principal:
    """The caller as the first of their roles whose rule holds (the interceptor's choice first, then the rules'
    order), or PermissionDenied: for a single role its own reason, for several each role's."""
    if who.is_system:
        return who
    roles = [r for r in dict.fromkeys((who.acting_role, *rules))
             if r in rules and (r == who.acting_role or r in who.roles)]
    if not roles:
        raise PermissionDenied(f"{who.acting_role or 'caller'} may not {what}")
    refusals: list[tuple[str, PermissionDenied]] = []
    for role in roles:
        as_role = who if role == who.acting_role else who.as_role(role)
        try:
            rules[role](as_role)
        except PermissionDenied as refused:
            refusals.append((role, refused))
            continue
        return as_role
    if len(refusals) == 1:
        raise refusals[0][1]
    raise PermissionDenied("; ".join(f"as {role}: {refused}" for role, refused in refusals))


class IntakeScope:
    def __init__(self, places: Places | None = None) -> None:
        self.scopes = Scopes(places)

    # ---- rules ------------------------------------------------------------------------------------------
    def _at(self, community_id: str, grid_id: str | None = None, what: str = "this") -> Rule:
        return lambda who: self.scopes.place(who, community_id, grid_id=grid_id, what=what)

    @staticmethod
    def _own(resident_id: str) -> Rule:
        return lambda who: Scopes.resident(who, resident_id)

    @staticmethod
    def _registered_by_gateway(resident: ResidentRecord) -> Rule:
        def rule(_: Principal) -> None:
            if resident.registered_by != GATEWAY:
                raise PermissionDenied("the gateway acts only for residents it registered for a partner system")
        return rule

    def _workers(self, community_id: str, what: str) -> dict[str, Rule]:
        return dict.fromkeys(WORKERS, self._at(community_id, what=what))

    # ---- RegisterResident, PublishMenuItem, RetireMenuItem -----------------------------------------------
    def menu(self, who: Principal, community_id: str) -> Principal:
        """branch_secretary: their community's menu."""
        return allowed_as(who, {SECRETARY: self._at(community_id, what="this community's menu")}, "keep a menu")

    def register(self, who: Principal, community_id: str) -> Principal:
        """grid_worker, branch_secretary: a new resident of their community; hotline_operator: of a community of
        their county or town; service_gateway: a partner system's caller (the gateway checked the partner's key
        for the community). A resident registers themselves (`registers_themselves`, `own_resident_id`)."""
        return allowed_as(who, {**self._workers(community_id, "residents of this community"), GATEWAY: _anyone},
                          "register residents")

    def registers_themselves(self, who: Principal, community_id: str) -> bool:
        """Is a RegisterResident call a resident registering themselves? Yes for a resident, unless they also hold
        a role that registers *other* residents here (a grid worker living in their own community registers the
        residents who call on them; registering themselves would need the resident account alone)."""
        if who.is_system or not (who.acting_role == RESIDENT or RESIDENT in who.roles):
            return False
        try:
            self.register(who, community_id)
        except PermissionDenied:
            return True
        return False

    @staticmethod
    def own_resident_id(who: Principal) -> str:
        """The resident record a resident's account is bound to (a uuid, like every resident id intake holds)."""
        try:
            return str(uuid.UUID(who.resident_id or ""))
        except ValueError:
            raise PermissionDenied("this account is bound to no resident id intake can hold") from None

    # ---- PostDemand ---------------------------------------------------------------------------------------
    def post(self, who: Principal, resident_id: str, community_id: str) -> Principal:
        """Before anything is read: a resident their own id; a worker or secretary their community, a hotline
        operator a community of their county or town; the gateway is checked against the resident's record
        (`resident`)."""
        return allowed_as(who, {RESIDENT: self._own(resident_id),
                                **self._workers(community_id, "a resident of this community"),
                                GATEWAY: _anyone}, "post demands")

    def post_again(self, who: Principal, demand: Demand, resident: ResidentRecord) -> Principal:
        """A retried PostDemand (same idempotency key) returns the demand to whoever could have posted it."""
        return allowed_as(who, {RESIDENT: self._own(demand.resident_id),
                                **self._workers(demand.community_id, "this demand"),
                                GATEWAY: self._registered_by_gateway(resident)}, "post demands")

    def resident(self, who: Principal, resident: ResidentRecord) -> Principal:
        """The resident record itself must be the caller's, of the worker's community, or one the gateway
        registered (the post's community must then be the record's: the use case checks that)."""
        return allowed_as(who, {RESIDENT: self._own(resident.resident_id),
                                **self._workers(resident.community_id, "a resident of this community"),
                                GATEWAY: self._registered_by_gateway(resident)}, "act for residents")

    # ---- WithdrawDemand, ConfirmCompletion, RateService, RequestRedo --------------------------------------
    def act_on(self, who: Principal, demand: Demand) -> Principal:
        """resident: their own demand; grid_worker, branch_secretary: a demand of their community;
        hotline_operator: a demand of their county or town."""
        return allowed_as(who, {RESIDENT: self._own(demand.resident_id),
                                **self._workers(demand.community_id, "this demand")}, "act on demands")

    @staticmethod
    def on_behalf_of(who: Principal, resident_id: str) -> str | None:
        """The resident a worker, hotline operator, secretary or the gateway acts for (recorded beside what they
        did); None for anyone else. `who`: the caller as the role a check allowed."""
        return resident_id if not who.is_system and who.acting_role in (*WORKERS, GATEWAY) else None

    # ---- GetDemand, GetDemandHistory ----------------------------------------------------------------------
    def _read_rules(self, demand: Demand) -> dict[str, Rule]:
        def holder(who: Principal) -> None:
            if not demand.held_by(who.member_id):
                raise PermissionDenied("a member may read only a demand they hold")

        at = self._at(demand.community_id, grid_id=demand.grid_id, what="this demand")
        return {RESIDENT: self._own(demand.resident_id), GRID_WORKER: at, HOTLINE: at, MEMBER: holder,
                GRID_LEADER: at, SECRETARY: at, TOWN_OFFICE: at, COUNTY_OFFICE: at}

    def read(self, who: Principal, demand: Demand) -> Principal:
        """resident: their own; member: a demand they hold; grid_leader: their grid; grid_worker,
        branch_secretary: their community; hotline_operator, town_office, county_office: their town or county."""
        return allowed_as(who, self._read_rules(demand), "read demands")

    def history(self, who: Principal, demand: Demand) -> Principal:
        """resident: their own demand; branch_secretary, town_office, county_office: their community, town or
        county."""
        at = self._at(demand.community_id, what="this demand")
        return allowed_as(who, {RESIDENT: self._own(demand.resident_id), SECRETARY: at, TOWN_OFFICE: at,
                                COUNTY_OFFICE: at}, "read a demand's history")

    def list_demands(self, who: Principal, resident: ResidentRecord) -> Principal:
        """ListResidentDemands. resident: their own; grid_worker, branch_secretary: a resident of their community;
        hotline_operator: of their county or town; acting for them (helping a caller find their requests)."""
        return allowed_as(who, {RESIDENT: self._own(resident.resident_id),
                                **self._workers(resident.community_id, "a resident of this community")},
                          "list a resident's demands")

    # ---- GetServiceContact, GetDemandContact --------------------------------------------------------------
    def service_contact(self, who: Principal, demand: Demand, member_id: str | None) -> Principal:
        """member: as themselves (`member_id` is theirs), a demand they hold (one held by another member is out
        of scope; one nobody holds is refused by the demand's state); branch_secretary: their community."""

        def holder(as_member: Principal) -> None:
            Scopes.member(as_member, member_id or "")
            if demand.is_held and not demand.held_by(member_id):
                raise PermissionDenied("a member gets the contact only of a demand they hold")

        def secretary(as_secretary: Principal) -> None:
            if member_id:
                Scopes.member(as_secretary, member_id)
            self.scopes.place(as_secretary, demand.community_id, what="this demand")

        return allowed_as(who, {MEMBER: holder, SECRETARY: secretary}, "read a resident's contact")

    @staticmethod
    def demand_contact(who: Principal) -> Principal:
        """notify's service identity, to deliver to residents."""
        return allowed_as(who, {NOTIFY: _anyone}, "read a resident's contact for delivery")

    # ---- CorrectResident, ExportResidentData, EraseResident ------------------------------------------------
    def correct(self, who: Principal, resident: ResidentRecord) -> Principal:
        """resident: their own record; grid_worker, branch_secretary: a resident of their community;
        hotline_operator: of their county or town."""
        return allowed_as(who, {RESIDENT: self._own(resident.resident_id),
                                **self._workers(resident.community_id, "a resident of this community")},
                          "correct a resident's record")

    def export(self, who: Principal, resident: ResidentRecord) -> Principal:
        """resident: themselves; branch_secretary: a resident of their community."""
        return self._own_or_secretary(who, resident, "export a resident's data")

    def erase(self, who: Principal, resident: ResidentRecord) -> Principal:
        """resident: themselves; branch_secretary: a resident of their community."""
        return self._own_or_secretary(who, resident, "erase a resident's data")

    def _own_or_secretary(self, who: Principal, resident: ResidentRecord, what: str) -> Principal:
        return allowed_as(who, {RESIDENT: self._own(resident.resident_id),
                                SECRETARY: self._at(resident.community_id, what="a resident of this community")},
                          what)

    # ---- care tags: sensitive personal information (PIPL art. 28) --------------------------------------------
    def sees_care_tags(self, who: Principal, demand: Demand) -> bool:
        """Who, among those GetDemand lets read a demand, sees its care tags: the resident themselves and their
        community's grid workers and secretary (who act for them), under any of their roles that reaches the
        demand. Members, grid leaders, offices and hotline operators (who reach a whole town or county, and act
        for a caller on what the caller tells them) see only whether special care is needed."""
        rules = {role: rule for role, rule in self._read_rules(demand).items()
                 if role in (RESIDENT, GRID_WORKER, SECRETARY)}
        try:
            allowed_as(who, rules, "see care tags")
        except PermissionDenied:
            return False
        return True
