"""Facts published by notify on `notify.deliveries.v1`, keyed by notification_id.

A notification is one (source event, recipient, channel); its id is derived from those three, so a
redelivered source event maps to the same notification. No contact detail (address, phone, e-mail) is here.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from sandan_contracts.events.base import Code, Event, Id, Ref

DELIVERIES = "notify.deliveries.v1"
RecipientKind = Literal["resident", "member", "branch", "town", "county", "unit"]
ChannelName = Literal["email", "webhook", "sms", "wechat", "console"]


class _DeliveryEvent(Event):
    TOPIC: ClassVar[str] = DELIVERIES
    KEY: ClassVar[str] = "notification_id"
    notification_id: Ref
    source_event_id: Ref
    recipient_kind: RecipientKind
    recipient_id: Id
    channel: ChannelName
    template: Code
    attempts: int = Field(ge=1, le=100)


class NotificationSent(_DeliveryEvent):
    TYPE: ClassVar[str] = "NotificationSent"


class NotificationFailed(_DeliveryEvent):
    TYPE: ClassVar[str] = "NotificationFailed"
    error: Code  # a classification (e.g. http_503, smtp_refused, timeout), never the message text
