"""The registries of tag names and field keys behind Bento's `fetch/tags` and
`fetch/fields`: each name gets an id and a creation time the first time it is seen.

Registering is an insert that ignores names already there, so concurrent writers
never conflict and a name keeps its first id; it returns the names it inserted, so
that of concurrent requests for one new name exactly one learns it created it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from sluice.store import visitor_search
from sluice.store.schema import custom_fields, tags, visitors

MAX_NAME = 200


def field_name(key: str) -> str:
    """The display name Bento derives from a field key: `thisIsAKey`, `this_is_a_key`,
    `this-is-a-key` and `this is a key` all read `This Is A Key`."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", key)
    words = re.split(r"[\s_\-]+", spaced)
    return " ".join(w[:1].upper() + w[1:] for w in words if w)[:MAX_NAME] or key[:MAX_NAME]


def _insert(conn: Connection, table: sa.Table):
    dialect = sqlite if conn.dialect.name == "sqlite" else postgresql
    return dialect.insert(table)


def register_tags(conn: Connection, names: Iterable[str], now: datetime) -> set[str]:
    """Register the tag names not registered yet; returns those it registered."""
    wanted = sorted({n for n in names if n and len(n) <= MAX_NAME})
    if not wanted:
        return set()
    inserted = conn.execute(
        _insert(conn, tags).on_conflict_do_nothing(index_elements=["name"]).returning(tags.c.name),
        [{"name": name, "created_at": now} for name in wanted],
    )
    return set(inserted.scalars())


def register_fields(conn: Connection, keys: Iterable[str], now: datetime) -> set[str]:
    """Register the field keys not registered yet; returns those it registered."""
    wanted = sorted({k for k in keys if k and len(k) <= MAX_NAME})
    if not wanted:
        return set()
    inserted = conn.execute(
        _insert(conn, custom_fields)
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(custom_fields.c.key),
        [{"key": key, "name": field_name(key), "created_at": now} for key in wanted],
    )
    return set(inserted.scalars())


def list_tags(conn: Connection, names: Iterable[str] | None = None) -> list[Any]:
    query = sa.select(tags).order_by(tags.c.id)
    if names is not None:
        query = query.where(tags.c.name.in_(list(names)))
    return conn.execute(query).all()


def delete_tag(conn: Connection, tag_id: int, name: str) -> int | None:
    """Delete the tag `tag_id` (which must be named `name`) from the registry and from
    every visitor that has it, in one statement each; the number of visitors it was
    taken from, or None when no tag has that id and name."""
    found = conn.execute(
        tags.delete().where(tags.c.id == tag_id, tags.c.name == name).returning(tags.c.id)
    ).first()
    if found is None:
        return None
    if conn.dialect.name == "postgresql":
        kept = visitors.c.tags.op("-")(sa.cast(name, sa.Text))  # jsonb minus a string
    else:
        each = sa.func.json_each(visitors.c.tags).table_valued("value")
        kept = (
            sa.select(sa.func.coalesce(sa.func.json_group_array(each.c.value), "[]"))
            .select_from(each)
            .where(each.c.value != name)
            .scalar_subquery()
        )
    having = visitor_search.matching(conn, visitor_search.VisitorQuery(tag=name))
    changed = conn.execute(visitors.update().where(*having).values(tags=kept))
    return changed.rowcount


def list_fields(conn: Connection, keys: Iterable[str] | None = None) -> list[Any]:
    query = sa.select(custom_fields).order_by(custom_fields.c.id)
    if keys is not None:
        query = query.where(custom_fields.c.key.in_(list(keys)))
    return conn.execute(query).all()


def register_from_events(conn: Connection, incoming: Iterable[Any], now: datetime) -> None:
    """Register the tags of `$tag` events and the keys of the fields events set."""
    tag_names, keys = set(), set()
    for event in incoming:
        if event.type == "$tag" and isinstance(tag := event.details.get("tag"), str):
            tag_names.add(tag)
        if event.fields:
            keys.update(event.fields)
    register_tags(conn, tag_names, now)
    register_fields(conn, keys, now)
