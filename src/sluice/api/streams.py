"""Live streams (Server-Sent Events): a session's timeline as it is written, and the
activity of the whole installation (events and timeline entries) for the UI.

A stream reads the `timeline` (and `events`) table by id, whichever process wrote the
rows: polling is the guarantee. On PostgreSQL one listener per process hears
`NOTIFY sluice_timeline`, sent by every transaction that writes timeline entries or
events, and wakes the streams at once. A stream holds no database connection while it
waits (each read borrows one from the pool and gives it back), and it ends when the
client goes away: Starlette cancels it on the disconnect.

Every message carries an `id:` so that a client that reconnects with `Last-Event-ID`
continues where it left off.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from sluice.api.auth import require_key, sluice_of
from sluice.api.docs import errors_doc
from sluice.api.query import one_value_each
from sluice.api.sessions import SessionId
from sluice.service import Sluice
from sluice.store.notify import TIMELINE_CHANNEL
from sluice.store.sessions import MAX_ID
from sluice.worker.listener import Listener

router = APIRouter(
    prefix="/api", tags=["Streams"], dependencies=[Depends(require_key), Depends(one_value_each)]
)

KEEPALIVE = 15.0
"""Seconds between comments sent to an idle stream, so that proxies keep it open."""
_SSE = {
    200: {
        "description": "`text/event-stream`: one message per entry.",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}
_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class Wakeups:
    """Wakes the open streams of this process when something may have been written."""

    def __init__(self, sluice: Sluice):
        self.sluice = sluice
        self.poll = 0.5 if sluice.db.is_sqlite else 2.0
        self._waiting: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._lock = threading.Lock()
        self._listener: Listener | None = None

    @contextmanager
    def subscribe(self) -> Iterator[asyncio.Event]:
        event = asyncio.Event()
        entry = (asyncio.get_running_loop(), event)
        with self._lock:
            self._waiting.add(entry)
            if self._listener is None and not self.sluice.db.is_sqlite:
                self._listener = Listener(
                    self.sluice.db.engine.url.render_as_string(hide_password=False),
                    self.wake,
                    channel=TIMELINE_CHANNEL,
                ).start()
        try:
            yield event
        finally:
            with self._lock:
                self._waiting.discard(entry)

    def wake(self) -> None:
        """Thread-safe: set every waiting stream's event in its own loop."""
        with self._lock:
            waiting = list(self._waiting)
        for loop, event in waiting:
            if not loop.is_closed():
                loop.call_soon_threadsafe(event.set)

    def close(self) -> None:
        if self._listener is not None:
            self._listener.stop()


def wakeups_of(request: Request) -> Wakeups:
    state = request.app.state
    if getattr(state, "wakeups", None) is None:
        state.wakeups = Wakeups(sluice_of(request))
    return state.wakeups


def message(event_id: str, name: str, data: Any) -> bytes:
    """One Server-Sent Event: `data` as JSON."""
    return b"id: %s\nevent: %s\ndata: %s\n\n" % (
        event_id.encode(),
        name.encode(),
        orjson.dumps(data),
    )


async def _follow(wakeups: Wakeups, read, position: Any) -> AsyncIterator[bytes]:
    """Read new rows after `position`, send them, and wait for the next wake-up or poll;
    `read(position)` returns `(messages, new_position)`."""
    quiet = 0.0
    with wakeups.subscribe() as woken:
        yield b": connected\n\n"
        while True:
            woken.clear()  # before reading: a wake-up during the read is kept
            messages, position = await run_in_threadpool(read, position)
            for message in messages:
                yield message
            if messages:
                quiet = 0.0
                continue
            try:
                await asyncio.wait_for(woken.wait(), timeout=wakeups.poll)
            except TimeoutError:
                quiet += wakeups.poll
                if quiet >= KEEPALIVE:
                    quiet = 0.0
                    yield b": keep-alive\n\n"


def _last_event_id(header: str | None) -> str | None:
    return header.strip() if header and header.strip() else None


def start_after(after: int | None, last_event_id: str | None) -> int:
    """Where a session's stream starts: after the entry `after`, else after the one
    the reconnecting browser names in `Last-Event-ID`, else from the start."""
    if after is not None:
        return after
    given = _last_event_id(last_event_id)
    return int(given) if given and given.isdigit() and len(given) < 19 else 0


def sse(request: Request, read, start: Any) -> StreamingResponse:
    """A stream of what `read(position)` returns, `(messages, new_position)`, from
    `start` on, woken as new rows are written."""
    body = _follow(wakeups_of(request), read, start)
    return StreamingResponse(body, media_type="text/event-stream", headers=_HEADERS)


@router.get(
    "/sessions/{session_id}/stream",
    response_class=StreamingResponse,
    responses=_SSE | errors_doc(401, 404, 422),
)
async def session_stream(
    request: Request,
    session_id: SessionId,
    after: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
    last_event_id: Annotated[str | None, Header(max_length=40)] = None,
) -> StreamingResponse:
    """Server-Sent Events: the session's timeline entries (`event: timeline`, data
    `{at, step, kind, data}`, `id:` the entry's id), the whole timeline first, then
    each new entry as it is written. `after` (or `Last-Event-ID`) starts after an id."""
    sluice = sluice_of(request)
    await run_in_threadpool(sluice.session, session_id)  # 404 for an unknown session
    start = start_after(after, last_event_id)

    def read(position: int) -> tuple[list[bytes], int]:
        entries = sluice.timeline_since(session_id, position)
        messages = [message(str(i), "timeline", entry) for i, entry in entries]
        return messages, entries[-1][0] if entries else position

    return sse(request, read, start)


@router.get(
    "/activity/stream",
    response_class=StreamingResponse,
    responses=_SSE | errors_doc(401, 422),
)
async def activity_stream(
    request: Request,
    last_event_id: Annotated[str | None, Header(max_length=60)] = None,
) -> StreamingResponse:
    """Server-Sent Events: everything that happens from now on, for the Activity page:
    accepted events (`event: event`, with the visitor's email) and timeline entries of
    every session (`event: timeline`, with `session_id`, `flow` and `email`)."""
    sluice = sluice_of(request)
    start = activity_position(_last_event_id(last_event_id))
    if start is None:
        start = await run_in_threadpool(sluice.latest_activity)

    def read(position: tuple[int, int]) -> tuple[list[bytes], tuple[int, int]]:
        new_events, entries = sluice.activity_since(*position)
        last_event = new_events[-1]["id"] if new_events else position[0]
        last_entry = entries[-1]["id"] if entries else position[1]
        messages = []
        for event in new_events:
            messages.append(message(f"e{event['id']}.t{position[1]}", "event", event))
        for entry in entries:
            messages.append(message(f"e{last_event}.t{entry['id']}", "timeline", entry))
        return messages, (last_event, last_entry)

    return sse(request, read, start)


def activity_position(given: str | None) -> tuple[int, int] | None:
    """`e12.t34` → (12, 34); None for anything else."""
    found = _ACTIVITY_POSITION.fullmatch(given or "")
    return (int(found[1]), int(found[2])) if found else None


# ASCII digits only (`\d` would take `²`, which int() refuses), fewer than 19: an id.
_ACTIVITY_POSITION = re.compile(r"e([0-9]{1,18})\.t([0-9]{1,18})")
