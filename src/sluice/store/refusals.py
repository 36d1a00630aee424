"""Trigger refusals: events that matched a flow's trigger by type but started no
session there, and why — the facts behind "why didn't they get it?" (explain.py).

Ingest (store/ingest.py) records one for each such event and flow:

- `condition_false`: the trigger's `if` was false, or failed; `data`: `condition`,
  `values` (every path it read, with its value), `error` when it failed;
- `entry_rule`: `once`, `one_at_a_time` or the `cooldown` refused it; `data`: `rule`,
  `session` (the id of the session that blocked it);
- `flow_off`: the flow was off (its `if` is then not evaluated); `data`: `off_since`;
- `budget`: the budget of caused events of the event's chain was spent; `data`:
  `reason`.

Bounded: one row per visitor and flow, keeping the latest refusal and counting all of
them (`refusals`). A visitor who sends an event every minute to a `once` flow would
otherwise add a row per event forever, and every batch would pay for it; the latest
refusal is what answers the question (the events and sessions tell the rest), so one
upsert per visitor and flow of a batch is all ingest writes. The row carries the
visitor's id first in its key (SPEC §5: per visitor, no join across visitors), and is
exported and erased with the visitor.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sluice.engine.triggers import TriggerRefusal
from sluice.store.bulk import upsert_many
from sluice.store.schema import trigger_refusals


def refusal(found: TriggerRefusal, now: datetime) -> dict[str, Any]:
    """A row for `record`."""
    return {
        "visitor_id": found.visitor_id,
        "flow_key": found.flow_key,
        "at": now,
        "event_id": found.event[0],
        "event_type": found.event[1],
        "reason": found.reason.value,
        "data": found.data,
        "refusals": 1,
    }


def record(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Keep the last of `rows` (in the order the events were accepted) for each visitor
    and flow, counting them all; one statement, run for each row kept."""
    latest: dict[tuple[int, str], dict[str, Any]] = {}
    for row in rows:
        key = (row["visitor_id"], row["flow_key"])
        before = latest.get(key)
        latest[key] = {**row, "refusals": before["refusals"] + 1} if before else row
    upsert_many(
        conn,
        trigger_refusals,
        list(latest.values()),
        key=("visitor_id", "flow_key"),
        add=("refusals",),
    )


def latest(conn: Connection, visitor_id: int, flow_key: str) -> dict[str, Any] | None:
    """The visitor's latest refusal by the flow, as `refusal_view`; None if none."""
    row = conn.execute(
        sa.select(trigger_refusals).where(
            trigger_refusals.c.visitor_id == visitor_id, trigger_refusals.c.flow_key == flow_key
        )
    ).first()
    return None if row is None else refusal_view(row)


def of_visitor(conn: Connection, visitor_id: int) -> list[dict[str, Any]]:
    """Every flow's latest refusal of the visitor (the GDPR export), by flow."""
    rows = conn.execute(
        sa.select(trigger_refusals)
        .where(trigger_refusals.c.visitor_id == visitor_id)
        .order_by(trigger_refusals.c.flow_key)
    )
    return [refusal_view(r) for r in rows]


def erase(conn: Connection, visitor_id: int) -> None:
    conn.execute(trigger_refusals.delete().where(trigger_refusals.c.visitor_id == visitor_id))


def refusal_view(row) -> dict[str, Any]:
    """`{"flow", "at", "event": {"id", "type"}, "reason", "data", "refusals"}`."""
    return {
        "flow": row.flow_key,
        "at": row.at.isoformat(),
        "event": {"id": row.event_id, "type": row.event_type},
        "reason": row.reason,
        "data": row.data,
        "refusals": row.refusals,
    }
