"""Long-running processes: `sluice serve` (HTTP plus an embedded worker) and
`sluice worker`. Signal handlers only set flags; the loops finish their batch."""

from __future__ import annotations

import logging
import signal
import threading

import uvicorn

from sluice.api.app import create_app
from sluice.service import Sluice

log = logging.getLogger("sluice")


def _logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def run_worker(app: Sluice, *, concurrency: int) -> None:
    _logging()
    worker = app.worker(batch_size=max(50, concurrency * 10))
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: worker.stop())
    worker.run_forever()


def run_server(app: Sluice, *, host: str, port: int, with_worker: bool) -> None:
    _logging()
    worker = app.worker() if with_worker else None
    thread = None
    if worker:
        thread = threading.Thread(target=worker.run_forever, name="sluice-worker", daemon=True)
        thread.start()
    print(f"Sluice is running at http://{host}:{port}/", flush=True)
    try:
        uvicorn.run(create_app(app), host=host, port=port, log_level="warning")
    finally:
        if worker:
            worker.stop()
            thread.join(timeout=30)
