"""Stored notice events -> published contract events on notify.deliveries.v1 (used by the outbox relay).

Only the outcome per notification: NotificationSent, NotificationFailed (a channel given up). Planning, held
messages and single failed attempts stay internal (they are in the delivery log). No address, no text.
"""

from __future__ import annotations

from typing import Any

from sandan_contracts import Event
from sandan_contracts.events import NotificationFailed, NotificationSent
from sandan_notify.domain import Notice


def to_contract(domain_event: Any) -> Event | None:
    if isinstance(domain_event, Notice.Sent | Notice.ChannelFailed):
        fields = {
            "notification_id": domain_event.notification_id, "source_event_id": domain_event.source_event_id,
            "recipient_kind": domain_event.recipient_kind, "recipient_id": domain_event.recipient_id,
            "channel": domain_event.channel, "template": domain_event.template,
            "attempts": min(domain_event.attempts, 100),
        }
        if isinstance(domain_event, Notice.Sent):
            return NotificationSent(**fields)
        return NotificationFailed(**fields, error=domain_event.error)
    return None
