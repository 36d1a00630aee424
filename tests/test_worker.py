"""Workers: leases that expire and are taken over, stale results that are discarded,
and several workers sharing one database without running a step twice."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
import sqlalchemy as sa

from conftest import Driver
from delivery_servers import WebhookServer
from sluice.store import sessions as session_store
from sluice.store.ingest import IncomingEvent
from sluice.store.schema import deliveries, flow_versions, sessions, timeline
from test_delivery_webhooks import deliver, hook_app

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


# -- one bad session among many ----------------------------------------------------------

CALLS = """
key: calls
entry: every_time
trigger: {event: go}
steps:
  - {id: pause, wait: 1m}
  - {id: call, webhook: {url: '{{ event.details.url }}'}}
"""


def _spoil(app, sid: int, how: str) -> None:
    """Damage one session the way no API or validation would let through: written
    straight to the tables."""
    with app.db.write() as conn:
        if how == "state not an object":
            conn.execute(sessions.update().where(sessions.c.id == sid).values(state=[1]))
        elif how == "flow unreadable":  # its flow's stored version no longer validates
            conn.execute(
                flow_versions.update()
                .where(flow_versions.c.flow_key == "other")
                .values(definition={"key": "other", "trigger": {"event": "go"}, "steps": "x"})
            )
        else:  # its webhook's id is taken: saving its step breaks a unique constraint
            conn.execute(
                deliveries.insert().values(
                    session_id=None,
                    visitor_id=1,
                    kind="webhook",
                    idempotency_id=f"msg_{sid}.call",
                    state="sent",
                    payload={},
                    attempts=1,
                    max_attempts=1,
                    created_at=app.clock.now(),
                    updated_at=app.clock.now(),
                )
            )


@pytest.mark.parametrize("how", ["state not an object", "flow unreadable", "delivery id taken"])
def test_one_bad_session_fails_alone_and_the_rest_of_its_batch_goes_on(database_url, clock, how):
    """Nine sessions and a damaged tenth wake in one batch: the nine call a real
    server; the tenth fails with the error in its timeline; the worker carries on."""
    app = hook_app(database_url, clock)
    driver = Driver(app, clock)
    driver.apply(CALLS)
    driver.apply(CALLS.replace("key: calls", "key: other").replace("event: go", "event: other"))
    with WebhookServer(clock) as server:
        url = {"url": server.url()}
        events = [
            IncomingEvent(type="go", email=f"g{i}@example.com", details=url) for i in range(9)
        ]
        *healthy, spoiled = app.send(
            [*events, IncomingEvent(type="other", email="bad@example.com", details=url)]
        ).sessions_started
        driver.run()
        _spoil(app, spoiled, how)
        fresh = hook_app(database_url, clock)  # a process that has not read the flows yet
        clock.advance(timedelta(minutes=2))
        worker = fresh.worker()
        assert worker.run_once() == 10
        assert worker.run_once() == 0  # nothing is left claimed or due
        deliver(fresh.dispatcher())
        assert len(server.requests) == 9
    worker.run_until_idle()
    assert {app.session(s)["status"] for s in healthy} == {"completed"}
    session = app.session(spoiled)
    assert session["status"] == "failed"
    taken = (
        "UNIQUE constraint failed: deliveries.idempotency_id"
        if database_url.startswith("sqlite")
        else 'duplicate key value violates unique constraint "uq_deliveries_idempotency_id"'
    )
    assert (
        session["timeline"][-1]["data"]["error"]
        == {
            "state not an object": "TypeError: pop expected at most 1 argument, got 2",
            "flow unreadable": "could not be loaded: DefinitionError: steps: expected a list",
            "delivery id taken": f"could not save its progress: IntegrityError: {taken}",
        }[how]
    )
    fresh.close()
    app.close()
