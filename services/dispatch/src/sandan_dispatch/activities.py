"""Themed party days (主题党日): a unit brings an activity to its community, residents sign up, members check in.
Who may do each (access.toml): the unit's admin or the community's secretary schedule and complete; a resident
signs up themselves, a grid worker or the secretary signs up a resident at their community's activity (recorded as
acting for that resident); a member checks in themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from uuid import UUID

from sandan_dispatch.base import DispatchBase
from sandan_dispatch.domain import MAX_ACTIVITY_HOURS, Activity, Member, Unit
from sandan_dispatch.scope import anyone
from sandan_eventbus.auth.principal import Principal, acting_for
from sandan_eventbus.checks import check_code, check_id, check_text, check_utc, check_uuid
from sandan_eventbus.errors import AlreadyExists, InvalidArgument

RESIDENT = "a resident id (a uuid issued by intake)"
LIST_LIMIT, MAX_LIST_LIMIT = 50, 200


class Activities(DispatchBase):
    def schedule_activity(self, activity_id: str, unit_id: str, community_id: str, theme: str, title: str,
                          starts_at: datetime, ends_at: datetime, capacity: int) -> Activity:
        """A unit schedules an activity in the community it reported to. Scheduling the same activity id
        again with the same terms is a retry; with other terms it is refused."""
        check_id("activity_id", activity_id)
        check_id("unit_id", unit_id)
        check_id("community_id", community_id)
        check_code("theme", theme)
        title = check_text("title", title, 1, 100)
        starts_at, ends_at = check_utc("starts_at", starts_at), check_utc("ends_at", ends_at)
        Activity.check_terms(title, starts_at, ends_at, capacity)
        place = self.guard.at(community_id, unit_id=unit_id)
        with self.guard.acting(f"schedule activities of unit {unit_id} in community {community_id}",
                               unit_admin=place, branch_secretary=place):
            unit = self._get(Unit, Unit.create_id(unit_id), f"unit {unit_id} has not reported")

            def command() -> Activity:
                existing = self._maybe(Activity, Activity.create_id(activity_id))
                if existing is not None:
                    if not existing.same_terms(unit_id, community_id, theme, title, starts_at, ends_at, capacity):
                        raise AlreadyExists(f"activity {activity_id} is already scheduled with other terms")
                    return existing
                activity = Activity.schedule(activity_id, unit, community_id, theme, title, starts_at, ends_at,
                                             capacity)
                self.save(activity)
                return activity

            return self.retrying(command)

    def activity(self, activity_id: str) -> Activity:
        activity = self._activity(activity_id)
        place = self.guard.at(activity.community_id, unit_id=activity.unit_id)
        self.guard.require(f"read activity {activity_id}", resident=anyone, member=anyone, grid_worker=place,
                           grid_leader=place, branch_secretary=place, unit_admin=place, town_office=place,
                           county_office=place)
        return activity

    def activities(self, community_id: str, unit_id: str = "", upcoming_only: bool = False,
                   limit: int = 0) -> list[Activity]:
        """A community's themed party days (of one unit when `unit_id` is given), soonest first; `upcoming_only`:
        the scheduled ones that have not ended. Residents and members see their own community's (the one their
        token or roster record names), unit admins their unit's, the others their community, town or county;
        another community is refused."""
        check_id("community_id", community_id)
        if unit_id:
            check_id("unit_id", unit_id)
        if not 0 <= limit <= MAX_LIST_LIMIT:
            raise InvalidArgument("limit", f"must be 1-{MAX_LIST_LIMIT} (or 0 for {LIST_LIMIT})")
        place = self.guard.at(community_id)

        def lives_here(who: Principal) -> bool:
            if who.community_id:
                return who.community_id == community_id
            me = self._maybe(Member, Member.create_id(who.member_id)) if who.member_id else None
            return me is not None and me.community_id == community_id

        self.guard.require(f"list the activities of community {community_id}", resident=lives_here,
                           member=lives_here, grid_worker=place, grid_leader=place, branch_secretary=place,
                           unit_admin=self.guard.at(community_id, unit_id=unit_id or None), town_office=place,
                           county_office=place)
        self.board.catch_up(self)
        found = self.board.activities_of(community_id, unit_id, self.clock() if upcoming_only else None)
        return [self.repository.get(UUID(oid)) for oid in found[:limit or LIST_LIMIT]]

    def sign_up_resident(self, activity_id: str, resident_id: str) -> Activity:
        """A resident signs up; signing up again changes nothing. Resident ids are the uuids intake issues, never
        a member's id (a member id that happens to be a uuid is recognised by the roster)."""
        resident_id = str(check_uuid("resident_id", resident_id, RESIDENT))  # one spelling: intake's
        if self._maybe(Member, Member.create_id(resident_id)) is not None:
            raise InvalidArgument("resident_id", f"is a member's id, not {RESIDENT}")

        @contextmanager
        def scope(activity: Activity) -> Iterator[None]:
            # Residents are intake's: dispatch knows no resident's community, so a worker's reach is the
            # activity's community, and the record names the resident they acted for.
            place = self.guard.at(activity.community_id)
            with self.guard.acting(f"sign up resident {resident_id} for activity {activity_id}",
                                   resident=self.guard.resident(resident_id), grid_worker=place,
                                   branch_secretary=place) as who:
                worker = who.acting_role in ("grid_worker", "branch_secretary")
                with acting_for(resident_id if worker else None):
                    yield

        return self._on_activity(activity_id, scope, lambda a: a.sign_up(resident_id))

    def check_in_member(self, activity_id: str, member_id: str) -> Activity:
        """A member of the activity's community checks in; checking in again changes nothing."""
        check_id("member_id", member_id)
        return self._on_activity(activity_id, lambda a: self.guard.acting(
            f"check member {member_id} in at activity {activity_id}", member=self.guard.themselves(member_id),
            unit_admin=self.guard.at(a.community_id, unit_id=a.unit_id),
            branch_secretary=self.guard.at(a.community_id)),
            lambda a: a.check_in(self._member(member_id)))

    def complete_activity(self, activity_id: str, hours: float) -> Activity:
        if not 0 < hours <= MAX_ACTIVITY_HOURS:  # before the state: such a request could never succeed
            raise InvalidArgument("hours", f"must be more than 0 and at most {MAX_ACTIVITY_HOURS:g}")
        return self._on_activity(activity_id, lambda a: self.guard.acting(
            f"complete activity {activity_id}", unit_admin=self.guard.at(a.community_id, unit_id=a.unit_id),
            branch_secretary=self.guard.at(a.community_id)),
            lambda a: a.complete(hours))
