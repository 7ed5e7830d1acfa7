"""The container health probe every service ships: exit 0 when its gRPC health service says SERVING."""

from __future__ import annotations

import os

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def target(address: str) -> str:
    # A server bound to every interface is reached on loopback from inside its own container.
    host, _, port = address.rpartition(":")
    return f"127.0.0.1:{port}" if host in ("0.0.0.0", "[::]", "") else address


def check(address: str, timeout: float = 3.0) -> bool:
    with grpc.insecure_channel(target(address)) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""),
                                                              timeout=timeout)
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def main(address_variable: str, default_address: str) -> None:
    address = os.environ.get(address_variable, "").strip() or default_address
    raise SystemExit(0 if check(address) else 1)
