"""The dispatcher: many deliveries in flight at once, claims with leases, the running
loop, and real `sluice serve` / `sluice worker` processes killed mid-send."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from conftest import Driver, eventually
from delivery_servers import SmtpServer, WebhookServer, free_port
from sluice.clock import SystemClock
from sluice.definitions.parse import load_documents
from sluice.records import DeliveryState, FlowStatus
from sluice.service import Sluice
from sluice.settings import Settings
from sluice.store import deliveries as delivery_store
from sluice.store.ingest import IncomingEvent
from sluice.store.schema import deliveries, sessions
from test_delivery_webhooks import HOOK, SECRET, deliver, hook_app

SLUICE = str(Path(sys.executable).parent / "sluice")


@pytest.fixture
def hooks(database_url, clock):
    app = hook_app(database_url, clock)
    yield app
    app.close()


@pytest.fixture
def driver(hooks, clock) -> Driver:
    return Driver(hooks, clock)


def start_many(driver: Driver, url: str, count: int) -> list[int]:
    driver.apply(HOOK.replace("key: hook", "key: many\nentry: every_time"))
    started = driver.app.send(
        [
            IncomingEvent(type="go", email=f"v{i}@example.com", details={"url": url})
            for i in range(count)
        ]
    ).sessions_started
    driver.run()
    return started


def test_deliveries_are_attempted_side_by_side(driver, hooks, clock):
    """Each request waits at a barrier that opens only when all 20 are in flight at
    once; a dispatcher that sent them one after another would time out on it."""
    barrier = threading.Barrier(20, timeout=10)
    with WebhookServer(clock) as server:
        plain = server.answer

        def answer_together(handler, answer):
            barrier.wait()
            plain(handler, answer)

        server.answer = answer_together
        started = start_many(driver, server.url(), 20)
        assert deliver(hooks.dispatcher(in_flight=50)) == 20
    driver.run()
    assert {driver.session(s)["status"] for s in started} == {"completed"}


def test_in_flight_bounds_a_round_and_claims_keep_deliveries_apart(driver, hooks, clock):
    with WebhookServer(clock) as server:
        start_many(driver, server.url(), 12)
        with hooks.db.write() as conn:  # another dispatcher holds three of them
            held = delivery_store.claim(
                conn, kinds=["webhook"], now=clock.now(), limit=3, lease=timedelta(minutes=1)
            )
        dispatcher = hooks.dispatcher(in_flight=5)
        assert [deliver(dispatcher) for _ in range(3)] == [5, 4, 0]
        assert {r.headers["webhook-id"] for r in server.requests}.isdisjoint(
            {d.idempotency_id for d in held}
        )
        clock.advance(timedelta(minutes=2))  # the other dispatcher died: its lease ran out
        assert deliver(dispatcher) == 3
        assert len({r.headers["webhook-id"] for r in server.requests}) == 12


def test_no_attempt_outlives_the_attempt_limit(driver, hooks, clock):
    """Whatever a server does (here it never answers, and the step allows a minute),
    the dispatcher ends the attempt and records it."""
    flow = HOOK.replace("key: hook", "key: slow").replace(
        "      retries:", "      timeout: 60s\n      retries:"
    )
    with WebhookServer(clock) as server:
        server.answers = ["hang"]
        driver.apply(flow)
        [sid] = driver.send("go", "s@example.com", details={"url": server.url()}).sessions_started
        deliver(hooks.dispatcher(attempt_limit=timedelta(milliseconds=300)))
    [attempt] = [
        e["data"] for e in driver.session(sid)["timeline"] if e["kind"] == "webhook_attempt_failed"
    ]
    assert attempt["error"] == "the attempt took too long"


def test_a_late_or_repeated_result_changes_nothing(driver, hooks, clock):
    with WebhookServer(clock) as server:
        [sid] = start_many(driver, server.url(), 1)
        with hooks.db.read() as conn:
            [row] = delivery_store.pending(conn, now=clock.now(), limit=5)
        deliver(hooks.dispatcher())
    late = delivery_store.Result(
        idempotency_id=row.idempotency_id,
        state=DeliveryState.FAILED,
        attempts=1,
        entry=("webhook_failed", {}),
        error="late",
    )
    with hooks.db.write() as conn:
        assert delivery_store.record(conn, [late], now=clock.now()) == []
    driver.run()
    session = driver.session(sid)
    assert session["status"] == "completed"
    assert "webhook_failed" not in [e["kind"] for e in session["timeline"]]


def test_the_running_dispatcher_delivers_until_stopped(driver, hooks, clock):
    with WebhookServer(clock) as server:
        started = start_many(driver, server.url(), 30)

        async def run_until_delivered():
            dispatcher = hooks.dispatcher(in_flight=8, poll_interval=0.05)
            running = asyncio.create_task(dispatcher.run())
            while len(server.requests) < 30:
                await asyncio.sleep(0.02)
            dispatcher.stop()
            await asyncio.wait_for(running, 10)

        asyncio.run(run_until_delivered())
    driver.run()
    assert {driver.session(s)["status"] for s in started} == {"completed"}


def test_emails_wait_for_a_process_that_can_send_them(database_url, clock):
    """Pending emails are left alone by a dispatcher without SMTP (the webhooks one of
    a process started without SLUICE_SMTP_URL)."""
    with SmtpServer(clock) as smtp:
        settings = Settings(database_url=database_url, signing_key="k", smtp_url=smtp.url)
        app = Sluice(settings, clock)
        driver = Driver(app, clock)
        driver.apply("key: m\ntrigger: {event: go}\nsteps: [{email: {subject: Hi, text: Hi}}]\n")
        driver.send("go", "m@example.com")
        without_smtp = hook_app(database_url, clock)
        assert deliver(without_smtp.dispatcher()) == 0
        assert deliver(app.dispatcher()) == 1
        assert len(smtp.received) == 1
        without_smtp.close()
        app.close()


def test_a_template_that_fails_to_render_fails_the_step_and_sends_nothing(database_url, clock):
    with SmtpServer(clock) as smtp:
        settings = Settings(database_url=database_url, signing_key="k", smtp_url=smtp.url)
        app = Sluice(settings, clock)
        driver = Driver(app, clock)
        flow = (
            "key: broken\ntrigger: {event: go}\n"
            "steps: [{id: mail, email: {subject: '{{ 10 | divided_by: 0 }}', text: Hi}}]\n"
        )
        driver.apply(flow)
        [sid] = driver.send("go", "t@example.com").sessions_started
        assert deliver(app.dispatcher()) == 0  # nothing to send
        session = driver.session(sid)
        assert session["status"] == "failed"
        assert "can't divide by 0" in session["timeline"][-1]["data"]["error"]
        assert smtp.received == []
        app.close()


# -- one bad delivery among many -------------------------------------------------------

ON_FAILURE = """
key: hooks
entry: every_time
trigger: {event: go}
steps:
  - id: call
    webhook:
      url: '{{ event.details.url }}'
      retries: {attempts: 3, backoff: 30s}
      on_failure: [{id: mark, tag: {add: [hook-failed]}}]
