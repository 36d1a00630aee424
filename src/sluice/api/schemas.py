"""The shapes of requests and responses, as the OpenAPI document describes them.

Responses are the views of `sluice.views` (the shapes of SPEC §3.4) and Bento's
envelopes (§3.3); routes declare these models so that the document says what the
endpoints really return, and FastAPI checks every response against them. Request
bodies are parsed by the routes themselves (orjson, per-item checks); the request
models here document them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    StrictBool,
    model_validator,
)

from sluice.addresses import MAX_EMAIL, visitor_email
from sluice.api.batch import MAX_ITEMS

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
    events: list[BentoEvent] = Field(min_length=1, max_length=MAX_ITEMS)
    site_uuid: str | None = None


class BentoSubscriberRow(BaseModel):
    model_config = ConfigDict(extra="allow")
    email: str
    tags: str | list[str] | None = Field(default=None, description='"a,b" or a list')
    remove_tags: str | list[str] | None = None


class BentoSubscribersBody(BaseModel):
    subscribers: list[BentoSubscriberRow] = Field(min_length=1, max_length=MAX_ITEMS)
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


class TagDeleted(BaseModel):
    message: str = Field(description="`Tag NAME deleted; N subscriber(s) had it`.")


class SiteStats(BaseModel):
    user_count: int = Field(description="Every visitor.")
    subscriber_count: int = Field(description="Visitors subscribed (not unsubscribed).")
    unsubscriber_count: int = Field(description="Visitors who unsubscribed.")


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
    events: list[EventIn] = Field(min_length=1, max_length=MAX_ITEMS)


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
    events: list[ScriptEvent] = Field(default=[], max_length=MAX_ITEMS)
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


class HookResult(BaseModel):
    accepted: int = Field(description="1 when the call was stored as a `$webhook` event.")
    duplicates: int = Field(0, description="1 for a repeat of an idempotency key: ignored.")
    sessions_started: list[int] = []


class Hook(BaseModel):
    url: str = Field(description="Where to POST: `{base}/api/hooks/{key}`.")
    secret: str = Field(
        description="`Authorization: Bearer SECRET`, or the Standard Webhooks signing secret."
    )


class Version(BaseModel):
    version: int
    created_at: str
    note: str | None = Field(default=None, description="The note written with the save.")


class VersionDetail(Version):
    """One version of a flow: its text as the author wrote it, and what it loads to."""

    source: str
    definition: Json


class Draft(BaseModel):
    """The draft of a flow: a text saved without making a version (SPEC §7)."""

    source: str
    document: Json
    actor: str
    updated_at: str


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
    source: str = Field(description="The current version's text, as its author wrote it.")
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


class VisitorSummary(BaseModel):
    """A visitor as the search lists one: the profile without sessions and events."""

    email: str
    uuid: str
    fields: Json
    tags: list[str]
    subscribed: bool
    unsubscribed_at: str | None
    created_at: str


class Visitor(BaseModel):
    email: str
    uuid: str
    fields: Json
    tags: list[str]
    subscribed: bool
    unsubscribed_at: str | None
    created_at: str
    segments: list[str]
    """The keys of the segments the visitor is in."""
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


class RemovedStep(BaseModel):
    step: str
    kind: str
    sessions: int = Field(description="Unfinished sessions at the step now.")


class Send(BaseModel):
    """An email or webhook step that sessions waking at once will run."""

    step: str
    kind: Literal["email", "webhook"]
    summary: str = Field(description="`email “Subject”`, `email from template X`, `POST url`.")
    maybe: bool = Field(description="Past an `if`, a `split` or an `on_failure`: may not run.")
    sessions: int = Field(
        description="How many of those waking at once reach it (marketing email: subscribed)."
    )


class WaitImpact(BaseModel):
    """Sessions waiting at one step (of one version) whose wait ends differently."""

    step: str
    kind: str = Field(description="`wait` or `wait_for` (or the kind of a removed step).")
    version: int = Field(description="The version the sessions are on.")
    sessions: int
    change: str = Field(description="`changed`, `removed`, or `became a KIND step`.")
    old: str = Field(description="The wait as it was, in words: `2d`, `at 09:30 on mon`.")
    new: str | None = Field(description="The wait as it will be; null when it is gone.")
    wake_now: int = Field(description="Sessions whose new wake-up time has passed: at once.")
    wake_later: int
    earliest: str | None = Field(description="Earliest new wake-up of the later ones.")
    latest: str | None = Field(description="Latest new wake-up of the later ones.")
    continues_at: str | None = Field(description="Where those waking at once go on.")
    then_sends: list[Send]


class BranchImpact(BaseModel):
    step: str
    kind: Literal["if", "split", "wait_for"]
    sessions: int = Field(description="Sessions in it or before it, which will meet it.")
    change: str = Field(description="What changed, in words.")


class SendsAtOnce(BaseModel):
    sessions: int = Field(description="Sessions that send something at once on saving.")
    emails: int
    webhooks: int


class Impact(BaseModel):
    """What saving does to the flow's live sessions (docs/api.md, "Impact of an edit")."""

    moves: list[Place] = Field(description="Sessions at a step that is gone, and where they go.")
    removed: list[RemovedStep]
    waits: list[WaitImpact]
    branches: list[BranchImpact]
    sends_at_once: SendsAtOnce
    summary: list[str] = Field(description="The report in sentences, as the UI shows it.")
    warning: str | None = Field(
        description="The question to confirm before saving; null if nothing is sent at once."
    )


