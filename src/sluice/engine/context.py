"""The template context of SPEC §2.5, built from plain values."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

VISITOR_NAMES = ("email", "uuid", "tags", "fields", "subscribed", "created_at", "segments")


def visitor_view(
    *,
    email: str,
    uuid: str,
    fields: dict,
    tags: list,
    subscribed: bool,
    created_at: datetime,
    segments: Sequence[str] = (),
) -> dict[str, Any]:
    """`visitor`: its own names, plus every field directly unless it collides with one.
    `segments`: the keys of the segments they are in (store/segments.py), where the
    caller read them."""
    view = {k: v for k, v in fields.items() if k not in VISITOR_NAMES}
    view.update(
        email=email,
        uuid=uuid,
        tags=list(tags),
        fields=dict(fields),
        subscribed=subscribed,
        created_at=created_at.isoformat(),
        segments=list(segments),
    )
    return view


def template_context(
    *,
    visitor: dict[str, Any],
    origin: dict[str, Any],
    event: dict[str, Any] | None = None,
    last_event: dict[str, Any] | None = None,
    flow: dict[str, Any] | None = None,
    session: dict[str, Any] | None = None,
    now: datetime,
    unsubscribe_url: str | None = None,
) -> dict[str, Any]:
    context = {
        "visitor": visitor,
        "event": event if event is not None else origin,
        "origin": origin,
        "last_event": last_event,
        "flow": flow or {},
        "session": session or {},
        "now": now.isoformat(),
    }
    if unsubscribe_url is not None:
        context["unsubscribe_url"] = unsubscribe_url
    return context
