"""A session's timeline told in sentences, for people (SPEC §3.4 entries
`{"at", "step", "kind", "data"}`).

One structure, two renderings: each entry becomes a `Line` whose `Sentence` is a list
of `Part`s (plain words, a name in *emphasis*, a `code` value, a link, an instant);
the UI renders it as HTML (`Sentence.html`, every value escaped by markupsafe) and the
CLI as plain text (`Sentence.text`). Every kind the engine, the dispatcher, the
tracker and a person's actions write has its sentence; a kind this module does not
know reads as its name and its values, never as raw JSON.

`step` entries (one each time a step begins) are not lines of their own: they fold
into the next line of the same step, which keeps them in its `entries` (the raw data
stays complete). Only a step that nothing has followed yet, such as a webhook still
being attempted, shows as "Began step …".

What an entry does not hold itself (the subject of an email that failed, the host of
a webhook, the type of the event that started a session) is read once per batch of
lines by `gather`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import orjson
import sqlalchemy as sa
from markupsafe import Markup, escape
from sqlalchemy.engine import Connection

from sluice.records import (
    DATE,
    FIELD_CHANGED,
    SEGMENT_ENTERED,
    SEGMENT_LEFT,
    TAG_ADDED,
    WEBHOOK,
)
from sluice.store.schema import deliveries, events, sessions, visitors

ERROR_KINDS = frozenset(
    {
        "failed",
        "email_attempt_failed",
        "email_failed",
        "webhook_attempt_failed",
        "webhook_failed",
        "condition_error",
    }
)
"""The kinds the Activity feed's "errors only" shows: something went wrong."""
WARNING_KINDS = frozenset(
    {"email_skipped", "delivery_cancelled", "track_skipped", "flow_not_started"}
)
"""Kinds of something that did not happen, on purpose."""


