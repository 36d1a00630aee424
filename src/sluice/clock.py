"""The one source of time.

Everything that needs "now" is handed a clock; nothing reads the system time on its
own. Tests hand in a `FakeClock` and move it forward, so waits of days take
milliseconds.
"""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime | None = None):
        self._now = start or datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._now += delta
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = when


def idle_seconds(
    due: datetime | None, now: datetime, *, poll_interval: float, max_sleep: float
) -> float:
    """How long an idle loop (worker or dispatcher) sleeps, in seconds: until `due`,
    the next due time it read, and at most `max_sleep`; with nothing due, `max_sleep`.
    When `due` has passed, what is due is held elsewhere (another batch, or another
    process until its lease runs out): `poll_interval` with ±20 % jitter, so that many
    idle processes do not look again in step."""
    if due is None:
        return max_sleep
    seconds = (due - now).total_seconds()
    if seconds <= 0:
        return poll_interval * random.uniform(0.8, 1.2)
    return min(max_sleep, seconds)
