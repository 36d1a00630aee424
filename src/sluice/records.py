"""Records read from the store: frozen dataclasses, statuses as enums of stored strings."""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Self

TAG_ADDED = "$tag_added"
FIELD_CHANGED = "$field_changed"
WEBHOOK = "$webhook"
SEGMENT_ENTERED = "$segment_entered"
SEGMENT_LEFT = "$segment_left"
DATE = "$date"
RECORDED_EVENTS = (TAG_ADDED, FIELD_CHANGED, WEBHOOK, SEGMENT_ENTERED, SEGMENT_LEFT, DATE)
"""The origin events Sluice records itself (SPEC §7 Triggers) — for a data change that
a trigger names, for a call of a flow's inbound hook, for a visitor entering or
leaving a segment, and for the day a `date` trigger names coming; never accepted from
outside."""


class SessionStatus(enum.StrEnum):
    """Where a session stands. Stored as these strings; never rename them.

    active     has a step to run now; a worker claims it (moved on by a worker)
    waiting    waits for a time, an event or a delivery (moved on by its due time,
               an event, or the delivery's outcome)
    stopped    stopped by a person; stays at its step (moved on by resume, or by
               turning its flow back on)
    completed  ran off the end of the flow (final)
    exited     left early: exit step, goal, or the visitor was erased (final)
    failed     a step failed for good (moved on by retry)
    """

    ACTIVE = "active"
    WAITING = "waiting"
    STOPPED = "stopped"
    COMPLETED = "completed"
    EXITED = "exited"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in FINISHED


FINISHED = frozenset({SessionStatus.COMPLETED, SessionStatus.EXITED, SessionStatus.FAILED})
UNFINISHED = frozenset({SessionStatus.ACTIVE, SessionStatus.WAITING, SessionStatus.STOPPED})
RUNNABLE = frozenset({SessionStatus.ACTIVE, SessionStatus.WAITING})


class FlowStatus(enum.StrEnum):
    ON = "on"
    OFF = "off"


class DeliveryState(enum.StrEnum):
    """pending → sent | failed | skipped; `outbox` is kept, not sent (no SMTP configured).
    `skipped`: not sent, because the visitor unsubscribed after the step rendered
    marketing mail, or because the session finished first (`last_error` says which)."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"
    OUTBOX = "outbox"


class _FromRow:
    @classmethod
    def from_row(cls, row: Any) -> Self:
        taken = _positions(cls, row._fields)
        if taken is None:  # a name twice in the row: the mapping says it is ambiguous
            mapping = row._mapping
            return cls(**{f.name: mapping[f.name] for f in fields(cls) if f.name in mapping})
        return cls(**{name: row[index] for name, index in taken})


@functools.cache
def _positions(cls: type, columns: tuple[str, ...]) -> tuple[tuple[str, int], ...] | None:
    """Where each of the dataclass's fields is in a row with these columns, found once
    per kind of row (records are built by the thousand in each worker batch)."""
    if len(set(columns)) != len(columns):
        return None
    names = {f.name for f in fields(cls)}
    return tuple((name, index) for index, name in enumerate(columns) if name in names)


@dataclass(frozen=True, kw_only=True)
class Visitor(_FromRow):
    id: int
    uuid: str
    email: str
    fields: dict[str, Any]
    tags: list[str]
    unsubscribed_at: datetime | None
    created_at: datetime
    segments: tuple[str, ...] = ()
    """The keys of the segments the visitor is in, where it was read (sessions' work)."""

    @property
    def subscribed(self) -> bool:
        return self.unsubscribed_at is None


@dataclass(frozen=True, kw_only=True)
class Event(_FromRow):
    id: int
    visitor_id: int
    type: str
    details: dict[str, Any]
    date: datetime
    depth: int = 0
    root_event_id: int | None = None
    """For an event recorded by a flow, the event from outside its chain began with."""

    @property
    def root_id(self) -> int:
        """The event from outside that this one is, or was caused by."""
        return self.root_event_id or self.id

    def view(self) -> dict[str, Any]:
        """The event as templates, timelines and the API show it."""
        return {
            "id": self.id,
            "type": self.type,
            "details": self.details,
            "date": self.date.isoformat(),
        }


@dataclass(frozen=True, kw_only=True)
class Session(_FromRow):
    id: int
    visitor_id: int
    flow_key: str
    flow_version: int
    status: SessionStatus
    step: str | None
    step_begun: bool
    state: dict[str, Any]
    origin_event_id: int
    depth: int
    event_cursor: int
    waiting_for: str | None
    wake_at: datetime | None
    due_at: datetime | None
    paused_since: datetime | None
    resume_status: str | None
    revision: int
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    def __post_init__(self):
        object.__setattr__(self, "status", SessionStatus(self.status))


@dataclass(frozen=True, kw_only=True)
class TimelineEntry:
    at: datetime
    step: str | None
    kind: str
    data: dict[str, Any]

    def view(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "step": self.step, "kind": self.kind, "data": self.data}
