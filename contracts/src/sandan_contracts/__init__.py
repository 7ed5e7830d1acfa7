"""sandan's public contract.

Everything another system may rely on lives here: the event models and their envelope
(`envelope`, `events`), the topic registry (`topics`), and the gRPC protos (`rpc`).
Services import this package; they never import each other.
"""

from sandan_contracts.envelope import Envelope, decode, encode
from sandan_contracts.events import EVENT_TYPES, Event, event_class
from sandan_contracts.topics import TOPICS, Topic, topic_for

__all__ = [
    "EVENT_TYPES",
    "TOPICS",
    "Envelope",
    "Event",
    "Topic",
    "decode",
    "encode",
    "event_class",
    "topic_for",
]
