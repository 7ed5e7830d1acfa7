"""The notify integration stack: its own intake, dispatch and notify processes (contact tokens configured),
a real local SMTP server (aiosmtpd) and a local HTTP receiver standing in for the webhooks and the SMS gateway.

Consumer groups are new and positioned at the topics' current ends before the services start, so this
stack sees only what its tests cause (not the history of earlier runs on the same broker). notify's clock is
fake (NOTIFY_FAKE_NOW from a file, tests only) and starts at 10:00 in Taihe, so quiet hours do not depend on
when CI runs; a test may move it by rewriting the file.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from aiosmtpd.controller import Controller

from sandan_contracts import TOPICS
from sandan_contracts.rpc import dispatch_pb2 as dpb
from sandan_contracts.rpc import dispatch_pb2_grpc, intake_pb2_grpc, notify_pb2_grpc
from sandan_contracts.rpc import intake_pb2 as ipb
from sandan_eventbus.channels import aio_channel
from sandan_eventbus.devtools import ServiceProcess
from sandan_eventbus.kafka import create_topics
from sandan_notify.signing import verify
from tests.integration.conftest import free_port
from tests.integration.scenario import Community

TOKEN = "notify-it-token"
SECRET = "webhook-it-secret"
DAY = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # 10:00 in Taihe (UTC+8)


# ---- receivers -----------------------------------------------------------------------------------
@dataclass
class Hit:
    path: str
    notification_id: str
    payload: dict[str, Any]
    signed: bool


class HttpReceiver:
    """Webhook endpoints (/hook/<who>) and the SMS gateway (/sms). `fail[path] = n`: the next n requests to that
    path get 503; `fail[path] = -1`: every request does."""

    def __init__(self) -> None:
        self.hits: list[Hit] = []
        self.fail: dict[str, int] = {}
        self.delay: dict[str, float] = {}  # seconds to wait before answering, per path
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                time.sleep(receiver.delay.get(self.path, 0))
                with receiver.lock:
                    left = receiver.fail.get(self.path, 0)
                    if left:
                        receiver.fail[self.path] = left - 1 if left > 0 else left
                        self.send_response(503)
                        self.end_headers()
                        return
                    signed = verify(SECRET.encode(), self.headers.get("X-Sandan-Timestamp"),
                                    self.headers.get("X-Sandan-Signature"), body, time.time())
                    receiver.hits.append(Hit(self.path, self.headers.get("X-Sandan-Notification-Id", ""),
                                             json.loads(body), signed))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def matching(self, where: Callable[[Hit], bool]) -> list[Hit]:
        with self.lock:
            return [h for h in self.hits if where(h)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Mail:
    to: list[str]
    notification_id: str
    subject: str
    text: str


class SmtpReceiver:
    def __init__(self) -> None:
        self.mails: list[Mail] = []
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        from email import message_from_bytes
        from email.policy import default

        mail = message_from_bytes(envelope.content, policy=default)
        self.mails.append(Mail(list(envelope.rcpt_tos), str(mail["X-Sandan-Notification-Id"]), str(mail["Subject"]),
                               mail.get_content() if not mail.is_multipart() else ""))
        return "250 Message accepted"

    def close(self) -> None:
        self.controller.stop()


# ---- the stack ------------------------------------------------------------------------------------
@dataclass
class NotifyStack:
    bootstrap: str
    workdir: Path
    intake: ServiceProcess
    dispatch: ServiceProcess
    notify: ServiceProcess
    http: HttpReceiver
    smtp: SmtpReceiver
    clock_file: Path
    offices_file: Path
    channels: list[grpc.aio.Channel] = field(default_factory=list)

    def _channel(self, address: str) -> grpc.aio.Channel:
        channel = aio_channel(address)  # with the shipped retry policy
        self.channels.append(channel)
        return channel

    def intake_stub(self) -> intake_pb2_grpc.IntakeStub:
        return intake_pb2_grpc.IntakeStub(self._channel(self.intake.grpc_address))

    def dispatch_stub(self) -> dispatch_pb2_grpc.DispatchStub:
        return dispatch_pb2_grpc.DispatchStub(self._channel(self.dispatch.grpc_address))

    def notify_stub(self) -> notify_pb2_grpc.NotifyStub:
        return notify_pb2_grpc.NotifyStub(self._channel(self.notify.grpc_address))

    def set_clock(self, moment: datetime) -> None:
        """Not for production: move notify's fake clock (it re-reads the file)."""
        self.clock_file.write_text(moment.isoformat())

    def add_community(self, community_id: str, town: str = "chengjiang") -> None:
        """The branch secretary's office of a community, in notify's office directory (re-read on change)."""
        with self.offices_file.open("a", encoding="utf-8") as out:
            out.write(f'\n[communities.{community_id}]\nname = "{community_id} 社区党委"\ntown = "{town}"\n'
                      f'webhook_url = "{self.http.url}/hook/branch-{community_id}"\n'
                      f'email = "branch-{community_id}@example.org"\n')
        time.sleep(0.05)