# -- sentences -------------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    """A piece of a sentence: `style` is "" (words), "em" (a name: a subject, a flow,
    a branch), "code" (an id, an event type, a value), "time" (`at`, told to the
    second and relative to `now`) or "link" (words that only say where `href` goes,
    such as "view email": plain text gives the path instead)."""

    text: str
    style: str = ""
    href: str | None = None
    at: datetime | None = None
    now: datetime | None = None


@dataclass(frozen=True)
class Sentence:
    parts: tuple[Part, ...]
    tone: str = ""
    """"error", "warning" or "" (see ERROR_KINDS, WARNING_KINDS)."""

    def text(self) -> str:
        """Plain text: names in “quotes”, values as they are; a "link" part reads as
        its path (`/outbox?email=…&id=…`), other links as their words."""
        return "".join(_text(part) for part in self.parts)

    def html(self) -> Markup:
        return Markup("").join(_html(part) for part in self.parts)


def when(moment: datetime | str) -> str:
    """An instant (or its ISO 8601 text) to the second: `2026-12-02 17:12:05 UTC`."""
    return _instant(moment).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def relative(moment: datetime | str, now: datetime) -> str:
    """`in 2 days`, `5 min ago`, `just now`."""
    seconds = (_instant(moment) - now).total_seconds()
    future, seconds = seconds > 0, abs(seconds)
    if seconds < 45:
        return "in a few seconds" if future else "just now"
    for unit, plural, size in (("day", "days", 86400), ("h", "h", 3600), ("min", "min", 60)):
        if seconds >= size * (1.5 if size == 86400 else 1):
            amount = round(seconds / size) if size == 86400 else int(seconds // size)
            words = f"{amount} {unit if amount == 1 else plural}"
            return f"in {words}" if future else f"{words} ago"
    return f"in {int(seconds)} s" if future else f"{int(seconds)} s ago"


def _text(part: Part) -> str:
    if part.style == "time" and part.at is not None:
        return f"{when(part.at)} ({relative(part.at, part.now)})" if part.now else when(part.at)
    if part.style == "em":
        return f"“{part.text}”"
    if part.style == "link":
        return part.href or ""
    return part.text


def _html(part: Part) -> Markup:
    if part.style == "time" and part.at is not None:
        inner = Markup('<time datetime="{}">{}</time>').format(part.at.isoformat(), when(part.at))
        if part.now:
            inner += Markup(' <span class="muted">({})</span>').format(relative(part.at, part.now))
    elif part.style in ("em", "code"):
        inner = Markup("<{0}>{1}</{0}>").format(Markup(part.style), part.text)
    else:
        inner = escape(part.text)
    if part.href:
        return Markup('<a href="{}">{}</a>').format(part.href, inner)
    return inner


# -- the facts an entry does not hold --------------------------------------------------


@dataclass(frozen=True)
class _Delivery:
    id: int
    step: str | None
    kind: str
    idempotency_id: str
    created_at: datetime
    max_attempts: int
    subject: str | None
    host: str | None
    email: str | None


@dataclass
class Facts:
    """What `gather` read for a batch of entries, and the time they are told at."""

    now: datetime | None
    deliveries: dict[tuple[int, str | None, str], list[_Delivery]] = field(default_factory=dict)
    statuses: dict[int, str] = field(default_factory=dict)
    """The statuses now of the sessions whose rows promise something, by id."""
    ended: dict[int, str] = field(default_factory=dict)
    """Rows whose promise (a wait's end, a delivery's next attempt) no longer holds,
    by id: what ended it, in words ("" when the promise was simply kept); set by
    `narrate` (see `_promises_ended`)."""
    messages: dict[str, _Delivery] = field(default_factory=dict)
    event_types: dict[int, str] = field(default_factory=dict)
    changes: dict[int, list] = field(default_factory=dict)
    """The origin events that record a data change or a hook's call, in words' parts."""

    def delivery(self, row: dict[str, Any], kind: str) -> _Delivery | None:
        """The delivery of the row's step that the row tells of: the newest one made
        at or before the row (a retried session makes a new one)."""
        made = self.deliveries.get((row["session_id"], row["step"], kind), [])
        before = [d for d in made if d.created_at <= _instant(row["at"])]
        return (before or made or [None])[-1]


_DELIVERY_KINDS = {
    "email_attempt_failed": "email",
    "email_failed": "email",
    "email_skipped": "email",
    "webhook_delivered": "webhook",
    "webhook_attempt_failed": "webhook",
    "webhook_failed": "webhook",
}


def gather(conn: Connection, rows: Sequence[dict[str, Any]], now: datetime | None) -> Facts:
    """Read the deliveries and origin events the rows tell of, and the statuses of the
    sessions whose rows promise something: at most three queries."""
    facts = Facts(now=now)
    promising = {r["session_id"] for r in rows if r["kind"] in _PROMISES}
    if promising:
        facts.statuses = dict(
            conn.execute(
                sa.select(sessions.c.id, sessions.c.status).where(sessions.c.id.in_(promising))
            ).all()
        )
    delivering = {r["session_id"] for r in rows if r["kind"] in _DELIVERY_KINDS}
    message_ids = {
        (r["data"] or {}).get("message_id")
        for r in rows
        if r["kind"] in ("email_sent", "email_opened", "email_clicked")
    } - {None}
    if delivering or message_ids:
        condition = sa.or_(
            deliveries.c.session_id.in_(delivering),
            deliveries.c.idempotency_id.in_([str(m) for m in message_ids]),
        )
        found = conn.execute(
            sa.select(
                deliveries.c.id,
                deliveries.c.session_id,
                deliveries.c.step,
                deliveries.c.kind,
                deliveries.c.idempotency_id,
                deliveries.c.created_at,
                deliveries.c.max_attempts,
                deliveries.c.payload,
                visitors.c.email,
            )
            .join(visitors, visitors.c.id == deliveries.c.visitor_id, isouter=True)
            .where(condition)
            .order_by(deliveries.c.id)
        )
        grouped = defaultdict(list)
        for d in found:
            payload = d.payload if isinstance(d.payload, dict) else {}
            url = payload.get("url")
            fact = _Delivery(
                id=d.id,
                step=d.step,
                kind=d.kind,
                idempotency_id=d.idempotency_id,
                created_at=d.created_at,
                max_attempts=d.max_attempts,
                subject=payload.get("subject") if d.kind == "email" else None,
                host=url_host(url) if isinstance(url, str) else None,
                email=d.email,
            )
            grouped[(d.session_id, d.step, d.kind)].append(fact)
            facts.messages[d.idempotency_id] = fact
        facts.deliveries = dict(grouped)
    origins = {
        r["data"].get("origin_event")
        for r in rows
        if r["kind"] == "entered" and isinstance(r["data"], dict)
    }
    origins = {o for o in origins if isinstance(o, int)}
    if origins:
        found = conn.execute(
            sa.select(events.c.id, events.c.type, events.c.details).where(events.c.id.in_(origins))
        ).all()
        facts.event_types = {e.id: e.type for e in found}
        facts.changes = {e.id: words for e in found if (words := _change(e.type, e.details))}
    return facts


def _change(event_type: str, details: Any) -> list | None:
    """What an origin event that Sluice records says happened (SPEC §7 Triggers):
    "tag vip was added", "field plan changed to "pro"", "its hook was called",
    "they entered segment vips", "the date in field birthday came: 2027-03-14"."""
    if not isinstance(details, dict):
        return None
    if event_type == TAG_ADDED:
        return ["tag ", code(details.get("tag")), " was added"]
    if event_type == FIELD_CHANGED:
        to = details.get("to")
        return [
            "field ",
            code(details.get("field")),
            " changed to ",
            code(orjson.dumps(to).decode()),
        ]
    if event_type == WEBHOOK:
        return ["its hook was called"]
    if event_type in (SEGMENT_ENTERED, SEGMENT_LEFT):
        verb = "entered" if event_type == SEGMENT_ENTERED else "left"
        return ["they ", verb, " segment ", code(details.get("segment"))]
    if event_type == DATE:
        return ["the date in field ", code(details.get("field")), *_date_came(details)]
    return None


def _date_came(details: dict[str, Any]) -> list:
    """`came: 2027-03-14`, or with an offset `was 7d away: 2027-03-14` (`was 2d past`)."""
    day = f": {details.get('date')}"
    offset = details.get("offset")
    if not isinstance(offset, str) or not offset:
        return [" came", day]
    return [f" was {offset[1:]} {'away' if offset.startswith('-') else 'past'}", day]


def url_host(url: str) -> str:
    """The host a URL names (the URL itself if it names none)."""
    try:
        return urlsplit(url).hostname or url
    except ValueError:
        return url


def _instant(value: str | datetime) -> datetime:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


# -- lines -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    """One row of a timeline as people read it."""

    id: int
    """The id of the entry it tells (of the `step` entry, for a step nothing followed)."""
    session_id: int
    at: datetime
    step: str | None
    step_kind: str | None
    """The kind of the step (`email`, `wait`, …), when its `step` entry was seen."""
    kind: str
    sentence: Sentence
    entries: tuple[dict[str, Any], ...]
    """The raw entries told here (`{at, step, kind, data}`): the folded `step` first."""
    replaces: int | None = None
    """Live: the id of the "Began step" line shown before, which this one folds in."""
    position: int = 0
    """Where it goes in the timeline: the id of the `step` row it folds in, else `id`."""

    @property
    def tone(self) -> str:
        return self.sentence.tone

    def text(self) -> str:
        """The CLI's line: the time first, then the step, then the sentence."""
        step = f"{self.step}  " if self.step else ""
        return f"{when(self.at)}  {step}{self.sentence.text()}"


