"""Limits enforced before a request reaches a route (SPEC §6).

- A body over 5 MiB is refused with 413 before anything parses it: at once when its
  `Content-Length` says so, else as soon as the streamed body passes the limit.
- A path or query string holding a NUL character is refused with 400: no stored text
  may contain one (PostgreSQL refuses it), and no legitimate request needs it.
"""

from __future__ import annotations

import html

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY = 5 * 1024 * 1024


class RequestLimits:
    def __init__(self, app: ASGIApp, max_body: int = MAX_BODY):
        self.app, self.max_body = app, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope["path"] or b"%00" in scope["query_string"].lower():
            await _refuse(scope, send, 400, "the path or query contains a NUL character")
            return
        length = _content_length(scope)
        if length is not None and length > self.max_body:
            await _refuse(scope, send, 413, _too_large(self.max_body))
            return
        if scope["method"] in ("GET", "HEAD", "OPTIONS") and not length:
            await self.app(scope, receive, send)
            return
        # Read the whole body here (it is at most the limit), so that no route ever
        # sees more; the route then reads it from memory.
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await _refuse(scope, send, 413, _too_large(self.max_body))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _too_large(limit: int) -> str:
    return f"the request body is larger than {limit // (1024 * 1024)} MiB"


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(scope: Scope, send: Send, status: int, message: str) -> None:
    """The refusal as JSON (`error` for Bento's API, else `detail`); a browser asking
    for one of the UI's pages gets it as a page of text instead."""
    if _wants_page(scope):
        body, kind = _PAGE.format(message=html.escape(message)).encode(), b"text/html"
    else:
        key = "error" if scope["path"].startswith("/api/v1/") else "detail"
        body, kind = orjson.dumps({key: message}), b"application/json"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", kind),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


_PAGE = (
    '<!doctype html><html lang="en"><meta charset="utf-8"><title>Not accepted</title>'
    "<p>Sluice could not use this request: {message}.</p>"
    '<p><a href="/">Back to Sluice</a></p></html>'
)


def _wants_page(scope: Scope) -> bool:
    path = scope["path"]
    if path.startswith(("/api", "/ui/")):
        return False
    accept = dict(scope["headers"]).get(b"accept", b"")
    return b"text/html" in accept
