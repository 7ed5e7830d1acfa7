"""The gRPC server every service runs, and the interceptor chain in front of its servicers.

The chain, outermost first:

0. the `outer` interceptors a runtime adds in front of everything (the metrics: `sandan_eventbus.metrics`, which
   must see the calls the limit and the guards refuse too).
1. `InFlightLimit`: at most `<SERVICE>_GRPC_MAX_IN_FLIGHT` calls (default 100) are handled at once; a call beyond
   that is refused at once, before any work, with RESOURCE_EXHAUSTED and the standard retry hint
   (`grpc-retry-pushback-ms` trailer). A refused call did not run, so retrying it is always safe; the shipped
   clients do so (`sandan_eventbus.channels`), and a retry already refused three times may use a quarter more.
   Health checks are never limited, so probes answer under load.
2. the `guards` a service adds (e.g. authentication): each a `CallGuard`, in the order given.
3. `RequestPolicy`: a request protobuf cannot decode (invalid UTF-8 in a string field) and a request breaking the
   input policy (`sandan_eventbus.checks`: control and bidi override characters, each field's maximum) are
   refused with INVALID_ARGUMENT naming the field; free text reaches the servicer NFC-normalised.

A request larger than `MAX_REQUEST_BYTES` (1 MiB) never reaches the chain: gRPC refuses it with RESOURCE_EXHAUSTED.

A `CallGuard` is one async context manager around each call, whatever the method's cardinality: it may refuse
before the method runs (`await call.context.abort(...)`) and clean up after it (also after a response stream
ends). Extending the chain is writing one `around` and passing the guard to `server(..., guards=[...])`.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message

from sandan_eventbus.checks import check_request_text, limit_of
from sandan_eventbus.config import ConfigError
from sandan_eventbus.errors import InvalidArgument

log = logging.getLogger(__name__)

HEALTH_PREFIX = "/grpc.health.v1.Health/"
PUSHBACK_HEADER = "grpc-retry-pushback-ms"
PREVIOUS_ATTEMPTS_HEADER = "grpc-previous-rpc-attempts"  # sent by gRPC's retry policy on every retry
DEFAULT_MAX_IN_FLIGHT = 100
# A request of more bytes is refused by gRPC itself (RESOURCE_EXHAUSTED "Received message larger than max"), before
# any of our code: the largest request the input policy allows is a few kilobytes.
MAX_REQUEST_BYTES = 1024 * 1024
MAX_PUSHBACK_SECONDS = 60.0  # a longer queue than this is better answered by the caller's own deadline
REPEATED_DEFAULT_ITEMS = 100  # a repeated string field not in the checks table


@dataclass(frozen=True)
class Call:
    """What a guard may look at: the full method name ("/sandan.intake.v1.Intake/PostDemand"), the caller's
    metadata and the servicer context (to abort, or to set trailing metadata)."""

    method: str
    context: grpc.aio.ServicerContext
    request: Any = None  # the request message for unary requests (policy refusals are `Refused`); None for streams

    def metadata(self, key: str) -> str | None:
        for k, v in self.context.invocation_metadata() or ():
            if k == key:
                return v if isinstance(v, str) else None
        return None


Around = Callable[[Call], contextlib.AbstractAsyncContextManager[None]]
Requests = Callable[[AsyncIterator[Any], grpc.aio.ServicerContext], AsyncIterator[Any]]


def wrap(handler: grpc.RpcMethodHandler, method: str, around: Around,
         requests: Requests | None = None) -> grpc.RpcMethodHandler:
    """The same handler with its behaviour run inside `around`, for each of the four cardinalities.
    `requests` (optional) wraps a request stream."""

    async def _run(result: Any) -> Any:
        return await result if inspect.isawaitable(result) else result

    async def _stream(result: Any) -> AsyncIterator[Any]:
        if hasattr(result, "__aiter__"):
            async for response in result:
                yield response
        else:  # a coroutine that writes with context.write()
            await _run(result)

    def _in(request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        return requests(request_iterator, context) if requests else request_iterator

    if handler.unary_unary:
        unary_unary = handler.unary_unary

        async def uu(request: Any, context: grpc.aio.ServicerContext) -> Any:
            async with around(Call(method, context, request)):
                return await _run(unary_unary(request, context))

        return handler._replace(unary_unary=uu)
    if handler.unary_stream:
        unary_stream = handler.unary_stream

        async def us(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            async with around(Call(method, context, request)):
                async for response in _stream(unary_stream(request, context)):
                    yield response

        return handler._replace(unary_stream=us)
    if handler.stream_unary:
        stream_unary = handler.stream_unary

        async def su(request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
            async with around(Call(method, context)):
                return await _run(stream_unary(_in(request_iterator, context), context))

        return handler._replace(stream_unary=su)
    stream_stream = handler.stream_stream

    async def ss(request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        async with around(Call(method, context)):
            async for response in _stream(stream_stream(_in(request_iterator, context), context)):
                yield response

    return handler._replace(stream_stream=ss)


class CallGuard(grpc.aio.ServerInterceptor):
    """Base of the chain's guards: override `around` (and `applies_to` to leave some methods alone)."""

    def applies_to(self, method: str) -> bool:
        return True

    @contextlib.asynccontextmanager
    async def around(self, call: Call) -> AsyncIterator[None]:
        yield

    async def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
                                details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None or not self.applies_to(details.method):
            return handler
        return wrap(handler, details.method, self.around)


