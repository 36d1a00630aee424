"""What a change of visitors sets off besides event triggers: the schedules of date
triggers (store/dates.py) and segment membership.

Every path that changes visitors or stores events — ingest, Bento's commands, imports,
the profile page, flow steps — calls `after_changes` in its transaction with the
visitors it wrote and the events it stored. Their date checks move where a date
trigger's field (or their zone) changed. The segments whose rules read what changed
are decided again for those visitors (store/segments.py), and each entry or exit is
recorded as a `$segment_entered` / `$segment_left` event (`{"segment": KEY}`), which
starts the flows whose trigger names it, as the change's own events would: not for an
import that did not ask to start flows (SPEC §3.3).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy.engine import Connection

from sluice.engine.triggers import FlowState
from sluice.engine.work import MAX_CHAIN_DEPTH
from sluice.records import SEGMENT_ENTERED, SEGMENT_LEFT
from sluice.store import dates, due
from sluice.store import ingest as ingest_store
from sluice.store import segments as segment_store
from sluice.store.budget import CausedBudget
from sluice.store.flows import Catalog
from sluice.store.visitors import WorkingVisitor


def after_changes(
    conn: Connection,
    catalog: Catalog,
    now: datetime,
    *,
    changed: Iterable[WorkingVisitor] = (),
    new_events: Iterable[tuple[int, str]] = (),
    makers: dict[int, ingest_store.Maker] | None = None,
    source: str = "api",
    start_flows: bool = True,
    budget: CausedBudget | None = None,
    flows: list[FlowState] | None = None,
) -> list[int]:
    """Keep segments right after `changed` visitors (the batch's, as written: those
    `dirty` changed) were written and `new_events` (`(visitor_id, type)`) were stored.
    `makers`: who made each visitor's
    change (a flow step's depth and cause carry over to the segment events); else
    `source`. Returns the ids of the sessions the entries and exits started."""
    changed = list(changed)
    dates.reschedule(conn, catalog, changed, now, flows)
    definitions = catalog.segments(conn)
    if not definitions:
        return []
    dirty = {v.id for v in changed if v.dirty or v.new}
    by_type: dict[str, set[int]] = defaultdict(set)
    for visitor_id, event_type in new_events:
        by_type[event_type].add(visitor_id)
    wanted = {}
    for key, segment in definitions.items():
        ids = set(dirty) if segment.reads_data else set()
        for event_type in segment.event_types & by_type.keys():
            ids |= by_type[event_type]
        if ids:
            wanted[key] = ids
    if not wanted:
        return []
    # The batch's visitors as it left them, so that refresh need not read them again.
    needed = set().union(*wanted.values())
    views = {v.id: v.view() for v in changed if v.id in needed}
    moves = segment_store.refresh(conn, wanted, definitions, now, views)
    return record_moves(
        conn,
        catalog,
        moves,
        now,
        makers=makers,
        source=source,
        start_flows=start_flows,
        budget=budget,
        flows=flows,
    )


BUSY_RETRY = timedelta(seconds=5)


def recheck(
    conn: Connection, key: str, visitor_ids: list[int], now: datetime, *, catalog: Catalog
) -> None:
    """The due-check handler (store/due.py, kind `segment`): a window of the segment
    passed for these visitors; decide again, and start the flows of the moves."""
    definitions = catalog.segments(conn)
    # A visitor another transaction is changing is left to it, and looked at again
    # shortly: waiting for them here, while holding the claimed checks, could deadlock
    # with a batch that holds the visitor and writes their checks (PostgreSQL).
    free, busy = segment_store.lock_visitors(conn, visitor_ids)
    due.schedule(
        conn, [due.DueCheck(segment_store.DUE_KIND, key, i, now + BUSY_RETRY) for i in busy]
    )
    moves = segment_store.refresh(conn, {key: free}, definitions, now)
    record_moves(conn, catalog, moves, now, source="segment")


def record_moves(
    conn: Connection,
    catalog: Catalog,
    moves: list[segment_store.Move],
    now: datetime,
    *,
    makers: dict[int, ingest_store.Maker] | None = None,
    source: str = "segment",
    start_flows: bool = True,
    budget: CausedBudget | None = None,
    flows: list[FlowState] | None = None,
) -> list[int]:
    """Record each move as an event in the visitor's history; with `start_flows`, as
    ingest does (it starts the flows that name it), else stored as a record only."""
    if not moves:
        return []
    makers = makers or {}
    incoming = []
    for move in moves:
        maker = makers.get(move.visitor_id)
        incoming.append(
            ingest_store.IncomingEvent(
                type=SEGMENT_ENTERED if move.entered else SEGMENT_LEFT,
                email=move.email,
                details={"segment": move.segment.key},
                source=maker.source if maker else source,
                depth=maker.depth if maker else 0,
                cause=maker.cause if maker else None,
            )
        )
    # Past the depth limit of chains, a flow's change still moves the visitor, but
    # starts nothing (as for its other changes: ingest.changes_made).
    starting = [start_flows and e.depth <= MAX_CHAIN_DEPTH for e in incoming]
    kept = [(m.visitor_id, e) for m, e, s in zip(moves, incoming, starting, strict=True) if not s]
    ingest_store.record_all(conn, kept, now)
    incoming = [e for e, s in zip(incoming, starting, strict=True) if s]
    if not incoming:
        return []
    if budget is not None:
        budget.include(conn, {e.cause.root_event_id for e in incoming if e.cause})
    return ingest_store.ingest(conn, catalog, incoming, now, budget, flows).sessions_started
