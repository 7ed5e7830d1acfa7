"""Shared by intake's tests: calling the gRPC API as a person (a real signed token from the local issuer), an
intake server behind the authentication interceptor, and the Inbox's stand-in for dispatch's facts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
from eventsourcing.persistence import Tracking
from sqlalchemy import func, select

from sandan_contracts import Envelope, Event
from sandan_contracts.rpc.intake_pb2_grpc import IntakeStub
from sandan_eventbus import edge
from sandan_eventbus.auth.devissuer import LocalIssuer
from sandan_eventbus.auth.principal import resident_id_for
from sandan_eventbus.trace import traced
from sandan_intake.api import add_to_server
from sandan_intake.application import IntakeApplication
from sandan_intake.keys import Keyring
from sandan_intake.residents import ResidentStore, residents


class Caller:
    """The Intake stub, calling as one person: every call carries a freshly signed token with their roles and
    places (`stub.PostDemand(request)` as usual)."""

    def __init__(self, stub: IntakeStub, issuer: LocalIssuer, subject: str, roles: Sequence[str],
                 **claims: str) -> None:
        self.stub, self.issuer, self.subject, self.roles, self.claims = stub, issuer, subject, list(roles), claims

    @property
    def resident_id(self) -> str:
        """The resident record a resident's account is bound to (derived from issuer and subject)."""
        return self.claims.get("resident_id") or resident_id_for(self.issuer.url, self.subject)

    def __getattr__(self, method: str) -> Callable[..., Any]:
        call = getattr(self.stub, method)

        def with_token(request: Any, **kwargs: Any) -> Any:
            return call(request, metadata=self.issuer.metadata(self.subject, self.roles, **self.claims), **kwargs)

        return with_token


@dataclass
class Served:
    """An intake server behind the interceptor trusting the local issuer, on an in-memory app."""

    app: IntakeApplication
    stub: IntakeStub  # without a token
    issuer: LocalIssuer
    wakes: list[int] = field(default_factory=list)
    offset: int = 0

    def as_(self, subject: str, roles: Sequence[str], **claims: str) -> Caller:
        return Caller(self.stub, self.issuer, subject, roles, **claims)

    def apply(self, event: Event) -> None:
        """Stand-in for the Inbox: the consumer policy, traced by the fact, saved with a tracking record."""
        self.offset += 1
        envelope = Envelope(event_id=f"dispatch:{self.offset}", type=event.TYPE, schema_version=1,
                            occurred_at="2025-03-01T08:00:00Z", producer="dispatch", key=event.key(),
                            correlation_id="c", data=event.model_dump(mode="json"))
        with traced(envelope.correlation_id, envelope.event_id):
            changed = self.app.on_order_event(envelope, event)
            self.app.save_tracked(*changed, tracking=Tracking("kafka:dispatch.orders.v1:0", self.offset))

    def stored(self) -> tuple[int, int]:
        """How much is stored: the event log's last notification id and the residents' rows."""
        with self.app.residents.engine.connect() as conn:
            rows = conn.execute(select(func.count()).select_from(residents)).scalar_one()
        return self.app.recorder.max_notification_id() or 0, rows


@asynccontextmanager
async def serving(issuer: LocalIssuer, app: IntakeApplication | None = None) -> AsyncIterator[Served]:
    app = app or IntakeApplication(ResidentStore("memory://", Keyring.generate()), "memory://")
    server = edge.server("intake", guards=issuer.guards())
    served = Served(app, None, issuer)  # type: ignore[arg-type]  # the stub once the channel is open
    add_to_server(server, app, lambda: served.wakes.append(1))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            served.stub = IntakeStub(channel)
            yield served
    finally:
        await server.stop(None)
        app.close()


async def status_of(call: Any) -> grpc.aio.AioRpcError:
    """The refusal a call ends with (fails the test if it succeeds)."""
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error
    raise AssertionError("the call succeeded")
