"""`make bench`: the whole pipeline, from `POST /api/v1/batch/events` to the webhook
(issue 15).

The flow `onboard`, triggered by `signed_up`: `tag` (add `signed_up`) → `wait: 2s` →
`if visitor.fields.parity == "even"` → a webhook in each branch, to a keep-alive
receiver in its own process (bench/endpoint.py) that answers 200 at once and logs the
arrival time and `webhook-id` of every request.

Runs (`--runs`, comma-separated):

- `pipeline`: N visitors, one `signed_up` event each (fields `n` and `parity`), posted
  in batches of up to 1,000 by 16 concurrent producers. SQLite: one `sluice serve`
  (its embedded worker and dispatcher), once per `--synchronous` setting; PostgreSQL:
  `sluice serve --no-worker` and two `sluice worker`. Measured: ingest/s;
  completions/s = N ÷ (last webhook − first send); lateness = webhook arrival − event
  accepted − 2 s (p50/p99/max); peak RSS of all Sluice processes; missing and
  duplicate webhooks; and the stages of each session read back from the database
  (accepted → tag → wait ended → webhook written → sent → recorded).
- `timers`: the same flow with `wait: 2h`; N sessions parked on it. Time until all
  are waiting, peak RSS, disk per waiting session (database size after − before ÷ N,
  SQLite checkpointed first), and the CPU of the idle processes over `--idle-seconds`.
- `due`: N sessions parked on the 2-hour wait, then the flow saved with `wait: 1s`:
  saving a changed definition makes every waiting session due now, and each one's
  wait, recomputed from when it began, has ended — all are due at once. Measured:
  sessions/s from the save to the last webhook.

`--profile DIR` records every Sluice process with py-spy (`--gil`, raw collapsed
stacks and an SVG flame graph) and prints the functions with the most samples.
Defaults are the issue's sizes; on a shared machine pass small ones
(`--n 2000 --timers-n 20000 --due-n 5000 --idle-seconds 20`).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import multiprocessing
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import endpoint
import httpx
import orjson
import psutil
import sqlalchemy as sa
from databases import scratch_postgres, scratch_sqlite
from rich.console import Console
from rich.table import Table

from sluice.store.db import Database, sqlite_path
from sluice.store.schema import deliveries, events, sessions, timeline, visitors

PRODUCERS = 16
BATCH = 1000
WAIT = 2.0  # seconds: the flow's wait in the pipeline run
SLUICE = str(Path(sys.executable).parent / "sluice")
CREDENTIALS = {
    "SLUICE_SITE_UUID": "00000000-0000-4000-8000-0000000000b2",
    "SLUICE_PUBLISHABLE_KEY": "bench-publishable",
    "SLUICE_SECRET_KEY": "bench-secret",
    "SLUICE_SIGNING_KEY": "bench-signing",
    "SLUICE_WEBHOOK_ALLOW_PRIVATE": "true",
}
BENTO = {
    "Authorization": "Basic " + base64.b64encode(b"bench-publishable:bench-secret").decode(),
    "Content-Type": "application/json",
}
NATIVE = {"Authorization": "Bearer bench-secret", "Content-Type": "application/yaml"}
console = Console()


def flow(receiver: str, wait: str) -> str:
    return f"""
key: onboard
entry: every_time
trigger: {{event: signed_up}}
steps:
  - {{id: tag, tag: {{add: [signed_up]}}}}
  - {{id: pause, wait: {wait}}}
  - id: check
    if: 'visitor.fields.parity == "even"'
    then:
      - id: even_hook
        webhook: {{url: '{receiver}', body: {{n: '{{{{ visitor.fields.n }}}}', branch: even}}}}
    else:
      - id: odd_hook
        webhook: {{url: '{receiver}', body: {{n: '{{{{ visitor.fields.n }}}}', branch: odd}}}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------- the receiver


def receive(port: int, ready, log_path: str) -> None:
    """The webhook endpoint: one line per request, `arrival webhook-id n`."""
    log = open(log_path, "a", buffering=1)  # noqa: SIM115 - open for the process's life

    async def note(body: bytes, head: bytes) -> None:
        webhook_id = ""
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"webhook-id:"):
                webhook_id = line.split(b":", 1)[1].strip().decode()
        log.write(f"{time.time():.6f} {webhook_id} {orjson.loads(body)['n']}\n")

    asyncio.run(endpoint.serve(port, ready, note, with_head=True))


