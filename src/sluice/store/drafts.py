"""Drafts of flows (SPEC §7): one author's text per flow, saved without making a
version. The flow's current version keeps running; publishing saves the draft as a
new version (`service.Sluice.publish_draft`) and deletes it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sluice.store.schema import flow_drafts, flows


class NoDraft(LookupError):
    """The flow has no draft."""


@dataclass(frozen=True, kw_only=True)
class Draft:
    flow_key: str
    source: str
    actor: str
    updated_at: datetime


def get_draft(conn: Connection, key: str) -> Draft:
    row = conn.execute(sa.select(flow_drafts).where(flow_drafts.c.flow_key == key)).first()
    if row is None:
        raise NoDraft(f"flow '{key}' has no draft")
    return Draft(**row._mapping)


def has_draft(conn: Connection, key: str) -> bool:
    found = sa.select(flow_drafts.c.flow_key).where(flow_drafts.c.flow_key == key)
    return conn.execute(found).first() is not None


def put_draft(conn: Connection, key: str, source: str, *, actor: str, now: datetime) -> None:
    """Store `source` as the draft of flow `key` (which exists), replacing the one
    there was. The flow's row is locked first: two first drafts saved at once would
    otherwise both insert (PostgreSQL; SQLite's writers take turns)."""
    conn.execute(sa.select(flows.c.key).where(flows.c.key == key).with_for_update())
    changed = conn.execute(
        flow_drafts.update()
        .where(flow_drafts.c.flow_key == key)
        .values(source=source, actor=actor, updated_at=now)
    )
    if changed.rowcount == 0:
        conn.execute(
            flow_drafts.insert().values(flow_key=key, source=source, actor=actor, updated_at=now)
        )


def delete_draft(conn: Connection, key: str, *, source: str | None = None) -> bool:
    """Delete the draft of flow `key` (only if its text is `source`, when given);
    False when there was none."""
    query = flow_drafts.delete().where(flow_drafts.c.flow_key == key)
    if source is not None:
        query = query.where(flow_drafts.c.source == source)
    return conn.execute(query).rowcount > 0
