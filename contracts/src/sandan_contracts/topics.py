"""The topic registry: the single source of truth for every topic sandan writes.

Local topic creation (`python -m sandan_eventbus.topics create`) and the Kubernetes KafkaTopic manifests
are both generated from this list. Names follow `<owner>.<stream>.v<major>`; one writer per topic; keys are
aggregate ids so each aggregate's events stay in order. Event-log topics keep events forever (retention -1):
scoring rebuilds from them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sandan_contracts.events import EVENT_TYPES, Event

FOREVER = -1
DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class Topic:
    name: str
    owner: str
    key: str
    partitions: int
    retention_ms: int
    description: str
    dead_letter: str | None = None
    events: tuple[str, ...] = field(default=())

    @property
    def config(self) -> dict[str, str]:
        return {
            "retention.ms": str(self.retention_ms),
            "cleanup.policy": "delete",
            "min.insync.replicas": "1",
        }


def _events_of(topic: str) -> tuple[str, ...]:
    return tuple(sorted({cls.TYPE for cls in EVENT_TYPES.values() if topic == cls.TOPIC}))


def _log(name: str, owner: str, key: str, partitions: int, description: str) -> list[Topic]:
    dlq = f"{name}.dlq"
    return [
        Topic(name, owner, key, partitions, FOREVER, description, dlq, _events_of(name)),
        # Written by whichever consumer group failed to read a message of `name`; kept 90 days for triage.
        Topic(dlq, owner, key, 1, 90 * DAY_MS, f"dead letters of {name}: original bytes + error headers"),
    ]


TOPICS: dict[str, Topic] = {
    t.name: t
    for t in (
        *_log("intake.demands.v1", "intake", "demand_id", 6, "residents' demands and their outcome"),
        *_log("dispatch.roster.v1", "dispatch", "unit_id | member_id | grid_id", 3, "units, members, grids, teams"),
        *_log("dispatch.orders.v1", "dispatch", "order_id", 6, "orders: dispatch, claim, service, escalation"),
        *_log("dispatch.activities.v1", "dispatch", "activity_id", 3, "themed party days: schedule, sign-up, check-in"),
        *_log("scoring.points.v1", "scoring", "member_id", 6, "points ledger entries and star ratings"),
        *_log("scoring.notices.v1", "scoring", "notice_id", 1, "quarterly notices per community and unit"),
        *_log("notify.deliveries.v1", "notify", "notification_id", 3, "what was sent to whom, or failed"),
    )
}


def topic_for(event: type[Event] | Event) -> Topic:
    return TOPICS[event.TOPIC]
