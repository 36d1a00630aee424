"""Finding visitors: what the UI's visitor search and `GET /api/visitors?q=` look for.

A query is the words of a search box (docs/ui.md): `name:value` is a field (quote a
value with spaces: `city:"New York"`), anything else a part of the email address, and
optionally one tag; every condition must hold. Plain SQL on both databases, without an
index of its own: a part of an address is a `LIKE` over the unique index of
`email_key`s, a field or a tag a `LIKE` over the JSON text and then a JSON look-up in the
rows it leaves. On 100,000 visitors a page takes tens of milliseconds on SQLite
(docs/benchmarks.md).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sluice.addresses import email_key
from sluice.store.db import lower
from sluice.store.schema import visitors


@dataclass(frozen=True)
class VisitorQuery:
    """What the visitor search looks for: every condition must hold.

    `emails`: parts of the address, each matched anywhere in it, case-insensitively
    (a whole address also finds its visitor in either form of a Unicode domain);
    `fields`: `(name, value)` pairs, the field's value as text equal to `value`,
    case-insensitively; `tag`: a tag the visitor has, exactly."""

    emails: tuple[str, ...] = ()
    fields: tuple[tuple[str, str], ...] = ()
    tag: str = ""

    @classmethod
    def parse(cls, text: str, tag: str = "") -> VisitorQuery:
        """Words of the search box: `name:value` is a field (quote a value with spaces:
        `city:"New York"`), anything else a part of the email (an address has no `:`
        before its `@`)."""
        emails, fields = [], []
        for word in shlex.split(text) if _quotes_paired(text) else text.split():
            name, colon, value = word.partition(":")
            if colon and name and "@" not in name:
                fields.append((name, value))
            else:
                emails.append(word)
        return cls(tuple(emails), tuple(fields), tag.strip())

    @property
    def empty(self) -> bool:
        return not (self.emails or self.fields or self.tag)


def _quotes_paired(text: str) -> bool:
    try:
        shlex.split(text)
    except ValueError:
        return False
    return True


def matching(conn: Connection, query: VisitorQuery) -> list[Any]:
    """The SQL conditions a visitor `query` finds meets (none: every visitor)."""
    conditions = [_email_part(part) for part in query.emails]
    for name, value in query.fields:
        conditions.append(_json_text_has(conn, visitors.c.fields, value, value))
        conditions.append(lower(conn, visitors.c.fields[name].as_string()) == value.lower())
    if query.tag:
        quoted = orjson.dumps(query.tag).decode()
        conditions.append(_json_text_has(conn, visitors.c.tags, query.tag, quoted))
        conditions.append(_has_tag(conn, query.tag))
    return conditions


def newest_first(
    conn: Connection, query: VisitorQuery, *, limit: int, before_id: int | None = None
) -> list[dict[str, Any]]:
    """Up to `limit` visitors `query` finds, newest first, those with an id below
    `before_id` when given (the API's cursor): {id, email, uuid, fields, tags,
    unsubscribed_at, created_at} rows."""
    conditions = matching(conn, query)
    if before_id is not None:
        conditions.append(visitors.c.id < before_id)
    rows = conn.execute(
        sa.select(
            visitors.c.id,
            visitors.c.email,
            visitors.c.uuid,
            visitors.c.fields,
            visitors.c.tags,
            visitors.c.unsubscribed_at,
            visitors.c.created_at,
        )
        .where(*conditions)
        .order_by(visitors.c.id.desc())
        .limit(limit)
    )
    return [dict(r._mapping) for r in rows]


def _email_part(part: str):
    # The keys are lower case with the domain in IDNA form: a part is lowered, and a
    # whole address also compared by its key.
    return sa.or_(
        visitors.c.email_key.contains(part.lower(), autoescape=True),
        visitors.c.email_key == email_key(part),
    )


def _json_text_has(conn: Connection, column: sa.Column, value: str, needle: str):
    """A cheap condition that every visitor with `value` in `column` meets: the JSON
    text contains `needle` (case-insensitively). A `LIKE` over the stored text costs a
    fraction of reading the JSON, so the exact condition then reads few rows. No
    condition for a value the stored text escapes (a quote, a backslash, a control
    character)."""
    if any(c in value for c in '"\\') or any(ord(c) < 32 for c in value):
        return sa.true()
    text = sa.cast(column, sa.Text)
    if conn.dialect.name == "sqlite":  # SQLite's LIKE ignores the case of ASCII letters
        if not value.isascii():
            return sa.true()
        return text.contains(needle, autoescape=True)
    return text.icontains(needle, autoescape=True)


def _has_tag(conn: Connection, tag: str):
    if conn.dialect.name == "postgresql":
        return visitors.c.tags.op("@>")(sa.func.jsonb_build_array(tag))
    each = sa.func.json_each(visitors.c.tags).table_valued("value")
    return sa.exists(sa.select(1).select_from(each).where(each.c.value == tag))