def narrate(
    rows: Iterable[dict[str, Any]],
    facts: Facts,
    *,
    before: Iterable[dict[str, Any]] = (),
    statuses: Mapping[int, str] | None = None,
) -> list[Line]:
    """Lines for timeline rows, oldest first. A row is an entry with its `id` and
    `session_id` (and, optionally, the session's `flow` and visitor `email`).

    A `step` row folds into the next row of the same session and step, which takes its
    place in the order: the outcome of a `start_flow` step is written after the steps
    that ran after it, in the same transaction, yet reads where its step began.
    `before` are the rows shown last, one per session (a live stream's previous
    ones): a `step` row there folds into the first new row of its step, whose line
    then `replaces` its line. `statuses`: the sessions' statuses now, by id, beside
    those `gather` read; with the rows that follow, they tell which promises no longer
    hold."""
    rows = list(rows)
    facts.ended.update(_promises_ended(rows, {**facts.statuses, **(statuses or {})}))
    pending: dict[tuple[int, str | None], dict[str, Any]] = {}  # `step` rows not followed yet
    shown: set[int] = set()
    for earlier in before:
        if earlier["kind"] == "step":
            pending[(earlier["session_id"], earlier["step"])] = earlier
            shown.add(earlier["id"])
    step_kinds: dict[tuple[int, str | None], str] = {}
    lines: list[Line] = []

    def alone(step_row: dict[str, Any]) -> None:
        if step_row["id"] not in shown:
            lines.append(_line(step_row, facts, None, step_kinds))

    for row in rows:
        key = (row["session_id"], row["step"])
        if row["kind"] == "step":
            if key in pending:  # the same step again (a retry) before anything followed
                alone(pending.pop(key))
            step_kinds[key] = str((row["data"] or {}).get("kind", ""))
            pending[key] = row
            continue
        lines.append(_line(row, facts, pending.pop(key, None), step_kinds))
    for step_row in pending.values():
        alone(step_row)
    lines.sort(key=lambda line: (line.position, line.id))
    return lines


