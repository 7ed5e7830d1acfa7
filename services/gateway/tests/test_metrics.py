"""The gateway's Prometheus metrics, scraped for real from their own port: the app built by `__main__.build` from the
environment (GATEWAY_METRICS_PORT included) in front of a stand-in intake behind the real token interceptor."""

from __future__ import annotations

import json
import re
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from sandan_contracts.rpc import intake_pb2, intake_pb2_grpc
from sandan_eventbus.config import ConfigError, settings_from_env
from sandan_gateway import metrics
from sandan_gateway.__main__ import build
from sandan_gateway.live import Interest
from sandan_gateway.settings import Settings

INTAKE = "sandan.intake.v1.Intake"


class FakeIntake(intake_pb2_grpc.IntakeServicer):
    def __init__(self) -> None:
        self.demands: dict[str, intake_pb2.Demand] = {}

    async def GetDemand(self, request: Any, context: Any) -> Any:
        if request.demand_id not in self.demands:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"demand {request.demand_id} not found")
        return self.demands[request.demand_id]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Metered:
    app: FastAPI
    client: httpx.AsyncClient  # the public port (in-process)
    metrics_url: str
    intake: FakeIntake
    issuer: Any

    async def scrape(self) -> str:
        async with httpx.AsyncClient() as http:
            reply = await http.get(self.metrics_url)
        assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/plain")
        return reply.text


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one series (0 when it does not exist yet)."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return s.value
    return 0.0


def moved_routes(before: str, after: str) -> set[str]:
    """The `route` labels of the request counts that changed between two scrapes."""
    def counts(text: str) -> dict[tuple[tuple[str, str], ...], float]:
        return {tuple(sorted(s.labels.items())): s.value for family in text_string_to_metric_families(text)
                for s in family.samples if s.name == "sandan_http_requests_total"}

    old, new = counts(before), counts(after)
    return {dict(key)["route"] for key, value in new.items() if value != old.get(key, 0)}


async def metered_gateway(local_issuer: Any, monkeypatch: pytest.MonkeyPatch, **env: str) -> AsyncIterator[Metered]:
    intake = FakeIntake()
    server = grpc.aio.server(interceptors=local_issuer.guards())
    intake_pb2_grpc.add_IntakeServicer_to_server(intake, server)
    address = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    await server.start()
    port = free_port()
    for name in ("SANDAN_OIDC_CLIENT_ID", "SANDAN_OIDC_JWKS_URL", "SANDAN_OIDC_DISCOVERY_URL", "SANDAN_PLACES_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {"SANDAN_OIDC_ISSUER": local_issuer.url, "SANDAN_GRPC_PLAINTEXT": "allow",
                        "GATEWAY_METRICS_PORT": str(port), "GATEWAY_SESSION_SECRET": "x" * 40,
                        "GATEWAY_WEB_CLIENT_SECRET": "s", "GATEWAY_SESSION_URL": "memory://", "GATEWAY_LIVE": "off",
                        "GATEWAY_INTAKE_ADDRESS": address, **env}.items():
        monkeypatch.setenv(name, value)
    settings = settings_from_env(Settings)  # as main() reads them
    app = build(settings)
    served = metrics.serve(settings.metrics_port)
    assert served is not None and served.port == port
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://127.0.0.1:8000") as client:
            yield Metered(app, client, f"http://127.0.0.1:{port}/metrics", intake, local_issuer)
    finally:
        served.stop()
        await app.state.backend.close()
        await server.stop(0)
        app.state.auth.store.close()


@pytest.fixture
async def gateway_metered(local_issuer: Any, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Metered]:
    async for gw in metered_gateway(local_issuer, monkeypatch):
        yield gw


