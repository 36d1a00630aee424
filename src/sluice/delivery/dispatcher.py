"""The dispatcher: claims due deliveries, attempts many at once, records outcomes.

Deliveries wait on the network, not on the CPU, so they run as asyncio tasks, up to
`in_flight` at a time; the database calls (claims, recording results) run in a
thread so they never stall the attempts in flight. Results are recorded in batches:
one transaction for all the attempts that ended since the last one.

Time comes from the injected clock: when a delivery is due, when its lease runs out,
when the next attempt is. An idle dispatcher sleeps until the next attempt is due,
until it is woken (`wake()`: new deliveries, from the worker beside it), or for
`max_sleep` at most. `run_once()` is one round (claim, attempt, record) for tests
and tools; `run()` keeps attempts flowing until `stop()` is called.

Crash safety: a claim is a lease, renewed while the attempt runs. A dispatcher that
dies holds its deliveries until the lease runs out; another dispatcher then attempts
them again, with the same Message-ID or webhook-id, so receivers can discard the
repeat. An attempt never outlives `attempt_limit`, so a hanging server cannot hold a
slot for ever.

Containment: one delivery never holds up the others. Whatever goes wrong with one
(its stored payload, its retry computation, a result the database refuses) fails
that delivery, in its session's timeline, and the rest are recorded and claimed as
usual. Only a database that is unavailable makes the dispatcher wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa

from sluice.clock import Clock, idle_seconds
from sluice.delivery import retry
from sluice.delivery.limit import AdaptiveLimit
from sluice.delivery.sender import Attempt, Sender, Verdict
from sluice.records import DeliveryState
from sluice.store import deliveries as delivery_store
from sluice.store.db import Database, error_line, retrying
from sluice.store.deliveries import Delivery, Result

log = logging.getLogger(__name__)

BATCH_WINDOW = 0.02
"""Seconds to gather results before recording them."""


class Dispatcher:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        senders: Iterable[Sender],
        *,
        in_flight: int = 500,
        lease: timedelta = timedelta(seconds=60),
        attempt_limit: timedelta = timedelta(seconds=90),
        poll_interval: float = 0.2,
        max_sleep: float = 30.0,
        stop_grace: float = 10.0,
        rng: random.Random | None = None,
    ):
        self.db, self.clock = db, clock
        self.senders = {sender.kind: sender for sender in senders}
        self.in_flight, self.lease, self.attempt_limit = in_flight, lease, attempt_limit
        self.poll_interval, self.stop_grace = poll_interval, stop_grace
        self.max_sleep = max_sleep
        """The longest idle sleep, in case a wake-up was lost."""
        self.rng = rng or random.Random()
        self.name = f"{socket.gethostname()}:{threading.get_native_id()}:{id(self):x}"
        self.on_outcomes: Callable[[], None] | None = None
        """Called after results were recorded: their sessions may be due (a worker in
        this process wakes on it)."""
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None  # an attempt ended, or work is due
        self._work_due: asyncio.Event | None = None

    # -- one round ----------------------------------------------------------------

    async def run_once(self) -> int:
        """Claim what is due now (up to `in_flight`), attempt it all, record the
        outcomes; returns how many deliveries were attempted. The senders' connections
        are closed afterwards, so every round may run in an event loop of its own
        (`asyncio.run(dispatcher.run_once())`)."""
        try:
            claimed = await self._exchange([], self.in_flight)
            ended = await asyncio.gather(*(self._attempt(d) for d in claimed))
            await self._exchange(list(ended), 0)
        finally:
            await self.aclose()
        return len(claimed)

    # -- running until stopped ------------------------------------------------------

    def run_forever(self) -> None:
        """Run in this thread until `stop()` is called (from any thread)."""
        asyncio.run(self.run())

    async def run(self) -> None:
        log.info("dispatcher %s started (%d in flight)", self.name, self.in_flight)
        self._loop = asyncio.get_running_loop()
        self._wake, self._work_due = asyncio.Event(), asyncio.Event()
        running: dict[asyncio.Task, Delivery] = {}
        ended: list[tuple[Delivery, Attempt]] = []
        limit = AdaptiveLimit(self.in_flight)
        going_to: Counter[str] = Counter()  # attempts in flight per destination
        renewed = time.monotonic()
        try:
            while not self._stop.is_set():
                # Each round records what ended before it claims: what a crash can
                # repeat (sent, not yet recorded) never exceeds the limit.
                free = max(0, limit.allowed - len(running))
                claimed = await self._exchange_safely(ended, free)
                for delivery in claimed:
                    task = asyncio.create_task(self._attempt(delivery))
                    running[task] = delivery
                    destination = self._destination(delivery)
                    going_to[destination] += 1
                    sent = _Sent(time.monotonic(), len(running), destination, going_to[destination])
                    task.add_done_callback(self._on_done(running, ended, limit, going_to, sent))
                if time.monotonic() - renewed > self.lease.total_seconds() / 3:
                    await self._renew(running.values())
                    renewed = time.monotonic()
                if not ended and not free:
                    await self._sleep(self.poll_interval)  # until an attempt ends
                elif not ended and len(claimed) < free:
                    await self._sleep(await self._idle_seconds())
            if running:  # give the attempts in flight a moment to end, then record them
                await asyncio.wait(list(running), timeout=self.stop_grace)
                for task in list(running):
                    task.cancel()  # attempted again once its lease has run out
            await self._exchange_safely(ended, 0)
        finally:
            self._loop = None
            await self.aclose()
        log.info("dispatcher %s stopped", self.name)

    def _on_done(self, running, ended, limit: AdaptiveLimit, going_to: Counter, sent: _Sent):
        def done(task: asyncio.Task) -> None:
            running.pop(task)
            going_to[sent.destination] -= 1
            if not going_to[sent.destination]:
                del going_to[sent.destination]
            if not task.cancelled():
                seconds = time.monotonic() - sent.at
                limit.observe(seconds, sent.in_flight, sent.destination, sent.there)
                ended.append(task.result())
                self._wake.set()

        return done

    async def _idle_seconds(self) -> float:
        """With every due delivery claimed, how long to sleep (`clock.idle_seconds`):
        one due already is in flight here, or held by another dispatcher."""
        kinds = list(self.senders)

        def next_attempt():
            with self.db.read() as conn:
                return delivery_store.next_attempt(conn, kinds=kinds)

        try:
            due = await asyncio.to_thread(next_attempt)
        except sa.exc.OperationalError:
            return self.poll_interval
        return idle_seconds(
            due, self.clock.now(), poll_interval=self.poll_interval, max_sleep=self.max_sleep
        )

    async def _sleep(self, timeout: float) -> None:
        """Until an attempt ends or new work may be due, or `timeout` seconds pass.
        Woken by an ending attempt, it lingers a moment so that the results of
        attempts ending together are recorded in one transaction, not one each; woken
        by new work, it claims it at once."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)
            if not self._work_due.is_set():
                await asyncio.wait_for(self._work_due.wait(), BATCH_WINDOW)
        self._wake.clear()
        self._work_due.clear()

    def wake(self) -> None:
        """New deliveries may be due (thread-safe)."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop ended meanwhile
                loop.call_soon_threadsafe(self._work_is_due)

    def _work_is_due(self) -> None:
        self._work_due.set()
        self._wake.set()

    def stop(self) -> None:
        """Stop claiming (thread-safe). The attempts in flight get `stop_grace`
        seconds to end and be recorded; the others are attempted again later."""
        self._stop.set()
        self.wake()

    async def aclose(self) -> None:
        for sender in self.senders.values():
            await sender.aclose()

    # -- attempts ---------------------------------------------------------------------

    def _destination(self, delivery: Delivery) -> str:
        try:
            return self.senders[delivery.kind].destination(delivery)
        except Exception:  # a stored payload the sender cannot read: its attempt fails
            return ""

    async def _attempt(self, delivery: Delivery) -> tuple[Delivery, Attempt]:
        sender = self.senders[delivery.kind]
        if not isinstance(delivery.payload, dict):
            return delivery, Attempt(Verdict.FAILED, error="its stored payload is not an object")
        try:
            async with asyncio.timeout(self.attempt_limit.total_seconds()):
                outcome = await sender.attempt(delivery, self.clock.now())
        except TimeoutError:
            outcome = Attempt(Verdict.RETRY, error="the attempt took too long")
        except Exception as error:  # a sender's bug fails the attempt, never the dispatcher
            log.exception("delivery %s: attempt failed unexpectedly", delivery.idempotency_id)
            outcome = Attempt(Verdict.RETRY, error=f"{type(error).__name__}: {error}")
        return delivery, outcome

    def _result(self, delivery: Delivery, attempt: Attempt) -> Result:
        """The retry decision: what the store records for this attempt. If it cannot be
        made (a backoff so long the next attempt would be after the year 9999, a
        payload the sender cannot read), the delivery fails with the reason."""
        try:
            return self._decide(delivery, attempt)
        except OverflowError:
            why = "the next attempt would be after the year 9999 (the backoff is too long)"
        except Exception as error:
            log.exception("delivery %s: no retry decision", delivery.idempotency_id)
            why = f"could not schedule the next attempt: {type(error).__name__}: {error}"
        return self._failed(delivery, f"{attempt.error}; {why}" if attempt.error else why)

    def _failed(self, delivery: Delivery, error: str) -> Result:
        """A final failure with only our own words in it, which the store can always
        record."""
        attempts = delivery.attempts + 1
        return Result(
            idempotency_id=delivery.idempotency_id,
            state=DeliveryState.FAILED,
            attempts=attempts,
            entry=(
                self.senders[delivery.kind].timeline.failed,
                {"attempt": attempts, "error": error},
            ),
            error=error,
        )

    def _decide(self, delivery: Delivery, attempt: Attempt) -> Result:
        kinds = self.senders[delivery.kind].timeline
        attempts = delivery.attempts + 1
        data = dict(attempt.data)
        verdict = attempt.verdict
        if verdict in (Verdict.RETRY, Verdict.FAILED):
            data["attempt"] = attempts
            if attempt.error:
                data["error"] = attempt.error
        if verdict == Verdict.RETRY and attempts >= delivery.max_attempts:
            verdict = Verdict.FAILED
        final = {
            Verdict.SENT: (DeliveryState.SENT, kinds.sent),
            Verdict.SKIPPED: (DeliveryState.SKIPPED, kinds.skipped),
            Verdict.FAILED: (DeliveryState.FAILED, kinds.failed),
        }
        if verdict in final:
            state, kind = final[verdict]
            return Result(
                idempotency_id=delivery.idempotency_id,
                state=state,
                attempts=attempts,
                entry=(kind, data),
                error=_failure(attempt, attempts) if verdict == Verdict.FAILED else None,
            )
        wait = retry.delay(self.senders[delivery.kind].first_delay(delivery), attempts, self.rng)
        next_at = self.clock.now() + wait
        data["next_attempt_at"] = next_at.isoformat()
        return Result(
            idempotency_id=delivery.idempotency_id,
            state=DeliveryState.PENDING,
            attempts=attempts,
            entry=(kinds.attempt_failed, data),
            error=attempt.error,
            next_attempt_at=next_at,
        )

    # -- the database, from a thread ------------------------------------------------

    async def _exchange(self, ended: list[tuple[Delivery, Attempt]], limit: int) -> list[Delivery]:
        """Record the results of `ended` and claim up to `limit` due deliveries, in one
        transaction (one commit per round, however many results and claims). If the
        database refuses the batch for a reason other than being unavailable, the
        results are recorded one by one instead (`_record_apart`)."""
        if not ended and not limit:
            return []
        results = [(delivery, self._result(delivery, attempt)) for delivery, attempt in ended]
        kinds = list(self.senders)

        def exchange(record: bool) -> list[Delivery]:
            now = self.clock.now()
            with self.db.write() as conn:
                if record:
                    delivery_store.record(conn, [r for _, r in results], now=now)
                if not limit:
                    return []
                return delivery_store.claim(
                    conn, kinds=kinds, now=now, limit=limit, lease=self.lease
                )

        try:
            claimed = await asyncio.to_thread(retrying, lambda: exchange(True))
        except sa.exc.OperationalError:
            raise  # the database is unavailable: `_exchange_safely` waits for it
        except Exception:
            if not results:
                raise
            log.exception("recording %d results failed; recording them one by one", len(results))
            await asyncio.to_thread(self._record_apart, results)
            claimed = await asyncio.to_thread(retrying, lambda: exchange(False))
        if results and self.on_outcomes:
            self.on_outcomes()
        return claimed

    def _record_apart(self, results: list[tuple[Delivery, Result]]) -> None:
        """Record each result in a transaction of its own, so that one the database
        refuses (a value it cannot store, a constraint) holds up no other. A refused
        result becomes a failure of its delivery, in our own words; if even that is
        refused (its session's row is damaged), the delivery alone is marked failed."""
        for delivery, result in results:
            try:
                self._record([result])
            except sa.exc.OperationalError:
                raise
            except Exception as error:
                reason = error_line(error) or type(error).__name__
                log.exception("delivery %s: its result was refused", delivery.idempotency_id)
                failed = self._failed(delivery, f"could not record the outcome: {reason}")
                try:
                    self._record([failed])
                except sa.exc.OperationalError:
                    raise
                except Exception:
                    log.exception("delivery %s: marked failed alone", delivery.idempotency_id)
                    with self.db.write() as conn:
                        delivery_store.give_up(conn, failed, now=self.clock.now())

    def _record(self, results: list[Result]) -> None:
        def record() -> None:
            with self.db.write() as conn:
                delivery_store.record(conn, results, now=self.clock.now())

        retrying(record)

    async def _exchange_safely(self, ended: list, limit: int) -> list[Delivery]:
        """`_exchange` for the running loop: `ended` is emptied, and if the database is
        down its results go back into it, to be recorded once it is back (unless a
        lease runs out first: then that delivery is attempted again)."""
        batch = ended[:]
        del ended[:]
        try:
            return await self._exchange(batch, limit)
        except Exception:
            log.exception("recording %d results or claiming failed; backing off", len(batch))
            ended[:0] = batch
            await asyncio.sleep(2.0)
            return []

    async def _renew(self, claimed: Iterable[Delivery]) -> None:
        ids = [d.id for d in claimed]
        if not ids:
            return

        def renew() -> None:
            with self.db.write() as conn:
                delivery_store.renew(conn, ids, until=self.clock.now() + self.lease)

        try:
            await asyncio.to_thread(retrying, renew)
        except Exception:
            log.warning("could not renew the lease of deliveries in flight", exc_info=True)


@dataclass(frozen=True)
class _Sent:
    """An attempt as it was sent: when, how many were in flight (itself included), where
    to, and how many of them went there."""

    at: float
    in_flight: int
    destination: str
    there: int


def _failure(attempt: Attempt, attempts: int) -> str:
    """The error a failed delivery leaves to its session (and `on_failure` sees)."""
    error = attempt.error or "failed"
    if attempt.verdict == Verdict.RETRY:
        return f"{error} (after {attempts} attempt{'s' if attempts > 1 else ''})"
    return error
