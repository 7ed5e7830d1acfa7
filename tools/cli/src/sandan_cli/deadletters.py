"""`sandan deadletters list|show|redrive`: the consuming services' dead letters, through their own
`sandan.ops.v1.DeadLetters` service (the one `python -m sandan_eventbus.deadletters` calls), with the operator's
token. Each service keeps its own consumer group's dead letters; a re-drive goes through the service's inbox
again (re-validated), is applied at most once however often it is asked, and stays a dead letter if it fails
again. Names of dead letters, `<dead-letter topic>:<partition>:<offset>`, are read and printed as that module does.
"""

from __future__ import annotations

from typing import Annotated, Any

import click
import typer

from sandan_cli.auth import claims_of, username_of
from sandan_cli.common import (
    CONSUMERS,
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
    out,
    table,
)
from sandan_contracts.rpc import ops_pb2 as pb
from sandan_contracts.rpc import ops_pb2_grpc
from sandan_eventbus import deadletters as module
from sandan_eventbus.auth.client import TokenUnavailable

app = typer.Typer(help="Dead letters of intake, dispatch and notify: list, show, re-drive (operators).",
                  no_args_is_help=True)

AsJson = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
Service = Annotated[str, typer.Option("--service", "-s", help="the consuming service: intake, dispatch or notify")]


def check_service(service: str) -> str:
    if service not in CONSUMERS:
        fail(f"--service: {service!r} is not one of {', '.join(CONSUMERS)}", EXIT_USAGE)
    return service


def parse_ref(text: str) -> pb.DeadLetterRef:
    try:
        return module.parse_ref(text)
    except click.BadParameter as exc:
        raise typer.BadParameter(exc.message) from None


def stub(ctx: typer.Context, service: str) -> ops_pb2_grpc.DeadLettersStub:
    with calling(f"{service}"):
        return ops_pb2_grpc.DeadLettersStub(cli_of(ctx).channel(service))


def letter_dict(letter: pb.DeadLetter, service: str) -> dict[str, Any]:
    body = {"service": service, "name": module.ref_text(letter.ref), **as_dict(letter)}
    if letter.payload:
        body["payload"] = letter.payload.decode("utf-8", errors="replace")
    else:
        body.pop("payload", None)
    return body


@app.command("list")
def list_(ctx: typer.Context,
          services: Annotated[list[str] | None, typer.Option("--service", "-s", help="intake, dispatch or notify "
                                                              "(repeatable); default: all three")] = None,
          topic: Annotated[str, typer.Option(help="only dead letters consumed from this topic")] = "",
          include_applied: Annotated[bool, typer.Option("--all", help="also those a re-drive already applied")]
          = False,
          limit: Annotated[int, typer.Option(min=1, max=1000, help="at most this many per service")] = 100,
          as_json: AsJson = False) -> None:
    """Dead letters, most recent first, per service. A service that cannot be asked is reported (exit 1 if any)."""
    cli = cli_of(ctx)
    request = pb.ListDeadLettersRequest(source_topic=topic, include_applied=include_applied, limit=limit)
    letters: list[dict[str, Any]] = []
    problems: list[dict[str, Any]] = []
    for service in [check_service(s) for s in (services or CONSUMERS)]:
        with calling(service):
            channel = cli.channel(service)
        with channel:
            reply, problem = attempt(f"{service} List", lambda ch=channel: ops_pb2_grpc.DeadLettersStub(ch).List(
                request, timeout=cli.timeout))
        if problem is not None:
            problems.append({"service": service, **problem})
            continue
        assert reply is not None
        letters += [letter_dict(letter, service) for letter in reply.dead_letters]
    if as_json:
        emit_json({"dead_letters": letters, "errors": problems})
    else:
        table("dead letters", ["service", "dead letter", "status", "dead-lettered at", "event", "error"],
              [[d["service"], d["name"], d["status"], d["dead_lettered_at"][:19], d.get("event_type") or "-",
                d["error"][:120]] for d in letters])
        err.print(f"{len(letters)} dead letter(s)", markup=False)
        for p in problems:
            err.print(f"error: {p['message']}", markup=False)
    if problems:
        raise typer.Exit(EXIT_FAILED)


@app.command()
def show(ctx: typer.Context, ref: Annotated[str, typer.Argument(help="<dead-letter topic>:<partition>:<offset>")],
         service: Service, as_json: AsJson = False) -> None:
    """One dead letter: where it came from, why, its payload and every re-drive attempt."""
    cli = cli_of(ctx)
    wanted = parse_ref(ref)
    check_service(service)
    with calling(f"{service} Get"):
        letter = stub(ctx, service).Get(wanted, timeout=cli.timeout)
    body = letter_dict(letter, service)
    if as_json:
        emit_json(body)
        return
    attempts = body.pop("attempts", [])
    payload = body.pop("payload", "")
    table(f"dead letter {body['name']} ({service})", ["field", "value"],
          [[k, v] for k, v in body.items() if k not in ("ref", "name")])
    if attempts:
        table("re-drive attempts", ["at", "operator", "reason", "outcome", "detail"],
              [[a.get("at", ""), a.get("operator", ""), a.get("reason", ""), a.get("outcome", ""),
                a.get("detail", "")] for a in attempts])
    out.print("payload:", markup=False)
    out.print(payload, markup=False)


def default_operator(ctx: typer.Context) -> str:
    """Who asks, when not said: the token's user name, or its subject."""
    try:
        source = cli_of(ctx).token_source()
        return username_of(source, claims_of(source.token()))
    except TokenUnavailable:
        return ""


@app.command()
def redrive(ctx: typer.Context,
            refs: Annotated[list[str], typer.Argument(help="dead letters, <dead-letter topic>:<partition>:<offset>")],
            service: Service,
            operator: Annotated[str, typer.Option(envvar="SANDAN_OPERATOR", help="who asks, as stated; the service "
                                                  "records the verified caller (the token's subject) in its place. "
                                                  "Default: the token's user name")] = "",
            reason: Annotated[str, typer.Option(help="why (recorded)")] = "",
            as_json: AsJson = False) -> None:
    """Apply dead letters again through the service's inbox (re-validated), each at most once: asking twice is
    harmless. Each attempt is recorded with who asked (the verified caller), the reason and the outcome.

    Exit 1 when any was not applied (it failed again and stays a dead letter, or was not found)."""
    cli = cli_of(ctx)
    wanted = [parse_ref(r) for r in refs]
    check_service(service)
    who = operator or default_operator(ctx)
    if not who:
        fail("--operator is required (who asks is recorded)", EXIT_USAGE)
    with calling(f"{service} Redrive"):
        reply = stub(ctx, service).Redrive(pb.RedriveRequest(dead_letters=wanted, operator=who, reason=reason),
                                           timeout=cli.timeout)
    results = [{"dead_letter": module.ref_text(r.dead_letter), "outcome": r.outcome, "detail": r.detail,
                "applied": r.outcome in module.APPLIED} for r in reply.results]
    if as_json:
        emit_json({"service": service, "operator": who, "results": results})
    else:
        table(f"re-drive ({service}, by {who})", ["dead letter", "outcome", "detail"],
              [[r["dead_letter"], r["outcome"], r["detail"]] for r in results])
    if not all(r["applied"] for r in results):
        raise typer.Exit(EXIT_FAILED)
