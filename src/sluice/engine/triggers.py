"""Which changes start sessions, decided without the database (SPEC §2.1, §3 and §7
Triggers): the origin events that data changes need recorded, the flows that an
event's trigger matches, and the entry rules and cooldowns that refuse a match.

The store loads what these functions read (flows, the visitors as the events left
them, each visitor's past sessions in a flow) and writes what they decide
(store/ingest.py): every source of events and data changes — the API, Bento's
commands, the UI, flow steps — goes through the same ingestion and so through here.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sluice.definitions.model import EntryRule, Trigger
from sluice.engine.context import template_context
from sluice.engine.work import FlowVersion
from sluice.records import FIELD_CHANGED, TAG_ADDED


class RefusalReason(enum.StrEnum):
    """Why an event that a flow's trigger names started no session (store/refusals.py)."""

    CONDITION_FALSE = "condition_false"
    ENTRY_RULE = "entry_rule"
    FLOW_OFF = "flow_off"
    BUDGET = "budget"


# -- data changes ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DataChange:
    """One change of a visitor's data: `tag_added` (`name` the tag) or `field_changed`
    (`name` the field's key; `before` and `after` its values, None where it had none
    or was removed)."""

    kind: str
    name: str
    before: Any = None
    after: Any = None
    visitor: dict[str, Any] | None = None
    """The visitor as this change left them (`visitor_view`), kept only where a
    trigger's `if` on a data change will read it (`reads_changes`)."""

    @property
    def origin(self) -> tuple[str, dict[str, Any]]:
        """The origin event that records it: `("$tag_added", {"tag"})` or
        `("$field_changed", {"field", "from", "to"})`."""
        if self.kind == "tag_added":
            return TAG_ADDED, {"tag": self.name}
        return FIELD_CHANGED, {"field": self.name, "from": self.before, "to": self.after}


def named_changes(
    changes: Iterable[tuple[Any, DataChange]], triggers: Iterable[Trigger]
) -> list[tuple[Any, DataChange]]:
    """The `changes` (each given with a key of the caller's, such as who made it) whose
    origin event one of `triggers` names (of flows on or off: one that is off records
    that it refused), in order. Only these are recorded, so a change that starts no
    flow costs no event."""
    wanted = [t for t in triggers if TAG_ADDED in t.events or FIELD_CHANGED in t.events]
    if not wanted:
        return []
    return [
        (key, change) for key, change in changes if any(t.matches(*change.origin) for t in wanted)
    ]


def reads_changes(flows: Iterable[FlowState]) -> bool:
    """Whether a flow that is on has a trigger on a data change with an `if`, which
    reads the visitor as the change left them: then each change keeps a copy of the
    visitor (`DataChange.visitor`)."""
    return any(
        state.on
        and (trigger := state.flow.definition.trigger).condition is not None
        and (TAG_ADDED in trigger.events or FIELD_CHANGED in trigger.events)
        for state in flows
    )


# -- matching ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Cause:
    """The session whose step recorded an event (a `track`, or a data change that a
    trigger names), and the chain it is part of."""

    session_id: int
    visitor_id: int
    step: str | None
    root_event_id: int


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
    """The session whose step recorded the origin event."""


@dataclass(frozen=True)
class Origin:
    """A stored event, as trigger matching reads it: `visitor` is the visitor as the
    event left them (`visitor_view`), given only where a trigger's `if` will read it."""

    id: int
    type: str
    visitor_id: int
    details: dict[str, Any]
    date: datetime
    depth: int
    visitor: dict[str, Any] | None = None
    cause: Cause | None = None


@dataclass(frozen=True)
class FlowState:
    """A flow as matching needs it: its current version, name, and whether it is on
    (`off_since` when not)."""

    flow: FlowVersion
    name: str
    on: bool
    off_since: datetime | None = None


@dataclass(frozen=True)
class TriggerRefusal:
    """An event that a flow's trigger names that started no session there: `reason`
    and its `data` as store/refusals.py records them."""

    visitor_id: int
    flow_key: str
    event: tuple[int, str]
    reason: RefusalReason
    data: dict[str, Any]


def match(
    flows: Iterable[FlowState], origins: Iterable[Origin], now: datetime
) -> tuple[list[Candidate], list[TriggerRefusal]]:
    """The candidates of the flows that are on whose trigger the events match, and the
    refusals of those whose trigger names the event but that did not take it: the flow
    was off, or its `if` was false (or failed)."""
    by_type: dict[str, list[FlowState]] = defaultdict(list)
    for state in flows:
        for event_type in state.flow.definition.trigger.events:
            by_type[event_type].append(state)
    candidates, refusals = [], []
    for origin in origins:
        for state in by_type.get(origin.type, ()):
            flow = state.flow
            trigger = flow.definition.trigger
            if not trigger.matches(origin.type, origin.details):
                continue
            event = (origin.id, origin.type)
            if not state.on:
                off = {"off_since": state.off_since and state.off_since.isoformat()}
                refusals.append(
                    TriggerRefusal(origin.visitor_id, flow.key, event, RefusalReason.FLOW_OFF, off)
                )
                continue
            if trigger.condition is not None and (refused := _condition(state, origin, now)):
                refusals.append(refused)
                continue
            root = origin.cause.root_event_id if origin.cause else None
            candidates.append(
                Candidate(flow, origin.visitor_id, origin.id, origin.depth, root, origin.cause)
            )
    return candidates, refusals


def _condition(state: FlowState, origin: Origin, now: datetime) -> TriggerRefusal | None:
    """The refusal when the trigger's `if` is false or fails for `origin`, else None."""
    flow = state.flow
    condition = flow.definition.trigger.condition
    event = {
        "id": origin.id,
        "type": origin.type,
        "details": origin.details,
        "date": origin.date.isoformat(),
    }
    flow_view = {"key": flow.key, "name": state.name, "version": flow.version}
    context = template_context(visitor=origin.visitor, origin=event, flow=flow_view, now=now)
    result = condition.evaluate(context)
    if result.value:
        return None
    data = {"condition": condition.source, "values": result.reads}
    if result.error:
        data["error"] = result.error
    return TriggerRefusal(
        origin.visitor_id, flow.key, (origin.id, origin.type), RefusalReason.CONDITION_FALSE, data
    )


# -- entry rules -------------------------------------------------------------------------


@dataclass
class EntryHistory:
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


def needs_history(flow: FlowVersion) -> bool:
    """Whether entry rules must read the visitor's past sessions in `flow`: not for
    `every_time` without a cooldown, whose candidates always start."""
    definition = flow.definition
    return definition.entry != EntryRule.EVERY_TIME or definition.cooldown is not None
