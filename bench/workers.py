"""`make bench`: throughput against the number of `sluice worker` processes.

20,000 sessions, each with five instant steps, are made due at once (their flow is
turned on with the workers already idle), and the clock runs until every one has
completed. Run on PostgreSQL and on SQLite with 1, 2 and 4 workers; the results are
printed and drawn in `docs/throughput.png`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import matplotlib
import sqlalchemy as sa
from databases import on_each
from rich.console import Console
from rich.table import Table

from sluice.clock import SystemClock
from sluice.definitions.parse import load_documents
from sluice.records import FlowStatus
from sluice.service import Sluice
from sluice.settings import Settings
from sluice.store.ingest import IncomingEvent
from sluice.store.schema import sessions

matplotlib.use("Agg")
import matplotlib.pyplot as plt

SESSIONS = int(os.environ.get("BENCH_SESSIONS", "20000"))
WORKERS = (1, 2, 4)
STEPS = 5
FLOW = """
key: fan
trigger: {event: go}
entry: every_time
steps:
  - {id: a, tag: {add: [a]}}
  - {id: b, field: {set: {n: '{{ event.details.n }}'}}}
  - id: c
    if: 'visitor.n > 10'
    then: [{id: d, tag: {add: [big]}}]
    else: [{id: e, tag: {add: [small]}}]
  - {id: f, tag: {remove: [a]}}
"""
SLUICE = str(Path(sys.executable).parent / "sluice")
PLOT = Path(__file__).resolve().parents[1] / "docs" / "throughput.png"


def measure(url: str, workers: int) -> float:
    """Steps per second with this many worker processes."""
    app = Sluice(Settings(database_url=url, signing_key="bench"), SystemClock())
    app.upgrade()
    app.apply([("fan.yaml", d) for d in load_documents(FLOW)])
    app.set_flow_status("fan", FlowStatus.ON)
    for offset in range(0, SESSIONS, 1000):
        app.send(
            [
                IncomingEvent(type="go", email=f"v{n}@example.com", details={"n": n})
                for n in range(offset, offset + 1000)
            ]
        )
    app.set_flow_status("fan", FlowStatus.OFF)  # paused until the workers are up
    env = {**os.environ, "SLUICE_DATABASE_URL": url}
    processes = [
        subprocess.Popen([SLUICE, "worker"], env=env, stderr=subprocess.DEVNULL)
        for _ in range(workers)
    ]
    time.sleep(3)
    started = time.perf_counter()
    app.set_flow_status("fan", FlowStatus.ON)
    done = sa.select(sa.func.count()).where(sessions.c.status == "completed")
    while True:
        with app.db.read() as conn:
            if conn.execute(done).scalar_one() == SESSIONS:
                break
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    for process in processes:
        process.terminate()
        process.wait()
    app.close()
    return SESSIONS * STEPS / elapsed


def main() -> None:
    results: dict[str, dict[int, float]] = {"PostgreSQL": {}, "SQLite": {}}
    for count in WORKERS:
        for database, steps_per_second in on_each(partial(measure, workers=count)).items():
            results[database][count] = steps_per_second
    table = Table(
        f"steps/s, {SESSIONS:,} sessions × {STEPS} steps", *(f"{n} worker(s)" for n in WORKERS)
    )
    for database, row in results.items():
        table.add_row(database, *(f"{row[n]:,.0f}" for n in WORKERS))
    Console().print(table)
    figure, axes = plt.subplots(figsize=(6, 4))
    for database, row in results.items():
        axes.plot(WORKERS, [row[n] for n in WORKERS], marker="o", label=database)
    axes.set(xlabel="worker processes", ylabel="steps per second", xticks=WORKERS)
    axes.set_title("Throughput against workers (2-core machine)")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(PLOT, dpi=110)
    print(f"plot written to {PLOT}")


if __name__ == "__main__":
    main()
