"""Emails sent through the API (`POST /api/v1/batch/emails`), outside any flow, and
test sends kept in the outbox (`POST /api/emails/test`).

The API's emails take the same delivery path as the emails of flow steps: a row in
`deliveries`, `outbox` when no SMTP server is configured (kept and shown, not sent),
else `pending` for the dispatcher. They belong to no session, so `session_id`,
`flow_key` and `step` are null; the recipient's visitor id is kept so that erasure
removes them too.

Test sends without an SMTP server are rows of `test_emails` instead: never
dispatched, never counted, shown in the outbox with a "test" badge.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sluice.addresses import email_key
from sluice.links import email_hashes
from sluice.records import DeliveryState
from sluice.store.notify import WORK_CHANNEL, notify
from sluice.store.schema import deliveries, suppressions, test_emails, visitors

MAX_ATTEMPTS = 8


def erased_addresses(conn: Connection, emails: Iterable[str]) -> set[str]:
    """Those of `emails` whose visitor was erased (a suppression record remains)."""
    hashes = {h: e for e in emails for h in email_hashes(e)}
    if not hashes:
        return set()
    found = conn.execute(
        sa.select(suppressions.c.email_hash).where(suppressions.c.email_hash.in_(list(hashes)))
    ).scalars()
    return {hashes[h] for h in found}


def add_emails(
    conn: Connection,
    messages: Sequence[tuple[int, dict[str, Any]]],
    *,
    state: DeliveryState,
    now: datetime,
) -> None:
    """Store `(visitor_id, payload)` emails; each payload carries its `message_id`."""
    if not messages:
        return
    pending = state == DeliveryState.PENDING
    conn.execute(
        deliveries.insert(),
        [
            {
                "session_id": None,
                "visitor_id": visitor_id,
                "flow_key": None,
                "step": None,
                "kind": "email",
                "idempotency_id": payload["message_id"],
                "state": state,
                "payload": payload,
                "attempts": 0,
                "max_attempts": MAX_ATTEMPTS,
                "next_attempt_at": now if pending else None,
                "created_at": now,
                "updated_at": now,
            }
            for visitor_id, payload in messages
        ],
    )
    if pending:
        notify(conn, WORK_CHANNEL)


def add_test_email(
    conn: Connection,
    payload: dict[str, Any],
    *,
    visitor_id: int | None,
    actor: str,
    now: datetime,
) -> int:
    """Keep a test send (its payload carries `to` and `message_id`); its id.
    `visitor_id` is the stored visitor it was rendered for, if any."""
    return conn.execute(
        test_emails.insert()
        .values(
            visitor_id=visitor_id,
            to_key=email_key(payload["to"]),
            message_id=payload["message_id"],
            payload=payload,
            actor=actor,
            created_at=now,
        )
        .returning(test_emails.c.id)
    ).scalar_one()


def list_test_emails(
    conn: Connection,
    *,
    email: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[dict[str, Any]]:
    """Test sends kept in the outbox, newest first: those to `email` or rendered for
    the visitor of that email, created in [since, until) when given."""
    query = sa.select(test_emails).order_by(test_emails.c.id.desc())
    if email is not None:
        key = email_key(email)
        visitor = sa.select(visitors.c.id).where(visitors.c.email_key == key)
        query = query.where(
            sa.or_(test_emails.c.to_key == key, test_emails.c.visitor_id.in_(visitor))
        )
    if since is not None:
        query = query.where(test_emails.c.created_at >= since)
    if until is not None:
        query = query.where(test_emails.c.created_at < until)
    return [
        {
            "id": r.id,
            "payload": r.payload,
            "actor": r.actor,
            "message_id": r.message_id,
            "created_at": r.created_at.isoformat(),
        }
        for r in conn.execute(query)
    ]


def erase_test_emails(conn: Connection, visitor_id: int) -> None:
    """The test sends rendered for a visitor being erased: they hold its data."""
    conn.execute(test_emails.delete().where(test_emails.c.visitor_id == visitor_id))
