"""`make bench`: a broadcast to a segment of 100,000 visitors (BENCH_BROADCAST).

In one process, on each database: the visitors are imported into the segment (its
membership kept as they come in), then a broadcast to it is sent. Measured: how long
sending takes to answer; how long until the worker has queued its first emails and
all of them; and the dispatcher's rate sending them to an SMTP server (aiosmtpd, in
another process on loopback), to compare with `bench/delivery.py`'s emails/s.
Results go to stdout as a table; copy them into docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import os
import time

from databases import on_each
from delivery import IN_FLIGHT, pending, smtp_server, start
from rich.console import Console
from rich.table import Table

from sluice.audience import SubscriberImport
from sluice.clock import FakeClock
from sluice.definitions.parse import load_documents
from sluice.service import Sluice
from sluice.settings import Settings
from sluice.store.broadcasts import NewBroadcast

COUNT = int(os.environ.get("BENCH_BROADCAST", "100000"))
SEGMENT = "kind: segment\nkey: readers\nname: Readers\nrules: [{tag: reader}]\n"
EMAIL = {
    "subject": "News for {{ visitor.first_name }}",
    "html": "<h1>Hello {{ visitor.first_name }}</h1><p>What is new this month.</p>",
}


def run(url: str) -> dict[str, float]:
    process, port, served = start(smtp_server)
    try:
        app = Sluice(
            Settings(database_url=url, signing_key="bench", smtp_url=f"smtp://127.0.0.1:{port}"),
            FakeClock(),
        )
        app.upgrade()
        app.apply([("segment.yaml", d) for d in load_documents(SEGMENT)])
        for offset in range(0, COUNT, 1000):
            app.audience.import_subscribers(
                [
                    SubscriberImport(
                        email=f"v{n}@example.com", fields={"first_name": f"V{n}"}, tags=("reader",)
                    )
                    for n in range(offset, min(offset + 1000, COUNT))
                ]
            )
        assert app.segment("readers")["members"] == COUNT
        worker = app.worker(batch_size=500)

        started = time.perf_counter()
        found = app.create_broadcast(
            NewBroadcast(name="News", email=EMAIL, segment_key="readers"), send=True
        )
        accepted = time.perf_counter() - started
        worker.run_once()
        first = time.perf_counter() - started
        worker.run_until_idle(max_batches=1_000_000)
        queued = time.perf_counter() - started
        assert app.broadcast(found["id"])["stats"]["queued"] == COUNT
        dispatcher = app.dispatcher(in_flight=IN_FLIGHT)

        async def until_sent() -> float:
            begun = time.perf_counter()
            running = asyncio.create_task(dispatcher.run())
            while await asyncio.to_thread(pending, app):
                await asyncio.sleep(0.1)
            elapsed = time.perf_counter() - begun
            dispatcher.stop()
            await running
            return elapsed

        sending = asyncio.run(until_sent())
        assert served.value >= COUNT, served.value
        app.close()
    finally:
        process.kill()
    return {
        "send answered in (ms)": accepted * 1000,
        "first emails queued after (s)": first,
        "every email queued after (s)": queued,
        "queued/s": COUNT / queued,
        "sent/s (dispatcher, local SMTP)": COUNT / sending,
    }


def main() -> None:
    results = on_each(run)
    table = Table(f"broadcast to a segment of {COUNT:,}", *results)
    for metric in next(iter(results.values())):
        table.add_row(metric, *(f"{results[db][metric]:,.1f}" for db in results))
    Console().print(table)


if __name__ == "__main__":
    main()
