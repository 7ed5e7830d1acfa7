"""Shared harness for notify's tests: an application on a chosen store with fixed contacts, recording
channels that can be told to fail, a hand-moved clock and a stand-in for the Inbox."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import Tracking

from sandan_contracts import Envelope, Event
from sandan_notify.application import NotifyApplication
from sandan_notify.channels import Message, SendError
from sandan_notify.contacts import Contact, StaticContacts
from sandan_notify.directory import Offices
from sandan_notify.domain import RetryPolicy

OFFICES = """
[county]
id = "taihe"
name = "泰和县委组织部"
email = "county@example.gov.cn"

[towns.chengjiang]
name = "澄江镇党委"
webhook_url = "http://town.example/hook"

[communities.c-1]
name = "城江社区党委"
town = "chengjiang"
webhook_url = "http://branch.example/hook"
email = "branch-c1@example.org"
"""


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class RecordingChannel:
    def __init__(self, name: str) -> None:
        self.name = name
        self.sent: list[Message] = []
        self.failures: list[SendError] = []  # raised in order, one per send, before succeeding

    def send(self, message: Message) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(message)


@dataclass
class Harness:
    app: NotifyApplication
    clock: Clock
    contacts: StaticContacts
    channels: dict[str, RecordingChannel]
    offset: int = 0
    published: list[Event] = field(default_factory=list)

    def feed(self, event: Event, event_id: str | None = None, topic: str = "dispatch.orders.v1") -> list[Any]:
        """Stand-in for the Inbox: the policy's notices saved with a tracking record."""
        self.offset += 1
        envelope = Envelope(event_id=event_id or f"src:{self.offset}", type=event.TYPE, schema_version=1,
                            occurred_at=self.clock.now.astimezone(UTC), producer="dispatch", key=event.key(),
                            correlation_id="c", data=event.model_dump(mode="json"))
        changed = self.app.on_event(envelope, event)
        self.app.save_tracked(*changed, tracking=Tracking(f"kafka:{topic}:0", self.offset))
        return changed

    def plan_all(self) -> list[str]:
        self.app.projector.catch_up()
        return [self.app.plan(n) for n in self.app.delivery_log.new_notices()]

    def deliver_all(self) -> list[str]:
        self.app.projector.catch_up()
        out = []
        for channel in self.app.channels:
            out += [self.app.deliver(d) for d in self.app.delivery_log.due(channel, self.clock())]
        return out

    def run(self, rounds: int = 3) -> None:
        for _ in range(rounds):
            self.plan_all()
            self.deliver_all()
        self.app.projector.catch_up()

    def sent(self, channel: str) -> list[Message]:
        return self.channels[channel].sent


def contacts_book(offices: Offices) -> StaticContacts:
    return StaticContacts({
        ("resident", "d-1"): Contact("r-1", "王秀英", phone="13800001234"),
        ("resident", "d-2"): Contact("r-2", "Li Lei", email="li@example.org", wechat_openid="oWx_abcdef"),
        ("member", "m-1"): Contact("m-1", "党员甲", phone="13900000001", email="m1@example.org"),
        ("member", "m-2"): Contact("m-2", "党员乙", phone="13900000002"),
        ("member", "m-3"): Contact("m-3", "党员丙", wechat_openid="oWx_m3m3m3"),
        ("unit", "u-1"): Contact("u-1", "泰和县人民医院", email="hospital@example.org",
                                 webhook_url="http://hospital.example/hook"),
        ("unit", "u-2"): Contact("u-2", "县财政局", email="finance@example.org"),
    }, offices)


@pytest.fixture
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    kind = getattr(request, "param", "memory")
    if kind == "memory":
        yield "memory://"
    elif kind == "sqlite":
        yield f"sqlite:///{tmp_path}/notify.db"
    else:
        yield request.getfixturevalue("postgres_schema_url")  # root conftest: a schema of its own


@pytest.fixture
def offices(tmp_path: Path) -> Offices:
    path = tmp_path / "offices.toml"
    path.write_text(OFFICES, encoding="utf-8")
    return Offices(path)


@pytest.fixture
def h(store_url: str, offices: Offices, tmp_path: Path) -> Iterator[Harness]:
    clock = Clock(datetime(2026, 3, 2, 2, 0, tzinfo=UTC))  # 10:00 in Taihe (UTC+8)
    channels = {name: RecordingChannel(name) for name in ("wechat", "sms", "email", "webhook")}
    contacts = contacts_book(offices)
    database = f"sqlite:///{tmp_path}/notify-tables.db" if store_url.startswith("sqlite") else store_url
    app = NotifyApplication(store_url, database_url=database, offices=offices, contacts=contacts,
                            channels=dict(channels), clock=clock,
                            policy=RetryPolicy(max_attempts=3, base_seconds=2, cap_seconds=60), rng=lambda: 1.0)
    try:
        yield Harness(app, clock, contacts, channels)
    finally:
        app.close()
