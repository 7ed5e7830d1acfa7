"""The AsyncAPI 3.0 document of every topic, generated from the topic registry and the JSON Schemas.

    python -m sandan_contracts.asyncapi           # rewrite asyncapi.json (beside schemas/ in this package)
    python -m sandan_contracts.asyncapi --check   # exit 1 when the committed file is stale

The document describes sandan as the application that *sends* every topic (the operations are `send`); a
subscriber reads the channels. Per topic (channel): its address, key and ordering, partitions and retention (Kafka
channel binding), its dead-letter topic; per event type (message): the payload is the message's JSON Schema (the
envelope with the event's `data`), referenced by path, `schemas/<topic>/<Type>.v<version>.json`, so the document
and the schema files resolve together as static files; the headers are the `type` / `schema_version` headers and
the CloudEvents Kafka binding headers (`sandan_contracts.cloudevents`); the example is the event's golden message.
Servers: the local PLAINTEXT broker and the production cluster's external listener (SASL_SSL, SCRAM-SHA-512).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sandan_contracts import cloudevents
from sandan_contracts.envelope import Envelope
from sandan_contracts.events import EVENT_TYPES, Event
from sandan_contracts.schemas import SCHEMA_BASE_URL, SCHEMA_DIR, relative_path, schema_id
from sandan_contracts.topics import TOPICS, Topic

PACKAGE_DIR = Path(__file__).resolve().parent
DOCUMENT = PACKAGE_DIR / "asyncapi.json"
GOLDEN_DIR = PACKAGE_DIR / "golden"
ASYNCAPI_VERSION = "3.0.0"
KAFKA_BINDING = "0.5.0"
# The JSON Schema dialect of the payload files (their `$schema`).
PAYLOAD_FORMAT = "application/schema+json;version=draft-2020-12"
# The release this document describes (tagged v<version>); bumped with the contract: a new topic, event type or
# optional field is a minor change.
DOCUMENT_VERSION = "0.1.0"

Doc = dict[str, Any]

_DESCRIPTION = f"""\
Every fact sandan publishes, one topic per stream. One writer per topic (its owner); every message is one UTF-8
JSON envelope (`event_id`, `type`, `schema_version`, `occurred_at`, `producer`, `key`, `correlation_id`,
`causation_id`, `data`) whose `data` is the event. See docs/subscribing.md.