class Preview(BaseModel):
    problems: list[Problem]
    blast_radius: list[Place]
    impact: Impact


class Change(BaseModel):
    at: str
    actor: str
    action: str
    version: int
    diff: str | None
    note: str | None = Field(description="The note written with the save, if any.")


class Simulation(BaseModel):
    visitor: Visitor
    sessions: list[SessionWithTimeline]


class Template(BaseModel):
    key: str
    version: int
    created_at: str
    updated_at: str
    definition: Json
    source: str = Field(description="The current version's text, as its author wrote it.")
    versions: list[Version]


class SegmentSummary(BaseModel):
    key: str
    name: str
    version: int
    members: int = Field(description="How many visitors are in it now.")
    updated_at: str


class SegmentChange(BaseModel):
    at: str
    actor: str
    action: str
    version: int
    diff: str | None
    note: str | None


class Segment(SegmentSummary):
    created_at: str
    definition: Json
    source: str = Field(description="The current version's text, as its author wrote it.")
    changes: list[SegmentChange] = Field(description="The audit log, oldest first.")


class SegmentMember(BaseModel):
    id: int = Field(description="The visitor's id; the next page starts after the last one.")
    email: str
    uuid: str
    entered_at: str


class SegmentPreview(BaseModel):
    members: int = Field(description="How many visitors the rules hold now.")


class SegmentDoc(_Open):
    """A segment (docs/segments.md): `rules` over a visitor's tags, fields,
    subscription and events."""

    key: str | None = Field(default=None, description="Defaults to the URL's key.")
    kind: Literal["segment"] | None = None
    name: str
    match: Literal["all", "any"] | None = None
    rules: list[Json]


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
    segments: dict[str, int | None] = Field(description="Key → new version, null if unchanged.")
    flows: dict[str, int | None] = Field(description="Key → new version, null if unchanged.")
    blast_radius: dict[str, list[Place]]
    impact: dict[str, Impact] = Field(description="Key → what saving it does to live sessions.")


class ApplyBody(RootModel[list[Json] | Json]):
    """Flow and template documents: one, or a list (YAML: several separated by `---`)."""


# -- previews and test sends of emails ----------------------------------------------------


Address = Annotated[str, Field(min_length=1, max_length=MAX_EMAIL), AfterValidator(visitor_email)]
"""An address an email can be sent to, checked as a visitor's is where events come in
(`addresses.visitor_email`, whose AddressError is a problem at the field)."""


class SampleVisitor(BaseModel):
    """A made-up visitor to render an email for."""

    model_config = ConfigDict(extra="forbid")
    email: Address
    fields: Json = {}
    tags: list[str] = []
    subscribed: bool = True


class SampleEvent(BaseModel):
    """The origin event the email's templates see as `event` and `origin`."""

    model_config = ConfigDict(extra="forbid")
    type: str = Field(min_length=1, max_length=200)
    details: Json = {}


class EmailRenderIn(BaseModel):
    """An email step's value and whom to render it for: `visitor` (made up) or
    `visitor_email` (a stored visitor), not both."""

    model_config = ConfigDict(extra="forbid")
    visitor: SampleVisitor | None = None
    visitor_email: str | None = Field(default=None, min_length=1, max_length=320)
    email: Json = Field(
        description="An email step's value (SPEC §2.2): subject, template, html, text, "
        "from, reply_to, to, transactional, track."
    )
    event: SampleEvent | None = None
    flow: str | None = Field(
        default=None, max_length=64, description="The flow whose `flow.*` the templates see."
    )

    @model_validator(mode="after")
    def _one_visitor(self) -> EmailRenderIn:
        if (self.visitor is None) == (self.visitor_email is None):
            raise ValueError("give either 'visitor' or 'visitor_email'")
        return self


