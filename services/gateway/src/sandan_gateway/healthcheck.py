"""`python -m sandan_gateway.healthcheck`: the container probe (exit 0 when /healthz answers 200)."""

from __future__ import annotations

import os
import sys

import httpx


def main() -> None:
    port = os.environ.get("GATEWAY_HTTP_PORT", "8000")
    try:
        ok = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=3).status_code == 200
    except httpx.HTTPError:
        ok = False
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