_PROMISES = frozenset(
    {"waiting", "wait_extended", "email_attempt_failed", "webhook_attempt_failed"}
)
"""Kinds whose row promises something to come: a wait's end, a next attempt."""
_STILL_WAITING = frozenset(
    {
        "step",
        "paused",
        "resumed",
        "stopped",
        "migrated",
        "email_opened",
        "email_clicked",
        "flow_started",
        "flow_not_started",
    }
)
"""Kinds after which a session still waits as before: a stopped session is told by
its status (resumed, it waits again); a `start_flow` step's outcome is written after
the steps that ran after it."""
_KEPT = frozenset({"wait_ended", "wait_timed_out"})
"""Kinds that end a wait as it promised."""
_THEN = {
    "stopped": "stopped",
    "exited": "left the flow",
    "failed": "failed",
    "completed": "completed",
    "goal": "a goal was reached",
    "event_received": "the event came",
    "wait_extended": "the wait was extended",
    "retried": "retried",
}


def _promises_ended(rows: list[dict[str, Any]], statuses: Mapping[int, str]) -> dict[int, str]:
    """The rule (docs/sessions.md): a row's promise holds while nothing but
    `_STILL_WAITING` kinds follows it in its session and the session, where its
    status is known, is waiting or active. Else it ended, by the first row that
    followed (a kept wait's end says nothing more), else by the session's status."""
    ended: dict[int, str] = {}
    open_rows: dict[int, list[int]] = defaultdict(list)  # session → promising rows
    for row in rows:
        session = row["session_id"]
        if row["kind"] not in _STILL_WAITING:
            for promised in open_rows.pop(session, []):
                kept = row["kind"] in _KEPT or row["kind"] in _DELIVERY_KINDS
                ended[promised] = "" if kept else _THEN.get(row["kind"], _words(row["kind"]))
        if row["kind"] in _PROMISES:
            open_rows[session].append(row["id"])
    for session, promised in open_rows.items():
        status = statuses.get(session)
        if status is not None and status not in ("waiting", "active"):
            ended.update((row_id, _THEN.get(status, status)) for row_id in promised)
    return ended


def _words(kind: str) -> str:
    return kind.replace("_", " ").strip()


def _line(row, facts: Facts, folded: dict[str, Any] | None, step_kinds) -> Line:
    return Line(
        id=row["id"],
        session_id=row["session_id"],
        at=_instant(row["at"]),
        step=row["step"],
        step_kind=step_kinds.get((row["session_id"], row["step"])) or None,
        kind=row["kind"],
        sentence=sentence(row, facts),
        entries=tuple(_raw(r) for r in ([folded] if folded else []) + [row]),
        replaces=folded["id"] if folded is not None else None,
        position=folded["id"] if folded is not None else row["id"],
    )


def _raw(row: dict[str, Any]) -> dict[str, Any]:
    at = row["at"]
    return {
        "at": at if isinstance(at, str) else at.isoformat(),
        "step": row["step"],
        "kind": row["kind"],
        "data": row["data"],
    }


# -- one sentence per kind -------------------------------------------------------------


