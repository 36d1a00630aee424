"""Long-running processes: `sluice serve` (HTTP plus an embedded worker) and
`sluice worker`. Signal handlers only set flags; the loops finish their batch."""

from __future__ import annotations

import errno
import gc
import logging
import signal
import socket
import threading
from wsgiref.simple_server import WSGIRequestHandler

import uvicorn
from prometheus_client import make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from sluice import http_deadlines, metrics
from sluice.api.app import create_app
from sluice.delivery.dispatcher import Dispatcher
from sluice.service import Sluice
from sluice.worker.loop import Worker

log = logging.getLogger("sluice")

DISPATCHER_DRAIN_SECONDS = 15
"""How long a stopping process waits for its dispatcher, which gives the attempts in
flight 10 seconds to end; an attempt cut short is made again once its lease runs out."""


STREAMS_DRAIN_SECONDS = 3
"""How long a stopping server lets open requests (live streams) finish."""

_LABELS = {
    "site_uuid": "site uuid",
    "publishable_key": "publishable key",
    "secret_key": "secret key",
    "admin_password": "admin password",
    "webhook_secret": "webhook secret",
}


def print_new_credentials(generated: dict[str, str]) -> None:
    """Credentials generated on this first start: shown now, and never again (the
    secret key and the admin password are kept only as hashes)."""
    if not generated:
        return
    print("Generated on first start; the secret key and the admin password are shown", flush=True)
    print("only this once (they are stored hashed):", flush=True)
    for name, value in generated.items():
        print(f"  {_LABELS[name] + ':':<17} {value}", flush=True)
    if "admin_password" in generated:
        print("  (web UI user: admin; change it with `sluice admin set-password`)", flush=True)
    if "secret_key" in generated:
        print("  (replace the secret key with `sluice keys rotate`)", flush=True)


class CannotListen(OSError):
    """The server's address cannot be bound: the port is in use, the host is not one
    of this machine's, or a port below 1024 needs privileges."""


def listen(host: str, port: int, *, flag: str = "--port", what: str = "port") -> socket.socket:
    """A TCP socket bound to `host`:`port`, for uvicorn (or the metrics server) to
    serve on. Bound before the process starts anything else, so a port in use is one
    clear error at once, naming `what` and the `flag` that chooses it; raises
    CannotListen."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as error:
        raise CannotListen(f"cannot resolve host {host!r}: {error.strerror}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
    try:
        sock.bind(address)
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise CannotListen(
                f"{what} {port} on {host} is in use; choose another with {flag}"
            ) from None
        raise CannotListen(f"cannot listen on {host}:{port}: {error.strerror}") from None
    return sock


def listening_url(sock: socket.socket) -> str:
    """`http://host:port` of a bound socket, for people and links to reach it: a
    wildcard address (0.0.0.0, ::) is named by this machine's loopback address."""
    host, port = sock.getsockname()[:2]
    host = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(host, host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _settle_garbage_collector() -> None:
    """Everything built so far lives as long as the process: move it out of the
    collector's sight, and collect young objects less often. A batch of a thousand
    events makes tens of thousands of short-lived objects; with the defaults the
    collector would scan the whole application again and again (about 10 % of the
    ingest time, see docs/benchmarks.md)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


def _logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def _start_dispatcher(
    app: Sluice, worker: Worker, *, in_flight: int
) -> tuple[Dispatcher, threading.Thread]:
    """The delivery dispatcher, in a thread with its own event loop, woken by the
    worker beside it when deliveries are written, and waking it when outcomes are."""
    try:
        dispatcher = app.dispatcher(in_flight=in_flight)
    except ValueError as error:  # e.g. a malformed SLUICE_SMTP_URL
        raise SystemExit(f"error: {error}") from error
    worker.on_new_deliveries = dispatcher.wake
    dispatcher.on_outcomes = worker.wake
    thread = threading.Thread(target=dispatcher.run_forever, name="sluice-dispatcher", daemon=True)
    thread.start()
    return dispatcher, thread


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args) -> None:
        pass  # a scrape every few seconds is not worth a log line


def _serve_metrics(app: Sluice, sock: socket.socket) -> None:
    """Prometheus metrics of `app` on the already bound `sock` (see `listen`), from a
    daemon thread: prometheus_client's own server would bind the port itself, late."""
    server = ThreadingWSGIServer(sock.getsockname()[:2], _QuietHandler, bind_and_activate=False)
    server.socket.close()
    server.socket, server.server_address = sock, sock.getsockname()
    server.server_name, server.server_port = server.server_address[:2]
    server.setup_environ()
    server.server_activate()
    server.set_app(make_wsgi_app(metrics.registry_for(app.db, app.clock.now)))
    threading.Thread(target=server.serve_forever, name="sluice-metrics", daemon=True).start()


def run_worker(
    app: Sluice, *, concurrency: int, metrics_socket: socket.socket | None = None
) -> None:
    _logging()
    if metrics_socket is not None:
        _serve_metrics(app, metrics_socket)
    worker = app.worker(batch_size=max(50, concurrency * 10))
    dispatcher, dispatching = _start_dispatcher(app, worker, in_flight=concurrency * 50)

    def stop(*_) -> None:
        worker.stop()
        dispatcher.stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    worker.run_forever()
    dispatcher.stop()
    dispatching.join(timeout=DISPATCHER_DRAIN_SECONDS)


def run_server(app: Sluice, *, sock: socket.socket, with_worker: bool) -> None:
    """Serve HTTP on `sock` (from `listen`) until SIGINT or SIGTERM."""
    _logging()
    worker = app.worker() if with_worker else None
    thread = dispatcher = dispatching = None
    if worker:
        thread = threading.Thread(target=worker.run_forever, name="sluice-worker", daemon=True)
        thread.start()
        dispatcher, dispatching = _start_dispatcher(app, worker, in_flight=500)
    generated = app.credentials.ensure()
    print(f"Sluice is running at {listening_url(sock)}/", flush=True)
    print_new_credentials(generated)
    web = create_app(app)
    _settle_garbage_collector()
    # Slow clients: see http_deadlines (uvicorn itself only times out idle connections).
    protocol = http_deadlines.protocol_class(
        header_timeout=app.settings.request_header_timeout,
        body_timeout=app.settings.request_body_timeout,
    )
    config = uvicorn.Config(
        web,
        http=protocol,
        log_level="warning",
        # Open live streams must not hold a stopping server for ever.
        timeout_graceful_shutdown=STREAMS_DRAIN_SECONDS,
    )
    # uvicorn restores the handlers it found and raises the signal it caught again once
    # it has stopped: these make that a no-op, so Ctrl-C (SIGINT) drains and exits 0 as
    # SIGTERM does, instead of a KeyboardInterrupt (click's "Aborted!", exit 1).
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        if worker:
            worker.stop()
            dispatcher.stop()
            thread.join(timeout=30)
            dispatching.join(timeout=DISPATCHER_DRAIN_SECONDS)
