"""`make bench`: event-to-webhook latency on PostgreSQL with two workers.

One API process (`sluice serve --no-worker`) and two `sluice worker` processes share
a fresh database. Events go in through `POST /api/events` at a steady 500 per second
for 10 seconds; each starts a session whose first step is a webhook to a receiver on
this machine, which notes when it arrives. Latency is arrival time minus the time the
event was sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import queue
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import endpoint
import httpx
import orjson
from databases import scratch_postgres

RATE = 500
SECONDS = 10
TICK = 0.05  # send a batch every 50 ms
SLUICE = str(Path(sys.executable).parent / "sluice")
SECRET_KEY = "sk_latency"


def receiver(port: int, ready, arrivals) -> None:
    """The webhook endpoint: reports each request's latency."""

    async def note_arrival(body: bytes) -> None:
        arrivals.put(time.time() - float(orjson.loads(body)["sent"]))

    asyncio.run(endpoint.serve(port, ready, note_arrival))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    with scratch_postgres() as url:
        measure(url)


def measure(url: str) -> None:
    spawn = multiprocessing.get_context("spawn")
    receiver_port, ready, arrivals = free_port(), spawn.Event(), spawn.Queue()
    endpoint = spawn.Process(target=receiver, args=(receiver_port, ready, arrivals), daemon=True)
    endpoint.start()
    ready.wait(30)
    env = {
        **os.environ,
        "SLUICE_DATABASE_URL": url,
        "SLUICE_SECRET_KEY": SECRET_KEY,
        "SLUICE_WEBHOOK_ALLOW_PRIVATE": "true",
    }
    port = free_port()
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    processes = [
        subprocess.Popen([SLUICE, "serve", "--no-worker", "--port", str(port)], env=env, **quiet)
    ]
    processes += [subprocess.Popen([SLUICE, "worker"], env=env, **quiet) for _ in range(2)]
    api = f"http://127.0.0.1:{port}/api"
    headers = {"Authorization": f"Bearer {SECRET_KEY}"}
    try:
        client = httpx.Client(headers=headers, timeout=30)
        for _ in range(200):
            try:
                client.get(f"{api}/flows")
                break
            except httpx.TransportError:
                time.sleep(0.1)
        flow = {
            "key": "latency",
            "trigger": {"event": "ping"},
            "entry": "every_time",
            "steps": [
                {
                    "id": "hook",
                    "webhook": {
                        "url": f"http://127.0.0.1:{receiver_port}/",
                        "body": {"sent": "{{ event.details.sent }}"},
                    },
                }
            ],
        }
        client.put(f"{api}/flows/latency", json=flow).raise_for_status()
        client.post(f"{api}/flows/latency/on").raise_for_status()
        time.sleep(2)
        per_tick = int(RATE * TICK)
        start = time.monotonic()
        sent = 0
        while time.monotonic() - start < SECONDS:
            events = [
                {
                    "type": "ping",
                    "email": f"v{sent + i}@example.com",
                    "details": {"sent": time.time()},
                }
                for i in range(per_tick)
            ]
            client.post(f"{api}/events", json={"events": events}).raise_for_status()
            sent += per_tick
            next_tick = start + (sent / RATE)
            time.sleep(max(0.0, next_tick - time.monotonic()))
        latencies = []
        deadline = time.monotonic() + 30
        while len(latencies) < sent and time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                latencies.append(arrivals.get(timeout=0.5))
        latencies.sort()
        pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
        print(
            f"event-to-webhook latency, PostgreSQL, 2 workers, {RATE} events/s for {SECONDS}s: "
            f"{len(latencies)}/{sent} delivered; p50 {pick(0.5):.0f} ms, p90 {pick(0.9):.0f} ms, "
            f"p99 {pick(0.99):.0f} ms, max {latencies[-1] * 1000:.0f} ms"
        )
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(timeout=30)
        endpoint.terminate()


if __name__ == "__main__":
    main()
