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
MAX_HTML_DEPTH = 500
"""Elements nested inside one another in an email's HTML, as written and as rendered.
CSS inlining (css_inline, in Rust) recurses once per level and crashes the process
at some thousands; real emails nest a few dozen."""


def size_text(size: int) -> str:
    """`512 KiB`, `1 MiB`, `1.3 MiB`: a byte count as people read it."""
    if size < 1024 * 1024:
        return f"{size / 1024:.0f} KiB" if size >= 1024 else f"{size} bytes"
    return f"{size / (1024 * 1024):.1f}".removesuffix(".0") + " MiB"


LONE_SURROGATE = "the text holds a lone surrogate (U+D800–U+DFFF), which is not a character"


def text_problem(text: str) -> str | None:
    """Why `text` cannot be read as definitions, or None: it is too large, or it holds
    a lone surrogate (a JSON string's `\\ud800` makes one), which the YAML reader
    cannot take."""
    try:
        size = len(text.encode("utf-8"))  # C speed: little beside the parse that follows
    except UnicodeEncodeError:
        return LONE_SURROGATE
    return text_size_problem(size)


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
    (NaN, infinity: YAML `.nan`, `.inf`, `1e400`) or string (a NUL, written `"\\0"` in
    YAML; a lone surrogate, `"\\ud800"` in JSON) that a stored version (JSON,
    serialised by orjson, in PostgreSQL or SQLite) cannot hold, as `(loc, msg)`; None
    when there is none."""
    pending = [(document, "", 1)]
    while pending:
        value, loc, depth = pending.pop()
        if isinstance(value, str):
            if found := _string_problem(value):
                return loc, found
            continue
        if isinstance(value, dict):
            for key in value:
                if isinstance(key, str) and (found := _string_problem(key)):
                    return key_loc(loc, key), f"the key {found.removeprefix('the text ')}"
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


def _string_problem(value: str) -> str | None:
    """Why a string cannot be stored, or None: PostgreSQL's text holds no NUL and
    UTF-8 no lone surrogate (both checked at C speed)."""
    if "\x00" in value:
        return "the text holds a NUL character (U+0000), which cannot be stored"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return LONE_SURROGATE
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


_TAG_START = re.compile(r"<(?:!--|(/?)([A-Za-z][^\s/<>]*))")
_VOID = frozenset(
    [
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "keygen",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
    ]
)
"""Elements that never hold others (HTML Standard §13.1.2): they open no level."""
_NOT_IN_THEMSELVES = frozenset(["p", "li", "dt", "dd", "tr", "td", "th", "option"])
"""Elements whose end tag may be left out: opening one right inside another of its
kind closes that one first (HTML Standard §13.1.2.4), as `<li>a<li>b` shows."""


def html_depth_problem(html: str) -> str | None:
    """Why `html` nests too deeply to be inlined and sent (`MAX_HTML_DEPTH`), or None.

    One pass over the tags, without parsing: elements open at a point (a start tag
    opens one; an end tag closes up to the last open element of its name, and is
    ignored when none is open), comments, void elements and `<x/>` aside. Where it
    differs from a browser's parse it counts more levels, never fewer, so what passes
    can be inlined."""
    open_tags: list[str] = []
    position = 0
    while tag := _TAG_START.search(html, position):
        if tag.group(2) is None:  # a comment
            end = html.find("-->", tag.end())
            if end < 0:
                return None
            position = end + 3
            continue
        end = html.find(">", tag.end())
        if end < 0:
            return None
        position = end + 1
        name = tag.group(2).lower()
        if tag.group(1):
            if name in open_tags:
                del open_tags[len(open_tags) - 1 - open_tags[::-1].index(name) :]
            continue
        if name in _VOID or html[end - 1] == "/":
            continue
        if name in _NOT_IN_THEMSELVES and open_tags and open_tags[-1] == name:
            continue
        open_tags.append(name)
        if len(open_tags) > MAX_HTML_DEPTH:
            return (
                f"the HTML nests elements more than {MAX_HTML_DEPTH} levels deep "
                f"(at most {MAX_HTML_DEPTH})"
            )
    return None
