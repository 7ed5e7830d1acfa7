"""`sandan demand <id>` and `sandan order <id>`: what support staff look up, through the owning services' own
Get and History methods with the caller's token. The services decide what the caller's role may see: a role
outside a method's row is refused (shown as "not allowed" for that part), and no personal data is in these
replies at all (names, phones, addresses and descriptions stay in intake, released only by the contact calls to
the member who holds the order). History entries name who acted by their opaque subject, never by name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from sandan_cli.common import (
    JSON_HELP,
    as_dict,
    attempt,
    calling,
    cli_of,
    emit_json,
    err,
    table,
)
from sandan_contracts.rpc import dispatch_pb2, dispatch_pb2_grpc, intake_pb2, intake_pb2_grpc

AsJson = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
History = Annotated[bool, typer.Option(help="also who did what, and when (the audit trail)")]


def _part(what: str, call: Callable[[], Any]) -> dict[str, Any]:
    """One more part of a lookup: its data, or why it is not shown."""
    reply, problem = attempt(what, call)
    if problem is not None:
        return {"error": problem}
    return as_dict(reply)


def _history_rows(history: dict[str, Any]) -> list[list[Any]]:
    return [[e["version"], e["at"][:19], e["what"], e["subject"] or "-", e["role"] or "-",
             e["on_behalf_of"] or "-", e["caused_by"] or "-"] for e in history.get("entries", [])]


def _print_record(title: str, record: dict[str, Any]) -> None:
    table(title, ["field", "value"], [[k, ", ".join(map(str, v)) if isinstance(v, list) else v]
                                      for k, v in record.items()])


def _print_part(title: str, part: dict[str, Any] | None, rows: Callable[[dict[str, Any]], None]) -> None:
    if part is None:
        return
    if "error" in part:
        err.print(f"{title}: not shown ({part['error']['message']})", markup=False)
        return
    rows(part)


def _print_history(title: str) -> Callable[[dict[str, Any]], None]:
    def rows(history: dict[str, Any]) -> None:
        table(title, ["version", "at", "what", "who (subject)", "as role", "on behalf of", "caused by"],
              _history_rows(history))
    return rows


def demand(ctx: typer.Context, demand_id: Annotated[str, typer.Argument(help="the demand's id")],
           history: History = True,
           order: Annotated[bool, typer.Option(help="also dispatch's order for it")] = True,
           as_json: AsJson = False) -> None:
    """A demand as intake shows the caller (GetDemand), its history (GetDemandHistory) and dispatch's order for it
    (FindOrderByDemand). Exit 3 when not found, 4 when the caller may not see it."""
    cli = cli_of(ctx)
    with calling("intake"):
        intake = intake_pb2_grpc.IntakeStub(cli.channel("intake"))
    ref = intake_pb2.DemandRef(demand_id=demand_id)
    with calling("GetDemand"):
        found = as_dict(intake.GetDemand(ref, timeout=cli.timeout))
    result: dict[str, Any] = {"demand": found}
    if history:
        result["history"] = _part("GetDemandHistory", lambda: intake.GetDemandHistory(ref, timeout=cli.timeout))
    if order:
        try:
            dispatch = dispatch_pb2_grpc.DispatchStub(cli.channel("dispatch"))
            result["order"] = _part("FindOrderByDemand", lambda: dispatch.FindOrderByDemand(
                dispatch_pb2.DemandRef(demand_id=demand_id), timeout=cli.timeout))
        except Exception as exc:  # dispatch's address or TLS settings missing: the demand is still shown
            result["order"] = {"error": {"code": "UNKNOWN", "message": f"FindOrderByDemand: {exc}"}}
    if as_json:
        emit_json(result)
        return
    _print_record(f"demand {demand_id}", found)
    _print_part("history", result.get("history"), _print_history("history"))
    _print_part("order", result.get("order"), lambda o: _print_record(f"order {o['order_id']}", o))


def order(ctx: typer.Context, order_id: Annotated[str, typer.Argument(help="the order's id")],
          history: History = True, as_json: AsJson = False) -> None:
    """An order as dispatch shows the caller (GetOrder) and its history (GetOrderHistory). Exit 3 when not found,
    4 when the caller may not see it."""
    cli = cli_of(ctx)
    with calling("dispatch"):
        dispatch = dispatch_pb2_grpc.DispatchStub(cli.channel("dispatch"))
    ref = dispatch_pb2.OrderRef(order_id=order_id)
    with calling("GetOrder"):
        found = as_dict(dispatch.GetOrder(ref, timeout=cli.timeout))
    result: dict[str, Any] = {"order": found}
    if history:
        result["history"] = _part("GetOrderHistory", lambda: dispatch.GetOrderHistory(ref, timeout=cli.timeout))
    if as_json:
        emit_json(result)
        return
    _print_record(f"order {order_id}", found)
    _print_part("history", result.get("history"), _print_history("history"))
