"""The gRPC server interceptor every service runs: authenticate every call, allow it by role, name the caller.

- No `authorization: Bearer <jwt>` metadata, or a token that does not verify: UNAUTHENTICATED.
- A verified caller none of whose roles the method's row in the matrix (sandan_contracts/rpc/access.toml)
  names, or a method without a row: PERMISSION_DENIED. The service's code does not run.
- Otherwise the call runs with the caller's principal in `sandan_eventbus.auth.principal.current()`, where
  the application checks scope and the event store records who acted.

Only the health service is open (probes carry no token). A refusal is answered by a handler of the method's
own cardinality (unary or streaming) that never reads the request, so a caller without a token learns nothing
about the request's shape.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from sandan_contracts.access import ACCESS, AccessMatrix
from sandan_eventbus.auth.principal import Principal, acting_as
from sandan_eventbus.auth.tokens import InvalidToken, TokenVerifier

log = logging.getLogger(__name__)

OPEN_METHODS = frozenset({"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch",
                          "/grpc.health.v1.Health/List"})


def bearer_token(metadata: Any) -> str | None:
    for key, value in metadata or ():
        if key.lower() == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


def _refusal(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same cardinality that refuses without reading the request."""

    async def abort(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(code, message)

    async def abort_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await context.abort(code, message)
        yield  # pragma: no cover - abort raises

    ignore = lambda _raw: None  # noqa: E731 - the request is never decoded for a refused caller
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(abort_stream, ignore, handler.response_serializer)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(abort, ignore, handler.response_serializer)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(abort_stream, ignore, handler.response_serializer)
    return grpc.unary_unary_rpc_method_handler(abort, ignore, handler.response_serializer)


def _as(handler: grpc.RpcMethodHandler, principal: Principal) -> grpc.RpcMethodHandler:
    """The same handler, run with `principal` as the current caller."""
    if handler.unary_unary is not None:
        inner_uu: Callable[..., Awaitable[Any]] = handler.unary_unary

        async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            with acting_as(principal):
                return await inner_uu(request, context)

        return handler._replace(unary_unary=unary_unary)
    if handler.unary_stream is not None:
        inner_us = handler.unary_stream

        async def unary_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            with acting_as(principal):
                async for reply in inner_us(request, context):
                    yield reply

        return handler._replace(unary_stream=unary_stream)
    if handler.stream_unary is not None:
        inner_su = handler.stream_unary

        async def stream_unary(requests: Any, context: grpc.aio.ServicerContext) -> Any:
            with acting_as(principal):
                return await inner_su(requests, context)

        return handler._replace(stream_unary=stream_unary)
    inner_ss = handler.stream_stream

    async def stream_stream(requests: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        with acting_as(principal):
            async for reply in inner_ss(requests, context):
                yield reply

    return handler._replace(stream_stream=stream_stream)


class AuthInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, verifier: TokenVerifier, matrix: AccessMatrix = ACCESS,
                 open_methods: frozenset[str] = OPEN_METHODS) -> None:
        self.verifier = verifier
        self.matrix = matrix
        self.open_methods = open_methods
        self.known_roles = frozenset(matrix.roles)

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        method = details.method
        if handler is None or method in self.open_methods:
            return handler
        token = bearer_token(details.invocation_metadata)
        if token is None:
            return _refusal(handler, grpc.StatusCode.UNAUTHENTICATED, "authorization: Bearer <token> is required")
        try:
            claims = await self.verifier.verify_async(token)
        except InvalidToken as refused:
            return _refusal(handler, grpc.StatusCode.UNAUTHENTICATED, f"invalid token: {refused}")
        principal = Principal.from_claims(claims, self.known_roles)
        role = next((r for r in self.matrix.roles_for(method) if r in principal.roles), None)
        if role is None:
            log.info("call refused by role", extra={"fields": {"method": method, "subject": principal.subject,
                                                                "roles": sorted(principal.roles)}})
            name = method.rsplit("/", 1)[-1]
            return _refusal(handler, grpc.StatusCode.PERMISSION_DENIED,
                            f"{name} is not allowed for roles {', '.join(sorted(principal.roles)) or '(none)'}")
        return _as(handler, principal.as_role(role))
