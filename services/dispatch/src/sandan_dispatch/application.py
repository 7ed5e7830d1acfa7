"""dispatch's use cases: what the branch, the grid leaders, the members, the units and the offices can do, and how
dispatch reacts to residents' demands read from intake. No Kafka, SQL or gRPC here: those are at the edges.

One event-sourced application (one store, one notification log, one relay), written as three contexts:
`roster.py` (units, members, grid groups, contacts for notify), `activities.py` (themed party days) and
`orders.py` (orders, deadlines, the intake policy). Every use case checks the caller's scope itself
(`scope.py`), before anything is decided or saved.
"""

from __future__ import annotations

from sandan_dispatch.activities import RESIDENT, Activities
from sandan_dispatch.base import utcnow
from sandan_dispatch.domain import Activity
from sandan_dispatch.orders import DISPATCHERS, STATUSES, Orders
from sandan_dispatch.roster import MemberContactCard, Roster, UnitContactCard

__all__ = ["DISPATCHERS", "RESIDENT", "STATUSES", "DispatchApplication", "MemberContactCard", "UnitContactCard",
           "utcnow"]


class DispatchApplication(Roster, Activities, Orders):
    name = "dispatch"
    # An activity collects up to 10,000 sign-ups; a snapshot every 100 events keeps loading it cheap.
    snapshotting_intervals = {Activity: 100}