def sentence(row: dict[str, Any], facts: Facts) -> Sentence:
    """The sentence for one row (see `narrate` for the row's shape)."""
    data = row["data"] if isinstance(row["data"], dict) else {}
    tell = _TELLERS.get(row["kind"], _unknown)
    try:
        parts = tell(_Say(row, data, facts))
    except (KeyError, TypeError, ValueError, AttributeError):
        parts = _unknown(_Say(row, data, facts))  # data not in the shape its kind writes
    kind = row["kind"]
    tone = "error" if kind in ERROR_KINDS else "warning" if kind in WARNING_KINDS else ""
    return Sentence(tuple(_plain(p) for p in parts), tone)


def _plain(part: Part | str) -> Part:
    return part if isinstance(part, Part) else Part(part)


@dataclass(frozen=True)
class _Say:
    row: dict[str, Any]
    data: dict[str, Any]
    facts: Facts

    @property
    def ended(self) -> str | None:
        """What ended this row's promise ("" if it was kept), None while it holds."""
        return self.facts.ended.get(self.row.get("id"))

    def time(self, value: str | datetime) -> Part:
        """An instant; relative to now only while the row's promise holds."""
        now = self.facts.now if self.ended is None else None
        return Part("", "time", at=_instant(value), now=now)

    def then(self) -> str:
        """` (then stopped)`: what ended the row's promise, if not kept."""
        return f" (then {self.ended})" if self.ended else ""


SHOWN = 200
"""The most characters of one name or value a sentence shows; the rest is cut to `…`
(the whole stays in the entry's raw JSON)."""


def shown(text: Any) -> str:
    text = str(text)
    return text if len(text) <= SHOWN else text[: SHOWN - 1] + "…"


def em(text: Any, href: str | None = None) -> Part:
    return Part(shown(text), "em", href)


def code(text: Any, href: str | None = None) -> Part:
    return Part(shown(text), "code", href)


def value(data: Any) -> str:
    """A value as it was read: JSON for people (`"pro"`, `[]`, `3`), cut as `shown`."""
    return shown(orjson.dumps(data).decode())


def flow_link(key: str) -> str:
    return "/flows/" + quote(key, safe="")


def outbox_link(delivery: _Delivery) -> str | None:
    if delivery.email is None:
        return None  # erased
    return "/outbox?" + urlencode({"email": delivery.email, "id": delivery.id})


def _listed(parts: list[list[Part | str]], joiner: str = ", ", last: str = " and ") -> list:
    """The parts joined: `a, b and c`."""
    out: list[Part | str] = []
    for i, piece in enumerate(parts):
        if i:
            out.append(last if i == len(parts) - 1 else joiner)
        out += piece
    return out


def _by(actor: Any) -> str:
    if actor == "flow":
        return ""
    return f" by {actor}" if actor else ""


# Each teller returns the parts of its kind's sentence.


def _entered(say: _Say) -> list:
    flow = say.row.get("flow")
    origin = say.data.get("origin_event")
    parts: list = ["Entered the flow"]
    if flow:
        parts += [" ", em(flow, flow_link(flow))]
    if say.data.get("version") is not None:
        parts.append(f" (v{say.data['version']})")
    event_type = say.facts.event_types.get(origin)
    change = say.facts.changes.get(origin)
    if change is not None:
        parts += [", started when ", *change, f" (event {origin})"]
    elif event_type is not None:
        parts += [", started by ", code(event_type), f" (event {origin})"]
    elif origin is not None:
        parts.append(f", started by event {origin}")
    return parts


def _step(say: _Say) -> list:
    kind = say.data.get("kind")
    return ["Began step ", code(say.row["step"]), f" ({kind})" if kind else ""]


def _email_subject(say: _Say, delivery: _Delivery | None) -> list:
    subject = say.data.get("subject") or (delivery.subject if delivery else None)
    return [em(subject)] if subject else ["the email"]


def _view_email(delivery: _Delivery | None) -> list:
    link = outbox_link(delivery) if delivery else None
    return [" (", Part("view email", "link", link), ")"] if link else []


def _email_sent(say: _Say) -> list:
    delivery = say.facts.messages.get(say.data.get("message_id"))
    kept = say.data.get("transport") == "outbox"
    parts: list = ["Put " if kept else "Sent ", *_email_subject(say, delivery)]
    if say.data.get("to"):
        parts += [" to ", say.data["to"]]
    if kept:
        parts.append(" in the outbox, unsent: no SMTP server is set up")
    return parts + _view_email(delivery)


