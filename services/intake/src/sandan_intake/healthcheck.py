"""`python -m sandan_intake.healthcheck`: the container probe (exit 0 when gRPC health says SERVING)."""

from sandan_eventbus.healthcheck import main

if __name__ == "__main__":
    main("INTAKE_GRPC_ADDRESS", "127.0.0.1:50051")
