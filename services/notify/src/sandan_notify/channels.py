"""The channel interface and its real adapters: SMTP e-mail, signed HTTP webhook, an SMS gateway over HTTP,
a WeChat template message over HTTP, and a console/file channel for the local demo.

Adapters are synchronous with a timeout each (they run in worker threads, one lane per channel, so a dead
channel only slows its own lane). They raise `SendError` with a machine code (http_503, smtp_refused,
timeout, ...) and whether trying again could help. Every adapter passes the notification id as the
idempotency key the channel understands (an HTTP header, the e-mail's Message-ID, a body field).
"""

from __future__ import annotations

import json
import smtplib
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Protocol

from sandan_notify.signing import NOTIFICATION_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign


@dataclass(frozen=True)
class Message:
    notification_id: str
    source_event_id: str
    recipient_kind: str
    recipient_id: str
    address: str  # e-mail address, phone, WeChat openid, webhook URL, or the recipient id (console)
    name: str
    template: str
    subject: str
    body: str
    urgent: bool


class SendError(Exception):
    def __init__(self, code: str, permanent: bool = False, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.permanent = permanent


class Channel(Protocol):
    name: str

    def send(self, message: Message) -> None:
        """Deliver or raise SendError."""


# ---- HTTP -------------------------------------------------------------------------------------------
def http_error(status: int) -> SendError:
    # Timeouts, throttling and server errors may pass; other client errors will not.
    return SendError(f"http_{status}", permanent=400 <= status < 500 and status not in (408, 425, 429))


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> bytes:
    if not url.startswith(("http://", "https://")):
        raise SendError("bad_url", permanent=True)
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)  # noqa: S310 - http(s) only
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:  # noqa: S310
            return reply.read()
    except urllib.error.HTTPError as error:
        raise http_error(error.code) from None
    except urllib.error.URLError as error:
        reason = error.reason
        if isinstance(reason, TimeoutError | socket.timeout):
            raise SendError("timeout") from None
        if isinstance(reason, ConnectionRefusedError):
            raise SendError("connection_refused") from None
        raise SendError("network_error", detail=str(reason)[:200]) from None
    except TimeoutError:
        raise SendError("timeout") from None
    except (ConnectionError, OSError) as error:
        raise SendError("network_error", detail=str(error)[:200]) from None


class WebhookChannel:
    """POST a JSON body signed with HMAC-SHA256 (see signing.py) to the recipient's webhook URL."""

    name = "webhook"

    def __init__(self, secret: bytes, timeout: float = 10.0, wall_clock: Callable[[], float] = time.time) -> None:
        if not secret:
            raise ValueError("a webhook secret is required")
        self.secret = secret
        self.timeout = timeout
        self.wall_clock = wall_clock  # the real time: receivers compare it with theirs

    def body(self, message: Message) -> bytes:
        payload = {k: v for k, v in asdict(message).items() if k not in ("address",)}
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()

    def send(self, message: Message) -> None:
        body = self.body(message)
        timestamp = int(self.wall_clock())
        post(message.address, body, {
            "Content-Type": "application/json; charset=utf-8",
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(self.secret, timestamp, body),
            NOTIFICATION_HEADER: message.notification_id,
        }, self.timeout)


def fill(template: str, values: dict[str, str]) -> str:
    """Fill `{phone}`-style placeholders with JSON-escaped values (the template is a JSON document)."""
    out = template
    for key, value in values.items():
        out = out.replace("{" + key + "}", json.dumps(value, ensure_ascii=False)[1:-1])
    return out


DEFAULT_SMS_BODY = '{"to": "{phone}", "text": "{text}", "id": "{notification_id}"}'


class SmsChannel:
    """An SMS gateway over HTTP: POST `body_template` (placeholders {phone} {text} {notification_id}
    {subject}) to `url`; 2xx means the gateway accepted the message."""

    name = "sms"

    def __init__(self, url: str, body_template: str = DEFAULT_SMS_BODY, token: str = "", timeout: float = 10.0,
                 content_type: str = "application/json; charset=utf-8") -> None:
        self.url = url
        self.body_template = body_template
        self.token = token
        self.timeout = timeout
        self.content_type = content_type

    def send(self, message: Message) -> None:
        body = fill(self.body_template, {"phone": message.address, "text": message.body,
                                         "subject": message.subject, "notification_id": message.notification_id})
        headers = {"Content-Type": self.content_type, NOTIFICATION_HEADER: message.notification_id}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        post(self.url, body.encode(), headers, self.timeout)