def offices_toml(http: str) -> str:
    return (f'[county]\nid = "taihe"\nname = "泰和县委组织部"\nemail = "county@example.gov.cn"\n\n'
            f'[towns.chengjiang]\nname = "澄江镇党委"\nwebhook_url = "{http}/hook/town-chengjiang"\n')


async def groups_at_end(bootstrap: str, groups: dict[str, list[str]]) -> None:
    """Commit each new group's offsets at the topics' current ends: it starts with what happens from now."""
    for group, topics in groups.items():
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
        await consumer.start()
        try:
            parts = [TopicPartition(t, p) for t in topics for p in range(TOPICS[t].partitions)]
            consumer.assign(parts)
            ends = await consumer.end_offsets(parts)
            await consumer.commit({tp: OffsetAndMetadata(offset, "") for tp, offset in ends.items()})
        finally:
            await consumer.stop()


def notify_env(bootstrap: str, workdir: Path, run: str, addresses: dict[str, str], http: HttpReceiver,
               smtp: SmtpReceiver, clock_file: Path, offices_file: Path, **overrides: str) -> dict[str, str]:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "LOG_LEVEL": "INFO",
        "NOTIFY_EVENTSTORE_URL": f"sqlite:///{workdir}/notify-events.db",
        "NOTIFY_DATABASE_URL": f"sqlite:///{workdir}/notify.db",
        "NOTIFY_GRPC_ADDRESS": addresses["notify"], "NOTIFY_CONSUMER_GROUP": f"notify-{run}",
        "NOTIFY_INTAKE_ADDRESS": addresses["intake"], "NOTIFY_DISPATCH_ADDRESS": addresses["dispatch"],
        "NOTIFY_CONTACT_TOKEN": TOKEN, "NOTIFY_OFFICES_FILE": str(offices_file),
        "NOTIFY_SMTP_HOST": "127.0.0.1", "NOTIFY_SMTP_PORT": str(smtp.port), "NOTIFY_SMTP_FROM": "notify@sandan.local",
        "NOTIFY_WEBHOOK_SECRET": SECRET, "NOTIFY_SMS_URL": f"{http.url}/sms",
        "NOTIFY_SMS_BODY": '{"to": "{phone}", "text": "{text}", "id": "{notification_id}"}',
        "NOTIFY_MAX_ATTEMPTS": "3", "NOTIFY_BACKOFF_BASE_SECONDS": "0.2", "NOTIFY_BACKOFF_CAP_SECONDS": "1",
        "NOTIFY_SEND_TIMEOUT_SECONDS": "3", "NOTIFY_POLL_SECONDS": "0.1",
        "NOTIFY_FAKE_NOW": f"@{clock_file}",  # not for production: tests move the clock
    }
    env.update(overrides)
    return env


