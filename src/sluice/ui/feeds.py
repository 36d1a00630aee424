"""The outbox (emails as rendered) and the activity feed, told in sentences
(`sluice.narration`) and filtered by flow, kind and errors only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import default
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from sluice import narration, views
from sluice.api import streams
from sluice.api.auth import sluice_of
from sluice.delivery.email import InvalidMessage, build_message
from sluice.store import flows as flow_store
from sluice.store import outbox as outbox_store
from sluice.store.sessions import MAX_ID
from sluice.ui import auth, queries, render
from sluice.ui.errors import PageRoute

router = APIRouter(include_in_schema=False, route_class=PageRoute)
PAGE = 50
_MIME_HEADERS = {"Content-Type", "Content-Transfer-Encoding", "MIME-Version"}


def _headers(message: dict) -> list[tuple[str, str]]:
    """The headers the email has (or will have) when sent, tracking aside."""
    date = datetime.fromisoformat(message["created_at"]).astimezone(UTC)
    try:
        built = build_message(message["payload"], date=date, tracker=None)
    except InvalidMessage as error:
        return [("Error", str(error))]
    headers = BytesHeaderParser(policy=default).parsebytes(built.data)
    return [(name, str(value)) for name, value in headers.items() if name not in _MIME_HEADERS]


@router.get("/outbox")
def outbox(
    request: Request,
    email: Annotated[str, Query(max_length=320)] = "",
    before: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    test: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> HTMLResponse:
    auth.session_of(request)
    sluice = sluice_of(request)
    messages = sluice.messages(email=email.strip() or None, limit=PAGE + 1, before_id=before)
    more = len(messages) > PAGE
    messages = messages[:PAGE]
    tests = _tests_beside(sluice, messages, email=email.strip() or None, before=before, more=more)
    rows = sorted(messages + tests, key=lambda m: m["created_at"], reverse=True)
    if test is not None:
        selected = next((m for m in tests if m["id"] == test), None)
    else:
        selected = next((m for m in messages if m["id"] == id), None)
    selected = selected or (rows[0] if rows else None)
    return render.page(
        request,
        "outbox.html",
        email=email.strip(),
        messages=rows,
        selected=selected,
        headers=_headers(selected) if selected else [],
        next_before=messages[-1]["id"] if more else None,
    )


def _tests_beside(
    sluice, messages: list[dict], *, email: str | None, before: int | None, more: bool
) -> list[dict[str, Any]]:
    """The test sends (`store/outbox.py`) created in the span of this page of
    deliveries, each marked `test`: from the last delivery shown (or the beginning, on
    the last page) to the one before the page (or now, on the first)."""
    with sluice.db.read() as conn:
        until = views.message_created_at(conn, before) if before else None
        since = datetime.fromisoformat(messages[-1]["created_at"]) if more else None
        found = outbox_store.list_test_emails(conn, email=email, since=since, until=until)
    return [
        t | {"test": True, "state": "outbox", "attempts": 0, "session_id": None, "flow": None}
        for t in found
    ]


# -- the activity feed -------------------------------------------------------------------


@dataclass(frozen=True)
class FeedRow:
    """One row of the Activity feed: an accepted event or a timeline line."""

    key: str
    """`e12` for event 12, `t34` for timeline entry 34."""
    order: tuple
    at: datetime
    email: str | None
    kind: str
    """`event`, or the timeline entry's kind."""
    sentence: narration.Sentence
    entries: tuple[dict[str, Any], ...]
    session_id: int | None = None
    flow: str | None = None
    step: str | None = None
    replaces: str | None = None
    """Live: the key of the "Began step" row shown before, which this one folds in."""

    @property
    def tone(self) -> str:
        return self.sentence.tone


def feed_rows(conn, new_events, entries, now: datetime, before=()) -> list[FeedRow]:
    """Rows for events and timeline entries (`views.activity_since` shapes), newest
    first; an event before the session entries it caused at the same instant.
    `before`: each session's entry shown last, live (see `narration.narrate`)."""
    rows = [
        FeedRow(
            key=f"e{e['id']}",
            order=(e["accepted_at"], False, e["id"]),
            at=datetime.fromisoformat(e["accepted_at"]),
            email=e["email"],
            kind="event",
            sentence=narration.event_sentence(e),
            entries=({k: e[k] for k in ("type", "details", "fields", "date")},),
        )
        for e in new_events
    ]
    sessions = {e["session_id"]: e for e in entries}
    entries = sorted(entries, key=lambda e: e["id"])  # oldest first, for the `step` rows
    facts = narration.gather(conn, entries, now)
    for line in narration.narrate(entries, facts, before=before):
        session = sessions[line.session_id]
        rows.append(
            FeedRow(
                key=f"t{line.id}",
                order=(line.entries[-1]["at"], True, line.id),
                at=line.at,
                email=session["email"],
                kind=line.kind,
                sentence=line.sentence,
                entries=line.entries,
                session_id=line.session_id,
                flow=session["flow"],
                step=line.step,
                replaces=f"t{line.replaces}" if line.replaces else None,
            )
        )
    rows.sort(key=lambda row: row.order, reverse=True)
    return rows


