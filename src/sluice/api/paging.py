"""Paging of list endpoints: `limit` (default 100, at most 1000) and an opaque
`cursor`, returned in the `Link` header (`rel="next"`) while more may follow.

A cursor holds the id below which the next page starts (lists are newest first), so a
page never repeats or skips rows that were written meanwhile.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import Query, Request, Response

from sluice.api.errors import invalid

Limit = Annotated[int, Query(ge=1, le=1000, description="Items per page (at most 1000).")]
Cursor = Annotated[
    str | None, Query(max_length=100, description="From the `Link` header of the last page.")
]
_PREFIX = "before:"


def read_cursor(cursor: str | None) -> int | None:
    """The id a cursor stands for; 422 for a cursor this server did not make."""
    if cursor is None:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if text.startswith(_PREFIX):
            value = int(text[len(_PREFIX) :])
            if 0 < value < 2**63:
                return value
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise invalid([{"loc": "query.cursor", "msg": "not a cursor from a Link header"}])


def make_cursor(before_id: int) -> str:
    return base64.urlsafe_b64encode(f"{_PREFIX}{before_id}".encode()).decode().rstrip("=")


def link_next(request: Request, response: Response, rows: list[dict], limit: int) -> None:
    """Set `Link: <…?cursor=…>; rel="next"` when the page is full."""
    if len(rows) == limit and rows:
        url = request.url.include_query_params(cursor=make_cursor(rows[-1]["id"]))
        response.headers["Link"] = f'<{url}>; rel="next"'
