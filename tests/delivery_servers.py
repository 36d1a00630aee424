"""Real servers on loopback for the delivery tests: an SMTP server (aiosmtpd) and an
HTTP server that receives webhooks, each answering from a script so a test can make
them fail, hang, drop the connection or talk nonsense.

They note the time of the test's clock when a request arrives, so a test can check
the spacing of attempts while the clock is fake.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import ssl
import struct
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from httpx import Headers

from sluice.clock import Clock


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made with the openssl command."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


# -- SMTP ---------------------------------------------------------------------------


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: email.message.EmailMessage
    at: datetime | None


class _MailHandler:
    def __init__(self, box: SmtpServer):
        self.box = box

    async def handle_DATA(self, server, session, envelope):
        answer = self.box.answers.pop(0) if self.box.answers else "250 OK"
        if answer == "drop":  # the connection goes away in the middle of the message
            session.transport = None
            server.transport.close()
            return "421 closing"
        if answer.startswith("sleep "):
            await asyncio.sleep(float(answer.split()[1]))
            answer = "250 OK"
        if answer.startswith("250"):
            parsed = email.message_from_bytes(
                envelope.original_content, policy=email.policy.default
            )
            at = self.box.clock.now() if self.box.clock else None
            self.box.received.append(Received(envelope.mail_from, envelope.rcpt_tos, parsed, at))
        else:
            self.box.refused += 1
        return answer


class SmtpServer:
    """An aiosmtpd server on loopback. `answers` are the replies to the next messages'
    DATA, in order ("451 …", "550 …", "drop", "sleep 2"); then "250 OK"."""

    def __init__(self, clock: Clock | None = None, **options):
        self.clock = clock
        self.answers: list[str] = []
        self.received: list[Received] = []
        self.refused = 0
        self.port = free_port()
        self.controller = Controller(
            _MailHandler(self), hostname="127.0.0.1", port=self.port, **options
        )

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *_) -> None:
        self.controller.stop()


def password_check(username: str, password: str):
    """An aiosmtpd authenticator that accepts one account."""

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login.decode(),
            auth_data.password.decode(),
        ) == (username, password)
        return AuthResult(success=ok)

    return authenticate


def server_tls(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


# -- HTTP ---------------------------------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    headers: Headers
    """Case-insensitive, as HTTP headers are."""
    body: bytes
    at: datetime | None


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # many deliveries connect at once


@dataclass
class WebhookServer:
    """An HTTP server on loopback. `answers` are the replies to the next requests, in
    order: a status code, or "hang" (no answer for a long time), "garbage" (bytes that
    are not HTTP), "huge" (500 with a body of 20 MB), "redirect:URL" (302 to URL);
    then 200."""

    clock: Clock | None = None
    answers: list = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    delay: float = 0.0
    release: threading.Event = field(default_factory=threading.Event)
    tls: ssl.SSLContext | None = None
    """Speak https with this server context."""

    def __post_init__(self):
        box = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                at = box.clock.now() if box.clock else None
                box.requests.append(
                    Request(self.command, self.path, Headers(self.headers.items()), body, at)
                )
                answer = box.answers.pop(0) if box.answers else 200
                if box.delay:
                    time.sleep(box.delay)
                box.answer(self, answer)

            do_GET = do_PUT = do_PATCH = do_DELETE = do_POST

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if self.tls:
            self.server.socket = self.tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]

    def url(self, path: str = "/hook") -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}{path}"

    def answer(self, handler: BaseHTTPRequestHandler, answer) -> None:
        try:
            if answer == "hang":
                self.release.wait(30)
                return
            if answer == "garbage":
                handler.wfile.write(b"\x00\x01 this is not HTTP \xff\r\n\r\n")
                handler.close_connection = True
                return
            if isinstance(answer, str) and answer.startswith("redirect:"):
                self._reply(handler, 302, b"", {"Location": answer.split(":", 1)[1]})
                return
            if answer == "huge":
                handler.send_response(500)
                handler.send_header("Content-Length", str(20 * 1024 * 1024))
                handler.end_headers()
                chunk = b"x" * 65536
                for _ in range(320):
                    handler.wfile.write(chunk)
                return
            self._reply(handler, int(answer), f"answer {answer}".encode())
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True

    @staticmethod
    def _reply(handler, status: int, body: bytes, headers: dict | None = None) -> None:
        handler.send_response(status)
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def __enter__(self) -> WebhookServer:
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def __exit__(self, *_) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


# -- TCP ----------------------------------------------------------------------------


class RawServer:
    """A TCP listener on loopback that misbehaves below HTTP or SMTP: `close` (accepts,
    reads, closes), `reset` (accepts, reads, resets), `hangup` and `abort` (accept,
    then close or reset at once), `silent` (accepts and says nothing), `full` (never accepts, and its queue
    of waiting connections is full, so connecting hangs)."""

    def __init__(self, mode: str):
        self.mode = mode
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        self.port = self.listener.getsockname()[1]
        self._fillers: list[socket.socket] = []
        self._held: list[socket.socket] = []

    def __enter__(self) -> RawServer:
        if self.mode == "full":  # the queue holds backlog + 1 = 1 connection on Linux
            for _ in range(2):
                filler = socket.socket()
                filler.setblocking(False)
                filler.connect_ex(("127.0.0.1", self.port))
                self._fillers.append(filler)
            time.sleep(0.1)
        else:
            threading.Thread(target=self._serve, daemon=True).start()
        return self

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            if self.mode == "silent":
                self._held.append(connection)
                continue
            if self.mode in ("close", "reset"):
                connection.recv(65536)
            if self.mode in ("reset", "abort"):  # SO_LINGER 0: close sends RST
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            connection.close()

    def __exit__(self, *_) -> None:
        for held in self._fillers + self._held:
            held.close()
        self.listener.close()
