from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RecipientRef(_message.Message):
    __slots__ = ("recipient_kind", "recipient_id")
    RECIPIENT_KIND_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_ID_FIELD_NUMBER: _ClassVar[int]
    recipient_kind: str
    recipient_id: str
    def __init__(self, recipient_kind: _Optional[str] = ..., recipient_id: _Optional[str] = ...) -> None: ...

class Preferences(_message.Message):
    __slots__ = ("recipient", "channels", "quiet_start", "quiet_end", "opt_out_non_essential", "language", "is_default")
    RECIPIENT_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    QUIET_START_FIELD_NUMBER: _ClassVar[int]
    QUIET_END_FIELD_NUMBER: _ClassVar[int]
    OPT_OUT_NON_ESSENTIAL_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    IS_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    recipient: RecipientRef
    channels: _containers.RepeatedScalarFieldContainer[str]
    quiet_start: str
    quiet_end: str
    opt_out_non_essential: bool
    language: str
    is_default: bool
    def __init__(self, recipient: _Optional[_Union[RecipientRef, _Mapping]] = ..., channels: _Optional[_Iterable[str]] = ..., quiet_start: _Optional[str] = ..., quiet_end: _Optional[str] = ..., opt_out_non_essential: _Optional[bool] = ..., language: _Optional[str] = ..., is_default: _Optional[bool] = ...) -> None: ...

class ListDeliveriesRequest(_message.Message):
    __slots__ = ("recipient_kind", "recipient_id", "source_event_id", "status", "channel", "limit")
    RECIPIENT_KIND_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    recipient_kind: str
    recipient_id: str
    source_event_id: str
    status: str
    channel: str
    limit: int
    def __init__(self, recipient_kind: _Optional[str] = ..., recipient_id: _Optional[str] = ..., source_event_id: _Optional[str] = ..., status: _Optional[str] = ..., channel: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class Delivery(_message.Message):
    __slots__ = ("notification_id", "source_event_id", "source_type", "recipient_kind", "recipient_id", "channel", "template", "status", "attempts", "last_error", "planned_at", "next_attempt_at", "finished_at", "urgent")
    NOTIFICATION_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_KIND_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    PLANNED_AT_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    URGENT_FIELD_NUMBER: _ClassVar[int]
    notification_id: str
    source_event_id: str
    source_type: str
    recipient_kind: str
    recipient_id: str
    channel: str
    template: str
    status: str
    attempts: int
    last_error: str
    planned_at: str
    next_attempt_at: str
    finished_at: str
    urgent: bool
    def __init__(self, notification_id: _Optional[str] = ..., source_event_id: _Optional[str] = ..., source_type: _Optional[str] = ..., recipient_kind: _Optional[str] = ..., recipient_id: _Optional[str] = ..., channel: _Optional[str] = ..., template: _Optional[str] = ..., status: _Optional[str] = ..., attempts: _Optional[int] = ..., last_error: _Optional[str] = ..., planned_at: _Optional[str] = ..., next_attempt_at: _Optional[str] = ..., finished_at: _Optional[str] = ..., urgent: _Optional[bool] = ...) -> None: ...

class Deliveries(_message.Message):
    __slots__ = ("deliveries",)
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    deliveries: _containers.RepeatedCompositeFieldContainer[Delivery]
    def __init__(self, deliveries: _Optional[_Iterable[_Union[Delivery, _Mapping]]] = ...) -> None: ...

class ListDeadLettersRequest(_message.Message):
    __slots__ = ("recipient_kind", "recipient_id", "limit")
    RECIPIENT_KIND_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    recipient_kind: str
    recipient_id: str
    limit: int
    def __init__(self, recipient_kind: _Optional[str] = ..., recipient_id: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class DeadLetter(_message.Message):
    __slots__ = ("notice_id", "notification_id", "source_event_id", "recipient_kind", "recipient_id", "channel", "template", "error", "attempts", "recorded_at")
    NOTICE_ID_FIELD_NUMBER: _ClassVar[int]
    NOTIFICATION_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_KIND_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AT_FIELD_NUMBER: _ClassVar[int]
    notice_id: str
    notification_id: str
    source_event_id: str
    recipient_kind: str
    recipient_id: str
    channel: str
    template: str
    error: str
    attempts: int
    recorded_at: str
    def __init__(self, notice_id: _Optional[str] = ..., notification_id: _Optional[str] = ..., source_event_id: _Optional[str] = ..., recipient_kind: _Optional[str] = ..., recipient_id: _Optional[str] = ..., channel: _Optional[str] = ..., template: _Optional[str] = ..., error: _Optional[str] = ..., attempts: _Optional[int] = ..., recorded_at: _Optional[str] = ...) -> None: ...

class DeadLetters(_message.Message):
    __slots__ = ("dead_letters",)
    DEAD_LETTERS_FIELD_NUMBER: _ClassVar[int]
    dead_letters: _containers.RepeatedCompositeFieldContainer[DeadLetter]
    def __init__(self, dead_letters: _Optional[_Iterable[_Union[DeadLetter, _Mapping]]] = ...) -> None: ...
