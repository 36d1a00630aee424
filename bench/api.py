"""`make bench`: events per second through `POST /api/v1/batch/events`, and the latency
of single-event requests under load, against a real `sluice serve --no-worker`.

Setup: 20 flows on, each triggered by its own event type (half with a `trigger.if`
on the event's details); 20 segments (BENCH_SEGMENTS), half counting one of those
event types in the last 30 days, half on the visitors' tags and fields; 100,000
visitors imported through `batch/subscribers`.
Then, over HTTP with keep-alive:

- batches: 1,000-event batches spread over the 20 trigger types and the 100,000
  visitors, sent one after another; every event is stored, matched against the
  flows in memory, and starts a session where the entry rules allow it;
- singles: 8 clients send one event per request at once; p50/p99 of their latency,
  alone and while a ninth client keeps sending 1,000-event batches.

Client and server share the machine. The worker is not running (`--no-worker`), so
the numbers are the ingest path's alone. Results are printed; copy them into
docs/benchmarks.md.
"""

from __future__ import annotations

import base64
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import orjson
import sqlalchemy as sa
from databases import SCRATCH, on_each
from rich.console import Console
from rich.table import Table

from sluice.store.db import Database
from sluice.store.schema import events, sessions

VISITORS = int(os.environ.get("BENCH_VISITORS", "100000"))
BATCHES = int(os.environ.get("BENCH_BATCHES", "60"))
FLOWS = 20
SEGMENTS = int(os.environ.get("BENCH_SEGMENTS", "20"))
SINGLE_CLIENTS = 8
SINGLE_SECONDS = float(os.environ.get("BENCH_SINGLE_SECONDS", "8"))
SLUICE = str(Path(__file__).resolve().parents[1] / ".venv" / "bin" / "sluice")
if not Path(SLUICE).exists():
    SLUICE = str(Path(sys.executable).parent / "sluice")
CREDENTIALS = {
    "SLUICE_SITE_UUID": "00000000-0000-4000-8000-0000000000b1",
    "SLUICE_PUBLISHABLE_KEY": "bench-publishable",
    "SLUICE_SECRET_KEY": "bench-secret",
}
BASIC = "Basic " + base64.b64encode(b"bench-publishable:bench-secret").decode()
HEADERS = {"Authorization": BASIC, "Content-Type": "application/json"}


def flow(n: int) -> str:
    """Odd flows: `every_time` with a `trigger.if`; even ones: the default entry rule
    (`one_at_a_time`: no second session while the first waits its three days)."""
    condition = f"\n  if: 'event.details.amount > {n * 10}'" if n % 2 else ""
    entry = "entry: every_time\n" if n % 2 else ""
    return (
        f"key: flow-{n}\n{entry}trigger:\n  event: evt_{n}{condition}\nsteps:\n"
        "  - id: hello\n"
        "    email: {subject: 'Hi {{ visitor.first_name }}', html: '<p>x</p>'}\n"
        "  - {id: pause, wait: 3d}\n"
    )


def segment(n: int) -> str:
    """Even segments count an event type (their membership is re-decided for each such
    event); odd ones read tags and fields, which these events do not change."""
    if n % 2 == 0:
        rule = f"{{event: evt_{n}, at_least: 2, within: 30d}}"
    else:
        rule = f"{{all: [{{tag: bench}}, {{field: first_name, equals: V{n}}}]}}"
    return f"kind: segment\nkey: segment-{n}\nname: Segment {n}\nrules: [{rule}]\n"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, url: str, workdir: str):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, **CREDENTIALS, "SLUICE_DATABASE_URL": url, "SLUICE_SIGNING_KEY": "k"}
        self.process = subprocess.Popen(
            [SLUICE, "serve", "--no-worker", "--port", str(self.port)],
            cwd=workdir,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.base}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise SystemExit("sluice serve did not start")
            time.sleep(0.2)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def body(items_key: str, items: list) -> bytes:
    return orjson.dumps({items_key: items, "site_uuid": CREDENTIALS["SLUICE_SITE_UUID"]})


def event(rng: random.Random) -> dict:
    return {
        "type": f"evt_{rng.randrange(FLOWS)}",
        "email": f"v{rng.randrange(VISITORS)}@example.com",
        "details": {"amount": rng.randrange(300), "plan": rng.choice(["free", "pro"])},
    }


