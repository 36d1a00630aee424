"""Scale-out on PostgreSQL: one API process and three workers share a database; a
worker is killed with SIGKILL mid-run. Every session completes, every webhook
arrives, repeats carry the same webhook-id and stay rare, and no timeline shows a
step twice."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import sqlalchemy as sa
from standardwebhooks import Webhook

from conftest import eventually, truncate
from sluice.store.db import Database
from sluice.store.schema import sessions, timeline

SLUICE = str(Path(sys.executable).parent / "sluice")
SECRET = "whsec_" + "c2x1aWNlLXNjYWxlLW91dC10ZXN0LXNlY3JldA=="
CREDENTIALS = {
    "SLUICE_SITE_UUID": "3f0c8a3e-0000-4000-8000-000000000001",
    "SLUICE_PUBLISHABLE_KEY": "pk_scale",
    "SLUICE_SECRET_KEY": "sk_scale",
    "SLUICE_ADMIN_PASSWORD": "admin-password",
    "SLUICE_SIGNING_KEY": "signing",
    "SLUICE_WEBHOOK_SECRET": SECRET,
    "SLUICE_WEBHOOK_ALLOW_PRIVATE": "true",
    "SLUICE_LEASE_SECONDS": "3",
}
VISITORS = 3000  # repeats are bounded by what the killed dispatcher had in flight


class Receiver(ThreadingHTTPServer):
    """Records every webhook it is sent, after checking its signature."""

    daemon_threads = True
    request_queue_size = 1024  # hundreds of deliveries arrive at once

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received: list[tuple[str, int]] = []
        self.bad_signatures = 0
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers["Content-Length"])
        body = self.rfile.read(length)
        if len(body) < length:
            return  # the sender died mid-request: nothing was delivered
        try:
            payload = Webhook(SECRET).verify(body, dict(self.headers))
            entry = (self.headers["webhook-id"], payload["session"]["id"])
        except Exception:
            entry = None
        with self.server.lock:
            if entry:
                self.server.received.append(entry)
            else:
                self.server.bad_signatures += 1
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_api_and_three_workers_survive_a_killed_worker(postgres_url):
    truncate(postgres_url)
    receiver = Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    env = {**os.environ, **CREDENTIALS, "SLUICE_DATABASE_URL": postgres_url}
    port = free_port()
    api = subprocess.Popen(
        [SLUICE, "serve", "--no-worker", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    workers = [
        subprocess.Popen([SLUICE, "worker"], env=env, stderr=subprocess.DEVNULL) for _ in range(3)
    ]
    base = f"http://127.0.0.1:{port}"
    auth = (CREDENTIALS["SLUICE_PUBLISHABLE_KEY"], CREDENTIALS["SLUICE_SECRET_KEY"])
    db = Database(postgres_url)
    try:
        eventually(lambda: _up(base), 30, every=0.25)
        flow = {
            "key": "scale",
            "trigger": {"event": "go"},
            "entry": "every_time",
            "steps": [
                {
                    "id": "notify",
                    "webhook": {"url": f"http://127.0.0.1:{receiver.server_port}/hook"},
                },
                {"id": "pause", "wait": "1s"},
                {"id": "done", "tag": {"add": ["done"]}},
            ],
        }
        bearer = {"Authorization": f"Bearer {CREDENTIALS['SLUICE_SECRET_KEY']}"}
        assert httpx.put(f"{base}/api/flows/scale", json=flow, headers=bearer).status_code in (
            200,
            201,
        )
        assert httpx.post(f"{base}/api/flows/scale/on", headers=bearer).status_code == 200
        for offset in range(0, VISITORS, 500):
            events = [
                {"type": "go", "email": f"v{n}@example.com"} for n in range(offset, offset + 500)
            ]
            response = httpx.post(
                f"{base}/api/v1/batch/events",
                params={"site_uuid": CREDENTIALS["SLUICE_SITE_UUID"]},
                json={"events": events},
                auth=auth,
                timeout=60,
            )
            assert response.json()["results"] == 500
            if offset == VISITORS // 2:
                workers[0].send_signal(signal.SIGKILL)  # mid-run, whatever it holds
        assert eventually(lambda: _completed(db) == VISITORS, 180, every=0.25), _diagnose(db)
        ids = Counter(webhook_id for webhook_id, _ in receiver.received)
        per_session = {session for _, session in receiver.received}
        assert receiver.bad_signatures == 0
        assert len(per_session) == VISITORS  # every webhook arrived
        assert len(ids) == VISITORS  # one webhook-id per session: repeats reuse it
        repeats = len(receiver.received) - VISITORS
        assert repeats <= VISITORS // 100, repeats
        with db.read() as conn:
            steps = Counter(
                conn.execute(
                    sa.select(timeline.c.session_id, timeline.c.step).where(
                        timeline.c.kind == "step"
                    )
                ).all()
            )
        assert len(steps) == VISITORS * 3 and set(steps.values()) == {1}
    finally:
        for process in [api, *workers]:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in [api, *workers]:
            process.wait(timeout=30)
        receiver.shutdown()
        db.dispose()


def _up(base: str) -> bool:
    try:
        return httpx.get(f"{base}/readyz").status_code == 200
    except httpx.TransportError:
        return False


def _completed(db: Database) -> int:
    with db.read() as conn:
        return conn.execute(
            sa.select(sa.func.count()).where(sessions.c.status == "completed")
        ).scalar_one()


def _diagnose(db: Database) -> str:
    with db.read() as conn:
        by_place = conn.execute(
            sa.select(sessions.c.status, sessions.c.step, sa.func.count()).group_by(
                sessions.c.status, sessions.c.step
            )
        ).all()
        outbox = conn.execute(
            sa.text(
                "SELECT state, attempts, count(*), min(next_attempt_at), max(last_error) FROM deliveries GROUP BY state, attempts"
            )
        ).all()
    return f"sessions {by_place}; deliveries {outbox}"
