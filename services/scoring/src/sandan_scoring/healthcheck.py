"""`python -m sandan_scoring.healthcheck [--strict]`: the container probe.

Exits 0 when gRPC health says SERVING (the shared probe), and prints one JSON line with what the publisher is
doing: items set aside (they could not be encoded or published; the rest flowed past them), what waits, and
which parts are paused by an outage. `--strict` also fails (exit 1) while anything is set aside: for
monitoring, not for the liveness or readiness probe (a set-aside item is no reason to restart or drain).

The publisher's state is the `Publishing` RPC (county office or operator): it is asked only with a token in
SANDAN_TOKEN; without one the line says `"publishing": "no token"` and `--strict` fails (it cannot know).
The token goes only over TLS (SANDAN_GRPC_TLS_CA_FILE; the certificate is checked for `scoring`, or
SANDAN_GRPC_TLS_SERVER_NAME, as the shared probe does) or, with SANDAN_GRPC_PLAINTEXT=allow, in plaintext; with
neither it is not sent, the line says why under `"publishing"`, and `--strict` fails.
"""

from __future__ import annotations

import json
import os
import sys

import grpc

from sandan_contracts.rpc import scoring_pb2 as pb
from sandan_contracts.rpc import scoring_pb2_grpc as pb_grpc
from sandan_eventbus import channels
from sandan_eventbus.config import ConfigError
from sandan_eventbus.healthcheck import check, target
from sandan_eventbus.security import GrpcTlsSettings, load

SERVICE_NAME = "scoring"  # the name its certificate is issued for


def _channel(address: str, server_name: str) -> grpc.Channel:
    """A channel fit for the token: TLS when a CA is configured, plaintext only where allowed (ConfigError
    otherwise, before anything is sent)."""
    credentials = load(GrpcTlsSettings).channel_credentials()
    options = channels.options()  # Publishing is a read: retried on UNAVAILABLE too
    if credentials is None:
        return grpc.insecure_channel(target(address), options=options)
    options.append(("grpc.ssl_target_name_override", server_name))
    return grpc.secure_channel(target(address), credentials, options=options)


def publishing(address: str, token: str, timeout: float = 3.0,
               server_name: str = SERVICE_NAME) -> dict[str, object] | None:
    """The publisher's state, `{"publishing": <why not asked>}` when the token cannot go safely, or None when the
    service does not answer."""
    try:
        channel = _channel(address, server_name)
    except ConfigError as error:
        return {"publishing": str(error)}
    with channel:
        try:
            report = pb_grpc.ScoringStub(channel).Publishing(pb.Empty(), timeout=timeout,
                                                             metadata=(("authorization", f"Bearer {token}"),))
        except grpc.RpcError:
            return None
    return {"pending": report.pending, "set_aside": report.set_aside,
            "paused": {p.part: p.reason for p in report.paused}, "dead_lettered": report.dead_lettered}


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    address = os.environ.get("SCORING_GRPC_ADDRESS", "").strip() or "127.0.0.1:50053"
    token = os.environ.get("SANDAN_TOKEN", "").strip()
    name = os.environ.get("SANDAN_GRPC_TLS_SERVER_NAME", "").strip() or SERVICE_NAME
    serving = check(address, server_name=name)
    # also while not serving: it says which part waits, and why
    state = publishing(address, token, server_name=name) if token else {"publishing": "no token"}
    print(json.dumps({"serving": serving, **(state or {})}, ensure_ascii=False))
    known = state is None or "set_aside" in state  # None: not answering (serving says whether that is bad)
    strict = "--strict" in args
    healthy = serving and not (strict and (not known or (state is not None and state["set_aside"])))
    raise SystemExit(0 if healthy else 1)


if __name__ == "__main__":
    main()
