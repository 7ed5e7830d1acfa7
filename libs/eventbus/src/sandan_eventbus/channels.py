"""Client channels to our services, with gRPC's standard retry policy (a service config `methodConfig`).

A service under load refuses a call with RESOURCE_EXHAUSTED and a pushback hint before doing anything
(`sandan_eventbus.edge.InFlightLimit`), so every method is retried on RESOURCE_EXHAUSTED. Idempotent methods
(reads, and writes whose repetition changes nothing, e.g. PostDemand with the same client_request_id) are also
retried on UNAVAILABLE: the call may have run before the connection broke, and only for those is running it twice
harmless. Other writes (e.g. EscalateOrder, which would escalate twice) are not retried on UNAVAILABLE.

`channel` and `aio_channel` also take TLS credentials and client interceptors (a service calling as itself:
`BearerAuth(OidcSettings().identity())`), so every caller keeps the retry policy. Every call also runs under an
OpenTelemetry client span and carries the current trace context (`traceparent` metadata: `sandan_eventbus.tracing`),
so a call one service makes to another continues the trace it is part of.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import grpc

from sandan_eventbus import tracing

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
        "WhatIf", "Digest", "Publishing"),
    "sandan.notify.v1.Notify": ("SetPreferences", "GetPreferences", "ListDeliveries", "ListDeadLetters"),
    # Redrive is left out: each attempt is recorded, so a retry after a broken connection would be on record twice
    "sandan.ops.v1.DeadLetters": ("List", "Get"),
    "sandan.ops.v1.SetAside": ("ListSetAside",),  # RedriveSetAside left out, as Redrive
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
    """A blocking plaintext channel with the retry policy (local runs; see `channel`)."""
    return grpc.insecure_channel(address, options=options())


def channel(address: str, credentials: grpc.ChannelCredentials | None = None,
            interceptors: Sequence[Any] = ()) -> grpc.Channel:
    """A blocking channel with the retry policy: over TLS with `credentials` (plaintext without: where allowed,
    `GrpcTlsSettings.channel_credentials()` says which), and `interceptors` (e.g. `BearerAuth`) on every call.

    Interceptors run once per call, above gRPC's retries, so a retried attempt carries the same token."""
    base = tracing.intercept_channel(grpc.secure_channel(address, credentials, options=options())
                                     if credentials is not None else grpc.insecure_channel(address, options=options()))
    return grpc.intercept_channel(base, *interceptors) if interceptors else base


class _UnaryStream(grpc.aio.UnaryStreamClientInterceptor):
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await self.inner.intercept_unary_stream(continuation, details, request)


class _StreamUnary(grpc.aio.StreamUnaryClientInterceptor):
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def intercept_stream_unary(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        return await self.inner.intercept_stream_unary(continuation, details, request_iterator)


class _StreamStream(grpc.aio.StreamStreamClientInterceptor):
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def intercept_stream_stream(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        return await self.inner.intercept_stream_stream(continuation, details, request_iterator)


_ADAPTERS: list[tuple[type, Any]] = [
    (grpc.aio.UnaryUnaryClientInterceptor, None), (grpc.aio.UnaryStreamClientInterceptor, _UnaryStream),
    (grpc.aio.StreamUnaryClientInterceptor, _StreamUnary), (grpc.aio.StreamStreamClientInterceptor, _StreamStream)]


def _each_kind(interceptors: Sequence[Any]) -> list[Any]:
    """grpc.aio files an interceptor under the first kind it implements only (unary-unary before unary-stream...),
    so one implementing several (AioBearerAuth) would skip streaming calls: it goes in as itself for its first
    kind and through an adapter for each other kind."""
    out: list[Any] = []
    for interceptor in interceptors:
        kinds = [adapter for kind, adapter in _ADAPTERS if isinstance(interceptor, kind)]
        out += [interceptor] + [adapter(interceptor) for adapter in kinds[1:]]
    return out


def aio_channel(address: str, credentials: grpc.ChannelCredentials | None = None,
                interceptors: Sequence[Any] = ()) -> grpc.aio.Channel:
    """An asyncio channel (the demo, the tests, CLIs) with the retry policy; TLS and interceptors (e.g.
    `AioBearerAuth`, for unary and streaming calls alike) as in `channel`."""
    chain = [*_each_kind(interceptors), *tracing.aio_client_interceptors()]
    if credentials is not None:
        return grpc.aio.secure_channel(address, credentials, options=options(), interceptors=chain)
    return grpc.aio.insecure_channel(address, options=options(), interceptors=chain)