def _email_skipped(say: _Say) -> list:
    reason = say.data.get("reason")
    why = {
        "unsubscribed": "the visitor is unsubscribed",
        "address erased": "the address was erased",
    }.get(reason, reason)
    return ["Did not send the email", f": {why}" if why else ""]


def _delivery_cancelled(say: _Say) -> list:
    what = "webhook" if say.data.get("delivery") == "webhook" else "email"
    reason = say.data.get("reason")
    return [f"Did not send the {what}", f": {reason}" if reason else ""]


def _attempts(say: _Say, delivery: _Delivery | None) -> list:
    attempt = say.data.get("attempt")
    if attempt is None:
        return []
    limit = f" of {delivery.max_attempts}" if delivery else ""
    parts: list = [f"; attempt {attempt}{limit}"]
    if say.data.get("next_attempt_at") and not say.ended:  # not when nothing waits for it
        parts += [", next at ", say.time(say.data["next_attempt_at"])]
    return parts


def _error(say: _Say) -> str:
    error = say.data.get("error")
    status = say.data.get("status")
    if not error and status is not None:
        error = f"HTTP {status}"
    return error or "no reason given"


def _email_attempt(say: _Say) -> list:
    delivery = say.facts.delivery(say.row, "email")
    return [
        "Could not send ",
        *_email_subject(say, delivery),
        f" yet: {_error(say)}",
        *_attempts(say, delivery),
        *_view_email(delivery),
    ]


def _email_failed(say: _Say) -> list:
    delivery = say.facts.delivery(say.row, "email")
    attempts = say.data.get("attempt")
    after = f" (after {attempts} attempt{'s' if attempts != 1 else ''})" if attempts else ""
    return [
        "Gave up sending ",
        *_email_subject(say, delivery),
        f": {_error(say)}{after}",
        *_view_email(delivery),
    ]


def _email_opened(say: _Say) -> list:
    delivery = say.facts.messages.get(say.data.get("message_id"))
    return ["The visitor opened ", *_email_subject(say, delivery), *_view_email(delivery)]


def _email_clicked(say: _Say) -> list:
    delivery = say.facts.messages.get(say.data.get("message_id"))
    url = say.data.get("url")
    link = [" a link to ", code(url)] if url else [" a link"]
    return ["The visitor clicked", *link, " in ", *_email_subject(say, delivery)]


def _webhook(say: _Say) -> tuple[list, _Delivery | None]:
    delivery = say.facts.delivery(say.row, "webhook")
    host = delivery.host if delivery else None
    return (["Webhook to ", em(host)] if host else ["Webhook"]), delivery


def _webhook_delivered(say: _Say) -> list:
    to, _ = _webhook(say)
    status = say.data.get("status")
    attempt = say.data.get("attempt")
    parts = [*to, " delivered"]
    if status is not None:
        parts.append(f": HTTP {status}")
    if attempt and attempt > 1:
        parts.append(f" (attempt {attempt})")
    return parts


def _webhook_attempt_failed(say: _Say) -> list:
    to, delivery = _webhook(say)
    return [*to, f" failed: {_error(say)}", *_attempts(say, delivery)]


def _webhook_failed(say: _Say) -> list:
    to, _ = _webhook(say)
    attempts = say.data.get("attempt")
    after = f" after {attempts} attempt{'s' if attempts != 1 else ''}" if attempts else ""
    return [*to, f" gave up{after}: {_error(say)}"]


def _changes(done: list[list], removed: list[str], noun: str) -> list:
    """`Tagged a and b; removed the tag c`: what was set, then what was removed."""
    pieces = list(done)
    if removed:
        words = f"the {noun}s " if len(removed) > 1 else f"the {noun} "
        pieces.append(["removed " + words, *_listed([[code(name)] for name in removed])])
    if pieces and not done:
        pieces[0][0] = pieces[0][0].capitalize()
    return _listed(pieces, "; ", "; ")


def _tags_changed(say: _Say) -> list:
    added, removed = say.data.get("added") or [], say.data.get("removed") or []
    if not added and not removed:
        return ["Changed no tags: nothing to change"]
    done = [["Tagged ", *_listed([[code(tag)] for tag in added])]] if added else []
    return _changes(done, removed, "tag")


