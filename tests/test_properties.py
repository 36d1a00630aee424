"""Property: random flows and random event sequences reach the same final state
whatever the interleaving of workers, batch sizes and crashed workers.

Each event is followed by running all due work, as any deployment eventually does;
what varies is how that work is shared: several workers with random batch sizes, and
workers that claim a batch, decide, and die before applying (their claims expire and
their results, applied late, must be refused)."""

from __future__ import annotations

import random
import shutil
from datetime import timedelta

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sluice.clock import FakeClock
from sluice.records import FlowStatus
from sluice.service import Sluice
from sluice.settings import Settings
from sluice.store import sessions as session_store
from sluice.store.ingest import IncomingEvent
from sluice.store.schema import sessions, timeline, visitors

TAGS = ["t1", "t2", "t3"]
EVENTS = ["x", "y", "g"]


def tag_step():
    return st.builds(
        lambda add, tag: {"tag": {"add" if add else "remove": [tag]}},
        st.booleans(),
        st.sampled_from(TAGS),
    )


def simple_step():
    return st.one_of(
        tag_step(),
        st.builds(lambda n: {"field": {"set": {"n": n}}}, st.integers(0, 3)),
        st.builds(lambda m: {"wait": f"{m}m"}, st.integers(1, 3)),
    )


def branching_step(children):
    return st.one_of(
        st.builds(
            lambda event, minutes, then, late: {
                "wait_for": {"event": event, "timeout": f"{minutes}m"},
                "then": then,
                "on_timeout": late,
            },
            st.sampled_from(["x", "y"]),
            st.integers(1, 3),
            children,
            children,
        ),
        st.builds(
            lambda tag, then, other: {
                "if": f'visitor.tags contains "{tag}"',
                "then": then,
                "else": other,
            },
            st.sampled_from(TAGS),
            children,
            children,
        ),
        st.just({"exit": True}),
    )


steps = st.recursive(
    st.lists(simple_step(), min_size=1, max_size=3),
    lambda children: st.lists(
        st.one_of(simple_step(), branching_step(children)), min_size=1, max_size=4
    ),
    max_leaves=8,
)

flows = st.builds(
    lambda body, goal: {
        "key": "prop",
        "trigger": {"event": "go"},
        "entry": "every_time",
        "exit": [{"event": "g"}] if goal else [],
        "steps": body,
    },
    steps,
    st.booleans(),
)

scripts = st.lists(
    st.tuples(
        st.integers(0, 6), st.sampled_from(["go", "go", *EVENTS]), st.sampled_from(["a", "b"])
    ),
    min_size=1,
    max_size=10,
).map(lambda events: sorted(events, key=lambda e: e[0]))


def run(path, flow: dict, script, interleave: random.Random | None) -> dict:
    clock = FakeClock()
    app = Sluice(Settings(database_url=f"sqlite:///{path}", signing_key="k"), clock)
    try:
        app.apply([("prop.yaml", flow)])
        app.set_flow_status("prop", FlowStatus.ON)
        workers = [app.worker(batch_size=n) for n in (1, 2, 3)]
        minute = 0
        for at, event_type, who in script:
            while minute < at:
                minute += 1
                clock.advance(timedelta(minutes=1))
                drain(app, workers, interleave)
            app.send([IncomingEvent(type=event_type, email=f"{who}@example.com")])
            drain(app, workers, interleave)
        for _ in range(10):
            clock.advance(timedelta(minutes=1))
            drain(app, workers, interleave)
        return final_state(app)
    finally:
        app.close()


def drain(app: Sluice, workers, interleave: random.Random | None) -> None:
    if interleave is None:
        workers[-1].run_until_idle()
        return
    stale = []
    for _ in range(50):
        choice = interleave.random()
        if choice < 0.3:
            stale.append(crashed_batch(app, workers[0], interleave))
        elif choice < 0.45 and stale:
            with app.db.write() as conn:  # a late result from a worker that was slow
                session_store.apply_transitions(conn, app.catalog, stale.pop(), app.clock.now())
        elif interleave.choice(workers).run_once() == 0 and not workers[-1].run_once():
            break
    workers[-1].run_until_idle()


def crashed_batch(app: Sluice, worker, interleave: random.Random):
    """Claim with an already-expired lease, decide, and keep the result unapplied."""
    now = app.clock.now()
    with app.db.write() as conn:
        claimed = session_store.claim_due(
            conn,
            worker="doomed",
            now=now,
            limit=interleave.randint(1, 3),
            lease=timedelta(microseconds=-1),
        )
    with app.db.read() as conn:
        work = session_store.load_work(conn, app.catalog, claimed, now)
    return [worker._advance(w) for w in work]


def final_state(app: Sluice) -> dict:
    with app.db.read() as conn:
        people = {
            r.email: (sorted(r.tags), r.fields)
            for r in conn.execute(sa.select(visitors.c.email, visitors.c.tags, visitors.c.fields))
        }
        rows = conn.execute(sa.select(sessions).order_by(sessions.c.id)).all()
        story = {
            r.id: [
                (e.step, e.kind)
                for e in conn.execute(
                    sa.select(timeline.c.step, timeline.c.kind)
                    .where(timeline.c.session_id == r.id)
                    .order_by(timeline.c.id)
                )
            ]
            for r in rows
        }
    return {
        "visitors": people,
        "sessions": [(r.id, r.status, r.step) for r in rows],
        "timelines": story,
    }


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(flow=flows, script=scripts, seed=st.integers(0, 2**16))
def test_interleavings_and_crashes_do_not_change_the_outcome(
    flow, script, seed, sqlite_template, tmp_path
):
    reference, shuffled = tmp_path / "reference.db", tmp_path / "shuffled.db"
    for path in (reference, shuffled):
        path.unlink(missing_ok=True)
        shutil.copy(sqlite_template, path)
    expected = run(reference, flow, script, None)
    assert run(shuffled, flow, script, random.Random(seed)) == expected