async def test_requests_by_route_template_and_calls_by_grpc_code(gateway_metered: Metered) -> None:
    gw = gateway_metered
    known, unknown, stray = str(uuid.uuid4()), str(uuid.uuid4()), uuid.uuid4().hex
    gw.intake.demands[known] = intake_pb2.Demand(demand_id=known, resident_id="r-1", community_id="c1",
                                                 grid_id="g1", category="repair", status="posted", urgency="normal",
                                                 due_at="2030-01-01T00:00:00Z")
    subject = f"sub-{uuid.uuid4().hex}"
    bearer = {"authorization": f"Bearer {gw.issuer.token(subject, ['resident'], community_id='c1', grid_id='g1')}"}
    before = await gw.scrape()
    api = "/api/v1/demands/{demand_id}"

    assert (await gw.client.get("/")).status_code == 200  # a page
    assert (await gw.client.get("/static/site.css")).status_code == 200  # files: one route, not one per name
    assert (await gw.client.get(f"/resident/demands/{known}")).status_code == 303  # a page with an id: sign in first
    assert (await gw.client.get(f"/api/v1/demands/{known}", headers=bearer)).status_code == 200
    assert (await gw.client.get(f"/api/v1/demands/{unknown}", headers=bearer)).status_code == 404
    assert (await gw.client.delete(f"/api/v1/demands/{unknown}", headers=bearer)).status_code == 405
    assert (await gw.client.get(f"/no/such/page/{stray}")).status_code == 404
    public = await gw.client.get("/metrics")
    assert public.status_code == 404 and "sandan_http_requests_total" not in public.text
    await gw.client.request("BREW", f"/{stray}")
    after = await gw.scrape()

    def moved(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    requests = "sandan_http_requests_total"
    assert moved(requests, method="GET", route="/", status="200") == 1
    assert moved(requests, method="GET", route="/static/{path}", status="200") == 1
    assert moved(requests, method="GET", route="/resident/demands/{demand_id}", status="303") == 1
    assert moved(requests, method="GET", route=api, status="200") == 1
    assert moved(requests, method="GET", route=api, status="404") == 1
    assert moved(requests, method="DELETE", route=api, status="405") == 1
    assert moved(requests, method="GET", route="other", status="404") == 2  # the stray page and /metrics
    assert moved(requests, method="other", route="other", status="404") == 1  # an unknown method is no label
    assert moved("sandan_http_request_seconds_count", method="GET", route=api) == 2
    assert moved("sandan_http_request_seconds_bucket", method="GET", route=api, le="+Inf") == 2

    calls = "grpc_client_handled_total"
    assert moved(calls, grpc_service=INTAKE, grpc_method="GetDemand", grpc_code="OK") == 1
    assert moved(calls, grpc_service=INTAKE, grpc_method="GetDemand", grpc_code="NOT_FOUND") == 1
    assert moved("grpc_client_handling_seconds_count", grpc_service=INTAKE, grpc_method="GetDemand") == 2

    # exactly these routes were counted, as templates; no id or person anywhere in the text
    assert moved_routes(before, after) == {"/", "/static/{path}", "/resident/demands/{demand_id}", api, "other"}
    for secret in (known, unknown, stray, subject, "r-1"):
        assert secret not in after
    assert "sandan_relay_backlog_events" not in after  # the services' series stay out of the gateway's registry
    assert "process_resident_memory_bytes" in after


async def test_open_event_streams_and_no_feed_when_live_is_off(gateway_metered: Metered) -> None:
    gw = gateway_metered
    hub = gw.app.state.hub
    assert sample(await gw.scrape(), "sandan_live_streams") == 0
    first, _ = hub.subscribe(Interest(roles=frozenset({"resident"})))
    second, _ = hub.subscribe(Interest(roles=frozenset({"member"})))
    text = await gw.scrape()
    assert sample(text, "sandan_live_streams") == 2
    assert "sandan_live_ready" not in text and "sandan_live_restarts_total" not in text  # GATEWAY_LIVE=off
    hub.unsubscribe(first)
    assert sample(await gw.scrape(), "sandan_live_streams") == 1
    hub.unsubscribe(second)
    assert sample(await gw.scrape(), "sandan_live_streams") == 0


async def test_live_feed_readiness_and_restarts(local_issuer: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"GATEWAY_LIVE": "on", "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"}  # the feed is built, never started
    async for gw in metered_gateway(local_issuer, monkeypatch, **env):
        feed = gw.app.state.feed
        assert feed is not None
        text = await gw.scrape()
        assert sample(text, "sandan_live_ready") == 0
        assert sample(text, "sandan_live_restarts_total") == 0
        feed.ready.set()
        feed.restarts += 3
        text = await gw.scrape()
        assert sample(text, "sandan_live_ready") == 1
        assert sample(text, "sandan_live_restarts_total") == 3


DASHBOARD = Path(__file__).resolve().parents[3] / "deploy" / "grafana" / "dashboards" / "sandan.json"


def gateway_panels_query() -> set[str]:
    """The metric names the dashboard's gateway panels (`job="gateway"`) query."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", []) if 'job="gateway"' in t["expr"]]
    return {name for expr in exprs for name in re.findall(r"\b(?:sandan|grpc_client)_[a-z0-9_]+\b", expr)}


async def test_the_dashboard_queries_what_the_gateway_serves(local_issuer: Any,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    wanted = gateway_panels_query()
    assert {"sandan_http_requests_total", "grpc_client_handled_total", "sandan_live_streams"} <= wanted
    env = {"GATEWAY_LIVE": "on", "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"}  # the feed is built, never started
    async for gw in metered_gateway(local_issuer, monkeypatch, **env):
        gw.intake.demands["d-1"] = intake_pb2.Demand(demand_id="d-1", resident_id="r-1", community_id="c1",
                                                     grid_id="g1", status="posted")
        token = gw.issuer.token(f"sub-{uuid.uuid4().hex}", ["resident"], community_id="c1", grid_id="g1")
        assert (await gw.client.get("/")).status_code == 200
        assert (await gw.client.get("/api/v1/demands/d-1", headers={"authorization": f"Bearer {token}"})).status_code \
            in (200, 403)  # a call went to intake either way
        served = {s.name for family in text_string_to_metric_families(await gw.scrape()) for s in family.samples}
        assert sorted(wanted - served) == []


def test_metrics_port_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(metrics_port=0).metrics_port == 0 and metrics.serve(0) is None
    monkeypatch.setenv("GATEWAY_METRICS_PORT", "9464")
    assert settings_from_env(Settings).metrics_port == 9464
    monkeypatch.setenv("GATEWAY_METRICS_PORT", "70000")
    with pytest.raises(ConfigError, match="GATEWAY_METRICS_PORT"):
        settings_from_env(Settings)


def test_a_taken_metrics_port_names_the_variable() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(ConfigError, match="GATEWAY_METRICS_PORT: cannot listen"):
            metrics.serve(taken.getsockname()[1], "127.0.0.1")
