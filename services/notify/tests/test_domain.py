"""The Notice aggregate and the pure policies: ids, transitions, backoff with jitter, quiet hours."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandan_eventbus.errors import FailedPrecondition, InvalidArgument
from sandan_notify.domain import (
    NEW,
    PLANNED,
    SENT,
    SKIPPED,
    Notice,
    QuietHours,
    RetryPolicy,
    notice_id_for,
    notification_id_for,
    schedule,
)

NOW = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
CST = timedelta(hours=8)


def a_notice(**overrides: object) -> Notice:
    fields: dict[str, object] = {"source_event_id": "dispatch:7", "source_type": "OrderAccepted",
                                 "recipient_kind": "resident", "recipient_ref": "d-1", "template": "order_accepted",
                                 "params": {"order_id": "o-1"}, "urgent": False}
    fields.update(overrides)
    return Notice.create(**fields)  # type: ignore[arg-type]


def test_ids_are_deterministic_and_distinct() -> None:
    assert a_notice().id == notice_id_for("dispatch:7", "resident", "d-1") == a_notice().id
    assert notice_id_for("dispatch:7", "resident", "d-2") != a_notice().id
    nid = notification_id_for("dispatch:7", "resident", "r-1", "sms")
    assert nid == notification_id_for("dispatch:7", "resident", "r-1", "sms") and nid.startswith("n-")
    assert len({nid, notification_id_for("dispatch:7", "resident", "r-1", "email"),
                notification_id_for("dispatch:8", "resident", "r-1", "sms"),
                notification_id_for("dispatch:7", "member", "r-1", "sms")}) == 4


def test_plan_send() -> None:
    notice = a_notice()
    assert notice.status == NEW
    nid = notice.plan("r-1", "sms", NOW, held=False)
    assert (notice.status, notice.channel, notice.recipient_id, notice.tried) == (PLANNED, "sms", "r-1", ["sms"])
    assert notice.is_due(nid, NOW) and not notice.is_due("n-other", NOW)
    notice.record_sent(nid, NOW)
    assert notice.status == SENT and notice.attempts == 1
    with pytest.raises(FailedPrecondition):
        notice.record_sent(nid, NOW)


def test_retry_then_give_the_channel_up_then_the_next() -> None:
    notice = a_notice()
    sms = notice.plan("r-1", "sms", NOW, held=False)
    notice.record_failure(sms, "http_503", NOW + timedelta(seconds=2), NOW)
    assert notice.attempts == 1 and not notice.is_due(sms, NOW) and notice.is_due(sms, NOW + timedelta(seconds=2))
    notice.record_failure(sms, "http_503", None, NOW)
    assert notice.status == NEW and notice.attempts == 2 and notice.notification_id is None
    with pytest.raises(FailedPrecondition, match="already tried"):
        notice.plan("r-1", "sms", NOW, held=False)
    email = notice.plan("r-1", "email", NOW, held=False)
    assert email != sms and notice.attempts == 0
    with pytest.raises(FailedPrecondition, match="not the current"):
        notice.record_sent(sms, NOW)
    notice.record_sent(email, NOW)
    assert notice.status == SENT


def test_skip_and_refusals() -> None:
    notice = a_notice()
    notice.skip("opted_out", NOW)
    assert notice.status == SKIPPED and notice.skip_reason == "opted_out"
    with pytest.raises(FailedPrecondition):
        notice.plan("r-1", "sms", NOW, held=False)
    with pytest.raises(InvalidArgument):
        a_notice(recipient_kind="mayor")
    with pytest.raises(InvalidArgument):
        a_notice(template="Bad Template")
    with pytest.raises(InvalidArgument):
        a_notice().plan("r-1", "pigeon", NOW, held=False)
    planned = a_notice()
    nid = planned.plan("r-1", "sms", NOW, held=False)
    with pytest.raises(InvalidArgument):
        planned.record_failure(nid, "Not A Code", None, NOW)


def test_backoff_is_exponential_capped_and_jittered() -> None:
    policy = RetryPolicy(max_attempts=5, base_seconds=2, cap_seconds=10)
    assert [policy.delay(n, 1.0) for n in (1, 2, 3, 4, 5)] == [2, 4, 8, 10, 10]
    assert [policy.delay(n, 0.0) for n in (1, 2, 3)] == [1, 2, 4]  # at least half the ceiling
    assert policy.retry_at(1, False, NOW, 1.0) == NOW + timedelta(seconds=2)
    assert policy.retry_at(5, False, NOW, 1.0) is None  # the fifth failure gives the channel up
    assert policy.retry_at(1, True, NOW, 1.0) is None  # a permanent error is not retried


@given(st.integers(min_value=1, max_value=30), st.floats(min_value=0, max_value=1))
def test_jitter_stays_within_half_and_all_of_the_ceiling(failures: int, rand: float) -> None:
    policy = RetryPolicy(base_seconds=2, cap_seconds=300)
    ceiling = min(300, 2 * 2 ** (failures - 1))
    assert ceiling / 2 <= policy.delay(failures, rand) <= ceiling


def test_quiet_hours_wrap_midnight() -> None:
    quiet = QuietHours.parse("22:00", "07:00")
    assert quiet is not None
    assert quiet.contains(time(23, 30)) and quiet.contains(time(0, 0)) and quiet.contains(time(6, 59))
    assert not quiet.contains(time(7, 0)) and not quiet.contains(time(21, 59))
    day = QuietHours.parse("12:00", "14:00")
    assert day is not None and day.contains(time(13, 0)) and not day.contains(time(23, 0))
    assert QuietHours.parse("", "") is None
    with pytest.raises(InvalidArgument):
        QuietHours.parse("25:00", "07:00")


def test_sms_at_night_waits_for_morning_unless_urgent() -> None:
    quiet = QuietHours.parse("22:00", "07:00")
    night = datetime(2026, 3, 2, 15, 30, tzinfo=UTC)  # 23:30 in Taihe
    morning = datetime(2026, 3, 2, 23, 0, tzinfo=UTC)  # 07:00 next day in Taihe
    assert schedule(night, "sms", False, quiet, CST) == (morning, True)
    assert schedule(night, "wechat", False, quiet, CST) == (morning, True)
    assert schedule(night, "sms", True, quiet, CST) == (night, False)  # urgent goes now
    assert schedule(night, "email", False, quiet, CST) == (night, False)  # e-mail does not ring a phone
    after_midnight = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)  # 01:00 local
    assert schedule(after_midnight, "sms", False, quiet, CST) == (morning, True)
    assert schedule(NOW, "sms", False, quiet, CST) == (NOW, False)  # 10:00 local
    assert schedule(night, "sms", False, None, CST) == (night, False)
