"""Who may act where in dispatch: the scope half of each row of access.toml, as one rule per role.

The interceptor has already let the call in by role. Each use case then names, for every role of its method's
row, what the caller's place or record must match (an order's community and grid, a member's unit, their own
member id...). A rule is checked before anything is decided or saved, so a refusal changes nothing. Roles a use
case does not name are refused (default deny, like the matrix).

A person may hold several roles of a row (a grid leader is a member too): the call acts under the role the
interceptor chose if its rule holds, else under the first other role of theirs whose rule does, and the events the
call stores record that role. Internal work (`SYSTEM`: the inbox, the deadline sweep, tests of the use cases)
passes every rule.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sandan_dispatch.domain import Member, Order
from sandan_eventbus.auth.principal import Principal, acting_as, current
from sandan_eventbus.auth.scopes import Places, Scopes
from sandan_eventbus.errors import PermissionDenied

Rule = Callable[[Principal], bool]


@dataclass(frozen=True)
class Explained:
    """A rule that can say why it refused a caller: the refusal's message then tells them what to fix (a
    missing claim is not the same mistake as asking for another community)."""

    holds: Rule
    why: Callable[[Principal], str]

    def __call__(self, who: Principal) -> bool:
        return self.holds(who)


def anyone(_: Principal) -> bool:
    """No place to match: everyone holding the role (activities are announced; notify reads every contact)."""
    return True


def _same_uuid(a: str | None, b: str) -> bool:
    try:
        return a is not None and uuid.UUID(a) == uuid.UUID(b)
    except ValueError:
        return False


class Guard:
    def __init__(self, places: Places | None = None) -> None:
        self.scopes = Scopes(places)

    # ---- rules ------------------------------------------------------------------------------------------
    def at(self, community_id: str, grid_id: str | None = None, unit_id: str | None = None) -> Rule:
        """The caller's place reaches this one: a secretary's or grid worker's community, a grid leader's grid
        (their community when `grid_id` is None), a unit admin's unit, a town office's town, the county."""
        return lambda who: self.scopes.covers(who, community_id, grid_id, unit_id)

    @staticmethod
    def themselves(member_id: str) -> Rule:
        """A member acts only as the member record their token is bound to."""
        return lambda who: bool(who.member_id) and who.member_id == member_id

    @staticmethod
    def reporting(member_id: str, community_id: str, grid_id: str) -> Explained:
        """A member reports only themselves, and only into the community their token names (and its grid, when
        the token names one): a token with no community places them nowhere, so it may report them nowhere."""

        def holds(who: Principal) -> bool:
            return (bool(who.member_id) and who.member_id == member_id and bool(who.community_id)
                    and who.community_id == community_id and (not who.grid_id or who.grid_id == grid_id))

        def why(who: Principal) -> str:
            if not who.member_id or who.member_id != member_id:
                return "a member reports only themselves"
            if not who.community_id:
                return "their token names no community (community_id), so they may report into none"
            if who.community_id != community_id:
                return f"their token names community {who.community_id}"
            return f"their token names grid {who.grid_id}"

        return Explained(holds, why)

    @staticmethod
    def claimant(member_id: str, order: Order, member: Member | None) -> Rule:
        """A member accepts as themselves, and only an order dispatched to them or offered to their grid or
        teams; an order already taken or closed is the order's own refusal (FAILED_PRECONDITION: two claims
        raced, one won)."""

        def rule(who: Principal) -> bool:
            if not (who.member_id and who.member_id == member_id):
                return False
            if order.status == "dispatched":
                return order.member_id == member_id
            if order.status == "offered":
                return member is not None and order.may_be_claimed_by(member)
            return True

        return rule

    @staticmethod
    def resident(resident_id: str) -> Rule:
        """A resident acts only for the resident record their token is bound to."""
        return lambda who: _same_uuid(who.resident_id, resident_id)

    # ---- checks -----------------------------------------------------------------------------------------
    @staticmethod
    def allowed(**rules: Rule) -> Principal | None:
        """The caller, as the role whose rule holds (see the module's note), or None when none does."""
        who = current()
        if who.is_system:
            return who
        for role in dict.fromkeys((who.acting_role, *rules)):
            rule = rules.get(role)
            if rule is None or role not in who.roles:
                continue
            as_role = who if role == who.acting_role else who.as_role(role)
            if rule(as_role):
                return as_role
        return None

    def require(self, what: str, **rules: Rule) -> Principal:
        """The caller as the role they act under here, or PermissionDenied naming what they may not do."""
        who = self.allowed(**rules)
        if who is None:
            caller = current()
            reasons = [rule.why(caller if role == caller.acting_role else caller.as_role(role))
                       for role in dict.fromkeys((caller.acting_role, *rules))
                       if role in caller.roles and isinstance(rule := rules.get(role), Explained)]
            why = f" ({reasons[0]})" if reasons else ""
            raise PermissionDenied(f"{caller.acting_role or 'caller'} may not {what}: outside their scope{why}")
        return who

    @contextmanager
    def acting(self, what: str, **rules: Rule) -> Iterator[Principal]:
        """`require`, then run the block as that role, so the events it stores record the role that allowed it."""
        who = self.require(what, **rules)
        with acting_as(who):
            yield who
