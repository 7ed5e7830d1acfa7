"""The container health probe every service ships: exit 0 when its gRPC health service says SERVING.

`python -m sandan_<service>.healthcheck` asks for readiness (health name ""): not ready while the service waits
out a store or broker outage. `python -m sandan_<service>.healthcheck liveness` asks whether the process is
alive, which a waiting service is: use that one where a failed check restarts the container.
"""

from __future__ import annotations

import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def target(address: str) -> str:
    # A server bound to every interface is reached on loopback from inside its own container.
    host, _, port = address.rpartition(":")
    return f"127.0.0.1:{port}" if host in ("0.0.0.0", "[::]", "") else address


def check(address: str, timeout: float = 3.0, service: str = "") -> bool:
    with grpc.insecure_channel(target(address)) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service),
                                                              timeout=timeout)
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def main(address_variable: str, default_address: str) -> None:
    address = os.environ.get(address_variable, "").strip() or default_address
    service = sys.argv[1] if len(sys.argv) > 1 else ""  # "" readiness, "liveness"
    raise SystemExit(0 if check(address, service=service) else 1)