class BadFilter(ValueError):
    """A filter of the Activity feed that names nothing; the message says which."""


def activity_filter(conn, flow: str, kind: str, errors: bool) -> views.ActivityFilter:
    """The filter the Activity form asks for; raises BadFilter."""
    flow, kind = flow.strip(), kind.strip()
    if flow:
        try:
            flow_store.get_flow(conn, flow)
        except flow_store.UnknownFlow:
            raise BadFilter(f"There is no flow '{flow}'.") from None
    if kind and kind not in FEED_KINDS:
        raise BadFilter(f"'{kind}' is not a kind of activity: choose one from the Kind list.")
    kinds = None
    if kind:
        kinds = frozenset({kind})
    if errors:
        kinds = narration.ERROR_KINDS & kinds if kinds is not None else narration.ERROR_KINDS
    return views.ActivityFilter(flow=flow or None, kinds=kinds)


FEED_KINDS = ("event", *narration.KINDS)
FlowFilter = Annotated[str, Query(max_length=64)]
KindFilter = Annotated[str, Query(max_length=32)]


@router.get("/activity")
def activity(
    request: Request,
    flow: FlowFilter = "",
    kind: KindFilter = "",
    errors: bool = False,
) -> HTMLResponse:
    auth.session_of(request)
    sluice = sluice_of(request)
    now = sluice.clock.now()
    problem, rows, after = None, [], ""
    with sluice.db.read() as conn:
        flows = [f.key for f in flow_store.list_flows(conn)]
        try:
            only = activity_filter(conn, flow, kind, errors)
        except BadFilter as error:
            problem = str(error)
        else:
            last_event, last_entry = views.latest_activity(conn)
            items = queries.recent_activity(conn, limit=PAGE, only=only)
            rows = feed_rows(
                conn,
                [i for i in items if i["item"] == "event"],
                [i for i in items if i["item"] == "timeline"],
                now,
            )
            # The stream goes on from what the page shows, so nothing falls in between.
            after = f"e{last_event}.t{last_entry}"
    filters = {"flow": flow.strip(), "kind": kind.strip(), "errors": errors}
    stream = "/ui/activity/stream?" + urlencode(
        {"after": after, **{k: v for k, v in filters.items() if v}}
    )
    return render.page(
        request,
        "activity.html",
        status=400 if problem else 200,
        rows=rows,
        now=now,
        problem=problem,
        filters=filters,
        filtered=any(filters.values()),
        flows=flows,
        kinds=FEED_KINDS,
        stream=None if problem else stream,
    )


@router.get("/ui/activity/stream")
async def activity_stream(
    request: Request,
    after: Annotated[str | None, Query(max_length=60)] = None,
    last_event_id: Annotated[str | None, Header(max_length=60)] = None,
    flow: FlowFilter = "",
    kind: KindFilter = "",
    errors: bool = False,
) -> Response:
    """The Activity feed's new rows, rendered and filtered as the page is: one message
    per batch, `{"rows": HTML}` (newest first). `after` (`e12.t34`, as the page gives
    it) is where it starts unless the browser reconnects with its own."""
    auth.session_of(request)
    sluice = sluice_of(request)

    def choose() -> views.ActivityFilter:
        with sluice.db.read() as conn:
            return activity_filter(conn, flow, kind, errors)

    try:
        only = await run_in_threadpool(choose)
    except BadFilter as error:
        return JSONResponse({"detail": str(error)}, status_code=422)
    start = streams.activity_position(last_event_id or after)
    if start is None:
        start = await run_in_threadpool(sluice.latest_activity)

    def read(position: tuple[int, int]) -> tuple[list[bytes], tuple[int, int]]:
        now = sluice.clock.now()
        with sluice.db.read() as conn:
            new_events, entries = views.activity_since(conn, *position, only=only)
            if not new_events and not entries:
                return [], position
            # A step shown alone in an earlier message folds into its outcome now.
            sessions = {e["session_id"] for e in entries if e["kind"] != "step"}
            shown = views.last_entries(conn, sessions, position[1])
            rows = feed_rows(conn, new_events, entries, now, before=shown)
        position = (
            new_events[-1]["id"] if new_events else position[0],
            entries[-1]["id"] if entries else position[1],
        )
        html = render.fragment("_feed_rows.html", rows=rows, now=now)
        return [streams.message("e{}.t{}".format(*position), "rows", {"rows": html})], position

    return streams.sse(request, read, start)