- **Keys and ordering**: the Kafka key is the aggregate id (the envelope's `key`, equal to `data.<key field>`);
  one aggregate's events are in one partition, in order. There is no order across keys or topics.
- **Delivery is at least once**: a redelivered event carries the same `event_id`; deduplicate by it.
- **Retention**: event topics keep every event forever (`retention.ms=-1`), so a new reader can start from the
  beginning. Dead-letter topics keep 90 days.
- **Versioning**: within a `.vN` topic only additive changes (new optional fields, new enum values, new event
  types); readers must ignore unknown fields. A breaking change is a new topic `.vN+1`, written beside the old
  one until readers have moved.
- **CloudEvents**: every record carries the CloudEvents Kafka binding headers (binary content mode): `ce_id` is the
  `event_id`, `ce_type` is `{cloudevents.TYPE_PREFIX}.<topic without .vN>.<type>.v<schema_version>`, `ce_source`
  `{cloudevents.SOURCE_PREFIX}<producer>`, `ce_dataschema` the schema's `$id` ({SCHEMA_BASE_URL}...). The
  CloudEvent's data is the whole envelope.
"""


def _kafka_id_schema() -> dict[str, Any]:
    key = Envelope.model_json_schema()["properties"]["key"]
    return {k: v for k, v in key.items() if k != "title"}


def _headers(event: type[Event], topic: Topic) -> dict[str, Any]:
    ce_type = cloudevents.ce_type(topic.name, event.TYPE, event.VERSION)

    def const(value: str, description: str) -> dict[str, Any]:
        return {"type": "string", "const": value, "description": description}

    properties = {
        "type": const(event.TYPE, "the envelope's type"),
        "schema_version": const(str(event.VERSION), "the envelope's schema_version"),
        "ce_specversion": const(cloudevents.SPECVERSION, "CloudEvents spec version"),
        "ce_id": {"type": "string", "description": "CloudEvents id: the envelope's event_id (same on a redelivery)"},
        "ce_source": {"type": "string", "const": cloudevents.ce_source(topic.owner),
                      "description": "CloudEvents source: /sandan/<producer>"},
        "ce_type": const(ce_type, "CloudEvents type"),
        "ce_time": {"type": "string", "format": "date-time",
                    "description": "CloudEvents time: the envelope's occurred_at (UTC)"},
        "ce_subject": {"type": "string", "description": "CloudEvents subject: the envelope's key (the Kafka key)"},
        "ce_dataschema": const(schema_id(event), "CloudEvents dataschema: the $id of the payload's JSON Schema"),
        "content-type": const(cloudevents.CONTENT_TYPE, "CloudEvents datacontenttype"),
    }
    required = sorted(properties)
    # optional: W3C trace context of the call that caused the fact (OpenTelemetry), absent on older records
    properties["traceparent"] = {"type": "string", "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
                                 "description": "W3C trace context (optional): follow one demand across services"}
    properties["tracestate"] = {"type": "string", "description": "W3C trace state (optional)"}
    return {"type": "object", "required": required, "properties": properties}


def _example(event: type[Event]) -> dict[str, Any] | None:
    golden = GOLDEN_DIR / f"{event.TYPE}.v{event.VERSION}.json"
    if not golden.is_file():
        return None
    raw = golden.read_bytes()
    headers = {"type": event.TYPE, "schema_version": str(event.VERSION)}
    headers.update({name: value.decode() for name, value in cloudevents.headers(raw)})
    return {"name": f"golden {event.TYPE} v{event.VERSION}", "headers": headers, "payload": json.loads(raw)}


def _message(event: type[Event], topic: Topic) -> Doc:
    doc = (event.__doc__ or "").strip().split("\n\n")[0]
    message: Doc = {
        "name": event.TYPE,
        "title": f"{event.TYPE} v{event.VERSION}",
        "summary": " ".join(doc.split()) or event.TYPE,
        "description": (f"On `{topic.name}`, keyed by `{event.KEY}`. CloudEvents type "
                        f"`{cloudevents.ce_type(topic.name, event.TYPE, event.VERSION)}`."),
        "contentType": cloudevents.CONTENT_TYPE,
        "headers": _headers(event, topic),
        "payload": {"schemaFormat": PAYLOAD_FORMAT, "schema": {"$ref": f"schemas/{relative_path(event)}"}},
        "correlationId": {"description": "the business flow this fact belongs to",
                          "location": "$message.payload#/correlation_id"},
        "bindings": {"kafka": {"key": {**_kafka_id_schema(), "description": f"data.{event.KEY}"},
                               "bindingVersion": KAFKA_BINDING}},
        "tags": [{"name": topic.owner}],
    }
    example = _example(event)
    if example:
        message["examples"] = [example]
    return message


def _dead_letter_message(topic: Topic) -> Doc:
    def header(description: str) -> dict[str, Any]:
        return {"type": "string", "description": description}

    return {
        "name": "DeadLetter",
        "title": f"dead letter of {topic.name.removesuffix('.dlq')}",
        "summary": "a message some consumer group could not read, with why",
        "description": ("The original record's key and value (its bytes, which may not be JSON at all; cut to "
                        "the broker's limit when too large, `dlq.truncated` then gives the original size), and "
                        "headers naming the source record, the failing consumer group and the error. For "
                        "triage and re-drive by that group's owner; subscribers need not read these."),
        "headers": {
            "type": "object",
            "required": ["dlq.error", "dlq.source.topic", "dlq.source.partition", "dlq.source.offset",
                         "dlq.consumer.group", "dlq.at"],
            "properties": {
                "dlq.error": header("why the message could not be applied"),
                "dlq.source.topic": header("the topic it was read from"),
                "dlq.source.partition": header("its partition there"),
                "dlq.source.offset": header("its offset there"),
                "dlq.consumer.group": header("the consumer group that failed"),
                "dlq.at": {"type": "string", "format": "date-time", "description": "when it was dead-lettered"},
                "dlq.truncated": header("present when the value was cut: the original size in bytes"),
            },
        },
        "payload": {"description": "the original record's value, unchanged (bytes)"},
        "bindings": {"kafka": {"key": {"type": "string", "description": "the original record's key"},
                               "bindingVersion": KAFKA_BINDING}},
    }


def _channel(topic: Topic, messages: dict[str, Any]) -> Doc:
    keys = [k.strip() for k in topic.key.split("|")]
    if topic.dead_letter:
        description = (f"{topic.description}. Written only by {topic.owner}. Keyed by "
                       f"{' / '.join(f'`{k}`' for k in keys)} (one aggregate's events in one partition, in order); "
                       f"retention {'forever' if topic.retention_ms < 0 else f'{topic.retention_ms} ms'}. "
                       f"Dead letters of its consumers go to `{topic.dead_letter}`.")
    else:
        description = f"{topic.description}; kept {topic.retention_ms // 86_400_000} days."
    channel: Doc = {
        "address": topic.name,
        "title": topic.name,
        "description": description,
        "messages": {name: {"$ref": f"#/components/messages/{ref}"} for name, ref in messages.items()},
        "bindings": {"kafka": {
            "topic": topic.name,
            "partitions": topic.partitions,
            "topicConfiguration": {"cleanup.policy": [topic.config["cleanup.policy"]],
                                   "retention.ms": topic.retention_ms},
            "bindingVersion": KAFKA_BINDING,
        }},
        "x-sandan-owner": topic.owner,
        "x-sandan-key": keys,
    }
    if topic.dead_letter:
        channel["x-sandan-dead-letter"] = topic.dead_letter
    return channel


def generate() -> Doc:
    channels: Doc = {}
    operations: Doc = {}
    messages: Doc = {}
    for topic in TOPICS.values():
        if not topic.name.endswith(".dlq"):
            events = sorted((cls for cls in EVENT_TYPES.values() if topic.name == cls.TOPIC),
                            key=lambda cls: (cls.TYPE, cls.VERSION))
            names = {f"{cls.TYPE}.v{cls.VERSION}": f"{cls.TYPE}.v{cls.VERSION}" for cls in events}
            for cls in events:
                messages[f"{cls.TYPE}.v{cls.VERSION}"] = _message(cls, topic)
            summary = f"{topic.owner} publishes {topic.description}"
        else:
            ref = f"DeadLetter.{topic.name}"
            names = {"DeadLetter": ref}
            messages[ref] = _dead_letter_message(topic)
            summary = f"a consumer of {topic.name.removesuffix('.dlq')} sets aside what it could not read"
        channels[topic.name] = _channel(topic, names)
        operations[f"send.{topic.name}"] = {
            "action": "send",
            "title": f"publish {topic.name}",
            "summary": summary,
            "channel": {"$ref": f"#/channels/{topic.name}"},
            "messages": [{"$ref": f"#/channels/{topic.name}/messages/{name}"} for name in names],
        }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "id": "urn:sandan:events",
        "info": {
            "title": "sandan events",
            "version": DOCUMENT_VERSION,
            "description": _DESCRIPTION,
        },
        "defaultContentType": cloudevents.CONTENT_TYPE,
        "servers": {
            "local": {
                "host": "127.0.0.1:9092",
                "protocol": "kafka",
                "title": "local broker",
                "description": "deploy/local/kafka.sh or docker-compose: PLAINTEXT, no authentication.",
            },
            "production": {
                "host": "{bootstrap}:9094",
                "protocol": "kafka-secure",
                "title": "county cluster, external listener",
                "description": ("Strimzi's `external` listener: TLS (the cluster CA, Secret "
                                "`sandan-cluster-ca-cert`, key `ca.crt`) and SASL SCRAM-SHA-512 with a read-only "
                                "partner KafkaUser (deploy/k8s/partners/). Client settings: "
                                "security.protocol=SASL_SSL, sasl.mechanism=SCRAM-SHA-512."),
                "variables": {"bootstrap": {
                    "description": "the address of the load balancer `sandan-kafka-external-bootstrap`, "
                                   "given to the agency with its credentials"}},
                "security": [{"$ref": "#/components/securitySchemes/scram"}],
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "securitySchemes": {
                "scram": {"type": "scramSha512",
                          "description": "SASL SCRAM-SHA-512 over TLS: the KafkaUser's name and password"},
                "mtls": {"type": "X509",
                         "description": ("mutual TLS with a client certificate (KafkaUser authentication "
                                         "`tls`): for a listener configured with `authentication: tls`; the "
                                         "default external listener takes SCRAM only")},
            },
        },
    }


def render(doc: Doc) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandan_contracts.asyncapi",
                                     description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the committed document is stale")
    args = parser.parse_args(argv)
    text = render(generate())
    current = DOCUMENT.read_text("utf-8") if DOCUMENT.is_file() else None
    if args.check:
        if current != text:
            print(f"{DOCUMENT} is stale: run `python -m sandan_contracts.asyncapi`", file=sys.stderr)
            return 1
        print(f"{DOCUMENT.name} up to date")
        return 0
    if current != text:
        DOCUMENT.write_text(text, "utf-8")
        print(f"wrote {DOCUMENT}")
    else:
        print(f"{DOCUMENT.name} unchanged")
    return 0


__all__ = ["DOCUMENT", "SCHEMA_DIR", "generate", "main", "render"]

if __name__ == "__main__":
    raise SystemExit(main())
