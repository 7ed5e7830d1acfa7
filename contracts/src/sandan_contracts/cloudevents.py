"""CloudEvents 1.0 attributes of a sandan message, as Kafka binding headers (binary content mode).

Every record the relays publish carries, beside the envelope in its value (unchanged) and the `type` /
`schema_version` headers, the headers of the CloudEvents Kafka protocol binding, so stock CloudEvents SDKs read
the topics without knowing sandan:

    ce_specversion  1.0
    ce_id           the envelope's event_id (deterministic: a redelivery carries the same id)   intake:12
    ce_source       /sandan/<producer>, the writing service                                   /sandan/intake
    ce_type         cn.sandan.<topic family>.<type>.v<schema_version>    cn.sandan.intake.demands.DemandPosted.v1
    ce_time         the envelope's occurred_at, exactly as in the value                  2025-03-14T01:30:00Z
    ce_subject      the envelope's key (= the Kafka key: the aggregate id)               d-5f0c3a1e-...
    ce_dataschema   the message's JSON Schema $id (SCHEMA_BASE_URL + <topic>/<Type>.v<version>.json)
    content-type    application/json (the CloudEvent's datacontenttype)

The topic family is the topic name without its `.v<major>` suffix. `(type, schema_version)` is unique across
all topics (`EVENT_TYPES` is keyed by it), so `ce_type` names one schema. The CloudEvent's `data` is the whole
envelope (the record value): `source` + `id` is unique, as CloudEvents requires, because `event_id` is unique.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sandan_contracts.envelope import Envelope
from sandan_contracts.events import EVENT_TYPES
from sandan_contracts.schemas import schema_id

SPECVERSION = "1.0"
TYPE_PREFIX = "cn.sandan"
SOURCE_PREFIX = "/sandan/"
CONTENT_TYPE = "application/json"


def topic_family(topic: str) -> str:
    """`intake.demands.v1` -> `intake.demands`."""
    return re.sub(r"\.v\d+$", "", topic)


def ce_type(topic: str, type_name: str, schema_version: int) -> str:
    return f"{TYPE_PREFIX}.{topic_family(topic)}.{type_name}.v{schema_version}"


def ce_source(producer: str) -> str:
    return f"{SOURCE_PREFIX}{producer}"


def attributes(envelope: Envelope | bytes) -> dict[str, str]:
    """The CloudEvents attributes of one message (`datacontenttype` included), by attribute name."""
    if isinstance(envelope, bytes):
        envelope = Envelope.model_validate_json(envelope)
    event = EVENT_TYPES.get((envelope.type, envelope.schema_version))
    wire = envelope.model_dump(mode="json", include={"occurred_at"})
    out = {
        "specversion": SPECVERSION,
        "id": envelope.event_id,
        "source": ce_source(envelope.producer),
        "type": ce_type(event.TOPIC if event else "unknown", envelope.type, envelope.schema_version),
        "time": wire["occurred_at"],
        "subject": envelope.key,
        "datacontenttype": CONTENT_TYPE,
    }
    if event is not None:
        out["dataschema"] = schema_id(event)
    return out


def headers(envelope: Envelope | bytes) -> list[tuple[str, bytes]]:
    """The Kafka binding headers of one message: `ce_<attribute>` each, and `content-type`.

    `envelope` is the parsed envelope or the record value (the bytes `encode` returned)."""
    return [("content-type" if name == "datacontenttype" else f"ce_{name}", value.encode())
            for name, value in attributes(envelope).items()]


def carried(record_headers: Iterable[tuple[str, bytes | None]] | None) -> dict[str, str]:
    """The `ce_*` headers of a record, as text, to carry onto a copy of it (a dead letter): the first of each name,
    those that are UTF-8. A record that had none (bytes that were never a sandan message) gives none."""
    out: dict[str, str] = {}
    for name, value in record_headers or ():
        if not name.startswith("ce_") or name in out or value is None:
            continue
        try:
            out[name] = value.decode("utf-8")
        except UnicodeDecodeError:
            continue  # not an attribute a CloudEvents reader could use
    return out
