#!/usr/bin/env python3
"""An agency's subscriber to sandan's topics: a complete example (docs/subscribing.md).

Needs only `pip install confluent-kafka` (the Python standard library does the rest). It shows what every
subscriber has to get right:

- connection from the environment: KAFKA_BOOTSTRAP_SERVERS, and for the county cluster
  KAFKA_SECURITY_PROTOCOL=SASL_SSL, KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD (SCRAM-SHA-512) and
  KAFKA_SSL_CA_FILE (the cluster CA, PEM);
- a consumer group of its own (a partner's groups must start with its KafkaUser name: `<agency>-...`);
- at-least-once: offsets are committed only after the event is stored, so a crash re-reads, never loses;
- deduplication by `event_id`: the event and its id are stored in one SQLite transaction, a redelivery (same
  `event_id`) is recognised and skipped;
- a tolerant reader: unknown fields are ignored; an event type it does not handle is stored and reported, not
  fatal; a record that is not a sandan envelope is reported and skipped (sandan dead-letters such records itself).

Each record prints one line: `event <event_id> <type> v<schema_version> key=<key> <topic>/<partition>@<offset>
ce_type=<CloudEvents type>`, or `duplicate <event_id> ...`, or `skipped ...`. It stops after --max-records records
or --timeout seconds, whichever comes first; it exits 1 with `error: <code>: <reason>` on stderr when the broker
refuses it (a topic or group it has no access to, wrong credentials) or a topic does not exist.

    python subscriber.py --group myagency-demo --max-records 10
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import time
from collections.abc import Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message

# Errors no retry can mend: a topic that does not exist, one the user may not read (a dead-letter topic), a group
# it may not use (not starting with its user name), credentials the broker refuses. The subscriber stops on them.
FATAL = {
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.GROUP_AUTHORIZATION_FAILED,
    KafkaError._AUTHENTICATION,
}

# Every public topic (not the dead letters: those are for sandan's operators).
TOPICS = [
    "intake.demands.v1",
    "dispatch.roster.v1",
    "dispatch.orders.v1",
    "dispatch.activities.v1",
    "scoring.points.v1",
    "scoring.notices.v1",
    "notify.deliveries.v1",
]


def kafka_config(group: str) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        "group.id": group,
        "auto.offset.reset": "earliest",  # a new group reads every topic from its first event (kept forever)
        "enable.auto.commit": False,  # committed by hand, after the event is stored
        "enable.partition.eof": False,
    }
    protocol = os.environ.get("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT").upper()
    config["security.protocol"] = protocol
    if protocol == "SASL_SSL":
        config["sasl.mechanism"] = "SCRAM-SHA-512"
        config["sasl.username"] = os.environ["KAFKA_SASL_USERNAME"]
        config["sasl.password"] = os.environ["KAFKA_SASL_PASSWORD"]
    if protocol in ("SSL", "SASL_SSL") and os.environ.get("KAFKA_SSL_CA_FILE"):
        config["ssl.ca.location"] = os.environ["KAFKA_SSL_CA_FILE"]
    return config


class Store:
    """The subscriber's own database: the events it keeps, keyed by event_id (which makes them idempotent)."""

    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path)
        self.db.execute("""CREATE TABLE IF NOT EXISTS events (
            event_id TEXT PRIMARY KEY, type TEXT NOT NULL, schema_version INTEGER NOT NULL, key TEXT NOT NULL,
            occurred_at TEXT NOT NULL, topic TEXT NOT NULL, partition INTEGER NOT NULL, "offset" INTEGER NOT NULL,
            body TEXT NOT NULL)""")
        self.db.commit()

    def add(self, envelope: dict[str, Any], msg: Message) -> bool:
        """Store the event; False when its event_id was stored before (a duplicate)."""
        with self.db:  # one transaction: the event and its id together
            cursor = self.db.execute(
                "INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (envelope["event_id"], envelope["type"], envelope["schema_version"], envelope["key"],
                 envelope["occurred_at"], msg.topic(), msg.partition(), msg.offset(), json.dumps(envelope)))
            return cursor.rowcount == 1


def handle(store: Store, msg: Message) -> str:
    headers = {k: (v or b"").decode("utf-8", "replace") for k, v in (msg.headers() or [])}
    where = f"{msg.topic()}/{msg.partition()}@{msg.offset()}"
    try:
        envelope = json.loads(msg.value() or b"")
        event_id, type_name, version = envelope["event_id"], envelope["type"], int(envelope["schema_version"])
        data, key = envelope["data"], envelope["key"]
    except (ValueError, KeyError, TypeError) as exc:
        return f"skipped {where}: not a sandan envelope ({exc!r})"
    if not isinstance(data, dict):
        return f"skipped {where}: data is not an object"
    # The application's own work goes here, e.g. `if type_name == "OrderOverdue": ...`; fields it does not know
    # are ignored, and an event type it does not handle is kept all the same.
    fresh = store.add(envelope, msg)
    kind = "event" if fresh else "duplicate"
    return (f"{kind} {event_id} {type_name} v{version} key={key} {where} "
            f"ce_type={headers.get('ce_type', '-')}")


def run(topics: Sequence[str], group: str, db: str, max_records: int, timeout: float) -> int:
    store = Store(db)
    # errors about the connection (e.g. a refused password) come through error_cb, those about a topic or the
    # group as records with an error: both are looked at in the loop
    errors: list[KafkaError] = []
    consumer = Consumer({**kafka_config(group), "error_cb": errors.append})
    consumer.subscribe(list(topics))
    seen = 0
    deadline = time.monotonic() + timeout
    try:
        while seen < max_records and time.monotonic() < deadline:
            messages = consumer.consume(num_messages=min(100, max_records - seen), timeout=0.5)
            errors += [msg.error() for msg in messages if msg.error()]
            for error in errors:
                if error.code() in FATAL or error.fatal():
                    print(f"error: {error.name()}: {error.str()}", file=sys.stderr)
                    return 1
                print(f"warning: {error}", file=sys.stderr)
            errors.clear()
            for msg in messages:
                if msg.error():
                    continue
                print(handle(store, msg), flush=True)
                # at least once: the position moves only after the event is stored
                consumer.commit(message=msg, asynchronous=False)
                seen += 1
    finally:
        consumer.close()
    print(f"done: {seen} record(s)", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Read sandan's events into a local SQLite store, once each.")
    parser.add_argument("--group", required=True, help="consumer group id (a partner's start with its user name)")
    parser.add_argument("--topic", action="append", dest="topics", help="topic to read (repeatable; default: all)")
    parser.add_argument("--db", default="sandan-events.sqlite", help="the SQLite store (default: %(default)s)")
    parser.add_argument("--max-records", type=int, default=sys.maxsize, help="stop after this many records")
    parser.add_argument("--timeout", type=float, default=float("inf"), help="stop after this many seconds")
    args = parser.parse_args(argv)
    return run(args.topics or TOPICS, args.group, args.db, args.max_records, args.timeout)


if __name__ == "__main__":
    raise SystemExit(main())
