"""The path of accepted events: one transaction stores them, applies their effects on
visitors, starts the sessions whose triggers they match, records why the others that
matched a trigger by type did not start (store/refusals.py), and wakes the sessions
that wait for them or have them as a goal.

Everything is set-based: a batch of a thousand events is a handful of statements,
with trigger matching done in memory.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sluice.definitions.model import EntryRule
from sluice.definitions.problems import DefinitionError
from sluice.engine.context import template_context
from sluice.engine.work import FlowVersion
from sluice.records import UNFINISHED, FlowStatus, SessionStatus
from sluice.store import refusals as refusal_store
from sluice.store import visitors as visitor_store
from sluice.store.budget import CausedBudget, spent_reason
from sluice.store.bulk import insert_many, insert_returning_ids
from sluice.store.flows import Catalog, FlowRow, list_flows
from sluice.store.notify import TIMELINE_CHANNEL, WORK_CHANNEL, notify
from sluice.store.refusals import RefusalReason
from sluice.store.schema import events, sessions, timeline


@dataclass(frozen=True)
class Cause:
    """The session whose `track` step recorded an event, and the chain it is part of."""

    session_id: int
    visitor_id: int
    step: str | None
    root_event_id: int


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
class Candidate:
    """A session that may start: the flow, the visitor and the origin event."""

    flow: FlowVersion
    visitor_id: int
    origin_event_id: int
    depth: int
    root_event_id: int | None = None
    """The chain whose budget of caused events the session spends; None for a session
    the event from outside starts itself."""
    cause: Cause | None = None
    """The session whose `track` step recorded the origin event."""


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
) -> IngestResult:
    """Store the events and start the sessions they trigger. Events recorded by flows
    (`cause` set) start sessions only while `budget` allows."""
    result = IngestResult()
    if not incoming:
        return result
    people = visitor_store.upsert(conn, (e.email for e in incoming), now)
    seen = _known_keys(conn, incoming, people)
    all_flows = _flows(conn, catalog)
    on_flows = [(row, flow) for row, flow in all_flows if row.status == FlowStatus.ON]
    # A trigger's `if` sees the visitor as this very event left them; a copy is taken
    # only for the events that such a condition will look at.
    conditional = {
        event_type
        for _, flow in on_flows
        if flow.definition.trigger.condition is not None
        for event_type in flow.definition.trigger.events
    }
    rows, snapshots, causes = [], [], []
    for event in incoming:
        visitor = people[visitor_store.email_key(event.email)]
        key = event.key
        if key is not None:
            identity = (visitor.id, event.type, key)
            if identity in seen:
                result.duplicates += 1
                continue
            seen.add(identity)
        _apply_effects(visitor, event, now)
        rows.append(_event_row(visitor.id, event, key, now))
        snapshots.append(visitor.view() if event.type in conditional else None)
        causes.append(event.cause)
    visitor_store.write_back(conn, people.values(), now)
    if not rows:
        return result
    result.event_ids = insert_returning_ids(conn, events, rows)
    result.accepted = len(rows)
    _wake_interested(conn, on_flows, rows, now)
    candidates, refusals = _match_triggers(
        all_flows, rows, result.event_ids, snapshots, causes, now
    )
    outcomes = start_sessions(conn, candidates, now, budget)
    result.sessions_started = [s for s in outcomes if isinstance(s, int)]
    _log_spent_budget(conn, candidates, outcomes, now)
    types = dict(zip(result.event_ids, (r["type"] for r in rows), strict=True))
    refusals += [
        refusal_store.refusal(
            c.visitor_id,
            c.flow.key,
            (c.origin_event_id, types[c.origin_event_id]),
            outcome.reason,
            outcome.data,
            now,
        )
        for c, outcome in zip(candidates, outcomes, strict=True)
        if isinstance(outcome, Refused)
    ]
    # Rows of a batch in the order of its events: the last one of a visitor and flow
    # is the one kept.
    refusals.sort(key=lambda r: r["event_id"])
    refusal_store.record(conn, refusals)
    notify(conn, WORK_CHANNEL, TIMELINE_CHANNEL)
    return result


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


def _flows(conn: Connection, catalog: Catalog) -> list[tuple[FlowRow, FlowVersion]]:
    """Every flow with its current version; those that are off only to say that they
    were (a refusal), so one whose stored version no longer passes validation (rules
    tightened since it was saved) is left out rather than failing the batch."""
    found = []
    for row in list_flows(conn):
        try:
            found.append((row, catalog.flow(conn, row.key, row.version)))
        except DefinitionError:
            if row.status == FlowStatus.ON:
                raise
    return found


def _wake_interested(conn, on_flows, rows, now) -> None:
    """Sessions that wait for one of these event types, or have it as a goal, are due
    now; the worker decides what the event means for them."""
    types = {r["type"] for r in rows}
    keys = [flow.key for _, flow in on_flows if flow.interesting_events & types]
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


def _match_triggers(
    flows, rows, ids, snapshots, causes, now
) -> tuple[list[Candidate], list[dict[str, Any]]]:
    """The candidates of the flows that are on whose trigger the events match, and the
    refusals (store/refusals.py) of those matched by type only: the flow was off, or
    its `if` was false."""
    by_type: dict[str, list[tuple[FlowRow, FlowVersion]]] = defaultdict(list)
    for row, flow in flows:
        for event_type in flow.definition.trigger.events:
            by_type[event_type].append((row, flow))
    candidates, refusals = [], []
    for row, event_id, visitor, cause in zip(rows, ids, snapshots, causes, strict=True):
        for flow_row, flow in by_type.get(row["type"], ()):
            event = (event_id, row["type"])
            if flow_row.status != FlowStatus.ON:
                off = {"off_since": flow_row.off_since and flow_row.off_since.isoformat()}
                refusals.append(
                    refusal_store.refusal(
                        row["visitor_id"], flow.key, event, RefusalReason.FLOW_OFF, off, now
                    )
                )
                continue
            condition = flow.definition.trigger.condition
            if condition is not None:
                origin = {
                    "id": event_id,
                    "type": row["type"],
                    "details": row["details"],
                    "date": row["date"].isoformat(),
                }
                flow_view = {"key": flow.key, "name": flow_row.name, "version": flow.version}
                context = template_context(visitor=visitor, origin=origin, flow=flow_view, now=now)
                result = condition.evaluate(context)
                if not result.value:
                    data = {"condition": condition.source, "values": result.reads}
                    if result.error:
                        data["error"] = result.error
                    refusals.append(
                        refusal_store.refusal(
                            row["visitor_id"],
                            flow.key,
                            event,
                            RefusalReason.CONDITION_FALSE,
                            data,
                            now,
                        )
                    )
                    continue
            root = cause.root_event_id if cause else None
            candidates.append(
                Candidate(flow, row["visitor_id"], event_id, row["depth"], root, cause)
            )
    return candidates, refusals


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
    # `every_time` without a cooldown needs no history: such candidates always start.
    history = _entry_history(conn, [c for c in candidates if _needs_history(c.flow)])
    allowed, refused = [], {}
    blocked: dict[int, tuple[str, int | Candidate]] = {}
    for c in candidates:
        past = history.setdefault((c.visitor_id, c.flow.key), _History())
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


@dataclass
class _History:
    """What entry rules need to know of a visitor's past sessions in one flow. A
    session is named by its id, or by its candidate when this batch starts it."""

    total: int = 0
    unfinished: int = 0
    last_started: datetime | None = None
    last_session: int | Candidate | None = None
    open_session: int | Candidate | None = None
    """An unfinished session (the latest)."""

    def refusal(self, flow: FlowVersion, now: datetime) -> tuple[str, int | Candidate] | None:
        """The rule that refuses a new session (`once`, `one_at_a_time`, `cooldown`) and
        the session that blocks it; None when a session may start."""
        definition = flow.definition
        if definition.entry == EntryRule.ONCE and self.total:
            return EntryRule.ONCE.value, self.last_session
        if definition.entry == EntryRule.ONE_AT_A_TIME and self.unfinished:
            return EntryRule.ONE_AT_A_TIME.value, self.open_session
        cooldown: timedelta | None = definition.cooldown
        if cooldown and self.last_started and now - self.last_started < cooldown:
            return "cooldown", self.last_session
        return None

    def record(self, now: datetime, started: Candidate) -> None:
        self.total += 1
        self.unfinished += 1
        self.last_started = now
        self.last_session = self.open_session = started


def _needs_history(flow: FlowVersion) -> bool:
    definition = flow.definition
    return definition.entry != EntryRule.EVERY_TIME or definition.cooldown is not None


def _entry_history(conn, candidates: list[Candidate]) -> dict[tuple[int, str], _History]:
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
        history[(visitor_id, flow_key)] = _History(
            total, int(open_count or 0), last, latest, open_id
        )
    return history
