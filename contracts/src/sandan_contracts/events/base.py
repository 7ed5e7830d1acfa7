"""The base of every published event, and the value types events share."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, StringConstraints

# Opaque identifiers: uuids or administrative codes, never names.
Id = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]
# An event id or an id derived from event ids, e.g. "intake:12" (longer than an Id).
Ref = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]
# The opaque subject id of a caller's token (an OIDC `sub`: printable ASCII, never a name).
Subject = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[!-~]+$")]
# A version label of data such as a rule set, e.g. "2026.1".
Version = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
# A machine word: category, team, reason code.
Code = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9_]*$")]


def _utc(value: datetime) -> datetime:
    if value.utcoffset() != timedelta(0):
        raise ValueError("must be in UTC")
    return value


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_utc)]

Urgency = Literal["urgent", "normal", "routine"]
Channel = Literal["app", "hotline", "grid_worker", "walk_in"]
# Special-care groups named in the report; a new group is an additive change to this list.
CareTag = Literal["elderly_alone", "student_hardship", "left_behind_child", "disabled"]
Level = Literal["community", "town", "county"]


class Event(BaseModel):
    """A fact that happened. Immutable; unknown fields are ignored (tolerant reader).

    `TYPE` is the envelope's `type`, `VERSION` its `schema_version`, `TOPIC` where it is published,
    `KEY` the field whose value is the Kafka message key.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    TYPE: ClassVar[str]
    VERSION: ClassVar[int] = 1
    TOPIC: ClassVar[str]
    KEY: ClassVar[str]

    def key(self) -> str:
        return str(getattr(self, self.KEY))
