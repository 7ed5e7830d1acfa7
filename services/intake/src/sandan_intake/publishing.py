"""Stored domain events -> published contract events on intake.demands.v1 (used by the outbox relay).

Only what receivers need, by opaque id: never the description, the other text, the rating comment, the care
tags (sensitive personal information: only `special_care`, whether any was given; `care_tags` goes out empty), or
anything from the residents' table. A demand's shredded texts (retention, or its resident's erasure) go out as
DemandTextsShredded, by demand id only (never the resident's, nor which fields were held), so the other services
forget their copies; no consumer counts it, so every consumer's state (scoring's digest) stays what it was. The
menu, the records of dispatch's own facts, of contact releases and the residents' registrations, corrections,
exports and erasures stay internal (None).

Stored events hold the texts sealed; nothing here opens them (whether a comment was given is whether one is held).
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from sandan_contracts import Event
from sandan_contracts.events import (
    CompletionConfirmed,
    DemandPosted,
    DemandTextsShredded,
    DemandWithdrawn,
    RedoRequested,
    ServiceRated,
)
from sandan_intake.domain import ERASURE, Demand


def to_contract(domain_event: Any) -> Event | None:
    if isinstance(domain_event, Demand.ContactReleased):
        return None  # who got a resident's contact is audit, never published
    demand_id = str(domain_event.originator_id)
    if isinstance(domain_event, Demand.Posted):
        return DemandPosted(
            demand_id=demand_id,
            community_id=domain_event.community_id,
            grid_id=domain_event.grid_id,
            category=domain_event.category,
            menu_item_id=domain_event.menu_item_id,
            urgency=domain_event.urgency,
            care_tags=[],  # deprecated on the topic (contracts/README.md): the tags stay in intake, sealed
            special_care=domain_event.special_care,
            channel=domain_event.channel,
            due_at=domain_event.due_at.astimezone(UTC),
            deadline_seconds=domain_event.deadline_seconds,
        )
    if isinstance(domain_event, Demand.Withdrawn):
        return DemandWithdrawn(demand_id=demand_id, reason=domain_event.reason)
    if isinstance(domain_event, Demand.RedoRequested):
        return RedoRequested(demand_id=demand_id, redo_count=domain_event.redo_count,
                             member_id=domain_event.previous_member_id)
    if isinstance(domain_event, Demand.CompletionConfirmed):
        return CompletionConfirmed(demand_id=demand_id, member_id=domain_event.member_id)
    if isinstance(domain_event, Demand.TextsShredded):
        # recorded as "retention" or "erasure" (records from before erasure recorded it are all "retention")
        return DemandTextsShredded(demand_id=demand_id,
                                   cause="erasure" if domain_event.reason == ERASURE else "retention")
    if isinstance(domain_event, Demand.Rated):
        return ServiceRated(demand_id=demand_id, member_id=domain_event.member_id, stars=domain_event.stars,
                            has_comment=bool(domain_event.comment))
    return None
