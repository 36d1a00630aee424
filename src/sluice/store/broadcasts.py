"""Broadcasts: one-off emails to a segment's members or to everyone subscribed
(docs/broadcasts.md).

A broadcast is accepted at once, whatever its audience: it is a row and a due check
(store/due.py, kind `broadcast`). When the check falls due the worker turns the next
`CHUNK` visitors of the audience into deliveries — rendered as a flow's email step
would be, in the same delivery path with retries and tracking — and makes the check
due again until every visitor was looked at (`cursor`, the last visitor id, is the
progress). The unsubscribed and erased are skipped and counted; a broadcast at a
local time gives each delivery its visitor's instant; `per_hour` spreads them over
hours. A crash loses nothing: a chunk's deliveries, counts and cursor are written in
the transaction that claimed the check.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sluice import links
from sluice.addresses import message_id_domain
from sluice.definitions.durations import parse_time_of_day
from sluice.definitions.liquid import TemplateError
from sluice.definitions.parse import validate_email
from sluice.definitions.problems import DefinitionError
from sluice.engine.context import template_context, visitor_view
from sluice.engine.messages import render_email
from sluice.engine.timing import visitor_zone
from sluice.engine.work import EngineConfig, StepFailed
from sluice.records import DeliveryState
from sluice.store import due as due_store
from sluice.store.bulk import insert_many
from sluice.store.flows import Catalog, current_templates
from sluice.store.schema import (
    broadcast_engagements,
    broadcasts,
    deliveries,
    segment_members,
    suppressions,
    visitors,
)

DUE_KIND = "broadcast"
CHUNK = 500
"""Visitors looked at per claim of a broadcast's due check."""
MAX_ATTEMPTS = 8
EARLIEST_OFFSET = timedelta(hours=14)
"""The zone furthest ahead of UTC (UTC+14): a broadcast at a local time starts being
queued this long before the time of day in UTC, so that the first zone's is ready."""


class BroadcastStatus(enum.StrEnum):
    """draft → scheduled → sending → sent (every email queued; some may wait for their
    hour or local time); cancelled from any but while emails wait to be sent."""

    DRAFT = "draft"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    SENT = "sent"
    CANCELLED = "cancelled"


class UnknownBroadcast(LookupError):
    def __init__(self, broadcast_id: int):
        super().__init__(f"no broadcast with id {broadcast_id}")


class BroadcastStateError(Exception):
    """An action a broadcast's status does not allow (sending a sent one)."""


@dataclass(frozen=True, kw_only=True)
class NewBroadcast:
    """A broadcast checked at the edge: `email` an email step's value, already valid."""

    name: str
    email: dict[str, Any]
    segment_key: str | None = None
    inclusive_tags: list[str] = field(default_factory=list)
    exclusive_tags: list[str] = field(default_factory=list)
    local_time: str | None = None
    per_hour: int | None = None


def create(conn: Connection, new: NewBroadcast, *, now: datetime, actor: str) -> int:
    """Store a draft; its id."""
    return conn.execute(
        broadcasts.insert()
        .values(
            name=new.name,
            email=new.email,
            segment_key=new.segment_key,
            inclusive_tags=new.inclusive_tags,
            exclusive_tags=new.exclusive_tags,
            status=BroadcastStatus.DRAFT,
            local_time=new.local_time,
            per_hour=new.per_hour,
            actor=actor,
            created_at=now,
            updated_at=now,
        )
        .returning(broadcasts.c.id)
    ).scalar_one()


def _row(conn: Connection, broadcast_id: int, *, lock: bool = False):
    query = sa.select(broadcasts).where(broadcasts.c.id == broadcast_id)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise UnknownBroadcast(broadcast_id)
    return row


def schedule(conn: Connection, broadcast_id: int, send_at: datetime, *, now: datetime) -> None:
    """Send a draft (or move a scheduled one) at `send_at` (now or later; with a local
    time, its date is the day). Raises BroadcastStateError past `scheduled`."""
    row = _row(conn, broadcast_id, lock=True)
    if row.status not in (BroadcastStatus.DRAFT, BroadcastStatus.SCHEDULED):
        raise BroadcastStateError(
            f"broadcast {broadcast_id} is {row.status}: it cannot be sent again"
        )
    send_at = max(send_at.astimezone(UTC), now)  # a local time's day is send_at's in UTC
    start = send_at
    if row.local_time is not None:
        day = datetime.combine(send_at.date(), parse_time_of_day(row.local_time), tzinfo=UTC)
        start = max(day - EARLIEST_OFFSET, now)
    conn.execute(
        broadcasts.update()
        .where(broadcasts.c.id == broadcast_id)
        .values(status=BroadcastStatus.SCHEDULED, send_at=send_at, updated_at=now)
    )
    due_store.schedule(conn, [due_store.DueCheck(DUE_KIND, str(broadcast_id), 0, start)])


