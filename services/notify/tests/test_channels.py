"""Templates, webhook signatures, and each adapter against a real local receiver (aiosmtpd, http.server)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from sandan_notify.channels import (
    ConsoleChannel,
    EmailChannel,
    Message,
    SendError,
    SmsChannel,
    WebhookChannel,
    WeChatChannel,
    fill,
)
from sandan_notify.signing import sign, verify
from sandan_notify.templates import available, render

SECRET = b"shared-secret"


def message(**overrides: Any) -> Message:
    fields: dict[str, Any] = {"notification_id": "n-abc", "source_event_id": "dispatch:1", "recipient_kind": "member",
                              "recipient_id": "m-1", "address": "", "name": "党员甲", "template": "order_dispatched",
                              "subject": "派单", "body": "请接单 \"o-1\"", "urgent": False}
    fields.update(overrides)
    return Message(**fields)


# ---- templates ---------------------------------------------------------------------------------
def test_every_template_exists_in_both_languages() -> None:
    assert available("zh") == available("en")
    assert set(available("zh")) >= {"order_offered", "order_dispatched", "order_accepted", "service_completed",
                                    "order_escalated", "order_escalated_resident", "order_overdue",
                                    "quarterly_notice"}


def test_render_fills_local_times_labels_and_defaults() -> None:
    zh = render("order_escalated", {"order_id": "o-1", "from_level": "community", "to_level": "county",
                                    "due_at": "2026-03-02T16:00:00+00:00", "name": "城江社区党委"})
    assert zh.subject == "【三单制】服务订单已上报县委组织部"
    assert "城江社区党委" in zh.body and "2026-03-03 00:00" in zh.body and "社区党组织" in zh.body
    assert "原因：-" in zh.body  # noqa: RUF001 - a parameter the notice lacks
    en = render("order_accepted", {"member_name": "Zhang", "accepted_at": "2026-03-02T02:00:00Z"}, "en",
                timedelta(hours=8))
    assert en.body == "Hello there: party member Zhang accepted your request at 2026-03-02 10:00 and will " \
                      "contact you soon."
    assert render("order_accepted", {}, "fr").subject.startswith("【三单制】")  # unknown language: Chinese


# ---- signatures ------------------------------------------------------------------------------------
def test_signature_verifies_and_rejects_tampering_and_old_timestamps() -> None:
    body = b'{"a":1}'
    signature = sign(SECRET, 1_700_000_000, body)
    assert signature.startswith("sha256=") and len(signature) == 7 + 64
    assert verify(SECRET, "1700000000", signature, body, now=1_700_000_100)
    assert not verify(SECRET, "1700000000", signature, b'{"a":2}', now=1_700_000_100)
    assert not verify(b"other", "1700000000", signature, body, now=1_700_000_100)
    assert not verify(SECRET, "1700000001", signature, body, now=1_700_000_100)  # timestamp is signed too
    assert not verify(SECRET, "1700000000", signature, body, now=1_700_000_000 + 301)  # replayed later
    assert not verify(SECRET, None, signature, body, now=1_700_000_000)
    assert not verify(SECRET, "soon", signature, body, now=1_700_000_000)


def test_sms_body_template_escapes_values() -> None:
    filled = fill('{"to": "{phone}", "text": "{text}"}', {"phone": "138", "text": 'say "hi"\n'})
    assert json.loads(filled) == {"to": "138", "text": 'say "hi"\n'}


# ---- a local HTTP receiver -----------------------------------------------------------------------
class Receiver:
    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.statuses: list[int] = []  # replies in order, then 200
        self.reply = b"{}"
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append((self.path, dict(self.headers.items()), body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.end_headers()
                self.wfile.write(receiver.reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_webhook_posts_a_signed_body_with_the_idempotency_key(receiver: Receiver) -> None:
    WebhookChannel(SECRET).send(message(address=f"{receiver.url}/hook"))
    path, headers, body = receiver.requests[0]
    assert path == "/hook" and headers["X-Sandan-Notification-Id"] == "n-abc"
    assert verify(SECRET, headers["X-Sandan-Timestamp"], headers["X-Sandan-Signature"], body, now=time.time())
    payload = json.loads(body)
    assert payload["notification_id"] == "n-abc" and payload["body"] == '请接单 "o-1"' and "address" not in payload


def test_http_errors_are_classified(receiver: Receiver) -> None:
    channel = WebhookChannel(SECRET, timeout=2)
    receiver.statuses = [503, 429, 404]
    for code, permanent in (("http_503", False), ("http_429", False), ("http_404", True)):
        with pytest.raises(SendError) as error:
            channel.send(message(address=receiver.url))
        assert (error.value.code, error.value.permanent) == (code, permanent)
    with pytest.raises(SendError) as refused:
        channel.send(message(address="http://127.0.0.1:1/hook"))
    assert refused.value.code == "connection_refused" and not refused.value.permanent
    with pytest.raises(SendError) as bad:
        channel.send(message(address="file:///etc/passwd"))
    assert bad.value.code == "bad_url" and bad.value.permanent


def test_sms_gateway_gets_the_configured_body(receiver: Receiver) -> None:
    SmsChannel(f"{receiver.url}/sms", '{"mobile": "{phone}", "content": "{text}", "ref": "{notification_id}"}',
               token="gw-token").send(message(address="13900000001"))
    _, headers, body = receiver.requests[0]
    assert json.loads(body) == {"mobile": "13900000001", "content": '请接单 "o-1"', "ref": "n-abc"}
    assert headers["Authorization"] == "Bearer gw-token" and headers["X-Sandan-Notification-Id"] == "n-abc"


def test_wechat_template_message_and_its_errcode(receiver: Receiver) -> None:
    channel = WeChatChannel(f"{receiver.url}/cgi-bin/message/template/send", "TPL-1")
    channel.send(message(address="oWx_abcdef"))
    payload = json.loads(receiver.requests[0][2])
    assert payload["touser"] == "oWx_abcdef" and payload["template_id"] == "TPL-1"
    assert payload["data"]["first"]["value"] == "派单" and payload["client_msg_id"] == "n-abc"
    receiver.reply = b'{"errcode": 43004, "errmsg": "require subscribe"}'
    with pytest.raises(SendError) as error:
        channel.send(message(address="oWx_abcdef"))
    assert (error.value.code, error.value.permanent) == ("wechat_43004", True)
    receiver.reply = b'{"errcode": -1}'
    with pytest.raises(SendError) as busy:
        channel.send(message(address="oWx_abcdef"))
    assert (busy.value.code, busy.value.permanent) == ("wechat_m1", False)


# ---- a local SMTP server -------------------------------------------------------------------------
class Inbox:
    def __init__(self) -> None:
        self.mails: list[Any] = []
        self.refuse: set[str] = set()

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address in self.refuse:
            return "550 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.mails.append(envelope)
        return "250 Message accepted"


def test_email_over_a_real_smtp_server() -> None:
    inbox = Inbox()
    inbox.refuse.add("nobody@example.org")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        channel = EmailChannel("127.0.0.1", port, "notify@sandan.local")
        channel.send(message(address="m1@example.org", urgent=True))
        mail = inbox.mails[0]
        assert mail.rcpt_tos == ["m1@example.org"]
        text = mail.content.decode()
        assert "Message-ID: <n-abc@sandan.notify>" in text and "X-Sandan-Notification-Id: n-abc" in text
        assert "X-Priority: 1" in text
        with pytest.raises(SendError) as refused:
            channel.send(message(address="nobody@example.org"))
        assert (refused.value.code, refused.value.permanent) == ("smtp_refused", True)
    finally:
        controller.stop()
    with pytest.raises(SendError) as down:
        EmailChannel("127.0.0.1", 1, "notify@sandan.local", timeout=2).send(message(address="m1@example.org"))
    assert down.value.code == "connection_refused" and not down.value.permanent


def test_console_channel_writes_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "out" / "console.jsonl"
    ConsoleChannel(str(path)).send(message(address="m-1"))
    ConsoleChannel(str(path)).send(message(address="m-2"))
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [line["address"] for line in lines] == ["m-1", "m-2"] and lines[0]["body"] == '请接单 "o-1"'
