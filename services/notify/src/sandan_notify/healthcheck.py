"""`python -m sandan_notify.healthcheck`: the container probe (exit 0 when gRPC health says SERVING)."""

from sandan_eventbus.healthcheck import main

if __name__ == "__main__":
    main("NOTIFY_GRPC_ADDRESS", "127.0.0.1:50054")