class WeChatChannel:
    """A WeChat official-account template message over HTTP (the endpoint is configurable: WeChat's
    message/template/send with an access token, or a gateway that manages the token). A reply with a non-zero
    `errcode` is a failure."""

    name = "wechat"

    def __init__(self, url: str, template_id: str, timeout: float = 10.0) -> None:
        self.url = url
        self.template_id = template_id
        self.timeout = timeout

    def send(self, message: Message) -> None:
        payload = {
            "touser": message.address,
            "template_id": self.template_id,
            "client_msg_id": message.notification_id,  # WeChat's own de-duplication key
            "data": {"first": {"value": message.subject}, "keyword1": {"value": message.body},
                     "remark": {"value": message.notification_id}},
        }
        reply = post(self.url, json.dumps(payload, ensure_ascii=False).encode(), {
            "Content-Type": "application/json; charset=utf-8", NOTIFICATION_HEADER: message.notification_id,
        }, self.timeout)
        try:
            errcode = int(json.loads(reply or b"{}").get("errcode", 0))
        except (ValueError, AttributeError):
            raise SendError("wechat_bad_reply") from None
        if errcode:
            # 40003 invalid openid, 43004 not subscribed: retrying will not help; others (e.g. -1 busy) may.
            raise SendError(f"wechat_{errcode}".replace("-", "m"), permanent=errcode in (40003, 43004, 40037))


class EmailChannel:
    """SMTP (smtplib): plain, STARTTLS or implicit TLS, optional login. Message-ID is derived from the
    notification id, so a re-sent copy is recognisably the same message."""

    name = "email"

    def __init__(self, host: str, port: int, sender: str, *, username: str = "", password: str = "",
                 security: str = "none", timeout: float = 10.0) -> None:
        if security not in ("none", "starttls", "ssl"):
            raise ValueError("security must be none, starttls or ssl")
        self.host, self.port, self.sender = host, port, sender
        self.username, self.password, self.security, self.timeout = username, password, security, timeout

    def build(self, message: Message) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = message.address
        mail["Subject"] = message.subject
        mail["Date"] = formatdate(localtime=False)
        mail["Message-ID"] = f"<{message.notification_id}@sandan.notify>"
        mail[NOTIFICATION_HEADER] = message.notification_id
        if message.urgent:
            mail["X-Priority"] = "1"
        mail.set_content(message.body)
        return mail

    def send(self, message: Message) -> None:
        mail = self.build(message)
        try:
            smtp_class = smtplib.SMTP_SSL if self.security == "ssl" else smtplib.SMTP
            with smtp_class(self.host, self.port, timeout=self.timeout) as smtp:
                if self.security == "starttls":
                    smtp.starttls()
                if self.username:
                    smtp.login(self.username, self.password)
                smtp.send_message(mail)
        except smtplib.SMTPRecipientsRefused:
            raise SendError("smtp_refused", permanent=True) from None
        except smtplib.SMTPAuthenticationError:
            raise SendError("smtp_auth") from None  # a configuration error: fixed by an operator, then retried
        except smtplib.SMTPResponseException as error:
            raise SendError(f"smtp_{error.smtp_code}", permanent=500 <= error.smtp_code < 600) from None
        except TimeoutError:
            raise SendError("timeout") from None
        except ConnectionRefusedError:
            raise SendError("connection_refused") from None
        except (smtplib.SMTPException, OSError) as error:
            raise SendError("smtp_error", detail=str(error)[:200]) from None


class ConsoleChannel:
    """The local demo's channel: one JSON line per message to a file (or stderr). Not for production."""

    name = "console"

    def __init__(self, path: str | None = None) -> None:
        self.path = Path(path) if path else None
        self._lock = threading.Lock()

    def send(self, message: Message) -> None:
        line = json.dumps(asdict(message), ensure_ascii=False) + "\n"
        with self._lock:
            if self.path is None:
                import sys

                sys.stderr.write(line)
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as out:
                out.write(line)
