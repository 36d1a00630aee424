"""Failed logins, counted per client address: after `MAX_FAILURES` within `WINDOW`,
the address must wait until the oldest of them is out of the window, and its
password is not even checked meanwhile. That turns guessing the admin password from
thousands of tries a minute into a few dozen an hour.

The count lives in the process (several API processes each keep their own), and is
bounded: only addresses with a recent failure are kept. Behind a reverse proxy the
address is the one the proxy reports (uvicorn's `--forwarded-allow-ips`).
"""

from __future__ import annotations

import threading
from collections import deque
from datetime import datetime, timedelta

MAX_FAILURES = 10
WINDOW = timedelta(minutes=15)
MAX_ADDRESSES = 10_000
"""Past this many addresses with failures, the oldest are forgotten first."""


class LoginThrottle:
    def __init__(self) -> None:
        # Least recently failed first: an address moves to the end on each failure.
        self._failures: dict[str, deque[datetime]] = {}
        self._lock = threading.Lock()

    def wait(self, address: str, now: datetime) -> timedelta | None:
        """How long `address` must wait before its next attempt, or None."""
        with self._lock:
            failures = _within_window(self._failures.get(address, ()), now)
            if len(failures) < MAX_FAILURES:
                return None
            return failures[0] + WINDOW - now

    def failed(self, address: str, now: datetime) -> None:
        with self._lock:
            failures = _within_window(self._failures.pop(address, ()), now)
            failures.append(now)
            self._failures[address] = failures
            if len(self._failures) > MAX_ADDRESSES:
                del self._failures[next(iter(self._failures))]

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._failures.pop(address, None)


def _within_window(failures, now: datetime) -> deque[datetime]:
    return deque((at for at in failures if at > now - WINDOW), maxlen=MAX_FAILURES)
