"""The limits on definitions (docs/definitions.md, "Limits"), and the cheap checks that
enforce them before the work they protect.

Each check runs before anything whose cost or recursion grows with the input: the size
of a text before it is parsed, its nesting while YAML is parsed (see `parse._Loader`),
a parsed document's size and depth before it is read (documents that come already
parsed, such as JSON request bodies), steps as they are read, and an expression's
nesting before it is compiled. A check says what is wrong and where; it never raises.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from sluice.definitions.values import item_loc, key_loc

MAX_TEXT_BYTES = 1024 * 1024
"""The text of one definition file, editor buffer or YAML request body (UTF-8)."""
MAX_YAML_NODES = 100_000
"""Values in one YAML text (scalars, keys included, lists and mappings): building each
costs Python work, so this bounds the time to read the largest text allowed."""
MAX_DOCUMENT_BYTES = 1024 * 1024
"""One definition, measured as compact JSON (the form a version is stored in)."""
MAX_DEPTH = 64
"""Levels of mappings and lists in a document; the top-level mapping is level 1."""
MAX_STEPS = 1000
"""Steps in a flow, those in branches included."""
MAX_EXPRESSION_DEPTH = 50
"""Nesting of a condition, or of the expression in a template tag: each open
parenthesis and each `and`, `or` and `not` counts one level (a chain of `and`/`or`
nests to the right, one level per operator)."""
MAX_DURATION = timedelta(days=3650)
"""Every duration in a definition (waits, timeouts, backoffs, cooldowns, offsets), and
the longest delay a webhook's retries reach: 10 years, far beyond any real flow and
far enough from the end of the calendar that every time computed from it is a date."""
LATEST_INSTANT = datetime(3000, 1, 1, tzinfo=UTC)
"""Absolute times (`wait: {until: …}`) must come before it, for the same reason."""


def size_text(size: int) -> str:
    """`512 KiB`, `1 MiB`, `1.3 MiB`: a byte count as people read it."""
    if size < 1024 * 1024:
        return f"{size / 1024:.0f} KiB" if size >= 1024 else f"{size} bytes"
    return f"{size / (1024 * 1024):.1f}".removesuffix(".0") + " MiB"


def text_problem(text: str) -> str | None:
    """Why `text` is too large to be read as definitions, or None."""
    # Each character is at least one byte: most texts need no encoding to pass.
    if len(text) <= MAX_TEXT_BYTES // 4:
        return None
    return text_size_problem(len(text.encode("utf-8", "surrogatepass")))


def text_size_problem(size: int) -> str | None:
    """Why a text of `size` bytes is too large to be read as definitions, or None (for
    a file, before reading it)."""
    if size <= MAX_TEXT_BYTES:
        return None
    shown, limit = sizes_text(size, MAX_TEXT_BYTES)
    return f"the text is {shown}; at most {limit} can be read at once"


def sizes_text(size: int, limit: int) -> tuple[str, str]:
    """`size` and `limit` as people read them, or as exact bytes when rounding would
    show them alike (`1,048,645 bytes`, `1,048,576`)."""
    shown, most = size_text(size), size_text(limit)
    if shown == most:
        return f"{size:,} bytes", f"{limit:,}"
    return shown, most


def document_problem(document: Any) -> tuple[str, str] | None:
    """`(loc, msg)` when a parsed document is too large, nested too deeply or holds an
    integer that cannot be stored, else None.

    The size comes first: orjson measures it at C speed, and refuses (TypeError) any
    document deeper than it can handle, long before Python's own recursion would fail.
    Only then is the document walked, without recursion, over at most
    `MAX_DOCUMENT_BYTES`."""
    try:
        size = len(orjson.dumps(document, default=str, option=orjson.OPT_NON_STR_KEYS))
    except TypeError:  # over 254 levels, or an integer beyond 64 bits: the walk says where
        size = 0
    if size > MAX_DOCUMENT_BYTES:
        shown, limit = sizes_text(size, MAX_DOCUMENT_BYTES)
        return "", f"the definition is {shown} as JSON; at most {limit}"
    return _walk(document)


_STORABLE_INTEGERS = (-(2**63), 2**64)
"""orjson writes integers from -2^63 up to (not including) 2^64."""


def _walk(document: Any) -> tuple[str, str] | None:
    """The first collection deeper than `MAX_DEPTH`, or integer or non-finite number
    (NaN, infinity: YAML `.nan`, `.inf`, `1e400`) that a stored version (JSON,
    serialised by orjson) cannot hold, as `(loc, msg)`; None when there is none."""
    pending = [(document, "", 1)]
    while pending:
        value, loc, depth = pending.pop()
        if isinstance(value, dict):
            children = [(v, key_loc(loc, k)) for k, v in value.items()]
        elif isinstance(value, list | tuple):
            children = [(v, item_loc(loc, i)) for i, v in enumerate(value)]
        else:
            if (
                isinstance(value, int)
                and not _STORABLE_INTEGERS[0] <= value < _STORABLE_INTEGERS[1]
            ):
                return loc, "integer out of range (at most 64 bits; write it as a string)"
            if isinstance(value, float) and not math.isfinite(value):
                # JSON has no such number: it would be stored as null
                return loc, f"not a finite number ({value}; write it as a string)"
            continue
        if depth > MAX_DEPTH:
            return loc, f"nested more than {MAX_DEPTH} levels deep (at most {MAX_DEPTH})"
        pending += [(child, child_loc, depth + 1) for child, child_loc in reversed(children)]
    return None


# Quoted strings are skipped whole: an `and` inside one is text, not an operator.
_OPENING = re.compile(r"\{[{%]")
_NESTING = re.compile(r"\"[^\"]*\"|'[^']*'|(\()|(\))|\b(?:and|or|not)\b")


def expression_problem(expression: str, offset: int = 0) -> tuple[int, str] | None:
    """`(index, msg)` when `expression` nests deeper than `MAX_EXPRESSION_DEPTH`; the
    index (plus `offset`) is where the limit is passed.

    The depth counted is a bound on the depth of the parsed expression: the
    parentheses open at a point plus every `and`, `or` and `not` before it (a chain
    of them nests one level per operator)."""
    operators = parentheses = 0
    for match in _NESTING.finditer(expression):
        opening, closing = match.group(1), match.group(2)
        if closing:
            parentheses = max(parentheses - 1, 0)
            continue
        if opening:
            parentheses += 1
        elif match.group(0)[0] not in "\"'":
            operators += 1
        else:
            continue
        if operators + parentheses > MAX_EXPRESSION_DEPTH:
            return offset + match.start(), (
                f"nested more than {MAX_EXPRESSION_DEPTH} levels deep (each open parenthesis "
                f"and each and, or, not counts one; at most {MAX_EXPRESSION_DEPTH})"
            )
    return None


def template_problem(source: str) -> tuple[int, str] | None:
    """`expression_problem` for the expression of each output and tag of a template."""
    for start, expression in _markup(source):
        found = expression_problem(expression, start)
        if found:
            return found
    return None


def _markup(source: str):
    """`(index, text)` of what stands between each `{{`/`{%` and its `}}`/`%}` (to the
    end when unclosed): one pass, never a backtracking search."""
    position = 0
    while opening := _OPENING.search(source, position):
        start = opening.end()
        end = source.find("}}" if opening.group() == "{{" else "%}", start)
        if end < 0:
            yield start, source[start:]
            return
        yield start, source[start:end]
        position = end + 2
