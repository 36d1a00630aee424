"""Segments: their versions and audit log, and who is in each, kept as rows.

Membership changes in the transaction of the change that moves a visitor
(store/upkeep.py calls `refresh` with the visitors a batch changed and the events it
stored), and, for rules that time alone can flip (a window passing, a date coming),
when a due check falls due (store/due.py, kind `segment`). Each batch is a handful of
statements whatever its size: the visitors and their counted events are read in one
go, decided in memory (engine/segments.py), and the entries, exits and next checks
written in one go. Nothing reads every visitor except saving a segment's rules.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sluice.definitions.segments import SegmentDefinition
from sluice.definitions.source import dump
from sluice.engine.context import visitor_view
from sluice.engine.segments import CountedEvent, evaluate
from sluice.store import due as due_store
from sluice.store.bulk import insert_many
from sluice.store.flows import diff, lock_key
from sluice.store.schema import (
    events,
    segment_changes,
    segment_members,
    segment_versions,
    segments,
    visitors,
)

DUE_KIND = "segment"
REBUILD_CHUNK = 1_000
"""Visitors per statement set when a segment's rules change and all are looked at."""


class UnknownSegment(LookupError):
    def __init__(self, key: str):
        self.key = key
        super().__init__(f"no segment with key '{key}'")


@dataclass(frozen=True, slots=True)
class Move:
    """A visitor entering (`entered`) or leaving a segment."""

    segment: SegmentDefinition
    visitor_id: int
    email: str
    entered: bool


# -- documents -------------------------------------------------------------------------


def save_segment(
    conn: Connection,
    segment: SegmentDefinition,
    *,
    text: str | None,
    now: datetime,
    actor: str,
    note: str | None = None,
) -> int | None:
    """Store a new version if the definition or its text changed (as flows' `save_flow`);
    returns it, or None if unchanged. The caller rebuilds the membership (`rebuild`)."""
    lock_key(conn, "segment", segment.key)
    current = conn.execute(sa.select(segments).where(segments.c.key == segment.key)).first()
    old = old_text = None
    if current is not None:
        old, old_text = conn.execute(
            sa.select(segment_versions.c.definition, segment_versions.c.source).where(
                segment_versions.c.segment_key == segment.key,
                segment_versions.c.version == current.version,
            )
        ).one()
    if old == segment.source and (text is None or text == old_text):
        return None
    text = dump(segment.source) if text is None else text
    version = current.version + 1 if current else 1
    conn.execute(
        segment_versions.insert().values(
            segment_key=segment.key,
            version=version,
            definition=segment.source,
            source=text,
            created_at=now,
        )
    )
    values = {"name": segment.name, "version": version, "updated_at": now}
    if current is None:
        conn.execute(segments.insert().values(key=segment.key, created_at=now, **values))
    else:
        conn.execute(segments.update().where(segments.c.key == segment.key).values(**values))
    conn.execute(
        segment_changes.insert().values(
            segment_key=segment.key,
            at=now,
            actor=actor,
            action="version",
            version=version,
            diff=diff(old_text, text),
            note=note,
        )
    )
    return version


def current_documents(conn: Connection) -> dict[str, tuple[int, dict]]:
    """Key → (version, definition) of every segment."""
    rows = conn.execute(
        sa.select(segments.c.key, segments.c.version, segment_versions.c.definition).join(
            segment_versions,
            sa.and_(
                segment_versions.c.segment_key == segments.c.key,
                segment_versions.c.version == segments.c.version,
            ),
        )
    )
    return {r.key: (r.version, r.definition) for r in rows}


def list_segments(conn: Connection) -> list[dict[str, Any]]:
    """`{key, name, version, members, updated_at}` of every segment, by name; one
    count per segment, each a range of `segment_members`' primary key."""
    counts = dict(
        conn.execute(
            sa.select(segment_members.c.segment_key, sa.func.count()).group_by(
                segment_members.c.segment_key
            )
        ).all()
    )
    rows = conn.execute(sa.select(segments).order_by(segments.c.name, segments.c.key))
    return [
        {
            "key": r.key,
            "name": r.name,
            "version": r.version,
            "members": counts.get(r.key, 0),
            "updated_at": r.updated_at.isoformat(),
        }
        for r in rows
    ]


