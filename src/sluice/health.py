"""What is failing in flows, per step: deliveries waiting for another attempt after a
failed one, deliveries that failed for good, and sessions that failed. The canvas
shows it on each box, the flows list sums it per flow.

A step is *failing* while it has deliveries being retried, or when a delivery failed
or a session failed there in the last `RECENT` (docs/ui.md). Each count reads one
partial index of the rows in trouble (`ix_deliveries_retrying`,
`ix_deliveries_failed`, `ix_sessions_failed`, migration 0009), by flow and step, so
it costs what is failing, not what is running."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sluice.store.schema import deliveries, sessions

RECENT = timedelta(hours=24)
# Literals, not parameters: SQLite uses a partial index only when the query's terms
# are the index's own.
_PENDING = sa.literal_column("'pending'")
_FAILED = sa.literal_column("'failed'")
_NONE = sa.literal_column("0")


@dataclass
class StepHealth:
    retrying: int = 0
    """Deliveries pending after a failed attempt, waiting for the next one (not held
    by a stopped session or a flow that is off)."""
    failed: int = 0
    """Deliveries that failed for good, ever."""
    failed_recently: int = 0
    """Of those, the ones that failed in the last `RECENT`."""
    sessions_failed: int = 0
    """Sessions that failed at this step in the last `RECENT` (still failed)."""

    @property
    def failing(self) -> bool:
        return bool(self.retrying or self.failed_recently or self.sessions_failed)

    def view(self) -> dict[str, Any]:
        return {
            "retrying": self.retrying,
            "failed": self.failed,
            "sessions_failed": self.sessions_failed,
            "failing": self.failing,
        }


def by_step(
    conn: Connection, keys: Collection[str], now: datetime
) -> dict[str, dict[str, StepHealth]]:
    """`{flow: {step: StepHealth}}` for these flows, with only the steps that have
    something to report."""
    if not keys:
        return {}
    keys = list(keys)
    since = now - RECENT
    found: dict[str, dict[str, StepHealth]] = defaultdict(lambda: defaultdict(StepHealth))
    for key, step, count in _retrying(conn, keys):
        found[key][step].retrying = count
    recent = sa.func.sum(sa.case((deliveries.c.updated_at >= since, 1), else_=0))
    for key, step, count, recently in conn.execute(
        sa.select(deliveries.c.flow_key, deliveries.c.step, sa.func.count(), recent)
        .where(deliveries.c.state == _FAILED, deliveries.c.flow_key.in_(keys))
        .group_by(deliveries.c.flow_key, deliveries.c.step)
    ):
        found[key][step].failed = count
        found[key][step].failed_recently = recently
    # The last day's failures, counted here: grouping them in SQL would sort them.
    for key, step in conn.execute(
        sa.select(sessions.c.flow_key, sessions.c.step).where(
            sessions.c.flow_key.in_(keys),
            sessions.c.status == _FAILED,
            sessions.c.finished_at >= since,
        )
    ):
        found[key][step].sessions_failed += 1
    return {key: dict(steps) for key, steps in found.items()}


def retrying(conn: Connection, key: str) -> dict[str, int]:
    """`{step: deliveries being retried}` of one flow (`sluice flows stats`, the API's
    statistics)."""
    return {step: count for _, step, count in _retrying(conn, [key])}


def _retrying(conn: Connection, keys: list[str]):
    """(flow, step, count) of the deliveries pending after a failed attempt."""
    return conn.execute(
        sa.select(deliveries.c.flow_key, deliveries.c.step, sa.func.count())
        .where(
            deliveries.c.state == _PENDING,
            deliveries.c.attempts > _NONE,
            deliveries.c.flow_key.in_(keys),
            # A held one (its session stopped, its flow off) is not being retried.
            deliveries.c.next_attempt_at.is_not(None),
        )
        .group_by(deliveries.c.flow_key, deliveries.c.step)
    ).all()


def of_flow(steps: dict[str, StepHealth]) -> dict[str, int]:
    """A flow's health for the flows list: its failing steps, and its sessions failed
    in the last `RECENT`."""
    return {
        "failing_steps": sum(1 for step, h in steps.items() if h.failing and step is not None),
        "failed_24h": sum(h.sessions_failed for h in steps.values()),
    }
