"""The clock notify decides with (quiet hours, retry times). Real UTC time in production.

`FakeClock` is for tests only (NOTIFY_FAKE_NOW, not for production): it starts at a given instant and runs at
real speed, and jumps when the file it was given is rewritten, so an integration test can move a running
service to the night or the next morning.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def parse_instant(value: str) -> datetime:
    moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"{value!r} needs a UTC offset")
    return moment.astimezone(UTC)


class FakeClock:
    """Not for production. `spec`: an ISO instant, or "@/path/file" whose content is an ISO instant."""

    def __init__(self, spec: str, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(spec[1:]) if spec.startswith("@") else None
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._text = ""
        self._base = parse_instant(self._read() if self.path else spec)
        self._since = monotonic()

    def _read(self) -> str:
        assert self.path is not None
        self._text = self.path.read_text().strip()
        return self._text

    def __call__(self) -> datetime:
        with self._lock:
            if self.path is not None:
                try:
                    text = self.path.read_text().strip()
                except OSError:
                    text = self._text
                if text and text != self._text:
                    self._text = text
                    self._base, self._since = parse_instant(text), self.monotonic()
            return self._base + timedelta(seconds=self.monotonic() - self._since)
