"""Emails sent through the API (`POST /api/v1/batch/emails`), outside any flow.

They take the same delivery path as the emails of flow steps: a row in `deliveries`,
`outbox` when no SMTP server is configured (kept and shown, not sent), else `pending`
for the dispatcher. They belong to no session, so `session_id`, `flow_key` and `step`
are null; the recipient's visitor id is kept so that erasure removes them too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sluice.links import email_hashes
from sluice.records import DeliveryState
from sluice.store.notify import WORK_CHANNEL, notify
from sluice.store.schema import deliveries, suppressions

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
