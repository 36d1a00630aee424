"""Validated flow and template definitions.

Everything here is immutable and fully checked: templates and conditions are already
compiled, durations are timedeltas, every step has its id. A definition object is what
the engine walks; the raw document it came from is kept in `source` so that it can be
stored as a version and shown back exactly as written.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any

from sluice.definitions.durations import format_duration
from sluice.definitions.liquid import Condition, Template, TemplatedValue
from sluice.records import SEGMENT_ENTERED


class EntryRule(enum.StrEnum):
    ONCE = "once"
    ONE_AT_A_TIME = "one_at_a_time"
    EVERY_TIME = "every_time"


class OnResume(enum.StrEnum):
    CATCH_UP = "catch_up"
    EXTEND = "extend"


@dataclass(frozen=True, kw_only=True)
class EmailAction:
    subject: Template | None = None
    html: Template | None = None
    text: Template | None = None
    template: str | None = None
    from_: Template | None = None
    reply_to: Template | None = None
    to: Template | None = None
    transactional: bool = False
    track: bool = True


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    attempts: int = 8
    """How many attempts in all, the first included."""
    backoff: timedelta = timedelta(minutes=11)
    """Delay before the second attempt; each next delay doubles (±20 % jitter). With the
    defaults, the eighth attempt comes about a day after the first (127 × 11 min)."""


@dataclass(frozen=True, kw_only=True)
class WebhookAction:
    url: Template
    method: str = "POST"
    headers: dict[str, Template] = field(default_factory=dict)
    body: TemplatedValue | None = None
    """None: the standard payload of SPEC §4.2."""
    timeout: timedelta = timedelta(seconds=10)
    retries: RetryPolicy = field(default_factory=RetryPolicy)
    on_failure: tuple[Step, ...] | None = None


@dataclass(frozen=True, kw_only=True)
class TagAction:
    add: tuple[Template, ...] = ()
    remove: tuple[Template, ...] = ()


@dataclass(frozen=True, kw_only=True)
class FieldAction:
    set: dict[str, TemplatedValue] = field(default_factory=dict)
    remove: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class SubscriptionAction:
    subscribe: bool
    """True for a `subscribe` step, False for an `unsubscribe` step."""


@dataclass(frozen=True, kw_only=True)
class WaitAction:
    """Exactly one of `for_`, `until`, `at` or `until_field` is set."""

    for_: timedelta | None = None
    until: datetime | None = None
    at: time | None = None
    on: frozenset[int] | None = None
    """Weekdays allowed for `at` (Monday is 0), None for any day."""
    until_field: str | None = None
    offset: timedelta = timedelta(0)


@dataclass(frozen=True, kw_only=True)
class WaitForAction:
    event: str
    condition: Condition | None = None
    timeout: timedelta
    then: tuple[Step, ...] | None = None
    on_timeout: tuple[Step, ...] | None = None


@dataclass(frozen=True, kw_only=True)
class IfAction:
    condition: Condition
    then: tuple[Step, ...] = ()
    else_: tuple[Step, ...] = ()


@dataclass(frozen=True, kw_only=True)
class SplitBranch:
    weight: int
    """0 for a paused variant, which is never chosen; another branch has more."""
    steps: tuple[Step, ...] = ()


@dataclass(frozen=True, kw_only=True)
class SplitAction:
    branches: tuple[SplitBranch, ...]


@dataclass(frozen=True, kw_only=True)
class StartFlowAction:
    flow: str


@dataclass(frozen=True, kw_only=True)
class TrackAction:
    type: Template
    details: TemplatedValue | None = None


@dataclass(frozen=True, kw_only=True)
class ExitAction:
    reason: str | None = None


Action = (
    EmailAction
    | WebhookAction
    | TagAction
    | FieldAction
    | SubscriptionAction
    | WaitAction
    | WaitForAction
    | IfAction
    | SplitAction
    | StartFlowAction
    | TrackAction
    | ExitAction
)


@dataclass(frozen=True, kw_only=True)
class Step:
    id: str
    """Explicit id, or one derived from the position: `steps.2.then.0`."""
    kind: str
    """The action key as written: `email`, `wait_for`, `unsubscribe`, …"""
    action: Action
    loc: str
    """Where the step stands in the document, for messages: `steps[2].then[0]`."""


@dataclass(frozen=True, kw_only=True)
class HookMapping:
    """How a `webhook` trigger reads the body its hook receives (`body`, `headers`,
    `now` in the templates): whose event it is, its details, and the key that makes a
    repeated call count once."""

    email: Template
    details: TemplatedValue | None = None
    idempotency_key: Template | None = None
    secret_version: int = 1
    """Raised to replace the hook's secret (hooks.secret)."""


DEFAULT_DATE_AT = time(9, 0)
"""When a `date` trigger fires on its day without `at`: 09:00 in the visitor's zone, a
time people read mail at (midnight would wake nobody but the spam filter)."""


