"""Every hot query reads only what is due or asked for, however many sessions wait
(SPEC §5: a million sessions waiting on timers cost disk and index space, not memory
or CPU).

The database holds 20,000 sessions parked on a two-hour wait (with their visitors,
events, timeline entries and finished deliveries). The test runs the real code (a
worker batch, a dispatcher round, events arriving, the idle worker's look at the next
due time), records every statement it sends, and asks the database for the plan of
each: none may scan a table that grows with the sessions, nor sort its rows (a sort
means every matching row is read before the first is returned). SQLite runs without
statistics, as an installation does; PostgreSQL after ANALYZE, as autovacuum leaves it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import re
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from sluice import health
from sluice.definitions.parse import load_documents
from sluice.records import FlowStatus
from sluice.store import deliveries as delivery_store
from sluice.store import due as due_store
from sluice.store import sessions as session_store
from sluice.store.ingest import IncomingEvent
from sluice.store.schema import deliveries, events, sessions, timeline, visitors

# The bulk writer of parked sessions is the benchmark's (bench/parked.py).
_spec = importlib.util.spec_from_file_location(
    "parked", Path(__file__).resolve().parents[1] / "bench" / "parked.py"
)
parked = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(parked)
parked_rows = parked.parked_rows

WAITING = 20_000
BATCH_ROWS = 1_000
"""More rows than one batch asks for (its sessions, visitors or events)."""
GROWING = ("sessions", "events", "timeline", "deliveries", "visitors")
WITH_SEGMENTS = (*GROWING, "segment_members", "due_checks")
"""The tables that grow with members and due checks too, where a test has them (an
empty one may be scanned: PostgreSQL plans a scan of a table ANALYZE found empty)."""
FLOW = """
key: parked
trigger: {event: go}
exit: [{event: bought}]
steps:
  - {id: nap, wait: {for: 2h}}
  - {id: answer, wait_for: {event: replied, timeout: 1d}}
  - {id: mark, tag: {add: [done]}}
