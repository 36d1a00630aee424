"""Pages of segments (SPEC §7): the list with member counts (`/segments`), a segment's
rules in words, its members a page at a time and its audit log (`/segments/{key}`),
and the YAML editor that saves one (`/segments/_new`, `/segments/{key}/edit`), whose
script asks `/ui/segments/…/preview` how many visitors the typed rules hold now.

A new segment is `/segments/_new`, as new flows and templates are: `_new` cannot be
a key (keys start with a letter or digit), so no segment's page is hidden by it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from sluice.api.auth import sluice_of
from sluice.definitions.parse import load_documents
from sluice.definitions.problems import DefinitionError, Problem
from sluice.definitions.segments import validate_segment
from sluice.definitions.source import document_texts
from sluice.service import Sluice
from sluice.store.segments import UnknownSegment
from sluice.ui import auth, editing, render
from sluice.ui.errors import PageRoute
from sluice.ui.flows import DEFINITION_FORM, Csrf, Definition, Note
from sluice.ui.segment_rules import say

router = APIRouter(include_in_schema=False, route_class=PageRoute)
PAGE = 50
"""Members shown a page (`?limit=` asks for another number, up to `MAX_PAGE`)."""
MAX_PAGE = 500
NEW_SEGMENT = """\
kind: segment
key: engaged-pros       # a-z, 0-9, _ and -; flows name the segment by it
name: Engaged pros
match: all              # all (default) or any of the rules
rules:
  - field: plan
    equals: pro         # also: not_equals, one_of, greater_than, less_than, at_least,
                        # at_most, contains, exists, before, after, within, within_next
  - subscribed: true
  - event: $login       # events of a type, counted
    at_least: 3         # or at_most, exactly
    within: 30d         # in the last 30 days (default: ever)
  # - tag: vip          # has the tag (has: false: has not)
  # - any:              # groups: all, any, none
  #     - tag: beta
  #     - field: seats
  #       at_least: 10
