"""Per-flow statistics: where sessions are, how many entered each step, what the
email and webhook steps did, and how many reached the goal.

Conversion is the share of the flow's sessions that met a goal (an exit rule): each
session counts once, however many `goal` entries it has. An `exit` step is not a
conversion: it is the flow's own way out, not something the visitor did. A flow whose
current version has no goals has no conversion ("no goal"), unless sessions met the
goals of an earlier version. The rate is rounded once, here, to a tenth of a percent
(half up), and every place shows it through `conversion_text`."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sluice import health
from sluice.records import UNFINISHED
from sluice.store import flows as flow_store
from sluice.store.flows import Catalog
from sluice.store.schema import sessions, timeline

_COUNTED_KINDS = {
    "step": "entered",
    "email_sent": "sent",
    "email_skipped": "skipped",
    "email_failed": "failed",
    "webhook_delivered": "delivered",
    "webhook_failed": "failed",
    "email_opened": "opened",
    "email_clicked": "clicked",
}
_DELIVERY_COUNTS = {
    "email": ("sent", "skipped", "retrying", "failed", "opened", "clicked"),
    "webhook": ("delivered", "retrying", "failed"),
}
"""What every email and webhook step shows, zero included. `opened` and `clicked`
count sessions (unique recipients): the timeline has one `email_opened` per email and
one `email_clicked` per distinct link clicked, so a session that clicked two links is
counted once. `retrying`: deliveries pending after a failed attempt, now (`health`)."""


def flow_stats(conn: Connection, catalog: Catalog, key: str) -> dict[str, Any]:
    flow = flow_store.get_flow(conn, key)
    tree = catalog.flow(conn, key, flow.version).tree
    here = dict(
        conn.execute(
            sa.select(sessions.c.step, sa.func.count())
            .where(
                sessions.c.flow_key == key,
                sessions.c.status.in_([s.value for s in UNFINISHED]),
            )
            .group_by(sessions.c.step)
        ).all()
    )
    in_flow = sa.select(sessions.c.id).where(sessions.c.flow_key == key)
    clickers = sa.func.count(sa.distinct(timeline.c.session_id))
    counted = conn.execute(
        sa.select(
            timeline.c.step,
            timeline.c.kind,
            sa.case((timeline.c.kind == "email_clicked", clickers), else_=sa.func.count()),
        )
        .where(
            timeline.c.session_id.in_(in_flow),
            timeline.c.kind.in_([*_COUNTED_KINDS, "completed", "goal"]),
        )
        .group_by(timeline.c.step, timeline.c.kind)
    ).all()
    per_step: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    goals = 0
    for step, kind, count in counted:
        if kind == "goal":
            goals += count
        elif kind in _COUNTED_KINDS:
            per_step[step][_COUNTED_KINDS[kind]] += count
    converted = conn.execute(
        sa.select(sa.func.count(sa.distinct(timeline.c.session_id))).where(
            timeline.c.session_id.in_(in_flow), timeline.c.kind == sa.literal_column("'goal'")
        )
    ).scalar_one()
    started = conn.execute(
        sa.select(sa.func.count()).select_from(sessions).where(sessions.c.flow_key == key)
    ).scalar_one()
    retrying = health.retrying(conn, key)
    steps = []
    for step_id in tree.ids_in_order():
        step = tree.step(step_id)
        row = {"step": step_id, "kind": step.kind, "here": here.get(step_id, 0)}
        row.update(per_step.get(step_id, {}))
        if step_id in retrying:
            row["retrying"] = retrying[step_id]
        for name in ("entered", *_DELIVERY_COUNTS.get(step.kind, ())):
            row.setdefault(name, 0)
        steps.append(row)
    return {
        "flow": key,
        "version": flow.version,
        "sessions": started,
        "goals": goals,
        "has_goals": bool(tree.definition.exit_rules),
        "converted": converted,
        "conversion": conversion(converted, started),
        "steps": steps,
    }


def conversion(converted: int, sessions: int) -> float:
    """The share of sessions converted, rounded half up to a tenth of a percent
    (0.123 is 12.3 %); 0.0 without sessions."""
    return _per_mille(converted, sessions) / 1000


def _per_mille(converted: int, sessions: int) -> int:
    return (converted * 2000 + sessions) // (2 * sessions) if sessions else 0


def conversion_text(converted: int, sessions: int, has_goals: bool) -> str:
    """The conversion as every page and the CLI show it: `12.3 %`, `no goal` for a flow
    without goals (that none of its sessions met), `—` before its first session."""
    if not has_goals and not converted:
        return "no goal"
    if not sessions:
        return "—"
    tenths = _per_mille(converted, sessions)
    return f"{tenths // 10}.{tenths % 10} %"