def _fields_changed(say: _Say) -> list:
    given, removed = say.data.get("set") or {}, say.data.get("removed") or []
    if not given and not removed:
        return ["Changed no fields"]
    pairs = [[code(name), " to ", code(value(v))] for name, v in given.items()]
    done = [["Set ", *_listed(pairs)]] if given else []
    return _changes(done, removed, "field")


def _subscription_changed(say: _Say) -> list:
    return ["Subscribed the visitor" if say.data.get("subscribed") else "Unsubscribed the visitor"]


def _waiting(say: _Say) -> list:
    parts: list = [{None: "Waiting", "": "Waited"}.get(say.ended, "Was waiting")]
    if say.data.get("event"):
        parts += [" for ", code(say.data["event"])]
    if say.data.get("until"):
        parts += [
            " until " if "event" not in say.data else ", at most until ",
            say.time(say.data["until"]),
        ]
    if say.data.get("timezone"):
        parts.append(f" (the visitor's time zone: {say.data['timezone']})")
    if say.data.get("timezone_note"):
        parts.append(f"; {say.data['timezone_note']}")
    return [*parts, say.then()]


def _wait_ended(say: _Say) -> list:
    if say.data.get("reason"):
        return [f"Did not wait: {say.data['reason']}"]
    return ["The wait is over"]


def _wait_extended(say: _Say) -> list:
    ends = {None: "now ends", "": "ended"}.get(say.ended, "was to end")
    until = say.time(say.data["until"])
    return [f"The wait {ends} at ", until, " (the flow was off meanwhile)", say.then()]


def _event_received(say: _Say) -> list:
    event = say.data.get("event") or {}
    return ["Received ", code(event.get("type", "the event")), ", the event it was waiting for"]


def _wait_timed_out(say: _Say) -> list:
    return ["Stopped waiting: the event did not come in time"]


def _condition_error(say: _Say) -> list:
    return [f"A condition could not be evaluated, so it counts as false: {_error(say)}"]


def _branch(say: _Say) -> list:
    result = bool(say.data.get("result"))
    parts: list = ["Went ", em("then" if result else "else"), ": ", code(say.data["condition"])]
    if say.data.get("error"):
        parts.append(f" could not be evaluated ({say.data['error']})")
    else:
        parts.append(" was true" if result else " was false")
    return parts + _values(say.data.get("values"))


def _split(say: _Say) -> list:
    weight = say.data.get("weight")
    return [
        f"Took branch {int(say.data['branch']) + 1} of the split",
        f" (weight {weight})" if weight is not None else "",
    ]


def _values(values: dict[str, Any]) -> list:
    """` (plan = "pro", seats = 3, x is not set)`, or nothing for no values."""
    if not values:
        return []
    pairs = [
        [code(name), " is not set"] if v is None else [code(name), " = ", code(value(v))]
        for name, v in values.items()
    ]
    return [" (", *_listed(pairs, ", ", ", "), ")"]


def _event_tracked(say: _Say) -> list:
    return ["Recorded the event ", code(say.data["type"]), *_values(say.data.get("details"))]


def _track_skipped(say: _Say) -> list:
    return [
        "Did not record the event ",
        code(say.data.get("type", "?")),
        f": {say.data.get('reason', 'no reason given')}",
    ]


def _flow_started(say: _Say) -> list:
    flow, session = say.data["flow"], say.data.get("session_id")
    parts: list = ["Started the flow ", em(flow, flow_link(flow))]
    if session is not None:
        parts += [" (", Part(f"session #{session}", href=f"/sessions/{int(session)}"), ")"]
    return parts


def _flow_not_started(say: _Say) -> list:
    flow = say.data["flow"]
    reason = say.data.get("reason")
    if reason == "entry rules":
        reason = "its entry rules refused the visitor"
    return ["Did not start the flow ", em(flow, flow_link(flow)), f": {reason}"]


def _goal(say: _Say) -> list:
    event = say.data.get("event") or {}
    return ["Reached a goal: the event ", code(event.get("type", "?"))]


def _stopped(say: _Say) -> list:
    return [f"Stopped{_by(say.data.get('by'))}; it stays here until resumed"]


def _resumed(say: _Say) -> list:
    if say.data.get("by") == "flow":
        return ["Resumed: the flow was turned on"]
    return [f"Resumed{_by(say.data.get('by'))}"]


