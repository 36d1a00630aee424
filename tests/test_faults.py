"""Crash safety on PostgreSQL, with real `sluice worker` processes: workers killed with
SIGKILL mid-run lose nothing and repeat nothing, even while webhook endpoints and the
SMTP server fail and hang; a restarted database only delays."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from conftest import POSTGRES_URL, RESTART_POSTGRES, truncate
from delivery_servers import SmtpServer, WebhookServer
from sluice.clock import SystemClock
from sluice.definitions.parse import load_documents
from sluice.records import FlowStatus
from sluice.service import Sluice
from sluice.settings import Settings
from sluice.store.ingest import IncomingEvent
from sluice.store.schema import deliveries, sessions, timeline, visitors

# One restarts PostgreSQL, which every other test would feel; all of them time how long
# recovery takes, which a busy machine would distort: they run alone (Makefile).
pytestmark = pytest.mark.serial

SLUICE = str(Path(sys.executable).parent / "sluice")
FLOW = """
key: crash
trigger: {event: go}
entry: every_time
steps:
  - {id: a, tag: {add: [a]}}
  - {id: b, field: {set: {n: '{{ event.details.n }}'}}}
  - {id: pause, wait: 1s}
  - {id: c, tag: {add: [c]}}
  - {id: d, field: {set: {done: true}}}
"""
STEPS = 5


def start_worker(url: str, **settings: str) -> subprocess.Popen:
    env = {**os.environ, **settings, "SLUICE_DATABASE_URL": url, "SLUICE_LEASE_SECONDS": "3"}
    return subprocess.Popen(
        [SLUICE, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def counts(app: Sluice) -> Counter:
    with app.db.read() as conn:
        return Counter(
            dict(
                conn.execute(
                    sa.select(sessions.c.status, sa.func.count()).group_by(sessions.c.status)
                ).all()
            )
        )


def wait_until_done(app: Sluice, total: int, seconds: float) -> Counter:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = counts(app)
        if found["completed"] == total:
            return found
        time.sleep(0.5)
    return counts(app)


def assert_every_step_once(app: Sluice, total: int) -> None:
    with app.db.read() as conn:
        steps = Counter(
            conn.execute(
                sa.select(timeline.c.session_id, timeline.c.step).where(timeline.c.kind == "step")
            ).all()
        )
        tags = Counter(tuple(t) for t in conn.execute(sa.select(visitors.c.tags)).scalars())
    assert len(steps) == total * STEPS
    assert max(steps.values()) == 1, [k for k, v in steps.items() if v > 1][:5]
    assert tags == {("a", "c"): total}


def test_workers_killed_at_random_points_lose_and_repeat_nothing(postgres_url):
    truncate(postgres_url)
    app = Sluice(Settings(database_url=postgres_url, signing_key="k"), SystemClock())
    app.apply([("crash.yaml", d) for d in load_documents(FLOW)])
    app.set_flow_status("crash", FlowStatus.ON)
    total = 3000
    workers = [start_worker(postgres_url) for _ in range(3)]
    rng = random.Random(7)
    try:
        for offset in range(0, total, 500):
            app.send(
                [
                    IncomingEvent(type="go", email=f"v{n}@example.com", details={"n": n})
                    for n in range(offset, offset + 500)
                ]
            )
        for _ in range(4):  # kill a worker at a random moment, start a fresh one
            time.sleep(rng.uniform(0.2, 1.5))
            victim = workers.pop(rng.randrange(len(workers)))
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            workers.append(start_worker(postgres_url))
        found = wait_until_done(app, total, 120)
        assert found == {"completed": total}
        assert_every_step_once(app, total)
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            assert worker.wait(timeout=30) == 0  # graceful: finish the batch, then exit
        app.close()


def outage(url: str) -> None:
    """Restart PostgreSQL, or cut every connection to this database for two seconds."""
    if RESTART_POSTGRES:
        version = next(Path("/etc/postgresql").iterdir()).name
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
            check=True,
            capture_output=True,
        )
        return
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name]
        )
        time.sleep(2)
        admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')


def test_a_postgres_restart_mid_run_only_delays_the_work(postgres_url):
    truncate(postgres_url)
    app = Sluice(Settings(database_url=postgres_url, signing_key="k"), SystemClock())
    app.apply([("crash.yaml", d) for d in load_documents(FLOW)])
    app.set_flow_status("crash", FlowStatus.ON)
    total = 1000
    workers = [start_worker(postgres_url) for _ in range(2)]
    try:
        app.send(
            [
                IncomingEvent(type="go", email=f"r{n}@example.com", details={"n": n})
                for n in range(total)
            ]
        )
        deadline = time.monotonic() + 60
        while counts(app)["active"] == total and time.monotonic() < deadline:
            time.sleep(0.1)  # until the workers are up and working
        outage(postgres_url)
        app.db.engine.dispose()  # the test's own pool held connections to the old server
        found = wait_until_done(app, total, 120)
        assert found == {"completed": total}
        assert_every_step_once(app, total)
        assert all(w.poll() is None for w in workers)  # they survived the outage
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)
        app.close()


DELIVERY_FLOW = """
key: order
trigger: {event: ordered}
entry: every_time
steps:
  - id: hook
    webhook:
      url: '{{ event.details.url }}'
      timeout: 1s
      retries: {attempts: 12, backoff: 1s}
  - id: receipt
    email:
      subject: 'Order {{ event.details.n }}'
      html: '<p>Thank you for order {{ event.details.n }}.</p>'
  - {id: done, tag: {add: [done]}}
