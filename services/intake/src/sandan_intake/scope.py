"""Who may act on what in intake: the scope half of access.toml's rows for sandan.intake.v1.Intake.

The interceptor has already allowed the caller's role for the method; these checks say whether *this* caller
may act on *this* resident, demand or menu. The use cases call them with `current()` before deciding or saving
anything, so a refusal (`PermissionDenied`, PERMISSION_DENIED at the edge) changes nothing. Internal work
(`SYSTEM`: consumers, tests of the use cases) passes every check. Each check also names the roles its scope text
speaks of, so a use case called under any other role (not through the interceptor) is refused too.
"""

from __future__ import annotations

import uuid

from sandan_eventbus.auth.principal import PermissionDenied, Principal
from sandan_eventbus.auth.scopes import Places, Scopes
from sandan_intake.domain import Demand
from sandan_intake.residents import ResidentRecord

RESIDENT, GRID_WORKER, MEMBER, GRID_LEADER = "resident", "grid_worker", "member", "grid_leader"
SECRETARY, TOWN_OFFICE, COUNTY_OFFICE, NOTIFY = "branch_secretary", "town_office", "county_office", "service_notify"
# The HTTP edge posting for a partner system (Open311): it has checked the partner's API key and the community the
# key is bound to, so intake trusts it with any community; it acts for the resident it registers, like a worker.
GATEWAY = "service_gateway"
# Act for residents of their community (who may have no account); what they do is recorded on the resident's behalf.
WORKERS = (GRID_WORKER, SECRETARY)
OFFICES = (TOWN_OFFICE, COUNTY_OFFICE)


def _only(who: Principal, roles: tuple[str, ...], what: str) -> None:
    if not who.is_system and who.acting_role not in roles:
        raise PermissionDenied(f"{who.acting_role or 'caller'} may not {what}")


