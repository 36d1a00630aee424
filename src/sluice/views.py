"""The JSON shapes of SPEC §3.4 — session, visitor, flow — read from the store.

The CLI's `--json` and the HTTP API print exactly these."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sluice.addresses import email_key
from sluice.records import DeliveryState, FlowStatus, Session
from sluice.store import flows as flow_store
from sluice.store import segments as segment_store
from sluice.store.schema import (
    deliveries,
    events,
    flows,
    sessions,
    template_versions,
    templates,
    timeline,
    visitors,
)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def session_views(
    conn: Connection, rows: list[Session], *, with_timeline: bool = False
) -> list[dict[str, Any]]:
    if not rows:
        return []
    flow_status = dict(conn.execute(sa.select(flows.c.key, flows.c.status)).all())
    emails = dict(
        conn.execute(
            sa.select(visitors.c.id, visitors.c.email).where(
                visitors.c.id.in_({s.visitor_id for s in rows})
            )
        ).all()
    )
    origins = {
        r.id: {"id": r.id, "type": r.type, "details": r.details, "date": r.date.isoformat()}
        for r in conn.execute(
            sa.select(events).where(events.c.id.in_({s.origin_event_id for s in rows}))
        )
    }
    views = []
    for s in rows:
        view = {
            "id": s.id,
            "flow": s.flow_key,
            "flow_version": s.flow_version,
            "email": emails.get(s.visitor_id),
            "status": s.status.value,
            "step": s.step,
            "paused": flow_status.get(s.flow_key) == FlowStatus.OFF and not s.status.finished,
            "origin_event": origins.get(s.origin_event_id),
            "started_at": _iso(s.started_at),
            "updated_at": _iso(s.updated_at),
            "wake_at": _iso(s.wake_at),
            "waiting_for": s.waiting_for,
        }
        if with_timeline:
            view["timeline"] = timeline_of(conn, s.id)
        views.append(view)
    return views


def timeline_of(conn: Connection, session_id: int, after_id: int = 0) -> list[dict[str, Any]]:
    rows = conn.execute(
        sa.select(timeline)
        .where(timeline.c.session_id == session_id, timeline.c.id > after_id)
        .order_by(timeline.c.id)
    )
    return [{"at": r.at.isoformat(), "step": r.step, "kind": r.kind, "data": r.data} for r in rows]


def list_sessions(
    conn: Connection,
    *,
    email: str | None = None,
    flow: str | None = None,
    status: str | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[Session]:
    query = sa.select(sessions).order_by(sessions.c.id.desc()).limit(limit)
    if email is not None:
        visitor_id = sa.select(visitors.c.id).where(visitors.c.email_key == email_key(email))
        query = query.where(sessions.c.visitor_id.in_(visitor_id))
    if flow is not None:
        query = query.where(sessions.c.flow_key == flow)
    if status is not None:
        query = query.where(sessions.c.status == status)
    if before_id is not None:
        query = query.where(sessions.c.id < before_id)
    return [Session.from_row(r) for r in conn.execute(query)]


def flow_view(conn: Connection, key: str, *, full: bool = True) -> dict[str, Any]:
    row = flow_store.get_flow(conn, key)
    counts = dict(
        conn.execute(
            sa.select(sessions.c.status, sa.func.count())
            .where(sessions.c.flow_key == key)
            .group_by(sessions.c.status)
        ).all()
    )
    view = {
        "key": row.key,
        "name": row.name,
        "status": row.status.value,
        "version": row.version,
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
        "counts": counts,
    }
    if full:
        view["definition"] = flow_store.stored_definition(conn, key, row.version)
        view["source"] = flow_store.stored_source(conn, key, row.version)
        view["versions"] = flow_store.list_versions(conn, key)
    return view


def visitor_view(conn: Connection, row, *, event_limit: int = 50) -> dict[str, Any]:
    session_rows = [
        Session.from_row(r)
        for r in conn.execute(
            sa.select(sessions)
            .where(sessions.c.visitor_id == row.id)
            .order_by(sessions.c.id.desc())
        )
    ]
    recent = conn.execute(
        sa.select(events)
        .where(events.c.visitor_id == row.id)
        .order_by(events.c.id.desc())
        .limit(event_limit)
    )
    return {
        "email": row.email,
        "uuid": row.uuid,
        "fields": row.fields,
        "tags": row.tags,
        "subscribed": row.unsubscribed_at is None,
        "unsubscribed_at": _iso(row.unsubscribed_at),
        "created_at": _iso(row.created_at),
        "segments": segment_store.memberships(conn, [row.id]).get(row.id, []),
        "sessions": session_views(conn, session_rows),
        "events": [event_view(e) for e in recent],
    }


def visitor_summary(row: dict[str, Any]) -> dict[str, Any]:
    """A visitor as lists show one: the profile without sessions and events (`id` kept
    for paging)."""
    return {
        "id": row["id"],
        "email": row["email"],
        "uuid": row["uuid"],
        "fields": row["fields"],
        "tags": row["tags"],
        "subscribed": row["unsubscribed_at"] is None,
        "unsubscribed_at": _iso(row["unsubscribed_at"]),
        "created_at": _iso(row["created_at"]),
    }


def event_view(row) -> dict[str, Any]:
    return {
        "id": row.id,
        "type": row.type,
        "details": row.details,
        "fields": row.fields,
        "date": _iso(row.date),
        "accepted_at": _iso(row.accepted_at),
    }


def message_views(conn: Connection, visitor_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        sa.select(deliveries)
        .where(deliveries.c.visitor_id == visitor_id)
        .order_by(deliveries.c.id.desc())
    )
    return [_message_view(r) for r in rows]


def _message_view(r) -> dict[str, Any]:
    return {
        "id": r.id,
        "session_id": r.session_id,
        "flow": r.flow_key,
        "step": r.step,
        "kind": r.kind,
        "idempotency_id": r.idempotency_id,
        "state": r.state,
        "attempts": r.attempts,
        "error": r.last_error,
        "next_attempt_at": _iso(r.next_attempt_at) if r.state == DeliveryState.PENDING else None,
        "payload": r.payload,
        "created_at": _iso(r.created_at),
    }


def list_messages(
    conn: Connection,
    *,
    email: str | None = None,
    kind: str = "email",
    limit: int = 100,
    before_id: int | None = None,
) -> list[dict[str, Any]]:
    """Deliveries of one kind, newest first, of one visitor or of everyone."""
    query = (
        sa.select(deliveries)
        .where(deliveries.c.kind == kind)
        .order_by(deliveries.c.id.desc())
        .limit(limit)
    )
    if email is not None:
        visitor_id = sa.select(visitors.c.id).where(visitors.c.email_key == email_key(email))
        query = query.where(deliveries.c.visitor_id.in_(visitor_id))
    if before_id is not None:
        query = query.where(deliveries.c.id < before_id)
    return [_message_view(r) for r in conn.execute(query)]


def message_created_at(conn: Connection, delivery_id: int) -> datetime | None:
    """When the delivery `delivery_id` was created (None when there is none)."""
    return conn.execute(
        sa.select(deliveries.c.created_at).where(deliveries.c.id == delivery_id)
    ).scalar()


def timeline_since(
    conn: Connection, session_id: int, after_id: int, *, limit: int = 500
) -> list[tuple[int, dict[str, Any]]]:
    """`(id, entry)` of the session's timeline entries written after entry `after_id`."""
    rows = conn.execute(
        sa.select(timeline)
        .where(timeline.c.session_id == session_id, timeline.c.id > after_id)
        .order_by(timeline.c.id)
        .limit(limit)
    )
    return [
        (r.id, {"at": r.at.isoformat(), "step": r.step, "kind": r.kind, "data": r.data})
        for r in rows
    ]


