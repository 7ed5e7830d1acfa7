"""Client channels to our services, with gRPC's standard retry policy (a service config `methodConfig`).

A service under load refuses a call with RESOURCE_EXHAUSTED and a pushback hint before doing anything
(`sandan_eventbus.edge.InFlightLimit`), so every method is retried on RESOURCE_EXHAUSTED. Idempotent methods
(reads, and writes whose repetition changes nothing, e.g. PostDemand with the same client_request_id) are also
retried on UNAVAILABLE: the call may have run before the connection broke, and only for those is running it twice
harmless. Other writes (e.g. EscalateOrder, which would escalate twice) are not retried on UNAVAILABLE.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import grpc

RETRY_ON_REFUSAL = ["RESOURCE_EXHAUSTED"]
RETRY_IDEMPOTENT = ["UNAVAILABLE", "RESOURCE_EXHAUSTED"]

# Per service, the methods that may run twice with the effect of once.
IDEMPOTENT: dict[str, tuple[str, ...]] = {
    "sandan.intake.v1.Intake": (
        "PublishMenuItem", "RetireMenuItem", "ListMenu", "PostDemand", "GetDemand", "GetServiceContact",
        "GetDemandContact"),
    "sandan.dispatch.v1.Dispatch": (
        "ReportUnit", "JoinTeam", "FormGridGroup", "AppointGridLeader", "GetMember", "GetMemberContact",
        "GetUnitContact", "ScheduleActivity", "SignUpResident", "CheckInMember", "GetActivity", "GetOrder",
        "FindOrderByDemand", "ListOrders", "DispatchOrder", "SuggestMembers"),
    "sandan.scoring.v1.Scoring": (
        "GetMemberLedger", "Leaderboard", "UnitReport", "CommunityNotice", "PublishQuarterlyNotices", "RuleSets",
        "WhatIf", "Digest"),
    "sandan.notify.v1.Notify": ("SetPreferences", "GetPreferences", "ListDeliveries", "ListDeadLetters"),
    "grpc.health.v1.Health": ("Check",),
}


def _retry_policy(codes: list[str]) -> dict[str, Any]:
    # 5 attempts is gRPC's ceiling; a server's pushback replaces the backoff for the attempt it answers
    return {"maxAttempts": 5, "initialBackoff": "0.1s", "maxBackoff": "5s", "backoffMultiplier": 2,
            "retryableStatusCodes": codes}


def service_config(idempotent: Mapping[str, tuple[str, ...]] = IDEMPOTENT) -> str:
    """The service config JSON: idempotent methods retry on both codes, every other method on refusals only."""
    method_configs: list[dict[str, Any]] = [
        {"name": [{"service": s, "method": m} for s, methods in idempotent.items() for m in methods],
         "retryPolicy": _retry_policy(RETRY_IDEMPOTENT)},
        {"name": [{"service": s} for s in idempotent], "retryPolicy": _retry_policy(RETRY_ON_REFUSAL)},
    ]
    return json.dumps({"methodConfig": method_configs})


def options() -> list[tuple[str, Any]]:
    return [
        ("grpc.enable_retries", 1),
        ("grpc.service_config", service_config()),
        # A call can be retried only while its request is buffered; the channel-wide default (256 KiB) runs out
        # with a few thousand calls in flight, and calls past it are quietly not retried.
        ("grpc.retry_buffer_size", 64 * 1024 * 1024),
    ]


def insecure_channel(address: str) -> grpc.Channel:
    """A blocking channel (e.g. notify's contact look-ups) with the retry policy."""
    return grpc.insecure_channel(address, options=options())


def aio_channel(address: str) -> grpc.aio.Channel:
    """An asyncio channel (the demo, the tests) with the retry policy."""
    return grpc.aio.insecure_channel(address, options=options())
