"""Sessions: claiming due ones, loading what the engine needs, applying transitions,
and the person-driven stop, resume and retry.

Concurrency: a worker claims due sessions with a lease (`claim_expires_at`), and
`FOR UPDATE SKIP LOCKED` on PostgreSQL lets many workers claim side by side. The
lease only saves duplicate effort; correctness comes from `revision`: a transition is
applied only if the session's revision is still the one the worker read, so a session
changed meanwhile (an event arrived, a person stopped it, a lease expired and another
worker took over) is never advanced twice from the same state.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.operators import custom_op

from sluice.definitions.model import EntryRule
from sluice.engine import triggers
from sluice.engine.triggers import Candidate, Cause, DataChange
from sluice.engine.work import MAX_CHAIN_DEPTH, FlowVersion, Transition, Work
from sluice.links import email_hashes
from sluice.records import (
    FINISHED,
    RUNNABLE,
    UNFINISHED,
    Event,
    FlowStatus,
    Session,
    SessionStatus,
    Visitor,
)
from sluice.store import dates, registry
from sluice.store import deliveries as delivery_store
from sluice.store import flows as flow_store
from sluice.store import visitors as visitor_store
from sluice.store.budget import CausedBudget, spent_reason
from sluice.store.bulk import insert_many, update_many
from sluice.store.flows import Catalog
from sluice.store.ingest import (
    IncomingEvent,
    Maker,
    changes_made,
    flow_states,
    ingest,
    start_sessions,
)
from sluice.store.notify import TIMELINE_CHANNEL, WORK_CHANNEL, notify
from sluice.store.schema import deliveries, events, flows, sessions, suppressions, timeline

_RUNNABLE = [s.value for s in RUNNABLE]


class SessionNotFound(LookupError):
    """No session has that id."""


class InvalidSessionState(ValueError):
    """The session is not in a state that allows this."""


def claim_due(
    conn: Connection, *, worker: str, now: datetime, limit: int, lease: timedelta
) -> list[Session]:
    """Claim up to `limit` sessions that are due, earliest first, for `lease`.

    The query reads only due rows: it walks `ix_sessions_due` from the earliest due
    time and stops after `limit` claimable rows, so its cost does not grow with the
    sessions waiting for a later time (SPEC §5). That holds because only runnable
    sessions of flows that are on have a due time (turning a flow off and stopping a
    session clear it); the status and flow conditions are a safety net. On SQLite they
    are kept from steering the planner: with them indexable it would rather read every
    session of the flows that are on through `ix_sessions_flow_key_status_step` and sort
    them (tests/test_query_plans.py)."""
    on_flows = sa.select(flows.c.key).where(flows.c.status == FlowStatus.ON)
    due = (
        sa.select(sessions.c.id)
        .where(
            sessions.c.due_at <= now,
            _unindexed(conn, sessions.c.status).in_(_RUNNABLE),
            _unindexed(conn, sessions.c.flow_key).in_(on_flows),
            sa.or_(sessions.c.claim_expires_at.is_(None), sessions.c.claim_expires_at < now),
        )
        .order_by(sessions.c.due_at)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True, of=sessions)
    rows = conn.execute(
        sessions.update()
        .where(sessions.c.id.in_(due.scalar_subquery()))
        .values(claimed_by=worker, claim_expires_at=now + lease)
        .returning(*sessions.c)
    )
    return sorted((Session.from_row(r) for r in rows), key=lambda s: s.id)


def next_due(conn: Connection) -> datetime | None:
    """The earliest due time of any session, claimed or not: one step into
    `ix_sessions_due`. A worker with nothing to do sleeps until then."""
    return conn.execute(
        sa.select(sa.func.min(sessions.c.due_at)).where(sessions.c.due_at.is_not(None))
    ).scalar()


def _unindexed(conn: Connection, column: sa.ColumnElement) -> sa.ColumnElement:
    """`column` as SQLite's planner may not use an index for (a unary `+`, SQLite's
    documented way to say so); the column itself elsewhere."""
    if conn.dialect.name != "sqlite":
        return column
    return sa.UnaryExpression(column, operator=custom_op("+"), type_=column.type)


def renew_claims(conn: Connection, ids: list[int], *, worker: str, until: datetime) -> None:
    conn.execute(
        sessions.update()
        .where(sessions.c.id.in_(ids), sessions.c.claimed_by == worker)
        .values(claim_expires_at=until)
    )


def load_work(
    conn: Connection, catalog: Catalog, claimed: list[Session], now: datetime
) -> list[Work]:
    """Everything the engine needs for a batch of sessions, in a few set-based reads."""
    if not claimed:
        return []
    flow_rows = {r.key: r for r in conn.execute(sa.select(flows))}
    visitor_ids = {s.visitor_id for s in claimed}
    people = visitor_store.load_by_ids(conn, visitor_ids, lock=False)
    origins = _events_by_id(conn, {s.origin_event_id for s in claimed})
    latest = dict(
        conn.execute(
            sa.select(events.c.visitor_id, sa.func.max(events.c.id))
            .where(events.c.visitor_id.in_(visitor_ids))
            .group_by(events.c.visitor_id)
        ).all()
    )
    suppressed = _suppressed(conn, people.values())
    current = {s.id: catalog.flow(conn, s.flow_key, flow_rows[s.flow_key].version) for s in claimed}
    new_events = _new_events(conn, claimed, current)
    template_keys = set().union(*(f.definition.referenced_templates for f in current.values()))
    templates = catalog.templates(conn, template_keys)
    return [
        Work(
            session=s,
            flow=current[s.id],
            session_flow=catalog.flow(conn, s.flow_key, s.flow_version),
            flow_name=flow_rows[s.flow_key].name,
            visitor=_frozen(people[s.visitor_id]),
            origin=origins[s.origin_event_id],
            new_events=new_events.get(s.id, []),
            latest_event_id=latest.get(s.visitor_id, 0),
            suppressed=people[s.visitor_id].id in suppressed,
            templates=templates,
            now=now,
        )
        for s in claimed
    ]


def _frozen(visitor: visitor_store.WorkingVisitor) -> Visitor:
    return Visitor(
        id=visitor.id,
        uuid=visitor.uuid,
        email=visitor.email,
        fields=visitor.fields,
        tags=visitor.tags,
        unsubscribed_at=visitor.unsubscribed_at,
        created_at=visitor.created_at,
    )


def _events_by_id(conn: Connection, ids: set[int]) -> dict[int, Event]:
    rows = conn.execute(sa.select(events).where(events.c.id.in_(ids)))
    return {r.id: Event.from_row(r) for r in rows}


def _suppressed(conn, people) -> set[int]:
    hashes = {h: v.id for v in people for h in email_hashes(v.email)}
    found = conn.execute(
        sa.select(suppressions.c.email_hash).where(suppressions.c.email_hash.in_(list(hashes)))
    ).scalars()
    return {hashes[h] for h in found}


def _new_events(
    conn: Connection, claimed: list[Session], current: dict[int, FlowVersion]
) -> dict[int, list[Event]]:
    """Per session: the visitor's events after its cursor of the types its flow (either
    version) cares about, in the order they were accepted."""
    wanted = {s.id: current[s.id].interesting_events | {s.waiting_for} - {None} for s in claimed}
    types = set().union(*wanted.values())
    if not types:
        return {}
    rows = conn.execute(
        sa.select(events)
        .where(
            events.c.visitor_id.in_({s.visitor_id for s in claimed}),
            events.c.id > min(s.event_cursor for s in claimed),
            events.c.type.in_(types),
        )
        .order_by(events.c.id)
    )
    by_visitor = defaultdict(list)
    for row in rows:
        by_visitor[row.visitor_id].append(Event.from_row(row))
    return {
        s.id: [
            e for e in by_visitor[s.visitor_id] if e.id > s.event_cursor and e.type in wanted[s.id]
        ]
        for s in claimed
    }


def apply_transitions(
    conn: Connection, catalog: Catalog, transitions: list[Transition], now: datetime
) -> list[Transition]:
    """Persist the transitions whose sessions did not change since they were read; the
    others are released and will be claimed again. Returns the ones applied."""
    if not transitions:
        return []
    ids = [t.session_id for t in transitions]
    query = sa.select(sessions.c.id, sessions.c.revision).where(sessions.c.id.in_(ids))
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    revisions = dict(conn.execute(query).all())
    fresh = [t for t in transitions if revisions.get(t.session_id) == t.revision]
    stale = [t.session_id for t in transitions if revisions.get(t.session_id) != t.revision]
    if stale:
        conn.execute(
            sessions.update().where(sessions.c.id.in_(stale)).values(claim_expires_at=None)
        )
    if not fresh:
        return []
    budget = CausedBudget.load(conn, {t.root_event_id for t in fresh if t.events or t.start_flows})
    _spend_on_tracked_events(fresh, budget)
    flows = flow_states(conn, catalog) if any(t.visitor_changes for t in fresh) else []
    changed = _apply_visitor_changes(conn, catalog, fresh, now, flows)
    _update_sessions(conn, fresh, now)
    _insert_timeline(conn, fresh)
    _insert_deliveries(conn, fresh, now)
    delivery_store.cancel(conn, _interrupted(fresh), now=now)
    _follow_ups(conn, catalog, fresh, now, budget)
    changes_made(conn, catalog, changed, now, budget, flows)
    budget.save(conn)
    notify(conn, TIMELINE_CHANNEL)
    if any(t.due_at is not None and t.due_at <= now for t in fresh) or any(
        t.deliveries for t in fresh
    ):
        notify(conn, WORK_CHANNEL)
    return fresh


def _spend_on_tracked_events(transitions: list[Transition], budget: CausedBudget) -> None:
    """Events that `track` steps recorded, while their chain's budget lasts; the
    `event_tracked` entry of one past it becomes `track_skipped`, and the session goes on
    (like a `track` step past the depth limit)."""
    for t in transitions:
        kept = []
        for event in t.events:
            if budget.take(t.root_event_id):
                kept.append(event)
                continue
            reason = spent_reason(t.root_event_id)
            entry = t.timeline[event.entry]
            data = {"type": event.type, "reason": reason}
            t.timeline[event.entry] = replace(entry, kind="track_skipped", data=data)
        t.events = kept


def _apply_visitor_changes(
    conn, catalog: Catalog, transitions, now, flows
) -> list[tuple[Maker, DataChange]]:
    """Apply the steps' changes to the visitors as they are now; the changes that a
    trigger of `flows` can name, each with the session and step that made it (SPEC §7
    Triggers: its origin event is one step deeper in the session's chain)."""
    changing = [t for t in transitions if t.visitor_changes]
    if not changing:
        return []
    people = visitor_store.load_by_ids(conn, {t.visitor_id for t in changing})
    keep_views = triggers.reads_changes(flows)
    for visitor in people.values():
        visitor.keep_views = keep_views
    made = []
    for t in changing:
        visitor = people[t.visitor_id]
        for change in t.visitor_changes:
            before = len(visitor.changes)
            visitor.apply(change, now)
            if len(visitor.changes) > before:
                cause = Cause(t.session_id, t.visitor_id, change.step, t.root_event_id)
                maker = Maker(visitor.email, "flow", t.depth + 1, cause)
                made += [(maker, c) for c in visitor.changes[before:]]
    visitor_store.write_back(conn, people.values(), now)
    dates.reschedule(conn, catalog, people.values(), now, flows)
    changes = [c for t in changing for c in t.visitor_changes]
    registry.register_tags(conn, (c.name for c in changes if c.op == "tag_add"), now)
    registry.register_fields(conn, (c.name for c in changes if c.op == "field_set"), now)
    return made


_SESSION_COLUMNS = (
    "status",
    "step",
    "step_begun",
    "state",
    "flow_version",
    "event_cursor",
    "waiting_for",
    "wake_at",
    "due_at",
    "finished_at",
)


def _update_sessions(conn, transitions, now) -> None:
    update_many(
        conn,
        sessions,
        [{"id": t.session_id, **{n: getattr(t, n) for n in _SESSION_COLUMNS}} for t in transitions],
        shared={
            "paused_since": None,
            "claimed_by": None,
            "claim_expires_at": None,
            "revision": sessions.c.revision + 1,
            "updated_at": now,
        },
    )


def _insert_timeline(conn, transitions) -> None:
    rows = [
        {
            "session_id": t.session_id,
            "visitor_id": t.visitor_id,
            "at": entry.at,
            "step": entry.step,
            "kind": entry.kind,
            "data": entry.data,
        }
        for t in transitions
        for entry in t.timeline
    ]
    insert_many(conn, timeline, rows)


def _insert_deliveries(conn, transitions, now) -> None:
    rows = [
        {
            "session_id": t.session_id,
            "visitor_id": t.visitor_id,
            "flow_key": t.flow_key,
            "step": d.step,
            "kind": d.kind,
            "idempotency_id": d.idempotency_id,
            "state": d.state,
            "payload": d.payload,
            "attempts": 0,
            "max_attempts": d.max_attempts,
            "next_attempt_at": now if d.state == "pending" else None,
            "created_at": now,
            "updated_at": now,
        }
        for t in transitions
        for d in t.deliveries
    ]
    insert_many(conn, deliveries, rows)


def _interrupted(transitions) -> dict[int, str]:
    """The sessions that finished while waiting for a delivery (their state still names
    it, with no outcome yet: a goal was met meanwhile), and what ended each one."""
    ended = {}
    for t in transitions:
        # A session failed for a damaged state keeps it as it was: maybe not an object.
        waited = t.state.get("delivery") if isinstance(t.state, dict) else None
        if t.status not in FINISHED or not isinstance(waited, dict) or "outcome" in waited:
            continue
        reason = next((e.data.get("reason") for e in t.timeline if e.kind == "exited"), None)
        ended[t.session_id] = f"the session {t.status}" + (f" ({reason})" if reason else "")
    return ended


def _follow_ups(conn, catalog: Catalog, transitions, now, budget: CausedBudget) -> None:
    """Events recorded by `track` steps and sessions started by `start_flow` steps,
    within their chains' budget."""
    tracked = [t for t in transitions if t.events]
    if tracked:
        emails = _emails(conn, {t.visitor_id for t in tracked})
        ingest(
            conn,
            catalog,
            [
                IncomingEvent(
                    type=e.type,
                    email=emails[t.visitor_id],
                    details=e.details,
                    source="flow",
                    depth=e.depth,
                    cause=Cause(
                        t.session_id, t.visitor_id, t.timeline[e.entry].step, t.root_event_id
                    ),
                )
                for t in tracked
                for e in t.events
            ],
            now,
            budget,
        )
    starting = [(t, flow, step) for t in transitions for flow, step in t.start_flows]
    if starting:
        _start_flows(conn, catalog, starting, now, budget)


def _start_flows(conn, catalog: Catalog, starting, now, budget: CausedBudget) -> None:
    """Sessions started by `start_flow` steps; the starting session's timeline says
    whether one started, and if not, why."""
    flow_rows = {r.key: r for r in conn.execute(sa.select(flows))}
    candidates, outcomes = [], []
    for t, key, _ in starting:
        row = flow_rows.get(key)
        if row is None or row.status != FlowStatus.ON:
            outcomes.append("flow is off")
        elif t.depth + 1 > MAX_CHAIN_DEPTH:
            outcomes.append(f"flow chain depth limit ({MAX_CHAIN_DEPTH}) reached")
        else:
            flow = catalog.flow(conn, key, row.version)
            candidates.append(
                Candidate(flow, t.visitor_id, t.origin_event_id, t.depth + 1, t.root_event_id)
            )
            outcomes.append(None)
    started = iter(start_sessions(conn, candidates, now, budget))
    entries = []
    for (t, key, step), refusal in zip(starting, outcomes, strict=True):
        outcome = refusal or next(started)
        if isinstance(outcome, int):
            kind, data = "flow_started", {"flow": key, "session_id": outcome}
        else:
            kind, data = "flow_not_started", {"flow": key, "reason": str(outcome)}
        entries.append(
            {
                "session_id": t.session_id,
                "visitor_id": t.visitor_id,
                "at": now,
                "step": step,
                "kind": kind,
                "data": data,
            }
        )
    conn.execute(timeline.insert(), entries)


def _emails(conn, visitor_ids) -> dict[int, str]:
    people = visitor_store.load_by_ids(conn, visitor_ids, lock=False)
    return {v.id: v.email for v in people.values()}


# -- a person acting on one session -------------------------------------------------


MAX_ID = 2**63 - 1
"""The largest id a session can have (a signed 64-bit integer in both databases)."""


def get(conn: Connection, session_id: int) -> Session:
    """The session `session_id`; raises SessionNotFound, also for an id no session can
    have (beyond 64 bits SQLite raises OverflowError and PostgreSQL a DataError)."""
    if not 0 < session_id <= MAX_ID:
        raise SessionNotFound(f"no session {session_id}")
    row = conn.execute(sa.select(sessions).where(sessions.c.id == session_id)).first()
    if row is None:
        raise SessionNotFound(f"no session {session_id}")
    return Session.from_row(row)


def _log(conn, session: Session, now, kind, data: dict[str, Any]) -> None:
    conn.execute(
        timeline.insert().values(
            session_id=session.id,
            visitor_id=session.visitor_id,
            at=now,
            step=session.step,
            kind=kind,
            data=data,
        )
    )
    notify(conn, WORK_CHANNEL, TIMELINE_CHANNEL)


def _change(conn, session: Session, now, **values) -> None:
    conn.execute(
        sessions.update()
        .where(sessions.c.id == session.id)
        .values(**values, revision=sessions.c.revision + 1, updated_at=now, claim_expires_at=None)
    )


def _due_now(conn: Connection, session: Session, now: datetime) -> datetime | None:
    """`now` if the session's flow is on; else no due time (turning the flow on makes
    its sessions due), so that no claim reads a session it may not take."""
    return now if flow_store.get_flow(conn, session.flow_key).status == FlowStatus.ON else None


def _require(session: Session, allowed, verb: str) -> None:
    if session.status not in allowed:
        names = " or ".join(sorted(s.value for s in allowed))
        raise InvalidSessionState(
            f"session {session.id} is {session.status}; only {names} sessions can be {verb}"
        )


def _require_one_at_a_time(conn: Connection, catalog: Catalog, session: Session) -> None:
    """A failed session does not keep its visitor out of a `one_at_a_time` flow, so a
    newer session may be under way; retrying the failed one then would make two."""
    current = flow_store.get_flow(conn, session.flow_key).version
    if catalog.flow(conn, session.flow_key, current).definition.entry != EntryRule.ONE_AT_A_TIME:
        return
    other = conn.execute(
        sa.select(sessions.c.id).where(
            sessions.c.visitor_id == session.visitor_id,
            sessions.c.flow_key == session.flow_key,
            sessions.c.status.in_([s.value for s in UNFINISHED]),
        )
    ).scalar()
    if other is not None:
        raise InvalidSessionState(
            f"session {session.id} cannot be retried: its visitor is in session {other} of "
            f"'{session.flow_key}', which takes one session at a time; stop or finish that "
            "one first"
        )


def stop(conn: Connection, session_id: int, *, now: datetime, actor: str) -> Session:
    session = get(conn, session_id)
    _require(session, RUNNABLE, "stopped")
    _change(
        conn,
        session,
        now,
        status=SessionStatus.STOPPED,
        resume_status=session.status,
        due_at=None,
        paused_since=session.paused_since or now,
    )
    delivery_store.hold(conn, deliveries.c.session_id == session.id, now=now)
    _log(conn, session, now, "stopped", {"by": actor})
    return get(conn, session_id)


def resume(conn: Connection, session_id: int, *, now: datetime, actor: str) -> Session:
    session = get(conn, session_id)
    _require(session, {SessionStatus.STOPPED}, "resumed")
    due_at = _due_now(conn, session, now)
    _change(conn, session, now, status=session.resume_status, resume_status=None, due_at=due_at)
    if due_at is not None:  # else its flow is off: turning it on releases them
        delivery_store.release(conn, deliveries.c.session_id == session.id, now=now)
    _log(conn, session, now, "resumed", {"by": actor})
    return get(conn, session_id)


def retry(
    conn: Connection, session_id: int, *, catalog: Catalog, now: datetime, actor: str
) -> Session:
    session = get(conn, session_id)
    _require(session, {SessionStatus.FAILED}, "retried")
    _require_one_at_a_time(conn, catalog, session)
    state = dict(session.state)
    state["retries"] = state.get("retries", 0) + 1
    _change(
        conn,
        session,
        now,
        status=SessionStatus.ACTIVE,
        step_begun=False,
        state=state,
        finished_at=None,
        due_at=_due_now(conn, session, now),
    )
    _log(conn, session, now, "retried", {"by": actor})
    return get(conn, session_id)
