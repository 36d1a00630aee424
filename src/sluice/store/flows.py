"""Flows and email templates: versions, on/off, the audit log, and the catalog of
validated versions (of flows, templates and segments) the engine runs."""

from __future__ import annotations

import difflib
import threading
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sluice.definitions.model import FlowDefinition, TemplateDefinition, iter_steps
from sluice.definitions.parse import validate_flow, validate_template
from sluice.definitions.segments import SegmentDefinition, validate_segment
from sluice.definitions.source import dump
from sluice.engine.work import FlowVersion
from sluice.records import UNFINISHED, FlowStatus, SessionStatus
from sluice.store import deliveries as delivery_store
from sluice.store.notify import TIMELINE_CHANNEL, WORK_CHANNEL, notify
from sluice.store.schema import (
    deliveries,
    flow_changes,
    flow_versions,
    flows,
    segment_versions,
    segments,
    sessions,
    template_versions,
    templates,
    timeline,
)


@dataclass(frozen=True, kw_only=True)
class FlowRow:
    key: str
    name: str
    status: FlowStatus
    version: int
    off_since: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row) -> FlowRow:
        m = row._mapping
        return cls(
            key=m["key"],
            name=m["name"],
            status=FlowStatus(m["status"]),
            version=m["version"],
            off_since=m["off_since"],
            created_at=m["created_at"],
            updated_at=m["updated_at"],
        )


class UnknownFlow(LookupError):
    """No flow has that key."""


MAX_VERSION = 2**31 - 1
"""The largest version number (a 32-bit integer column in both databases): a number
beyond it is refused where it is given (422), never looked up."""


class UnknownVersion(LookupError):
    """The flow has no version of that number."""


class VersionConflict(Exception):
    """A save made to one version of a flow, when another version is current: someone
    saved in between (`If-Match`, RFC 9110 §13.1.1). `current` is 0 for a flow that
    does not exist."""

    def __init__(self, key: str, based_on: int, current: int):
        now = f"is at version {current}" if current else "does not exist"
        super().__init__(
            f"the flow '{key}' {now}; this change was made to version {based_on}"
            if based_on
            else f"the flow '{key}' exists (version {current}); this change was made as a new flow"
        )
        self.key, self.based_on, self.current = key, based_on, current


def check_version(conn: Connection, key: str, based_on: int) -> None:
    """Raise VersionConflict unless the flow's current version is `based_on` (0: the
    flow must not exist yet). Holds the flow's save lock until the transaction ends,
    so that no save comes between this check and the caller's."""
    lock_key(conn, "flow", key)
    current = conn.execute(sa.select(flows.c.version).where(flows.c.key == key)).scalar() or 0
    if current != based_on:
        raise VersionConflict(key, based_on, current)


def diff(old: str | None, new: str) -> str:
    """A unified diff of two versions' texts (comments included: SPEC §7)."""
    before = old.splitlines(keepends=True) if old else []
    return "".join(difflib.unified_diff(before, new.splitlines(keepends=True)))


def list_flows(conn: Connection) -> list[FlowRow]:
    rows = conn.execute(sa.select(flows).order_by(flows.c.key))
    return [FlowRow.from_row(r) for r in rows]


def get_flow(conn: Connection, key: str) -> FlowRow:
    row = conn.execute(sa.select(flows).where(flows.c.key == key)).first()
    if row is None:
        raise UnknownFlow(f"unknown flow '{key}'")
    return FlowRow.from_row(row)


def stored_definition(conn: Connection, key: str, version: int) -> dict:
    return conn.execute(
        sa.select(flow_versions.c.definition).where(
            flow_versions.c.flow_key == key, flow_versions.c.version == version
        )
    ).scalar_one()


def stored_source(conn: Connection, key: str, version: int) -> str:
    """The text of a version: as its author wrote it (or a dump, see `save_flow`)."""
    return conn.execute(
        sa.select(flow_versions.c.source).where(
            flow_versions.c.flow_key == key, flow_versions.c.version == version
        )
    ).scalar_one()


def _versions_query(key: str) -> sa.Select:
    """Versions of a flow with the note written when each was saved (its audit row)."""
    saved = sa.and_(
        flow_changes.c.flow_key == flow_versions.c.flow_key,
        flow_changes.c.version == flow_versions.c.version,
        flow_changes.c.action == "version",
    )
    return (
        sa.select(flow_versions, flow_changes.c.note)
        .select_from(flow_versions.outerjoin(flow_changes, saved))
        .where(flow_versions.c.flow_key == key)
        .order_by(flow_versions.c.version)
    )


