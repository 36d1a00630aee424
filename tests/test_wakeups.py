"""An idle worker starts on new work at once, not at its next poll: woken through
PostgreSQL's LISTEN/NOTIFY from another process, in-process, or on SQLite by another
process's commit (`PRAGMA data_version`); and it wakes by itself when a timer is due.
The workers here would otherwise sleep for a minute (docs/architecture.md, "Sleeping
and waking")."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import eventually, listening
from sluice.clock import SystemClock
from sluice.records import FlowStatus
from sluice.service import Sluice
from sluice.settings import Settings
from sluice.store.ingest import IncomingEvent
from sluice.store.notify import WORK_CHANNEL

FLOW = "key: quick\ntrigger: {event: go}\nsteps: [{id: mark, tag: {add: [woken]}}]\n"


@contextmanager
def idle_worker(url: str):
    app = Sluice(Settings(database_url=url, signing_key="k"), SystemClock())
    worker = app.worker(poll_interval=60, max_sleep=60)  # only a wake-up starts it in time
    thread = threading.Thread(target=worker.run_forever, daemon=True)
    thread.start()
    if not app.db.is_sqlite:  # a notification sent before it listens would be lost
        assert eventually(lambda: listening(app.db, WORK_CHANNEL))
    try:
        yield app
    finally:
        worker.stop()
        thread.join(timeout=10)
        app.close()


@pytest.fixture
def running_worker(database_url):
    with idle_worker(database_url) as app:
        yield app


def apply_flow(app: Sluice) -> None:
    from sluice.definitions.parse import load_documents

    app.apply([("quick.yaml", d) for d in load_documents(FLOW)])
    app.set_flow_status("quick", FlowStatus.ON)


def test_an_event_sent_in_this_process_wakes_the_embedded_worker(running_worker):
    app = running_worker
    apply_flow(app)
    app.send([IncomingEvent(type="go", email="a@example.com")])
    assert eventually(lambda: app.visitor("a@example.com")["tags"] == ["woken"], 5)


def test_an_event_sent_by_another_process_wakes_a_postgres_worker(postgres_url):
    from conftest import truncate

    truncate(postgres_url)
    other = Sluice(Settings(database_url=postgres_url, signing_key="k"), SystemClock())
    with idle_worker(postgres_url):
        apply_flow(other)
        other.send([IncomingEvent(type="go", email="b@example.com")])
        assert eventually(lambda: other.visitor("b@example.com")["tags"] == ["woken"], 5)
    other.close()


def test_an_event_sent_by_another_process_wakes_a_sqlite_worker(tmp_path, sqlite_template):
    path = tmp_path / "sluice.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    with idle_worker(url) as app:
        apply_flow(app)
        env = {**os.environ, "SLUICE_DATABASE_URL": url, "SLUICE_SIGNING_KEY": "k"}
        sluice = str(Path(sys.executable).parent / "sluice")
        subprocess.run(
            [sluice, "send", "go", "--email", "c@example.com"], env=env, check=True, timeout=60
        )
        # Within the watcher's half second (and the worker's batch), not its minute.
        assert eventually(lambda: app.visitor("c@example.com")["tags"] == ["woken"], 5)


TIMER = (
    "key: timer\ntrigger: {event: go}\n"
    "steps: [{id: nap, wait: 2s}, {id: mark, tag: {add: [rested]}}]\n"
)


def test_an_idle_worker_wakes_when_a_timer_is_due(running_worker):
    from sluice.definitions.parse import load_documents

    app = running_worker
    app.apply([("timer.yaml", d) for d in load_documents(TIMER)])
    app.set_flow_status("timer", FlowStatus.ON)
    app.send([IncomingEvent(type="go", email="t@example.com")])
    assert eventually(lambda: app.visitor("t@example.com")["tags"] == ["rested"], 6)
