from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DeadLetterRef(_message.Message):
    __slots__ = ("topic", "partition", "offset")
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    topic: str
    partition: int
    offset: int
    def __init__(self, topic: _Optional[str] = ..., partition: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class RedriveAttempt(_message.Message):
    __slots__ = ("at", "operator", "reason", "outcome", "detail", "dead_letter")
    AT_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTER_FIELD_NUMBER: _ClassVar[int]
    at: str
    operator: str
    reason: str
    outcome: str
    detail: str
    dead_letter: DeadLetterRef
    def __init__(self, at: _Optional[str] = ..., operator: _Optional[str] = ..., reason: _Optional[str] = ..., outcome: _Optional[str] = ..., detail: _Optional[str] = ..., dead_letter: _Optional[_Union[DeadLetterRef, _Mapping]] = ...) -> None: ...

class DeadLetter(_message.Message):
    __slots__ = ("ref", "source_topic", "source_partition", "source_offset", "consumer_group", "error", "dead_lettered_at", "key", "event_type", "event_id", "size", "truncated", "status", "attempts", "payload")
    REF_FIELD_NUMBER: _ClassVar[int]
    SOURCE_TOPIC_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PARTITION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_OFFSET_FIELD_NUMBER: _ClassVar[int]
    CONSUMER_GROUP_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTERED_AT_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    ref: DeadLetterRef
    source_topic: str
    source_partition: int
    source_offset: int
    consumer_group: str
    error: str
    dead_lettered_at: str
    key: str
    event_type: str
    event_id: str
    size: int
    truncated: bool
    status: str
    attempts: _containers.RepeatedCompositeFieldContainer[RedriveAttempt]
    payload: bytes
    def __init__(self, ref: _Optional[_Union[DeadLetterRef, _Mapping]] = ..., source_topic: _Optional[str] = ..., source_partition: _Optional[int] = ..., source_offset: _Optional[int] = ..., consumer_group: _Optional[str] = ..., error: _Optional[str] = ..., dead_lettered_at: _Optional[str] = ..., key: _Optional[str] = ..., event_type: _Optional[str] = ..., event_id: _Optional[str] = ..., size: _Optional[int] = ..., truncated: _Optional[bool] = ..., status: _Optional[str] = ..., attempts: _Optional[_Iterable[_Union[RedriveAttempt, _Mapping]]] = ..., payload: _Optional[bytes] = ...) -> None: ...

class ListDeadLettersRequest(_message.Message):
    __slots__ = ("source_topic", "include_applied", "limit")
    SOURCE_TOPIC_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_APPLIED_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    source_topic: str
    include_applied: bool
    limit: int
    def __init__(self, source_topic: _Optional[str] = ..., include_applied: _Optional[bool] = ..., limit: _Optional[int] = ...) -> None: ...

class DeadLetterList(_message.Message):
    __slots__ = ("dead_letters",)
    DEAD_LETTERS_FIELD_NUMBER: _ClassVar[int]
    dead_letters: _containers.RepeatedCompositeFieldContainer[DeadLetter]
    def __init__(self, dead_letters: _Optional[_Iterable[_Union[DeadLetter, _Mapping]]] = ...) -> None: ...

class RedriveRequest(_message.Message):
    __slots__ = ("dead_letters", "operator", "reason")
    DEAD_LETTERS_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    dead_letters: _containers.RepeatedCompositeFieldContainer[DeadLetterRef]
    operator: str
    reason: str
    def __init__(self, dead_letters: _Optional[_Iterable[_Union[DeadLetterRef, _Mapping]]] = ..., operator: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RedriveResult(_message.Message):
    __slots__ = ("dead_letter", "outcome", "detail")
    DEAD_LETTER_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    dead_letter: DeadLetterRef
    outcome: str
    detail: str
    def __init__(self, dead_letter: _Optional[_Union[DeadLetterRef, _Mapping]] = ..., outcome: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class RedriveReply(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[RedriveResult]
    def __init__(self, results: _Optional[_Iterable[_Union[RedriveResult, _Mapping]]] = ...) -> None: ...

class ListSetAsideRequest(_message.Message):
    __slots__ = ("include_published", "limit")
    INCLUDE_PUBLISHED_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    include_published: bool
    limit: int
    def __init__(self, include_published: _Optional[bool] = ..., limit: _Optional[int] = ...) -> None: ...

class SetAsideRedrive(_message.Message):
    __slots__ = ("at", "operator", "reason", "outcome", "error")
    AT_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    at: str
    operator: str
    reason: str
    outcome: str
    error: str
    def __init__(self, at: _Optional[str] = ..., operator: _Optional[str] = ..., reason: _Optional[str] = ..., outcome: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class SetAsideItem(_message.Message):
    __slots__ = ("notification_id", "event_id", "event_type", "topic", "error", "attempts", "first_at", "last_at", "status", "redrives")
    NOTIFICATION_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    FIRST_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REDRIVES_FIELD_NUMBER: _ClassVar[int]
    notification_id: int
    event_id: str
    event_type: str
    topic: str
    error: str
    attempts: int
    first_at: str
    last_at: str
    status: str
    redrives: _containers.RepeatedCompositeFieldContainer[SetAsideRedrive]
    def __init__(self, notification_id: _Optional[int] = ..., event_id: _Optional[str] = ..., event_type: _Optional[str] = ..., topic: _Optional[str] = ..., error: _Optional[str] = ..., attempts: _Optional[int] = ..., first_at: _Optional[str] = ..., last_at: _Optional[str] = ..., status: _Optional[str] = ..., redrives: _Optional[_Iterable[_Union[SetAsideRedrive, _Mapping]]] = ...) -> None: ...

class SetAsideList(_message.Message):
    __slots__ = ("set_aside", "items")
    SET_ASIDE_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    set_aside: int
    items: _containers.RepeatedCompositeFieldContainer[SetAsideItem]
    def __init__(self, set_aside: _Optional[int] = ..., items: _Optional[_Iterable[_Union[SetAsideItem, _Mapping]]] = ...) -> None: ...

class RedriveSetAsideRequest(_message.Message):
    __slots__ = ("notification_ids", "operator", "reason")
    NOTIFICATION_IDS_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    notification_ids: _containers.RepeatedScalarFieldContainer[int]
    operator: str
    reason: str
    def __init__(self, notification_ids: _Optional[_Iterable[int]] = ..., operator: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RedriveSetAsideResult(_message.Message):
    __slots__ = ("notification_id", "outcome", "error")
    NOTIFICATION_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    notification_id: int
    outcome: str
    error: str
    def __init__(self, notification_id: _Optional[int] = ..., outcome: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class RedriveSetAsideReply(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[RedriveSetAsideResult]
    def __init__(self, results: _Optional[_Iterable[_Union[RedriveSetAsideResult, _Mapping]]] = ...) -> None: ...
