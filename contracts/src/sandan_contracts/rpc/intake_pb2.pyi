from sandan_contracts.rpc import audit_pb2 as _audit_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RegisterResidentRequest(_message.Message):
    __slots__ = ("community_id", "name", "phone", "address", "email", "wechat_openid")
    COMMUNITY_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PHONE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    WECHAT_OPENID_FIELD_NUMBER: _ClassVar[int]
    community_id: str
    name: str
    phone: str
    address: str
    email: str
    wechat_openid: str
    def __init__(self, community_id: _Optional[str] = ..., name: _Optional[str] = ..., phone: _Optional[str] = ..., address: _Optional[str] = ..., email: _Optional[str] = ..., wechat_openid: _Optional[str] = ...) -> None: ...

class Resident(_message.Message):
    __slots__ = ("resident_id", "community_id", "corrected")
    RESIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    COMMUNITY_ID_FIELD_NUMBER: _ClassVar[int]
    CORRECTED_FIELD_NUMBER: _ClassVar[int]
    resident_id: str
    community_id: str
    corrected: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, resident_id: _Optional[str] = ..., community_id: _Optional[str] = ..., corrected: _Optional[_Iterable[str]] = ...) -> None: ...

class ResidentRef(_message.Message):
    __slots__ = ("resident_id",)
    RESIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    resident_id: str
    def __init__(self, resident_id: _Optional[str] = ...) -> None: ...

class CorrectResidentRequest(_message.Message):
    __slots__ = ("resident_id", "name", "phone", "address", "email", "wechat_openid")
    RESIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PHONE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    WECHAT_OPENID_FIELD_NUMBER: _ClassVar[int]
    resident_id: str
    name: str
    phone: str
    address: str
    email: str
    wechat_openid: str
    def __init__(self, resident_id: _Optional[str] = ..., name: _Optional[str] = ..., phone: _Optional[str] = ..., address: _Optional[str] = ..., email: _Optional[str] = ..., wechat_openid: _Optional[str] = ...) -> None: ...

