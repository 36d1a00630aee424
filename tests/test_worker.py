"""Workers: leases that expire and are taken over, stale results that are discarded,
and several workers sharing one database without running a step twice."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import sqlalchemy as sa

from sluice.store import sessions as session_store
from sluice.store.ingest import IncomingEvent
from sluice.store.schema import timeline

FLOW = """
key: chain
trigger: {event: go}
entry: every_time
steps:
  - {id: a, tag: {add: [a]}}
  - {id: pause, wait: 1m}
  - {id: b, field: {set: {seen: '{{ visitor.email }}'}}}
  - {id: c, tag: {add: [c]}}
"""


def claim(app, clock, worker: str):
    with app.db.write() as conn:
        return session_store.claim_due(
            conn, worker=worker, now=clock.now(), limit=100, lease=timedelta(seconds=60)
        )


def test_a_dead_workers_claim_expires_and_another_worker_takes_over(driver, app, clock):
    driver.apply(FLOW)
    [sid] = app.send([IncomingEvent(type="go", email="a@example.com")]).sessions_started
    assert [s.id for s in claim(app, clock, "dies")] == [sid]
    assert claim(app, clock, "other") == []  # leased
    assert driver.run() == 0
    clock.advance(timedelta(seconds=61))
    assert driver.run() == 1
    assert driver.session(sid)["step"] == "pause"


def test_a_result_computed_from_a_stale_session_is_discarded(driver, app, clock):
    """A person stops the session while a worker is deciding its next step: the
    worker's result must not overwrite the stop."""
    driver.apply(FLOW)
    [sid] = app.send([IncomingEvent(type="go", email="s@example.com")]).sessions_started
    worker = driver.worker
    claimed = claim(app, clock, worker.name)
    with app.db.read() as conn:
        work = session_store.load_work(conn, app.catalog, claimed, clock.now())
    transitions = [worker._advance(w) for w in work]
    app.stop_session(sid)
    with app.db.write() as conn:
        applied = session_store.apply_transitions(conn, app.catalog, transitions, clock.now())
    assert applied == []
    session = driver.session(sid)
    assert session["status"] == "stopped" and session["step"] == "a"
    assert driver.visitor("s@example.com")["tags"] == []


def test_workers_side_by_side_never_run_a_step_twice(driver, app, clock):
    driver.apply(FLOW)
    count = 300
    app.send([IncomingEvent(type="go", email=f"v{n}@example.com") for n in range(count)])
    workers = [app.worker(batch_size=25) for _ in range(4)]

    def drain(worker):
        worker.run_until_idle()

    for _ in range(2):  # before and after the wait
        threads = [threading.Thread(target=drain, args=(w,)) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        clock.advance(timedelta(minutes=2))
    sessions = app.sessions(flow="chain", limit=1000)
    assert len(sessions) == count
    assert {s["status"] for s in sessions} == {"completed"}
    with app.db.read() as conn:
        steps = Counter(
            conn.execute(
                sa.select(timeline.c.session_id, timeline.c.step).where(timeline.c.kind == "step")
            ).all()
        )
    assert len(steps) == count * 4
    assert set(steps.values()) == {1}
