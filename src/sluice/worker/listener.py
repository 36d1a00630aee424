"""Wake a worker as soon as PostgreSQL says there is new work.

A notification only shortens the wait; the worker's poll remains the guarantee, so a
lost connection costs latency, never work. The listener reconnects with backoff.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg

from sluice.store.notify import WORK_CHANNEL

log = logging.getLogger(__name__)


class Listener:
    def __init__(self, url: str, on_notify: Callable[[], None], channel: str = WORK_CHANNEL):
        self.url = url.replace("postgresql+psycopg://", "postgresql://")
        self.on_notify, self.channel = on_notify, channel
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sluice-listener", daemon=True)

    def start(self) -> Listener:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        delay = 0.5
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {self.channel}")
                    delay = 0.5
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            self.on_notify()
            except psycopg.OperationalError as error:
                log.warning("listener lost the database (%s); retrying in %.1fs", error, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 30.0)
