"""Webhook signatures: HMAC-SHA256 over "<timestamp>.<body>", so a receiver knows the sender and the age.

Headers: X-Sandan-Timestamp (unix seconds), X-Sandan-Signature ("sha256=<hex>"), and X-Sandan-Notification-Id
(the idempotency key: a receiver that saw it already must not act again). A receiver recomputes the signature
with the shared secret, compares in constant time and rejects timestamps older (or newer) than its tolerance,
so a captured request cannot be replayed later. `verify` is that check, for receivers written in Python.
"""

from __future__ import annotations

import hashlib
import hmac

TIMESTAMP_HEADER = "X-Sandan-Timestamp"
SIGNATURE_HEADER = "X-Sandan-Signature"
NOTIFICATION_HEADER = "X-Sandan-Notification-Id"
DEFAULT_TOLERANCE_SECONDS = 300


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: bytes, timestamp: str | None, signature: str | None, body: bytes, now: float,
           tolerance: float = DEFAULT_TOLERANCE_SECONDS) -> bool:
    """True when the signature matches and the timestamp is within `tolerance` seconds of `now`."""
    if not timestamp or not signature:
        return False
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs(now - sent) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, sent, body), signature)
