"""Date triggers' schedules (SPEC §7 Triggers, docs/definitions.md "Triggers on a
date"): each visitor whose field gives a flow's `date` trigger an occurrence has a due
check (store/due.py, kind `date`, key the flow's) at that occurrence; the worker fires
it (`fire`), which records a `$date` origin event through the normal ingestion.

The schedules are kept in the transaction of every change that can move them, never by
scanning visitors on a timer:

- a change of the trigger's field or of the visitor's `timezone` field, from any
  source (`reschedule`, called where visitors are written back);
- a new version of a flow whose rule or zone differs (`flow_saved`): one pass over the
  visitors that have the field, in chunks, set-based;
- an erasure (due.forget_visitors).

A flow that is off keeps its schedules: its occurrences are refused when they come
(`flow_off`, "Why not?"), as events are, and turning it on replays none.

Races (PostgreSQL): a change commits its schedule with the visitor's row locked, so
changes of one visitor take turns. The pass of `flow_saved` reads visitors without
locking them (a lock on every row would hold up ingestion for the whole pass); a
change committed between its read and its write of one chunk can leave that visitor's
check at the old value. When such a check comes early, `fire` finds no occurrence due
and schedules the right one; one that came late fires late. The window is one chunk's
work.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sluice.definitions.model import DateRule, FlowDefinition
from sluice.definitions.problems import DefinitionError
from sluice.engine import dates
from sluice.engine.timing import visitor_zone
from sluice.engine.triggers import FlowState
from sluice.records import DATE
from sluice.store import due as due_store
from sluice.store import visitors as visitor_store
from sluice.store.due import DueCheck
from sluice.store.flows import Catalog, UnknownFlow, get_flow
from sluice.store.schema import visitors

log = logging.getLogger(__name__)

KIND = "date"
"""The due checks' kind (store/due.py)."""

CHUNK = 1000
"""Visitors read per query when a saved flow is scheduled."""

LATE_LIMIT = timedelta(days=30)
"""How late an occurrence may still fire (a worker that was down): later than this, it
is passed over. A birthday email a month late is worse than none, and a check that came
early (a schedule made before the server's zone changed) never fires last year's."""

BUSY_RETRY = timedelta(seconds=5)
"""When a visitor whose check fell due is being changed by another transaction, the
check is tried again this much later (PostgreSQL)."""


def rule_of(flow: FlowDefinition) -> tuple[DateRule, str | None] | None:
    """What a flow's schedules depend on: its date rule and its zone; None for a flow
    whose trigger is not `date`."""
    rule = flow.trigger.date
    return None if rule is None else (rule, flow.timezone)


# -- a visitor's data changed ----------------------------------------------------------


def reschedule(
    conn: Connection,
    catalog: Catalog,
    changed: Iterable[visitor_store.WorkingVisitor],
    now: datetime,
    flows: list[FlowState] | None = None,
) -> None:
    """Move the date checks of the visitors in `changed` whose trigger field or
    `timezone` field changed in this transaction (`WorkingVisitor.changes`): each to
    its next occurrence, or away when the field gives none. Set-based: one upsert, and
    one delete per flow. `flows`: `ingest.flow_states` when the caller has them."""
    touched = [v for v in changed if v.changes]
    if not touched:
        return
    from sluice.store.ingest import flow_states  # ingest calls this module

    states = flow_states(conn, catalog) if flows is None else flows
    ruled = [(s.flow.definition, s.flow.definition.trigger.date) for s in states]
    ruled = [(flow, rule) for flow, rule in ruled if rule is not None]
    if not ruled:
        return
    names = {v.id: {c.name for c in v.changes if c.kind == "field_changed"} for v in touched}
    due: list[DueCheck] = []
    for flow, rule in ruled:
        gone = []
        for visitor in touched:
            if rule.field not in names[visitor.id] and "timezone" not in names[visitor.id]:
                continue
            found = _next(flow, rule, visitor.fields, catalog, now)
            if found is None:
                gone.append(visitor.id)
            else:
                due.append(DueCheck(KIND, flow.key, visitor.id, found.at))
        due_store.cancel(conn, KIND, flow.key, gone)
    due_store.schedule(conn, due)


def _next(flow: FlowDefinition, rule: DateRule, fields: dict[str, Any], catalog, after):
    zone = visitor_zone(fields, flow.timezone, catalog.default_timezone).zone
    return dates.next_occurrence(rule, fields.get(rule.field), zone, after)


# -- a flow was saved ------------------------------------------------------------------


def flow_saved(
    conn: Connection,
    catalog: Catalog,
    flow: FlowDefinition,
    before: tuple[DateRule, str | None] | None,
    now: datetime,
) -> None:
    """After a new version of `flow` is saved (`before`: `rule_of` its previous
    version, None for a new flow): when its rule or zone changed, drop its checks and
    schedule every visitor whose field gives an occurrence."""
    after = rule_of(flow)
    if after == before:
        return
    due_store.cancel(conn, KIND, flow.key)
    if after is not None:
        _schedule_everyone(conn, catalog, flow, after[0], now)


def previous_rule(conn: Connection, catalog: Catalog, key: str):
    """`rule_of` the current version of flow `key`, before a save; None when there is
    no such flow (or its version no longer passes validation: then it is scheduled
    afresh)."""
    try:
        row = get_flow(conn, key)
        return rule_of(catalog.flow(conn, key, row.version).definition)
    except (UnknownFlow, DefinitionError):
        return None


