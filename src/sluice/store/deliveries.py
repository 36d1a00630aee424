"""The outbox of deliveries: emails and webhooks written in the same transaction as
the step that made them, claimed by dispatchers, and their outcomes handed back to
the session that waits for them.

Concurrency: a dispatcher claims due deliveries with a lease (`claim_expires_at`);
`FOR UPDATE SKIP LOCKED` on PostgreSQL lets several claim side by side. A dispatcher
that dies mid-send holds its claims until the lease runs out, and then another one
attempts the delivery again with the same idempotency id. Recording takes row locks
(PostgreSQL; SQLite has one writer at a time), sessions before their deliveries as
every writer does, and acts only on deliveries that are still `pending`, so a late
result from a dispatcher whose lease ran out never reopens or repeats an outcome.

A pending delivery of a stopped session, or of a paused flow's session, is *held*:
`next_attempt_at` is NULL, so no claim finds it (`hold`, `release`). One of a session
that finished is cancelled (`cancel`): it becomes `skipped`, unsent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sluice.records import DeliveryState, FlowStatus, SessionStatus
from sluice.store.bulk import insert_many, update_many
from sluice.store.notify import TIMELINE_CHANNEL, WORK_CHANNEL, notify
from sluice.store.schema import (
    broadcast_engagements,
    deliveries,
    flows,
    sessions,
    timeline,
    visitors,
)

_PENDING = sa.literal_column("'pending'")
"""A literal, not a parameter, so the planner can use the partial index of pending rows."""


@dataclass(frozen=True, kw_only=True)
class Delivery:
    """A pending delivery as a dispatcher claimed it."""

    id: int
    session_id: int | None
    """None for an email sent through the API, which belongs to no session."""
    visitor_id: int
    flow_key: str | None
    step: str | None
    kind: str
    idempotency_id: str
    payload: dict[str, Any]
    attempts: int
    """Attempts made before this one."""
    max_attempts: int
    subscribed: bool
    """Whether the visitor was subscribed when the delivery was claimed: marketing
    mail is checked again at send time, since the visitor may have unsubscribed after
    the step rendered it."""


@dataclass(frozen=True, kw_only=True)
class Result:
    """What became of one attempt, as the store records it.

    `state` PENDING means another attempt is due at `next_attempt_at`; any other state
    is final. `entry` is the timeline entry telling what happened, if any."""

    idempotency_id: str
    state: DeliveryState
    attempts: int
    entry: tuple[str, dict[str, Any]] | None
    error: str | None = None
    next_attempt_at: datetime | None = None


def claim(
    conn: Connection, *, kinds: Iterable[str], now: datetime, limit: int, lease: timedelta
) -> list[Delivery]:
    """Claim up to `limit` pending deliveries of these kinds that are due, oldest first,
    for `lease`."""
    due = (
        sa.select(deliveries.c.id)
        .where(
            deliveries.c.state == _PENDING,
            deliveries.c.next_attempt_at <= now,
            deliveries.c.kind.in_(list(kinds)),
            sa.or_(deliveries.c.claim_expires_at.is_(None), deliveries.c.claim_expires_at < now),
        )
        .order_by(deliveries.c.next_attempt_at)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True, of=deliveries)
    rows = conn.execute(
        deliveries.update()
        .where(deliveries.c.id.in_(due.scalar_subquery()))
        .values(claim_expires_at=now + lease)
        .returning(*deliveries.c)
    ).all()
    if not rows:
        return []
    unsubscribed = set(
        conn.execute(
            sa.select(visitors.c.id).where(
                visitors.c.id.in_({r.visitor_id for r in rows}),
                visitors.c.unsubscribed_at.is_not(None),
            )
        ).scalars()
    )
    return [
        Delivery(
            id=r.id,
            session_id=r.session_id,
            visitor_id=r.visitor_id,
            flow_key=r.flow_key,
            step=r.step,
            kind=r.kind,
            idempotency_id=r.idempotency_id,
            payload=r.payload,
            attempts=r.attempts,
            max_attempts=r.max_attempts,
            subscribed=r.visitor_id not in unsubscribed,
        )
        for r in sorted(rows, key=lambda r: r.id)
    ]


def next_attempt(conn: Connection, *, kinds: Iterable[str]) -> datetime | None:
    """When the earliest pending delivery of these kinds is due, claimed or not: a read
    of `ix_deliveries_pending` from its start. An idle dispatcher sleeps until then."""
    return conn.execute(
        sa.select(sa.func.min(deliveries.c.next_attempt_at)).where(
            deliveries.c.state == _PENDING,
            deliveries.c.next_attempt_at.is_not(None),
            deliveries.c.kind.in_(list(kinds)),
        )
    ).scalar()


def record(conn: Connection, results: list[Result], *, now: datetime) -> list[str]:
    """Record attempts: a retry is scheduled, a final outcome is stored and handed to the
    session waiting for it (its state gets the outcome and it becomes due now, so the
    next pass of the engine moves it on). Every result may write a timeline entry.

    Results for deliveries that are no longer pending (recorded already by another
    dispatcher, or erased) are ignored. Returns the ids of the deliveries recorded."""
    if not results:
        return []
    by_id = {r.idempotency_id: r for r in results}
    if conn.dialect.name == "postgresql":
        _lock_sessions(conn, list(by_id))
    locked = (
        sa.select(
            deliveries.c.id,
            deliveries.c.idempotency_id,
            deliveries.c.session_id,
            deliveries.c.visitor_id,
            deliveries.c.step,
        )
        .where(deliveries.c.idempotency_id.in_(list(by_id)), deliveries.c.state == _PENDING)
        .order_by(deliveries.c.id)
    )
    if conn.dialect.name == "postgresql":
        locked = locked.with_for_update()
    rows = conn.execute(locked).all()
    if not rows:
        return []
    conn.execute(
        deliveries.update()
        .where(deliveries.c.id == sa.bindparam("row_id"))
        .values(
            # A delivery held while this attempt was in flight stays held.
            next_attempt_at=sa.case(
                (deliveries.c.next_attempt_at.is_(None), None),
                else_=sa.bindparam("next_at", type_=deliveries.c.next_attempt_at.type),
            )
        ),
        [_delivery_values(row.id, by_id[row.idempotency_id], now) for row in rows],
    )
    entries = [
        {
            "session_id": row.session_id,
            "visitor_id": row.visitor_id,
            "at": now,
            "step": row.step,
            "kind": by_id[row.idempotency_id].entry[0],
            "data": by_id[row.idempotency_id].entry[1],
        }
        for row in rows
        if by_id[row.idempotency_id].entry is not None and row.session_id is not None
    ]
    insert_many(conn, timeline, entries)
    final = [
        (row.session_id, by_id[row.idempotency_id])
        for row in rows
        if by_id[row.idempotency_id].state != DeliveryState.PENDING and row.session_id is not None
    ]
    if final:
        _wake_sessions(conn, final, now)
        notify(conn, WORK_CHANNEL)
    notify(conn, TIMELINE_CHANNEL)
    return [row.idempotency_id for row in rows]


def _lock_sessions(conn: Connection, idempotency_ids: list[str]) -> None:
    """Lock the sessions of these deliveries before the deliveries themselves: every
    writer takes a session before its deliveries (a worker cancels the delivery of a
    session it finished, a person stops a session), so none waits for the other."""
    of_deliveries = sa.select(deliveries.c.session_id).where(
        deliveries.c.idempotency_id.in_(idempotency_ids), deliveries.c.state == _PENDING
    )
    conn.execute(
        sa.select(sessions.c.id)
        .where(sessions.c.id.in_(of_deliveries))
        .order_by(sessions.c.id)
        .with_for_update()
    )


def _delivery_values(row_id: int, result: Result, now: datetime) -> dict[str, Any]:
    return {
        "row_id": row_id,
        "state": result.state,
        "attempts": result.attempts,
        "last_error": result.error,
        "next_at": result.next_attempt_at,
        "claim_expires_at": None,
        "updated_at": now,
    }


def _wake_sessions(conn: Connection, final: list[tuple[int, Result]], now: datetime) -> None:
    """Put each final outcome into the state of the session that waits for it.

    A session waits for a delivery while `state.delivery.id` names it; one that moved
    on meanwhile (it exited, or a person retried it) is left alone. A stopped session,
    or one whose flow is off, keeps the outcome until it is resumed, and gets no due
    time meanwhile: a due time it cannot be claimed for would be read again by every
    claim (`sessions.claim_due`)."""
    outcomes = {result.idempotency_id: result for _, result in final}
    on_flows = sa.select(flows.c.key).where(flows.c.status == FlowStatus.ON)
    query = sa.select(
        sessions.c.id,
        sessions.c.status,
        sessions.c.state,
        sessions.c.flow_key.in_(on_flows).label("flow_on"),
    ).where(sessions.c.id.in_({session_id for session_id, _ in final}))
    if conn.dialect.name == "postgresql":
        query = query.order_by(sessions.c.id).with_for_update()
    changes = []
    for session in conn.execute(query).all():
        result = outcomes.get(session.state.get("delivery", {}).get("id"))
        if result is None or session.status not in (SessionStatus.WAITING, SessionStatus.STOPPED):
            continue
        outcome = "failed" if result.state == DeliveryState.FAILED else "sent"
        state = dict(session.state)
        state["delivery"] = {"id": result.idempotency_id, "outcome": outcome, "error": result.error}
        runnable = session.status == SessionStatus.WAITING and session.flow_on
        changes.append({"id": session.id, "state": state, "due_at": now if runnable else None})
    update_many(conn, sessions, changes, shared={"revision": sessions.c.revision + 1})


def hold(conn: Connection, of_sessions: sa.ColumnElement[bool], *, now: datetime) -> None:
    """Hold the pending deliveries of the sessions `of_sessions` selects (a condition on
    `deliveries.c.session_id`): no dispatcher claims them until `release`. An attempt
    already in flight finishes, and its outcome is recorded; a retry it asks for stays
    held."""
    conn.execute(
        deliveries.update()
        .where(of_sessions, deliveries.c.state == _PENDING)
        .values(next_attempt_at=None, updated_at=now)
    )


def release(conn: Connection, of_sessions: sa.ColumnElement[bool], *, now: datetime) -> None:
    """Make the held deliveries of these sessions due now."""
    conn.execute(
        deliveries.update()
        .where(of_sessions, deliveries.c.state == _PENDING, deliveries.c.next_attempt_at.is_(None))
        .values(next_attempt_at=now, updated_at=now)
    )
    notify(conn, WORK_CHANNEL)


def cancel(conn: Connection, reasons: dict[int, str], *, now: datetime) -> None:
    """Cancel the pending deliveries of sessions that finished: they become `skipped`,
    unsent, with `last_error` saying why, and each session's timeline says
    `delivery_cancelled` (`delivery`: email or webhook, `reason`). `reasons` maps a
    session id to what ended it ("the session exited (goal)"). One statement for all,
    through the index of deliveries by session.

    A result of an attempt in flight meanwhile is ignored, like any result for a
    delivery no longer pending."""
    if not reasons:
        return
    why = sa.case(
        {session_id: f"{reason} before it was sent" for session_id, reason in reasons.items()},
        value=deliveries.c.session_id,
    )
    rows = conn.execute(
        deliveries.update()
        .where(deliveries.c.session_id.in_(list(reasons)), deliveries.c.state == _PENDING)
        .values(
            state=DeliveryState.SKIPPED,
            last_error=why,
            next_attempt_at=None,
            claim_expires_at=None,
            updated_at=now,
        )
        .returning(
            deliveries.c.session_id,
            deliveries.c.visitor_id,
            deliveries.c.step,
            deliveries.c.kind,
            deliveries.c.last_error,
        )
    ).all()
    if rows:
        conn.execute(
            timeline.insert(),
            [
                {
                    "session_id": row.session_id,
                    "visitor_id": row.visitor_id,
                    "at": now,
                    "step": row.step,
                    "kind": "delivery_cancelled",
                    "data": {"delivery": row.kind, "reason": row.last_error},
                }
                for row in rows
            ],
        )


def give_up(conn: Connection, result: Result, *, now: datetime) -> None:
    """Store a final outcome on the delivery alone, touching neither timeline nor
    session: the last resort for a result that could not be recorded otherwise."""
    conn.execute(
        deliveries.update()
        .where(deliveries.c.idempotency_id == result.idempotency_id, deliveries.c.state == _PENDING)
        .values(
            state=result.state,
            attempts=result.attempts,
            last_error=result.error,
            next_attempt_at=None,
            claim_expires_at=None,
            updated_at=now,
        )
    )


def finish(
    conn: Connection,
    idempotency_id: str,
    *,
    state: DeliveryState,
    now: datetime,
    entry: tuple[str, dict[str, Any]],
    error: str | None = None,
) -> bool:
    """Record a delivery's final outcome and wake the session waiting on it.

    `entry` is the timeline entry that tells the outcome (`webhook_delivered`, …).
    Returns False when the delivery was already final (a repeat is harmless)."""
    attempts = conn.execute(
        sa.select(deliveries.c.attempts).where(deliveries.c.idempotency_id == idempotency_id)
    ).scalar()
    result = Result(
        idempotency_id=idempotency_id,
        state=state,
        attempts=(attempts or 0) + 1,
        entry=entry,
        error=error,
    )
    return bool(record(conn, [result], now=now))


def pending(conn: Connection, *, now: datetime, limit: int) -> list[Any]:
    """Deliveries due for an attempt, oldest first."""
    return conn.execute(
        sa.select(deliveries)
        .where(deliveries.c.state == _PENDING, deliveries.c.next_attempt_at <= now)
        .order_by(deliveries.c.next_attempt_at)
        .limit(limit)
    ).all()


def engagement(
    conn: Connection, message_id: str, kind: str, data: dict[str, Any], *, now: datetime
) -> bool:
    """Record that the recipient of an email opened it or clicked a link in it, on the
    timeline of the session that sent it (of a broadcast's: in its engagements):
    once per email for `email_opened`, once per link for `email_clicked`. Returns
    whether an entry was written (False for a repeat, or for an email that no longer
    exists because its visitor was erased)."""
    email = sa.select(
        deliveries.c.id,
        deliveries.c.session_id,
        deliveries.c.visitor_id,
        deliveries.c.step,
        deliveries.c.broadcast_id,
    ).where(deliveries.c.idempotency_id == message_id, deliveries.c.kind == "email")
    if conn.dialect.name == "postgresql":
        email = email.with_for_update()  # two opens at once record one
    row = conn.execute(email).first()
    if row is not None and row.broadcast_id is not None:
        return _broadcast_engagement(conn, row, kind, data.get("url") or "", now)
    if row is None or row.session_id is None:
        return False
    earlier = conn.execute(
        sa.select(timeline.c.data).where(
            timeline.c.session_id == row.session_id,
            timeline.c.step == row.step,
            timeline.c.kind == kind,
        )
    ).scalars()
    if any(
        seen.get("message_id") == message_id and seen.get("url") == data.get("url")
        for seen in earlier
    ):
        return False
    conn.execute(
        timeline.insert().values(
            session_id=row.session_id,
            visitor_id=row.visitor_id,
            at=now,
            step=row.step,
            kind=kind,
            data={"message_id": message_id, **data},
        )
    )
    notify(conn, TIMELINE_CHANNEL)
    return True


def renew(conn: Connection, ids: list[int], *, until: datetime) -> None:
    """Extend the lease of deliveries still being attempted."""
    conn.execute(
        deliveries.update()
        .where(deliveries.c.id.in_(ids), deliveries.c.state == _PENDING)
        .values(claim_expires_at=until)
    )


def _broadcast_engagement(conn: Connection, row, kind: str, url: str, now: datetime) -> bool:
    """An open or click of a broadcast's email, once per email and kind (and link)."""
    seen = conn.execute(
        sa.select(broadcast_engagements.c.delivery_id).where(
            broadcast_engagements.c.delivery_id == row.id,
            broadcast_engagements.c.kind == kind,
            broadcast_engagements.c.url == url,
        )
    ).first()
    if seen is not None:
        return False
    conn.execute(
        broadcast_engagements.insert().values(
            delivery_id=row.id,
            kind=kind,
            url=url,
            broadcast_id=row.broadcast_id,
            visitor_id=row.visitor_id,
            at=now,
        )
    )
    return True
