"""`sluice worker --metrics-port`: a real worker process serves Prometheus metrics on
its port, and a port in use is one line before anything starts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

SLUICE = str(Path(sys.executable).parent / "sluice")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("0.0.0.0", 0))
        return probe.getsockname()[1]


def environment(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "SLUICE_DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}"}


def test_a_metrics_port_in_use_is_one_line_before_anything_starts(tmp_path):
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [SLUICE, "worker", "--metrics-port", str(port)],
            cwd=tmp_path,
            env=environment(tmp_path),
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert done.returncode == 1
    assert done.stderr == (
        f"error: metrics port {port} on 0.0.0.0 is in use; choose another with --metrics-port\n"
    )
    assert not (tmp_path / "s.db").exists()  # the database was not even opened


def test_the_same_from_the_environment_variable(tmp_path):
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**environment(tmp_path), "SLUICE_METRICS_PORT": str(port)}
        done = subprocess.run(
            [SLUICE, "worker"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30
        )
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: metrics port {port} on 0.0.0.0 is in use;")


def test_a_worker_serves_its_metrics_on_the_port(tmp_path):
    port = free_port()
    worker = subprocess.Popen(
        [SLUICE, "worker", "--metrics-port", str(port)],
        cwd=tmp_path,
        env=environment(tmp_path),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(200):
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/metrics")
                break
            except httpx.TransportError:
                time.sleep(0.05)
        assert response.status_code == 200
        assert "sluice_sessions_due" in response.text
    finally:
        worker.terminate()
        worker.wait(timeout=30)