"""


@dataclass(frozen=True)
class Checked:
    """A typed segment: its document when valid, else every problem with its line."""

    document: dict | None
    problems: list[dict[str, Any]]


def check(sluice: Sluice, text: str, key: str | None) -> Checked:
    """Read `text` as one segment: the segment `key` being edited, whose key the text
    must keep, or with `key` None a new one, whose key must be free."""
    try:
        documents = load_documents(text, "segment")
    except DefinitionError as error:
        return Checked(None, editing.located(text, error.problems, loaded=False))
    problems = []
    if len(documents) != 1:
        problems.append(Problem("", f"expected one segment, found {len(documents)}"))
    document = documents[0] if documents else {}
    if key is not None and document.get("key") != key:
        problems.append(Problem("key", f"must stay '{key}' (to make another, use New segment)"))
    if key is None and _exists(sluice, document.get("key")):
        problems.append(Problem("key", f"a segment '{document['key']}' exists already"))
    try:
        validate_segment(document)
    except DefinitionError as error:
        problems += error.problems
    if problems:
        return Checked(None, editing.located(text, problems, loaded=True))
    return Checked(document, [])


def _exists(sluice: Sluice, key: object) -> bool:
    try:
        sluice.segment(str(key))
    except UnknownSegment:
        return False
    return True


# -- the list ------------------------------------------------------------------------------


@router.get("/segments")
def segments_page(request: Request) -> HTMLResponse:
    auth.session_of(request)
    return render.page(request, "segments.html", segments=sluice_of(request).segments())


# -- a new segment -------------------------------------------------------------------------


@router.get("/segments/_new")
def new_segment_page(request: Request) -> HTMLResponse:
    auth.session_of(request)
    return _editor(request, None, NEW_SEGMENT)


@router.post("/segments/_new", form_limits=DEFINITION_FORM)
def create_segment(request: Request, csrf: Csrf = "", definition: Definition = "", note: Note = ""):
    session = auth.check_csrf(request, csrf)
    text = _typed(definition)
    checked = check(sluice_of(request), text, None)
    if checked.problems:
        return _editor(request, None, text, note=note, problems=checked.problems, status=422)
    _save(request, session, checked, text, note)
    key = checked.document["key"]
    return render.redirect(request, f"/segments/{key}", f"Created the segment {key}.")


# -- one segment ---------------------------------------------------------------------------


@router.get("/segments/{key}")
def segment_page(
    request: Request,
    key: str,
    after: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = PAGE,
) -> HTMLResponse:
    """The segment; `after`: the last member id of the page before (members are
    listed by visitor id, so a page stays put while others enter)."""
    auth.session_of(request)
    sluice = sluice_of(request)
    try:
        segment = sluice.segment(key)
        members = sluice.segment_members(key, limit=limit + 1, after_id=after)
    except UnknownSegment:
        return render.not_found(request, f"There is no segment '{key}'.")
    changes = [c | {"rows": editing.unified_rows(c["diff"])} for c in segment["changes"]]
    keep = {} if limit == PAGE else {"limit": limit}
    next_url = None
    if len(members) > limit:
        next_url = f"/segments/{key}?{urlencode({'after': members[limit - 1]['id'], **keep})}"
    return render.page(
        request,
        "segment.html",
        segment=segment,
        said=say(validate_segment(segment["definition"]).rules),
        members=members[:limit],
        after=after,
        first_url=f"/segments/{key}" + (f"?{urlencode(keep)}" if keep else ""),
        next_url=next_url,
        changes=changes[::-1],
    )


@router.get("/segments/{key}/edit")
def edit_segment_page(request: Request, key: str) -> HTMLResponse:
    auth.session_of(request)
    try:
        segment = sluice_of(request).segment(key)
    except UnknownSegment:
        return render.not_found(request, f"There is no segment '{key}'.")
    return _editor(request, segment, segment["source"])


@router.post("/segments/{key}/edit", form_limits=DEFINITION_FORM)
def save_segment(
    request: Request, key: str, csrf: Csrf = "", definition: Definition = "", note: Note = ""
):
    session = auth.check_csrf(request, csrf)
    sluice = sluice_of(request)
    try:
        segment = sluice.segment(key)
    except UnknownSegment:
        return render.not_found(request, f"There is no segment '{key}'.")
    text = _typed(definition)
    checked = check(sluice, text, key)
    if checked.problems:
        return _editor(request, segment, text, note=note, problems=checked.problems, status=422)
    version = _save(request, session, checked, text, note)
    notice = f"Saved version {version}." if version else "No change: the text is the same."
    return render.redirect(request, f"/segments/{key}", notice)


def _typed(definition: str) -> str:
    """The text of the form's text area as stored: a form sends its line breaks as CR
    LF (HTML, "constructing the entry list"), read as LF so an unchanged text stays
    unchanged; and ending in a line break, so that every version's diff in the audit
    log is whole lines."""
    text = definition.replace("\r\n", "\n")
    return text if not text or text.endswith("\n") else text + "\n"


def _save(
    request: Request, session: auth.UiSession, checked: Checked, text: str, note: str
) -> int | None:
    """Save a checked segment with its text as typed; its new version, or None when
    neither its rules nor its text changed."""
    key = checked.document["key"]
    report = sluice_of(request).apply(
        [("segment", checked.document)],
        texts=document_texts(text),
        note=note or None,
        actor=session.actor,
    )
    return report.segments[key]


def _editor(
    request: Request,
    segment: dict | None,
    text: str,
    *,
    note: str = "",
    problems: list[dict] | None = None,
    status: int = 200,
) -> HTMLResponse:
    return render.page(
        request,
        "segment_edit.html",
        status=status,
        segment=segment,
        text=text,
        note=note,
        problems=problems or [],
    )


# -- JSON for the editor's script ----------------------------------------------------------


@router.post("/ui/segments/{key}/preview")
@router.post("/ui/segments/_new/preview")  # registered first: decorators apply bottom-up
async def preview_segment(request: Request, key: str | None = None) -> JSONResponse:
    """The editor's live count. Body: the YAML text → `{members, problems: [{loc, msg,
    line}]}`: how many visitors the typed rules hold now (null while there are
    problems); nothing is saved. Every visitor is read (`Sluice.preview_segment`)."""
    auth.check_csrf(request, request.headers.get("x-csrf-token"))
    body = await request.body()  # at most 5 MiB (api/limits.py); the check refuses > 1 MiB
    text = body.decode("utf-8", errors="replace")
    # Off the event loop: counting reads every visitor, which takes a while on a big
    # installation, and the server's other requests must not wait for it.
    return JSONResponse(await run_in_threadpool(_count, sluice_of(request), text, key))


def _count(sluice: Sluice, text: str, key: str | None) -> dict[str, Any]:
    checked = check(sluice, text, key)
    if checked.problems:
        return {"members": None, "problems": checked.problems}
    return sluice.preview_segment(checked.document) | {"problems": []}
