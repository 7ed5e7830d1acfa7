"""Contract-violating variants of facts, for every consumer's "one definition of valid" tests (not a test module).

`variants(events)` is a Hypothesis strategy: it takes one of `events`, writes it as the contract's encoder would,
then breaks it: too long, the wrong JSON type, a field missing, the wrong schema version, a bad id or code
pattern, a time not in UTC, numbers and lists out of range, duplicate keys, an oversized correlation_id; or
changes it in ways the contract *accepts* (unknown fields, `type` after `data`, left as it is). Whether the
contract accepts a variant is `sandan_contracts.decode`'s answer (`accepted_by_contract`), never the generator's
guess, so a consumer is judged against the contract itself.

`EVERY_EVENT` is one fact of every type the contract knows, each with every optional field set, so a variant can
break any field.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from sandan_contracts import Event, decode, encode
from sandan_contracts import events as c
from sandan_contracts.envelope import Envelope
from sandan_contracts.events import EVENT_TYPES

T0 = datetime(2026, 4, 6, 1, 0, tzinfo=UTC)
DUE = T0 + timedelta(days=1)

_SUMMARY = c.NoticeSummary(members_active=3, services_completed=5, hours=12.5, response_rate=0.9,
                           completion_rate=0.8, satisfaction_rate=1.0, overdue=1, escalated=0)
EVERY_EVENT: list[Event] = [
    # intake.demands.v1
    c.DemandPosted(demand_id="d-1", community_id="c-1", grid_id="g-1", category="medical", menu_item_id="mi-1",
                   urgency="urgent", care_tags=["elderly_alone"], special_care=True, channel="app", due_at=DUE,
                   deadline_seconds=86_400),
    c.DemandWithdrawn(demand_id="d-1", reason="solved_myself"),
    c.RedoRequested(demand_id="d-1", redo_count=1, member_id="m-1"),
    c.CompletionConfirmed(demand_id="d-1", member_id="m-1"),
    c.ServiceRated(demand_id="d-1", member_id="m-1", stars=5, has_comment=True),
    c.DemandTextsShredded(demand_id="d-1", cause="erasure"),
    # dispatch.roster.v1
    c.UnitReported(unit_id="u-1", community_id="c-1", unit_name="泰和县人民医院"),
    c.MemberReported(member_id="m-1", community_id="c-1", unit_id="u-1", grid_id="g-1", teams=["legal"],
                     skills=["medical"]),
    c.MemberLeft(member_id="m-1", community_id="c-1", reason="moved_away"),
    c.TeamJoined(member_id="m-1", community_id="c-1", team="legal"),
    c.GridGroupFormed(grid_id="g-1", community_id="c-1"),
    c.GridLeaderAppointed(grid_id="g-1", community_id="c-1", member_id="m-1"),
    # dispatch.orders.v1
    c.OrderOpened(order_id="o-1", demand_id="d-1", community_id="c-1", grid_id="g-1", category="medical",
                  urgency="normal", care_tags=["elderly_alone"], special_care=True, due_at=DUE),
    c.OrderDispatched(order_id="o-1", demand_id="d-1", member_id="m-1", dispatched_by="branch"),
    c.OrderOffered(order_id="o-1", demand_id="d-1", grid_id="g-1", teams=["legal"]),
    c.OrderAccepted(order_id="o-1", demand_id="d-1", member_id="m-1", via="claim"),
    c.OrderDeclined(order_id="o-1", demand_id="d-1", member_id="m-1", reason="unavailable"),
    c.ServiceCompleted(order_id="o-1", demand_id="d-1", member_id="m-1", hours=2.5, has_notes=True),
    c.OrderEscalated(order_id="o-1", demand_id="d-1", from_level="community", to_level="town",
                     reason="deadline_missed", automatic=True, joint_meeting_units=["u-1"], due_at=DUE),
    c.OrderOverdue(order_id="o-1", demand_id="d-1", level="community", due_at=DUE, status="accepted",
                   member_id="m-1"),
    c.OrderCancelled(order_id="o-1", demand_id="d-1", reason="demand_withdrawn"),
    c.OrderReopened(order_id="o-1", demand_id="d-1", redo_count=1, previous_member_id="m-1", due_at=DUE),
    # dispatch.activities.v1
    c.ActivityScheduled(activity_id="a-1", community_id="c-1", unit_id="u-1", theme="health_check",
                        title="义诊进社区", starts_at=DUE, ends_at=DUE + timedelta(hours=3), capacity=40),
    c.ResidentSignedUp(activity_id="a-1", community_id="c-1", resident_id="r-1"),
    c.MemberCheckedIn(activity_id="a-1", community_id="c-1", member_id="m-1", unit_id="u-1"),
    c.ActivityCompleted(activity_id="a-1", community_id="c-1", unit_id="u-1", hours=3.0, members_checked_in=1,
                        residents_signed_up=0),
    # scoring.points.v1, scoring.notices.v1
    c.PointsAwarded(member_id="m-1", community_id="c-1", unit_id="u-1", entry_id="scoring:7", points=10,
                    rule="service_completed", rule_set_version="2026.1", quarter="2026Q2",
                    source_event_ids=["dispatch:7"]),
    c.PointsRevoked(member_id="m-1", community_id="c-1", unit_id="u-1", entry_id="scoring:9", points=10,
                    rule="service_redone", rule_set_version="2026.1", quarter="2026Q2",
                    source_event_ids=["intake:9"]),
    c.StarRatingChanged(member_id="m-1", community_id="c-1", unit_id="u-1", quarter="2026Q2", stars=4,
                        previous_stars=3, points=40, average_rating=4.5, rated_services=2,
                        rule_set_version="2026.1"),
    c.QuarterlyNoticePublished(notice_id="scoring:2026Q1:unit:u-1", scope="unit", scope_id="u-1",
                               quarter="2026Q1", rule_set_version="2026.1", summary=_SUMMARY,
                               ranking=[c.RankedMember(rank=1, member_id="m-1", points=30, stars=5)]),
    # notify.deliveries.v1
    c.NotificationSent(notification_id="notify:1", source_event_id="dispatch:7", recipient_kind="member",
                       recipient_id="m-1", channel="sms", template="order_offered", attempts=1),
    c.NotificationFailed(notification_id="notify:1", source_event_id="dispatch:7", recipient_kind="member",
                         recipient_id="m-1", channel="sms", template="order_offered", attempts=2,
                         error="timeout"),
]


def of_topic(topic: str) -> list[Event]:
    """The sample facts published on `topic`."""
    return [e for e in EVERY_EVENT if topic == e.TOPIC]


_numbers = itertools.count(10)


def producer_of(event: Event) -> str:
    return event.TOPIC.split(".", 1)[0]


def envelope_of(event: Event, number: int) -> dict[str, Any]:
    producer = producer_of(event)
    raw = encode(event, event_id=f"{producer}:{number}", producer=producer, occurred_at=T0,
                 correlation_id=f"{producer}:1", causation_id=f"{producer}:2")
    return json.loads(raw)


def dumps(env: Any) -> bytes:
    """Compact JSON as the contract's encoder writes it (raw UTF-8, so a fast reader reads it rather than
    leaving `\\u` escapes to Python); Python's json, because orjson refuses integers past 64 bits."""
    return json.dumps(env, ensure_ascii=False, separators=(",", ":")).encode()


