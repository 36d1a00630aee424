"""The forms of the broadcast pages read into what `Sluice` takes: the compose form
(`/broadcasts/_new`) into a `NewBroadcast` and when to send it, and the send form of a
draft into when. Every problem comes back as `{loc, msg}` with the API's locs (`name`,
`email.subject`, `segment`, `inclusive_tags.0`, `send_at`, …), so the page says them
as the API would and marks the field each concerns (`field_of`).

A date and time typed in the form (an `<input type=datetime-local>`, which has no
zone) is read in the server's zone (`SLUICE_TIMEZONE`, SPEC §2.6); a day for a local
time is the day of `send_at` (store/broadcasts.py, `schedule`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sluice.api.schemas import BroadcastIn
from sluice.definitions.limits import MAX_TEXT_BYTES
from sluice.definitions.problems import DefinitionError
from sluice.edge import problems as problems_of
from sluice.service import Sluice
from sluice.store.broadcasts import NewBroadcast

When = Literal["now", "at", "local"]
PARTS = ("subject", "html", "text", "from")
"""The inline email's fields, named as the email step's keys."""


class Compose(BaseModel):
    """The compose form as typed: every field a bounded string, read by `read`, and
    shown again as typed when it has problems."""

    model_config = ConfigDict(populate_by_name=True)

    csrf: str = Field("", max_length=100)
    action: Literal["draft", "send"] = "draft"
    confirm: str = Field("", max_length=100)
    """The audience and time the person confirmed sending to (`confirmation_token`):
    the confirming button sends it, without `action`."""
    name: str = Field("", max_length=1000)
    segment: str = Field("", max_length=200)
    inclusive_tags: str = Field("", max_length=20_000)
    exclusive_tags: str = Field("", max_length=20_000)
    content: Literal["inline", "template"] = "inline"
    template: str = Field("", max_length=200)
    subject: str = Field("", max_length=MAX_TEXT_BYTES)
    html: str = Field("", max_length=MAX_TEXT_BYTES)
    text: str = Field("", max_length=MAX_TEXT_BYTES)
    from_: str = Field("", alias="from", max_length=1000)
    when: When = "now"
    send_at: str = Field("", max_length=40)
    local_date: str = Field("", max_length=40)
    local_time: str = Field("", max_length=40)
    per_hour: str = Field("", max_length=40)


class SendDraft(BaseModel):
    """The send form of a draft: now, at a date and time, or (a broadcast at a local
    time) the day."""

    csrf: str = Field("", max_length=100)
    when: When = "now"
    send_at: str = Field("", max_length=40)
    local_date: str = Field("", max_length=40)
    confirm: str = Field("", max_length=100)


@dataclass(frozen=True)
class Composed:
    """A compose form read: the broadcast and when to send it (None: now), or the
    problems that keep it from being saved."""

    new: NewBroadcast | None
    send_at: datetime | None
    problems: list[dict[str, str]]


def read(sluice: Sluice, form: Compose) -> Composed:
    """The broadcast the form describes, checked as `create_broadcast` checks it, and
    every problem of the form at once."""
    document = {
        "name": form.name.strip(),
        "email": email_of(form),
        "segment": form.segment or None,
        "inclusive_tags": _tags(form.inclusive_tags),
        "exclusive_tags": _tags(form.exclusive_tags),
        "local_time": form.local_time.strip() if form.when == "local" else None,
        "per_hour": form.per_hour.strip() or None,
    }
    given, problems = _shape(form, document)
    send_at, later = schedule(
        sluice, form.when, form.send_at, form.local_date, now=sluice.clock.now()
    )
    problems += later
    new = NewBroadcast(
        name=document["name"],
        email=document["email"],
        segment_key=document["segment"],
        inclusive_tags=document["inclusive_tags"],
        exclusive_tags=document["exclusive_tags"],
        local_time=given and given.local_time,
        per_hour=given and given.per_hour,
    )
    problems += _content(sluice, new, said={p["loc"] for p in problems})
    return Composed(None if problems else new, send_at, problems)


def _shape(form: Compose, document: dict) -> tuple[BroadcastIn | None, list[dict[str, str]]]:
    """The document checked as the API checks its body (`BroadcastIn`), and what the
    form left out, said as a person would need it."""
    problems = []
    if not document["name"]:
        problems.append({"loc": "name", "msg": "give the broadcast a name"})
    if form.when == "local" and not document["local_time"]:
        problems.append({"loc": "local_time", "msg": "give the time of day"})
    if form.content == "template" and not form.template:
        problems.append({"loc": "email.template", "msg": "choose a template"})
    try:
        return BroadcastIn.model_validate(document), problems
    except ValidationError as error:
        said = {p["loc"] for p in problems}
        return None, problems + [p for p in problems_of(error) if p["loc"] not in said]


def _content(sluice: Sluice, new: NewBroadcast, *, said: set[str]) -> list[dict[str, str]]:
    """The problems of the email (against the templates stored now) and of the segment
    that are not `said` already. With no template chosen yet, those of the email's
    parts only say that it has no subject or body, which choosing one mends."""
    try:
        sluice.check_broadcast(new)
    except DefinitionError as error:
        no_template = "email.template" in said
        return [
            {"loc": p.loc, "msg": p.msg}
            for p in error.problems
            if p.loc not in said and not (no_template and p.loc.split(".")[0] == "email")
        ]
    return []


def email_of(form: Compose) -> dict[str, Any]:
    """The email step's value of the form: the template chosen, or the inline parts
    given (a form sends a textarea's line breaks as CR LF: read as LF)."""
    given = {"subject": form.subject, "html": form.html, "text": form.text, "from": form.from_}
    email: dict[str, Any] = {}
    if form.content == "template":
        if form.template:
            email["template"] = form.template
        given = {"from": form.from_}
    for key, value in given.items():
        if value.strip():
            email[key] = value.replace("\r\n", "\n")
    return email


def schedule(
    sluice: Sluice, when: str, send_at: str, local_date: str, *, now: datetime
) -> tuple[datetime | None, list[dict[str, str]]]:
    """When to send, from the form's choice: None (now); the date and time typed, in
    the server's zone; or the day of a local time (its midnight, UTC: the day is
    what counts). A time in the past, or a day before today, is a problem."""
    if when == "at":
        try:
            typed = datetime.fromisoformat(send_at.strip())
        except ValueError:
            return None, [{"loc": "send_at", "msg": "give a date and time"}]
        if typed.tzinfo is None:
            typed = typed.replace(tzinfo=ZoneInfo(sluice.settings.timezone))
        at = typed.astimezone(UTC)
        if at < now.replace(second=0, microsecond=0):
            return None, [{"loc": "send_at", "msg": "is in the past (to send now, choose now)"}]
        return at, []
    if when == "local":
        try:
            day = date.fromisoformat(local_date.strip())
        except ValueError:
            return None, [{"loc": "local_date", "msg": "give the day"}]
        if day < now.astimezone(UTC).date():
            return None, [{"loc": "local_date", "msg": "is in the past"}]
        return datetime.combine(day, time(0), tzinfo=UTC), []
    return None, []


def field_of(loc: str) -> str:
    """The form field a problem's loc concerns: `email.subject` → `subject`,
    `inclusive_tags.0` → `inclusive_tags`; a problem of the whole email → `html`."""
    head = loc.removeprefix("email.").split(".", 1)[0]
    return "html" if head == "email" else head


def confirmation_token(segment: str | None, send_at: datetime | None) -> str:
    """What the button that confirms a send carries: the audience and the time it
    asked about, so that a form changed since is asked about again."""
    audience = f"segment:{segment}" if segment else "everyone"
    return f"{audience} at {send_at.isoformat() if send_at else 'now'}"


def _tags(text: str) -> list[str]:
    return [tag.strip() for tag in text.split(",") if tag.strip()]