def _schedule_everyone(conn, catalog: Catalog, flow: FlowDefinition, rule: DateRule, now) -> None:
    """One pass over the visitors that have the field, by id, `CHUNK` at a time: only
    the field and `timezone` are read where a JSON path can name the field (the whole
    `fields` otherwise), and each chunk's checks are one upsert."""
    columns = _field_columns(conn, rule.field)
    last = 0
    while True:
        rows = conn.execute(
            sa.select(visitors.c.id, *columns)
            .where(visitors.c.id > last, columns[0].is_not(None))
            .order_by(visitors.c.id)
            .limit(CHUNK)
        ).all()
        if not rows:
            return
        due = []
        for visitor_id, *values in rows:
            fields = (
                values[0] if len(values) == 1 else {rule.field: values[0], "timezone": values[1]}
            )
            found = _next(flow, rule, fields, catalog, now)
            if found is not None:
                due.append(DueCheck(KIND, flow.key, visitor_id, found.at))
        due_store.schedule(conn, due)
        last = rows[-1][0]


def _field_columns(conn: Connection, name: str) -> tuple:
    """The field `name` and `timezone` as JSON values (None when absent), as impact.py
    reads a field: on SQLite `->` with SQLAlchemy's path, which gives the text as
    stored. A name such a path cannot spell (with `"` or `\\`) reads `fields` whole."""
    if conn.dialect.name != "sqlite":
        return visitors.c.fields[name], visitors.c.fields["timezone"]
    if '"' in name or "\\" in name:
        return (visitors.c.fields,)
    return tuple(
        sa.type_coerce(visitors.c.fields.op("->")(sa.literal(f'$."{n}"')), sa.JSON)
        for n in (name, "timezone")
    )


# -- a check fell due ------------------------------------------------------------------


def fire(
    conn: Connection, key: str, visitor_ids: list[int], now: datetime, *, catalog: Catalog
) -> None:
    """The due-check handler of kind `date` (worker/loop.py), in the claim's
    transaction: for each visitor whose field still gives an occurrence due now (at most
    `LATE_LIMIT` ago), record a `$date` event through ingestion (entry rules, `if`, a
    flow that is off refusing it); schedule the next occurrence (`every: year`, or one
    a change moved later). A visitor whose field no longer gives one gets nothing.

    The event's idempotency key is the flow and the day (`KEY:2027-03-14`), so a day
    whose time moved after it fired (the visitor's zone changed, the flow's `at`)
    starts nothing again. Visitors another transaction is changing (their row locked)
    are skipped and tried again `BUSY_RETRY` later: waiting for that lock while this
    transaction holds their checks could deadlock with the change, which writes its
    schedule after locking the visitor."""
    from sluice.store.ingest import ingest

    try:
        row = get_flow(conn, key)
        flow = catalog.flow(conn, key, row.version).definition
    except UnknownFlow:
        return
    except DefinitionError as error:  # rules tightened since it was saved: fire nothing
        log.warning("date checks of flow %s dropped: its version is invalid: %s", key, error)
        return
    rule = flow.trigger.date
    if rule is None:
        return  # the trigger changed since; saving it dropped the checks
    people = _lock_free(conn, visitor_ids)
    busy = set(visitor_ids) - set(people) - _gone(conn, visitor_ids, people)
    due = [DueCheck(KIND, key, v, now + BUSY_RETRY) for v in busy]
    incoming = []
    for visitor in people.values():
        zone = visitor_zone(visitor.fields, flow.timezone, catalog.default_timezone).zone
        value = visitor.fields.get(rule.field)
        came = dates.due_occurrence(rule, value, zone, now)
        if came is not None and now - came.at > LATE_LIMIT:
            came = None
        later = dates.next_occurrence(rule, value, zone, now + timedelta(microseconds=1))
        if later is not None:
            due.append(DueCheck(KIND, key, visitor.id, later.at))
        if came is not None:
            incoming.append(_event(key, rule, visitor.email, came))
    due_store.schedule(conn, due)
    if incoming:
        ingest(conn, catalog, incoming, now)


def _event(key: str, rule: DateRule, email: str, came: dates.Occurrence):
    from sluice.store.ingest import IncomingEvent

    details: dict[str, Any] = {
        "flow": key,
        "field": rule.field,
        "date": came.day.isoformat(),
        "occurrence": came.at.isoformat(),
    }
    if rule.offset:
        details["offset"] = rule.offset_text
    return IncomingEvent(
        type=DATE,
        email=email,
        details=details,
        source="date",
        idempotency_key=f"{key}:{came.day.isoformat()}",
    )


def _lock_free(conn: Connection, ids: list[int]) -> dict[int, visitor_store.WorkingVisitor]:
    """The visitors of `ids` that no other transaction holds, locked (PostgreSQL)."""
    if conn.dialect.name != "postgresql":
        return visitor_store.load_by_ids(conn, ids, lock=False)
    query = sa.select(visitors.c.id).where(visitors.c.id.in_(ids)).with_for_update(skip_locked=True)
    free = conn.execute(query).scalars().all()
    return visitor_store.load_by_ids(conn, free, lock=False) if free else {}


def _gone(conn: Connection, ids: list[int], found) -> set[int]:
    """Of `ids` not in `found`, those with no visitor row (erased meanwhile)."""
    missing = set(ids) - set(found)
    if not missing:
        return set()
    present = conn.execute(sa.select(visitors.c.id).where(visitors.c.id.in_(missing))).scalars()
    return missing - set(present)
