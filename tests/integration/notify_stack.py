"""The notify integration stack: its own intake, dispatch and notify processes (notify reads contacts as its own
service identity from Keycloak), a real local SMTP server (aiosmtpd) and a local HTTP receiver standing in for the
webhooks and the SMS gateway.

Consumer groups are new and positioned at the topics' current ends before the services start, so this
stack sees only what its tests cause (not the history of earlier runs on the same broker). notify's clock is
fake (NOTIFY_FAKE_NOW from a file, tests only) and starts at 10:00 in Taihe, so quiet hours do not depend on
when CI runs; a test may move it by rewriting the file. The office directory is the places file: every community
of the pool is declared (with its branch's webhook and e-mail) before the services start.
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
from aiosmtpd.controller import Controller

from sandan_contracts.rpc import dispatch_pb2_grpc, intake_pb2_grpc, notify_pb2_grpc
from sandan_eventbus.devtools import ServiceProcess
from sandan_eventbus.kafka import create_topics
from sandan_notify.signing import verify
from tests.integration.conftest import DISPATCH_KEK, INTAKE_KEK, free_port, groups_at_end
from tests.integration.people import Caller, CommunityPool, People, aio_channel_as, identity_env
from tests.integration.scenario import Community
from tests.integration.scenario import a_community as given_a_community

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
    people: People
    communities: CommunityPool
    channels: list[grpc.aio.Channel] = field(default_factory=list)

    def _channel(self, address: str, caller: Caller | None) -> grpc.aio.Channel:
        channel = aio_channel_as(address, caller)  # with the shipped retry policy and the caller's token
        self.channels.append(channel)
        return channel

    def intake_stub(self, caller: Caller | None) -> intake_pb2_grpc.IntakeStub:
        return intake_pb2_grpc.IntakeStub(self._channel(self.intake.grpc_address, caller))

    def dispatch_stub(self, caller: Caller | None) -> dispatch_pb2_grpc.DispatchStub:
        return dispatch_pb2_grpc.DispatchStub(self._channel(self.dispatch.grpc_address, caller))

    def notify_stub(self, caller: Caller | None) -> notify_pb2_grpc.NotifyStub:
        return notify_pb2_grpc.NotifyStub(self._channel(self.notify.grpc_address, caller))

    def set_clock(self, moment: datetime) -> None:
        """Not for production: move notify's fake clock (it re-reads the file)."""
        self.clock_file.write_text(moment.isoformat())


def offices_toml(http: str, communities: CommunityPool) -> str:
    """The places file with the offices' addresses: each branch's webhook and e-mail, the town's webhook and the
    county's e-mail."""
    return communities.toml(county='email = "county@example.gov.cn"\n',
                            town=f'webhook_url = "{http}/hook/town-chengjiang"\n',
                            community=lambda c: f'webhook_url = "{http}/hook/branch-{c}"\n'
                                                f'email = "branch-{c}@example.org"\n')


def notify_env(bootstrap: str, workdir: Path, run: str, addresses: dict[str, str], http: HttpReceiver,
               smtp: SmtpReceiver, clock_file: Path, offices_file: Path, issuer: str, **overrides: str,
               ) -> dict[str, str]:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "LOG_LEVEL": "INFO", **identity_env(issuer, offices_file,
                                                                                   calls_others=True),
        "NOTIFY_EVENTSTORE_URL": f"sqlite:///{workdir}/notify-events.db",
        "NOTIFY_DATABASE_URL": f"sqlite:///{workdir}/notify.db",
        "NOTIFY_GRPC_ADDRESS": addresses["notify"], "NOTIFY_CONSUMER_GROUP": f"notify-{run}",
        "NOTIFY_INTAKE_ADDRESS": addresses["intake"], "NOTIFY_DISPATCH_ADDRESS": addresses["dispatch"],
        "NOTIFY_OFFICES_FILE": str(offices_file),
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
def notify_stack(kafka_bootstrap: str, people: People, tmp_path_factory: pytest.TempPathFactory,
                 ) -> Iterator[NotifyStack]:
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
    communities = CommunityPool("nt-", size=100)
    offices_file.write_text(offices_toml(http.url, communities), encoding="utf-8")
    common = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "LOG_LEVEL": "INFO",
              **identity_env(people.issuer, offices_file)}
    intake = ServiceProcess("sandan_intake", {
        **common, "INTAKE_EVENTSTORE_URL": f"sqlite:///{workdir}/intake-events.db",
        "INTAKE_DATABASE_URL": f"sqlite:///{workdir}/intake.db", "INTAKE_GRPC_ADDRESS": addresses["intake"],
        "INTAKE_CONSUMER_GROUP": f"intake-n{run}", **INTAKE_KEK,
    }, addresses["intake"], workdir / "intake.log")
    dispatch = ServiceProcess("sandan_dispatch", {
        **common, "DISPATCH_EVENTSTORE_URL": f"sqlite:///{workdir}/dispatch-events.db",
        "DISPATCH_DATABASE_URL": f"sqlite:///{workdir}/dispatch.db", "DISPATCH_GRPC_ADDRESS": addresses["dispatch"],
        "DISPATCH_CONSUMER_GROUP": f"dispatch-n{run}", "DISPATCH_DEADLINE_SWEEP_SECONDS": "0.5", **DISPATCH_KEK,
    }, addresses["dispatch"], workdir / "dispatch.log")
    notify = ServiceProcess("sandan_notify", notify_env(kafka_bootstrap, workdir, run, addresses, http, smtp,
                                                       clock_file, offices_file, people.issuer),
                            addresses["notify"], workdir / "notify.log")
    intake.start()
    dispatch.start()
    notify.start()
    try:
        yield NotifyStack(kafka_bootstrap, workdir, intake, dispatch, notify, http, smtp, clock_file, offices_file,
                          people, communities)
    finally:
        notify.stop()
        dispatch.stop()
        intake.stop()
        http.close()
        smtp.close()


# ---- given-steps ----------------------------------------------------------------------------------
async def a_community(s: NotifyStack, members: int = 2, resident_email: str = "") -> Community:
    """A community whose resident, unit and members can be reached: the resident's e-mail (if given) and phone,
    the unit's webhook, the members' phones and e-mails (the branch's addresses are in the office directory)."""
    tag = uuid.uuid4().hex[:8]
    return await given_a_community(s, members, item_title="送医送药", resident_email=resident_email,
                                   phone=f"138{int(tag, 16) % 10**8:08d}", unit_webhook=s.http.url + "/hook/{unit_id}",
                                   member_email=True, deadlines=False)


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
