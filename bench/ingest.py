"""The ingest path alone, in-process: bench/api.py's workload (20 flows, half with a
`trigger.if`, 100,000 visitors, 1,000-event batches over the 20 types) sent through
`Sluice.send`, without HTTP. Prints the median CPU time (`process_time`, this process
only: on PostgreSQL the server's work is not in it) and wall time per batch.

Used to compare two versions of the code on a shared machine, where CPU time varies
less than throughput: run it with each version on `PYTHONPATH`, interleaved.
`python bench/ingest.py [sqlite] [postgresql]`.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from datetime import UTC, datetime

import api
from databases import SCRATCH

from sluice.definitions.parse import load_documents
from sluice.records import FlowStatus
from sluice.service import Sluice
from sluice.settings import Settings
from sluice.store import visitors as visitor_store
from sluice.store.ingest import IncomingEvent

WARM_UP = 5


def run(url: str) -> tuple[float, float]:
    app = Sluice(Settings(database_url=url, signing_key="bench"))
    app.upgrade()
    documents = []
    for n in range(api.FLOWS):
        documents += [(f"flow-{n}", d) for d in load_documents(api.flow(n), f"flow-{n}")]
    for key in app.apply(documents).flows:
        app.set_flow_status(key, FlowStatus.ON)
    now = datetime.now(UTC)
    for start in range(0, api.VISITORS, 5000):
        emails = (f"v{n}@example.com" for n in range(start, min(start + 5000, api.VISITORS)))
        with app.db.write() as conn:
            visitor_store.upsert(conn, emails, now)
    rng = random.Random(1)
    batches = [
        [IncomingEvent(**api.event(rng)) for _ in range(1000)] for _ in range(api.BATCHES + WARM_UP)
    ]
    cpu, wall = [], []
    for n, batch in enumerate(batches):
        started_cpu, started = time.process_time(), time.perf_counter()
        app.send(batch)
        if n >= WARM_UP:
            cpu.append((time.process_time() - started_cpu) * 1000)
            wall.append((time.perf_counter() - started) * 1000)
    app.close()
    return statistics.median(cpu), statistics.median(wall)


def main() -> None:
    only = sys.argv[1:] or ["sqlite", "postgresql"]
    for name, scratch in SCRATCH.items():
        if name.lower() in only:
            with scratch() as url:
                cpu, wall = run(url)
            print(f"{name}: per 1,000-event batch, median CPU {cpu:.1f} ms, wall {wall:.1f} ms")


if __name__ == "__main__":
    main()