def _paused(say: _Say) -> list:
    return ["Paused: the flow was turned off"]


def _retried(say: _Say) -> list:
    return [f"Retried{_by(say.data.get('by'))}: the step that failed runs again"]


def _migrated(say: _Say) -> list:
    parts: list = [f"Moved from v{say.data['from']} to v{say.data['to']}"]
    old, new = say.data.get("from_step"), say.data.get("to_step")
    if new is None:
        parts += [" (its step ", code(old), " is gone and nothing follows it)"]
    elif old == new:
        parts += [" (step ", code(new), " kept)"]
    else:
        parts += [" (from step ", code(old), " to ", code(new), ")"]
    return parts


_EXIT_REASONS = {
    "goal": "Left the flow: a goal was reached",
    "erased": "Left the flow: the visitor was erased",
    "exit step": "Left the flow at an exit step",
}


def _exited(say: _Say) -> list:
    reason = say.data.get("reason")
    return [_EXIT_REASONS.get(reason, f"Left the flow: {reason}" if reason else "Left the flow")]


def _completed(say: _Say) -> list:
    return ["Completed the flow"]


def _failed(say: _Say) -> list:
    return [f"Failed: {_error(say)}"]


def _unknown(say: _Say) -> list:
    kind = str(say.row["kind"]).replace("_", " ").strip().capitalize() or "Entry"
    parts: list = [kind]
    if say.data:
        parts.append(": ")
        parts += _listed([[str(k), " ", code(value(v))] for k, v in say.data.items()], ", ", ", ")
    return parts


_TELLERS = {
    "entered": _entered,
    "step": _step,
    "email_sent": _email_sent,
    "email_skipped": _email_skipped,
    "delivery_cancelled": _delivery_cancelled,
    "email_attempt_failed": _email_attempt,
    "email_failed": _email_failed,
    "email_opened": _email_opened,
    "email_clicked": _email_clicked,
    "webhook_delivered": _webhook_delivered,
    "webhook_attempt_failed": _webhook_attempt_failed,
    "webhook_failed": _webhook_failed,
    "tags_changed": _tags_changed,
    "fields_changed": _fields_changed,
    "subscription_changed": _subscription_changed,
    "waiting": _waiting,
    "wait_ended": _wait_ended,
    "wait_extended": _wait_extended,
    "event_received": _event_received,
    "wait_timed_out": _wait_timed_out,
    "condition_error": _condition_error,
    "branch": _branch,
    "split": _split,
    "event_tracked": _event_tracked,
    "track_skipped": _track_skipped,
    "flow_started": _flow_started,
    "flow_not_started": _flow_not_started,
    "goal": _goal,
    "stopped": _stopped,
    "resumed": _resumed,
    "paused": _paused,
    "retried": _retried,
    "migrated": _migrated,
    "exited": _exited,
    "completed": _completed,
    "failed": _failed,
}
KINDS = tuple(_TELLERS)
"""Every kind the code writes, in about the order a session meets them."""


# -- for the pages and the CLI ---------------------------------------------------------


def event_sentence(event: dict[str, Any]) -> Sentence:
    """An accepted event (`views.event_view`), as the Activity feed tells it."""
    details = event.get("details")
    told = _values(details) if isinstance(details, dict) else []
    return Sentence((Part("Received the event "), code(event["type"]), *map(_plain, told)))


def session_lines(
    conn: Connection | None,
    session: dict[str, Any],
    entries: Sequence[tuple[int, dict]],
    now: datetime | None,
    *,
    before: tuple[int, dict] | None = None,
) -> list[Line]:
    """The lines of one session's timeline entries `(id, entry)`; `session` is its
    view (SPEC §3.4 shape), `before` the entry shown last (see `narrate`). Without
    `conn` (a simulation, whose database is gone) they are told from the entries
    alone; without `now`, instants have no relative form."""

    def row(entry_id: int, entry: dict) -> dict[str, Any]:
        return {**entry, "id": entry_id, "session_id": session["id"], "flow": session["flow"]}

    rows = [row(*e) for e in entries]
    shown = [row(*before)] if before else []
    facts = gather(conn, rows, now) if conn is not None else Facts(now=now)
    return narrate(rows, facts, before=shown, statuses={session["id"]: session["status"]})
