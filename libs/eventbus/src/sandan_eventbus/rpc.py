"""The gRPC edge every service shares: tracing from metadata, refusals mapped to status codes, health."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from sandan_eventbus.checks import quote
from sandan_eventbus.errors import (
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from sandan_eventbus.trace import traced

log = logging.getLogger(__name__)

CORRELATION_HEADER = "x-correlation-id"
MAX_DETAILS = 300
R = TypeVar("R")

_STATUS: list[tuple[type[DomainError], grpc.StatusCode]] = [
    (InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
]


def status_for(error: DomainError) -> grpc.StatusCode:
    for cls, code in _STATUS:
        if isinstance(error, cls):
            return code
    return grpc.StatusCode.FAILED_PRECONDITION


def details(error: DomainError) -> str:
    """A refusal's message as sent: bounded, so a message quoting a long input cannot overflow gRPC's metadata
    limit (the caller would get RESOURCE_EXHAUSTED instead of the refusal), and with control characters escaped."""
    return quote(str(error), MAX_DETAILS)


def correlation_id(context: grpc.aio.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == CORRELATION_HEADER and value:
            return str(value)[:200]
    return None


async def call(context: grpc.aio.ServicerContext, command: Callable[..., R], *args: Any, **kwargs: Any) -> R:
    """Run a synchronous application command off the event loop, traced, with refusals as statuses."""
    with traced(correlation_id(context)):
        try:
            return await asyncio.to_thread(command, *args, **kwargs)
        except DomainError as error:
            await context.abort(status_for(error), details(error))
            raise  # unreachable: abort raises


def add_health(server: grpc.aio.Server) -> health.aio.HealthServicer:
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    return servicer


async def set_serving(servicer: health.aio.HealthServicer, service_names: list[str], serving: bool) -> None:
    status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
    for name in ["", *service_names]:
        await servicer.set(name, status)


def bearer_token(context: grpc.aio.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and isinstance(value, str) and value.startswith("Bearer "):
            return value[len("Bearer "):].strip() or None
    return None


async def require_token(context: grpc.aio.ServicerContext, allowed: frozenset[str]) -> None:
    """Guard for calls that hand out personal data (contacts): only holders of a configured token.

    A shared-secret bearer token per calling service (e.g. notify), set by env; none configured means the
    call is refused to everyone. Production would put mTLS in front of this (see the README).
    """
    token = bearer_token(context)
    if token is None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "authorization: Bearer <token> is required")
        raise AssertionError("unreachable: abort raises")
    if not allowed or not any(hmac.compare_digest(token, t) for t in allowed):
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, "this token may not read contacts")
        raise AssertionError("unreachable: abort raises")


def tokens_from(raw: str) -> frozenset[str]:
    """Parse a comma-separated token list from the environment."""
    return frozenset(t.strip() for t in raw.split(",") if t.strip())
