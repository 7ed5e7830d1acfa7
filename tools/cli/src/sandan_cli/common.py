"""What every command shares: the caller's settings (token, issuer, service addresses, TLS), channels to the
services carrying the caller's token, output (a table for people, `--json` for scripts) and exit codes.

Output: results go to stdout (JSON with `--json`), progress and messages to stderr, so `--json` output can be
piped. Exit codes: 0 done; 1 failed (or, for redrive, not every dead letter applied); 2 usage; 3 not found;
4 not allowed (no token, refused token, or the caller's role may not); 5 unavailable (not reachable, or waiting
out an outage).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

import grpc
import typer
from google.protobuf.message import Message
from rich.console import Console
from rich.table import Table

from sandan_eventbus import channels
from sandan_eventbus.auth.client import BearerAuth, TokenSource, TokenUnavailable
from sandan_eventbus.config import ConfigError

T = TypeVar("T")

SERVICES = ("intake", "dispatch", "scoring", "notify")
DEFAULT_ADDRESSES = {"intake": "127.0.0.1:50051", "dispatch": "127.0.0.1:50052", "scoring": "127.0.0.1:50053",
                     "notify": "127.0.0.1:50054"}
# the services that consume topics, and so serve sandan.ops.v1.DeadLetters for their own consumer group
CONSUMERS = ("intake", "dispatch", "notify")

EXIT_FAILED, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_NOT_ALLOWED, EXIT_UNAVAILABLE = 1, 2, 3, 4, 5
_EXIT_FOR = {grpc.StatusCode.NOT_FOUND: EXIT_NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED: EXIT_NOT_ALLOWED,
             grpc.StatusCode.UNAUTHENTICATED: EXIT_NOT_ALLOWED, grpc.StatusCode.UNAVAILABLE: EXIT_UNAVAILABLE,
             grpc.StatusCode.DEADLINE_EXCEEDED: EXIT_UNAVAILABLE}

# Tables are as wide as the terminal; piped or captured, as wide as COLUMNS says or 200 (not rich's 80: ids fold).
def _width(stream: Any) -> int | None:
    return None if stream.isatty() else int(os.environ.get("COLUMNS", "0") or 0) or 200


out = Console(highlight=False, width=_width(sys.stdout))
err = Console(stderr=True, highlight=False, width=_width(sys.stderr))


@dataclass
class Cli:
    """The root options, on `ctx.obj` for every command."""

    token: str = ""
    issuer: str = ""
    plaintext: bool = False
    timeout: float = 60.0
    addresses: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_ADDRESSES))
    _source: TokenSource | None = None

    def token_source(self) -> TokenSource:
        from sandan_cli.auth import token_source

        if self._source is None:
            self._source = token_source(self.token, self.issuer)
        return self._source

    def credentials(self) -> grpc.ChannelCredentials | None:
        """TLS to the services as every service calls another (SANDAN_GRPC_TLS_CA_FILE, and a client certificate
        when SANDAN_GRPC_TLS_CERT_FILE/_KEY_FILE are set); plaintext only with --plaintext or
        SANDAN_GRPC_PLAINTEXT=allow (a local run)."""
        from sandan_eventbus import security  # loaded when a command calls a service (it is slow to import)

        tls: security.GrpcTlsSettings = security.load(security.GrpcTlsSettings)
        if self.plaintext and not tls.tls_ca_file:
            return None
        return tls.channel_credentials()

    def channel(self, service: str, *, address: str = "", with_token: bool = True) -> grpc.Channel:
        """A blocking channel to one service (with the shared retry policy) carrying the caller's token."""
        target = address or self.addresses[service]
        interceptors = [BearerAuth(self.token_source())] if with_token else []
        return channels.channel(target, self.credentials(), interceptors)


def cli_of(ctx: typer.Context) -> Cli:
    obj = ctx.find_root().obj
    if not isinstance(obj, Cli):  # a command invoked without the root callback (tests calling a sub-app)
        obj = Cli()
        ctx.find_root().obj = obj
    return obj


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    err.print(f"error: {message}", markup=False)
    raise typer.Exit(code)


def rpc_error(error: grpc.RpcError, what: str) -> tuple[str, str, int]:
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN  # type: ignore[attr-defined]
    details = error.details() if hasattr(error, "details") else str(error)  # type: ignore[attr-defined]
    name = code.name if code else "UNKNOWN"
    return name, f"{what}: {name}: {details}", _EXIT_FOR.get(code, EXIT_FAILED)


@contextmanager
def calling(what: str) -> Iterator[None]:
    """Turn the failures of a call into a message on stderr and the exit code that says which kind."""
    try:
        yield
    except grpc.RpcError as error:
        _, message, code = rpc_error(error, what)
        fail(message, code)
    except TokenUnavailable as error:
        fail(f"{what}: {error}", EXIT_NOT_ALLOWED)
    except ConfigError as error:
        fail(str(error), EXIT_USAGE)


def attempt(what: str, call: Callable[[], T]) -> tuple[T | None, dict[str, Any] | None]:
    """Run one call; its result, or (for a part of a lookup that the caller may not see) the refusal as data."""
    try:
        return call(), None
    except grpc.RpcError as error:
        name, message, _ = rpc_error(error, what)
        return None, {"code": name, "message": message}


def as_dict(message: Message) -> dict[str, Any]:
    """A message as plain JSON values: every field (defaults included), 64-bit integers as numbers (not the
    strings of proto3's JSON mapping), bytes left out (shown on purpose where wanted)."""
    found: dict[str, Any] = {}
    for f in message.DESCRIPTOR.fields:
        if f.type == f.TYPE_BYTES:
            continue
        value = getattr(message, f.name)
        if f.type == f.TYPE_MESSAGE:
            if _is_repeated(f):
                value = [as_dict(v) for v in value]
            else:
                value = as_dict(value) if message.HasField(f.name) else None
        elif _is_repeated(f):
            value = list(value)
        found[f.name] = value
    return found


def _is_repeated(f: Any) -> bool:
    return bool(f.is_repeated)


def emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False, indent=2, default=str) + "\n")
    sys.stdout.flush()


def table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    t = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for c in columns:
        t.add_column(c, overflow="fold")
    for row in rows:
        t.add_row(*["" if v is None else str(v) for v in row])
    out.print(t)


JSON_HELP = "print JSON on stdout instead of a table"
