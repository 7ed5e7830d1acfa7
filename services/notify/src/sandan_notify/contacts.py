"""How to reach a recipient, asked at the moment of need and never stored (not in the event store, not in
notify's tables): residents from intake (GetDemandContact), members and units from dispatch
(GetMemberContact / GetUnitContact), each called as notify itself (a service_notify token from the client
credentials grant, over TLS where configured); offices from notify's own office directory. A short in-memory
cache spares the owning services repeated calls.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import grpc

from sandan_contracts.rpc import dispatch_pb2, dispatch_pb2_grpc, intake_pb2, intake_pb2_grpc
from sandan_eventbus import channels
from sandan_eventbus.auth.client import BearerAuth, TokenSource, TokenUnavailable
from sandan_notify.directory import Offices

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Contact:
    recipient_id: str  # the resident's id for a resident (the notice knows only the demand)
    name: str = ""
    email: str = ""
    phone: str = ""
    wechat_openid: str = ""
    webhook_url: str = ""
    channels: tuple[str, ...] = ()  # an office's configured channel order, if any

    def address(self, channel: str) -> str:
        return {"email": self.email, "sms": self.phone, "wechat": self.wechat_openid, "webhook": self.webhook_url,
                "console": self.recipient_id}.get(channel, "")


class ContactNotFound(Exception):
    """The owner does not know this recipient (or has nothing to reach them by): give up. `reason` is the code the
    notice is skipped (or its channel failed) with."""

    reason = "no_contact"


class ContactErased(ContactNotFound):
    """The resident's personal data was erased at their request (intake answers `erased`): they cannot be reached,
    now or later, so the notice is given up at once (never retried)."""

    reason = "recipient_erased"


class ContactUnavailable(Exception):
    """The owner could not answer now (down, timeout, refused our token) or the issuer gave us no token: try
    again later."""


class ContactBook(Protocol):
    def lookup(self, kind: str, ref: str) -> Contact: ...


class GrpcContacts:
    """Contacts from intake and dispatch over gRPC, offices from the directory; cached for `ttl_seconds`.

    `identity` is notify's own token source (`OidcSettings().identity()`: client credentials, cached until
    shortly before expiry); `credentials` the TLS credentials for calling the owners (None: plaintext, local)."""

    def __init__(self, intake_address: str, dispatch_address: str, identity: TokenSource, offices: Offices, *,
                 credentials: grpc.ChannelCredentials | None = None, timeout: float = 5.0,
                 ttl_seconds: float = 60.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        # look-ups are reads: retried on UNAVAILABLE and on an owner's "busy" refusal (sandan_eventbus.channels)
        auth = [BearerAuth(identity)]
        self._intake_channel = channels.channel(intake_address, credentials, auth)
        self._dispatch_channel = channels.channel(dispatch_address, credentials, auth)
        self.intake = intake_pb2_grpc.IntakeStub(self._intake_channel)
        self.dispatch = dispatch_pb2_grpc.DispatchStub(self._dispatch_channel)
        self.offices = offices
        self.timeout = timeout
        self.ttl = ttl_seconds
        self.monotonic = monotonic
        self._cache: dict[tuple[str, str], tuple[float, Contact]] = {}
        self._lock = threading.Lock()
        self._trouble: str | None = None  # the refusal last logged; logged again only after a look-up worked

    def lookup(self, kind: str, ref: str) -> Contact:
        if kind in ("branch", "town", "county"):
            return office_contact(self.offices, kind, ref)
        key = (kind, ref)
        with self._lock:
            hit = self._cache.get(key)
            if hit and self.monotonic() - hit[0] < self.ttl:
                return hit[1]
        contact = self._fetch(kind, ref)
        with self._lock:
            self._cache[key] = (self.monotonic(), contact)
            self._trouble = None
        return contact

    def _fetch(self, kind: str, ref: str) -> Contact:
        try:
            if kind == "resident":
                r = self._call(self.intake.GetDemandContact, intake_pb2.DemandRef(demand_id=ref))
                if r.erased:
                    raise ContactErased(f"resident of demand {ref}: erased")
                return Contact(r.resident_id or ref, r.name, r.email, r.phone, r.wechat_openid)
            if kind == "member":
                m = self._call(self.dispatch.GetMemberContact, dispatch_pb2.MemberRef(member_id=ref))
                return Contact(m.member_id or ref, m.name, m.email, m.phone, m.wechat_openid)
            if kind == "unit":
                u = self._call(self.dispatch.GetUnitContact, dispatch_pb2.UnitRef(unit_id=ref))
                return Contact(u.unit_id or ref, u.unit_name, u.contact_email, webhook_url=u.webhook_url)
        except TokenUnavailable as refused:
            # notify's own identity: the issuer is down or refused our client credentials. Not the recipient's
            # fault: the notice waits and is tried again (its message names the client id, never the secret).
            self._once("no_token", "no token for notify's own identity (SANDAN_OIDC_CLIENT_ID / _SECRET, or "
                       "the issuer is down): contact look-ups wait", str(refused))
            raise ContactUnavailable("contact_no_token") from None
        except grpc.RpcError as error:
            code = error.code() if hasattr(error, "code") else None
            if code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                raise ContactNotFound(f"{kind} {ref}: {code.name}") from None
            if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                self._once(code.name, "the owner refused notify's token: contact look-ups wait", code.name)
            name = code.name.lower() if code is not None else "rpc_error"
            raise ContactUnavailable(f"contact_{name}") from None
        raise ContactNotFound(f"unknown recipient kind {kind}")

    def _once(self, trouble: str, message: str, reason: str) -> None:
        """One log line per kind of refusal until a look-up works again (every notice would repeat it)."""
        with self._lock:
            if self._trouble == trouble:
                return
            self._trouble = trouble
        log.error(message, extra={"fields": {"reason": reason[:200]}})

    def _call(self, method: Any, request: Any) -> Any:
        return method(request, timeout=self.timeout)

    def close(self) -> None:
        self._intake_channel.close()
        self._dispatch_channel.close()


def office_contact(offices: Offices, kind: str, ref: str) -> Contact:
    office = offices.office(kind, ref)
    if office is None:
        raise ContactNotFound(f"no {kind} office {ref} in the office directory")
    return Contact(ref, office.name, office.email, office.phone, office.wechat_openid, office.webhook_url,
                   office.channels)


class StaticContacts:
    """Fixed contacts for tests and the demo; offices from the directory when given."""

    def __init__(self, contacts: dict[tuple[str, str], Contact], offices: Offices | None = None) -> None:
        self.contacts = contacts
        self.offices = offices
        self.unavailable: set[tuple[str, str]] = set()  # tests: make a lookup fail transiently
        self.erased: set[tuple[str, str]] = set()  # tests: the owner answers that this recipient was erased
        self.calls = 0

    def lookup(self, kind: str, ref: str) -> Contact:
        self.calls += 1
        if (kind, ref) in self.unavailable:
            raise ContactUnavailable("contact_unavailable")
        if (kind, ref) in self.erased:
            raise ContactErased(f"{kind} {ref}")
        if (kind, ref) in self.contacts:
            return self.contacts[(kind, ref)]
        if self.offices is not None and kind in ("branch", "town", "county"):
            return office_contact(self.offices, kind, ref)
        raise ContactNotFound(f"{kind} {ref}")
