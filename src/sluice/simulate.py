"""Simulations: a flow run against a scripted visitor on a virtual clock.

The real engine and store do the work, on a scratch SQLite file that is thrown away
afterwards, so what a simulation shows is what would happen; nothing reaches the
real database and nothing is sent (emails stay in the scratch outbox; webhooks are
never dispatched: each is taken as answered 200 at once, so the session goes on as it
would when the endpoint works — `simulated: true` in its timeline entry).
"""

from __future__ import annotations

import logging
import re
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from sluice.clock import FakeClock, SystemClock
from sluice.definitions.durations import parse_duration, parse_instant
from sluice.edge import EventInput, InvalidInput, unstorable
from sluice.records import DeliveryState, FlowStatus, SessionStatus
from sluice.service import Sluice
from sluice.settings import Settings
from sluice.store import dates
from sluice.store import deliveries as delivery_store
from sluice.store import due as due_store
from sluice.store import flows as flow_store
from sluice.store import visitors as visitor_store
from sluice.store.schema import flows, sessions

HORIZON = timedelta(days=400)
"""How far past the last scripted event the virtual clock may run."""
_OFFSET = re.compile(r"^\+(.+)$")


class ScriptError(ValueError):
    """The event script is not usable."""


def simulate_flow(
    documents: list[tuple[str, dict]], script: Any, *, stored: Sluice | None = None
) -> dict[str, Any]:
    """Run `documents` against `script` ({visitor: {email, fields?, tags?}, events:
    [{at?, type, details?, fields?}]}) and return {"visitor", "sessions"} as they would
    be. Raises ScriptError for an unusable script and DefinitionError for bad documents.

    The simulation starts at the first absolute `at` in the script, or at the current
    time when every `at` is an offset; each `+offset` counts from that start."""
    now = (stored.clock if stored else SystemClock()).now().replace(microsecond=0)
    visitor, start, events = _read_script(script, now)
    with tempfile.TemporaryDirectory() as scratch:
        clock = FakeClock(start)
        settings = Settings(
            database_url=f"sqlite:///{Path(scratch) / 'simulation.db'}",
            signing_key="simulation",
            timezone=stored.settings.timezone if stored else "UTC",
        )
        sim = Sluice(settings, clock)
        try:
            _migrate_quietly(sim)
            _prepare(sim, documents, stored, visitor)
            worker = sim.worker()
            for at, event in events:
                _run_until(sim, worker, clock, at)
                clock.set(max(clock.now(), at))
                sim.send([event])
                worker.run_until_idle()
            _run_until(sim, worker, clock, (events[-1][0] if events else start) + HORIZON)
            ids = [s["id"] for s in sim.sessions(email=visitor["email"], limit=1000)]
            return {
                "visitor": sim.visitor(visitor["email"]),
                "sessions": [sim.session(i) for i in sorted(ids)],
            }
        finally:
            sim.close()


def _read_script(script: Any, now: datetime):
    """The visitor, the start, and the events with their times, in script order."""
    if not isinstance(script, dict):
        raise ScriptError("the event script must be a mapping with 'visitor' and 'events'")
    visitor = script.get("visitor")
    if not isinstance(visitor, dict) or not isinstance(visitor.get("email"), str):
        raise ScriptError("visitor: needs an 'email'")
    if not isinstance(visitor.get("fields", {}), dict):
        raise ScriptError("visitor.fields: must be a mapping")
    if found := unstorable(visitor.get("fields", {}), "visitor.fields"):
        raise ScriptError(str(InvalidInput(found)))
    if not isinstance(visitor.get("tags", []), list):
        raise ScriptError("visitor.tags: must be a list")
    raw_events = script.get("events", [])
    if not isinstance(raw_events, list):
        raise ScriptError("events: must be a list")
    for index, raw in enumerate(raw_events):
        if not isinstance(raw, dict):
            raise ScriptError(f"events[{index}]: must be a mapping")
    start = _start(raw_events, now)
    events: list[tuple[datetime, EventInput]] = []
    for index, raw in enumerate(raw_events):
        at = _when(raw.get("at", "+0s"), start, index)
        if events and at < events[-1][0]:
            # A script reads as a story: an event before the one above it is a mistake
            # (an offset counted from the wrong event, a typo), not a reordering.
            raise ScriptError(
                f"events[{index}].at: {_iso(at)} is before events[{index - 1}] "
                f"({_iso(events[-1][0])}); list events in time order "
                f"(+offsets count from the start, {_iso(start)})"
            )
        data = {k: v for k, v in raw.items() if k != "at"}
        data.setdefault("email", visitor["email"])
        data["date"] = at
        try:
            events.append((at, EventInput.checked(data, source="simulation")))
        except InvalidInput as error:
            raise ScriptError(f"events[{index}]: {error}") from None
    return visitor, start, events