def latest_activity(conn: Connection) -> tuple[int, int]:
    """The ids of the newest event and the newest timeline entry (0 when none)."""
    return (
        conn.execute(sa.select(sa.func.max(events.c.id))).scalar() or 0,
        conn.execute(sa.select(sa.func.max(timeline.c.id))).scalar() or 0,
    )


@dataclass(frozen=True)
class ActivityFilter:
    """Which activity to show: timeline entries of one `flow`, of some `kinds` (the
    kind `event` stands for accepted events, which belong to no flow); None is all."""

    flow: str | None = None
    kinds: frozenset[str] | None = None

    @property
    def events(self) -> bool:
        return self.flow is None and (self.kinds is None or "event" in self.kinds)

    def entries(self, query: sa.Select) -> sa.Select | None:
        """`query` (of timeline rows joined with their sessions) narrowed to the
        filter; None when it lets no entry through."""
        if self.kinds is not None:
            kinds = sorted(self.kinds - {"event"})
            if not kinds:
                return None
            query = query.where(timeline.c.kind.in_(kinds))
        if self.flow is not None:
            query = query.where(sessions.c.flow_key == self.flow)
        return query


EVERYTHING = ActivityFilter()


def activity_since(
    conn: Connection,
    after_event: int,
    after_entry: int,
    *,
    limit: int = 200,
    only: ActivityFilter = EVERYTHING,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Events and timeline entries (of every session) written after the given ids,
    oldest first, each with the visitor's email; the activity feed, filtered by
    `only`."""
    new_events = (
        conn.execute(
            sa.select(events).where(events.c.id > after_event).order_by(events.c.id).limit(limit)
        ).all()
        if only.events
        else []
    )
    query = only.entries(
        sa.select(timeline, sessions.c.flow_key)
        .join(sessions, sessions.c.id == timeline.c.session_id, isouter=True)
        .where(timeline.c.id > after_entry)
        .order_by(timeline.c.id)
        .limit(limit)
    )
    entries = conn.execute(query).all() if query is not None else []
    ids = {r.visitor_id for r in new_events} | {r.visitor_id for r in entries}
    emails = (
        dict(
            conn.execute(
                sa.select(visitors.c.id, visitors.c.email).where(visitors.c.id.in_(ids))
            ).all()
        )
        if ids
        else {}
    )
    return (
        [{**event_view(r), "email": emails.get(r.visitor_id)} for r in new_events],
        [
            {
                "id": r.id,
                "session_id": r.session_id,
                "flow": r.flow_key,
                "email": emails.get(r.visitor_id),
                "at": r.at.isoformat(),
                "step": r.step,
                "kind": r.kind,
                "data": r.data,
            }
            for r in entries
        ],
    )


def last_entries(conn: Connection, session_ids: set[int], up_to: int) -> list[dict[str, Any]]:
    """Each session's newest timeline entry with an id up to `up_to` (in the shape of
    `activity_since`'s entries, without `email`): what a live feed showed last of it."""
    if not session_ids:
        return []
    newest = (
        sa.select(sa.func.max(timeline.c.id))
        .where(timeline.c.session_id.in_(session_ids), timeline.c.id <= up_to)
        .group_by(timeline.c.session_id)
    )
    rows = conn.execute(
        sa.select(timeline, sessions.c.flow_key)
        .join(sessions, sessions.c.id == timeline.c.session_id, isouter=True)
        .where(timeline.c.id.in_(newest))
    )
    return [
        {
            "id": r.id,
            "session_id": r.session_id,
            "flow": r.flow_key,
            "at": r.at.isoformat(),
            "step": r.step,
            "kind": r.kind,
            "data": r.data,
        }
        for r in rows
    ]


def template_views(conn: Connection, key: str | None = None) -> list[dict[str, Any]]:
    """Email templates with their current definition and versions."""
    query = sa.select(templates).where(templates.c.deleted_at.is_(None)).order_by(templates.c.key)
    if key is not None:
        query = query.where(templates.c.key == key)
    views = []
    for row in conn.execute(query).all():
        versions = conn.execute(
            sa.select(
                template_versions.c.version,
                template_versions.c.created_at,
                template_versions.c.definition,
                template_versions.c.source,
            )
            .where(template_versions.c.template_key == row.key)
            .order_by(template_versions.c.version)
        ).all()
        current = next(v for v in versions if v.version == row.version)
        views.append(
            {
                "key": row.key,
                "version": row.version,
                "created_at": _iso(row.created_at),
                "updated_at": _iso(row.updated_at),
                "definition": current.definition,
                "source": current.source,
                "versions": [
                    {"version": v.version, "created_at": _iso(v.created_at)} for v in versions
                ],
            }
        )
    return views
