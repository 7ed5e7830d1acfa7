"""Which failures are outages (wait and try again) and which will fail again (dead-letter).

An outage is the store or the broker being unreachable or too slow: the same work succeeds once it is
back, so a consumer pauses and retries for as long as it lasts. Anything else raised while applying one
input (a decoding error, a domain refusal, a bug on this input) will fail the same way next time.
"""

from __future__ import annotations

import sqlite3

import psycopg
import sqlalchemy.exc
from aiokafka import errors as kafka_errors
from eventsourcing import persistence
from tenacity import wait_exponential_jitter

_OUTAGES: tuple[type[BaseException], ...] = (
    # eventsourcing wraps the driver's errors; ConnectionUnavailableError is an OperationalError
    persistence.OperationalError,
    persistence.InterfaceError,
    # raised directly where eventsourcing does not wrap (psycopg_pool.PoolTimeout is an OperationalError)
    psycopg.OperationalError,
    psycopg.InterfaceError,
    sqlite3.OperationalError,  # "database is locked", "unable to open database file"
    # the SQLAlchemy tables beside the event store (read models, personal data)
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.DisconnectionError,
    sqlalchemy.exc.TimeoutError,
    kafka_errors.KafkaConnectionError,
    kafka_errors.KafkaTimeoutError,
    kafka_errors.NoBrokersAvailable,
    ConnectionError,
    TimeoutError,
)


def is_outage(error: BaseException) -> bool:
    """True when `error`, or an error it was raised from, means "unreachable or too slow, try again"."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _OUTAGES):
            return True
        if isinstance(current, kafka_errors.KafkaError) and current.retriable:
            return True  # e.g. NotLeaderForPartition, RequestTimedOut: the broker is moving or busy
        current = current.__cause__
    return False


def describe(error: BaseException, limit: int = 200) -> str:
    """A short, single-line reason for logs and health: the error's type and the start of its message."""
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:limit]}" if text else type(error).__name__


def backoff(initial: float, cap: float) -> wait_exponential_jitter:
    """Exponential backoff with jitter, capped: short waits for a blip, at most `cap` for a long outage."""
    return wait_exponential_jitter(multiplier=initial, max=cap, jitter=initial)
