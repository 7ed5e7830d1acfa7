"""(e) The topic registry: names, retention, dead letters, and every event's home."""

from __future__ import annotations

import re

import pytest

from sandan_contracts import EVENT_TYPES, TOPICS, topic_for
from sandan_contracts.topics import FOREVER

NAME = re.compile(r"^(?P<owner>[a-z][a-z0-9_]*)\.(?P<stream>[a-z][a-z0-9_]*)\.v(?P<major>[1-9][0-9]*)(?P<dlq>\.dlq)?$")

LOGS = [t for t in TOPICS.values() if not t.name.endswith(".dlq")]
DLQS = [t for t in TOPICS.values() if t.name.endswith(".dlq")]


def test_registry_is_keyed_by_name() -> None:
    assert all(name == topic.name for name, topic in TOPICS.items())
    assert LOGS and DLQS


@pytest.mark.parametrize("topic", TOPICS.values(), ids=lambda t: t.name)
def test_names_follow_owner_stream_major(topic) -> None:
    match = NAME.match(topic.name)
    assert match, f"{topic.name} is not <owner>.<stream>.v<major>[.dlq]"
    assert match["owner"] == topic.owner
    assert topic.partitions >= 1


@pytest.mark.parametrize("topic", LOGS, ids=lambda t: t.name)
def test_event_logs_keep_events_forever_and_have_a_registered_dead_letter_topic(topic) -> None:
    assert topic.retention_ms == FOREVER == -1
    assert topic.config["retention.ms"] == "-1"
    assert topic.dead_letter == f"{topic.name}.dlq"
    assert topic.dead_letter in TOPICS
    dlq = TOPICS[topic.dead_letter]
    assert dlq.owner == topic.owner and dlq.key == topic.key
    assert topic.events, "an event-log topic carries at least one event type"


@pytest.mark.parametrize("topic", DLQS, ids=lambda t: t.name)
def test_dead_letter_topics_belong_to_a_log_and_expire(topic) -> None:
    assert topic.name.removesuffix(".dlq") in TOPICS
    assert topic.dead_letter is None and topic.events == ()
    assert topic.retention_ms > 0


@pytest.mark.parametrize("cls", list(EVENT_TYPES.values()), ids=lambda c: c.TYPE)
def test_every_event_is_published_on_a_registered_topic(cls) -> None:
    assert cls.TOPIC in TOPICS
    topic = topic_for(cls)
    assert not topic.name.endswith(".dlq")
    assert cls.TYPE in topic.events
    # one writer per topic: the events module that defines it is the topic's owner
    assert cls.__module__ == f"sandan_contracts.events.{topic.owner}"
    assert cls.KEY in cls.model_fields and cls.model_fields[cls.KEY].is_required()
    assert cls.KEY in topic.key


def test_topic_events_list_exactly_the_models() -> None:
    for topic in LOGS:
        assert set(topic.events) == {c.TYPE for c in EVENT_TYPES.values() if topic.name == c.TOPIC}


def test_type_names_are_unique_across_topics() -> None:
    names = [c.TYPE for c in EVENT_TYPES.values()]
    assert len(names) == len(set(names))
