"""Everything the API adds to the application: request limits, error handling, the
Bento-compatible routes (`/api/v1`), the native routes (`/api`), the live streams,
and the OpenAPI document that describes them."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from sluice.api import (
    bento,
    broadcasts,
    docs,
    emails,
    errors,
    events,
    flows,
    hooks,
    segments,
    sessions,
    streams,
)
from sluice.api.limits import RequestLimits

DESCRIPTION = """\
Sluice's HTTP API. Two dialects:

- **Bento-compatible** under `/api/v1`: HTTP Basic with `publishable_key:secret_key`
  and `site_uuid` in the query or body; errors are `{"error": "…"}`.
- **Native** under `/api`: `Authorization: Bearer SECRET_KEY` (or the Basic pair);
  errors are `{"detail": "…"}`, validation errors 422 with `{"detail": [{loc, msg}]}`.

Bodies are limited to 5 MiB (413). Lists page with `limit` and a `cursor` taken from
the `Link` header.
"""


def install(app: FastAPI) -> None:
    app.description = DESCRIPTION
    app.add_middleware(RequestLimits)
    errors.install(app)
    modules = (bento, events, flows, hooks, segments, broadcasts, emails, sessions, streams)
    for module in modules:
        app.include_router(module.router)
    docs.install(app)
    _close_streams_at_shutdown(app)


def _close_streams_at_shutdown(app: FastAPI) -> None:
    """Stop the process's listener of live streams when the application stops, within
    whatever lifespan the application already has."""
    previous = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application):
        async with previous(application) as state:
            try:
                yield state
            finally:
                wakeups = getattr(app.state, "wakeups", None)
                if wakeups is not None:
                    wakeups.close()

    app.router.lifespan_context = lifespan
