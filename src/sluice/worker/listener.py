"""Wake a worker as soon as another connection may have made work due.

PostgreSQL: `Listener` hears `NOTIFY` on the work channel. SQLite has no
notifications; `DataVersionWatcher` asks SQLite, on a connection of its own, whether
any other connection committed since it last asked (`PRAGMA data_version`: no table
is read, so it costs microseconds however big the database is).

Either only shortens the wait: a worker also wakes at the next due time it knows of,
and at the latest after its longest sleep, so a lost connection costs latency, never
work. The listener reconnects with backoff.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable

import psycopg

from sluice.store.notify import WORK_CHANNEL

log = logging.getLogger(__name__)

DATA_VERSION_INTERVAL = 0.5
"""Seconds between two looks at SQLite's `data_version`: how long a commit by another
process (`sluice send` beside `sluice serve`) may wait before a worker claims."""


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


class DataVersionWatcher:
    """Calls `on_change` when another connection (of this process or another) has
    committed a change to the SQLite file at `path`. A transaction that changed
    nothing (a claim that found nothing due) does not count."""

    def __init__(
        self, path: str, on_change: Callable[[], None], interval: float = DATA_VERSION_INTERVAL
    ):
        self.path, self.on_change, self.interval = path, on_change, interval
        self._conn: sqlite3.Connection | None = None
        self._seen: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sluice-watcher", daemon=True)

    def start(self) -> DataVersionWatcher:
        """Take the current version before returning, so that whatever is committed
        after the caller's next claim is noticed."""
        self._seen = self._version()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if self._conn is not None:
            self._conn.close()

    def _version(self) -> int | None:
        """The file's data version on our connection; None if it cannot be read (then
        the connection is opened again next time, and the version taken afresh)."""
        try:
            if self._conn is None:
                self._conn = sqlite3.connect(
                    self.path, isolation_level=None, timeout=5, check_same_thread=False
                )
            return self._conn.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error as error:
            log.warning("cannot watch %s for changes (%s)", self.path, error)
            self._conn = None
            return None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            version = self._version()
            if version is not None and self._seen is not None and version != self._seen:
                self.on_change()
            self._seen = version
