"""`python -m sandan_gateway.openapi > services/gateway/openapi.json`: the API's OpenAPI document, committed so a
change shows in review (a test fails when it is stale). Built from the routes alone: nothing is contacted."""

from __future__ import annotations

import json
import sys
from typing import Any

from sandan_eventbus.auth.tokens import Issuer, TokenVerifier
from sandan_gateway.app import create_app
from sandan_gateway.auth import Auth
from sandan_gateway.backend import Backend
from sandan_gateway.open311 import Partners
from sandan_gateway.places import Directory
from sandan_gateway.sessions import SessionStore
from sandan_gateway.settings import Settings


def document() -> dict[str, Any]:
    settings = Settings(session_secret="x" * 32, session_url="memory://", live="off",
                        web_client_secret="unused")  # noqa: S106 - nothing is contacted
    issuer = "http://127.0.0.1:1/realms/unused"
    backend = Backend({k: "127.0.0.1:1" for k in ("intake", "dispatch", "scoring", "notify")}, None, None)
    auth = Auth(issuer, "sandan-web", "unused", TokenVerifier(Issuer(issuer)), SessionStore("memory://"),
                settings.public_url, False)
    return create_app(settings, backend, auth, Directory(), Partners([])).openapi()


def main() -> None:
    sys.stdout.write(json.dumps(document(), ensure_ascii=False, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