# ---- 1. backpressure --------------------------------------------------------------------------------------
class InFlightLimit(CallGuard):
    """At most `limit` calls at once; beyond, RESOURCE_EXHAUSTED with a pushback. Each refused caller is given its
    own turn after the callers already told to come back, spaced by what the service can take (`limit` calls per
    mean call duration, Little's law), so a burst comes back spread out rather than all at once."""

    def __init__(self, limit: int, *, clock: Callable[[], float] = time.monotonic,
                 rand: Callable[[], float] = random.random) -> None:
        if limit < 1:
            raise ValueError("the in-flight limit must be at least 1")
        self.limit = limit
        self.in_flight = 0
        self.refused = 0  # since start; for tests
        self.clock = clock
        self.rand = rand
        self.mean_seconds = 0.1  # of a call; a guess until calls have finished
        self._next_turn = 0.0  # when the last caller told to come back is due

    def applies_to(self, method: str) -> bool:
        return not method.startswith(HEALTH_PREFIX)

    def pushback_ms(self) -> int:
        now = self.clock()
        pace = 1.0 / (0.75 * self.limit / self.mean_seconds)  # headroom for callers arriving anew
        self._next_turn = max(self._next_turn, now) + pace
        wait = (self._next_turn - now) * (0.9 + 0.2 * self.rand())  # +-10%: turns never collide exactly
        return round(min(max(wait, 0.005), MAX_PUSHBACK_SECONDS) * 1000)

    def ceiling(self, call: Call) -> int:
        """The limit, and a quarter more for a caller already refused three times: gRPC gives a call five attempts,
        and a burst the pushback could not spread evenly enough must not fail its unluckiest callers."""
        attempts = call.metadata(PREVIOUS_ATTEMPTS_HEADER) or "0"
        return self.limit + (self.limit // 4 + 1 if attempts.isdigit() and int(attempts) >= 3 else 0)

    @contextlib.asynccontextmanager
    async def around(self, call: Call) -> AsyncIterator[None]:
        if self.in_flight >= self.ceiling(call):
            self.refused += 1
            pushback = self.pushback_ms()
            await call.context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"busy: {self.limit} calls in flight; nothing was done, retry after {pushback} ms",
                trailing_metadata=((PUSHBACK_HEADER, str(pushback)),))
        self.in_flight += 1
        started = self.clock()
        try:
            yield
        finally:
            self.in_flight -= 1
            self.mean_seconds += 0.05 * ((self.clock() - started) - self.mean_seconds)  # moving average


# ---- 3. the input policy -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Refused:
    """Stands in for a request the policy refused: the behaviour aborts with INVALID_ARGUMENT instead of running."""

    message: str


def apply_policy(message: Message, prefix: str = "") -> None:
    """Check every string of a request against the policy (raising InvalidArgument naming the field path) and
    NFC-normalise it in place. Nested messages are walked; map fields are not used by our requests."""
    for field, value in message.ListFields():
        path = prefix + field.name
        if field.type == FieldDescriptor.TYPE_STRING:
            limit = limit_of(field.name)
            if field.is_repeated:
                most = limit.max_items or REPEATED_DEFAULT_ITEMS
                if len(value) > most:
                    raise InvalidArgument(path, f"at most {most} entries")
                for i, item in enumerate(value):
                    text = check_request_text(f"{path}[{i}]", item, limit)
                    if text != item:
                        value[i] = text
            else:
                text = check_request_text(path, value, limit)
                if text != value:
                    setattr(message, field.name, text)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            items = value if field.is_repeated else [value]
            for i, item in enumerate(items):
                apply_policy(item, f"{path}[{i}]." if field.is_repeated else f"{path}.")


@functools.cache
def _bytes_mirror(descriptor: Descriptor) -> type[Message]:
    """The request type with every string field read as bytes, to find which field holds invalid UTF-8."""
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def to_bytes(m: descriptor_pb2.DescriptorProto) -> None:
        for f in m.field:
            if f.type == FieldDescriptor.TYPE_STRING:
                f.type = FieldDescriptor.TYPE_BYTES
        for nested in m.nested_type:
            to_bytes(nested)

    def add(file: Any) -> None:
        if file.name in added:
            return
        added.add(file.name)
        for dependency in file.dependencies:
            add(dependency)
        proto = descriptor_pb2.FileDescriptorProto()
        file.CopyToProto(proto)
        for m in proto.message_type:
            to_bytes(m)
        pool.Add(proto)

    add(descriptor.file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(descriptor.full_name))