"""


def _spoil(hooks, session_id: int, how: str) -> None:
    """Damage one stored delivery (or its session) the way no validation would let
    through: written straight to the tables."""
    with hooks.db.write() as conn:
        mine = deliveries.c.session_id == session_id
        if how == "backoff overflows":  # 900000000 days: the next attempt is past year 9999
            [payload] = conn.execute(sa.select(deliveries.c.payload).where(mine)).scalars()
            payload = {**payload, "backoff": 900_000_000 * 86_400}
            conn.execute(deliveries.update().where(mine).values(payload=payload))
        elif how == "payload not an object":
            conn.execute(deliveries.update().where(mine).values(payload="oops"))
        else:  # its session's state is not an object: the outcome cannot be handed to it
            conn.execute(sessions.update().where(sessions.c.id == session_id).values(state=[1]))


@pytest.mark.parametrize("how", ["backoff overflows", "payload not an object", "session damaged"])
def test_one_bad_delivery_fails_alone_and_the_others_are_sent(driver, hooks, clock, how):
    """Nine webhooks go to a real server; the tenth (to a port where nobody listens, so
    its retry must be computed) is damaged. The nine are sent and recorded in the same
    round; the tenth fails, in its session's timeline, and its `on_failure` runs."""
    driver.apply(ON_FAILURE)
    with WebhookServer(clock) as server:
        good = [
            IncomingEvent(type="go", email=f"g{i}@example.com", details={"url": server.url()})
            for i in range(9)
        ]
        refused = f"http://127.0.0.1:{free_port()}/hook"
        bad = IncomingEvent(type="go", email="bad@example.com", details={"url": refused})
        *started, spoiled = driver.app.send([*good, bad]).sessions_started
        driver.run()
        _spoil(hooks, spoiled, how)
        dispatcher = hooks.dispatcher()
        assert deliver(dispatcher) == 10
        assert len(server.requests) == 9
        retried = []
        for _ in range(3):
            clock.advance(timedelta(days=1))
            retried.append(deliver(dispatcher))
        assert len(server.requests) == 9
    driver.run()
    assert {driver.session(s)["status"] for s in started} == {"completed"}
    with hooks.db.read() as conn:
        state, error = conn.execute(
            sa.select(deliveries.c.state, deliveries.c.last_error).where(
                deliveries.c.session_id == spoiled
            )
        ).one()
    assert state == DeliveryState.FAILED
    if how == "session damaged":  # retried like any other, then failed on its own
        assert retried == [1, 1, 0]
        assert error == "could not record the outcome: 'list' object has no attribute 'get'"
        return
    assert retried == [0, 0, 0]  # failed at once
    expected = {
        "backoff overflows": f"cannot connect to 127.0.0.1:{refused.split(':')[2][:-5]}: "
        "Connection refused; the next attempt would be after the year 9999 "
        "(the backoff is too long)",
        "payload not an object": "its stored payload is not an object",
    }[how]
    assert error == expected
    session = driver.session(spoiled)
    [failed] = [e["data"] for e in session["timeline"] if e["kind"] == "webhook_failed"]
    assert failed == {"attempt": 1, "error": expected}
    assert session["status"] == "completed"  # through on_failure
    assert driver.visitor("bad@example.com")["tags"] == ["hook-failed"]