# ---- hostile values -------------------------------------------------------------------------------------------
LIMITS = [0, 1, 39, 40, 41, 63, 64, 65, 79, 80, 81, 199, 200, 201]
SPECIAL: list[Any] = [
    "m-1\n", "-m", "m 1", "m/1", "成员", "Legal", "legal\n", "a" * 64, "ab:c.d_e-f",
    "2026-04-07T09:00:00+08:00", "2026-04-07T01:00:00", "2026-04-07T01:00:00Z", "2026-04-07T01:00:00+00:00",
    "2026-04-07T01:00:00.5Z", "2026-04-07T01:00:00.1234567Z", "2026-04-07 01:00:00Z", "20260407T010000Z",
    "2026-02-30T00:00:00Z", "2026-04-07T01:00:00-00:00", "1775523600", "urgent", "claim", "branch", "community",
    "elderly_alone", "1", "true", "", 0, 1, 2, 5, 6, 10, 11, 72, 72.5, 0.0, -1, 1.0, 4.0, 2.5, 1e300,
    1775523600, 2**63, -(2**63) - 1, 10**25, True, False, None, [], {}, ["legal"] * 11, ["u-1"] * 51,
    ["elderly_alone", "disabled", "student_hardship", "left_behind_child", "elderly_alone"], [None], ["Legal"],
]
hostile: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(SPECIAL),
    st.sampled_from(LIMITS).flatmap(lambda n: st.sampled_from(["a", "成", "9"]).map(lambda ch: ch * n)),
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.lists(st.sampled_from(["legal", "elderly_alone", "u-1", "Bad", "", 3, None]), max_size=60),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)
ENVELOPE_FIELDS = [f for f in Envelope.model_fields if f != "data"]


