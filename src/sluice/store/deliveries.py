"""The outbox of deliveries: emails and webhooks written in the same transaction as
the step that made them, taken by the dispatcher, and their outcomes handed back to
the session that waits for them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sluice.records import DeliveryState, SessionStatus
from sluice.store.notify import TIMELINE_CHANNEL, WORK_CHANNEL, notify
from sluice.store.schema import deliveries, sessions, timeline


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
    row = conn.execute(
        sa.select(deliveries).where(deliveries.c.idempotency_id == idempotency_id)
    ).first()
    if row is None or row.state != DeliveryState.PENDING:
        return False
    conn.execute(
        deliveries.update()
        .where(deliveries.c.id == row.id)
        .values(state=state, last_error=error, next_attempt_at=None, updated_at=now)
    )
    kind, data = entry
    conn.execute(
        timeline.insert().values(
            session_id=row.session_id,
            visitor_id=row.visitor_id,
            at=now,
            step=row.step,
            kind=kind,
            data=data,
        )
    )
    session = conn.execute(sa.select(sessions).where(sessions.c.id == row.session_id)).first()
    waiting = session.state.get("delivery", {}).get("id") == idempotency_id
    if waiting and session.status in (SessionStatus.WAITING, SessionStatus.STOPPED):
        outcome = "sent" if state == DeliveryState.SENT else "failed"
        state_now = dict(session.state)
        state_now["delivery"] = {"id": idempotency_id, "outcome": outcome, "error": error}
        conn.execute(
            sessions.update()
            .where(sessions.c.id == session.id)
            .values(state=state_now, due_at=now, revision=sessions.c.revision + 1)
        )
    notify(conn, WORK_CHANNEL, TIMELINE_CHANNEL)
    return True


def pending(conn: Connection, *, now: datetime, limit: int) -> list[Any]:
    """Deliveries due for an attempt, oldest first."""
    return conn.execute(
        sa.select(deliveries)
        .where(deliveries.c.state == DeliveryState.PENDING, deliveries.c.next_attempt_at <= now)
        .order_by(deliveries.c.next_attempt_at)
        .limit(limit)
    ).all()