def setup(server: Server) -> float:
    """Flows on, visitors imported; returns the import rate (visitors/s)."""
    native = {"Authorization": "Bearer bench-secret", "Content-Type": "application/yaml"}
    with httpx.Client(base_url=server.base, timeout=120) as client:
        for n in range(FLOWS):
            assert client.put(f"/api/flows/flow-{n}", content=flow(n), headers=native).is_success
            assert client.post(f"/api/flows/flow-{n}/on", headers=native).is_success
        for n in range(SEGMENTS):
            put = client.put(f"/api/segments/segment-{n}", content=segment(n), headers=native)
            assert put.is_success, put.text
        started = time.perf_counter()
        for offset in range(0, VISITORS, 1000):
            rows = [
                {"email": f"v{n}@example.com", "first_name": f"V{n}", "tags": "bench"}
                for n in range(offset, min(offset + 1000, VISITORS))
            ]
            answer = client.post(
                "/api/v1/batch/subscribers", content=body("subscribers", rows), headers=HEADERS
            )
            assert answer.status_code == 200, answer.text
        return VISITORS / (time.perf_counter() - started)


def batches(server: Server) -> float:
    rng = random.Random(1)
    payloads = [body("events", [event(rng) for _ in range(1000)]) for _ in range(BATCHES)]
    with httpx.Client(base_url=server.base, timeout=120) as client:
        started = time.perf_counter()
        for payload in payloads:
            answer = client.post("/api/v1/batch/events", content=payload, headers=HEADERS)
            assert answer.status_code == 200 and answer.json()["results"] == 1000, answer.text
        return BATCHES * 1000 / (time.perf_counter() - started)


def singles(server: Server, *, with_batches: bool) -> dict[str, float]:
    stop = threading.Event()
    latencies: list[float] = []
    lock = threading.Lock()

    def client_loop(seed: int) -> None:
        rng = random.Random(seed)
        mine = []
        with httpx.Client(base_url=server.base, timeout=60) as client:
            while not stop.is_set():
                payload = body("events", [event(rng)])
                started = time.perf_counter()
                answer = client.post("/api/v1/batch/events", content=payload, headers=HEADERS)
                mine.append(time.perf_counter() - started)
                assert answer.status_code == 200, answer.text
        with lock:
            latencies.extend(mine)

    def batch_loop() -> None:
        rng = random.Random(99)
        with httpx.Client(base_url=server.base, timeout=120) as client:
            while not stop.is_set():
                payload = body("events", [event(rng) for _ in range(1000)])
                client.post("/api/v1/batch/events", content=payload, headers=HEADERS)

    threads = [threading.Thread(target=client_loop, args=(n,)) for n in range(SINGLE_CLIENTS)]
    if with_batches:
        threads.append(threading.Thread(target=batch_loop))
    for thread in threads:
        thread.start()
    time.sleep(SINGLE_SECONDS)
    stop.set()
    for thread in threads:
        thread.join()
    latencies.sort()
    return {
        "requests/s": len(latencies) / SINGLE_SECONDS,
        "p50 ms": statistics.median(latencies) * 1000,
        "p99 ms": latencies[int(len(latencies) * 0.99)] * 1000,
    }


def run(url: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as workdir:
        Database(url).upgrade()
        server = Server(url, workdir)
        try:
            imported = setup(server)
            rate = batches(server)
            db = Database(url)
            with db.read() as conn:
                started = conn.execute(sa.select(sa.func.count()).select_from(sessions)).scalar()
                stored = conn.execute(sa.select(sa.func.count()).select_from(events)).scalar()
            db.dispose()
            alone = singles(server, with_batches=False)
            loaded = singles(server, with_batches=True)
        finally:
            server.stop()
    return {
        "visitors/s imported (batch/subscribers)": imported,
        "events/s (batch/events, 1,000 per request)": rate,
        "sessions started per 1,000 events": started * 1000 / stored,
        "single events: requests/s (8 clients)": alone["requests/s"],
        "single events: p50 ms": alone["p50 ms"],
        "single events: p99 ms": alone["p99 ms"],
        "single events beside batches: p50 ms": loaded["p50 ms"],
        "single events beside batches: p99 ms": loaded["p99 ms"],
    }


def main() -> None:
    only = sys.argv[1:] or ["sqlite", "postgresql"]
    results = on_each(run, {k: v for k, v in SCRATCH.items() if k.lower() in only})
    title = f"API ({VISITORS:,} visitors, {FLOWS} flows, {BATCHES} batches)"
    table = Table(title, *results)
    for metric in next(iter(results.values())):
        table.add_row(metric, *(f"{results[db][metric]:,.1f}" for db in results))
    Console().print(table)


if __name__ == "__main__":
    main()
