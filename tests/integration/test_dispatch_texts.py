"""What members and secretaries write about a service to a resident, in dispatch as a real process (issue 9).

Given the shared stack (dispatch on its SQLite files, with its own KEK), a community, and a resident's demand that
the secretary escalated with a distinctive note and a member completed with distinctive notes:
- no file of dispatch's (the event store, its -wal and -shm, the contacts and keys database) holds either text,
  while dispatch's data-key table holds the demand's wrapped key;
- when the secretary erases the resident in intake, intake publishes DemandTextsShredded and dispatch, reading it,
  destroys the demand's key (its row is gone) and records TextsShredded on the order, caused by intake's fact;
  the texts are still in no file.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from pathlib import Path

import pytest

from sandan_contracts.rpc import dispatch_pb2 as dpb
from sandan_contracts.rpc import intake_pb2 as ipb
from tests.integration.conftest import Stack
from tests.integration.scenario import a_community, demand_reaches, order_for

pytestmark = pytest.mark.kafka


def files_of_dispatch(workdir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in workdir.iterdir()
            if p.name.startswith(("dispatch-events.db", "dispatch.db"))}


def key_ids(workdir: Path, demand_id: str) -> list[str]:
    with sqlite3.connect(f"file:{workdir / 'dispatch.db'}?mode=ro", uri=True) as db:
        return [r[0] for r in db.execute("SELECT key_id FROM dispatch_data_keys WHERE demand_id = ?", (demand_id,))]


async def test_dispatchs_notes_are_sealed_on_disk_and_forgotten_when_intake_erases_the_resident(
        stack: Stack) -> None:
    tag = uuid.uuid4().hex[:8]
    note, notes = f"the landlord {tag}-L refuses the repair", f"she showed me her bruise {tag}-N"
    c = await a_community(stack, members=1)
    worker, secretary = stack.intake_stub(c.grid_worker), stack.dispatch_stub(c.secretary)
    resident_id = (await worker.RegisterResident(ipb.RegisterResidentRequest(
        community_id=c.community_id, name=f"Shangguan {tag}", phone="13700001111", address="Tower 9"))).resident_id
    demand = await worker.PostDemand(ipb.PostDemandRequest(
        client_request_id=uuid.uuid4().hex, resident_id=resident_id, community_id=c.community_id,
        grid_id=c.grid_id, menu_item_id=c.item_id, description="needs medicine", urgency="normal",
        channel="hotline"))
    order = await order_for(stack, c, demand.demand_id)
    await secretary.EscalateOrder(dpb.EscalateOrderRequest(order_id=order.order_id, reason="no_capacity", note=note))
    member = stack.dispatch_stub(c.member(0))
    await secretary.DispatchOrder(dpb.DispatchOrderRequest(order_id=order.order_id, member_id=c.members[0]))
    await member.AcceptOrder(dpb.AcceptOrderRequest(order_id=order.order_id, member_id=c.members[0]))
    await member.CompleteService(dpb.CompleteServiceRequest(order_id=order.order_id, member_id=c.members[0],
                                                            hours=1.0, notes=notes))
    await demand_reaches(stack, c, demand.demand_id, "served")

    workdir = stack.workdir
    files = files_of_dispatch(workdir)
    assert {"dispatch-events.db", "dispatch.db"} <= set(files)
    assert any(order.order_id.encode() in raw or demand.demand_id.encode() in raw for raw in files.values())
    for text in (note, notes, f"{tag}-L", f"{tag}-N"):
        assert not [name for name, raw in files.items() if text.encode() in raw], text
    assert key_ids(workdir, demand.demand_id) == [f"demand:{demand.demand_id}"]

    erased = await stack.intake_stub(c.secretary).EraseResident(ipb.EraseResidentRequest(
        resident_id=resident_id, reason="resident_request"))
    assert erased.keys_destroyed >= 1

    deadline = time.monotonic() + 90
    while True:
        history = await secretary.GetOrderHistory(dpb.OrderRef(order_id=order.order_id))
        if history.entries[-1].what == "TextsShredded" or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.3)
    last = history.entries[-1]
    assert (last.what, last.subject, last.role) == ("TextsShredded", "", "")
    assert last.caused_by.startswith("intake:")  # intake's DemandTextsShredded
    assert key_ids(workdir, demand.demand_id) == []
    files = files_of_dispatch(workdir)
    for text in (note, notes, f"{tag}-L", f"{tag}-N"):
        assert not [name for name, raw in files.items() if text.encode() in raw], text
    # the order itself goes on as it was
    assert (await secretary.GetOrder(dpb.OrderRef(order_id=order.order_id))).status == "completed"
