"""A real `sluice serve` against clients that send their request slowly ("slowloris"),
and what its first start leaves on disk. Raw sockets: an HTTP client library would
send each request at once."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

SLUICE = str(Path(sys.executable).parent / "sluice")
DEADLINE = 2.0
"""SLUICE_REQUEST_HEADER_TIMEOUT and SLUICE_REQUEST_BODY_TIMEOUT of the server."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`sluice serve` on a fresh SQLite file; yields (base url, database path)."""
    home = tmp_path_factory.mktemp("serve")
    port = free_port()
    env = {
        **os.environ,
        "SLUICE_DATABASE_URL": f"sqlite:///{home / 'sluice.db'}",
        "SLUICE_REQUEST_HEADER_TIMEOUT": str(DEADLINE),
        "SLUICE_REQUEST_BODY_TIMEOUT": str(DEADLINE),
    }
    process = subprocess.Popen(
        [SLUICE, "serve", "--port", str(port), "--no-worker"],
        cwd=home,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        assert "Sluice is running at" in process.stdout.readline()
        for _ in range(200):
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        yield base, home / "sluice.db"
    finally:
        process.terminate()
        process.wait(timeout=30)


def trickle(base: str, head: bytes, body: bytes = b"") -> tuple[bytes, float]:
    """Send `head` at once unless it is the part to trickle, then one byte a second
    (of `body`, or of `head` when there is no body); returns what the server answered
    and the seconds until it closed the connection."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as client:
        started = time.monotonic()
        slow = body if body else head
        if body:
            client.sendall(head)
        client.settimeout(1.0)
        answer = b""
        for byte in slow:
            try:
                client.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            try:
                answer = client.recv(65536)
            except TimeoutError:
                continue  # a second has passed: the next byte
            break
        client.settimeout(5.0)
        while chunk := client.recv(65536):
            answer += chunk
        return answer, time.monotonic() - started


HEAD = b"GET /healthz HTTP/1.1\r\nHost: sluice.test\r\nUser-Agent: slowloris\r\n" + b"X" * 60


def test_a_client_sending_its_headers_byte_by_byte_is_cut_off(server):
    base, _ = server
    answer, seconds = trickle(base, HEAD)
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert answer.endswith(b"The request was not received in time.\n")
    assert DEADLINE - 0.5 < seconds < DEADLINE + 2


def test_a_client_sending_its_body_byte_by_byte_is_cut_off(server):
    base, _ = server
    body = b'{"events": [' + b" " * 200 + b"]}"
    head = (
        b"POST /api/v1/events HTTP/1.1\r\nHost: sluice.test\r\n"
        b"Content-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
    )
    answer, seconds = trickle(base, head, body)
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert DEADLINE - 0.5 < seconds < DEADLINE + 2


def test_other_clients_are_served_while_slow_ones_hang_on(server):
    base, _ = server
    host, port = base.removeprefix("http://").split(":")
    slow = [socket.create_connection((host, int(port))) for _ in range(20)]
    try:
        for connection in slow:
            connection.sendall(HEAD[:10])
        started = time.monotonic()
        with httpx.Client(base_url=base) as client:
            for _ in range(5):
                assert client.get("/healthz").json() == {"status": "ok"}
        assert time.monotonic() - started < 1.0
    finally:
        for connection in slow:
            connection.close()


def test_a_kept_alive_connection_gets_the_header_deadline_again(server):
    """After a response, the next request on the same connection has its own
    deadline, counted from that response: a quick client is never cut off."""
    base, _ = server
    with httpx.Client(base_url=base) as client:
        for _ in range(3):
            assert client.get("/healthz").status_code == 200
            time.sleep(DEADLINE / 2)


def test_headers_larger_than_64_kib_are_refused(server):
    base, _ = server
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as client:
        client.sendall(b"GET /healthz HTTP/1.1\r\nHost: sluice.test\r\n")
        try:
            for _ in range(20):
                client.sendall(b"X-Padding: " + b"x" * 8000 + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        client.settimeout(5.0)
        answer = client.recv(65536)
    assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")


def send_header(base: str, size: int) -> bytes:
    """One request with a single `size`-byte header, sent at once; the answer."""
    host, port = base.removeprefix("http://").split(":")
    head = b"GET /healthz HTTP/1.1\r\nHost: sluice.test\r\nX-Padding: "
    with socket.create_connection((host, int(port))) as client:
        # The server reads what follows a refused request: the whole send succeeds.
        client.sendall(head + b"x" * size + b"\r\nConnection: close\r\n\r\n")
        client.settimeout(5.0)
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize("size", [70_000, 100_000, 131_000])
def test_one_header_over_64_kib_is_refused_even_when_it_arrives_whole(server, size):
    """The chunk that completes the headers counts towards the limit too."""
    answer = send_header(server[0], size)
    assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")


def test_one_header_under_64_kib_is_served(server):
    answer = send_header(server[0], 60_000)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert answer.endswith(b'{"status":"ok"}')


def test_the_database_file_and_its_wal_are_readable_by_the_owner_only(server):
    """The file holds the signing key: whoever reads it could forge a login."""
    _, database = server
    for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
        assert path.exists(), path
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_metrics_answer_a_scraper_on_this_machine(server):
    base, _ = server
    response = httpx.get(f"{base}/metrics")
    assert response.status_code == 200
    assert "sluice_sessions_due" in response.text
