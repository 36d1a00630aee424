"""`make bench`: ingest and worker throughput on SQLite and PostgreSQL.

Ingest: batches of 1,000 events, each matching a flow and starting a session.
Worker: every session runs four instant steps and reaches a wait; then the clock
jumps past the wait and every session runs two more steps and completes.
Results go to stdout as a table; copy them into docs/benchmarks.md.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta

from databases import on_each
from rich.console import Console
from rich.table import Table

from sluice.clock import FakeClock
from sluice.definitions.parse import load_documents
from sluice.records import FlowStatus
from sluice.service import Sluice
from sluice.settings import Settings
from sluice.store.ingest import IncomingEvent

FLOW = """
key: bench
trigger: {event: signed_up, if: 'event.details.plan != "enterprise"'}
entry: every_time
steps:
  - {id: t1, tag: {add: [new, '{{ event.details.plan }}']}}
  - {id: f1, field: {set: {plan: '{{ event.details.plan }}'}}}
  - {id: choose, if: 'visitor.tags contains "new"', then: [{id: t2, tag: {add: [checked]}}]}
  - {id: pause, wait: 1d}
  - {id: t3, tag: {remove: [new]}}
"""
VISITORS = int(os.environ.get("BENCH_VISITORS", "20000"))
BATCH = 1000


def run(url: str) -> dict[str, float]:
    clock = FakeClock()
    app = Sluice(Settings(database_url=url, signing_key="bench"), clock)
    app.upgrade()
    app.apply([("bench.yaml", d) for d in load_documents(FLOW)])
    app.set_flow_status("bench", FlowStatus.ON)
    started = time.perf_counter()
    for offset in range(0, VISITORS, BATCH):
        app.send(
            [
                IncomingEvent(type="signed_up", email=f"v{n}@example.com", details={"plan": "pro"})
                for n in range(offset, offset + BATCH)
            ]
        )
    ingest = time.perf_counter() - started
    worker = app.worker(batch_size=500)
    started = time.perf_counter()
    worker.run_until_idle()
    first = time.perf_counter() - started
    clock.advance(timedelta(days=1, seconds=1))
    started = time.perf_counter()
    worker.run_until_idle()
    second = time.perf_counter() - started
    app.close()
    # every session: 4 steps to the wait (t1, f1, choose, t2, pause = 5 begun), then t3
    steps = VISITORS * 6
    return {
        "events/s (ingest + session start)": VISITORS / ingest,
        "sessions/s to first wait": VISITORS / first,
        "sessions/s wait to completion": VISITORS / second,
        "steps/s overall": steps / (first + second),
    }


def main() -> None:
    results = on_each(run)
    table = Table(f"metric ({VISITORS:,} visitors, one worker)", *results)
    for metric in results["SQLite"]:
        table.add_row(metric, *(f"{results[db][metric]:,.0f}" for db in results))
    Console().print(table)


if __name__ == "__main__":
    main()
