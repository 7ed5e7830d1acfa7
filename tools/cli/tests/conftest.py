"""Fixtures for the CLI's tests: `sandan` run in-process with typer's CliRunner (`run`), and in-process stand-ins
for the services' gRPC methods the CLI calls (`fake`: plaintext, on a free loopback port), which answer with fixed
messages, refuse what a test says to refuse, and record the metadata each call carried."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from typer.testing import CliRunner, Result

from sandan_contracts.rpc import (
    audit_pb2,
    dispatch_pb2,
    dispatch_pb2_grpc,
    intake_pb2,
    intake_pb2_grpc,
    ops_pb2,
    ops_pb2_grpc,
    scoring_pb2,
    scoring_pb2_grpc,
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Calls:
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    refuse: dict[str, grpc.StatusCode] = field(default_factory=dict)

    def record(self, method: str, context: grpc.ServicerContext) -> None:
        self.seen.append((method, dict(context.invocation_metadata())))
        if method in self.refuse:
            context.abort(self.refuse[method], f"{method} is not allowed for roles ['test']")

    def tokens(self) -> set[str]:
        return {m.get("authorization", "") for _, m in self.seen}


HISTORY = audit_pb2.History(entries=[
    audit_pb2.Entry(version=1, at="2026-11-30T08:00:00+00:00", what="Posted", subject="sub-1", role="grid_worker",
                    on_behalf_of="r-1", correlation_id="c-1"),
    audit_pb2.Entry(version=2, at="2026-11-30T08:05:00+00:00", what="Accepted", caused_by="dispatch:7",
                    correlation_id="c-1")])
LETTER = ops_pb2.DeadLetter(
    ref=ops_pb2.DeadLetterRef(topic="intake.demands.v1.dlq", partition=0, offset=17), source_topic="intake.demands.v1",
    source_partition=2, source_offset=40, consumer_group="dispatch", error="undecodable: Expecting value",
    dead_lettered_at="2026-11-30T08:00:00+00:00", key="poison-1", size=9, status="dead", payload=b"{not json")


class Scoring(scoring_pb2_grpc.ScoringServicer):
    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    def Rebuild(self, request: Any, context: grpc.ServicerContext) -> Iterator[scoring_pb2.RebuildProgress]:
        self.calls.record("Rebuild", context)
        for read in (0, 5000, 10000):
            yield scoring_pb2.RebuildProgress(phase="reading", events_read=read, events_total=10000)
        yield scoring_pb2.RebuildProgress(phase="writing", events_read=10000, events_total=10000)
        yield scoring_pb2.RebuildProgress(phase="done", events_read=10000, events_total=10000, digest="ab12",
                                          rule_set_version=request.rule_set_version or "2026.1", seconds=1.5)

    def WhatIf(self, request: Any, context: grpc.ServicerContext) -> scoring_pb2.WhatIfReport:
        self.calls.record("WhatIf", context)
        return scoring_pb2.WhatIfReport(current_version="2026.1", candidate_version=request.rule_set_version,
                                        members=[scoring_pb2.MemberComparison(member_id="m-1", current_points=10,
                                                                              candidate_points=12, current_stars=3,
                                                                              candidate_stars=3),
                                                 scoring_pb2.MemberComparison(member_id="m-2", current_points=5,
                                                                              candidate_points=5)])

    def RuleSets(self, request: Any, context: grpc.ServicerContext) -> scoring_pb2.RuleSetList:
        self.calls.record("RuleSets", context)
        return scoring_pb2.RuleSetList(rule_sets=[scoring_pb2.RuleSet(version="2026.1", description="d", active=True)])

    def Digest(self, request: Any, context: grpc.ServicerContext) -> scoring_pb2.DigestReply:
        self.calls.record("Digest", context)
        return scoring_pb2.DigestReply(digest="ab12", generation=3, rule_set_version="2026.1", entries=12345678901)


class DeadLetters(ops_pb2_grpc.DeadLettersServicer):
    def __init__(self, calls: Calls) -> None:
        self.calls = calls
        self.applied: set[str] = set()

    def List(self, request: Any, context: grpc.ServicerContext) -> ops_pb2.DeadLetterList:
        self.calls.record("List", context)
        letter = ops_pb2.DeadLetter()
        letter.CopyFrom(LETTER)
        letter.ClearField("payload")
        return ops_pb2.DeadLetterList(dead_letters=[letter])

    def Get(self, request: Any, context: grpc.ServicerContext) -> ops_pb2.DeadLetter:
        self.calls.record("Get", context)
        if request != LETTER.ref:
            context.abort(grpc.StatusCode.NOT_FOUND, "no such dead letter")
        return LETTER

    def Redrive(self, request: Any, context: grpc.ServicerContext) -> ops_pb2.RedriveReply:
        self.calls.record("Redrive", context)
        self.seen_operator = request.operator
        results = []
        for ref in request.dead_letters:
            if ref != LETTER.ref:
                results.append(ops_pb2.RedriveResult(dead_letter=ref, outcome="not_found"))
            else:
                name = f"{ref.topic}:{ref.partition}:{ref.offset}"
                outcome = "already_applied" if name in self.applied else "applied"
                self.applied.add(name)
                results.append(ops_pb2.RedriveResult(dead_letter=ref, outcome=outcome))
        return ops_pb2.RedriveReply(results=results)


class Intake(intake_pb2_grpc.IntakeServicer):
    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    def GetDemand(self, request: Any, context: grpc.ServicerContext) -> intake_pb2.Demand:
        self.calls.record("GetDemand", context)
        if request.demand_id != "d-1":
            context.abort(grpc.StatusCode.NOT_FOUND, f"demand {request.demand_id} not found")
        return intake_pb2.Demand(demand_id="d-1", community_id="c-1", category="medical", status="accepted",
                                 member_id="m-1", special_care=True)

    def GetDemandHistory(self, request: Any, context: grpc.ServicerContext) -> audit_pb2.History:
        self.calls.record("GetDemandHistory", context)
        return HISTORY


class Dispatch(dispatch_pb2_grpc.DispatchServicer):
    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    def FindOrderByDemand(self, request: Any, context: grpc.ServicerContext) -> dispatch_pb2.Order:
        self.calls.record("FindOrderByDemand", context)
        return dispatch_pb2.Order(order_id="o-1", demand_id=request.demand_id, status="accepted", level="community")

    def GetOrder(self, request: Any, context: grpc.ServicerContext) -> dispatch_pb2.Order:
        self.calls.record("GetOrder", context)
        return dispatch_pb2.Order(order_id=request.order_id, demand_id="d-1", status="accepted", hours=1.5)

    def GetOrderHistory(self, request: Any, context: grpc.ServicerContext) -> audit_pb2.History:
        self.calls.record("GetOrderHistory", context)
        return HISTORY


@contextmanager
def serving() -> Iterator[tuple[str, Calls, DeadLetters]]:
    """One server with every stand-in (all services at one address), and what the calls carried."""
    calls = Calls()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    dead_letters = DeadLetters(calls)
    scoring_pb2_grpc.add_ScoringServicer_to_server(Scoring(calls), server)
    ops_pb2_grpc.add_DeadLettersServicer_to_server(dead_letters, server)
    intake_pb2_grpc.add_IntakeServicer_to_server(Intake(calls), server)
    dispatch_pb2_grpc.add_DispatchServicer_to_server(Dispatch(calls), server)
    address = f"127.0.0.1:{free_port()}"
    server.add_insecure_port(address)
    server.start()
    try:
        yield address, calls, dead_letters
    finally:
        server.stop(0)


@dataclass
class Fake:
    address: str
    calls: Calls
    dead_letters: DeadLetters


@pytest.fixture
def fake() -> Iterator[Fake]:
    with serving() as (address, calls, dead_letters):
        yield Fake(address, calls, dead_letters)


@dataclass
class Runner:
    """`sandan` in-process, with a clean environment for its settings: no token, an empty token cache."""

    env: dict[str, str]

    def __call__(self, *args: str, input: str | None = None, **env: str) -> Result:
        from sandan_cli.app import app

        # wide: rich wraps error panels at the terminal width, and the tests read the messages whole
        return CliRunner().invoke(app, list(args), env={"COLUMNS": "250", **self.env, **env}, catch_exceptions=False,
                                 input=input)


@pytest.fixture
def run(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Runner:
    for name in ("SANDAN_TOKEN", "SANDAN_OIDC_CLIENT_ID", "SANDAN_OIDC_CLIENT_SECRET", "SANDAN_OIDC_ISSUER",
                 "SANDAN_GRPC_PLAINTEXT", "SANDAN_GRPC_TLS_CA_FILE", "SANDAN_OPERATOR", *(
                     f"SANDAN_{s}_ADDRESS" for s in ("INTAKE", "DISPATCH", "SCORING", "NOTIFY"))):
        monkeypatch.delenv(name, raising=False)
    return Runner({"SANDAN_CACHE": str(tmp_path / "cache")})