@dataclass(frozen=True, kw_only=True)
class DateRule:
    """How a `date` trigger reads a visitor's date field (engine/dates.py): the day the
    field names, moved by `offset` on the wall clock of the visitor's zone, at `at`;
    once, or on that month and day each year (`every: year`)."""

    field: str
    offset: timedelta = timedelta(0)
    at: time = DEFAULT_DATE_AT
    every: str | None = None
    """`year`, or None for once."""

    @property
    def offset_text(self) -> str:
        """The offset with its sign as durations are written back (`-7d`, `+1d12h`), or
        "" for none."""
        if not self.offset:
            return ""
        sign = "-" if self.offset < timedelta(0) else "+"
        return sign + format_duration(abs(self.offset))

    def describe(self) -> str:
        """`date birthday, yearly at 09:00`, `date renews_on -7d at 10:00`."""
        offset = f" {self.offset_text}" if self.offset else ""
        yearly = ", yearly" if self.every == "year" else ""
        return f"date {self.field}{offset}{yearly} at {self.at:%H:%M}"


@dataclass(frozen=True, kw_only=True)
class Trigger:
    """What starts a session: events of a type (`event`), or a data change or a call of
    the flow's inbound hook, recorded as an origin event first: `tag_added: NAME` as
    `$tag_added` with `details.tag`, `field_changed: {field, to?}` as `$field_changed`
    with `details.field` (and `from`, `to`), `webhook: {email, details?,
    idempotency_key?}` as `$webhook` with `details.hook` (the flow's key), `date: {field,
    offset?, at?, every?}` as `$date` with `details.flow` (the flow's key) when the day
    comes."""

    events: tuple[str, ...]
    condition: Condition | None = None
    kind: str = "event"
    """`event`, `tag_added`, `field_changed`, `segment`, `webhook` or `date`, as the
    definition names it (an `event: $tag_added` is of kind `event`: it names any tag
    added)."""
    match: tuple[tuple[str, Any], ...] = ()
    """`(key, value)` pairs the origin event's details must hold, e.g. `(("tag", "vip"),)`."""
    hook: HookMapping | None = None
    """For a `webhook` trigger."""
    date: DateRule | None = None
    """For a `date` trigger."""

    def matches(self, event_type: str, details: Any) -> bool:
        """Whether an event of `event_type` with `details` is one this trigger names
        (before its `if`). A `to` value matches the same JSON value: 1 and 1.0 alike,
        never `true`."""
        if event_type not in self.events:
            return False
        if not self.match:
            return True
        if not isinstance(details, dict):
            return False
        return all(same_json(details.get(key, _ABSENT), value) for key, value in self.match)

    def describe(self) -> str:
        """The trigger in words for a canvas: `signed_up`, `tag vip added`,
        `field plan changed to "pro"`, `segment vip entered`, `POST /api/hooks/KEY`,
        `date birthday, yearly at 09:00`."""
        wanted = dict(self.match)
        if self.kind == "tag_added":
            return f"tag {wanted['tag']} added"
        if self.kind == "field_changed":
            to = f" to {json.dumps(wanted['to'])}" if "to" in wanted else ""
            return f"field {wanted['field']} changed{to}"
        if self.kind == "webhook":
            return f"POST /api/hooks/{wanted['hook']}"
        if self.kind == "segment":
            on = "entered" if SEGMENT_ENTERED in self.events else "left"
            return f"segment {wanted['segment']} {on}"
        if self.date is not None:
            return self.date.describe()
        return ", ".join(self.events)


_ABSENT = object()


def same_json(a: Any, b: Any) -> bool:
    """Equal as JSON values, at every depth: 1 and 1.0 are, Python's `True == 1` is not."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@dataclass(frozen=True, kw_only=True)
class ExitRule:
    event: str
    condition: Condition | None = None


@dataclass(frozen=True, kw_only=True)
class FlowDefinition:
    key: str
    name: str
    description: str | None
    trigger: Trigger
    entry: EntryRule
    cooldown: timedelta | None
    exit_rules: tuple[ExitRule, ...]
    timezone: str | None
    on_resume: OnResume
    steps: tuple[Step, ...]
    source: dict[str, Any]
    """The document as written (JSON-compatible), stored as the version's definition."""

    @property
    def referenced_flows(self) -> set[str]:
        return {s.action.flow for s in iter_steps(self.steps) if s.kind == "start_flow"}

    @property
    def referenced_templates(self) -> set[str]:
        return {
            s.action.template
            for s in iter_steps(self.steps)
            if s.kind == "email" and s.action.template
        }


@dataclass(frozen=True, kw_only=True)
class TemplateDefinition:
    key: str
    subject: Template | None
    html: Template | None
    text: Template | None
    source: dict[str, Any]


def child_lists(step: Step) -> list[tuple[str, tuple[Step, ...]]]:
    """The nested step lists of a step, named as in the document, in document order."""
    action = step.action
    match action:
        case IfAction():
            return [("then", action.then), ("else", action.else_)]
        case WaitForAction():
            return [
                (name, steps)
                for name, steps in (("then", action.then), ("on_timeout", action.on_timeout))
                if steps is not None
            ]
        case SplitAction():
            return [(f"split.{i}.steps", b.steps) for i, b in enumerate(action.branches)]
        case WebhookAction() if action.on_failure is not None:
            return [("webhook.on_failure", action.on_failure)]
    return []


def iter_steps(steps: tuple[Step, ...]):
    """Every step of a tree, depth first, in document order."""
    for step in steps:
        yield step
        for _, children in child_lists(step):
            yield from iter_steps(children)
