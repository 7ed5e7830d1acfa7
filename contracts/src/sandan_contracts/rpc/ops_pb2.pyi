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
