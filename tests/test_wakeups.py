"""An idle worker starts on new work at once, not at its next poll: woken through
PostgreSQL's LISTEN/NOTIFY from another process, or in-process on SQLite."""

from __future__ import annotations

import threading
from contextlib import contextmanager

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
    worker = app.worker(poll_interval=60)  # only a wake-up can start it in time
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