class IntakeScope:
    def __init__(self, places: Places | None = None) -> None:
        self.scopes = Scopes(places)

    # ---- RegisterResident, PublishMenuItem, RetireMenuItem -----------------------------------------------
    def menu(self, who: Principal, community_id: str) -> None:
        """branch_secretary: their community's menu."""
        _only(who, (SECRETARY,), "keep a menu")
        self.scopes.place(who, community_id, what="this community's menu")

    def register(self, who: Principal, community_id: str) -> None:
        """grid_worker, branch_secretary: a new resident of their community (a resident registers themselves:
        `own_resident_id`)."""
        if not who.is_system and who.acting_role == GATEWAY:
            return
        _only(who, WORKERS, "register residents")
        self.scopes.place(who, community_id, what="residents of this community")

    @staticmethod
    def own_resident_id(who: Principal) -> str:
        """The resident record a resident's account is bound to (a uuid, like every resident id intake holds)."""
        try:
            return str(uuid.UUID(who.resident_id or ""))
        except ValueError:
            raise PermissionDenied("this account is bound to no resident id intake can hold") from None

    # ---- PostDemand ---------------------------------------------------------------------------------------
    def post(self, who: Principal, resident_id: str, community_id: str) -> None:
        """Before anything is read: a resident their own id; a worker or secretary their community."""
        if who.is_system:
            return
        if who.acting_role == RESIDENT:
            Scopes.resident(who, resident_id)
            return
        if who.acting_role == GATEWAY:
            return
        _only(who, WORKERS, "post demands")
        self.scopes.place(who, community_id, what="a resident of this community")

    def post_again(self, who: Principal, demand: Demand) -> None:
        """A retried PostDemand (same idempotency key) returns the demand to whoever could have posted it."""
        if who.is_system or who.acting_role == GATEWAY:
            return
        self.act_on(who, demand)

    def resident(self, who: Principal, resident: ResidentRecord) -> None:
        """The resident record itself must be the caller's, or of the worker's community."""
        if who.is_system:
            return
        if who.acting_role == RESIDENT:
            Scopes.resident(who, resident.resident_id)
            return
        if who.acting_role == GATEWAY:
            return
        _only(who, WORKERS, "act for residents")
        self.scopes.place(who, resident.community_id, what="a resident of this community")

    # ---- WithdrawDemand, ConfirmCompletion, RateService, RequestRedo --------------------------------------
    def act_on(self, who: Principal, demand: Demand) -> None:
        """resident: their own demand; grid_worker, branch_secretary: a demand of their community."""
        if who.is_system:
            return
        if who.acting_role == RESIDENT:
            Scopes.resident(who, demand.resident_id)
            return
        _only(who, WORKERS, "act on demands")
        self.scopes.place(who, demand.community_id, what="this demand")

    @staticmethod
    def on_behalf_of(who: Principal, resident_id: str) -> str | None:
        """The resident a worker or secretary acts for (recorded beside what they did); None for anyone else."""
        return resident_id if not who.is_system and who.acting_role in (*WORKERS, GATEWAY) else None

    # ---- GetDemand, GetDemandHistory ----------------------------------------------------------------------
    def read(self, who: Principal, demand: Demand) -> None:
        """resident: their own; member: a demand they hold; grid_leader: their grid; grid_worker,
        branch_secretary: their community; town_office, county_office: their town or county."""
        if who.is_system:
            return
        role = who.acting_role
        if role == RESIDENT:
            Scopes.resident(who, demand.resident_id)
        elif role == MEMBER:
            if not demand.held_by(who.member_id):
                raise PermissionDenied("a member may read only a demand they hold")
        else:
            _only(who, (GRID_LEADER, *WORKERS, *OFFICES), "read demands")
            self.scopes.place(who, demand.community_id, grid_id=demand.grid_id, what="this demand")

    def history(self, who: Principal, demand: Demand) -> None:
        """resident: their own demand; branch_secretary, town_office, county_office: their community, town or
        county."""
        if who.is_system:
            return
        if who.acting_role == RESIDENT:
            Scopes.resident(who, demand.resident_id)
            return
        _only(who, (SECRETARY, *OFFICES), "read a demand's history")
        self.scopes.place(who, demand.community_id, what="this demand")

    # ---- GetServiceContact, GetDemandContact --------------------------------------------------------------
    def service_contact(self, who: Principal, demand: Demand, member_id: str | None) -> None:
        """member: as themselves (`member_id` is theirs), a demand they hold (one held by another member is out
        of scope; one nobody holds is refused by the demand's state); branch_secretary: their community."""
        if who.is_system:
            return
        if who.acting_role == MEMBER:
            Scopes.member(who, member_id or "")
            if demand.is_held and not demand.held_by(member_id):
                raise PermissionDenied("a member gets the contact only of a demand they hold")
            return
        _only(who, (SECRETARY,), "read a resident's contact")
        if member_id:
            Scopes.member(who, member_id)
        self.scopes.place(who, demand.community_id, what="this demand")

    @staticmethod
    def demand_contact(who: Principal) -> None:
        """notify's service identity, to deliver to residents."""
        _only(who, (NOTIFY,), "read a resident's contact for delivery")

    # ---- CorrectResident, ExportResidentData, EraseResident ------------------------------------------------
    def correct(self, who: Principal, resident: ResidentRecord) -> None:
        """resident: their own record; grid_worker, branch_secretary: a resident of their community."""
        if who.is_system:
            return
        if who.acting_role == RESIDENT:
            Scopes.resident(who, resident.resident_id)
            return
        _only(who, WORKERS, "correct a resident's record")
        self.scopes.place(who, resident.community_id, what="a resident of this community")

    def export(self, who: Principal, resident: ResidentRecord) -> None:
        """resident: themselves; branch_secretary: a resident of their community."""
        self._own_or_secretary(who, resident, "export a resident's data")

    def erase(self, who: Principal, resident: ResidentRecord) -> None:
        """resident: themselves; branch_secretary: a resident of their community."""
        self._own_or_secretary(who, resident, "erase a resident's data")

    def _own_or_secretary(self, who: Principal, resident: ResidentRecord, what: str) -> None:
        if who.is_system:
            return
        if who.acting_role == RESIDENT:
            Scopes.resident(who, resident.resident_id)
            return
        _only(who, (SECRETARY,), what)
        self.scopes.place(who, resident.community_id, what="a resident of this community")

    # ---- care tags: sensitive personal information (PIPL art. 28) --------------------------------------------
    @staticmethod
    def sees_care_tags(who: Principal) -> bool:
        """Who, among those GetDemand lets read a demand, sees its care tags: the resident themselves and their
        community's grid workers and secretary (who act for them). Members, grid leaders and offices see only
        whether special care is needed."""
        return who.is_system or who.acting_role in (RESIDENT, *WORKERS)
