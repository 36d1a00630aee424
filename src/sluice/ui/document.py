"""The builder's round trip between the flow document and its YAML text (issue 11,
docs/ui.md "The builder"): after an edit on the canvas the page sends the text and the
new document, and gets the text with the change merged in (`definitions.source`);
after an edit of the text it sends the text alone, and gets its document. Either way
the answer has the problems of the text, each with its line, as the editor checks it.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from sluice.api.auth import sluice_of
from sluice.api.errors import invalid
from sluice.definitions import source
from sluice.definitions.limits import document_problem, text_problem
from sluice.definitions.parse import DefinitionError, load_documents, load_json
from sluice.definitions.values import key_loc, to_jsonable
from sluice.service import Sluice
from sluice.ui import auth, editing
from sluice.ui.errors import PageRoute

router = APIRouter(include_in_schema=False, route_class=PageRoute)


@router.post("/ui/flows/{key}/document")
@router.post("/ui/flows/_new/document")
async def document(request: Request, key: str | None = None) -> Response:
    """Body `{"text": str, "document": object | null}` (JSON) → `{"text", "document",
    "problems": [{"loc", "msg", "line"}]}`: with a document, `text` is the given text
    with the document merged in; `document` is what the answer's text loads to (null
    when it does not load as one document). 422 `[{loc, msg}]` for a body that is not
    such an object, a text over the size limit, or a document over its limits."""
    auth.check_csrf(request, request.headers.get("x-csrf-token"))
    body = await request.body()  # at most 5 MiB (api/limits.py)
    text, given = _read(body)
    answer = await run_in_threadpool(_answer, sluice_of(request), text, given, key)
    return Response(_json(answer), media_type="application/json")


def _json(answer: dict[str, Any]) -> bytes:
    """orjson (fast; NaN and infinities, refused by the checks, become null), or the
    standard library for an integer beyond 64 bits (also refused, but shown)."""
    try:
        return orjson.dumps(answer)
    except TypeError:
        return json.dumps(answer, ensure_ascii=False, allow_nan=False).encode()


def _read(body: bytes) -> tuple[str, dict | None]:
    try:
        data = load_json(body, "body")
    except json.JSONDecodeError as error:
        where = f"line {error.lineno} column {error.colno}"
        raise invalid([{"loc": "body", "msg": f"not JSON: {error.msg} at {where}"}]) from None
    except DefinitionError as error:
        raise invalid([p.as_dict() for p in error.problems]) from None
    if not isinstance(data, dict):
        raise invalid([{"loc": "body", "msg": 'expected an object {"text": …, "document": …}'}])
    problems = [
        {"loc": key_loc("body", name), "msg": "unknown field (expected text and document)"}
        for name in data
        if name not in ("text", "document")
    ]
    text, given = data.get("text"), data.get("document")
    if not isinstance(text, str):
        problems.append({"loc": "body.text", "msg": "expected the YAML text, a string"})
    elif found := text_problem(text):
        problems.append({"loc": "body.text", "msg": found})
    if given is not None and not isinstance(given, dict):
        problems.append(
            {"loc": "body.document", "msg": "expected the flow definition (an object) or null"}
        )
    elif given is not None and (found := document_problem(given)):
        loc, msg = found
        problems.append({"loc": _within("body.document", loc), "msg": msg})
    if problems:
        raise invalid(problems)
    return text, given


def _within(loc: str, inner: str) -> str:
    return f"{loc}{inner}" if not inner or inner.startswith("[") else f"{loc}.{inner}"


def _answer(sluice: Sluice, text: str, given: dict | None, key: str | None) -> dict[str, Any]:
    if given is not None:
        text = source.merge(text, given)
    checked = editing.check(sluice, text, key, document=given)
    loaded = checked.document
    if loaded is not None and any(p["loc"] == "" for p in checked.problems):
        loaded = _single(text)  # a problem with the text as a whole: is it one document?
    return {"text": text, "document": to_jsonable(loaded), "problems": checked.problems}


def _single(text: str) -> Any:
    try:
        documents = load_documents(text, "document")
    except DefinitionError:
        return None
    return documents[0] if len(documents) == 1 else None
