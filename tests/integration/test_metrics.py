"""Prometheus metrics, scraped from the four services running as real processes against the real broker, while a
demand travels the whole loop (posted, dispatched, accepted, served, confirmed, rated):

- every metric the Grafana dashboard queries (deploy/grafana/dashboards/sandan.json, its PromQL parsed for metric
  names) is served by some service;
- the numbers move: PostDemand counted on intake, facts consumed and published, the county's pulse on dispatch
  (the community's order completed and rated), scoring's live lag, notify's channels;
- no scrape names a person or an order: no resident, member, demand or order id, no name, no phone;
- the dashboard ConfigMap of deploy/k8s/observability is the same dashboard.

The processes are this module's own (the shared stack's have no metrics port), each with `<SERVICE>_METRICS_PORT`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from sandan_contracts import TOPICS
from sandan_contracts.rpc import dispatch_pb2 as dpb
from sandan_contracts.rpc import intake_pb2 as ipb
from sandan_eventbus.devtools import ServiceProcess
from sandan_eventbus.kafka import create_topics
from tests.integration.conftest import DISPATCH_KEK, INTAKE_KEK, SWEEP_SECONDS, Stack, free_port, places
from tests.integration.notify_stack import groups_at_end
from tests.integration.people import People, identity_env
from tests.integration.scenario import a_community, demand_reaches, order_for, post

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "sandan.json"
K8S_DASHBOARD = REPO / "deploy" / "k8s" / "observability" / "dashboards" / "sandan.json"
SERVICES = ("intake", "dispatch", "scoring", "notify")
# our metric names: the gRPC ones (grpc_server_*) and sandan_* (label names such as grpc_method do not match)
METRIC_NAME = re.compile(r"\b(?:sandan|grpc_server|grpc_client)_[a-z0-9_]+\b")


@dataclass
class Observed:
    stack: Stack
    processes: dict[str, ServiceProcess]
    metrics: dict[str, str]  # service -> its /metrics URL


@pytest.fixture(scope="module")
def observed(kafka_bootstrap: str, people: People, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    """The four services, each serving /metrics on its own port; their consumer groups start at the topics' ends."""
    asyncio.run(create_topics(kafka_bootstrap))
    work = tmp_path_factory.mktemp("metrics")
    run = uuid.uuid4().hex[:8]
    communities, places_file = places(work)
    heard = [t.name for t in TOPICS.values() if t.dead_letter and not t.name.startswith("notify.")]
    asyncio.run(groups_at_end(kafka_bootstrap, {f"intake-mt{run}": ["dispatch.orders.v1"],
                                                f"dispatch-mt{run}": ["intake.demands.v1"],
                                                f"notify-mt{run}": heard}))
    grpc_address = {name: f"127.0.0.1:{free_port()}" for name in SERVICES}
    metrics_port = {name: free_port() for name in SERVICES}
    common = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "LOG_LEVEL": "INFO"}
    identity = identity_env(people.issuer, places_file)
    env = {
        "intake": {**common, **identity, **INTAKE_KEK,
                   "INTAKE_EVENTSTORE_URL": f"sqlite:///{work}/intake-events.db",
                   "INTAKE_DATABASE_URL": f"sqlite:///{work}/intake.db", "INTAKE_CONSUMER_GROUP": f"intake-mt{run}"},
        "dispatch": {**common, **identity,
                     "DISPATCH_EVENTSTORE_URL": f"sqlite:///{work}/dispatch-events.db",
                     "DISPATCH_DATABASE_URL": f"sqlite:///{work}/dispatch.db",
                     "DISPATCH_CONSUMER_GROUP": f"dispatch-mt{run}", "DISPATCH_DEADLINE_SWEEP_SECONDS": SWEEP_SECONDS,
                     **DISPATCH_KEK},
        "scoring": {**common, **identity, "SCORING_DATABASE_URL": f"sqlite:///{work}/scoring.db"},
        "notify": {**common, **identity_env(people.issuer, places_file, calls_others=True),
                   "NOTIFY_EVENTSTORE_URL": f"sqlite:///{work}/notify-events.db",
                   "NOTIFY_DATABASE_URL": f"sqlite:///{work}/notify.db", "NOTIFY_CONSUMER_GROUP": f"notify-mt{run}",
                   "NOTIFY_INTAKE_ADDRESS": grpc_address["intake"], "NOTIFY_DISPATCH_ADDRESS": grpc_address["dispatch"],
                   "NOTIFY_OFFICES_FILE": str(places_file), "NOTIFY_CONSOLE": str(work / "notifications.jsonl")},
    }
    processes = {name: ServiceProcess(f"sandan_{name}", {
        **env[name], f"{name.upper()}_GRPC_ADDRESS": grpc_address[name],
        f"{name.upper()}_METRICS_PORT": str(metrics_port[name])}, grpc_address[name], work / f"{name}.log")
        for name in SERVICES}
    with contextlib.ExitStack() as started:
        for name in SERVICES:  # scoring folds the broker's history before it serves: give it time
            processes[name].start(timeout=180 if name == "scoring" else 60)
            started.callback(processes[name].stop)
        stack = Stack(kafka_bootstrap, work, processes["intake"], processes["dispatch"], people, communities,
                      places_file)
        yield Observed(stack, processes,
                       {name: f"http://127.0.0.1:{port}/metrics" for name, port in metrics_port.items()})