class Receiver:
    def __init__(self, workdir: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = f"{workdir}/arrivals.log"
        Path(self.log).touch()
        spawn = multiprocessing.get_context("spawn")
        ready = spawn.Event()
        self.process = spawn.Process(target=receive, args=(self.port, ready, self.log))
        self.process.start()
        ready.wait(30)

    def arrivals(self) -> list[tuple[float, str, int]]:
        rows = []
        for line in Path(self.log).read_text().splitlines():
            parts = line.split()
            if len(parts) == 3:
                rows.append((float(parts[0]), parts[1], int(parts[2])))
        return rows

    def count(self) -> int:
        with open(self.log, "rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))

    def wait_for(self, n: int, *, stall: float) -> None:
        """Until `n` requests arrived, or none for `stall` seconds; then a short grace
        for duplicates."""
        seen, last_change = -1, time.monotonic()
        while True:
            count = self.count()
            if count != seen:
                seen, last_change = count, time.monotonic()
            if count >= n or time.monotonic() - last_change > stall:
                break
            time.sleep(0.2)
        time.sleep(2)

    def stop(self) -> None:
        self.process.terminate()
        self.process.join(10)


# ---------------------------------------------------------------- Sluice processes


class Cluster:
    """`sluice serve` (SQLite) or `serve --no-worker` + 2 workers (PostgreSQL), with a
    sampler of the peak RSS of all of them."""

    def __init__(self, url: str, workdir: str, env: dict[str, str], profile: str | None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, **CREDENTIALS, "SLUICE_DATABASE_URL": url, **env}
        log = open(os.environ.get("BENCH_LOG", f"{workdir}/sluice.log"), "ab")  # noqa: SIM115 - closed with the workdir
        quiet = {"cwd": workdir, "env": env, "stdout": log, "stderr": log}
        serve = [SLUICE, "serve", "--port", str(self.port)]
        if url.startswith("sqlite"):
            self.processes = [subprocess.Popen(serve, **quiet)]
        else:
            self.processes = [subprocess.Popen([*serve, "--no-worker"], **quiet)]
            self.processes += [subprocess.Popen([SLUICE, "worker"], **quiet) for _ in range(2)]
        self._await_ready()
        self.peak_rss = 0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()
        self.profilers = []
        if profile:
            Path(profile).mkdir(parents=True, exist_ok=True)
            self.profilers = [
                subprocess.Popen(
                    [
                        str(Path(sys.executable).parent / "py-spy"),
                        "record", "--gil", "--rate", "100", "--format", "raw",
                        "-o", f"{profile}/{role}-{p.pid}.txt", "--pid", str(p.pid),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for role, p in zip(["serve", "worker", "worker"], self.processes, strict=False)
            ]  # fmt: skip

    def _await_ready(self) -> None:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.base}/readyz", timeout=1).status_code == 200:
                    return
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.processes):
                raise SystemExit("sluice serve did not start")
            time.sleep(0.2)

    def rss(self) -> int:
        total = 0
        for p in self.processes:
            with contextlib.suppress(psutil.Error):
                process = psutil.Process(p.pid)
                total += sum(q.memory_info().rss for q in [process, *process.children(True)])
        return total

    def cpu_seconds(self) -> float:
        total = 0.0
        for p in self.processes:
            with contextlib.suppress(psutil.Error):
                times = psutil.Process(p.pid).cpu_times()
                total += times.user + times.system
        return total

    def _sample(self) -> None:
        while not self._stop.wait(0.25):
            self.peak_rss = max(self.peak_rss, self.rss())

    def stop(self) -> None:
        self._stop.set()
        for profiler in self.profilers:
            profiler.send_signal(signal.SIGINT)
        for profiler in self.profilers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                profiler.wait(timeout=60)
        for p in self.processes:
            p.send_signal(signal.SIGTERM)
        for p in self.processes:
            p.wait(timeout=60)


def put_flow(cluster: Cluster, document: str) -> None:
    with httpx.Client(base_url=cluster.base, headers=NATIVE, timeout=60) as client:
        client.put("/api/flows/onboard", content=document).raise_for_status()
        client.post("/api/flows/onboard/on").raise_for_status()


@dataclass
class Ingest:
    first_send: float = 0.0
    last_answer: float = 0.0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def produce(cluster: Cluster, n: int, site_uuid: str) -> Ingest:
    """`n` `signed_up` events in batches of up to 1,000 from 16 concurrent producers."""
    work: queue.Queue[bytes] = queue.Queue()
    for offset in range(0, n, BATCH):
        batch = [
            {
                "type": "signed_up",
                "email": f"v{i}@example.com",
                "fields": {"n": i, "parity": "even" if i % 2 == 0 else "odd"},
            }
            for i in range(offset, min(offset + BATCH, n))
        ]
        work.put(orjson.dumps({"events": batch, "site_uuid": site_uuid}))
    result = Ingest(first_send=time.time())
    lock = threading.Lock()

    def producer() -> None:
        with httpx.Client(base_url=cluster.base, headers=BENTO, timeout=300) as client:
            while True:
                try:
                    payload = work.get_nowait()
                except queue.Empty:
                    return
                answer = client.post("/api/v1/batch/events", content=payload)
                with lock:
                    result.last_answer = max(result.last_answer, time.time())
                    if answer.status_code != 200:
                        result.failed += payload.count(b'"signed_up"')
                        result.errors.append(answer.text[:200])
                    else:
                        result.failed += answer.json()["failed"]

    threads = [threading.Thread(target=producer) for _ in range(PRODUCERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if result.errors:
        console.print(f"[red]{len(result.errors)} batches refused: {result.errors[0]}")
    return result


# ---------------------------------------------------------------- measures


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def db_size(url: str) -> int:
    """Bytes on disk: the SQLite file after a checkpoint, or the PostgreSQL database."""
    db = Database(url)
    try:
        if db.is_sqlite:
            with db.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            path = sqlite_path(db.url)
            return sum(os.path.getsize(p) for p in (path, f"{path}-wal") if os.path.exists(p))
        with db.read() as conn:
            return conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar()
    finally:
        db.dispose()


def sqlite_objects(url: str) -> dict[str, int]:
    """Bytes per table and index of an SQLite database (its `dbstat` table); empty on
    PostgreSQL."""
    if not url.startswith("sqlite"):
        return {}
    db = Database(url)
    try:
        with db.read() as conn:
            rows = conn.exec_driver_sql("SELECT name, sum(pgsize) FROM dbstat GROUP BY name")
            return dict(rows.all())
    finally:
        db.dispose()


def count_waiting(url: str) -> int:
    db = Database(url)
    try:
        with db.read() as conn:
            return conn.execute(
                sa.select(sa.func.count())
                .select_from(sessions)
                .where(sessions.c.status == "waiting", sessions.c.step == "pause")
            ).scalar()
    finally:
        db.dispose()


def stages(url: str) -> dict[str, list[float]]:
    """Per session, the seconds between the stages of its life, read back from the
    database: accepted → tag → wait ended → webhook written → recorded."""
    db = Database(url)
    try:
        with db.read() as conn:
            accepted = dict(
                conn.execute(
                    sa.select(sessions.c.id, events.c.accepted_at).join(
                        events, events.c.id == sessions.c.origin_event_id
                    )
                ).all()
            )
            marks: dict[int, dict[str, float]] = defaultdict(dict)
            for session_id, kind, at in conn.execute(
                sa.select(timeline.c.session_id, timeline.c.kind, timeline.c.at).where(
                    timeline.c.kind.in_(["tags_changed", "wait_ended", "completed"])
                )
            ):
                marks[session_id][kind] = at.timestamp()
            for session_id, created, updated, webhook_id in conn.execute(
                sa.select(
                    deliveries.c.session_id,
                    deliveries.c.created_at,
                    deliveries.c.updated_at,
                    deliveries.c.idempotency_id,
                )
            ):
                marks[session_id]["written"] = created.timestamp()
                marks[session_id]["recorded"] = updated.timestamp()
                marks[session_id]["webhook_id"] = webhook_id
            n_of = {}
            for visitor_fields, session_id in conn.execute(
                sa.select(visitors.c.fields, sessions.c.id).join(
                    sessions, sessions.c.visitor_id == visitors.c.id
                )
            ):
                n_of[int(visitor_fields["n"])] = session_id
    finally:
        db.dispose()
    for session_id, at in accepted.items():
        marks[session_id]["accepted"] = at.timestamp()
    return {"marks": marks, "n_of": n_of}


def pipeline(url: str, label: str, args, env: dict[str, str]) -> dict[str, str]:
    n = args.n
    with tempfile.TemporaryDirectory() as workdir:
        Database(url).upgrade()
        receiver = Receiver(workdir)
        cluster = Cluster(url, workdir, env, args.profile and f"{args.profile}/{label}")
        try:
            put_flow(cluster, flow(receiver.url, "2s"))
            ingest = produce(cluster, n, CREDENTIALS["SLUICE_SITE_UUID"])
            receiver.wait_for(n, stall=args.stall)
            arrivals = receiver.arrivals()
        finally:
            cluster.stop()
            receiver.stop()
        read = stages(url)
    marks, n_of = read["marks"], read["n_of"]
    by_id = Counter(webhook_id for _, webhook_id, _ in arrivals)
    first_arrival: dict[str, float] = {}
    for at, webhook_id, _ in sorted(arrivals):
        first_arrival.setdefault(webhook_id, at)
    lateness, gaps = [], defaultdict(list)
    for session_id in n_of.values():
        m = marks[session_id]
        sent = first_arrival.get(m.get("webhook_id"))
        if sent is None or "accepted" not in m:
            continue
        lateness.append(sent - m["accepted"] - WAIT)
        chain = [
            ("accepted → tag", "accepted", "tags_changed"),
            ("tag → wait ended (−2 s)", "tags_changed", "wait_ended"),
            ("wait ended → webhook written", "wait_ended", "written"),
            ("written → sent (arrival)", "written", None),
            ("sent → recorded", None, "recorded"),
            ("recorded → completed", "recorded", "completed"),
        ]
        for name, start, end in chain:
            a = sent if start is None else m.get(start)
            b = sent if end is None else m.get(end)
            if a is not None and b is not None:
                gaps[name].append(b - a - (WAIT if name.startswith("tag") else 0))
    last = max((at for at, _, _ in arrivals), default=float("nan"))
    result = {
        "visitors": f"{n:,}",
        "ingest events/s": f"{n / (ingest.last_answer - ingest.first_send):,.0f}",
        "completions/s": f"{n / (last - ingest.first_send):,.0f}",
        "lateness p50 / p99 / max s": (
            f"{pct(lateness, 0.5):.2f} / {pct(lateness, 0.99):.2f} / {max(lateness, default=0):.2f}"
        ),
        "peak RSS, all Sluice processes": f"{cluster.peak_rss / 2**20:,.0f} MB",
        "missing webhooks": f"{n - len(by_id):,}",
        "duplicate webhooks": f"{sum(c - 1 for c in by_id.values()):,}",
        "events refused": f"{ingest.failed:,}",
    }
    for name, values in gaps.items():
        result[f"stage {name}: p50 / p99 s"] = f"{pct(values, 0.5):.3f} / {pct(values, 0.99):.3f}"
    return result


def park(url: str, args, n: int, env: dict[str, str], *, due: bool) -> dict[str, str]:
    """The timers run (`due` False) or the timers-coming-due run (`due` True)."""
    label = "due" if due else "timers"
    with tempfile.TemporaryDirectory() as workdir:
        Database(url).upgrade()
        receiver = Receiver(workdir)
        profile = args.profile and f"{args.profile}/{label}-{Path(url).name[:12]}"
        cluster = Cluster(url, workdir, env, profile)
        try:
            put_flow(cluster, flow(receiver.url, "2h"))
            before, objects = db_size(url), sqlite_objects(url)
            ingest = produce(cluster, n, CREDENTIALS["SLUICE_SITE_UUID"])
            while (waiting := count_waiting(url)) < n:
                if time.time() - ingest.first_send > args.stall * 10:
                    break
                time.sleep(max(0.5, n / 200_000))  # a count of a million rows is not free
            parked = time.time()
            result = {
                "sessions": f"{n:,}",
                "ingest events/s": f"{n / (ingest.last_answer - ingest.first_send):,.0f}",
                "seconds until all waiting": f"{parked - ingest.first_send:,.1f}",
                "sessions/s reaching the wait": f"{waiting / (parked - ingest.first_send):,.0f}",
            }
            if due:
                started = time.time()
                put_flow(cluster, flow(receiver.url, "1s"))
                receiver.wait_for(n, stall=args.stall)
                arrivals = receiver.arrivals()
                ids = Counter(webhook_id for _, webhook_id, _ in arrivals)
                last = max((at for at, _, _ in arrivals), default=float("nan"))
                result["due sessions/s (save → last webhook)"] = f"{n / (last - started):,.0f}"
                result["missing webhooks"] = f"{n - len(ids):,}"
                result["duplicate webhooks"] = f"{sum(c - 1 for c in ids.values()):,}"
            else:
                time.sleep(2)  # let the last batch's aftermath settle
                cpu = cluster.cpu_seconds()
                time.sleep(args.idle_seconds)
                idle = (cluster.cpu_seconds() - cpu) / args.idle_seconds
                result["idle CPU, % of a core"] = f"{idle * 100:.1f} %"
                result["RSS while waiting"] = f"{cluster.rss() / 2**20:,.0f} MB"
                result["disk per waiting session"] = f"{(db_size(url) - before) / n:,.0f} B"
                grown = Counter(sqlite_objects(url))
                grown.subtract(objects)
                for name, size in grown.most_common(8):
                    result[f"  of which {name}"] = f"{size / n:,.0f} B"
            result["peak RSS, all Sluice processes"] = f"{cluster.peak_rss / 2**20:,.0f} MB"
        finally:
            cluster.stop()
            receiver.stop()
    return result


def summarise_profiles(directory: str, top: int = 20) -> None:
    """Per profile, Sluice's functions with the most samples (inclusive: the function
    or what it calls), then the functions the samples were in (self), from py-spy's
    collapsed stacks."""
    for path in sorted(Path(directory).rglob("*.txt")):
        inclusive: Counter[str] = Counter()
        own: Counter[str] = Counter()
        total = 0
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            total += int(count)
            frames = [_function(frame) for frame in stack.split(";")]
            for frame in set(frames):
                inclusive[frame] += int(count)
            own[frames[-1]] += int(count)
        if not total:
            continue
        table = Table(title=f"{path.relative_to(directory)}: {total:,} samples holding the GIL")
        table.add_column("Sluice function")
        table.add_column("% incl.", justify="right")
        table.add_column("function the sample was in")
        table.add_column("% self", justify="right")
        ours = [(f, c) for f, c in inclusive.most_common() if f.startswith("sluice/")][:top]
        for (frame, count), (leaf, leaf_count) in zip(ours, own.most_common(top), strict=False):
            table.add_row(
                frame, f"{count * 100 / total:.1f}", leaf, f"{leaf_count * 100 / total:.1f}"
            )
        console.print(table)


def _function(frame: str) -> str:
    """`Worker.run_once (sluice/worker/loop.py:73)` → `sluice/worker/loop.py:Worker.run_once`."""
    name, _, where = frame.partition(" (")
    return f"{where.rstrip(')').rpartition(':')[0]}:{name}"


def show(title: str, results: dict[str, dict[str, str]]) -> None:
    if not results:
        return
    table = Table(title=title)
    table.add_column("")
    for name in results:
        table.add_column(name, justify="right")
    rows = list(dict.fromkeys(key for r in results.values() for key in r))
    for row in rows:
        table.add_row(row, *(r.get(row, "") for r in results.values()))
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20_000, help="visitors in the pipeline run")
    parser.add_argument("--timers-n", type=int, default=1_000_000)
    parser.add_argument("--due-n", type=int, default=100_000)
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--runs", default="pipeline,timers,due")
    parser.add_argument(
        "--synchronous", default="full,normal", help="SQLite settings the pipeline runs with"
    )
    parser.add_argument("--idle-seconds", type=float, default=60)
    parser.add_argument("--stall", type=float, default=60, help="give up after so long idle")
    parser.add_argument("--profile", help="a directory for py-spy profiles")
    args = parser.parse_args()
    runs = set(args.runs.split(","))
    scratch = {}
    if args.database in ("sqlite", "both"):
        scratch["SQLite"] = scratch_sqlite
    if args.database in ("postgresql", "both"):
        scratch["PostgreSQL"] = scratch_postgres
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, dict[str, str]]] = defaultdict(dict)
    for name, make in scratch.items():
        variants = {name: {}}
        if name == "SQLite":
            variants = {
                f"SQLite ({s.upper()})": {"SLUICE_SQLITE_SYNCHRONOUS": s}
                for s in args.synchronous.split(",")
            }
        if "pipeline" in runs:
            for label, env in variants.items():
                with make() as url:
                    slug = (
                        label.split()[0].lower()
                        + "-"
                        + (env.get("SLUICE_SQLITE_SYNCHRONOUS") or "")
                    )
                    results["pipeline"][label] = pipeline(url, slug.strip("-"), args, env)
        for run, n in (("timers", args.timers_n), ("due", args.due_n)):
            if run in runs:
                with make() as url:
                    results[run][name] = park(url, args, n, {}, due=run == "due")
    show("Pipeline: signed_up → tag → wait 2s → if → webhook", results["pipeline"])
    show("Timers: sessions parked on a 2-hour wait", results["timers"])
    show("Timers coming due: all parked sessions due at once", results["due"])
    if args.profile:
        summarise_profiles(args.profile)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--summarise"]:
        summarise_profiles(sys.argv[2])
    else:
        main()
