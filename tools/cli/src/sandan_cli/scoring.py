"""`sandan scoring rebuild|what-if|rules|digest`: scoring's admin calls (what `sandan-scoring` offers), with the
caller's token: rebuild for operators; what-if and digest for operators and the county office; rules for most.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sandan_cli.common import JSON_HELP, as_dict, calling, cli_of, emit_json, err, out, table
from sandan_contracts.rpc import scoring_pb2 as pb
from sandan_contracts.rpc import scoring_pb2_grpc

app = typer.Typer(help="Scoring: rebuild the ledger from the log, compare rule sets, digest.", no_args_is_help=True)

AsJson = Annotated[bool, typer.Option("--json", help=JSON_HELP)]


def stub(ctx: typer.Context) -> scoring_pb2_grpc.ScoringStub:
    with calling("scoring"):
        return scoring_pb2_grpc.ScoringStub(cli_of(ctx).channel("scoring"))


@app.command()
def rebuild(ctx: typer.Context,
            rules: Annotated[str, typer.Option(help="rule set version (default: the active one)")] = "",
            as_json: AsJson = False) -> None:
    """Replay the event log, fold it into a new ledger and swap it in (operators), with a progress bar; prints the
    new digest. A rebuild already running is refused (FAILED_PRECONDITION)."""
    cli = cli_of(ctx)
    done: dict[str, Any] | None = None
    phases: list[dict[str, Any]] = []
    with calling("scoring Rebuild"), Progress(
            TextColumn("{task.description:8}"), BarColumn(), MofNCompleteColumn(), TextColumn("events"),
            TimeElapsedColumn(), console=err, transient=False, disable=as_json) as progress:
        tasks: dict[str, Any] = {}
        # the stream's deadline covers the whole rebuild: a county's log takes minutes, not the per-call timeout
        for p in stub(ctx).Rebuild(pb.RebuildRequest(rule_set_version=rules), timeout=max(cli.timeout, 3600.0)):
            if p.phase not in tasks:
                tasks[p.phase] = progress.add_task(p.phase, total=p.events_total or None)
            progress.update(tasks[p.phase], completed=p.events_read, total=p.events_total or None)
            phases.append(as_dict(p))
            if p.phase == "done":
                done = as_dict(p)
    if done is None:
        err.print("the stream ended without `done`: the rebuild did not finish", markup=False)
        raise typer.Exit(1)
    if as_json:
        emit_json(done)
        return
    out.print(f"rebuilt {done['events_read']} events in {done['seconds']:.2f}s under rules "
              f"{done['rule_set_version']}: digest {done['digest']}", markup=False)


@app.command("what-if")
def what_if(ctx: typer.Context,
            rules: Annotated[str, typer.Argument(help="the candidate rule set version (see `sandan scoring rules`)")],
            quarter: Annotated[str, typer.Argument(help="e.g. 2026Q4")],
            changed_only: Annotated[bool, typer.Option("--changed", help="only members whose points or stars "
                                                       "would change")] = False,
            as_json: AsJson = False) -> None:
    """Each member's points and stars in a quarter under the active rules and under a candidate rule set."""
    cli = cli_of(ctx)
    with calling("scoring WhatIf"):
        report = stub(ctx).WhatIf(pb.WhatIfRequest(rule_set_version=rules, quarter=quarter), timeout=cli.timeout)
    members = [as_dict(m) for m in report.members]
    if changed_only:
        members = [m for m in members if m["current_points"] != m["candidate_points"]
                   or m["current_stars"] != m["candidate_stars"]]
    if as_json:
        emit_json({"quarter": quarter, "current_version": report.current_version,
                   "candidate_version": report.candidate_version, "members": members})
        return
    table(f"what if {report.candidate_version} instead of {report.current_version} ({quarter})",
          ["member", f"points {report.current_version}", f"points {report.candidate_version}", "Δ points",
           f"stars {report.current_version}", f"stars {report.candidate_version}"],
          [[m["member_id"], m["current_points"], m["candidate_points"], m["candidate_points"] - m["current_points"],
            m["current_stars"], m["candidate_stars"]] for m in members])


@app.command()
def rules(ctx: typer.Context, as_json: AsJson = False) -> None:
    """The published rule sets, and which one is active."""
    cli = cli_of(ctx)
    with calling("scoring RuleSets"):
        reply = stub(ctx).RuleSets(pb.Empty(), timeout=cli.timeout)
    sets = [as_dict(r) for r in reply.rule_sets]
    if as_json:
        emit_json(sets)
        return
    table("rule sets", ["version", "active", "description"],
          [[r["version"], "yes" if r["active"] else "", r["description"]] for r in sets])


@app.command()
def digest(ctx: typer.Context, as_json: AsJson = False) -> None:
    """The digest of the current ledger and summaries (equal to a rebuild's when nothing was lost)."""
    cli = cli_of(ctx)
    with calling("scoring Digest"):
        reply = as_dict(stub(ctx).Digest(pb.Empty(), timeout=cli.timeout))
    if as_json:
        emit_json(reply)
        return
    out.print(f"{reply['digest']} generation={reply['generation']} rules={reply['rule_set_version']} "
              f"entries={reply['entries']}", markup=False)