@pytest.fixture(scope="module")  # stopped after its module: its dispatch must not outlive test_notify
def notify_stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NotifyStack]:
    asyncio.run(create_topics(kafka_bootstrap))
    workdir = tmp_path_factory.mktemp("notify-stack")
    run = uuid.uuid4().hex[:8]
    asyncio.run(groups_at_end(kafka_bootstrap, {
        f"intake-n{run}": ["dispatch.orders.v1"], f"dispatch-n{run}": ["intake.demands.v1"],
        f"notify-{run}": ["dispatch.roster.v1", "dispatch.orders.v1", "intake.demands.v1", "scoring.notices.v1"]}))
    addresses = {name: f"127.0.0.1:{free_port()}" for name in ("intake", "dispatch", "notify")}
    http, smtp = HttpReceiver(), SmtpReceiver()
    clock_file, offices_file = workdir / "clock.txt", workdir / "offices.toml"
    clock_file.write_text(DAY.isoformat())
    offices_file.write_text(offices_toml(http.url), encoding="utf-8")
    common = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "LOG_LEVEL": "INFO"}
    intake = ServiceProcess("sandan_intake", {
        **common, "INTAKE_EVENTSTORE_URL": f"sqlite:///{workdir}/intake-events.db",
        "INTAKE_DATABASE_URL": f"sqlite:///{workdir}/intake.db", "INTAKE_GRPC_ADDRESS": addresses["intake"],
        "INTAKE_CONSUMER_GROUP": f"intake-n{run}", "INTAKE_CONTACT_TOKENS": TOKEN,
    }, addresses["intake"], workdir / "intake.log")
    dispatch = ServiceProcess("sandan_dispatch", {
        **common, "DISPATCH_EVENTSTORE_URL": f"sqlite:///{workdir}/dispatch-events.db",
        "DISPATCH_DATABASE_URL": f"sqlite:///{workdir}/dispatch.db", "DISPATCH_GRPC_ADDRESS": addresses["dispatch"],
        "DISPATCH_CONSUMER_GROUP": f"dispatch-n{run}", "DISPATCH_CONTACT_TOKENS": TOKEN,
        "DISPATCH_DEADLINE_SWEEP_SECONDS": "0.5",
    }, addresses["dispatch"], workdir / "dispatch.log")
    notify = ServiceProcess("sandan_notify", notify_env(kafka_bootstrap, workdir, run, addresses, http, smtp,
                                                       clock_file, offices_file), addresses["notify"],
                            workdir / "notify.log")
    intake.start()
    dispatch.start()
    notify.start()
    try:
        yield NotifyStack(kafka_bootstrap, workdir, intake, dispatch, notify, http, smtp, clock_file, offices_file)
    finally:
        notify.stop()
        dispatch.stop()
        intake.stop()
        http.close()
        smtp.close()


# ---- given-steps ----------------------------------------------------------------------------------
async def a_community(s: NotifyStack, members: int = 2, resident_email: str = "") -> Community:
    tag = uuid.uuid4().hex[:8]
    community_id, grid_id, unit_id, item_id = f"nt-{tag}", f"nt-{tag}-g1", f"unit-{tag}", f"med-{tag}"
    s.add_community(community_id)
    intake, dispatch = s.intake_stub(), s.dispatch_stub()
    await intake.PublishMenuItem(ipb.PublishMenuItemRequest(
        community_id=community_id, item_id=item_id, category="medical", title="送医送药"))
    resident = await intake.RegisterResident(ipb.RegisterResidentRequest(
        community_id=community_id, name="王秀英", phone=f"138{int(tag, 16) % 10**8:08d}", address="澄江镇 3 栋",
        email=resident_email))
    await dispatch.ReportUnit(dpb.ReportUnitRequest(unit_id=unit_id, community_id=community_id,
                                                    unit_name="泰和县人民医院",
                                                    webhook_url=f"{s.http.url}/hook/{unit_id}"))
    member_ids = []
    for i in range(members):
        member_id = f"m-{tag}-{i}"
        await dispatch.ReportMember(dpb.ReportMemberRequest(
            member_id=member_id, unit_id=unit_id, community_id=community_id, grid_id=grid_id, teams=["medical"],
            name=f"党员{i}", phone=f"1390000{i:04d}", email=f"{member_id}@example.org"))
        member_ids.append(member_id)
    return Community(community_id, grid_id, resident.resident_id, unit_id, member_ids, item_id)


async def eventually(probe: Callable[[], Any], timeout: float = 30, interval: float = 0.2) -> Any:
    """Wait until `probe()` (sync or async) returns something truthy; return it."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s")
        await asyncio.sleep(interval)


def night() -> datetime:
    return DAY + timedelta(hours=13, minutes=30)  # 23:30 in Taihe