# ---- reading a scrape ----------------------------------------------------------------------------------------
def scrape(url: str) -> list[Sample]:
    with urllib.request.urlopen(url, timeout=10) as reply:
        assert reply.status == 200
        text = reply.read().decode()
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def raw(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as reply:
        return reply.read().decode()


def value(samples: list[Sample], name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels` (0 when there is none)."""
    return sum(s.value for s in samples if s.name == name and labels.items() <= s.labels.items())


def has(samples: list[Sample], name: str, **labels: str) -> bool:
    return any(s.name == name and labels.items() <= s.labels.items() for s in samples)


async def until(url: str, check: Callable[[list[Sample]], bool], what: str, timeout: float = 60) -> list[Sample]:
    deadline = time.monotonic() + timeout
    while True:
        samples = await asyncio.to_thread(scrape, url)
        if check(samples):
            return samples
        if time.monotonic() > deadline:
            raise AssertionError(f"{url}: {what} not seen in {timeout}s")
        await asyncio.sleep(0.5)


def dashboard_metrics(path: Path = DASHBOARD) -> set[str]:
    """Every metric name the dashboard's PromQL expressions (panels and variables) query of the four services
    (the gateway's panels, `job="gateway"`, are left to the gateway's own test)."""
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if v.get("definition")]
    return {name for expr in exprs if 'job="gateway"' not in expr for name in METRIC_NAME.findall(expr)}


# ---- the tests -----------------------------------------------------------------------------------------------
def test_the_dashboard_queries_our_metrics_and_kubernetes_gets_the_same_one() -> None:
    wanted = dashboard_metrics()
    assert {"grpc_server_handled_total", "sandan_inbox_lag_messages", "sandan_relay_backlog_events",
            "sandan_dead_letters_total", "sandan_orders_overdue", "sandan_orders_escalated",
            "sandan_rating_stars", "sandan_ratings"} <= wanted
    assert K8S_DASHBOARD.read_bytes() == DASHBOARD.read_bytes(), (
        f"{K8S_DASHBOARD.relative_to(REPO)} must be a copy of {DASHBOARD.relative_to(REPO)}: cp one to the other")


@pytest.mark.kafka
async def test_every_service_serves_what_the_dashboard_queries_and_the_numbers_move(observed: Observed) -> None:
    stack, urls = observed.stack, observed.metrics
    # given a community whose resident's demand travels the whole loop
    c = await a_community(stack)
    branch, member, resident = stack.dispatch_stub(c.secretary), stack.dispatch_stub(c.member(0)), \
        stack.intake_stub(c.resident)
    demand = await post(stack, c)
    order = await order_for(stack, c, demand.demand_id)
    await branch.DispatchOrder(dpb.DispatchOrderRequest(order_id=order.order_id, member_id=c.members[0]))
    await member.AcceptOrder(dpb.AcceptOrderRequest(order_id=order.order_id, member_id=c.members[0]))
    await demand_reaches(stack, c, demand.demand_id, "accepted")
    await member.CompleteService(dpb.CompleteServiceRequest(order_id=order.order_id, member_id=c.members[0],
                                                            hours=1.0))
    await demand_reaches(stack, c, demand.demand_id, "served")
    await resident.ConfirmCompletion(ipb.DemandRef(demand_id=demand.demand_id))
    await resident.RateService(ipb.RateServiceRequest(demand_id=demand.demand_id, stars=4))

    # then dispatch's pulse shows the community's order completed and rated (measured after each deadline sweep)
    community = {"community": c.community_id}
    dispatch = await until(urls["dispatch"], lambda s: value(s, "sandan_ratings", **community) == 1,
                           "the rating in the pulse")
    assert value(dispatch, "sandan_rating_stars", **community) == 4
    assert value(dispatch, "sandan_orders_completed", **community) == 1
    assert value(dispatch, "sandan_orders_open", **community) == 0
    for gauge in ("sandan_orders_overdue", "sandan_orders_escalated"):
        assert has(dispatch, gauge, **community)
    assert value(dispatch, "sandan_inbox_messages_total", topic="intake.demands.v1", outcome="applied") >= 3
    assert has(dispatch, "sandan_inbox_lag_messages", topic="intake.demands.v1")
    assert value(dispatch, "grpc_server_handled_total", grpc_method="DispatchOrder", grpc_code="OK") == 1
    assert value(dispatch, "sandan_relay_published_total") >= 4  # opened, dispatched, accepted, completed

    # intake counted the calls, published the demand's facts and consumed the order's
    intake = await until(urls["intake"], lambda s: value(
        s, "sandan_inbox_messages_total", topic="dispatch.orders.v1", outcome="applied") >= 4, "orders consumed")
    assert value(intake, "grpc_server_handled_total", grpc_method="PostDemand", grpc_code="OK") == 1
    assert value(intake, "grpc_server_handling_seconds_count", grpc_method="PostDemand") == 1
    assert value(intake, "sandan_relay_published_total") >= 3  # posted, confirmed, rated
    assert has(intake, "sandan_inbox_last_applied_timestamp_seconds", topic="dispatch.orders.v1")
    assert has(intake, "sandan_relay_backlog_events")
    assert has(intake, "sandan_dead_letters_total", topic="dispatch.orders.v1", reason="refused")

    # scoring folds live and says how far behind it is; notify's channel is there (sent or not yet)
    scoring = await until(urls["scoring"], lambda s: has(s, "sandan_scoring_live_lag_messages"), "scoring's lag")
    assert has(scoring, "sandan_scoring_last_rebuild_seconds")
    notify = await until(urls["notify"], lambda s: has(s, "sandan_notifications_total", channel="console"),
                         "notify's channels")
    assert has(notify, "sandan_inbox_messages_total")

    # every metric the dashboard queries is served by some service (the gateway's row, job="gateway", is checked
    # against a scrape of the gateway by services/gateway/tests/test_metrics.py)
    served = {s.name for samples in (dispatch, intake, scoring, notify) for s in samples}
    assert sorted(dashboard_metrics() - served) == []

    # and no scrape names a person or an order (community ids are fine)
    personal = [demand.demand_id, order.order_id, c.resident_id, *c.members, "王秀英", "13800001234"]
    for name, url in urls.items():
        text = await asyncio.to_thread(raw, url)
        leaked = [p for p in personal if p in text]
        assert not leaked, f"{name}'s metrics name {leaked}"
