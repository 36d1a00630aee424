"""Visitors: found or created by email, changed in batches, exported and erased."""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from sluice.addresses import email_key, stored_email
from sluice.definitions.model import same_json
from sluice.engine.context import visitor_view
from sluice.engine.triggers import DataChange
from sluice.engine.work import VisitorChange
from sluice.store.schema import visitors


@dataclass(kw_only=True)
class WorkingVisitor:
    """A visitor row being changed inside a transaction; `dirty` once it needs writing."""

    id: int
    uuid: str
    email: str
    fields: dict[str, Any]
    tags: list[str]
    unsubscribed_at: datetime | None
    created_at: datetime
    dirty: bool = field(default=False)
    new: bool = False
    """Created by this batch: segments that hold for a visitor with nothing yet decide
    them (store/upkeep.py)."""
    changes: list[DataChange] = field(default_factory=list)
    """What changed that a trigger can name (SPEC §7 Triggers), in order: tags added,
    fields set to another value or removed."""
    keep_views: bool = False
    """Whether each change keeps the visitor as it left them (`triggers.reads_changes`)."""
    segments: list[str] = field(default_factory=list)
    """The keys of the segments they are in, where a trigger's `if` reads them (as
    the batch found them: store/ingest.py)."""

    @classmethod
    def from_row(cls, row) -> WorkingVisitor:
        m = row._mapping
        return cls(
            id=m["id"],
            uuid=m["uuid"],
            email=m["email"],
            fields=dict(m["fields"]),
            tags=list(m["tags"]),
            unsubscribed_at=m["unsubscribed_at"],
            created_at=m["created_at"],
        )

    def view(self) -> dict[str, Any]:
        return visitor_view(
            email=self.email,
            uuid=self.uuid,
            fields=self.fields,
            tags=self.tags,
            subscribed=self.unsubscribed_at is None,
            created_at=self.created_at,
            segments=self.segments,
        )

    def add_tag(self, tag: str) -> None:
        if tag and tag not in self.tags:
            self.tags.append(tag)
            self.dirty = True
            self._changed("tag_added", tag)

    def remove_tag(self, tag: str) -> None:
        if tag in self.tags:
            self.tags.remove(tag)
            self.dirty = True

    def merge_fields(self, values: dict[str, Any]) -> None:
        """Set the fields; a value is another one as JSON compares them (1 to true is a
        change, 1 to 1.0 is not). Setting a field it lacks to null stores it, but for
        triggers nothing changed: it was null before as well."""
        for name, value in values.items():
            before = self.fields.get(name, _MISSING)
            if before is _MISSING or not same_json(before, value):
                self.fields[name] = value
                self.dirty = True
                before = None if before is _MISSING else before
                if not same_json(before, value):
                    self._changed("field_changed", name, before, value)

    def remove_field(self, name: str) -> None:
        if name in self.fields:
            before = self.fields.pop(name)
            self.dirty = True
            self._changed("field_changed", name, before, None)

    def _changed(self, kind: str, name: str, before: Any = None, after: Any = None) -> None:
        view = self.view() if self.keep_views else None
        self.changes.append(DataChange(kind, name, before, after, view))

    def set_subscribed(self, subscribed: bool, now: datetime) -> None:
        if subscribed and self.unsubscribed_at is not None:
            self.unsubscribed_at, self.dirty = None, True
        elif not subscribed and self.unsubscribed_at is None:
            self.unsubscribed_at, self.dirty = now, True

    def apply(self, change: VisitorChange, now: datetime) -> None:
        match change.op:
            case "tag_add":
                self.add_tag(change.name)
            case "tag_remove":
                self.remove_tag(change.name)
            case "field_set":
                self.merge_fields({change.name: change.value})
            case "field_remove":
                self.remove_field(change.name)
            case "subscribe" | "unsubscribe":
                self.set_subscribed(change.op == "subscribe", now)


_MISSING = object()


def _insert(conn: Connection):
    dialect = sqlite if conn.dialect.name == "sqlite" else postgresql
    return dialect.insert(visitors)


