"""`sandan topics list|describe|lag`: the topic registry (sandan_contracts.TOPICS) beside what the broker has.

The broker is reached as every service reaches it: KAFKA_BOOTSTRAP_SERVERS (or `--bootstrap`) and the TLS and
SASL/SCRAM settings of `KafkaSettings` (KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_*, KAFKA_SSL_*); an operator's
KafkaUser needs Describe on the topics and groups and Read on the groups it asks about.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from sandan_cli.common import EXIT_NOT_FOUND, EXIT_UNAVAILABLE, EXIT_USAGE, JSON_HELP, emit_json, err, fail, table
from sandan_contracts import TOPICS
from sandan_eventbus.config import ConfigError

if TYPE_CHECKING:
    from aiokafka import TopicPartition

T = TypeVar("T")

app = typer.Typer(help="Topics: the registry and the broker (partitions, offsets, consumer groups' lag).",
                  no_args_is_help=True)

Bootstrap = Annotated[str, typer.Option("--bootstrap", envvar="KAFKA_BOOTSTRAP_SERVERS",
                                        help="the broker (default 127.0.0.1:9092); TLS/SASL from KAFKA_*")]
AsJson = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
Timeout = Annotated[float, typer.Option(help="seconds for the broker to answer")]


def registry_entry(name: str) -> dict[str, Any]:
    t = TOPICS[name]
    return {"name": t.name, "owner": t.owner, "key": t.key, "partitions": t.partitions,
            "retention_ms": t.retention_ms, "dead_letter": t.dead_letter, "events": list(t.events),
            "description": t.description}


class Broker:
    """An admin client and an offsets-only consumer (no group: it never commits), with KafkaSettings' security."""

    def __init__(self, bootstrap: str, timeout: float) -> None:
        # imported here: the broker's clients (faststream comes with the settings) are slow to load, and only
        # these commands need them
        from aiokafka import AIOKafkaConsumer
        from aiokafka.admin import AIOKafkaAdminClient

        from sandan_eventbus.kafka import kafka_settings

        self.settings = kafka_settings(bootstrap or None)
        self.timeout = timeout
        kwargs = self.settings.aiokafka_kwargs()
        self.admin = AIOKafkaAdminClient(client_id="sandan-cli", request_timeout_ms=int(timeout * 1000), **kwargs)
        self.consumer = AIOKafkaConsumer(client_id="sandan-cli", enable_auto_commit=False,
                                         request_timeout_ms=int(timeout * 1000), **kwargs)

    async def __aenter__(self) -> Broker:
        await asyncio.wait_for(self.admin.start(), self.timeout)
        await asyncio.wait_for(self.consumer.start(), self.timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()
        await self.admin.close()

    async def partitions(self, names: list[str]) -> dict[str, list[dict[str, Any]]]:
        described = await self.admin.describe_topics(names)
        return {t["topic"]: sorted(t["partitions"], key=lambda p: p["partition"])
                for t in described if t.get("error_code", 0) == 0 and t["partitions"]}

    async def offsets(self, tps: list[TopicPartition]) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
        if not tps:
            return {}, {}
        return await self.consumer.beginning_offsets(tps), await self.consumer.end_offsets(tps)

    async def config(self, name: str) -> dict[str, str]:
        from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

        replies = await self.admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name, None)])
        found: dict[str, str] = {}
        for reply in replies:
            for resource in reply.to_object()["resources"]:
                for entry in resource["config_entries"]:
                    # set on the topic itself (1: dynamic topic config), or the few an operator always asks about
                    if entry["config_source"] == 1 or entry["config_names"] in ("retention.ms", "cleanup.policy",
                                                                                "min.insync.replicas"):
                        found[entry["config_names"]] = entry["config_value"]
        return dict(sorted(found.items()))


def partition(topic: str, number: int) -> TopicPartition:
    from aiokafka import TopicPartition

    return TopicPartition(topic, number)


def on_broker(bootstrap: str, timeout: float, work: Callable[[Broker], Awaitable[T]]) -> T:
    async def run() -> T:
        async with Broker(bootstrap, timeout) as broker:
            return await work(broker)

    try:
        return asyncio.run(run())
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    except (TimeoutError, OSError) as exc:
        fail(f"the broker did not answer ({type(exc).__name__}: {exc})", EXIT_UNAVAILABLE)
    except Exception as exc:
        if type(exc).__module__.startswith("aiokafka"):
            fail(f"the broker: {type(exc).__name__}: {exc}", EXIT_UNAVAILABLE)
        raise


@app.command("list")
def list_(bootstrap: Bootstrap = "", registry_only: Annotated[bool, typer.Option(
              "--registry-only", help="only the registry, without asking the broker")] = False,
          timeout: Timeout = 15.0, as_json: AsJson = False) -> None:
    """Every topic of the registry: owner, partitions, retention, dead-letter topic, and whether the broker has it
    (with its partitions and messages: the sum of end offsets minus beginnings)."""
    rows = [registry_entry(name) for name in TOPICS]
    if not registry_only:
        async def work(broker: Broker) -> dict[str, Any]:
            parts = await broker.partitions(list(TOPICS))
            tps = [partition(t, p["partition"]) for t, ps in parts.items() for p in ps]
            begin, end = await broker.offsets(tps)
            return {"parts": parts, "begin": begin, "end": end}

        found = on_broker(bootstrap, timeout, work)
        for row in rows:
            parts = found["parts"].get(row["name"])
            row["on_broker"] = parts is not None
            row["broker_partitions"] = len(parts) if parts else 0
            row["messages"] = sum(found["end"][tp] - found["begin"][tp] for tp in found["end"]
                                  if tp.topic == row["name"])
    if as_json:
        emit_json(rows)
        return
    columns = ["topic", "owner", "partitions", "retention", "dead letters"]
    if not registry_only:
        columns += ["on broker", "messages"]
    table("topics (registry)", columns, [
        [r["name"], r["owner"], r["partitions"], "forever" if r["retention_ms"] < 0 else f"{r['retention_ms']} ms",
         r["dead_letter"] or "-"] + ([("yes" if r["on_broker"] else "MISSING")
                                      + ("" if not r["on_broker"] or r["broker_partitions"] == r["partitions"]
                                         else f" ({r['broker_partitions']} partitions)"), r["messages"]]
                                     if not registry_only else []) for r in rows])