"""


def test_deliveries_survive_killed_workers_and_failing_endpoints(postgres_url):
    """Thousands of sessions each call a webhook and send an email, while workers are
    SIGKILLed at random, the webhook endpoint answers 500 or hangs now and then, and
    the SMTP server stalls: every session finishes, every webhook and email arrives,
    repeats carry their first idempotency id, and no data effect is applied twice."""
    truncate(postgres_url)
    total = 1500
    rng = random.Random(11)
    with WebhookServer() as endpoint, SmtpServer() as smtp:
        endpoint.answers = rng.choices([200, 500, "hang"], weights=[83, 15, 2], k=total * 2)
        smtp.answers = rng.choices(["250 OK", "sleep 2"], weights=[95, 5], k=total * 2)
        env = {
            "SLUICE_SMTP_URL": smtp.url,
            "SLUICE_WEBHOOK_ALLOW_PRIVATE": "true",
            "SLUICE_WEBHOOK_SECRET": "whsec_" + "ZmF1bHRzLXRlc3Qtc2VjcmV0",
            "SLUICE_SIGNING_KEY": "k",
        }
        app = Sluice(Settings(database_url=postgres_url, signing_key="k"), SystemClock())
        app.apply([("order.yaml", d) for d in load_documents(DELIVERY_FLOW)])
        app.set_flow_status("order", FlowStatus.ON)
        workers = [start_worker(postgres_url, **env) for _ in range(3)]
        try:
            app.send(
                [
                    IncomingEvent(
                        type="ordered",
                        email=f"o{n}@example.com",
                        details={"n": n, "url": endpoint.url()},
                    )
                    for n in range(total)
                ]
            )
            for _ in range(4):
                time.sleep(rng.uniform(0.3, 2.0))
                victim = workers.pop(rng.randrange(len(workers)))
                victim.send_signal(signal.SIGKILL)
                victim.wait()
                workers.append(start_worker(postgres_url, **env))
            assert wait_until_done(app, total, 240) == {"completed": total}
        finally:
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            for worker in workers:
                worker.wait(timeout=30)
        with app.db.read() as conn:
            ids = dict(
                conn.execute(sa.select(deliveries.c.idempotency_id, deliveries.c.kind)).all()
            )
            steps = Counter(
                conn.execute(
                    sa.select(timeline.c.session_id, timeline.c.step).where(
                        timeline.c.kind == "step"
                    )
                ).all()
            )
            tags = Counter(tuple(t) for t in conn.execute(sa.select(visitors.c.tags)).scalars())
        app.close()
    webhook_ids = {i for i, kind in ids.items() if kind == "webhook"}
    email_ids = {i for i, kind in ids.items() if kind == "email"}
    assert len(webhook_ids) == len(email_ids) == total
    assert len(endpoint.requests) > total * 1.1  # the failed and hung attempts, retried
    assert {r.headers["webhook-id"] for r in endpoint.requests} == webhook_ids
    assert {m.message["Message-ID"] for m in smtp.received} == email_ids
    assert len(steps) == total * 3 and set(steps.values()) == {1}
    assert tags == {("done",): total}
