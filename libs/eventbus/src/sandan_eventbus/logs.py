"""One JSON-lines log format for every service, so dashboards parse them the same way.

Every line names its service (`service`), carries the business `correlation_id` when one is current, and the
OpenTelemetry `trace_id` and `span_id` when a span is (`sandan_eventbus.tracing`), so a line leads to its trace."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from sandan_eventbus import tracing
from sandan_eventbus.trace import current


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str | None = None) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if self.service:
            entry["service"] = self.service
        trace = current()
        if trace is not None:
            entry["correlation_id"] = trace.correlation_id
        span = tracing.ids()
        if span is not None:
            entry["trace_id"], entry["span_id"] = span
        for key, value in getattr(record, "fields", {}).items():
            entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def service_name(logger: str) -> str:
    """The service a logger's name stands for: "sandan_dispatch" -> "dispatch"."""
    return logger.removeprefix("sandan_")


def setup(service: str, level: str = "INFO") -> logging.Logger:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service_name(service)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiokafka", "faststream", "kafka"):
        logging.getLogger(noisy).setLevel("WARNING")
    return logging.getLogger(service)
