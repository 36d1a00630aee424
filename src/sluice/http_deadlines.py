"""Deadlines for slow clients, at the HTTP protocol level of `sluice serve`.

uvicorn closes a connection idle between requests (`timeout_keep_alive`), but a client
that sends its request slowly (one byte a second: "slowloris") would hold its
connection for ever, and enough of them take every connection the server has. An ASGI
middleware cannot help: it runs only once the headers are in. So the HTTP protocol
class uvicorn uses (httptools when installed, else h11) is extended here:

- The request line and headers must be in within `header_timeout` seconds of the
  connection opening, or of the previous response ending on a kept-alive connection,
  and be at most `MAX_HEADER_BYTES` long.
- The body must be in within `body_timeout` seconds of the headers.

A late or oversized request is answered 408 (or 431) and its connection closed (a
connection that sent nothing is just closed); the route, if it was waiting for the
body, sees the client go away. Nothing limits how
long a response takes (live streams go on for hours). See docs/deployment.md.
"""

from __future__ import annotations

import asyncio
import re

from uvicorn.protocols.http.auto import AutoHTTPProtocol

MAX_HEADER_BYTES = 64 * 1024
"""The request line and headers together; httptools has no limit of its own."""


LINGER_SECONDS = 2.0
"""How long a refused connection's further bytes are read and dropped before closing."""

_HEADER_END = re.compile(rb"\r?\n\r?\n")
"""The blank line ending the headers (HTTP/1.1 parsers accept a bare LF too)."""

_EXPLANATIONS = {
    408: b"The request was not received in time.\n",
    431: b"The request line and headers are too large.\n",
}


class RequestDeadlines:
    """Mixed in before a uvicorn HTTP protocol class (see `protocol_class`)."""

    header_timeout: float
    body_timeout: float
    _timer: asyncio.TimerHandle | None = None
    _request = None  # the last request cycle whose headers arrived
    _header_bytes = 0
    _refused = False
    _header_tail = b""  # the last bytes counted, for a blank line split across chunks

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm(self.header_timeout)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # the rest of a refused request: read and dropped (see `_refuse`)
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            # Waiting for a request's headers: count them, up to and including the
            # blank line that ends them, before the parser sees them (the chunk that
            # completes the headers counts too).
            seen = self._header_tail + data
            end = _HEADER_END.search(seen)
            counted = (end.end() - len(self._header_tail)) if end else len(data)
            self._header_bytes += counted
            self._header_tail = b"" if end else seen[-3:]
            if self._header_bytes > MAX_HEADER_BYTES:
                self._refuse(431, "Request Header Fields Too Large")
                return
        super().data_received(data)
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and cycle is not self._request:
            # The headers of a new request are in: the body's deadline starts.
            self._request, self._header_bytes, self._header_tail = cycle, 0, b""
            self._arm(self.body_timeout)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._header_bytes, self._header_tail = 0, b""
        self._arm(self.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, seconds: float) -> None:
        self._disarm()
        if not self.transport.is_closing():
            self._timer = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        if self.transport.is_closing() or self.transport.get_protocol() is not self:
            return  # closed, or upgraded to another protocol
        cycle = self.cycle
        waiting_for_headers = cycle is None or cycle.response_complete
        waiting_for_body = not waiting_for_headers and cycle.more_body
        if waiting_for_headers and self._header_bytes == 0:
            self.transport.close()  # not a byte of a request: nothing to answer
        elif waiting_for_headers or (waiting_for_body and not cycle.response_started):
            self._refuse(408, "Request Timeout")

    def _refuse(self, status: int, reason: str) -> None:
        """Answer and close, outside any request cycle (no route has answered yet)."""
        self._disarm()
        body = _EXPLANATIONS[status]
        head = (
            f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        )
        self.transport.write(head.encode() + body)
        # Closing with the client's bytes still unread would send a TCP reset, which
        # can discard the answer before the client reads it: end our side, drop what
        # still comes, and close after a moment (nginx's "lingering close").
        self._refused = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self._timer = self.loop.call_later(LINGER_SECONDS, self.transport.close)
        else:
            self.transport.close()


def protocol_class(*, header_timeout: float, body_timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol class with these deadlines (seconds); give it to
    `uvicorn.run(http=...)`."""
    return type(
        "SluiceHTTPProtocol",
        (RequestDeadlines, AutoHTTPProtocol),
        {"header_timeout": header_timeout, "body_timeout": body_timeout},
    )