def list_versions(conn: Connection, key: str) -> list[dict]:
    """Every version: `{version, created_at, note}` (note None when none was written)."""
    rows = conn.execute(_versions_query(key))
    return [
        {"version": r.version, "created_at": r.created_at.isoformat(), "note": r.note} for r in rows
    ]


def get_version(conn: Connection, key: str, version: int) -> dict:
    """One version: `{version, source, definition, created_at, note}`; UnknownFlow or
    UnknownVersion when there is none."""
    get_flow(conn, key)
    row = conn.execute(_versions_query(key).where(flow_versions.c.version == version)).first()
    if row is None:
        raise UnknownVersion(f"flow '{key}' has no version {version}")
    return {
        "version": row.version,
        "source": row.source,
        "definition": row.definition,
        "created_at": row.created_at.isoformat(),
        "note": row.note,
    }


def save_flow(
    conn: Connection,
    flow: FlowDefinition,
    *,
    text: str | None,
    note: str | None = None,
    now: datetime,
    actor: str,
) -> int | None:
    """Store a new version if the definition or its text changed; returns it, or None
    if unchanged.

    `text` is the author's text of the definition (SPEC §7), None when it came without
    one (JSON): then a changed definition is stored with a YAML dump as its text, and
    an unchanged one is no change (the current text, comments and all, stays). A text
    that differs only in comments or layout makes a new version: the text is the
    source of truth, and the audit log shows its diff.

    Sessions of a flow that is on become due so that workers move them to the new
    version promptly (a session waiting two days must not keep a changed wait until
    then); those of a flow that is off move when it is turned on."""
    lock_key(conn, "flow", flow.key)
    current = conn.execute(sa.select(flows).where(flows.c.key == flow.key)).first()
    old = old_text = None
    if current:
        old = stored_definition(conn, flow.key, current.version)
        old_text = stored_source(conn, flow.key, current.version)
    if old == flow.source and (text is None or text == old_text):
        return None
    text = dump(flow.source) if text is None else text
    version = current.version + 1 if current else 1
    conn.execute(
        flow_versions.insert().values(
            flow_key=flow.key,
            version=version,
            definition=flow.source,
            source=text,
            created_at=now,
        )
    )
    if current is None:
        conn.execute(
            flows.insert().values(
                key=flow.key,
                name=flow.name,
                status=FlowStatus.OFF,
                version=version,
                off_since=now,
                created_at=now,
                updated_at=now,
            )
        )
    else:
        conn.execute(
            flows.update()
            .where(flows.c.key == flow.key)
            .values(name=flow.name, version=version, updated_at=now)
        )
    if current is not None and current.status == FlowStatus.ON:
        conn.execute(
            sessions.update()
            .where(sessions.c.flow_key == flow.key, sessions.c.status.in_(_RUNNABLE))
            .values(due_at=now, revision=sessions.c.revision + 1)
        )
    _audit(conn, flow.key, now, actor, "version", version, diff(old_text, text), note)
    return version