"""


def park(app, count: int) -> None:
    """`count` visitors, each with an event, a session waiting two hours, a timeline
    entry and a delivery sent long ago; written in bulk, as the worker would leave them."""
    now = app.clock.now()
    ids = range(1_000_001, 1_000_001 + count)
    with app.db.write() as conn:
        for table, rows in zip((visitors, events, sessions), parked_rows(ids, now), strict=True):
            conn.execute(table.insert(), rows)
        conn.execute(
            timeline.insert(),
            [
                {"session_id": i, "visitor_id": i, "at": now, "step": "nap", "kind": "wait"}
                | {"data": {}}
                for i in ids
            ],
        )
        conn.execute(
            deliveries.insert(),
            [
                {
                    "session_id": i,
                    "visitor_id": i,
                    "flow_key": "parked",
                    "step": "nap",
                    "kind": "webhook",
                    "idempotency_id": f"msg-{i}",
                    "state": "sent",
                    "payload": {},
                    "attempts": 1,
                    "max_attempts": 5,
                    "created_at": now,
                    "updated_at": now,
                }
                for i in ids
            ],
        )
    if not app.db.is_sqlite:
        with app.db.write() as conn:
            conn.execute(sa.text("ANALYZE"))


@contextmanager
def recording(app):
    """The statements the code sends, with their parameters (the first set of an
    executemany)."""
    seen: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if executemany:
            parameters = parameters[0]
        seen.append((statement, parameters))

    sa.event.listen(app.db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(app.db.engine, "before_cursor_execute", record)


def reads_of_growing_tables(statements, growing=GROWING) -> list[tuple[str, object]]:
    """The statements that read a table growing with the sessions (inserts only write)."""
    return [
        (sql, params)
        for sql, params in statements
        if re.match(r"\s*(SELECT|UPDATE|DELETE|WITH)", sql, re.I)
        and any(re.search(rf"\b{table}\b", sql) for table in growing)
    ]


def plan(app, sql: str, params) -> list[str]:
    with app.db.read() as conn:
        if app.db.is_sqlite:
            rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params).all()
            return [row[-1] for row in rows]
        rows = conn.exec_driver_sql(f"EXPLAIN {sql}", params).all()
        return [row[0] for row in rows]


def faults(app, lines: list[str], growing=GROWING) -> list[str]:
    """The lines of a plan that read a growing table whole, or sort many rows.

    SQLite gives no estimates, so any sort is one. PostgreSQL may sort the few rows
    a query asked for by key (a batch's visitors, in id order, to lock them in the
    same order everywhere): a sort is one when the planner expects more rows than a
    batch could ask for."""
    tables = "|".join(growing)
    if app.db.is_sqlite:
        whole = re.compile(rf"^SCAN ({tables})\b")
        return [line for line in lines if whole.search(line) or "TEMP B-TREE" in line]
    whole = re.compile(rf"Seq Scan on ({tables})\b")
    many = re.compile(r"\bSort\b.*\brows=(\d+)")
    return [
        line
        for line in lines
        if whole.search(line) or ((m := many.search(line)) and int(m[1]) > BATCH_ROWS)
    ]


def assert_plans_read_only_what_they_need(app, statements, growing=GROWING) -> None:
    checked = reads_of_growing_tables(statements, growing)
    assert checked, "no statement was recorded"
    bad = {
        sql: found
        for sql, params in checked
        if (found := faults(app, plan(app, sql, params), growing))
    }
    assert not bad, "\n\n".join(f"{sql}\n  -> {found}" for sql, found in bad.items())


@pytest.fixture
def parked(driver):
    driver.app.apply([("parked.yaml", d) for d in load_documents(FLOW)])
    driver.app.set_flow_status("parked", FlowStatus.ON)
    park(driver.app, WAITING)
    return driver


def test_a_worker_batch_reads_only_the_sessions_that_are_due(parked):
    app = parked.app
    app.send([IncomingEvent(type="go", email="new@example.com")])
    with recording(app) as statements:
        assert parked.worker.run_once() == 1  # the one new session, among 20,000 waiting
    assert app.visitor("new@example.com")["email"] == "new@example.com"
    assert_plans_read_only_what_they_need(app, statements)


def test_an_idle_claim_reads_nothing_of_the_sessions_waiting(parked):
    app = parked.app
    with recording(app) as statements:
        assert parked.worker.run_once() == 0
        with app.db.read() as conn:
            next_due = session_store.next_due(conn)
    assert next_due == app.clock.now() + timedelta(hours=2)
    assert_plans_read_only_what_they_need(app, statements)


GOERS = """
kind: segment
key: goers
name: Went in the last 30 days
rules: [{event: go, within: 30d}, {subscribed: true}]
"""


def test_segments_and_due_checks_read_only_the_visitors_of_a_batch(parked):
    """Every parked visitor is a member, each with a due check for when their event
    leaves the window: an event, its segment upkeep, a worker batch and the idle look
    at the next due time read only what the batch asks for."""
    app = parked.app
    app.apply([("goers.yaml", d) for d in load_documents(GOERS)])
    assert app.segment("goers")["members"] == WAITING
    if not app.db.is_sqlite:
        with app.db.write() as conn:
            conn.execute(sa.text("ANALYZE"))  # as autovacuum would after so many rows
    with recording(app) as statements:
        app.send([IncomingEvent(type="go", email="new@example.com")])
        app.send([IncomingEvent(type="$unsubscribe", email="p1000001@example.com")])
        assert parked.worker.run_once() == 1  # the new visitor's session
        with app.db.read() as conn:
            next_check = due_store.next_due(conn)
    assert next_check > app.clock.now()
    assert app.segment("goers")["members"] == WAITING  # one in, one out
    assert_plans_read_only_what_they_need(app, statements, WITH_SEGMENTS)


def test_events_wake_only_the_sessions_of_their_visitor(parked):
    app = parked.app
    with recording(app) as statements:
        app.send([IncomingEvent(type="bought", email="p1000001@example.com")])
    with app.db.read() as conn:
        due_now = conn.execute(
            sa.select(sa.func.count()).where(sessions.c.due_at <= app.clock.now())
        ).scalar()
    assert due_now == 1
    assert_plans_read_only_what_they_need(app, statements)


def test_a_dispatcher_round_reads_only_the_deliveries_that_are_due(parked):
    app = parked.app
    dispatcher = app.dispatcher()
    with recording(app) as statements:
        assert asyncio.run(dispatcher.run_once()) == 0  # 20,000 sent long ago: none due
        with app.db.read() as conn:
            assert delivery_store.next_attempt(conn, kinds=["webhook"]) is None
    assert_plans_read_only_what_they_need(app, statements)


def test_stopping_and_resuming_a_session_reads_only_its_deliveries(parked):
    """Its pending delivery is held and released through the index by session."""
    app = parked.app
    with recording(app) as statements:
        app.stop_session(1_000_001)
        app.resume_session(1_000_001)
    assert_plans_read_only_what_they_need(app, statements)


def test_a_goal_met_during_a_delivery_cancels_it_through_the_index(parked):
    app = parked.app
    with app.db.write() as conn:  # the first parked session waits for its webhook
        conn.execute(
            deliveries.update()
            .where(deliveries.c.session_id == 1_000_001)
            .values(state="pending", next_attempt_at=app.clock.now() + timedelta(hours=1))
        )
        conn.execute(
            sessions.update()
            .where(sessions.c.id == 1_000_001)
            # 0: PostgreSQL's sequence of event ids starts below the parked ones
            .values(state={"delivery": {"id": "msg-1000001"}}, event_cursor=0)
        )
    app.send([IncomingEvent(type="bought", email="p1000001@example.com")])
    with recording(app) as statements:
        assert parked.worker.run_once() == 1
    with app.db.read() as conn:
        state = conn.execute(
            sa.select(deliveries.c.state).where(deliveries.c.session_id == 1_000_001)
        ).scalar()
    assert state == "skipped"
    assert_plans_read_only_what_they_need(app, statements)


def test_a_live_stream_reads_only_what_is_new(parked):
    app = parked.app
    latest = app.latest_activity()
    with recording(app) as statements:
        assert app.activity_since(*latest) == ([], [])
        assert [e["kind"] for _, e in app.timeline_since(1_000_001, 0)] == ["wait"]
    assert_plans_read_only_what_they_need(app, statements)


def test_what_is_failing_is_read_from_the_rows_in_trouble_only(parked):
    """The canvas polls it every 2 seconds, the flows list every 5, for every flow."""
    app = parked.app
    with app.db.write() as conn:  # one delivery being retried, one failed, one session failed
        conn.execute(
            deliveries.update()
            .where(deliveries.c.id.in_([1, 2]))
            .values(
                state=sa.case((deliveries.c.id == 1, "pending"), else_="failed"),
                next_attempt_at=sa.case((deliveries.c.id == 1, app.clock.now()), else_=None),
            )
        )
        conn.execute(
            sessions.update()
            .where(sessions.c.id == 1_000_001)
            .values(status="failed", finished_at=app.clock.now())
        )
    with recording(app) as statements, app.db.read() as conn:
        found = health.by_step(conn, ["parked", "other"], app.clock.now())
    assert {step: h.view() for step, h in found["parked"].items()} == {
        "nap": {"retrying": 1, "failed": 1, "sessions_failed": 1, "failing": True}
    }
    assert_plans_read_only_what_they_need(app, statements)