def get_segment(conn: Connection, key: str) -> dict[str, Any]:
    """`{key, name, version, members, definition, source, created_at, updated_at}`;
    raises UnknownSegment."""
    row = conn.execute(sa.select(segments).where(segments.c.key == key)).first()
    if row is None:
        raise UnknownSegment(key)
    version = conn.execute(
        sa.select(segment_versions).where(
            segment_versions.c.segment_key == key, segment_versions.c.version == row.version
        )
    ).one()
    return {
        "key": key,
        "name": row.name,
        "version": row.version,
        "members": count_members(conn, key),
        "definition": version.definition,
        "source": version.source,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


def count_members(conn: Connection, key: str) -> int:
    return conn.execute(
        sa.select(sa.func.count()).where(segment_members.c.segment_key == key)
    ).scalar_one()


def member_counts(conn: Connection, key: str) -> dict[str, int]:
    """`{user_count, subscriber_count, unsubscriber_count}` of the segment's members."""
    unsubscribed = sa.func.count(visitors.c.unsubscribed_at)  # counts the non-null ones
    total, out = conn.execute(
        sa.select(sa.func.count(), unsubscribed)
        .select_from(segment_members.join(visitors, visitors.c.id == segment_members.c.visitor_id))
        .where(segment_members.c.segment_key == key)
    ).one()
    return {"user_count": total, "subscriber_count": total - out, "unsubscriber_count": out}


def list_changes(conn: Connection, key: str) -> list[dict[str, Any]]:
    """The audit log of a segment, oldest first."""
    rows = conn.execute(
        sa.select(segment_changes)
        .where(segment_changes.c.segment_key == key)
        .order_by(segment_changes.c.id)
    )
    return [
        {
            "at": r.at.isoformat(),
            "actor": r.actor,
            "action": r.action,
            "version": r.version,
            "diff": r.diff,
            "note": r.note,
        }
        for r in rows
    ]


def members(
    conn: Connection, key: str, *, limit: int, after_id: int | None = None
) -> list[dict[str, Any]]:
    """A page of the segment's members by visitor id: `{id, email, uuid, entered_at}`;
    the next page starts after the last one's `id`."""
    query = (
        sa.select(visitors.c.id, visitors.c.email, visitors.c.uuid, segment_members.c.entered_at)
        .join(visitors, visitors.c.id == segment_members.c.visitor_id)
        .where(segment_members.c.segment_key == key)
        .order_by(segment_members.c.visitor_id)
        .limit(limit)
    )
    if after_id is not None:
        query = query.where(segment_members.c.visitor_id > after_id)
    return [
        {"id": r.id, "email": r.email, "uuid": r.uuid, "entered_at": r.entered_at.isoformat()}
        for r in conn.execute(query)
    ]


def memberships(conn: Connection, visitor_ids: Iterable[int]) -> dict[int, list[str]]:
    """The keys of the segments each visitor is in (`visitor.segments`), sorted."""
    ids = list(set(visitor_ids))
    found: dict[int, list[str]] = defaultdict(list)
    if not ids:
        return found
    rows = conn.execute(
        sa.select(segment_members.c.visitor_id, segment_members.c.segment_key).where(
            segment_members.c.visitor_id.in_(ids)
        )
    )
    for visitor_id, key in rows:
        found[visitor_id].append(key)
    for keys in found.values():
        keys.sort()  # here, not in SQL: a sort there would read before returning
    return found


# -- membership ------------------------------------------------------------------------


def refresh(
    conn: Connection,
    wanted: dict[str, set[int]],
    definitions: dict[str, SegmentDefinition],
    now: datetime,
    views: dict[int, dict[str, Any]] | None = None,
) -> list[Move]:
    """Decide again, for each segment key in `wanted`, whether its visitors are in it;
    write the entries, exits and next checks; return the moves. `views`: visitors as
    `visitor_view` gives them, where the caller has them (the rest are read)."""
    wanted = {key: ids for key, ids in wanted.items() if ids and key in definitions}
    if not wanted:
        return []
    all_ids = set().union(*wanted.values())
    views = dict(views or {})
    # Those not given are locked (PostgreSQL), as the batches that change visitors lock
    # theirs: two transactions never decide one visitor's membership at once.
    views.update(_views(conn, all_ids - views.keys(), lock=True))
    counted = _counted_events(conn, [definitions[k] for k in wanted], all_ids, now)
    current = _current(conn, wanted)
    entered, left, checks, settled = [], [], [], []
    for key, ids in wanted.items():
        segment = definitions[key]
        for visitor_id in ids:
            view = views.get(visitor_id)
            if view is None:  # erased meanwhile
                continue
            verdict = evaluate(segment, view, counted.get(visitor_id, ()), now)
            was = (key, visitor_id) in current
            if verdict.member and not was:
                entered.append(Move(segment, visitor_id, view["email"], True))
            elif was and not verdict.member:
                left.append(Move(segment, visitor_id, view["email"], False))
            if verdict.recheck_at is not None:
                checks.append(due_store.DueCheck(DUE_KIND, key, visitor_id, verdict.recheck_at))
            else:
                settled.append((key, visitor_id))
    _write(conn, entered, left, now)
    due_store.settle(conn, DUE_KIND, checks, settled)
    return entered + left


def lock_visitors(conn: Connection, ids: list[int]) -> tuple[set[int], set[int]]:
    """Lock these visitors, in id order, skipping those another transaction holds
    (PostgreSQL): the ids locked, and those held elsewhere (none on SQLite, whose
    writers take turns). Erased ones are in neither."""
    if conn.dialect.name != "postgresql":
        return set(ids), set()
    wanted = visitors.c.id.in_(list(set(ids)))
    query = sa.select(visitors.c.id).where(wanted).order_by(visitors.c.id)
    locked = set(conn.execute(query.with_for_update(skip_locked=True)).scalars())
    return locked, set(conn.execute(query).scalars()) - locked


def _views(conn: Connection, ids: set[int], *, lock: bool = False) -> dict[int, dict[str, Any]]:
    if not ids:
        return {}
    query = (
        sa.select(
            visitors.c.id,
            visitors.c.email,
            visitors.c.uuid,
            visitors.c.fields,
            visitors.c.tags,
            visitors.c.unsubscribed_at,
            visitors.c.created_at,
        )
        .where(visitors.c.id.in_(list(ids)))
        .order_by(visitors.c.id)  # locked in id order, as everywhere
    )
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    rows = conn.execute(query)
    return {
        r.id: visitor_view(
            email=r.email,
            uuid=r.uuid,
            fields=r.fields,
            tags=r.tags,
            subscribed=r.unsubscribed_at is None,
            created_at=r.created_at,
        )
        for r in rows
    }


def _counted_events(
    conn: Connection, segments_: list[SegmentDefinition], ids: set[int], now: datetime
) -> dict[int, list[CountedEvent]]:
    """The visitors' events of the types these segments count, as far back as the
    longest window (or all, for a rule without one), by visitor."""
    rules = [r for s in segments_ for r in s.event_rules]
    if not rules:
        return {}
    # Details are read (and decoded) only where a rule's `where` looks at them.
    details = events.c.details if any(r.where for r in rules) else sa.null()
    query = sa.select(events.c.visitor_id, events.c.type, events.c.date, details).where(
        events.c.visitor_id.in_(list(ids)), events.c.type.in_({r.type for r in rules})
    )
    if all(r.within is not None for r in rules):
        query = query.where(events.c.date > now - max(r.within for r in rules))
    found: dict[int, list[CountedEvent]] = defaultdict(list)
    for visitor_id, event_type, date, detail in conn.execute(query):
        found[visitor_id].append(CountedEvent(event_type, date, detail or {}))
    return found


def _current(conn: Connection, wanted: dict[str, set[int]]) -> set[tuple[str, int]]:
    ids = set().union(*wanted.values())
    rows = conn.execute(
        sa.select(segment_members.c.segment_key, segment_members.c.visitor_id).where(
            segment_members.c.visitor_id.in_(list(ids)),
            segment_members.c.segment_key.in_(list(wanted)),
        )
    )
    return {(key, visitor_id) for key, visitor_id in rows}


def _write(conn: Connection, entered: list[Move], left: list[Move], now: datetime) -> None:
    insert_many(
        conn,
        segment_members,
        [
            {"segment_key": m.segment.key, "visitor_id": m.visitor_id, "entered_at": now}
            for m in entered
        ],
    )
    by_key: dict[str, list[int]] = defaultdict(list)
    for move in left:
        by_key[move.segment.key].append(move.visitor_id)
    for key, ids in by_key.items():
        conn.execute(
            segment_members.delete().where(
                segment_members.c.segment_key == key, segment_members.c.visitor_id.in_(ids)
            )
        )


def _every_visitor(conn: Connection) -> Iterator[set[int]]:
    """Every visitor's id, `REBUILD_CHUNK` at a time, by id."""
    after = 0
    while True:
        ids = list(
            conn.execute(
                sa.select(visitors.c.id)
                .where(visitors.c.id > after)
                .order_by(visitors.c.id)
                .limit(REBUILD_CHUNK)
            ).scalars()
        )
        if not ids:
            return
        yield set(ids)
        after = ids[-1]


def rebuild(conn: Connection, segment: SegmentDefinition, now: datetime) -> Iterable[list[Move]]:
    """Decide every visitor's membership anew (a segment's rules changed), a chunk of
    `REBUILD_CHUNK` visitors at a time; yields each chunk's moves."""
    for ids in _every_visitor(conn):
        yield refresh(conn, {segment.key: ids}, {segment.key: segment}, now)


def preview_count(conn: Connection, segment: SegmentDefinition, now: datetime) -> int:
    """How many visitors `segment` would hold now, writing nothing (the live count of
    the editor): every visitor is read, `REBUILD_CHUNK` at a time."""
    total = 0
    for ids in _every_visitor(conn):
        counted = _counted_events(conn, [segment], ids, now)
        total += sum(
            evaluate(segment, view, counted.get(visitor_id, ()), now).member
            for visitor_id, view in _views(conn, ids).items()
        )
    return total


def forget_visitors(conn: Connection, visitor_ids: Iterable[int]) -> None:
    """Drop these visitors from every segment (erased)."""
    ids = list(set(visitor_ids))
    if ids:
        conn.execute(segment_members.delete().where(segment_members.c.visitor_id.in_(ids)))
