"""Fixtures: every test that takes `sluice` runs once on SQLite and once on PostgreSQL.

PostgreSQL is at SLUICE_TEST_POSTGRES_URL (default: the local server); the run gets a
database of its own, created here and dropped at the end. On CI
(SLUICE_TEST_REQUIRE_POSTGRES=1) a missing server is a failure, not a skip.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from sluice.clock import FakeClock
from sluice.definitions.parse import load_documents
from sluice.records import FlowStatus
from sluice.service import Sluice
from sluice.settings import Settings
from sluice.store.db import Database
from sluice.store.ingest import IncomingEvent
from sluice.store.schema import metadata

EXAMPLES = Path(__file__).resolve().parents[1] / "src" / "sluice" / "ui" / "examples"
RESTART_POSTGRES = bool(os.environ.get("SLUICE_TEST_RESTART_POSTGRES"))
"""Fault tests restart the whole server (CI); otherwise they cut this run's database
off for a while, which leaves other users of a shared server alone."""
POSTGRES_URL = os.environ.get(
    "SLUICE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(scope="session")
def postgres_url():
    """A database of this run's own on the test PostgreSQL server, migrated once."""
    try:
        admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        if os.environ.get("SLUICE_TEST_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL is required and unreachable at {POSTGRES_URL}: {error}")
        pytest.skip(f"PostgreSQL unreachable at {POSTGRES_URL}")
    name = f"sluice_test_{uuid.uuid4().hex[:10]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = POSTGRES_URL.rsplit("/", 1)[0] + "/" + name
    db = Database(url)
    db.upgrade()
    db.dispose()
    yield url
    # A fresh connection: a test may have restarted the server meanwhile.
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """A migrated SQLite file; each test starts from a copy of it."""
    path = tmp_path_factory.mktemp("template") / "sluice.db"
    db = Database(f"sqlite:///{path}")
    db.upgrade()
    with db.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    db.dispose()
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request) -> str:
    return fresh_database(request)


def fresh_database(request) -> str:
    """An empty migrated database of the kind `request.param` names: a copy of the
    SQLite template in the test's directory, or the PostgreSQL database truncated."""
    if request.param == "sqlite":
        path = request.getfixturevalue("tmp_path") / "sluice.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("postgres_url")
    truncate(url)
    return url


def eventually(condition, seconds: float = 10.0, every: float = 0.05) -> bool:
    """Whether `condition()` becomes true within `seconds` (for what other threads or
    processes do)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(every)
    return True


def listening(db: Database, channel: str) -> bool:
    """A connection to this PostgreSQL database has run `LISTEN channel` (so a
    notification sent now reaches it)."""
    with db.read() as conn:
        return bool(
            conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND query = :listen"
                ),
                {"listen": f"LISTEN {channel}"},
            ).scalar_one()
        )


def truncate(url: str) -> None:
    db = Database(url)
    names = ", ".join(t.name for t in metadata.sorted_tables)
    with db.write() as conn:
        conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY"))
    db.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def app(database_url, clock):
    app = Sluice(Settings(database_url=database_url, signing_key="test-signing-key"), clock)
    yield app
    app.close()


class Driver:
    """Drives a Sluice the way a user would, with the clock under the test's control."""

    def __init__(self, app: Sluice, clock: FakeClock):
        self.app, self.clock = app, clock
        self.worker = app.worker()

    def apply(self, text: str, *, on: bool = True, name: str = "flow.yaml"):
        report = self.app.apply([(name, doc) for doc in load_documents(text, name)])
        if on:
            for key in report.flows:
                self.app.set_flow_status(key, FlowStatus.ON)
        return report

    def apply_example(self, *names: str, on: bool = True):
        documents = []
        for name in names:
            path = EXAMPLES / name
            documents += [(name, d) for d in load_documents(path.read_text(), name)]
        report = self.app.apply(documents)
        if on:
            for key in report.flows:
                self.app.set_flow_status(key, FlowStatus.ON)
        return report

    def send(self, event_type: str, email: str, **options):
        result = self.app.send([IncomingEvent(type=event_type, email=email, **options)])
        self.run()
        return result

    def run(self) -> int:
        return self.worker.run_until_idle()

    def advance(self, delta: timedelta) -> None:
        """Move the clock forward in steps, running the worker as a real one would."""
        end = self.clock.now() + delta
        step = min(delta, timedelta(hours=1))
        while self.clock.now() < end:
            self.clock.set(min(self.clock.now() + step, end))
            self.run()

    def session(self, session_id: int) -> dict:
        return self.app.session(session_id)

    def kinds(self, session_id: int) -> list[str]:
        return [entry["kind"] for entry in self.session(session_id)["timeline"]]

    def visitor(self, email: str) -> dict:
        return self.app.visitor(email)


@pytest.fixture
def driver(app, clock) -> Driver:
    return Driver(app, clock)


def pytest_collection_modifyitems(items):
    """The slow tests (browsers, processes) first: `make test` spreads the tests over
    workers (pytest -n), and one left for the end would keep its worker busy alone."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