@dataclass
class Variant:
    event: Event  # the sample it was made from
    raw: bytes
    what: str

    @property
    def topic(self) -> str:
        return self.event.TOPIC


@st.composite
def variants(draw: st.DrawFn, events: Sequence[Event]) -> Variant:
    event = draw(st.sampled_from(events))
    env = envelope_of(event, next(_numbers))
    data_fields = list(type(event).model_fields)
    kind = draw(st.sampled_from(["replace", "replace", "boundary", "boundary", "drop", "version", "extra",
                                 "duplicate", "huge", "type_last", "as_is"]))
    where = draw(st.sampled_from(["envelope", "data", "data"]))
    field = draw(st.sampled_from(ENVELOPE_FIELDS if where == "envelope" else data_fields))
    node = env if where == "envelope" else env["data"]
    what = f"{event.TYPE}: {kind} {where}.{field}"
    if kind == "replace":
        node[field] = draw(hostile)
    elif kind == "boundary":  # a string just inside or just past a limit, in one- or three-byte characters
        node[field] = draw(st.sampled_from(["a", "成"])) * draw(st.sampled_from(LIMITS))
    elif kind == "drop":
        node.pop(field, None)
    elif kind == "version":
        env["schema_version"] = draw(st.sampled_from([0, 2, -1, 1.0, "1", True, None, 2**64]))
    elif kind == "extra":  # the tolerant reader: an unknown field is no reason to refuse
        node[f"x_{draw(st.text(max_size=6))}"] = draw(hostile)
    elif kind == "huge":
        env["correlation_id"] = "c" * 900_000
    raw = dumps(env)
    if kind == "duplicate":  # the same key twice: the last one counts (JSON parsers agree on that here)
        value = dumps(draw(hostile)).decode()
        first = draw(st.booleans())
        head = b'"data":{' if where == "data" else b"{"
        at = raw.index(head) + len(head) if first else len(raw) - (2 if where == "data" else 1)
        raw = raw[:at] + (f'"{field}":{value},' if first else f',"{field}":{value}').encode() + raw[at:]
    elif kind == "type_last":
        start = raw.index(b'"type":"')
        end = raw.index(b'"', start + 8) + 1
        raw = raw[:start] + raw[end + 1:-1] + b"," + raw[start:end] + b"}"
    return Variant(event, raw, what)


def accepted_by_contract(raw: bytes) -> bool:
    try:
        decode(raw)
    except ValueError:
        return False
    return True


assert {type(e) for e in EVERY_EVENT} == set(EVENT_TYPES.values()), "a sample of every event type"
