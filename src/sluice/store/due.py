"""Work for one visitor that falls due at a time rather than on a change: a segment's
time window passing (`segment`), a date trigger's next occurrence (`date`).

Each is a row `(kind, key, visitor_id, due_at)` in `due_checks`, at most one per
visitor and segment or flow; scheduling again moves it. The worker claims due rows in
batches, as it claims sessions (one step into `ix_due_checks_due_at`), and hands each
kind's to its handler in the same transaction that deletes them, so a crash leaves
them due; it sleeps until the earliest (`next_due`). Nothing here scans by schedule.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sluice.store.bulk import upsert_many
from sluice.store.schema import due_checks

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DueCheck:
    kind: str
    key: str
    visitor_id: int
    due_at: datetime


Handler = Callable[[Connection, str, list[int], datetime], None]
"""Given the key (segment or flow) and the visitors whose check fell due, in one
transaction with the claim."""


def schedule(conn: Connection, checks: Iterable[DueCheck]) -> None:
    """Set each check's due time (replacing the visitor's earlier one for that key)."""
    rows = {
        (c.kind, c.key, c.visitor_id): {
            "kind": c.kind,
            "key": c.key,
            "visitor_id": c.visitor_id,
            "due_at": c.due_at,
        }
        for c in checks
    }
    upsert_many(conn, due_checks, list(rows.values()), key=("kind", "key", "visitor_id"))


def cancel(conn: Connection, kind: str, key: str, visitor_ids: Iterable[int] | None = None) -> None:
    """Drop the checks of `kind` and `key`: of these visitors, or of all."""
    query = due_checks.delete().where(due_checks.c.kind == kind, due_checks.c.key == key)
    if visitor_ids is not None:
        ids = list(set(visitor_ids))
        if not ids:
            return
        query = query.where(due_checks.c.visitor_id.in_(ids))
    conn.execute(query)


def settle(
    conn: Connection, kind: str, checks: list[DueCheck], settled: list[tuple[str, int]]
) -> None:
    """Make the checks of `kind` what a decision found: `checks` due at their times,
    none for the `(key, visitor_id)` pairs `settled`. Only the rows that differ are
    written: most decisions leave a visitor's check where it was."""
    pairs = {(c.key, c.visitor_id) for c in checks} | set(settled)
    if not pairs:
        return
    keys = {key for key, _ in pairs}
    ids = {visitor_id for _, visitor_id in pairs}
    current = {
        (key, visitor_id): due_at
        for key, visitor_id, due_at in conn.execute(
            sa.select(due_checks.c.key, due_checks.c.visitor_id, due_checks.c.due_at).where(
                due_checks.c.kind == kind,
                due_checks.c.key.in_(keys),
                due_checks.c.visitor_id.in_(ids),
            )
        )
    }
    schedule(conn, [c for c in checks if current.get((c.key, c.visitor_id)) != c.due_at])
    gone: dict[str, list[int]] = defaultdict(list)
    for key, visitor_id in settled:
        if (key, visitor_id) in current:
            gone[key].append(visitor_id)
    for key, visitor_ids in gone.items():
        cancel(conn, kind, key, visitor_ids)


def claim(conn: Connection, now: datetime, limit: int) -> dict[tuple[str, str], list[int]]:
    """Take up to `limit` of the checks due at `now`, earliest first, deleting them:
    the visitors' ids by kind and key. The caller handles them in the same transaction
    (`run_due`)."""
    rows = conn.execute(
        sa.select(due_checks.c.kind, due_checks.c.key, due_checks.c.visitor_id)
        .where(due_checks.c.due_at <= now)
        .order_by(due_checks.c.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    grouped: dict[tuple[str, str], list[int]] = defaultdict(list)
    for kind, key, visitor_id in rows:
        grouped[kind, key].append(visitor_id)
    for (kind, key), ids in grouped.items():
        # Only those claimed, and only if no change moved them meanwhile (a later due).
        conn.execute(
            due_checks.delete().where(
                due_checks.c.kind == kind,
                due_checks.c.key == key,
                due_checks.c.visitor_id.in_(ids),
                due_checks.c.due_at <= now,
            )
        )
    return grouped


RETRY = timedelta(minutes=5)
"""When the checks of a key whose handler failed are tried again."""


def run_due(conn: Connection, handlers: dict[str, Handler], now: datetime, limit: int) -> int:
    """Claim the checks due at `now` and hand them, grouped by kind and key, to their
    kind's handler; returns how many were claimed. A handler that fails is logged and
    undone (a savepoint), and its checks are tried again `RETRY` later: it holds back
    no other key's."""
    grouped = claim(conn, now, limit)
    for (kind, key), ids in grouped.items():
        handler = handlers.get(kind)
        if handler is None:
            continue
        try:
            with conn.begin_nested():
                handler(conn, key, ids, now)
        except sa.exc.OperationalError:
            raise  # the database is unavailable: the caller waits for it
        except Exception:
            log.exception("due checks %s %s failed; tried again in %s", kind, key, RETRY)
            schedule(conn, [DueCheck(kind, key, i, now + RETRY) for i in ids])
    return sum(len(ids) for ids in grouped.values())


def postpone(conn: Connection, now: datetime, until: datetime, limit: int) -> None:
    """Move the `limit` earliest checks due at `now` to `until`: those of a batch whose
    handling failed, so that it does not fail again at once."""
    earliest = (
        sa.select(due_checks.c.due_at)
        .where(due_checks.c.due_at <= now)
        .order_by(due_checks.c.due_at)
        .limit(limit)
        .subquery()
    )
    last = conn.execute(sa.select(sa.func.max(earliest.c.due_at))).scalar()
    if last is not None:
        conn.execute(due_checks.update().where(due_checks.c.due_at <= last).values(due_at=until))


def next_due(conn: Connection) -> datetime | None:
    """The earliest due time of any check: one step into `ix_due_checks_due_at`."""
    return conn.execute(sa.select(sa.func.min(due_checks.c.due_at))).scalar()


def forget_visitors(conn: Connection, visitor_ids: Iterable[int]) -> None:
    """Drop every check of these visitors (erased)."""
    ids = list(set(visitor_ids))
    if ids:
        conn.execute(due_checks.delete().where(due_checks.c.visitor_id.in_(ids)))