def _start(raw_events: list[dict], now: datetime) -> datetime:
    """The first absolute `at` of the script, else `now`."""
    for index, raw in enumerate(raw_events):
        value = raw.get("at", "+0s")
        if not (isinstance(value, str) and _OFFSET.match(value)):
            return _when(value, now, index)
    return now


def _when(value: Any, start: datetime, index: int) -> datetime:
    try:
        if isinstance(value, str) and (offset := _OFFSET.match(value)):
            at = start + parse_duration(offset.group(1))
        else:
            at = parse_instant(value)
        at + HORIZON  # raises OverflowError unless the clock can run on past it
        return at
    except ValueError as error:
        raise ScriptError(f"events[{index}].at: {error}") from None
    except OverflowError:
        raise ScriptError(f"events[{index}].at: {value!r} is too far in the future") from None


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _prepare(sim: Sluice, documents, stored: Sluice | None, visitor: dict) -> None:
    """The scratch database gets the stored templates and flows the documents may
    refer to, then the documents themselves, switched on, and the scripted visitor."""
    keys = {doc.get("key") for _, doc in documents}
    inherited, switched_on = [], []
    if stored is not None:
        with stored.db.read() as conn:
            for key, doc in flow_store.current_templates(conn).items():
                if key not in keys:
                    inherited.append((f"template {key}", doc))
            for row in flow_store.list_flows(conn):
                if row.key not in keys:
                    inherited.append((f"flow {row.key}", _current(conn, row.key)))
                    if row.status == FlowStatus.ON:
                        switched_on.append(row.key)
    everything = inherited + documents
    # The scratch versions' texts are never shown: JSON, which reads back as the
    # document, spares a YAML dump of every stored flow (see service._text_of).
    texts = [orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS).decode() for _, doc in everything]
    report = sim.apply(everything, texts=texts, actor="simulation")
    for key in switched_on + [k for _, d in documents if (k := d.get("key")) in report.flows]:
        sim.set_flow_status(key, FlowStatus.ON, actor="simulation")
    now = sim.clock.now()
    with sim.db.write() as conn:
        person = visitor_store.upsert(conn, [visitor["email"]], now)
        working = next(iter(person.values()))
        working.merge_fields(visitor.get("fields", {}))
        for tag in visitor.get("tags", []):
            working.add_tag(str(tag))
        visitor_store.write_back(conn, [working], now)
        dates.reschedule(conn, sim.catalog, [working], now)


def _current(conn, key: str) -> dict:
    return flow_store.stored_definition(conn, key, flow_store.get_flow(conn, key).version)


def _run_until(sim: Sluice, worker, clock: FakeClock, until: datetime) -> None:
    """Jump the virtual clock from one due session (or due check: a date trigger's day)
    to the next, up to `until`."""
    on = sa.select(flows.c.key).where(flows.c.status == FlowStatus.ON)
    due = sa.select(sa.func.min(sessions.c.due_at)).where(
        sessions.c.status.in_([SessionStatus.ACTIVE, SessionStatus.WAITING]),
        sessions.c.flow_key.in_(on),
    )
    while True:
        if _webhooks_answered(sim, clock.now()):
            worker.run_until_idle()
        with sim.db.read() as conn:
            times = [conn.execute(due).scalar(), due_store.next_due(conn)]
        next_due = min((t for t in times if t is not None), default=None)
        if next_due is None or next_due > until:
            return
        clock.set(max(clock.now(), next_due.astimezone(UTC)))
        worker.run_until_idle()


def _webhooks_answered(sim: Sluice, now: datetime) -> int:
    """Take every pending webhook as delivered (HTTP 200) at `now`, as a working
    endpoint would answer; wakes the sessions waiting for them. How many there were."""
    with sim.db.write() as conn:
        pending = delivery_store.claim(
            conn, kinds=["webhook"], now=now, limit=1000, lease=timedelta(minutes=1)
        )
        delivery_store.record(
            conn,
            [
                delivery_store.Result(
                    idempotency_id=d.idempotency_id,
                    state=DeliveryState.SENT,
                    attempts=d.attempts + 1,
                    entry=("webhook_delivered", {"status": 200, "simulated": True}),
                )
                for d in pending
            ],
            now=now,
        )
    return len(pending)


_ALEMBIC = logging.getLogger("alembic")


def _migrate_quietly(sim: Sluice) -> None:
    """Create the scratch database's schema without Alembic's INFO lines: a server
    logs every migration, and a person simulating in the builder makes a scratch
    database each time (13 lines in the log for each Simulate)."""
    level = _ALEMBIC.level
    _ALEMBIC.setLevel(logging.WARNING)
    try:
        sim.upgrade()
    finally:
        _ALEMBIC.setLevel(level)
