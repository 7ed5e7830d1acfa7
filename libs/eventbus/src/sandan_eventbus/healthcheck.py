"""The container health probe every service ships: exit 0 when its gRPC health service says SERVING.

`python -m sandan_<service>.healthcheck` asks for readiness (health name ""): not ready while the service waits
out a store or broker outage. `python -m sandan_<service>.healthcheck liveness` asks whether the process is
alive, which a waiting service is: use that one where a failed check restarts the container.

Over TLS when `SANDAN_GRPC_TLS_CA_FILE` is set (the service's own certificate goes along when it has one, for a
server that requires client certificates): the server is reached on loopback, so its certificate is checked for the
service's name (`intake`, ...; `SANDAN_GRPC_TLS_SERVER_NAME` overrides), one of the names it was issued for.
"""

from __future__ import annotations

import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sandan_eventbus.security import GrpcTlsSettings


def target(address: str) -> str:
    # A server bound to every interface is reached on loopback from inside its own container.
    host, _, port = address.rpartition(":")
    return f"127.0.0.1:{port}" if host in ("0.0.0.0", "[::]", "") else address


def _channel(address: str, server_name: str) -> grpc.Channel:
    settings = GrpcTlsSettings()
    if not settings.tls_ca_file:
        return grpc.insecure_channel(target(address))
    credentials = settings.channel_credentials()
    assert credentials is not None
    return grpc.secure_channel(target(address), credentials,
                               options=[("grpc.ssl_target_name_override", server_name)] if server_name else [])


def check(address: str, timeout: float = 3.0, service: str = "", server_name: str = "") -> bool:
    with _channel(address, server_name) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service),
                                                              timeout=timeout)
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def main(address_variable: str, default_address: str) -> None:
    address = os.environ.get(address_variable, "").strip() or default_address
    service = sys.argv[1] if len(sys.argv) > 1 else ""  # "" readiness, "liveness"
    # INTAKE_GRPC_ADDRESS -> intake: the name the service's certificate is issued for
    name = os.environ.get("SANDAN_GRPC_TLS_SERVER_NAME", "").strip() or address_variable.split("_")[0].lower()
    raise SystemExit(0 if check(address, service=service, server_name=name) else 1)