def test_the_running_dispatcher_goes_on_past_a_bad_delivery(driver, hooks, clock):
    """The running loop, where a bad delivery once made it back off for ever: its
    retry cannot be computed, and all the others are still sent."""
    driver.apply(ON_FAILURE)
    with WebhookServer(clock) as server:
        refused = f"http://127.0.0.1:{free_port()}/hook"
        [spoiled] = driver.send("go", "bad@example.com", details={"url": refused}).sessions_started
        _spoil(hooks, spoiled, "backoff overflows")
        good = [
            IncomingEvent(type="go", email=f"g{i}@example.com", details={"url": server.url()})
            for i in range(20)
        ]
        started = driver.app.send(good).sessions_started
        driver.run()

        async def run_until_delivered():
            dispatcher = hooks.dispatcher(poll_interval=0.05)
            running = asyncio.create_task(dispatcher.run())
            for _ in range(500):
                if len(server.requests) == 20:
                    break
                await asyncio.sleep(0.02)
            dispatcher.stop()
            await asyncio.wait_for(running, 10)

        asyncio.run(run_until_delivered())
        assert len(server.requests) == 20
    driver.run()
    assert {driver.session(s)["status"] for s in started} == {"completed"}
    assert "webhook_failed" in driver.kinds(spoiled)
    assert driver.visitor("bad@example.com")["tags"] == ["hook-failed"]


# -- real processes -------------------------------------------------------------------


@pytest.mark.slow
def test_a_process_killed_mid_send_loses_nothing(database_url, tmp_path):
    """`sluice serve` is killed (SIGKILL) while its dispatcher waits for a webhook's
    answer; a `sluice worker` started afterwards sends it again, with the same
    webhook-id, once the lease has run out."""
    env = {
        **os.environ,
        "SLUICE_DATABASE_URL": database_url,
        "SLUICE_WEBHOOK_ALLOW_PRIVATE": "1",
        "SLUICE_WEBHOOK_SECRET": SECRET,
        "SLUICE_SIGNING_KEY": "k",
        "SLUICE_LEASE_SECONDS": "1",
    }
    app = Sluice(Settings(database_url=database_url, signing_key="k"), SystemClock())
    app.upgrade()
    app.apply([("hook.yaml", d) for d in load_documents(HOOK)])
    app.set_flow_status("hook", FlowStatus.ON)
    with WebhookServer() as server:
        server.answers = ["hang", 200]
        serve = subprocess.Popen(
            [SLUICE, "serve", "--port", str(free_port())],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            [sid] = app.send(
                [IncomingEvent(type="go", email="k@example.com", details={"url": server.url()})]
            ).sessions_started
            assert eventually(lambda: len(server.requests) == 1, 20), "serve never sent the webhook"
        finally:
            serve.send_signal(signal.SIGKILL)
            serve.wait()
        worker = subprocess.Popen(
            [SLUICE, "worker"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            assert eventually(lambda: app.session(sid)["status"] == "completed", 20), (
                "never delivered"
            )
        finally:
            worker.send_signal(signal.SIGTERM)
            _, errors = worker.communicate(timeout=30)
        assert worker.returncode == 0, errors.decode()
    assert [r.headers["webhook-id"] for r in server.requests] == [f"msg_{sid}.call"] * 2
    kinds = [e["kind"] for e in app.session(sid)["timeline"]]
    assert kinds.count("webhook_delivered") == 1
    app.close()