class EmailTestIn(EmailRenderIn):
    to: Address = Field(description="Where to send the test.")


class RenderedEmail(BaseModel):
    """The email as it would be sent (HTML with its CSS inlined, text part made from the
    HTML when it has none); the parts are null when `problems` kept it from rendering."""

    model_config = ConfigDict(populate_by_name=True)
    subject: str | None
    html: str | None
    text: str | None
    from_: str | None = Field(alias="from")
    to: str | None
    reply_to: str | None
    problems: list[Problem]


class TestSent(BaseModel):
    delivered_to: Literal["smtp", "outbox"] = Field(
        description="`smtp`: accepted by the SMTP server; `outbox`: kept in the outbox "
        "(no SMTP server configured), marked as a test."
    )
    message_id: str


class TemplateUse(BaseModel):
    flow: str
    step: str


class TemplateInUse(BaseModel):
    detail: str
    used_by: list[TemplateUse]


# -- broadcasts ------------------------------------------------------------------------

TimeOfDay = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", examples=["09:00"])]
TagName = Annotated[str, Field(min_length=1, max_length=200)]


class BroadcastIn(BaseModel):
    """A broadcast (docs/broadcasts.md): an email to a segment, or to everyone."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    email: dict[str, Any] = Field(
        description="An email step's value (SPEC §2.2): subject, html, text, template, "
        "from, reply_to; Liquid over `visitor`."
    )
    segment: str | None = Field(
        default=None, max_length=64, description="The segment's key; everyone when absent."
    )
    inclusive_tags: list[TagName] = Field(default=[], max_length=100)
    exclusive_tags: list[TagName] = Field(default=[], max_length=100)
    local_time: TimeOfDay | None = Field(
        default=None, description="Each visitor gets it at this time of day in their zone."
    )
    per_hour: int | None = Field(default=None, ge=1, le=10_000_000)
    send: StrictBool = Field(default=False, description="Schedule it now (else a draft).")
    send_at: AwareDatetime | None = Field(
        default=None, description="When to send it (with `send`); now when absent."
    )

    @model_validator(mode="after")
    def _send_at_needs_send(self) -> BroadcastIn:
        if self.send_at is not None and not self.send:
            raise ValueError("send_at is for a broadcast sent now: give send: true too")
        return self


class BroadcastStats(BaseModel):
    queued: int
    sent: int
    outbox: int
    pending: int
    failed: int
    skipped: int
    skipped_unsubscribed: int
    skipped_suppressed: int
    failed_to_render: int
    opened: int
    clicked: int
    unsubscribed: int


class Broadcast(BaseModel):
    id: int
    name: str
    email: Json
    segment: str | None
    inclusive_tags: list[str]
    exclusive_tags: list[str]
    status: Literal["draft", "scheduled", "sending", "sent", "cancelled"]
    send_at: str | None
    local_time: str | None
    per_hour: int | None
    actor: str
    created_at: str
    updated_at: str
    queued_at: str | None = Field(description="When every visitor of its audience was queued.")
    last_error: str | None
    stats: BroadcastStats


class BentoBroadcastFrom(BaseModel):
    email: str
    name: str | None = None


class BentoBroadcast(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    subject: str = Field(min_length=1)
    content: str = Field(min_length=1)
    type: Literal["plain", "html", "raw", "markdown"] = "plain"
    from_: BentoBroadcastFrom | None = Field(default=None, alias="from")
    inclusive_tags: str | None = Field(default=None, max_length=20_000)
    exclusive_tags: str | None = Field(default=None, max_length=20_000)
    segment_id: str | None = Field(default=None, min_length=1, max_length=64)
    batch_size_per_hour: int | None = Field(default=None, ge=0, le=10_000_000)
    send_at: str | None = None
    approved: StrictBool = False


class BentoBroadcastsBody(BaseModel):
    broadcasts: list[BentoBroadcast] = Field(min_length=1, max_length=100)
    site_uuid: str | None = None


class CreatedBroadcast(BaseModel):
    id: int
    template_id: int
    name: str
    dashboard_url: str


class BroadcastFailure(BaseModel):
    index: int
    name: str | None
    error: str


class BentoBroadcastsResult(BaseModel):
    results: int
    failed: int
    broadcasts: list[CreatedBroadcast] = []
    failures: list[BroadcastFailure] = []


class BentoBroadcastView(BaseModel):
    id: str
    type: Literal["broadcasts"] = "broadcasts"
    attributes: dict[str, Any]


class BentoBroadcastList(BaseModel):
    data: list[BentoBroadcastView]
