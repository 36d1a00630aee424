"""How long "why didn't they get it?" takes for a visitor with 1,000 events, on SQLite
and PostgreSQL (docs/benchmarks.md; the issue asks for under 100 ms).

Setup, through the real ingest path and worker: 20 flows on (as in bench/api.py,
half with a `trigger.if`), plus `onboarding` (`entry: once`, a wait, an `if`, two
emails) and `every` (`every_time`, an email); 2,000 other visitors with an event each;
then one visitor sends 1,000 events in batches of 100 — `signup` (refused by `once`
after the first), `order` (a session of `every` each), and the 20 flows' types — and
the worker runs everything due. The explanation of each flow (and of a step) is then
asked `REPEAT` times in-process (`Sluice.explain`, one read transaction each); the
median and the slowest are printed.
"""

from __future__ import annotations

import random
import statistics
import time

from databases import on_each
from rich.console import Console
from rich.table import Table

from sluice.definitions.parse import load_documents
from sluice.records import FlowStatus
from sluice.service import Sluice
from sluice.settings import Settings
from sluice.store.ingest import IncomingEvent

REPEAT = 30
FLOWS = 20
EMAIL = "busy@example.com"
DEFINITIONS = """
key: onboarding
entry: once
trigger: {event: signup}
exit: [{event: purchase}]
steps:
  - {id: settle, wait: 1h}
  - id: check
    if: 'visitor.tags contains "activated"'
    then: [{id: thanks, email: {subject: Thanks, html: '<p>x</p>'}}]
    else: [{id: nudge, email: {subject: Hi, html: '<p>x</p>'}}]
---
key: every
entry: every_time
trigger: {event: order}
steps: [{id: receipt, email: {subject: Receipt, html: '<p>x</p>'}}]
"""


def numbered_flow(n: int) -> str:
    condition = f"\n  if: 'event.details.amount > {n * 10}'" if n % 2 else ""
    return (
        f"key: flow-{n}\ntrigger:\n  event: evt_{n}{condition}\nsteps:\n"
        "  - {id: hello, email: {subject: Hi, html: '<p>x</p>'}}\n  - {id: pause, wait: 3d}\n"
    )


def setup(app: Sluice) -> None:
    text = DEFINITIONS + "".join(f"---\n{numbered_flow(n)}" for n in range(FLOWS))
    report = app.apply([("bench.yaml", d) for d in load_documents(text, "bench.yaml")])
    for key in report.flows:
        app.set_flow_status(key, FlowStatus.ON)
    rng = random.Random(1)
    others = [
        IncomingEvent(type=f"evt_{rng.randrange(FLOWS)}", email=f"v{n}@example.com")
        for n in range(2000)
    ]
    for start in range(0, len(others), 500):
        app.send(others[start : start + 500])
    kinds = ["signup", "order", "pageview"] + [f"evt_{n}" for n in range(FLOWS)]
    mine = [
        IncomingEvent(type=rng.choice(kinds), email=EMAIL, details={"amount": rng.randrange(300)})
        for _ in range(1000)
    ]
    for start in range(0, len(mine), 100):
        app.send(mine[start : start + 100])
    worker = app.worker()
    worker.run_until_idle()


def timed(call) -> tuple[float, float]:
    call()  # warm: the flow version is parsed once per process
    times = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), max(times)


def run(url: str) -> dict[str, tuple[float, float]]:
    app = Sluice(Settings(database_url=url, signing_key="bench"))
    app.upgrade()
    try:
        setup(app)
        assert len(app.visitor(EMAIL)["events"]) == 50  # the profile shows the latest 50
        cases = {
            "onboarding (refused by once)": ("onboarding", None),
            "onboarding, step nudge": ("onboarding", "nudge"),
            "every, step receipt (hundreds of sessions)": ("every", "receipt"),
            "flow-1 (trigger.if)": ("flow-1", None),
        }
        return {
            name: timed(lambda flow=flow, step=step: app.explain(EMAIL, flow, step))
            for name, (flow, step) in cases.items()
        }
    finally:
        app.close()


def main() -> None:
    results = on_each(run)
    table = Table("explanation of (1,000 events)", *(f"{db} median / max ms" for db in results))
    for case in next(iter(results.values())):
        table.add_row(case, *(f"{r[case][0]:.1f} / {r[case][1]:.1f}" for r in results.values()))
    Console().print(table)


if __name__ == "__main__":
    main()
