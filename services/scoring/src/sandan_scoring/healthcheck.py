"""`python -m sandan_scoring.healthcheck [--strict]`: the container probe.

Exits 0 when gRPC health says SERVING (the shared probe), and prints one JSON line with what the publisher is
doing: items set aside (they could not be encoded or published; the rest flowed past them), what waits, and
which parts are paused by an outage. `--strict` also fails (exit 1) while anything is set aside: for
monitoring, not for the liveness or readiness probe (a set-aside item is no reason to restart or drain).

The publisher's state is the `Publishing` RPC (county office or operator): it is asked only with a token in
SANDAN_TOKEN; without one the line says `"publishing": "no token"` and `--strict` fails (it cannot know).
"""

from __future__ import annotations

import json
import os
import sys

import grpc

from sandan_contracts.rpc import scoring_pb2 as pb
from sandan_contracts.rpc import scoring_pb2_grpc as pb_grpc
from sandan_eventbus.healthcheck import check, target


def publishing(address: str, token: str, timeout: float = 3.0) -> dict[str, object] | None:
    """The publisher's state, or None when the service does not answer."""
    with grpc.insecure_channel(target(address)) as channel:
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
    serving = check(address)
    # also while not serving: it says which part waits, and why
    state = publishing(address, token) if token else {"publishing": "no token"}
    print(json.dumps({"serving": serving, **(state or {})}, ensure_ascii=False))
    strict = "--strict" in args
    healthy = serving and not (strict and (not token or (state is not None and state["set_aside"])))
    raise SystemExit(0 if healthy else 1)


if __name__ == "__main__":
    main()
