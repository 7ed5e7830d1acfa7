"""The four services as the gateway calls them: one channel each (the shipped retry policy, TLS when configured),
every call carrying a bearer token, a correlation id and a deadline.

A person's call carries that person's access token, so the services (not the gateway) decide what is allowed; the
gateway's own calls (public notice board, partner systems through Open311) carry its service identity
(`sandan-gateway`, client credentials). A refusal comes back as `Refused` with the gRPC code and the service's
message, which the HTTP layer turns into a plain message or a problem+json answer.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc

from sandan_contracts.rpc import dispatch_pb2, dispatch_pb2_grpc, intake_pb2_grpc, notify_pb2_grpc, scoring_pb2_grpc
from sandan_eventbus.auth.client import TokenSource, TokenUnavailable
from sandan_eventbus.channels import aio_channel
from sandan_eventbus.checks import limit_of

R = TypeVar("R")
PUBLIC_IDS = limit_of("member_ids").max_items or 0  # ids of each kind per PublicNames call (dispatch's bound)
_FIELD = re.compile(r"^([A-Za-z_][A-Za-z0-9_.\[\]]*): ")


@dataclass
class Refused(Exception):
    """A service said no (or could not be reached). `field` names the request field an INVALID_ARGUMENT is about."""

    code: grpc.StatusCode
    message: str
    field: str | None = None

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


def refused(error: grpc.aio.AioRpcError) -> Refused:
    message = error.details() or error.code().name.lower()
    found = _FIELD.match(message) if error.code() == grpc.StatusCode.INVALID_ARGUMENT else None
    return Refused(error.code(), message, found.group(1) if found else None)


def channel(address: str, credentials: grpc.ChannelCredentials | None) -> grpc.aio.Channel:
    """The shipped retry policy, TLS when configured, and trace context on every call (a page's request and the
    calls it makes are one trace)."""
    return aio_channel(address, credentials)


class Backend:
    def __init__(self, addresses: dict[str, str], credentials: grpc.ChannelCredentials | None,
                 identity: TokenSource | None, timeout: float = 10.0) -> None:
        self.addresses, self.credentials = addresses, credentials
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._stubs: dict[str, Any] = {}
        self.identity = identity
        self.timeout = timeout

    def _stub(self, name: str, cls: Any) -> Any:
        # Channels are made on first use, inside the server's event loop (an asyncio channel is bound to one loop).
        if name not in self._stubs:
            self._channels[name] = channel(self.addresses[name], self.credentials)
            self._stubs[name] = cls(self._channels[name])
        return self._stubs[name]

    @property
    def intake(self) -> intake_pb2_grpc.IntakeStub:
        return self._stub("intake", intake_pb2_grpc.IntakeStub)

    @property
    def dispatch(self) -> dispatch_pb2_grpc.DispatchStub:
        return self._stub("dispatch", dispatch_pb2_grpc.DispatchStub)

    @property
    def scoring(self) -> scoring_pb2_grpc.ScoringStub:
        return self._stub("scoring", scoring_pb2_grpc.ScoringStub)

    @property
    def notify(self) -> notify_pb2_grpc.NotifyStub:
        return self._stub("notify", notify_pb2_grpc.NotifyStub)

    async def close(self) -> None:
        for ch in self._channels.values():
            await ch.close()
        self._channels.clear()
        self._stubs.clear()

    async def call(self, method: Callable[..., Awaitable[R]], request: Any, token: str,
                   correlation_id: str | None = None) -> R:
        """`method` as the holder of `token` (a signed-in person's access token)."""
        metadata = (("authorization", f"Bearer {token}"),
                    ("x-correlation-id", correlation_id or f"gateway-{uuid.uuid4().hex}"))
        try:
            return await method(request, metadata=metadata, timeout=self.timeout)
        except grpc.aio.AioRpcError as error:
            raise refused(error) from None

    async def as_gateway(self, method: Callable[..., Awaitable[R]], request: Any,
                         correlation_id: str | None = None) -> R:
        """`method` as the gateway itself (public pages, partner systems)."""
        if self.identity is None:
            raise Refused(grpc.StatusCode.UNAVAILABLE, "the gateway has no service identity configured")
        try:
            token = await asyncio.to_thread(self.identity.token)  # blocking at most once per token lifetime
        except TokenUnavailable as exc:
            raise Refused(grpc.StatusCode.UNAVAILABLE, str(exc)) from None
        return await self.call(method, request, token, correlation_id)

    async def public_names(self, member_ids: list[str], unit_ids: list[str]) -> tuple[dict[str, str],
                                                                                   dict[str, str]]:
        """The public names of the members who consented to be named on the notice board, and the units' names,
        read as the gateway (dispatch's PublicNames: never a contact name). Names that cannot be read leave the
        notice readable: a member is then shown as not named, a unit by its id."""
        members: dict[str, str] = {}
        units: dict[str, str] = {}
        member_ids, unit_ids = list(dict.fromkeys(member_ids)), list(dict.fromkeys(unit_ids))
        for start in range(0, max(len(member_ids), len(unit_ids)), PUBLIC_IDS):
            try:
                found = await self.as_gateway(self.dispatch.PublicNames, dispatch_pb2.PublicNamesRequest(
                    member_ids=member_ids[start:start + PUBLIC_IDS], unit_ids=unit_ids[start:start + PUBLIC_IDS]))
            except Refused:
                break
            members.update((m.member_id, m.public_name) for m in found.members)
            units.update((u.unit_id, u.unit_name) for u in found.units)
        return members, units