@app.command()
def describe(topic: Annotated[str, typer.Argument(help="a topic name, e.g. intake.demands.v1")],
             bootstrap: Bootstrap = "", timeout: Timeout = 15.0, as_json: AsJson = False) -> None:
    """One topic: the registry's entry (owner, key, events) and the broker's partitions (leader, replicas, ISR,
    first and end offsets) and configuration."""
    entry = registry_entry(topic) if topic in TOPICS else None

    async def work(broker: Broker) -> dict[str, Any] | None:
        parts = (await broker.partitions([topic])).get(topic)
        if not parts:
            return None
        tps = [partition(topic, p["partition"]) for p in parts]
        begin, end = await broker.offsets(tps)
        return {"partitions": [{"partition": p["partition"], "leader": p["leader"], "replicas": p["replicas"],
                                "isr": p["isr"], "first_offset": begin[tp], "end_offset": end[tp],
                                "messages": end[tp] - begin[tp]} for p, tp in zip(parts, tps, strict=True)],
                "config": await broker.config(topic)}

    found = on_broker(bootstrap, timeout, work)
    if entry is None and found is None:
        fail(f"{topic}: neither in the registry nor on the broker", EXIT_NOT_FOUND)
    result = {"topic": topic, "registry": entry, "broker": found}
    if as_json:
        emit_json(result)
        return
    if entry:
        table(f"{topic} (registry)", ["field", "value"],
              [[k, ", ".join(v) if isinstance(v, list) else v] for k, v in entry.items() if k != "name"])
    else:
        err.print(f"{topic} is not in the registry", markup=False)
    if found is None:
        err.print(f"{topic} does not exist on the broker", markup=False)
        return
    table(f"{topic} (broker)", ["partition", "leader", "replicas", "isr", "first offset", "end offset", "messages"],
          [[p["partition"], p["leader"], p["replicas"], p["isr"], p["first_offset"], p["end_offset"], p["messages"]]
           for p in found["partitions"]])
    table("configuration", ["name", "value"], [[k, v] for k, v in found["config"].items()])


@app.command()
def lag(groups: Annotated[list[str] | None, typer.Option("--group", "-g", help="a consumer group (repeatable); "
                                                         "default: every group with offsets on a registry topic")]
        = None,
        topic: Annotated[str, typer.Option(help="only this topic")] = "",
        all_partitions: Annotated[bool, typer.Option("--partitions", help="one row per partition, not per topic")]
        = False,
        bootstrap: Bootstrap = "", timeout: Timeout = 15.0, as_json: AsJson = False) -> None:
    """How far each consumer group is behind: per topic (or partition) the committed offset, the end offset and the
    lag (end minus committed; a partition with nothing committed counts from its first offset)."""

    async def work(broker: Broker) -> list[dict[str, Any]]:
        wanted = list(groups or [g for g, _ in await broker.admin.list_consumer_groups()])
        rows: list[dict[str, Any]] = []
        with Progress(TextColumn("consumer groups"), BarColumn(), MofNCompleteColumn(), console=err,
                      transient=True, disable=len(wanted) < 5) as progress:
            task = progress.add_task("groups", total=len(wanted))
            for group in sorted(wanted):
                committed = await broker.admin.list_consumer_group_offsets(group)
                topics = sorted({tp.topic for tp in committed if (tp.topic in TOPICS if not topic else
                                                                   tp.topic == topic)})
                if groups and not topics and topic in ("", *TOPICS):
                    topics = [topic] if topic else []
                parts = await broker.partitions(topics) if topics else {}
                tps = [partition(t, p["partition"]) for t, ps in parts.items() for p in ps]
                begin, end = await broker.offsets(tps)
                for tp in tps:
                    at = committed[tp].offset if tp in committed and committed[tp].offset >= 0 else None
                    rows.append({"group": group, "topic": tp.topic, "partition": tp.partition, "committed": at,
                                 "end_offset": end[tp], "lag": end[tp] - (at if at is not None else begin[tp])})
                progress.advance(task)
        return rows

    rows = on_broker(bootstrap, timeout, work)
    if not all_partitions:
        merged: dict[tuple[str, str], dict[str, Any]] = {}
        for r in rows:
            m = merged.setdefault((r["group"], r["topic"]), {"group": r["group"], "topic": r["topic"], "partitions": 0,
                                                               "committed": 0, "end_offset": 0, "lag": 0})
            m["partitions"] += 1
            m["committed"] += r["committed"] or 0
            m["end_offset"] += r["end_offset"]
            m["lag"] += r["lag"]
        rows = list(merged.values())
    if as_json:
        emit_json(rows)
        return
    if not rows:
        err.print("no consumer group has offsets on these topics", markup=False)
        return
    key = "partition" if all_partitions else "partitions"
    table("consumer lag", ["group", "topic", key, "committed", "end", "lag"],
          [[r["group"], r["topic"], r[key], r["committed"] if r["committed"] is not None else "-", r["end_offset"],
            r["lag"]] for r in rows])
