"""The path of accepted events: one transaction stores them, applies their effects on
visitors, starts the sessions whose triggers they match, records why the others that
matched a trigger did not start (store/refusals.py), and wakes the sessions that wait
for them or have them as a goal. Data changes that a trigger names — made by these
events or by commands, the UI and flow steps (`changes_made`) — take the same path as
their origin events. What starts is decided in engine/triggers.py; this module loads
and writes.

Everything is set-based: a batch of a thousand events is a handful of statements,
with trigger matching done in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sluice.definitions.problems import DefinitionError
from sluice.engine import triggers
from sluice.engine.triggers import (
    Candidate,
    Cause,
    DataChange,
    EntryHistory,
    FlowState,
    Origin,
    RefusalReason,
)
from sluice.engine.work import MAX_CHAIN_DEPTH
from sluice.records import UNFINISHED, FlowStatus, SessionStatus
from sluice.store import dates
from sluice.store import refusals as refusal_store
from sluice.store import visitors as visitor_store
from sluice.store.budget import CausedBudget, spent_reason
from sluice.store.bulk import insert_many, insert_returning_ids
from sluice.store.flows import Catalog, list_flows
from sluice.store.notify import TIMELINE_CHANNEL, WORK_CHANNEL, notify
from sluice.store.schema import events, sessions, timeline


@dataclass(frozen=True, kw_only=True)
class IncomingEvent:
    """An event checked at the edge, ready to store."""

    type: str
    email: str
    details: dict[str, Any] = field(default_factory=dict)
    fields: dict[str, Any] | None = None
    date: datetime | None = None
    idempotency_key: str | None = None
    source: str = "api"
    depth: int = 0
    cause: Cause | None = None
    """Set for an event recorded by a flow."""
    visitor: dict[str, Any] | None = None
    """For the origin event of a data change, the visitor as the change left them (for
    a trigger's `if`); else the `if` sees them as this event left them."""

    @property
    def key(self) -> str | None:
        unique = self.details.get("unique") if isinstance(self.details, dict) else None
        nested = unique.get("key") if isinstance(unique, dict) else None
        key = self.idempotency_key or nested
        return None if key is None else str(key)


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    event_ids: list[int] = field(default_factory=list)
    sessions_started: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Refused:
    """Why a candidate did not start: its flow's entry rule or cooldown (`data`:
    `rule`, and the `session` that blocked it), or the budget of caused events
    (`data`: `reason`). `str()` is the sentence a timeline gives."""

    reason: RefusalReason
    data: dict[str, Any]

    def __str__(self) -> str:
        if self.reason == RefusalReason.ENTRY_RULE:
            return f"entry rule {self.data['rule']} (session {self.data['session']})"
        return self.data["reason"]


def ingest(
    conn: Connection,
    catalog: Catalog,
    incoming: list[IncomingEvent],
    now: datetime,
    budget: CausedBudget | None = None,
    flows: list[FlowState] | None = None,
) -> IngestResult:
    """Store the events and start the sessions they trigger, then record the origin
    events of the data changes they made that a trigger names (a `$tag` adding a tag,
    `fields` changing one: `changes_made`) and start those sessions too. Events
    recorded by flows (`cause` set) start sessions only while `budget` allows. `flows`:
    `flow_states` when the caller has them already."""
    result = IngestResult()
    if not incoming:
        return result
    people = visitor_store.upsert(conn, (e.email for e in incoming), now)
    seen = _known_keys(conn, incoming, people)
    all_flows = flow_states(conn, catalog) if flows is None else flows
    keep_views = triggers.reads_changes(all_flows)
    # A trigger's `if` sees the visitor as this very event left them; a copy is taken
    # only for the events that such a condition will look at.
    conditional = {
        event_type
        for state in all_flows
        if state.on and state.flow.definition.trigger.condition is not None
        for event_type in state.flow.definition.trigger.events
    }
    rows, snapshots, causes, changed = [], [], [], []
    for event in incoming:
        visitor = people[visitor_store.email_key(event.email)]
        key = event.key
        if key is not None:
            identity = (visitor.id, event.type, key)
            if identity in seen:
                result.duplicates += 1
                continue
            seen.add(identity)
        made = len(visitor.changes)
        visitor.keep_views = keep_views
        _apply_effects(visitor, event, now)
        if len(visitor.changes) > made:
            maker = Maker(visitor.email, event.source, event.depth, event.cause)
            changed += [(maker, c) for c in visitor.changes[made:]]
        rows.append(_event_row(visitor.id, event, key, now))
        if event.visitor is not None:
            snapshots.append(event.visitor)
        else:
            snapshots.append(visitor.view() if event.type in conditional else None)
        causes.append(event.cause)
    visitor_store.write_back(conn, people.values(), now)
    dates.reschedule(conn, catalog, people.values(), now, all_flows)
    if not rows:
        return result
    result.event_ids = insert_returning_ids(conn, events, rows)
    result.accepted = len(rows)
    _wake_interested(conn, [s.flow for s in all_flows if s.on], rows, now)
    origins = [
        Origin(event_id, r["type"], r["visitor_id"], r["details"], r["date"], r["depth"], v, c)
        for event_id, r, v, c in zip(result.event_ids, rows, snapshots, causes, strict=True)
    ]
    result.sessions_started = _start(conn, all_flows, origins, now, budget)
    notify(conn, WORK_CHANNEL, TIMELINE_CHANNEL)
    if changed:
        result.sessions_started += changes_made(conn, catalog, changed, now, budget, all_flows)
    return result


@dataclass(frozen=True)
class Maker:
    """Who made a data change: the visitor (by email) and the source; for a flow's
    step, the depth of the origin event it would record and its `Cause`."""

    email: str
    source: str
    depth: int = 0
    cause: Cause | None = None


def changes_made(
    conn: Connection,
    catalog: Catalog,
    changed: list[tuple[Maker, DataChange]],
    now: datetime,
    budget: CausedBudget | None = None,
    flows: list[FlowState] | None = None,
) -> list[int]:
    """Record the origin events of data changes (`changed`, in order) that a trigger
    names, and start their sessions (SPEC §7 Triggers): changes by events, Bento's
    plain commands, the UI and flow steps; never by imports. A flow step's change
    past the depth limit starts nothing and its session's timeline says so. Returns
    the ids of the sessions started."""
    if not changed:
        return []
    states = flow_states(conn, catalog) if flows is None else flows
    found = triggers.named_changes(changed, (s.flow.definition.trigger for s in states))
    _log_too_deep(conn, states, [f for f in found if f[0].depth > MAX_CHAIN_DEPTH], now)
    incoming = [
        IncomingEvent(
            type=change.origin[0],
            email=maker.email,
            details=change.origin[1],
            source=maker.source,
            depth=maker.depth,
            cause=maker.cause,
            visitor=change.visitor,
        )
        for maker, change in found
        if maker.depth <= MAX_CHAIN_DEPTH
    ]
    if not incoming:
        return []
    if budget is not None:
        budget.include(conn, {e.cause.root_event_id for e in incoming if e.cause})
    return ingest(conn, catalog, incoming, now, budget, states).sessions_started


def _log_too_deep(conn, states: list[FlowState], found, now) -> None:
    """A flow step's change that a trigger names, past the depth limit: the session
    says which flows it did not start, as for a `start_flow` step."""
    reason = f"flow chain depth limit ({MAX_CHAIN_DEPTH}) reached"
    rows = [
        {
            "session_id": maker.cause.session_id,
            "visitor_id": maker.cause.visitor_id,
            "at": now,
            "step": maker.cause.step,
            "kind": "flow_not_started",
            "data": {"flow": state.flow.key, "reason": reason},
        }
        for maker, change in found
        if maker.cause is not None
        for state in states
        if state.on and state.flow.definition.trigger.matches(*change.origin)
    ]
    insert_many(conn, timeline, rows)


def _start(conn, all_flows, origins: list[Origin], now, budget) -> list[int]:
    """Start the sessions that `origins` trigger; record the refusals of the others
    whose trigger named them. The ids of the sessions started."""
    candidates, found = triggers.match(all_flows, origins, now)
    outcomes = start_sessions(conn, candidates, now, budget)
    _log_spent_budget(conn, candidates, outcomes, now)
    types = {o.id: o.type for o in origins}
    found += [
        triggers.TriggerRefusal(
            c.visitor_id,
            c.flow.key,
            (c.origin_event_id, types[c.origin_event_id]),
            outcome.reason,
            outcome.data,
        )
        for c, outcome in zip(candidates, outcomes, strict=True)
        if isinstance(outcome, Refused)
    ]
    # Rows of a batch in the order of its events: the last one of a visitor and flow
    # is the one kept.
    found.sort(key=lambda r: r.event[0])
    refusal_store.record(conn, [refusal_store.refusal(r, now) for r in found])
    return [s for s in outcomes if isinstance(s, int)]


def record(conn: Connection, visitor_id: int, event: IncomingEvent, now: datetime) -> int:
    """Store `event` in the visitor's history as a record of what was done to them, not
    as something they did: it is matched against no trigger, wakes no session and has
    no effect of its own (a person's change on the profile, docs/ui.md). Returns its id."""
    (event_id,) = insert_returning_ids(conn, events, [_event_row(visitor_id, event, None, now)])
    notify(conn, TIMELINE_CHANNEL)
    return event_id


def _known_keys(conn, incoming, people) -> set[tuple[int, str, str]]:
    keyed = [
        (people[visitor_store.email_key(e.email)].id, e.type, e.key) for e in incoming if e.key
    ]
    if not keyed:
        return set()
    rows = conn.execute(
        sa.select(events.c.visitor_id, events.c.type, events.c.idempotency_key).where(
            events.c.visitor_id.in_({k[0] for k in keyed}),
            events.c.idempotency_key.in_({k[2] for k in keyed}),
        )
    )
    return {tuple(r) for r in rows}


def _apply_effects(visitor: visitor_store.WorkingVisitor, event: IncomingEvent, now) -> None:
    """SPEC §1: what `$`-events do to the visitor, before flows are matched."""
    tag = event.details.get("tag") if isinstance(event.details, dict) else None
    match event.type:
        case "$subscribe":
            visitor.set_subscribed(True, now)
        case "$unsubscribe":
            visitor.set_subscribed(False, now)
        case "$tag" if isinstance(tag, str):
            visitor.add_tag(tag)
        case "$remove_tag" if isinstance(tag, str):
            visitor.remove_tag(tag)
    if event.fields:
        visitor.merge_fields(event.fields)


def _event_row(
    visitor_id: int, event: IncomingEvent, key: str | None, now: datetime
) -> dict[str, Any]:
    return {
        "visitor_id": visitor_id,
        "type": event.type,
        "details": event.details,
        "fields": event.fields,
        "date": event.date or now,
        "accepted_at": now,
        "idempotency_key": key,
        "depth": event.depth,
        "source": event.source,
        "root_event_id": event.cause.root_event_id if event.cause else None,
    }


def flow_states(conn: Connection, catalog: Catalog) -> list[FlowState]:
    """Every flow with its current version; those that are off only to say that they
    were (a refusal), so one whose stored version no longer passes validation (rules
    tightened since it was saved) is left out rather than failing the batch."""
    found = []
    for row in list_flows(conn):
        try:
            flow = catalog.flow(conn, row.key, row.version)
        except DefinitionError:
            if row.status == FlowStatus.ON:
                raise
            continue
        found.append(FlowState(flow, row.name, row.status == FlowStatus.ON, row.off_since))
    return found


def _wake_interested(conn, on_flows, rows, now) -> None:
    """Sessions that wait for one of these event types, or have it as a goal, are due
    now; the worker decides what the event means for them."""
    types = {r["type"] for r in rows}
    keys = [flow.key for flow in on_flows if flow.interesting_events & types]
    if not keys:
        return
    conn.execute(
        sessions.update()
        .where(
            sessions.c.visitor_id.in_({r["visitor_id"] for r in rows}),
            sessions.c.flow_key.in_(keys),
            sessions.c.status.in_([SessionStatus.ACTIVE, SessionStatus.WAITING]),
        )
        .values(due_at=now, revision=sessions.c.revision + 1)
    )


def _log_spent_budget(conn, candidates: list[Candidate], outcomes, now) -> None:
    """A session that a flow's event would have started, but for the budget of caused
    events: the session whose `track` step recorded the event says so."""
    rows = [
        {
            "session_id": c.cause.session_id,
            "visitor_id": c.cause.visitor_id,
            "at": now,
            "step": c.cause.step,
            "kind": "flow_not_started",
            "data": {"flow": c.flow.key, "reason": str(outcome)},
        }
        for c, outcome in zip(candidates, outcomes, strict=True)
        if c.cause is not None
        and isinstance(outcome, Refused)
        and outcome.reason == RefusalReason.BUDGET
    ]
    insert_many(conn, timeline, rows)


def start_sessions(
    conn: Connection, candidates: list[Candidate], now: datetime, budget: CausedBudget | None
) -> list[int | Refused]:
    """Start the candidates that the entry rules and cooldowns allow, in order, and of
    those in a chain (`root_event_id`), the ones `budget` still allows. Returns, for
    each candidate, its new session's id, or why it did not start."""
    if not candidates:
        return []
    history = _entry_history(conn, [c for c in candidates if triggers.needs_history(c.flow)])
    allowed, refused = [], {}
    blocked: dict[int, tuple[str, int | Candidate]] = {}
    for c in candidates:
        past = history.setdefault((c.visitor_id, c.flow.key), EntryHistory())
        rule = past.refusal(c.flow, now)
        if rule is not None:
            blocked[id(c)] = rule
        elif c.root_event_id is not None and budget and not budget.take(c.root_event_id):
            refused[id(c)] = Refused(
                RefusalReason.BUDGET, {"reason": spent_reason(c.root_event_id)}
            )
        else:
            past.record(now, c)
            allowed.append(c)
    ids = _insert_sessions(conn, allowed, now)
    started = dict(zip(map(id, allowed), ids, strict=True))
    for key, (rule, session) in blocked.items():
        # A session this batch started has its id only now.
        blocker = started[id(session)] if isinstance(session, Candidate) else session
        refused[key] = Refused(RefusalReason.ENTRY_RULE, {"rule": rule, "session": blocker})
    return [started.get(id(c)) or refused[id(c)] for c in candidates]


def _insert_sessions(conn: Connection, allowed: list[Candidate], now: datetime) -> list[int]:
    """The sessions of `allowed`, each with its `entered` timeline entry; their ids."""
    if not allowed:
        return []
    rows = [
        {
            "visitor_id": c.visitor_id,
            "flow_key": c.flow.key,
            "flow_version": c.flow.version,
            "status": SessionStatus.ACTIVE,
            "step": c.flow.tree.first,
            "step_begun": False,
            "state": {},
            "origin_event_id": c.origin_event_id,
            "depth": c.depth,
            "event_cursor": c.origin_event_id,
            "due_at": now,
            "revision": 0,
            "started_at": now,
            "updated_at": now,
        }
        for c in allowed
    ]
    ids = insert_returning_ids(conn, sessions, rows)
    insert_many(
        conn,
        timeline,
        [
            {
                "session_id": session_id,
                "visitor_id": c.visitor_id,
                "at": now,
                "step": None,
                "kind": "entered",
                "data": {"origin_event": c.origin_event_id, "version": c.flow.version},
            }
            for session_id, c in zip(ids, allowed, strict=True)
        ],
    )
    return ids


def _entry_history(conn, candidates: list[Candidate]) -> dict[tuple[int, str], EntryHistory]:
    if not candidates:
        return {}
    is_open = sessions.c.status.in_([s.value for s in UNFINISHED])
    query = (
        sa.select(
            sessions.c.visitor_id,
            sessions.c.flow_key,
            sa.func.count(),
            sa.func.sum(sa.case((is_open, 1), else_=0)),
            sa.func.max(sessions.c.started_at),
            sa.func.max(sessions.c.id),
            sa.func.max(sa.case((is_open, sessions.c.id))),
        )
        .where(
            sessions.c.visitor_id.in_({c.visitor_id for c in candidates}),
            sessions.c.flow_key.in_({c.flow.key for c in candidates}),
        )
        .group_by(sessions.c.visitor_id, sessions.c.flow_key)
    )
    history = {}
    for visitor_id, flow_key, total, open_count, last, latest, open_id in conn.execute(query):
        history[(visitor_id, flow_key)] = EntryHistory(
            total, int(open_count or 0), last, latest, open_id
        )
    return history