def lock_key(conn: Connection, kind: str, key: str) -> None:
    """Serialise saves of one flow, template or segment until this transaction ends.

    Two saves read the current version, then insert the next: without a lock, two
    concurrent ones on PostgreSQL pick the same number and one fails on the primary
    key. A row lock cannot cover a key not stored yet, so the lock is a
    transaction-scoped advisory lock on a hash of the key (a hash collision only makes
    two keys wait for each other). SQLite needs none: its writers take turns."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            sa.text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": f"{kind}:{key}"}
        )


_RUNNABLE = [SessionStatus.ACTIVE, SessionStatus.WAITING]
_UNFINISHED = [s.value for s in UNFINISHED]


def set_status(conn: Connection, key: str, status: FlowStatus, *, now: datetime, actor: str):
    """Turn a flow on or off. Returns False when it already was.

    Off: every unfinished session is marked paused (`paused` in its timeline) and its
    pending deliveries are held. On: every unfinished session resumes where it is,
    stopped ones too (SPEC §1), and its held deliveries are due now; a worker then
    catches up on passed waits, awaited events and goals."""
    flow = get_flow(conn, key)
    if flow.status == status:
        return False
    unfinished = sessions.c.flow_key == key, sessions.c.status.in_(_UNFINISHED)
    # Their pending deliveries, held while the flow is off (store/deliveries.py).
    of_sessions = deliveries.c.session_id.in_(sa.select(sessions.c.id).where(*unfinished))
    if status == FlowStatus.OFF:
        _log_all(conn, key, now, "paused", _UNFINISHED)
        conn.execute(
            sessions.update()
            .where(*unfinished)
            .values(
                paused_since=sa.func.coalesce(sessions.c.paused_since, now),
                due_at=None,  # turning on makes them all due again
                revision=sessions.c.revision + 1,
            )
        )
        delivery_store.hold(conn, of_sessions, now=now)
    else:
        _log_all(conn, key, now, "resumed", _UNFINISHED)
        conn.execute(
            sessions.update()
            .where(*unfinished)
            .values(
                status=sa.case(
                    (sessions.c.status == SessionStatus.STOPPED, sessions.c.resume_status),
                    else_=sessions.c.status,
                ),
                resume_status=None,
                due_at=now,
                revision=sessions.c.revision + 1,
            )
        )
        delivery_store.release(conn, of_sessions, now=now)
    conn.execute(
        flows.update()
        .where(flows.c.key == key)
        .values(status=status, off_since=now if status == FlowStatus.OFF else None)
    )
    _audit(conn, key, now, actor, status.value, flow.version, None)
    notify(conn, WORK_CHANNEL, TIMELINE_CHANNEL)
    return True


def _log_all(conn: Connection, key: str, now: datetime, kind: str, statuses) -> None:
    """One timeline entry for every unfinished session of the flow, in one statement."""
    conn.execute(
        timeline.insert().from_select(
            ["session_id", "visitor_id", "at", "step", "kind", "data"],
            sa.select(
                sessions.c.id,
                sessions.c.visitor_id,
                sa.literal(now, type_=timeline.c.at.type),
                sessions.c.step,
                sa.literal(kind),
                sa.literal({"by": "flow"}, type_=timeline.c.data.type),
            ).where(sessions.c.flow_key == key, sessions.c.status.in_(statuses)),
        )
    )


def _audit(conn, key, now, actor, action, version, text, note=None) -> None:
    conn.execute(
        flow_changes.insert().values(
            flow_key=key,
            at=now,
            actor=actor,
            action=action,
            version=version,
            diff=text,
            note=note,
        )
    )


def list_changes(conn: Connection, key: str) -> list[dict]:
    get_flow(conn, key)
    rows = conn.execute(
        sa.select(flow_changes).where(flow_changes.c.flow_key == key).order_by(flow_changes.c.id)
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


def save_template(
    conn: Connection, template: TemplateDefinition, *, text: str | None, now: datetime
) -> int | None:
    """Store a new version if the template or its text changed (as `save_flow`);
    returns it, or None if unchanged."""
    lock_key(conn, "template", template.key)
    current = conn.execute(sa.select(templates).where(templates.c.key == template.key)).first()
    if current and current.deleted_at is None:
        old = conn.execute(
            sa.select(template_versions.c.definition, template_versions.c.source).where(
                template_versions.c.template_key == template.key,
                template_versions.c.version == current.version,
            )
        ).one()
        if old.definition == template.source and (text is None or text == old.source):
            return None
    version = current.version + 1 if current else 1
    conn.execute(
        template_versions.insert().values(
            template_key=template.key,
            version=version,
            definition=template.source,
            source=dump(template.source) if text is None else text,
            created_at=now,
        )
    )
    if current:
        conn.execute(
            templates.update()
            .where(templates.c.key == template.key)
            .values(version=version, updated_at=now, deleted_at=None)
        )
    else:
        conn.execute(
            templates.insert().values(
                key=template.key, version=version, created_at=now, updated_at=now
            )
        )
    return version


def current_templates(conn: Connection) -> dict[str, dict]:
    """Key → current definition of every template not deleted."""
    rows = conn.execute(
        sa.select(templates.c.key, template_versions.c.definition)
        .join(
            template_versions,
            sa.and_(
                template_versions.c.template_key == templates.c.key,
                template_versions.c.version == templates.c.version,
            ),
        )
        .where(templates.c.deleted_at.is_(None))
    )
    return {r.key: r.definition for r in rows}


def template_source(conn: Connection, key: str, version: int) -> str | None:
    """The text of one stored version of a template (deleted or not), or None."""
    return conn.execute(
        sa.select(template_versions.c.source).where(
            template_versions.c.template_key == key, template_versions.c.version == version
        )
    ).scalar()


def template_uses(conn: Connection, catalog: Catalog) -> dict[str, list[dict[str, str]]]:
    """Template key → the email steps that name it in the current version of each
    flow, `[{"flow", "step"}]` in flow and step order. Older versions do not count:
    their sessions move to the current version when they next advance (SPEC §2.7)."""
    uses: dict[str, list[dict[str, str]]] = {}
    for flow in list_flows(conn):
        definition = catalog.flow(conn, flow.key, flow.version).definition
        for step in iter_steps(definition.steps):
            if step.kind == "email" and step.action.template:
                uses.setdefault(step.action.template, []).append(
                    {"flow": flow.key, "step": step.id}
                )
    return uses


class TemplateInUse(Exception):
    """A template that a flow uses cannot be deleted."""

    def __init__(self, key: str, uses: list[dict[str, str]]):
        where = ", ".join(f"{u['flow']}/{u['step']}" for u in uses)
        super().__init__(f"template '{key}' is used by {where}; change those steps first")
        self.uses = uses


def delete_template(conn: Connection, catalog: Catalog, key: str, *, now: datetime) -> bool:
    """Delete a template no flow uses; False when there is none (or it is deleted).

    The template is marked deleted, not removed: it is no longer listed nor usable by
    a flow, but its versions are kept, so stored flow versions that named it still
    load for the sessions on them, and saving the key again continues its numbering.
    Raises TemplateInUse with the steps that use it."""
    lock_key(conn, "template", key)
    row = conn.execute(
        sa.select(templates.c.key).where(templates.c.key == key, templates.c.deleted_at.is_(None))
    ).first()
    if row is None:
        return False
    uses = template_uses(conn, catalog).get(key)
    if uses:
        raise TemplateInUse(key, uses)
    conn.execute(templates.update().where(templates.c.key == key).values(deleted_at=now))
    return True


class Catalog:
    """Validated flow versions and templates, parsed once per process.

    Versions never change once stored, so a parsed version can be cached for good;
    templates are looked up by their current version on each load. `default_timezone`
    is the server's zone, which visitors' times fall back to (SPEC §2.6) where the
    store computes one (date triggers' schedules, store/dates.py)."""

    def __init__(self, default_timezone: str = "UTC"):
        self.default_timezone = default_timezone
        self._flows: dict[tuple[str, int], FlowVersion] = {}
        self._templates: dict[tuple[str, str], TemplateDefinition] = {}
        self._segments: dict[tuple[str, int], SegmentDefinition] = {}
        self._lock = threading.Lock()

    def flow(self, conn: Connection, key: str, version: int) -> FlowVersion:
        cached = self._flows.get((key, version))
        if cached is not None:
            return cached
        document = stored_definition(conn, key, version)
        known_flows = set(conn.execute(sa.select(flows.c.key)).scalars())
        known_templates = set(conn.execute(sa.select(templates.c.key)).scalars())
        definition = validate_flow(
            document, known_flows=known_flows, known_templates=known_templates
        )
        loaded = FlowVersion(definition, version)
        with self._lock:
            self._flows[(key, version)] = loaded
        return loaded

    def segments(self, conn: Connection) -> dict[str, SegmentDefinition]:
        """Every segment's current definition by key (one query; each version is
        validated once per process)."""
        found = {}
        for key, version in conn.execute(sa.select(segments.c.key, segments.c.version)):
            cached = self._segments.get((key, version))
            if cached is None:
                document = conn.execute(
                    sa.select(segment_versions.c.definition).where(
                        segment_versions.c.segment_key == key,
                        segment_versions.c.version == version,
                    )
                ).scalar_one()
                cached = validate_segment(document)
                with self._lock:
                    self._segments[(key, version)] = cached
            found[key] = cached
        return found

    def templates(self, conn: Connection, keys: set[str]) -> dict[str, TemplateDefinition]:
        if not keys:
            return {}
        return self.templates_of(current_templates(conn), keys)

    def templates_of(
        self, documents: dict[str, dict], keys: set[str]
    ) -> dict[str, TemplateDefinition]:
        """Those of `keys` among `documents` (`current_templates`), validated."""
        found = {}
        for key in keys & documents.keys():
            cache_key = (key, repr(documents[key]))
            if cache_key not in self._templates:
                self._templates[cache_key] = validate_template(documents[key])
            found[key] = self._templates[cache_key]
        return found
