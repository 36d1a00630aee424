"""`make bench`: delivery throughput of one dispatcher in one process.

- webhooks: every session of a flow reaches a webhook step; the endpoint, in another
  process on loopback, answers each request after 200 ms;
- emails: every session reaches an email step (marketing, tracked, CSS inlined); the
  SMTP server (aiosmtpd, in another process on loopback) accepts every message.

The sessions are started and advanced to their delivery first; then only the
dispatcher runs, and the time from its start until the last result is recorded is
measured. Results go to stdout as a table; copy them into docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import socket
import threading
import time

import endpoint
import sqlalchemy as sa
from databases import on_each
from rich.console import Console
from rich.table import Table

from sluice.clock import FakeClock
from sluice.definitions.parse import load_documents
from sluice.records import FlowStatus
from sluice.service import Sluice
from sluice.settings import Settings
from sluice.store.ingest import IncomingEvent
from sluice.store.schema import deliveries

COUNT = int(os.environ.get("BENCH_DELIVERIES", "10000"))
IN_FLIGHT = int(os.environ.get("BENCH_IN_FLIGHT", "500"))
ANSWER_DELAY = 0.2
BATCH = 1000

WEBHOOK_FLOW = """
key: bench-hook
trigger: {event: hook_me}
entry: every_time
steps:
  - {id: call, webhook: {url: '{{ event.details.url }}'}}
"""
EMAIL_FLOW = """
key: bench-mail
trigger: {event: mail_me}
entry: every_time
steps:
  - id: hello
    email:
      subject: 'Hello {{ visitor.email }}'
      html: >-
        <html><head><style>p { color: #336699; }</style></head><body>
        <p>Welcome aboard.</p><p><a href="https://example.com/start">Start here</a></p>
        </body></html>
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the other side, in its own process -----------------------------------------------


def slow_endpoint(port: int, ready, served) -> None:
    """Answers 200 after ANSWER_DELAY."""

    async def answer_late(body: bytes) -> None:
        await asyncio.sleep(ANSWER_DELAY)
        with served.get_lock():
            served.value += 1

    asyncio.run(endpoint.serve(port, ready, answer_late))


def smtp_server(port: int, ready, served) -> None:
    from aiosmtpd.controller import Controller

    class Accept:
        async def handle_DATA(self, server, session, envelope):
            with served.get_lock():
                served.value += 1
            return "250 OK"

    Controller(Accept(), hostname="127.0.0.1", port=port).start()
    ready.set()
    threading.Event().wait()


def start(target) -> tuple[multiprocessing.Process, int, object]:
    """The server in a fresh process (spawned: forking a process that has threads can
    leave the child holding locks nobody will release)."""
    spawn = multiprocessing.get_context("spawn")
    port, ready, served = free_port(), spawn.Event(), spawn.Value("i", 0)
    process = spawn.Process(target=target, args=(port, ready, served), daemon=True)
    process.start()
    if not ready.wait(30):
        raise RuntimeError(f"{target.__name__} did not start")
    return process, port, served


# -- the measurement ------------------------------------------------------------------


def measure(url: str, flow: str, details: dict, **settings) -> float:
    """Deliveries per second of the dispatcher alone, for COUNT sessions of `flow`."""
    app = Sluice(
        Settings(database_url=url, signing_key="bench", webhook_allow_private=True, **settings),
        FakeClock(),
    )
    app.upgrade()
    [document] = load_documents(flow)
    app.apply([("bench.yaml", document)])
    app.set_flow_status(document["key"], FlowStatus.ON)
    trigger = document["trigger"]["event"]
    for offset in range(0, COUNT, BATCH):
        app.send(
            [
                IncomingEvent(type=trigger, email=f"v{n}@example.com", details=details)
                for n in range(offset, offset + BATCH)
            ]
        )
    app.worker(batch_size=500).run_until_idle()
    assert pending(app) == COUNT
    dispatcher = app.dispatcher(in_flight=IN_FLIGHT)

    async def until_done() -> float:
        started = time.perf_counter()
        running = asyncio.create_task(dispatcher.run())
        while await asyncio.to_thread(pending, app):
            await asyncio.sleep(0.1)
        elapsed = time.perf_counter() - started
        dispatcher.stop()
        await running
        return elapsed

    elapsed = asyncio.run(until_done())
    app.close()
    return COUNT / elapsed


def pending(app: Sluice) -> int:
    with app.db.read() as conn:
        return conn.execute(
            sa.select(sa.func.count()).where(deliveries.c.state == "pending")
        ).scalar_one()


def scenarios(url: str) -> dict[str, float]:
    results = {}
    process, port, served = start(slow_endpoint)
    try:
        hook = {"url": f"http://127.0.0.1:{port}/hook"}
        results["webhooks/s (endpoint answers in 200 ms)"] = measure(
            url, WEBHOOK_FLOW, hook, webhook_secret="whsec_YmVuY2g="
        )
        assert served.value >= COUNT, served.value
    finally:
        process.kill()
    process, port, served = start(smtp_server)
    try:
        results["emails/s (local SMTP server)"] = measure(
            url, EMAIL_FLOW, {}, smtp_url=f"smtp://127.0.0.1:{port}"
        )
        assert served.value >= COUNT, served.value
    finally:
        process.kill()
    return results


def main() -> None:
    results = on_each(scenarios)
    table = Table(f"metric ({COUNT:,} deliveries, one dispatcher, {IN_FLIGHT} in flight)", *results)
    for metric in results["SQLite"]:
        table.add_row(metric, *(f"{results[db][metric]:,.0f}" for db in results))
    Console().print(table)


if __name__ == "__main__":
    main()
