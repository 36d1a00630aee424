"""What the engine is given and what it decides.

The engine never reads the database or the clock: the worker loads a `Work` for each
claimed session and persists the `Transition` it gets back in one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from sluice.definitions.model import FlowDefinition, TemplateDefinition, WaitForAction, iter_steps
from sluice.engine.tree import FlowTree
from sluice.records import Event, Session, SessionStatus, TimelineEntry, Visitor

MAX_CHAIN_DEPTH = 8
"""How deep chains of events caused by flows (and flows started by flows) may go."""

MAX_CAUSED = 100
"""How many events and sessions one event from outside may cause through flows, all
chains from it together (SPEC §7; store/budget.py keeps the count)."""


class StepFailed(Exception):
    """A step cannot complete; its session fails with this message."""


@dataclass(frozen=True)
class FlowVersion:
    """One stored, validated version of a flow, with its tree."""

    definition: FlowDefinition
    version: int

    @cached_property
    def tree(self) -> FlowTree:
        return FlowTree(self.definition)

    @property
    def key(self) -> str:
        return self.definition.key

    @cached_property
    def interesting_events(self) -> frozenset[str]:
        """Event types a session of this flow must look at: goals and awaited events."""
        waits = {s.action.event for s in iter_steps(self.definition.steps) if s.kind == "wait_for"}
        return frozenset(waits | {rule.event for rule in self.definition.exit_rules})

    def wait_for(self, step_id: str) -> WaitForAction:
        return self.tree.step(step_id).action


@dataclass(frozen=True, kw_only=True)
class EngineConfig:
    mail_transport: str = "outbox"
    """`outbox`: emails are kept, not sent, and the step completes at once; `smtp`: the
    step waits for the dispatcher's outcome."""
    mail_from: str = "Sluice <noreply@localhost>"
    default_timezone: str = "UTC"
    public_url: str = "http://127.0.0.1:8000"
    signing_key: bytes = b""
    max_event_depth: int = MAX_CHAIN_DEPTH
    max_steps_per_run: int = 200


@dataclass(frozen=True, kw_only=True)
class Work:
    session: Session
    flow: FlowVersion
    """The flow's current version; the session migrates to it if it runs an older one."""
    session_flow: FlowVersion
    """The version the session was at when it was read."""
    flow_name: str
    visitor: Visitor
    origin: Event
    new_events: list[Event]
    """The visitor's events after the session's cursor that its flow cares about."""
    latest_event_id: int
    suppressed: bool
    """The visitor's address was erased once: never email it."""
    templates: Mapping[str, TemplateDefinition]
    """The stored email templates the flow names."""
    now: datetime


@dataclass(frozen=True, kw_only=True)
class VisitorChange:
    """One change to a visitor, applied by the store to the row as it is then."""

    op: str  # tag_add | tag_remove | field_set | field_remove | subscribe | unsubscribe
    name: str | None = None
    value: Any = None
    step: str | None = None
    """The step that made it."""


@dataclass(frozen=True, kw_only=True)
class NewDelivery:
    kind: str  # email | webhook
    step: str
    idempotency_id: str
    state: str
    payload: dict[str, Any]
    max_attempts: int


@dataclass(frozen=True, kw_only=True)
class NewEvent:
    type: str
    details: dict[str, Any]
    depth: int
    entry: int
    """The index of its `event_tracked` entry in the transition's timeline, which the
    store replaces when the budget of caused events is spent."""


@dataclass(kw_only=True)
class Transition:
    session_id: int
    revision: int
    visitor_id: int
    flow_key: str
    status: SessionStatus
    step: str | None
    step_begun: bool
    state: dict[str, Any]
    flow_version: int
    event_cursor: int
    waiting_for: str | None
    wake_at: datetime | None
    due_at: datetime | None
    finished_at: datetime | None
    timeline: list[TimelineEntry] = field(default_factory=list)
    visitor_changes: list[VisitorChange] = field(default_factory=list)
    deliveries: list[NewDelivery] = field(default_factory=list)
    events: list[NewEvent] = field(default_factory=list)
    start_flows: list[tuple[str, str]] = field(default_factory=list)
    """(flow key, step id) of each `start_flow` step run."""
    origin_event_id: int = 0
    root_event_id: int = 0
    """The event from outside that the origin event is, or was caused by."""
    depth: int = 0
