"""The worker: claim due sessions in batches, let the engine decide, apply the result.

A timer is just a due time on the session row, found by the same claim query as any
other work, so there is no scheduler. With nothing to do, the loop sleeps until the
next due time (one read of the due index), until it is woken (new work in this
process, a notification from PostgreSQL, a commit by another connection to the SQLite
file), or for `max_sleep` at most; docs/architecture.md, "Sleeping and waking".
`stop()` (from a signal handler) lets the current batch finish.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import traceback
from collections.abc import Callable
from contextlib import contextmanager
from datetime import datetime, timedelta

import sqlalchemy as sa

from sluice import metrics
from sluice.clock import Clock, idle_seconds
from sluice.engine.runner import advance, failure
from sluice.engine.work import EngineConfig, Transition, Work
from sluice.records import Session
from sluice.store import due as due_store
from sluice.store import sessions as session_store
from sluice.store.db import Database, error_line, retrying, sqlite_path
from sluice.store.flows import Catalog
from sluice.worker.listener import DataVersionWatcher, Listener

log = logging.getLogger(__name__)

DUE_RETRY = timedelta(minutes=5)


class Worker:
    def __init__(
        self,
        db: Database,
        catalog: Catalog,
        clock: Clock,
        config: EngineConfig,
        *,
        batch_size: int = 200,
        lease: timedelta = timedelta(seconds=60),
        poll_interval: float = 0.5,
        max_sleep: float = 30.0,
        rng: random.Random | None = None,
        due_handlers: dict[str, due_store.Handler] | None = None,
    ):
        self.db, self.catalog, self.clock, self.config = db, catalog, clock, config
        self.batch_size, self.lease = batch_size, lease
        self.poll_interval = poll_interval
        """The sleep while a session is due but held by another worker (its batch is
        in flight, or its lease has not run out)."""
        self.max_sleep = max_sleep
        """The longest sleep, in case a wake-up was lost (a dropped LISTEN connection)."""
        self.rng = rng or random.Random()
        self.due_handlers = due_handlers or {}
        """What to do with a check that fell due, by kind (store/due.py)."""
        self.name = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.on_new_deliveries: Callable[[], None] | None = None
        """Called when this worker wrote deliveries, or PostgreSQL said there is new
        work (a dispatcher in this process wakes on it)."""
        self._stop = threading.Event()
        self._wake = threading.Event()

    def run_once(self) -> int:
        """Claim one batch of due checks (store/due.py) and one of sessions, and work
        them; returns how many checks and sessions were done.

        A session that cannot be loaded, advanced or saved fails on its own (timeline
        entry `failed` with the error); the rest of its batch goes on. Loading and
        saving are one query set per batch; only after a batch failed are its
        sessions taken one at a time, to find the one at fault."""
        now = self.clock.now()
        checked = self._run_due_checks(now)
        with self.db.write() as conn:
            claimed = session_store.claim_due(
                conn, worker=self.name, now=now, limit=self.batch_size, lease=self.lease
            )
        if not claimed:
            return checked
        with metrics.BATCH_SECONDS.time(), self._heartbeat([s.id for s in claimed]):
            transitions = self._advance_all(claimed, now)
            applied = self._apply(claimed, transitions, now)
        if self.on_new_deliveries and any(t.deliveries for t in applied):
            self.on_new_deliveries()
        metrics.SESSIONS_ADVANCED.inc(len(applied))
        metrics.STALE_RESULTS.inc(len(transitions) - len(applied))
        metrics.STEPS_RUN.inc(sum(e.kind == "step" for t in applied for e in t.timeline))
        return checked + len(applied)

    def _run_due_checks(self, now: datetime) -> int:
        """Handle one batch of due checks, each kind in the transaction that claims it.
        A batch that fails is logged and tried again `DUE_RETRY` later (nothing of it
        was written); the sessions' batch goes on."""
        if not self.due_handlers:
            return 0
        try:
            with self.db.write() as conn:
                return due_store.run_due(conn, self.due_handlers, now, self.batch_size)
        except sa.exc.OperationalError:
            raise
        except Exception:
            log.exception("a batch of due checks failed; tried again in %s", DUE_RETRY)
            with self.db.write() as conn:
                due_store.postpone(conn, now, now + DUE_RETRY, self.batch_size)
            return 0

    def _advance_all(self, claimed: list[Session], now: datetime) -> list[Transition]:
        try:
            with self.db.read() as conn:
                work = session_store.load_work(conn, self.catalog, claimed, now)
        except sa.exc.OperationalError:
            raise  # the database is unavailable: the loop waits for it
        except Exception:
            log.exception("loading a batch of %d sessions failed; one by one", len(claimed))
            return [self._advance_alone(session, now) for session in claimed]
        return [self._advance(w) for w in work]

    def _advance_alone(self, session: Session, now: datetime) -> Transition:
        try:
            with self.db.read() as conn:
                [work] = session_store.load_work(conn, self.catalog, [session], now)
        except sa.exc.OperationalError:
            raise
        except Exception as error:
            log.exception("session %s could not be loaded", session.id)
            return failure(session, now, f"could not be loaded: {_words(error)}")
        return self._advance(work)

    def _advance(self, work: Work) -> Transition:
        try:
            return advance(work, self.config, self.rng)
        except Exception as error:  # a failing step fails its session, never the worker
            log.error("session %s failed: %s", work.session.id, traceback.format_exc())
            return failure(work.session, work.now, _words(error))

    def _apply(
        self, claimed: list[Session], transitions: list[Transition], now: datetime
    ) -> list[Transition]:
        try:
            with self.db.write() as conn:
                return session_store.apply_transitions(conn, self.catalog, transitions, now)
        except sa.exc.OperationalError:
            raise
        except Exception:
            log.exception("saving a batch of %d sessions failed; one by one", len(transitions))
        sessions = {s.id: s for s in claimed}
        applied = []
        for transition in transitions:
            try:
                applied += self._apply_one(transition, now)
            except sa.exc.OperationalError:
                raise
            except Exception as error:
                log.exception("session %s could not be saved", transition.session_id)
                reason = f"could not save its progress: {_words(error)}"
                try:
                    applied += self._apply_one(
                        failure(sessions[transition.session_id], now, reason), now
                    )
                except sa.exc.OperationalError:
                    raise
                except Exception:  # left to its lease; nothing else waits for it
                    log.exception("session %s could not be marked failed", transition.session_id)
        return applied

    def _apply_one(self, transition: Transition, now: datetime) -> list[Transition]:
        with self.db.write() as conn:
            return session_store.apply_transitions(conn, self.catalog, [transition], now)

    @contextmanager
    def _heartbeat(self, session_ids: list[int]):
        """Renew the batch's lease while it is being worked on, so that a slow batch is
        not taken over by another worker (which would only waste its effort: the
        revision check keeps a stale result from being applied)."""
        done = threading.Event()

        def renew() -> None:
            while not done.wait(self.lease.total_seconds() / 3):
                try:
                    with self.db.write() as conn:
                        session_store.renew_claims(
                            conn, session_ids, worker=self.name, until=self.clock.now() + self.lease
                        )
                except sa.exc.OperationalError:
                    log.warning("could not renew the lease of a batch", exc_info=True)

        beat = threading.Thread(target=renew, name="sluice-heartbeat", daemon=True)
        beat.start()
        try:
            yield
        finally:
            done.set()
            beat.join()

    def run_until_idle(self, max_batches: int = 10_000) -> int:
        """Advance every session that is due now; for tests, the CLI and simulations."""
        total = 0
        for _ in range(max_batches):
            done = self.run_once()
            if not done:
                break
            total += done
        return total

    def run_forever(self) -> None:
        log.info("worker %s started", self.name)
        watcher = self._watcher()
        try:
            while not self._stop.is_set():
                self._wake.clear()  # a wake-up during the batch is kept for the sleep
                try:
                    busy = retrying(self.run_once)
                except Exception:
                    log.exception("worker batch failed; backing off")
                    busy = 0
                    self._stop.wait(2.0)
                if not busy:
                    self._wake.wait(self._idle_seconds())
        finally:
            if watcher:
                watcher.stop()
        log.info("worker %s stopped", self.name)

    def _watcher(self) -> Listener | DataVersionWatcher | None:
        """What wakes this worker when another connection makes work due."""
        if not self.db.is_sqlite:
            return Listener(self.db.url, self._notified).start()
        path = sqlite_path(self.db.url)
        return DataVersionWatcher(path, self._notified).start() if path else None

    def _idle_seconds(self) -> float:
        """How long to sleep with nothing claimable (`clock.idle_seconds`)."""
        try:
            with self.db.read() as conn:
                due = session_store.next_due(conn)
                if self.due_handlers and (check := due_store.next_due(conn)) is not None:
                    due = check if due is None else min(due, check)
        except sa.exc.OperationalError:
            return self.poll_interval
        return idle_seconds(
            due, self.clock.now(), poll_interval=self.poll_interval, max_sleep=self.max_sleep
        )

    def wake(self) -> None:
        self._wake.set()

    def _notified(self) -> None:
        self.wake()
        if self.on_new_deliveries:
            self.on_new_deliveries()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()


def _words(error: Exception) -> str:
    """One line for the timeline: the error's type and its first line."""
    line = error_line(error)
    return f"{type(error).__name__}: {line}" if line else type(error).__name__
