"""Reading request bodies: JSON (parsed with orjson, but definitions with the standard
library, see `_definitions_json`), or YAML where a route takes it.

The body has been read and size-checked by `limits.RequestLimits` already; here it is
parsed, and text that cannot be stored (a NUL character, which PostgreSQL refuses) is
refused with the path of the value that holds it.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from fastapi import Request

from sluice.api.errors import ApiError, invalid
from sluice.definitions.limits import document_problem
from sluice.definitions.parse import (
    DefinitionError,
    DefinitionSyntaxError,
    load_documents,
    load_json,
)

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


async def raw_body(request: Request) -> bytes:
    """The request body, as a dependency (so that routes can be plain functions)."""
    return await request.body()


def parse_json(body: bytes) -> Any:
    """The JSON document in `body`; 400 when there is none."""
    document = _loads(body)
    refuse_deep(document)
    return document


def _loads(body: bytes) -> Any:
    if not body.strip():
        raise ApiError(400, "the request body is empty; expected a JSON document")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise ApiError(400, f"the request body is not valid JSON: {error}") from None
    return document


def _definitions_json(body: bytes) -> Any:
    """The JSON in `body` (read by `parse.load_json`, so that integers stay exact and a
    key given twice is seen), each definition in it within the definitions' limits on
    nesting, size and numbers (422 at the path where a limit is passed)."""
    if not body.strip():
        raise ApiError(400, "the request body is empty; expected a JSON document")
    try:
        parsed = load_json(body)
    except json.JSONDecodeError as error:
        raise ApiError(400, f"the request body is not valid JSON: {error}") from None
    except DefinitionError as error:
        raise invalid([p.as_dict() for p in error.problems]) from None
    _within_limits(parsed)
    return parsed


def _within_limits(parsed: Any) -> None:
    """422 at the path of the first limit a definition (or, in a list, one of them)
    passes; the loc of one in a list starts with its index."""
    documents = parsed if isinstance(parsed, list) else [parsed]
    for n, document in enumerate(documents):
        found = document_problem(document)
        if found:
            loc, msg = found
            if isinstance(parsed, list):  # `[1]`, `[1].steps[0]`, `[1][0]`
                loc = f"[{n}]" + (f".{loc}" if loc and not loc.startswith("[") else loc)
            raise invalid([{"loc": loc, "msg": msg}])


def _yaml_documents(text: str) -> list[Any]:
    """The documents of a YAML body: 400 when it is not YAML, 422 for a document that
    breaks a definitions' limit (anchors, nesting, size, numbers)."""
    try:
        documents = load_documents(text, "")
    except DefinitionSyntaxError as error:
        raise ApiError(400, str(error)) from None
    except DefinitionError as error:
        raise invalid([p.as_dict() for p in error.problems]) from None
    _within_limits(documents if len(documents) != 1 else documents[0])
    return documents


def refuse_deep(document: Any) -> None:
    """400 for a document nested too deeply to be stored: orjson, which serialises
    every JSON value we store, refuses more than 254 levels. Serialising it here is
    the cheapest exact test (C speed, well under a millisecond for a full batch)."""
    try:
        orjson.dumps(document)
    except TypeError:
        raise ApiError(400, "the JSON document is nested too deeply (at most 250 levels)") from None


def parse_document(body: bytes, content_type: str | None) -> dict[str, Any]:
    """One definition document, JSON or (with a YAML content type) YAML; 400 when it is
    neither, 422 when it is not one mapping."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media not in YAML_TYPES:
        document = _definitions_json(body)
    else:
        try:
            text = body.decode()
        except UnicodeDecodeError:
            raise ApiError(400, "the request body is not UTF-8 text") from None
        documents = _yaml_documents(text)
        if len(documents) != 1:
            raise invalid([{"loc": "", "msg": f"expected one document, found {len(documents)}"}])
        document = documents[0]
        refuse_deep(document)
    if not isinstance(document, dict):
        raise invalid([{"loc": "", "msg": "expected a mapping"}])
    refuse_nul(document)
    return document


def parse_documents(body: bytes, content_type: str | None) -> list[dict[str, Any]]:
    """Definition documents: YAML (several separated by `---`) with a YAML content type,
    else JSON (one object, or a list of them); 400 when unreadable, 422 when one is not
    a mapping."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media in YAML_TYPES:
        try:
            text = body.decode()
        except UnicodeDecodeError:
            raise ApiError(400, "the request body is not UTF-8 text") from None
        documents = _yaml_documents(text)
        refuse_deep(documents)
    else:
        parsed = _definitions_json(body)
        documents = parsed if isinstance(parsed, list) else [parsed]
    wrong = [
        {"loc": f"[{n}]", "msg": "expected a mapping"}
        for n, doc in enumerate(documents)
        if not isinstance(doc, dict)
    ]
    if wrong:
        raise invalid(wrong)
    if not documents:
        raise ApiError(400, "no documents in the request body")
    refuse_nul(documents)
    return documents


def nul_paths(value: Any, loc: str = "", found: list[str] | None = None) -> list[str]:
    """The paths of the strings (values or keys) in `value` that hold a NUL character."""
    found = [] if found is None else found
    if isinstance(value, str):
        if "\x00" in value:
            found.append(loc)
    elif isinstance(value, dict):
        for key, item in value.items():
            path = f"{loc}.{key}" if loc else str(key)
            if isinstance(key, str) and "\x00" in key:
                found.append(path)
            nul_paths(item, path, found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            nul_paths(item, f"{loc}[{index}]", found)
    return found


def refuse_nul(value: Any, prefix: str = "") -> None:
    paths = nul_paths(value, prefix)
    if paths:
        raise invalid([{"loc": p, "msg": "text may not contain a NUL character"} for p in paths])