def _bad_utf8(mirror: Message, original: Descriptor, prefix: str = "") -> str | None:
    for field, value in mirror.ListFields():
        path, kind = prefix + field.name, original.fields_by_name[field.name]
        repeated = field.is_repeated
        items = list(value) if repeated else [value]
        for i, item in enumerate(items):
            where = f"{path}[{i}]" if repeated else path
            if kind.type == FieldDescriptor.TYPE_STRING:
                try:
                    item.decode("utf-8")
                except UnicodeDecodeError:
                    return where
            elif kind.type == FieldDescriptor.TYPE_MESSAGE:
                found = _bad_utf8(item, kind.message_type, f"{where}.")
                if found:
                    return found
    return None


def undecodable(descriptor: Descriptor | None, raw: bytes) -> Refused:
    """Why a request cannot be decoded, naming the field with invalid UTF-8 when there is one."""
    if descriptor is not None:
        with contextlib.suppress(Exception):  # a malformed wire format: no field to name
            field = _bad_utf8(_bytes_mirror(descriptor).FromString(raw), descriptor)
            if field:
                return Refused(f"{field}: must be valid UTF-8")
    return Refused(f"request: cannot be decoded as {descriptor.full_name if descriptor else 'the request type'}")


class RequestPolicy(grpc.aio.ServerInterceptor):
    """Undecodable requests and requests breaking the input policy get INVALID_ARGUMENT; nothing runs."""

    async def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
                                details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None or handler.request_deserializer is None:
            return handler
        deserializer = handler.request_deserializer
        descriptor = getattr(getattr(deserializer, "__self__", None), "DESCRIPTOR", None)

        def deserialize(raw: bytes) -> Any:
            try:
                request = deserializer(raw)
            except (DecodeError, UnicodeDecodeError):
                return undecodable(descriptor, raw)
            if isinstance(request, Message):
                try:
                    apply_policy(request)
                except InvalidArgument as refusal:
                    return Refused(str(refusal))
            return request

        async def refuse(refused: Refused, context: grpc.aio.ServicerContext) -> None:
            log.info("request refused", extra={"fields": {"method": details.method, "reason": refused.message}})
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, refused.message)

        @contextlib.asynccontextmanager
        async def around(call: Call) -> AsyncIterator[None]:
            if isinstance(call.request, Refused):
                await refuse(call.request, call.context)
            yield

        async def requests(items: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            async for item in items:
                if isinstance(item, Refused):
                    await refuse(item, context)
                yield item

        return wrap(handler._replace(request_deserializer=deserialize), details.method, around, requests)


# ---- the server ---------------------------------------------------------------------------------------------
def max_in_flight(service: str, default: int = DEFAULT_MAX_IN_FLIGHT) -> int:
    """`<SERVICE>_GRPC_MAX_IN_FLIGHT` (e.g. INTAKE_GRPC_MAX_IN_FLIGHT): a whole number of at least 1."""
    name = f"{service.upper()}_GRPC_MAX_IN_FLIGHT"
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"environment variable {name} must be a whole number of at least 1, got {raw!r}")
    return int(raw)


def interceptors(service: str, guards: Sequence[grpc.aio.ServerInterceptor] = (),
                 limit: int | None = None,
                 outer: Sequence[grpc.aio.ServerInterceptor] = ()) -> list[grpc.aio.ServerInterceptor]:
    """The chain, outermost first (see the module docstring)."""
    return [*outer, InFlightLimit(limit if limit is not None else max_in_flight(service)), *guards,
            RequestPolicy()]


def server(service: str, guards: Sequence[grpc.aio.ServerInterceptor] = (), *,
           limit: int | None = None, outer: Sequence[grpc.aio.ServerInterceptor] = ()) -> grpc.aio.Server:
    """The gRPC server of `service` (its name in lower case, e.g. "intake"), with the chain in front."""
    return grpc.aio.server(interceptors=interceptors(service, guards, limit, outer), options=[
        # off: a second process on the same port must fail to bind, not share the port
        ("grpc.so_reuseport", 0),
        ("grpc.max_receive_message_length", MAX_REQUEST_BYTES),
        # grpc core cancels calls (CANCELLED, not retried) once more than 1,000 wait to reach the application;
        # the in-flight limit answers them itself, with a retry hint, so let them reach it
        ("grpc.server.max_pending_requests", 20_000),
        ("grpc.server.max_pending_requests_hard_limit", 40_000),
    ])
