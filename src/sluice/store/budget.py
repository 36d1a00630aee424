"""The budget of caused events (SPEC §7): besides the depth limit, the events and
sessions that one event from outside causes through flows, all chains from it
together, are at most `MAX_CAUSED`.

What counts: each event a `track` step records, each session such an event starts
through a trigger, and each session a `start_flow` step starts. The sessions the
outside event starts itself do not count. The count is kept on the outside event's
row (`events.caused`); an event recorded by a flow names that row
(`events.root_event_id`), and a session's chain is its origin event's.

A batch of transitions reads the counts of the chains it touches in one statement
(locked on PostgreSQL, so two workers never both spend the last unit), spends them in
memory, and writes the changed ones back in one statement.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sluice.engine.work import MAX_CAUSED
from sluice.store.schema import events


def spent_reason(root_event_id: int) -> str:
    """What the timeline says when a step finds the budget spent."""
    return (
        f"budget of {MAX_CAUSED} events and sessions caused by event {root_event_id} "
        "through flows reached"
    )


class CausedBudget:
    """The counts of a batch's chains, by the id of the event from outside."""

    def __init__(self, counts: dict[int, int]):
        self._counts = counts
        self._changed: set[int] = set()

    @classmethod
    def load(cls, conn: Connection, roots: set[int]) -> CausedBudget:
        if not roots:
            return cls({})
        query = sa.select(events.c.id, events.c.caused).where(events.c.id.in_(roots))
        if conn.dialect.name == "postgresql":
            query = query.order_by(events.c.id).with_for_update()
        return cls(dict(conn.execute(query).all()))

    def include(self, conn: Connection, roots: set[int]) -> None:
        """Read the counts of `roots` not read yet (chains a batch turns out to touch)."""
        missing = roots - self._counts.keys()
        if missing:
            self._counts.update(CausedBudget.load(conn, missing)._counts)

    def take(self, root_event_id: int) -> bool:
        """Spend one unit of the chain's budget; False, spending nothing, when none is
        left (or the event is gone: its visitor was erased)."""
        count = self._counts.get(root_event_id)
        if count is None or count >= MAX_CAUSED:
            return False
        self._counts[root_event_id] = count + 1
        self._changed.add(root_event_id)
        return True

    def save(self, conn: Connection) -> None:
        if not self._changed:
            return
        conn.execute(
            events.update()
            .where(events.c.id == sa.bindparam("b_id"))
            .values(caused=sa.bindparam("v_caused")),
            [{"b_id": root, "v_caused": self._counts[root]} for root in sorted(self._changed)],
        )
        self._changed.clear()
