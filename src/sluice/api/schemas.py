"""The shapes of requests and responses, as the OpenAPI document describes them.

Responses are the views of `sluice.views` (the shapes of SPEC §3.4) and Bento's
envelopes (§3.3); routes declare these models so that the document says what the
endpoints really return, and FastAPI checks every response against them. Request
bodies are parsed by the routes themselves (orjson, per-item checks); the request
models here document them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

Json = dict[str, Any]


class _Open(BaseModel):
    """A shape that may carry more keys than those listed (stats rows, payloads)."""

    model_config = ConfigDict(extra="allow")


# -- errors ----------------------------------------------------------------------------


class Problem(BaseModel):
    loc: str = Field(description="Where the fault is: `steps[2].wait`, `email`; empty for all.")
    msg: str


class Detail(BaseModel):
    detail: str


class Invalid(BaseModel):
    detail: list[Problem]


class BentoError(BaseModel):
    error: str


# -- Bento requests --------------------------------------------------------------------


class BentoEvent(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    email: str
    details: Json | None = None
    fields: Json | None = None
    date: str | None = Field(default=None, description="ISO 8601 with an offset.")


class BentoEventsBody(BaseModel):
    events: list[BentoEvent] = Field(min_length=1, max_length=1000)
    site_uuid: str | None = None


class BentoSubscriberRow(BaseModel):
    model_config = ConfigDict(extra="allow")
    email: str
    tags: str | list[str] | None = Field(default=None, description='"a,b" or a list')
    remove_tags: str | list[str] | None = None


class BentoSubscribersBody(BaseModel):
    subscribers: list[BentoSubscriberRow] = Field(min_length=1, max_length=1000)
    site_uuid: str | None = None


class BentoNewSubscriber(BaseModel):
    email: str


class BentoCreateSubscriberBody(BaseModel):
    subscriber: BentoNewSubscriber
    site_uuid: str | None = None


class BentoCommand(BaseModel):
    command: Literal[
        "add_tag",
        "add_tag_via_event",
        "remove_tag",
        "add_field",
        "remove_field",
        "subscribe",
        "unsubscribe",
        "change_email",
    ]
    email: str
    query: Any = Field(
        default=None,
        description="The tag, the field key, `{key, value}` for add_field, the new email.",
    )


class BentoCommandsBody(BaseModel):
    command: BentoCommand | list[BentoCommand]
    site_uuid: str | None = None


class BentoNewTag(BaseModel):
    name: str


class BentoTagBody(BaseModel):
    tag: BentoNewTag
    site_uuid: str | None = None


class BentoNewField(BaseModel):
    key: str


class BentoFieldBody(BaseModel):
    field: BentoNewField
    site_uuid: str | None = None


class BentoEmail(BaseModel):
    to: str
    from_: str | None = Field(default=None, alias="from")
    subject: str
    html_body: str
    transactional: bool = False
    personalizations: Json | None = None


class BentoEmailsBody(BaseModel):
    emails: list[BentoEmail] = Field(min_length=1, max_length=100)
    site_uuid: str | None = None


class BentoDeletionRequest(BaseModel):
    email: str


class BentoDeletionBody(BaseModel):
    data_deletion_request: BentoDeletionRequest
    site_uuid: str | None = None


# -- Bento responses -------------------------------------------------------------------


class BatchError(BaseModel):
    index: int
    error: str


class BatchResult(BaseModel):
    results: int = Field(description="Items accepted (repeats of an idempotency key included).")
    failed: int = 0
    errors: list[BatchError] = []


class SubscriberAttributes(BaseModel):
    uuid: str
    email: str
    fields: Json
    cached_tag_ids: list[str]
    tags: list[str]
    unsubscribed_at: str | None


class BentoSubscriber(BaseModel):
    id: str
    type: Literal["visitors"]
    attributes: SubscriberAttributes


class SubscriberEnvelope(BaseModel):
    """`{"data": …}`, or `{}` for an unknown visitor."""

    data: BentoSubscriber | None = None


class TagAttributes(BaseModel):
    name: str
    created_at: str
    discarded_at: None = None


class BentoTag(BaseModel):
    id: str
    type: Literal["tags"]
    attributes: TagAttributes


class TagList(BaseModel):
    data: list[BentoTag]


class FieldAttributes(BaseModel):
    name: str
    key: str
    created_at: str
    whitelisted: None = None


class BentoField(BaseModel):
    id: str
    type: Literal["visitors-fields"]
    attributes: FieldAttributes


class FieldList(BaseModel):
    data: list[BentoField]


class WorkflowEmail(BaseModel):
    id: int
    subject: str
    stats: Json | None = None


class WorkflowAttributes(BaseModel):
    name: str
    status: Literal["live", "draft"]
    created_at: str
    email_templates: list[WorkflowEmail]


class BentoWorkflow(BaseModel):
    id: str
    type: Literal["workflows"]
    attributes: WorkflowAttributes


class WorkflowList(BaseModel):
    data: list[BentoWorkflow]


# -- native requests -------------------------------------------------------------------


class EventIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    email: str
    details: Json | None = None
    fields: Json | None = None
    date: str | None = Field(default=None, description="ISO 8601 with an offset.")
    idempotency_key: str | None = None


class EventsIn(BaseModel):
    events: list[EventIn] = Field(min_length=1, max_length=1000)


class ScriptVisitor(BaseModel):
    email: str
    fields: Json = {}
    tags: list[str] = []


class ScriptEvent(BaseModel):
    model_config = ConfigDict(extra="allow")
    at: str = Field(default="+0s", description="`+2d` from the start, or ISO 8601.")
    type: str
    details: Json | None = None
    fields: Json | None = None


class SimulationIn(BaseModel):
    visitor: ScriptVisitor
    events: list[ScriptEvent] = []
    definition: Json | None = Field(
        default=None, description="A definition to simulate instead of the stored one."
    )


# -- native responses ------------------------------------------------------------------


class EventError(BaseModel):
    index: int
    loc: str
    msg: str


class EventsResult(BaseModel):
    accepted: int = Field(description="Events stored.")
    duplicates: int = Field(0, description="Repeats of an idempotency key: acknowledged, ignored.")
    failed: int = 0
    errors: list[EventError] = []
    sessions_started: list[int] = []


class Version(BaseModel):
    version: int
    created_at: str


class FlowSummary(BaseModel):
    """A flow as lists show it."""

    key: str
    name: str
    status: Literal["on", "off"]
    version: int
    created_at: str
    updated_at: str
    counts: dict[str, int] = Field(description="Sessions by status.")


class Flow(FlowSummary):
    """A flow with its current definition and every version."""

    definition: Json
    versions: list[Version]


class OriginEvent(BaseModel):
    id: int
    type: str
    details: Json
    date: str


class TimelineEntry(BaseModel):
    at: str
    step: str | None
    kind: str
    data: Json


class Session(BaseModel):
    id: int
    flow: str
    flow_version: int
    email: str | None
    status: Literal["active", "waiting", "stopped", "completed", "exited", "failed"]
    step: str | None
    paused: bool
    origin_event: OriginEvent | None
    started_at: str
    updated_at: str
    wake_at: str | None
    waiting_for: str | None


class SessionWithTimeline(Session):
    timeline: list[TimelineEntry]


class Event(BaseModel):
    id: int
    type: str
    details: Json
    fields: Json | None
    date: str
    accepted_at: str


class Visitor(BaseModel):
    email: str
    uuid: str
    fields: Json
    tags: list[str]
    subscribed: bool
    unsubscribed_at: str | None
    created_at: str
    sessions: list[Session]
    events: list[Event]


class Message(BaseModel):
    id: int
    session_id: int | None
    flow: str | None
    step: str | None
    kind: str
    idempotency_id: str
    state: str
    attempts: int
    error: str | None  # why the last attempt failed: the SMTP reply, or the error
    next_attempt_at: str | None  # when a pending email is attempted (again)
    payload: Json
    created_at: str


class RefusedEvent(BaseModel):
    id: int
    type: str


class TriggerRefusal(BaseModel):
    """The latest event that matched a flow's trigger by type but started no session
    there, and why (docs/sessions.md, "Why didn't they get it?")."""

    flow: str
    at: str
    event: RefusedEvent
    reason: Literal["condition_false", "entry_rule", "flow_off", "budget"]
    data: Json
    refusals: int = Field(description="How many such events the flow refused, in all.")


class ExplanationLink(BaseModel):
    label: str
    href: str = Field(description="A path of the web UI (a session's page).")


class Explanation(BaseModel):
    """Why the visitor got the flow (or the step), or why not, from stored facts."""

    email: str
    flow: str
    step: str | None
    verdict: Literal[
        "received",
        "never_triggered",
        "condition_false",
        "entry_rule",
        "flow_off",
        "budget",
        "goal_exit",
        "branch_other_way",
        "email_skipped",
        "waiting",
        "in_progress",
        "failed",
        "stopped",
        "exited",
        "elsewhere",
    ] = Field(description="What happened; docs/sessions.md lists the verdicts.")
    sentence: str = Field(description="The answer in one or two sentences.")
    facts: Json = Field(
        description="What the answer rests on: `visitor`, `flow`, `step`, and as the "
        "verdict needs `session`, `refusal`, `entry` (a timeline entry), `trigger_events`."
    )
    links: list[ExplanationLink]


class VisitorExport(Visitor):
    sessions: list[SessionWithTimeline]  # type: ignore[assignment]
    messages: list[Message]
    trigger_refusals: list[TriggerRefusal]


class Erased(BaseModel):
    erased: bool
    sessions_exited: int


class StepStats(_Open):
    step: str
    kind: str
    here: int
    entered: int


class FlowStats(BaseModel):
    flow: str
    version: int
    sessions: int
    goals: int  # `goal` entries on the timelines of the flow's sessions
    has_goals: bool  # whether the flow's current version has goals (exit rules)
    converted: int  # sessions that met a goal, each counted once
    conversion: float  # converted / sessions, to a tenth of a percent (0.123); else 0.0
    steps: list[StepStats]


class Place(BaseModel):
    step: str | None
    sessions: int
    continues_at: str | None


class Preview(BaseModel):
    problems: list[Problem]
    blast_radius: list[Place]


class Change(BaseModel):
    at: str
    actor: str
    action: str
    version: int
    diff: str | None


class Simulation(BaseModel):
    visitor: Visitor
    sessions: list[SessionWithTimeline]


class Template(BaseModel):
    key: str
    version: int
    created_at: str
    updated_at: str
    definition: Json
    versions: list[Version]


class Health(BaseModel):
    status: str


class EventsBody(RootModel[EventsIn | EventIn]):
    """One event, or `{"events": [...]}`."""


class FlowDefinitionDoc(_Open):
    """A flow definition (SPEC §2): `key`, `trigger`, `steps`, and the optional keys."""

    key: str | None = Field(default=None, description="Defaults to the URL's key.")
    name: str | None = None
    trigger: Json
    steps: list[Json]


class TemplateDoc(_Open):
    """An email template (SPEC §2.8)."""

    key: str | None = Field(default=None, description="Defaults to the URL's key.")
    kind: Literal["template"] | None = None
    subject: str
    html: str | None = None
    text: str | None = None


class ApplyReport(BaseModel):
    """What applying documents did or, with `dry_run`, would do (as `sluice flows apply
    --json` prints it)."""

    dry_run: bool
    templates: dict[str, int | None] = Field(description="Key → new version, null if unchanged.")
    flows: dict[str, int | None] = Field(description="Key → new version, null if unchanged.")
    blast_radius: dict[str, list[Place]]


class ApplyBody(RootModel[list[Json] | Json]):
    """Flow and template documents: one, or a list (YAML: several separated by `---`)."""