def upsert(conn: Connection, emails: Iterable[str], now: datetime) -> dict[str, WorkingVisitor]:
    """The visitors with these addresses, created where new; keyed by `email_key`.

    Rows are locked (PostgreSQL) so that concurrent writers change them one at a time."""
    wanted: dict[str, str] = {}
    for email in emails:
        wanted.setdefault(email_key(email), stored_email(email))
    if not wanted:
        return {}
    found = _load(conn, visitors.c.email_key.in_(list(wanted)))
    missing = [key for key in wanted if key not in found]
    if missing:
        rows = [_new_row(wanted[key], key, now) for key in missing]
        conn.execute(_insert(conn).on_conflict_do_nothing(index_elements=["email_key"]), rows)
        created = _load(conn, visitors.c.email_key.in_(missing))
        for visitor in created.values():
            visitor.new = True
        found.update(created)
    return found


def create(conn: Connection, email: str, now: datetime) -> bool:
    """Create the visitor unless one has this address; True when this call created it.

    The insert itself decides, so of concurrent calls for one new address exactly one
    answers True (a look-up first would let several see it missing)."""
    inserted = conn.execute(
        _insert(conn).on_conflict_do_nothing(index_elements=["email_key"]).returning(visitors.c.id),
        _new_row(stored_email(email), email_key(email), now),
    )
    return inserted.first() is not None


def _new_row(email: str, key: str, now: datetime) -> dict[str, Any]:
    return {
        "uuid": str(uuidlib.uuid4()),
        "email": email,
        "email_key": key,
        "fields": {},
        "tags": [],
        "created_at": now,
        "updated_at": now,
    }


def load_by_ids(
    conn: Connection, ids: Iterable[int], *, lock: bool = True
) -> dict[int, WorkingVisitor]:
    rows = _load(conn, visitors.c.id.in_(list(set(ids))), lock=lock)
    return {v.id: v for v in rows.values()}


_LOADED = (
    visitors.c.id,
    visitors.c.uuid,
    visitors.c.email,
    visitors.c.email_key,
    visitors.c.fields,
    visitors.c.tags,
    visitors.c.unsubscribed_at,
    visitors.c.created_at,
)


def _load(conn: Connection, condition, *, lock: bool = True) -> dict[str, WorkingVisitor]:
    query = sa.select(*_LOADED).where(condition).order_by(visitors.c.id)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    # Tuples, not `row._mapping`: this runs for every visitor of every batch of events.
    return {
        key: WorkingVisitor(
            id=id_,
            uuid=uuid,
            email=email,
            fields=dict(fields),
            tags=list(tags),
            unsubscribed_at=unsubscribed_at,
            created_at=created_at,
        )
        for id_, uuid, email, key, fields, tags, unsubscribed_at, created_at in conn.execute(query)
    }


def write_back(conn: Connection, changed: Iterable[WorkingVisitor], now: datetime) -> None:
    rows = [
        {
            "b_id": v.id,
            "fields": v.fields,
            "tags": v.tags,
            "unsubscribed_at": v.unsubscribed_at,
            "updated_at": now,
        }
        for v in changed
        if v.dirty
    ]
    if rows:
        conn.execute(
            visitors.update()
            .where(visitors.c.id == sa.bindparam("b_id"))
            .values(
                fields=sa.bindparam("fields"),
                tags=sa.bindparam("tags"),
                unsubscribed_at=sa.bindparam("unsubscribed_at"),
                updated_at=sa.bindparam("updated_at"),
            ),
            rows,
        )


def counts(conn: Connection) -> dict[str, int]:
    """`{user_count, subscriber_count, unsubscriber_count}` of every visitor."""
    unsubscribed = sa.func.count(visitors.c.unsubscribed_at)  # counts the non-null ones
    total, out = conn.execute(sa.select(sa.func.count(), unsubscribed).select_from(visitors)).one()
    return {"user_count": total, "subscriber_count": total - out, "unsubscriber_count": out}


def find(conn: Connection, email: str):
    return conn.execute(sa.select(visitors).where(visitors.c.email_key == email_key(email))).first()