def cancel(conn: Connection, broadcast_id: int, *, now: datetime) -> int:
    """Stop a broadcast: nothing more is queued, and its emails not sent yet (all of
    them queued, but some held for their hour or local time) are skipped. Returns how
    many were. Raises BroadcastStateError when it was cancelled, or sent in full."""
    row = _row(conn, broadcast_id, lock=True)
    if row.status == BroadcastStatus.CANCELLED:
        raise BroadcastStateError(f"broadcast {broadcast_id} is cancelled already")
    # Emails kept in the outbox (no SMTP server) went where they go: only those still
    # waiting to be sent are stopped.
    unsent = sa.and_(
        deliveries.c.broadcast_id == broadcast_id,
        deliveries.c.state == DeliveryState.PENDING,
        # Not one a dispatcher is attempting right now (its lease runs).
        sa.or_(deliveries.c.claim_expires_at.is_(None), deliveries.c.claim_expires_at < now),
    )
    if (
        row.status == BroadcastStatus.SENT
        and not conn.execute(sa.select(deliveries.c.id).where(unsent).limit(1)).first()
    ):
        raise BroadcastStateError(f"broadcast {broadcast_id} is sent: nothing is left to stop")
    due_store.cancel(conn, DUE_KIND, str(broadcast_id))
    conn.execute(
        broadcasts.update()
        .where(broadcasts.c.id == broadcast_id)
        .values(status=BroadcastStatus.CANCELLED, updated_at=now)
    )
    return conn.execute(
        deliveries.update()
        .where(unsent)
        .values(
            state=DeliveryState.SKIPPED,
            next_attempt_at=None,
            last_error="the broadcast was cancelled",
            updated_at=now,
        )
    ).rowcount


# -- queueing ------------------------------------------------------------------------


def queue_next(
    conn: Connection,
    key: str,
    visitor_ids: list[int],
    now: datetime,
    *,
    catalog: Catalog,
    config: EngineConfig,
) -> None:
    """The due-check handler: queue the next chunk of the broadcast's audience, and
    come back at once while some is left; mark it sent when none is."""
    broadcast_id = int(key)
    row = _row(conn, broadcast_id, lock=True)
    if row.status not in (BroadcastStatus.SCHEDULED, BroadcastStatus.SENDING):
        return
    try:
        sender = _Sender(conn, catalog, config, row, now)
    except DefinitionError as error:  # its template was deleted since it was saved
        conn.execute(
            broadcasts.update()
            .where(broadcasts.c.id == broadcast_id)
            .values(
                status=BroadcastStatus.CANCELLED,
                last_error=f"its email can no longer be sent: {error}",
                updated_at=now,
            )
        )
        return
    people = _audience(conn, row)
    queued, unsubscribed, suppressed, failed, error = sender.queue(people)
    done = len(people) < CHUNK
    values: dict[str, Any] = {
        "status": BroadcastStatus.SENT if done else BroadcastStatus.SENDING,
        "cursor": people[-1].id if people else row.cursor,
        "queued": broadcasts.c.queued + queued,
        "skipped_unsubscribed": broadcasts.c.skipped_unsubscribed + unsubscribed,
        "skipped_suppressed": broadcasts.c.skipped_suppressed + suppressed,
        "failed_to_render": broadcasts.c.failed_to_render + failed,
        "updated_at": now,
    }
    if error is not None:
        values["last_error"] = error
    if done:
        values["queued_at"] = now
    conn.execute(broadcasts.update().where(broadcasts.c.id == broadcast_id).values(**values))
    if not done:
        due_store.schedule(conn, [due_store.DueCheck(DUE_KIND, key, 0, now)])


def _audience(conn: Connection, row) -> list:
    """The next `CHUNK` visitors after the cursor: the segment's members, or everyone."""
    query = sa.select(
        visitors.c.id,
        visitors.c.uuid,
        visitors.c.email,
        visitors.c.fields,
        visitors.c.tags,
        visitors.c.unsubscribed_at,
        visitors.c.created_at,
    )
    if row.segment_key is not None:
        query = query.join(segment_members, segment_members.c.visitor_id == visitors.c.id).where(
            segment_members.c.segment_key == row.segment_key
        )
    return conn.execute(
        query.where(visitors.c.id > row.cursor).order_by(visitors.c.id).limit(CHUNK)
    ).all()


