"""The services' Kubernetes probe: exit 0 when the gRPC health service on this pod says SERVING.

Kubernetes' own gRPC probe speaks plaintext only, and the services serve TLS (SANDAN_GRPC_TLS_CERT_FILE), so the
probes run this instead (mounted from the ConfigMap sandan-probe): `python /etc/sandan-probe/grpc-probe.py PORT
NAME [liveness]`. Over TLS when SANDAN_GRPC_TLS_CA_FILE is set, checking the certificate against that CA for NAME
(the service's name, one of the certificate's names); plaintext otherwise (the local overlay's
SANDAN_GRPC_PLAINTEXT=allow). The health service needs no token.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def channel(port: str, name: str) -> grpc.Channel:
    target = f"127.0.0.1:{port}"
    ca = os.environ.get("SANDAN_GRPC_TLS_CA_FILE", "").strip()
    if not ca:
        return grpc.insecure_channel(target)
    credentials = grpc.ssl_channel_credentials(Path(ca).read_bytes())
    return grpc.secure_channel(target, credentials, options=[("grpc.ssl_target_name_override", name)])


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3) or not argv[0].isdigit():
        print("usage: grpc-probe.py PORT NAME [liveness]", file=sys.stderr)
        return 2
    port, name, service = argv[0], argv[1], argv[2] if len(argv) > 2 else ""
    try:
        with channel(port, name) as ch:
            reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=service), timeout=3)
    except (grpc.RpcError, OSError) as exc:
        print(f"not serving: {exc}", file=sys.stderr)
        return 1
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
