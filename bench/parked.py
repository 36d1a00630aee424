"""Sessions parked on a long wait: what a claim with nothing due costs, and what an
idle process costs, as the number of waiting sessions grows (docs/benchmarks.md).

    python bench/parked.py load PATH N      # a SQLite file with N sessions on a 2 h wait
    python bench/parked.py claim PATH       # the time of a claim with nothing due, and its plan

The sessions are written in bulk (one visitor, one event and one session each, as
the worker leaves them: `waiting`, due in two hours), not run through the engine,
so a million take a minute rather than the better part of an hour.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime, timedelta

import sqlalchemy as sa

from sluice.clock import SystemClock
from sluice.definitions.parse import load_documents
from sluice.records import FlowStatus
from sluice.service import Sluice
from sluice.settings import Settings
from sluice.store import sessions as session_store
from sluice.store.schema import events, sessions, visitors

FLOW = """
key: parked
trigger: {event: go}
steps:
  - {id: nap, wait: {for: 2h}}
  - {id: mark, tag: {add: [woke]}}
"""
CHUNK = 20_000


def parked_rows(ids: range, now: datetime) -> tuple[list[dict], list[dict], list[dict]]:
    """The rows of sessions parked at `nap` of FLOW (key `parked`, version 1), as the
    worker leaves them, one each per id: `(visitors, events, sessions)`, the visitor,
    its event and its session sharing the id. Also used by tests/test_query_plans.py."""
    return (
        [
            {
                "id": i,
                "uuid": f"00000000-0000-4000-8000-{i:012d}",
                "email": f"p{i}@example.com",
                "email_key": f"p{i}@example.com",
                "fields": {},
                "tags": [],
                "created_at": now,
                "updated_at": now,
            }
            for i in ids
        ],
        [
            {
                "id": i,
                "visitor_id": i,
                "type": "go",
                "details": {},
                "date": now,
                "accepted_at": now,
                "source": "api",
            }
            for i in ids
        ],
        [
            {
                "id": i,
                "visitor_id": i,
                "flow_key": "parked",
                "flow_version": 1,
                "status": "waiting",
                "step": "nap",
                "step_begun": True,
                "state": {},
                "origin_event_id": i,
                "depth": 0,
                "event_cursor": i,
                "wake_at": now + timedelta(hours=2),
                "due_at": now + timedelta(hours=2),
                "revision": 1,
                "started_at": now,
                "updated_at": now,
            }
            for i in ids
        ],
    )


def load(path: str, count: int) -> None:
    app = Sluice(Settings(database_url=f"sqlite:///{path}", signing_key="k"), SystemClock())
    app.upgrade()
    app.apply([("parked.yaml", d) for d in load_documents(FLOW)])
    app.set_flow_status("parked", FlowStatus.ON)
    now = app.clock.now()
    with app.db.write() as conn:
        first = (conn.execute(sa.select(sa.func.max(visitors.c.id))).scalar() or 0) + 1
    for start in range(first, first + count, CHUNK):
        ids = range(start, min(start + CHUNK, first + count))
        with app.db.write() as conn:
            for table, rows in zip(
                (visitors, events, sessions), parked_rows(ids, now), strict=True
            ):
                conn.execute(table.insert(), rows)
    app.close()


def claim(path: str, rounds: int = 20) -> None:
    app = Sluice(Settings(database_url=f"sqlite:///{path}", signing_key="k"), SystemClock())
    statements = []
    sa.event.listen(
        app.db.engine, "before_cursor_execute", lambda *a: statements.append((a[2], a[3]))
    )
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        with app.db.write() as conn:
            claimed = session_store.claim_due(
                conn, worker="bench", now=app.clock.now(), limit=200, lease=timedelta(minutes=1)
            )
        times.append(time.perf_counter() - started)
        assert not claimed
    sql, params = next((s, p) for s, p in statements if "claim_expires_at" in s)
    with app.db.read() as conn:
        plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params).all()
    times.sort()
    print(f"claim with nothing due: median {times[len(times) // 2] * 1000:.2f} ms")
    for row in plan:
        print("  ", row[-1])
    app.close()


if __name__ == "__main__":
    command, path, *rest = sys.argv[1:]
    if command == "load":
        load(path, int(rest[0]))
    else:
        claim(path)
