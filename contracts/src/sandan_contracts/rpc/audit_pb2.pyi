from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Entry(_message.Message):
    __slots__ = ("version", "at", "what", "subject", "role", "on_behalf_of", "caused_by", "correlation_id")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    WHAT_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    ON_BEHALF_OF_FIELD_NUMBER: _ClassVar[int]
    CAUSED_BY_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    version: int
    at: str
    what: str
    subject: str
    role: str
    on_behalf_of: str
    caused_by: str
    correlation_id: str
    def __init__(self, version: _Optional[int] = ..., at: _Optional[str] = ..., what: _Optional[str] = ..., subject: _Optional[str] = ..., role: _Optional[str] = ..., on_behalf_of: _Optional[str] = ..., caused_by: _Optional[str] = ..., correlation_id: _Optional[str] = ...) -> None: ...

class History(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[Entry]
    def __init__(self, entries: _Optional[_Iterable[_Union[Entry, _Mapping]]] = ...) -> None: ...
