"""Who may call what on notify, with real signed tokens through the production chain (`edge.server` with the
authentication interceptor): preferences only for the recipient themselves, the delivery log and dead letters
for operators, nothing without a token, and a refused call changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from sandan_contracts.rpc import notify_pb2 as pb
from sandan_contracts.rpc.notify_pb2_grpc import NotifyStub
from sandan_eventbus import channels, edge
from sandan_eventbus.auth.devissuer import LocalIssuer
from sandan_notify.api import add_to_server
from sandan_notify.preferences import OWNERS

Code = grpc.StatusCode
OK, DENIED = Code.OK, Code.PERMISSION_DENIED

# Who calls: roles and the claims that bind them (offices as the office directory names them: conftest.OFFICES).
PEOPLE: dict[str, tuple[list[str], dict[str, str]]] = {
    "resident r-1": (["resident"], {"resident_id": "r-1"}),
    "member m-1": (["member"], {"member_id": "m-1", "community_id": "c-1", "unit_id": "u-1"}),
    "unit admin u-1": (["unit_admin"], {"unit_id": "u-1"}),
    "secretary c-1": (["branch_secretary"], {"community_id": "c-1"}),
    "town chengjiang": (["town_office"], {"town_id": "chengjiang"}),
    "town majiazhou": (["town_office"], {"town_id": "majiazhou"}),
    "county taihe": (["county_office"], {"county_id": "taihe"}),
    "county elsewhere": (["county_office"], {"county_id": "elsewhere"}),
    "member m-1 and secretary c-1": (["member", "branch_secretary"], {"member_id": "m-1", "community_id": "c-1"}),
    "operator": (["operator"], {}),
    "partner": (["partner"], {}),
    "notify": (["service_notify"], {}),
}

# (who, recipient kind, recipient id, what they get) for SetPreferences and GetPreferences alike
PREFERENCES: list[tuple[str, str, str, Code]] = [
    ("resident r-1", "resident", "r-1", OK),
    ("resident r-1", "resident", "r-2", DENIED),  # another resident's
    ("member m-1", "member", "m-1", OK),
    ("member m-1", "member", "m-2", DENIED),  # another member's
    ("member m-1", "unit", "u-1", DENIED),  # their unit's are the unit admin's, not a member's
    ("member m-1", "branch", "c-1", DENIED),
    ("unit admin u-1", "unit", "u-1", OK),
    ("unit admin u-1", "unit", "u-2", DENIED),  # another unit
    ("secretary c-1", "branch", "c-1", OK),
    ("secretary c-1", "branch", "c-2", DENIED),  # another community's office
    ("secretary c-1", "member", "m-1", DENIED),  # a member of their community is still someone else
    ("town chengjiang", "town", "chengjiang", OK),
    ("town majiazhou", "town", "chengjiang", DENIED),  # a town office of another town
    ("town chengjiang", "branch", "c-1", DENIED),  # a community of its town is not its office
    ("county taihe", "county", "taihe", OK),
    ("county elsewhere", "county", "taihe", DENIED),
    ("county taihe", "town", "chengjiang", DENIED),
    ("member m-1 and secretary c-1", "member", "m-1", OK),  # either of their roles may be the one
    ("member m-1 and secretary c-1", "branch", "c-1", OK),
    ("operator", "member", "m-1", DENIED),  # not in the row
    ("partner", "county", "taihe", DENIED),  # not in the row
    ("notify", "member", "m-1", DENIED),  # not in the row
]


@pytest.fixture
async def bare(h, local_issuer: LocalIssuer) -> AsyncIterator[NotifyStub]:  # type: ignore[no-untyped-def]
    """A stub sending no token of its own: each call gives one (metadata=...)."""
    server = edge.server("notify", guards=local_issuer.guards())
    add_to_server(server, h.app)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with channels.aio_channel(f"127.0.0.1:{port}") as channel:
            yield NotifyStub(channel)
    finally:
        await server.stop(None)


def token(issuer: LocalIssuer, who: str) -> tuple[tuple[str, str]]:
    roles, claims = PEOPLE[who]
    return issuer.metadata(who.replace(" ", "-"), roles, **claims)


async def outcome(call: Any) -> Code:
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error.code()
    return Code.OK


def test_every_recipient_kind_has_an_owner_and_each_is_tried() -> None:
    from sandan_notify.domain import KINDS

    assert set(OWNERS) == set(KINDS)
    assert {kind for _w, kind, _i, e in PREFERENCES if e == OK} == set(KINDS)
    assert {kind for _w, kind, _i, e in PREFERENCES if e == DENIED} == set(KINDS)


@pytest.mark.parametrize(("who", "kind", "recipient_id", "expected"), PREFERENCES,
                         ids=[f"{w}-{k}-{i}" for w, k, i, _e in PREFERENCES])
async def test_preferences_are_the_recipients_own(h, bare: NotifyStub, local_issuer: LocalIssuer,  # type: ignore[no-untyped-def]
                                                  who: str, kind: str, recipient_id: str, expected: Code) -> None:
    ref = pb.RecipientRef(recipient_kind=kind, recipient_id=recipient_id)
    metadata = token(local_issuer, who)
    assert await outcome(bare.GetPreferences(ref, metadata=metadata)) == expected
    wanted = pb.Preferences(recipient=ref, channels=["email"], language="en")
    assert await outcome(bare.SetPreferences(wanted, metadata=metadata)) == expected
    stored = h.app.preferences.get(kind, recipient_id)
    if expected == OK:
        assert (stored.channels, stored.language, stored.is_default) == (("email",), "en", False)
    else:  # refused: nothing changed
        assert stored.is_default


@pytest.mark.parametrize(("who", "expected"), [("operator", OK), ("county taihe", DENIED), ("member m-1", DENIED),
                                               ("secretary c-1", DENIED), ("partner", DENIED)])
async def test_the_delivery_log_and_dead_letters_are_for_operators(bare: NotifyStub, local_issuer: LocalIssuer,
                                                                  who: str, expected: Code) -> None:
    metadata = token(local_issuer, who)
    assert await outcome(bare.ListDeliveries(pb.ListDeliveriesRequest(), metadata=metadata)) == expected
    assert await outcome(bare.ListDeadLetters(pb.ListDeadLettersRequest(), metadata=metadata)) == expected


async def test_without_a_token_every_method_is_unauthenticated(h, bare: NotifyStub) -> None:  # type: ignore[no-untyped-def]
    ref = pb.RecipientRef(recipient_kind="member", recipient_id="m-1")
    calls = [bare.SetPreferences(pb.Preferences(recipient=ref, channels=["sms"])), bare.GetPreferences(ref),
             bare.ListDeliveries(pb.ListDeliveriesRequest()), bare.ListDeadLetters(pb.ListDeadLettersRequest())]
    for call in calls:
        assert await outcome(call) == Code.UNAUTHENTICATED
    bad = (("authorization", "Bearer not-a-jwt"),)
    assert await outcome(bare.GetPreferences(ref, metadata=bad)) == Code.UNAUTHENTICATED
    assert h.app.preferences.get("member", "m-1").is_default