class _Sender:
    """Renders a broadcast's email for visitors and stores the deliveries."""

    def __init__(self, conn, catalog: Catalog, config: EngineConfig, row, now: datetime):
        self.conn, self.config, self.row, self.now = conn, config, row, now
        documents = current_templates(conn)
        self.action = validate_email(row.email, known_templates=set(documents))
        template = self.action.template
        self.stored = catalog.templates_of(documents, {template})[template] if template else None
        self.domain = message_id_domain(config.mail_from)
        self.state = (
            DeliveryState.OUTBOX if config.mail_transport == "outbox" else DeliveryState.PENDING
        )
        self.local = parse_time_of_day(row.local_time) if row.local_time else None
        self.origin = {
            "type": "$broadcast",
            "details": {"broadcast": row.id, "name": row.name},
            "date": now.isoformat(),
        }

    def queue(self, people: list) -> tuple[int, int, int, int, str | None]:
        """Deliveries for the audience among `people`; the counts queued, skipped as
        unsubscribed, skipped as erased, failed to render, and the last error."""
        row = self.row
        wanted = [p for p in people if _tags_match(p.tags, row.inclusive_tags, row.exclusive_tags)]
        erased = _suppressed(self.conn, wanted)
        rows, unsubscribed, suppressed, failed, error = [], 0, 0, 0, None
        for person in wanted:
            if person.id in erased:
                suppressed += 1
            elif person.unsubscribed_at is not None:
                unsubscribed += 1
            else:
                try:
                    rows.append(self._delivery(person, row.queued + len(rows)))
                except (StepFailed, TemplateError) as problem:
                    failed, error = failed + 1, f"{person.email}: {problem}"
        insert_many(self.conn, deliveries, rows)
        return len(rows), unsubscribed, suppressed, failed, error

    def _delivery(self, person, index: int) -> dict[str, Any]:
        config = self.config
        unsubscribe = links.unsubscribe_url(config.public_url, config.signing_key, person.uuid)
        view = visitor_view(
            email=person.email,
            uuid=person.uuid,
            fields=person.fields,
            tags=person.tags,
            subscribed=True,
            created_at=person.created_at,
        )
        context = template_context(
            visitor=view, origin=self.origin, now=self.now, unsubscribe_url=unsubscribe
        )
        message = render_email(
            self.action,
            self.stored,
            context,
            to=person.email,
            mail_from=config.mail_from,
            unsubscribe_url=unsubscribe,
            loc="email",
        )
        message["message_id"] = f"<b{self.row.id}.{person.id}@{self.domain}>"
        pending = self.state == DeliveryState.PENDING
        return {
            "session_id": None,
            "visitor_id": person.id,
            "flow_key": None,
            "step": None,
            "kind": "email",
            "idempotency_id": message["message_id"],
            "state": self.state,
            "payload": message,
            "attempts": 0,
            "max_attempts": MAX_ATTEMPTS,
            "next_attempt_at": self._send_time(person, index) if pending else None,
            "created_at": self.now,
            "updated_at": self.now,
            "broadcast_id": self.row.id,
        }

    def _send_time(self, person, index: int) -> datetime:
        """When the email goes: at the broadcast's time, or at its local time in the
        visitor's zone (SPEC §2.6's choice of zone), plus an hour per `per_hour`
        emails queued before it; never before now."""
        at = self.row.send_at or self.now
        if self.local is not None:
            zone = visitor_zone(person.fields, None, self.config.default_timezone).zone
            at = datetime.combine(at.date(), self.local, tzinfo=zone).astimezone(UTC)
        if self.row.per_hour:
            at += timedelta(hours=index // self.row.per_hour)
        return max(at, self.now)


def _tags_match(tags: list[str], inclusive: list[str], exclusive: list[str]) -> bool:
    """Bento's tag filters: any of `inclusive` (when given), none of `exclusive`."""
    have = set(tags)
    return (not inclusive or bool(have & set(inclusive))) and not have & set(exclusive)


def _suppressed(conn: Connection, people: list) -> set[int]:
    hashes = {h: p.id for p in people for h in links.email_hashes(p.email)}
    if not hashes:
        return set()
    found = conn.execute(
        sa.select(suppressions.c.email_hash).where(suppressions.c.email_hash.in_(list(hashes)))
    ).scalars()
    return {hashes[h] for h in found}


# -- reading -------------------------------------------------------------------------


def view(conn: Connection, row) -> dict[str, Any]:
    """A broadcast with its progress and results: `stats` counts its emails by state,
    the visitors who opened, clicked, and unsubscribed since it reached them."""
    return {
        "id": row.id,
        "name": row.name,
        "email": row.email,
        "segment": row.segment_key,
        "inclusive_tags": row.inclusive_tags,
        "exclusive_tags": row.exclusive_tags,
        "status": row.status,
        "send_at": row.send_at and row.send_at.isoformat(),
        "local_time": row.local_time,
        "per_hour": row.per_hour,
        "actor": row.actor,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
        "queued_at": row.queued_at and row.queued_at.isoformat(),
        "last_error": row.last_error,
        "stats": stats(conn, row),
    }


def stats(conn: Connection, row) -> dict[str, int]:
    """`{queued, sent, outbox, pending, failed, skipped, skipped_unsubscribed,
    skipped_suppressed, failed_to_render, opened, clicked, unsubscribed}`: reads of its
    own deliveries and engagements (`ix_deliveries_broadcast`)."""
    mine = deliveries.c.broadcast_id == row.id
    states = dict(
        conn.execute(
            sa.select(deliveries.c.state, sa.func.count()).where(mine).group_by(deliveries.c.state)
        ).all()
    )
    engaged = dict(
        conn.execute(
            sa.select(
                broadcast_engagements.c.kind,
                sa.func.count(sa.distinct(broadcast_engagements.c.visitor_id)),
            )
            .where(broadcast_engagements.c.broadcast_id == row.id)
            .group_by(broadcast_engagements.c.kind)
        ).all()
    )
    unsubscribed = conn.execute(
        sa.select(sa.func.count())
        .select_from(deliveries.join(visitors, visitors.c.id == deliveries.c.visitor_id))
        .where(
            mine,
            deliveries.c.state.in_([DeliveryState.SENT, DeliveryState.OUTBOX]),
            visitors.c.unsubscribed_at >= deliveries.c.created_at,
        )
    ).scalar_one()
    return {
        "queued": row.queued,
        **{state.value: states.get(state.value, 0) for state in _COUNTED},
        "skipped_unsubscribed": row.skipped_unsubscribed,
        "skipped_suppressed": row.skipped_suppressed,
        "failed_to_render": row.failed_to_render,
        "opened": engaged.get("email_opened", 0),
        "clicked": engaged.get("email_clicked", 0),
        "unsubscribed": unsubscribed,
    }


_COUNTED = (
    DeliveryState.SENT,
    DeliveryState.OUTBOX,
    DeliveryState.PENDING,
    DeliveryState.FAILED,
    DeliveryState.SKIPPED,
)


def audience_counts(
    conn: Connection,
    segment_key: str | None,
    inclusive: list[str] = (),
    exclusive: list[str] = (),
) -> dict[str, int]:
    """`{members, subscribed}`: how many visitors the audience holds now (the segment's
    members, or every visitor, that the tag filters keep), and how many of them are
    subscribed; erased addresses aside. Without tag filters, two counts in SQL; with
    them, the audience's tags are read and filtered here."""
    audience = visitors
    where = []
    if segment_key is not None:
        audience = segment_members.join(visitors, visitors.c.id == segment_members.c.visitor_id)
        where.append(segment_members.c.segment_key == segment_key)
    if not inclusive and not exclusive:
        query = sa.select(sa.func.count(), sa.func.count(visitors.c.unsubscribed_at))
        members, unsubscribed = conn.execute(query.select_from(audience).where(*where)).one()
        return {"members": members, "subscribed": members - unsubscribed}
    rows = conn.execute(
        sa.select(visitors.c.tags, visitors.c.unsubscribed_at).select_from(audience).where(*where)
    )
    kept = [out for tags, out in rows if _tags_match(tags, inclusive, exclusive)]
    return {"members": len(kept), "subscribed": sum(out is None for out in kept)}


def first_member(conn: Connection, segment_key: str | None) -> str | None:
    """The email of the audience's first visitor, the one it reaches first (by id)."""
    query = sa.select(visitors.c.email).order_by(visitors.c.id).limit(1)
    if segment_key is not None:
        query = query.join(segment_members, segment_members.c.visitor_id == visitors.c.id).where(
            segment_members.c.segment_key == segment_key
        )
    return conn.execute(query).scalar()


def get(conn: Connection, broadcast_id: int) -> dict[str, Any]:
    return view(conn, _row(conn, broadcast_id))


def list_all(conn: Connection) -> list[dict[str, Any]]:
    """Every broadcast, newest first, with its results."""
    rows = conn.execute(sa.select(broadcasts).order_by(broadcasts.c.id.desc())).all()
    return [view(conn, row) for row in rows]