class EraseResidentRequest(_message.Message):
    __slots__ = ("resident_id", "reason")
    RESIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    resident_id: str
    reason: str
    def __init__(self, resident_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ResidentErased(_message.Message):
    __slots__ = ("resident_id", "erased_at", "keys_destroyed")
    RESIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    ERASED_AT_FIELD_NUMBER: _ClassVar[int]
    KEYS_DESTROYED_FIELD_NUMBER: _ClassVar[int]
    resident_id: str
    erased_at: str
    keys_destroyed: int
    def __init__(self, resident_id: _Optional[str] = ..., erased_at: _Optional[str] = ..., keys_destroyed: _Optional[int] = ...) -> None: ...

class ContactRelease(_message.Message):
    __slots__ = ("at", "subject", "role", "member_id")
    AT_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    at: str
    subject: str
    role: str
    member_id: str
    def __init__(self, at: _Optional[str] = ..., subject: _Optional[str] = ..., role: _Optional[str] = ..., member_id: _Optional[str] = ...) -> None: ...

class ExportedDemand(_message.Message):
    __slots__ = ("demand_id", "posted_at", "status", "community_id", "grid_id", "category", "menu_item_id", "other_text", "description", "care_tags", "urgency", "channel", "member_id", "redo_count", "stars", "comment", "withdraw_reason", "texts_shredded", "contact_releases")
    DEMAND_ID_FIELD_NUMBER: _ClassVar[int]
    POSTED_AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    COMMUNITY_ID_FIELD_NUMBER: _ClassVar[int]
    GRID_ID_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    MENU_ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    OTHER_TEXT_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CARE_TAGS_FIELD_NUMBER: _ClassVar[int]
    URGENCY_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    REDO_COUNT_FIELD_NUMBER: _ClassVar[int]
    STARS_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    WITHDRAW_REASON_FIELD_NUMBER: _ClassVar[int]
    TEXTS_SHREDDED_FIELD_NUMBER: _ClassVar[int]
    CONTACT_RELEASES_FIELD_NUMBER: _ClassVar[int]
    demand_id: str
    posted_at: str
    status: str
    community_id: str
    grid_id: str
    category: str
    menu_item_id: str
    other_text: str
    description: str
    care_tags: _containers.RepeatedScalarFieldContainer[str]
    urgency: str
    channel: str
    member_id: str
    redo_count: int
    stars: int
    comment: str
    withdraw_reason: str
    texts_shredded: bool
    contact_releases: _containers.RepeatedCompositeFieldContainer[ContactRelease]
    def __init__(self, demand_id: _Optional[str] = ..., posted_at: _Optional[str] = ..., status: _Optional[str] = ..., community_id: _Optional[str] = ..., grid_id: _Optional[str] = ..., category: _Optional[str] = ..., menu_item_id: _Optional[str] = ..., other_text: _Optional[str] = ..., description: _Optional[str] = ..., care_tags: _Optional[_Iterable[str]] = ..., urgency: _Optional[str] = ..., channel: _Optional[str] = ..., member_id: _Optional[str] = ..., redo_count: _Optional[int] = ..., stars: _Optional[int] = ..., comment: _Optional[str] = ..., withdraw_reason: _Optional[str] = ..., texts_shredded: _Optional[bool] = ..., contact_releases: _Optional[_Iterable[_Union[ContactRelease, _Mapping]]] = ...) -> None: ...

class ResidentExport(_message.Message):
    __slots__ = ("resident_id", "community_id", "name", "phone", "address", "email", "wechat_openid", "registered_at", "erased", "erased_at", "demands", "record_history", "exported_at")
    RESIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    COMMUNITY_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PHONE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    WECHAT_OPENID_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_AT_FIELD_NUMBER: _ClassVar[int]
    ERASED_FIELD_NUMBER: _ClassVar[int]
    ERASED_AT_FIELD_NUMBER: _ClassVar[int]
    DEMANDS_FIELD_NUMBER: _ClassVar[int]
    RECORD_HISTORY_FIELD_NUMBER: _ClassVar[int]
    EXPORTED_AT_FIELD_NUMBER: _ClassVar[int]
    resident_id: str
    community_id: str
    name: str
    phone: str
    address: str
    email: str
    wechat_openid: str
    registered_at: str
    erased: bool
    erased_at: str
    demands: _containers.RepeatedCompositeFieldContainer[ExportedDemand]
    record_history: _audit_pb2.History
    exported_at: str
    def __init__(self, resident_id: _Optional[str] = ..., community_id: _Optional[str] = ..., name: _Optional[str] = ..., phone: _Optional[str] = ..., address: _Optional[str] = ..., email: _Optional[str] = ..., wechat_openid: _Optional[str] = ..., registered_at: _Optional[str] = ..., erased: _Optional[bool] = ..., erased_at: _Optional[str] = ..., demands: _Optional[_Iterable[_Union[ExportedDemand, _Mapping]]] = ..., record_history: _Optional[_Union[_audit_pb2.History, _Mapping]] = ..., exported_at: _Optional[str] = ...) -> None: ...

class DeadlineSeconds(_message.Message):
    __slots__ = ("urgent", "normal", "routine")
    URGENT_FIELD_NUMBER: _ClassVar[int]
    NORMAL_FIELD_NUMBER: _ClassVar[int]
    ROUTINE_FIELD_NUMBER: _ClassVar[int]
    urgent: int
    normal: int
    routine: int
    def __init__(self, urgent: _Optional[int] = ..., normal: _Optional[int] = ..., routine: _Optional[int] = ...) -> None: ...

class PublishMenuItemRequest(_message.Message):
    __slots__ = ("community_id", "item_id", "category", "title", "deadlines")
    COMMUNITY_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DEADLINES_FIELD_NUMBER: _ClassVar[int]
    community_id: str
    item_id: str
    category: str
    title: str
    deadlines: DeadlineSeconds
    def __init__(self, community_id: _Optional[str] = ..., item_id: _Optional[str] = ..., category: _Optional[str] = ..., title: _Optional[str] = ..., deadlines: _Optional[_Union[DeadlineSeconds, _Mapping]] = ...) -> None: ...

class RetireMenuItemRequest(_message.Message):
    __slots__ = ("community_id", "item_id")
    COMMUNITY_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    community_id: str
    item_id: str
    def __init__(self, community_id: _Optional[str] = ..., item_id: _Optional[str] = ...) -> None: ...

class ListMenuRequest(_message.Message):
    __slots__ = ("community_id",)
    COMMUNITY_ID_FIELD_NUMBER: _ClassVar[int]
    community_id: str
    def __init__(self, community_id: _Optional[str] = ...) -> None: ...

class MenuItem(_message.Message):
    __slots__ = ("community_id", "item_id", "category", "title", "deadlines", "retired")
    COMMUNITY_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DEADLINES_FIELD_NUMBER: _ClassVar[int]
    RETIRED_FIELD_NUMBER: _ClassVar[int]
    community_id: str
    item_id: str
    category: str
    title: str
    deadlines: DeadlineSeconds
    retired: bool
    def __init__(self, community_id: _Optional[str] = ..., item_id: _Optional[str] = ..., category: _Optional[str] = ..., title: _Optional[str] = ..., deadlines: _Optional[_Union[DeadlineSeconds, _Mapping]] = ..., retired: _Optional[bool] = ...) -> None: ...

class Menu(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[MenuItem]
    def __init__(self, items: _Optional[_Iterable[_Union[MenuItem, _Mapping]]] = ...) -> None: ...

class PostDemandRequest(_message.Message):
    __slots__ = ("client_request_id", "resident_id", "community_id", "grid_id", "menu_item_id", "other_text", "description", "urgency", "care_tags", "channel")
    CLIENT_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RESIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    COMMUNITY_ID_FIELD_NUMBER: _ClassVar[int]
    GRID_ID_FIELD_NUMBER: _ClassVar[int]
    MENU_ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    OTHER_TEXT_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    URGENCY_FIELD_NUMBER: _ClassVar[int]
    CARE_TAGS_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    client_request_id: str
    resident_id: str
    community_id: str
    grid_id: str
    menu_item_id: str
    other_text: str
    description: str
    urgency: str
    care_tags: _containers.RepeatedScalarFieldContainer[str]
    channel: str
    def __init__(self, client_request_id: _Optional[str] = ..., resident_id: _Optional[str] = ..., community_id: _Optional[str] = ..., grid_id: _Optional[str] = ..., menu_item_id: _Optional[str] = ..., other_text: _Optional[str] = ..., description: _Optional[str] = ..., urgency: _Optional[str] = ..., care_tags: _Optional[_Iterable[str]] = ..., channel: _Optional[str] = ...) -> None: ...

class DemandRef(_message.Message):
    __slots__ = ("demand_id",)
    DEMAND_ID_FIELD_NUMBER: _ClassVar[int]
    demand_id: str
    def __init__(self, demand_id: _Optional[str] = ...) -> None: ...

class ListResidentDemandsRequest(_message.Message):
    __slots__ = ("resident_id", "limit", "before")
    RESIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    resident_id: str
    limit: int
    before: str
    def __init__(self, resident_id: _Optional[str] = ..., limit: _Optional[int] = ..., before: _Optional[str] = ...) -> None: ...

class DemandList(_message.Message):
    __slots__ = ("demands", "next_before")
    DEMANDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_BEFORE_FIELD_NUMBER: _ClassVar[int]
    demands: _containers.RepeatedCompositeFieldContainer[Demand]
    next_before: str
    def __init__(self, demands: _Optional[_Iterable[_Union[Demand, _Mapping]]] = ..., next_before: _Optional[str] = ...) -> None: ...

class WithdrawDemandRequest(_message.Message):
    __slots__ = ("demand_id", "reason")
    DEMAND_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    demand_id: str
    reason: str
    def __init__(self, demand_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RateServiceRequest(_message.Message):
    __slots__ = ("demand_id", "stars", "comment")
    DEMAND_ID_FIELD_NUMBER: _ClassVar[int]
    STARS_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    demand_id: str
    stars: int
    comment: str
    def __init__(self, demand_id: _Optional[str] = ..., stars: _Optional[int] = ..., comment: _Optional[str] = ...) -> None: ...

class RequestRedoRequest(_message.Message):
    __slots__ = ("demand_id", "reason")
    DEMAND_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    demand_id: str
    reason: str
    def __init__(self, demand_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class Demand(_message.Message):
    __slots__ = ("demand_id", "resident_id", "community_id", "grid_id", "category", "menu_item_id", "urgency", "care_tags", "channel", "status", "due_at", "member_id", "redo_count", "stars", "special_care", "resident_erased", "texts_shredded")
    DEMAND_ID_FIELD_NUMBER: _ClassVar[int]
    RESIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    COMMUNITY_ID_FIELD_NUMBER: _ClassVar[int]
    GRID_ID_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    MENU_ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    URGENCY_FIELD_NUMBER: _ClassVar[int]
    CARE_TAGS_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DUE_AT_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    REDO_COUNT_FIELD_NUMBER: _ClassVar[int]
    STARS_FIELD_NUMBER: _ClassVar[int]
    SPECIAL_CARE_FIELD_NUMBER: _ClassVar[int]
    RESIDENT_ERASED_FIELD_NUMBER: _ClassVar[int]
    TEXTS_SHREDDED_FIELD_NUMBER: _ClassVar[int]
    demand_id: str
    resident_id: str
    community_id: str
    grid_id: str
    category: str
    menu_item_id: str
    urgency: str
    care_tags: _containers.RepeatedScalarFieldContainer[str]
    channel: str
    status: str
    due_at: str
    member_id: str
    redo_count: int
    stars: int
    special_care: bool
    resident_erased: bool
    texts_shredded: bool
    def __init__(self, demand_id: _Optional[str] = ..., resident_id: _Optional[str] = ..., community_id: _Optional[str] = ..., grid_id: _Optional[str] = ..., category: _Optional[str] = ..., menu_item_id: _Optional[str] = ..., urgency: _Optional[str] = ..., care_tags: _Optional[_Iterable[str]] = ..., channel: _Optional[str] = ..., status: _Optional[str] = ..., due_at: _Optional[str] = ..., member_id: _Optional[str] = ..., redo_count: _Optional[int] = ..., stars: _Optional[int] = ..., special_care: _Optional[bool] = ..., resident_erased: _Optional[bool] = ..., texts_shredded: _Optional[bool] = ...) -> None: ...

class ServiceContactRequest(_message.Message):
    __slots__ = ("demand_id", "member_id")
    DEMAND_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    demand_id: str
    member_id: str
    def __init__(self, demand_id: _Optional[str] = ..., member_id: _Optional[str] = ...) -> None: ...

class ServiceContact(_message.Message):
    __slots__ = ("demand_id", "name", "phone", "address", "description", "erased", "texts_shredded")
    DEMAND_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PHONE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ERASED_FIELD_NUMBER: _ClassVar[int]
    TEXTS_SHREDDED_FIELD_NUMBER: _ClassVar[int]
    demand_id: str
    name: str
    phone: str
    address: str
    description: str
    erased: bool
    texts_shredded: bool
    def __init__(self, demand_id: _Optional[str] = ..., name: _Optional[str] = ..., phone: _Optional[str] = ..., address: _Optional[str] = ..., description: _Optional[str] = ..., erased: _Optional[bool] = ..., texts_shredded: _Optional[bool] = ...) -> None: ...

class ResidentContact(_message.Message):
    __slots__ = ("demand_id", "resident_id", "community_id", "name", "phone", "email", "wechat_openid", "erased")
    DEMAND_ID_FIELD_NUMBER: _ClassVar[int]
    RESIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    COMMUNITY_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PHONE_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    WECHAT_OPENID_FIELD_NUMBER: _ClassVar[int]
    ERASED_FIELD_NUMBER: _ClassVar[int]
    demand_id: str
    resident_id: str
    community_id: str
    name: str
    phone: str
    email: str
    wechat_openid: str
    erased: bool
    def __init__(self, demand_id: _Optional[str] = ..., resident_id: _Optional[str] = ..., community_id: _Optional[str] = ..., name: _Optional[str] = ..., phone: _Optional[str] = ..., email: _Optional[str] = ..., wechat_openid: _Optional[str] = ..., erased: _Optional[bool] = ...) -> None: ...
