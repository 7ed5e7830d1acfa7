"""`python -m sandan_gateway`: the HTTP edge (uvicorn) with its settings from the environment."""

from __future__ import annotations

import os

import uvicorn
from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

from sandan_eventbus import tracing
from sandan_eventbus.config import load_or_exit, settings_from_env
from sandan_eventbus.kafka import aiokafka_kwargs
from sandan_eventbus.logs import setup
from sandan_eventbus.security import GrpcTlsSettings, OidcSettings, load
from sandan_gateway import metrics
from sandan_gateway.app import create_app
from sandan_gateway.auth import Auth
from sandan_gateway.live import Hub, LiveFeed
from sandan_gateway.open311 import Partners
from sandan_gateway.places import Directory
from sandan_gateway.sessions import SessionStore
from sandan_gateway.settings import Settings


def build(settings: Settings) -> FastAPI:
    oidc: OidcSettings = load(OidcSettings)
    tls: GrpcTlsSettings = load(GrpcTlsSettings)
    identity = oidc.identity() if oidc.client_id else None
    backend = metrics.MeteredBackend({"intake": settings.intake_address, "dispatch": settings.dispatch_address,
                                      "scoring": settings.scoring_address, "notify": settings.notify_address},
                                     tls.channel_credentials(), identity, settings.grpc_timeout_seconds)
    store = SessionStore(settings.session_url, settings.session_idle_seconds, settings.session_max_seconds)
    auth = Auth(oidc.issuer, settings.web_client_id, settings.web_secret(), oidc.verifier(), store,
                settings.public_url, settings.secure_cookies, discovery_url=oidc.discovery_url,
                verify_tls=oidc.verify_tls())
    hub = Hub()
    feed = None
    if settings.live == "on":
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "")
        if not bootstrap:
            from sandan_eventbus.config import ConfigError

            raise ConfigError("KAFKA_BOOTSTRAP_SERVERS is required for live updates (or GATEWAY_LIVE=off)")

        def consumer() -> AIOKafkaConsumer:
            return AIOKafkaConsumer(**aiokafka_kwargs(bootstrap), enable_auto_commit=False,
                                    client_id="sandan-gateway-live")

        feed = LiveFeed(hub, consumer, settings.live_lookback_seconds)
    app = create_app(settings, backend, auth, Directory.from_file(os.environ.get("SANDAN_PLACES_FILE")),
                     Partners.from_file(settings.open311_keys_file), feed, hub)
    metrics.instrument(app)  # counted whether or not they are served (GATEWAY_METRICS_PORT)
    return app


def main() -> None:
    settings = load_or_exit("gateway", lambda: settings_from_env(Settings))  # names the variable
    log = setup("gateway", settings.log_level)
    load_or_exit("gateway", lambda: tracing.setup("gateway"))  # OTLP when OTEL_* says so, else spans unexported
    app = load_or_exit("gateway", lambda: build(settings))
    load_or_exit("gateway", lambda: metrics.serve(settings.metrics_port))  # a port taken: one line, exit 2
    # a server span per request (W3C traceparent from the browser or a partner continues it), health and files left out
    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,static/.*")
    log.info("starting", extra={"fields": {"address": f"{settings.http_host}:{settings.http_port}",
                                           "public_url": settings.public_url, "live": settings.live}})
    uvicorn.run(app, host=settings.http_host, port=settings.http_port, log_config=None, access_log=False,
                proxy_headers=True, timeout_graceful_shutdown=10)


if __name__ == "__main__":
    main()
