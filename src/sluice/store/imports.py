"""Changing visitors without events: subscriber imports and Bento's plain commands.

Nothing here records an event, so nothing here starts or wakes a session (SPEC §3.3:
imports and plain commands never trigger flows). Each function works on a whole
batch with a constant number of statements: the visitors are found or created in
one go, changed in memory, and written back in one go.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sluice.addresses import stored_email
from sluice.store import registry
from sluice.store import visitors as visitor_store
from sluice.store.schema import visitors


@dataclass(frozen=True, kw_only=True)
class SubscriberImport:
    """One row of `batch/subscribers`: fields to merge, tags to add and remove."""

    email: str
    fields: dict[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    remove_tags: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Change:
    """One plain command: `add_tag`, `remove_tag`, `add_field`, `remove_field`,
    `subscribe` or `unsubscribe` (`name` is the tag or the field key)."""

    command: str
    email: str
    name: str | None = None
    value: Any = None


def import_subscribers(
    conn: Connection, rows: Sequence[SubscriberImport], now: datetime, *, keep_views: bool = False
) -> list[visitor_store.WorkingVisitor]:
    """Merge the rows into their visitors (created where new); returns those whose data
    changed or are new, with their `changes` (`keep_views`: WorkingVisitor.keep_views)."""
    people = visitor_store.upsert(conn, (r.email for r in rows), now)
    for visitor in people.values():
        visitor.keep_views = keep_views
    for row in rows:
        visitor = people[visitor_store.email_key(row.email)]
        visitor.merge_fields(row.fields)
        for tag in row.tags:
            visitor.add_tag(tag)
        for tag in row.remove_tags:
            visitor.remove_tag(tag)
    visitor_store.write_back(conn, people.values(), now)
    registry.register_tags(conn, (t for r in rows for t in r.tags), now)
    registry.register_fields(conn, (k for r in rows for k in r.fields), now)
    return [v for v in people.values() if v.dirty or v.new]


def apply_changes(
    conn: Connection, changes: Sequence[Change], now: datetime, *, keep_views: bool = False
) -> list[visitor_store.WorkingVisitor]:
    """Apply the changes in order; visitors that do not exist yet are created. Returns
    the visitors whose data changed (adding a tag they have changes none) or who are
    new, each with its `changes` that a trigger can name (`keep_views`:
    WorkingVisitor.keep_views)."""
    people = visitor_store.upsert(conn, (c.email for c in changes), now)
    for visitor in people.values():
        visitor.keep_views = keep_views
    for change in changes:
        visitor = people[visitor_store.email_key(change.email)]
        match change.command:
            case "add_tag":
                visitor.add_tag(change.name)
            case "remove_tag":
                visitor.remove_tag(change.name)
            case "add_field":
                visitor.merge_fields({change.name: change.value})
            case "remove_field":
                visitor.remove_field(change.name)
            case "subscribe" | "unsubscribe":
                visitor.set_subscribed(change.command == "subscribe", now)
            case other:
                raise ValueError(f"unknown change {other!r}")
    visitor_store.write_back(conn, people.values(), now)
    registry.register_tags(conn, (c.name for c in changes if c.command == "add_tag"), now)
    registry.register_fields(conn, (c.name for c in changes if c.command == "add_field"), now)
    return [v for v in people.values() if v.dirty or v.new]


def change_email(conn: Connection, old: str, new: str, now: datetime) -> str | None:
    """Give the visitor at `old` the address `new`. Returns why not, or None when done
    (also when `new` only differs from `old` in case)."""
    row = visitor_store.find(conn, old)
    if row is None:
        return f"no visitor with email '{old}'"
    new_key = visitor_store.email_key(new)
    taken = conn.execute(
        sa.select(visitors.c.id).where(visitors.c.email_key == new_key, visitors.c.id != row.id)
    ).first()
    if taken is not None:
        return f"'{new}' is already the email of another visitor"
    conn.execute(
        visitors.update()
        .where(visitors.c.id == row.id)
        .values(email=stored_email(new), email_key=new_key, updated_at=now)
    )
    return None


def create_visitor(conn: Connection, email: str, now: datetime) -> bool:
    """Create the visitor unless it exists; True when it was created now."""
    return visitor_store.create(conn, email, now)


def find_by_uuid(conn: Connection, uuid: str):
    return conn.execute(sa.select(visitors).where(visitors.c.uuid == uuid)).first()
