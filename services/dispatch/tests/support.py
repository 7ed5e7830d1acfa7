"""Shared by dispatch's gRPC tests: a dispatch server behind the authentication interceptor, and calling it as a
person (a real signed token from the local issuer, with their roles and places)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from eventsourcing.persistence import Tracking

from sandan_contracts import decode, encode
from sandan_contracts.events import DemandPosted
from sandan_contracts.rpc import dispatch_pb2_grpc as pb_grpc
from sandan_dispatch import api
from sandan_dispatch.application import DispatchApplication
from sandan_dispatch.contacts import Contacts
from sandan_dispatch.domain import Order
from sandan_eventbus import edge
from sandan_eventbus.auth.devissuer import LocalIssuer
from sandan_eventbus.auth.principal import resident_id_for
from sandan_eventbus.auth.scopes import Places
from sandan_eventbus.trace import TracingMapper, traced

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
# Two towns of one county: c1 in t1, c2 in t2 (what SANDAN_PLACES_FILE would say).
PLACES = Places.parse("""
[county]
id = "k1"
[communities.c1]
town = "t1"
[communities.c2]
town = "t2"
""")


def rid(n: int) -> str:
    """A resident's id as intake issues them (a uuid)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"sandan-test/resident/{n}"))


class Caller:
    """The Dispatch stub, calling as one person: every call carries a freshly signed token with their roles and
    places (`caller.AcceptOrder(request)`, extra metadata as usual)."""

    def __init__(self, stub: pb_grpc.DispatchStub, issuer: LocalIssuer, subject: str, roles: Sequence[str],
                 **claims: str) -> None:
        self.stub, self.issuer, self.subject, self.roles, self.claims = stub, issuer, subject, list(roles), claims

    @property
    def resident_id(self) -> str:
        """The resident record a resident's account is bound to (derived from issuer and subject)."""
        return self.claims.get("resident_id") or resident_id_for(self.issuer.url, self.subject)

    def __getattr__(self, method: str) -> Callable[..., Any]:
        call = getattr(self.stub, method)
        token = self.issuer.metadata(self.subject, self.roles, **self.claims)

        def with_token(request: Any, metadata: Sequence[tuple[str, str]] = (), **kwargs: Any) -> Any:
            return call(request, metadata=(*token, *metadata), **kwargs)

        return with_token


@dataclass
class Served:
    stub: pb_grpc.DispatchStub  # no token at all
    app: DispatchApplication
    issuer: LocalIssuer
    writes: list[int] = field(default_factory=list)
    offset: int = 0

    # ---- people ------------------------------------------------------------------------------------
    def as_(self, subject: str, roles: Sequence[str], **claims: str) -> Caller:
        return Caller(self.stub, self.issuer, subject, roles, **claims)

    def secretary(self, community: str = "c1") -> Caller:
        return self.as_(f"secretary-{community}", ["branch_secretary"], community_id=community)

    def leader(self, grid: str, community: str = "c1") -> Caller:
        return self.as_(f"leader-{grid}", ["grid_leader"], community_id=community, grid_id=grid)

    def member(self, member_id: str, community: str = "c1", grid: str = "g1") -> Caller:
        return self.as_(f"member-{member_id}", ["member"], member_id=member_id, community_id=community,
                        grid_id=grid)

    def unit_admin(self, unit: str) -> Caller:
        return self.as_(f"unit-admin-{unit}", ["unit_admin"], unit_id=unit)

    def town(self, town: str) -> Caller:
        return self.as_(f"town-{town}", ["town_office"], town_id=town)

    def county(self, county: str = "k1") -> Caller:
        return self.as_(f"county-{county}", ["county_office"], county_id=county)

    def grid_worker(self, community: str = "c1") -> Caller:
        return self.as_(f"grid-worker-{community}", ["grid_worker"], community_id=community)

    def resident(self, name: str, **claims: str) -> Caller:
        return self.as_(f"resident-{name}", ["resident"], **claims)

    def notify(self) -> Caller:
        return self.as_("service-account-notify", ["service_notify"])

    # ---- the store ---------------------------------------------------------------------------------
    def stored(self) -> list[Any]:
        """Every stored event's notification, in order."""
        return list(self.app.recorder.select_notifications(start=1, limit=10_000))

    def actors(self, since: int) -> list[tuple[str, str, str | None]]:
        """(subject, role, on behalf of) of each event stored after the first `since` ones."""
        mapper = self.app.mapper
        assert isinstance(mapper, TracingMapper)
        out = []
        for n in self.stored()[since:]:
            trace = mapper.trace_of(n)
            actor = trace.actor if trace else None
            out.append((actor.subject, actor.role, actor.on_behalf_of) if actor else ("", "", None))
        return out

    def open_order(self, demand_id: str, *, community: str = "c1", grid: str = "g1",
                   category: str = "medical") -> str:
        """What the inbox does when intake publishes DemandPosted (traced by the fact, as the inbox does)."""
        self.offset += 1
        event = DemandPosted(demand_id=demand_id, community_id=community, grid_id=grid, category=category,
                             urgency="urgent", care_tags=[], channel="app", due_at=T0 + timedelta(days=1),
                             deadline_seconds=86_400)
        envelope, decoded = decode(encode(event, event_id=f"intake:{self.offset}", producer="intake",
                                          occurred_at=T0, correlation_id=f"demand-{demand_id}", causation_id=None))
        with traced(envelope.correlation_id, envelope.event_id):
            changed = self.app.on_demand_event(envelope, decoded)
            self.app.save_tracked(*changed, tracking=Tracking("kafka:intake.demands.v1:0", self.offset))
        return str(Order.create_id(demand_id))


@asynccontextmanager
async def serving(issuer: LocalIssuer, places: Places = PLACES) -> AsyncIterator[Served]:
    """Dispatch on a real socket behind the interceptor trusting `issuer` (as the runtime serves it)."""
    app = DispatchApplication("memory://", contacts=Contacts("memory://"), clock=lambda: T0, places=places)
    writes: list[int] = []
    server = edge.server("dispatch", guards=issuer.guards())
    api.register(server, api.DispatchServicer(app, on_write=lambda: writes.append(1)))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield Served(pb_grpc.DispatchStub(channel), app, issuer, writes)
    finally:
        await server.stop(None)
        app.close()
