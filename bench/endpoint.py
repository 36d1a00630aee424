"""The webhook endpoint of the benchmarks: a keep-alive HTTP/1.1 server on loopback,
as a production receiver would be, meant to run in a process of its own."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def serve(
    port: int,
    ready,
    on_body: Callable[..., Awaitable[None]],
    *,
    with_head: bool = False,
) -> None:
    """Answer every request `200 ok` once `on_body(body)` (with `with_head`:
    `on_body(body, head)`, the request line and headers as bytes) has returned; set
    `ready` when listening."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length)
                await (on_body(body, head) if with_head else on_body(body))
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    ready.set()
    async with server:
        await server.serve_forever()
