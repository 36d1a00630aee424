"""What the pages read that the facade does not already offer: the figures of the
flows list, sessions per step, visitor search and the newest activity. Each is a few
indexed queries, so that pages stay fast with millions of sessions."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sluice import health, stats, views
from sluice.records import UNFINISHED
from sluice.store import flows as flow_store
from sluice.store import visitor_search
from sluice.store.flows import Catalog
from sluice.store.schema import events, sessions, timeline, visitors
from sluice.store.visitor_search import VisitorQuery

_UNFINISHED = [s.value for s in UNFINISHED]


def flow_figures(conn: Connection, catalog: Catalog, now: datetime) -> dict[str, dict[str, Any]]:
    """Per flow: sessions by status, sessions started in the last 24 h, conversion (as
    in `flow_stats`: sessions that met a goal, per session started) with its text, and
    its health (`health.of_flow`). These read every session, so the flows list loads
    them after the page (see `live.js`)."""
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for key, status, count in conn.execute(
        sa.select(sessions.c.flow_key, sessions.c.status, sa.func.count()).group_by(
            sessions.c.flow_key, sessions.c.status
        )
    ):
        counts[key][status] = count
    # A literal, not a parameter: SQLite uses the partial index of goals only then.
    goal = sa.literal_column("'goal'")
    converted = dict(
        conn.execute(
            sa.select(sessions.c.flow_key, sa.func.count(sa.distinct(timeline.c.session_id)))
            .select_from(timeline.join(sessions, sessions.c.id == timeline.c.session_id))
            .where(timeline.c.kind == goal)
            .group_by(sessions.c.flow_key)
        ).all()
    )
    entered = dict(
        conn.execute(
            sa.select(sessions.c.flow_key, sa.func.count())
            .where(sessions.c.started_at >= now - timedelta(hours=24))
            .group_by(sessions.c.flow_key)
        ).all()
    )
    flows = flow_store.list_flows(conn)
    troubles = health.by_step(conn, [flow.key for flow in flows], now)
    figures = {}
    for flow in flows:
        started = sum(counts[flow.key].values())
        met = converted.get(flow.key, 0)
        has_goals = bool(catalog.flow(conn, flow.key, flow.version).tree.definition.exit_rules)
        shown = started and (has_goals or met)  # else the text says "—" or "no goal"
        figures[flow.key] = {
            "counts": counts[flow.key],
            "sessions": started,
            "entered_24h": entered.get(flow.key, 0),
            "converted": met,
            "conversion": stats.conversion(met, started) if shown else None,
            "conversion_text": stats.conversion_text(met, started, has_goals),
            "health": health.of_flow(troubles.get(flow.key, {})),
        }
    return figures


def session_counts(conn: Connection, key: str) -> tuple[dict[str, int], dict[str, int]]:
    """The flow's sessions by status, and its unfinished sessions at each step: one
    pass over the index `(flow_key, status, step)`."""
    by_status: dict[str, int] = defaultdict(int)
    here: dict[str, int] = defaultdict(int)
    for status, step, count in conn.execute(
        sa.select(sessions.c.status, sessions.c.step, sa.func.count())
        .where(sessions.c.flow_key == key)
        .group_by(sessions.c.status, sessions.c.step)
    ):
        by_status[status] += count
        if status in _UNFINISHED:
            here[step] += count
    return dict(by_status), dict(here)


PAGE_SIZE = 50
"""Visitors on a page of the search."""


def search_visitors(
    conn: Connection, query: VisitorQuery, *, page: int = 1
) -> tuple[list[dict[str, Any]], int]:
    """One page of the visitors `query` finds (`store.visitor_search`), by email, and
    how many it finds in all."""
    conditions = visitor_search.matching(conn, query)
    total = conn.execute(
        sa.select(sa.func.count()).select_from(visitors).where(*conditions)
    ).scalar_one()
    rows = conn.execute(
        sa.select(
            visitors.c.email,
            visitors.c.fields,
            visitors.c.tags,
            visitors.c.unsubscribed_at,
            visitors.c.created_at,
        )
        .where(*conditions)
        .order_by(visitors.c.email_key)
        .limit(PAGE_SIZE)
        .offset((page - 1) * PAGE_SIZE)
    )
    return [dict(r._mapping) for r in rows], total


ENGAGEMENT = {"email_opened": "opened", "email_clicked": "clicked"}


def engagement(conn: Connection, messages: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Opens and clicks of these emails (`views.list_messages` shapes), from the
    tracking entries on their sessions' timelines (`store.deliveries.engagement`):
    `{message id: {"opened": 0 | 1, "clicked": distinct links clicked}}`, for the
    emails with either."""
    session_ids = {m["session_id"] for m in messages if m["session_id"] is not None}
    found: dict[str, dict[str, int]] = {}
    if not session_ids:
        return found
    rows = conn.execute(
        sa.select(timeline.c.kind, timeline.c.data).where(
            timeline.c.session_id.in_(session_ids), timeline.c.kind.in_(list(ENGAGEMENT))
        )
    )
    for kind, data in rows:
        counts = found.setdefault(str(data.get("message_id")), {"opened": 0, "clicked": 0})
        counts[ENGAGEMENT[kind]] += 1
    return found


def recent_activity(
    conn: Connection, *, limit: int = 50, only: views.ActivityFilter = views.EVERYTHING
) -> list[dict[str, Any]]:
    """The newest events and timeline entries that `only` lets through, newest first,
    in the shapes of the activity stream (`views.activity_since`)."""
    first_event = (
        _nth_newest(conn, sa.select(events.c.id).order_by(events.c.id.desc()), limit)
        if only.events
        else None
    )
    entries = only.entries(
        sa.select(timeline.c.id)
        .join(sessions, sessions.c.id == timeline.c.session_id, isouter=True)
        .order_by(timeline.c.id.desc())
    )
    first_entry = _nth_newest(conn, entries, limit) if entries is not None else None
    new_events, entries = views.activity_since(
        conn, (first_event or 1) - 1, (first_entry or 1) - 1, limit=limit, only=only
    )
    items = [{**e, "item": "event", "at": e["accepted_at"]} for e in new_events]
    items += [{**e, "item": "timeline"} for e in entries]
    # Newest first; an event before the session entries it caused at the same instant.
    items.sort(key=lambda i: (i["at"], i["item"] == "timeline", i["id"]), reverse=True)
    return items[:limit]


def _nth_newest(conn: Connection, ids: sa.Select, n: int) -> int | None:
    """The n-th newest of the ids that `ids` selects, newest first (the oldest of the
    newest n)."""
    newest = ids.limit(n).subquery()
    return conn.execute(sa.select(sa.func.min(newest.c.id))).scalar()
