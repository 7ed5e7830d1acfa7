"""`sandan set-aside list|redrive`: the events a service's relay set aside (it could not publish them; the rest
flowed past them), through the service's own `sandan.ops.v1.SetAside` service, with the operator's token. Each
service with a relay (intake, dispatch, notify) keeps its own; an event is named by its notification id, as `list`
prints it. A re-drive publishes it alone, once however often it is asked, and stays set aside if it is refused
again; every attempt is recorded with who asked. Re-drive a set-aside event before the dead letters it caused.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from sandan_cli.common import (
    EXIT_FAILED,
    EXIT_USAGE,
    JSON_HELP,
    as_dict,
    attempt,
    calling,
    cli_of,
    emit_json,
    err,
    fail,
    table,
)
from sandan_cli.deadletters import default_operator
from sandan_contracts.rpc import ops_pb2 as pb
from sandan_contracts.rpc import ops_pb2_grpc

app = typer.Typer(help="Events the relays of intake, dispatch and notify set aside: list, re-drive (operators).",
                  no_args_is_help=True)

# the services with a relay, each serving sandan.ops.v1.SetAside for its own store
PUBLISHERS = ("intake", "dispatch", "notify")
PUBLISHED = ("published", "already_published")

AsJson = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
Service = Annotated[str, typer.Option("--service", "-s", help="the service: intake, dispatch or notify")]


def check_service(service: str) -> str:
    if service not in PUBLISHERS:
        fail(f"--service: {service!r} is not one of {', '.join(PUBLISHERS)}", EXIT_USAGE)
    return service


@app.command("list")
def list_(ctx: typer.Context,
          services: Annotated[list[str] | None, typer.Option("--service", "-s", help="intake, dispatch or notify "
                                                              "(repeatable); default: all three")] = None,
          include_published: Annotated[bool, typer.Option("--all", help="also those a re-drive already published")]
          = False,
          limit: Annotated[int, typer.Option(min=1, max=1000, help="at most this many per service")] = 100,
          as_json: AsJson = False) -> None:
    """Set-aside events, oldest first, per service, with why each was refused. A service that cannot be asked is
    reported (exit 1 if any)."""
    cli = cli_of(ctx)
    request = pb.ListSetAsideRequest(include_published=include_published, limit=limit)
    items: list[dict[str, Any]] = []
    waiting: dict[str, int] = {}
    problems: list[dict[str, Any]] = []
    for service in [check_service(s) for s in (services or PUBLISHERS)]:
        with calling(service):
            channel = cli.channel(service)
        with channel:
            reply, problem = attempt(f"{service} ListSetAside", lambda ch=channel: ops_pb2_grpc.SetAsideStub(
                ch).ListSetAside(request, timeout=cli.timeout))
        if problem is not None:
            problems.append({"service": service, **problem})
            continue
        assert reply is not None
        waiting[service] = reply.set_aside
        items += [{"service": service, **as_dict(item)} for item in reply.items]
    if as_json:
        emit_json({"set_aside": waiting, "items": items, "errors": problems})
    else:
        table("set-aside events", ["service", "id", "status", "first set aside", "event", "topic", "attempts",
                                   "error"],
              [[i["service"], i["notification_id"], i["status"], i["first_at"][:19], i["event_type"],
                i["topic"] or "-", i["attempts"], i["error"][:120]] for i in items])
        err.print(", ".join(f"{s}: {n} set aside" for s, n in waiting.items()) or "nothing asked", markup=False)
        for p in problems:
            err.print(f"error: {p['message']}", markup=False)
    if problems:
        raise typer.Exit(EXIT_FAILED)


@app.command()
def redrive(ctx: typer.Context,
            ids: Annotated[list[int], typer.Argument(min=1, help="notification ids of set-aside events, as `list` "
                                                      "prints them")],
            service: Service,
            operator: Annotated[str, typer.Option(envvar="SANDAN_OPERATOR", help="who asks, as stated; the service "
                                                  "records the verified caller (the token's subject) in its place. "
                                                  "Default: the token's user name")] = "",
            reason: Annotated[str, typer.Option(help="why (recorded)")] = "",
            as_json: AsJson = False) -> None:
    """Publish set-aside events again, each alone, once its cause is fixed (e.g. the topic's max.message.bytes
    raised): asking twice is harmless. Each attempt is recorded with who asked (the verified caller), the reason and
    the outcome.

    Exit 1 when any was not published (refused again: it stays set aside, or not found)."""
    cli = cli_of(ctx)
    check_service(service)
    who = operator or default_operator(ctx)
    if not who:
        fail("--operator is required (who asks is recorded)", EXIT_USAGE)
    with calling(f"{service} RedriveSetAside"):
        stub = ops_pb2_grpc.SetAsideStub(cli.channel(service))
        reply = stub.RedriveSetAside(pb.RedriveSetAsideRequest(notification_ids=ids, operator=who, reason=reason),
                                     timeout=cli.timeout)
    results = [{"notification_id": r.notification_id, "outcome": r.outcome, "error": r.error,
                "published": r.outcome in PUBLISHED} for r in reply.results]
    if as_json:
        emit_json({"service": service, "operator": who, "results": results})
    else:
        table(f"re-drive of set-aside events ({service}, by {who})", ["id", "outcome", "error"],
              [[r["notification_id"], r["outcome"], r["error"]] for r in results])
    if not all(r["published"] for r in results):
        raise typer.Exit(EXIT_FAILED)
