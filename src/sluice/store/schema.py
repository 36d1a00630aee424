"""The database schema, the same on SQLite and PostgreSQL.

Every table that holds per-visitor data carries `visitor_id`, and every hot query is
either per visitor or a claim of due rows, so the schema can later be distributed by
visitor id without a rewrite (SPEC §5).

Instants are stored as naive UTC (`UTCDateTime`), which keeps SQLite's text
timestamps ordered and comparable in SQL.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(sa.TypeDecorator):
    """Aware datetimes in, aware UTC datetimes out; naive UTC in the database."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect):
        return None if value is None else value.replace(tzinfo=UTC)

    # On SQLite, each value would pass through two Python functions, ours and
    # SQLAlchemy's text conversion; these do both in one. Every session, event and
    # timeline row has several instants, and the two steps took about 15 % of the
    # worker's time in the pipeline benchmark (docs/benchmarks.md). The text is
    # SQLAlchemy's own storage format (`2026-01-02 03:04:05.000120`), so stored
    # values compare as before.

    def bind_processor(self, dialect):
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)
        to_naive_utc = self.process_bind_param

        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            return to_naive_utc(value, dialect).isoformat(" ", "microseconds")

        return process

    def result_processor(self, dialect, coltype):
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)

        def process(value: str | None) -> datetime | None:
            if value is None:
                return None
            return datetime.fromisoformat(value).replace(tzinfo=UTC)

        return process


Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _id() -> sa.Column:
    return sa.Column("id", Id, primary_key=True, autoincrement=True)


settings_store = sa.Table(
    "settings_store",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

visitors = sa.Table(
    "visitors",
    metadata,
    _id(),
    sa.Column("uuid", sa.String(36), nullable=False, unique=True),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("email_key", sa.String(320), nullable=False, unique=True),
    sa.Column("fields", Json, nullable=False),
    sa.Column("tags", Json, nullable=False),
    sa.Column("unsubscribed_at", UTCDateTime),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sqlite_autoincrement=True,  # ids of erased rows never come back (migration 0004)
)

events = sa.Table(
    "events",
    metadata,
    _id(),
    sa.Column("visitor_id", Id, nullable=False),
    sa.Column("type", sa.String(200), nullable=False),
    sa.Column("details", Json, nullable=False),
    sa.Column("fields", Json),
    sa.Column("date", UTCDateTime, nullable=False),
    sa.Column("accepted_at", UTCDateTime, nullable=False),
    sa.Column("idempotency_key", sa.String(200)),
    sa.Column("depth", sa.Integer, nullable=False, server_default="0"),
    sa.Column("source", sa.String(32), nullable=False),
    # The budget of caused events (SPEC §7, store/budget.py): an event recorded by a
    # flow names the event from outside that its chain began with; that event's row
    # counts the events and sessions flows have caused from it so far.
    sa.Column("root_event_id", Id),
    sa.Column("caused", sa.Integer, nullable=False, server_default="0"),
    sa.Index(None, "visitor_id", "id"),
    sa.UniqueConstraint("visitor_id", "type", "idempotency_key"),
    sqlite_autoincrement=True,  # ids of erased rows never come back (migration 0004)
)

flows = sa.Table(
    "flows",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("off_since", UTCDateTime),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

flow_versions = sa.Table(
    "flow_versions",
    metadata,
    sa.Column("flow_key", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("definition", Json, nullable=False),
    # The author's text the definition was read from (comments, key order, block
    # scalars kept; SPEC §7), or a YAML dump of it when it came as JSON (0010).
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

flow_changes = sa.Table(
    "flow_changes",
    metadata,
    _id(),
    sa.Column("flow_key", sa.String(64), nullable=False, index=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("diff", sa.Text),
    sa.Column("note", sa.Text),  # what the person saving wrote about the change
)

# A draft of a flow (SPEC §7): an author's text saved without making a version, so a
# live flow keeps running its current version while the next one is worked on.
flow_drafts = sa.Table(
    "flow_drafts",
    metadata,
    sa.Column("flow_key", sa.String(64), primary_key=True),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

templates = sa.Table(
    "templates",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    # Set when the template was deleted (store/flows.py delete_template): it is no
    # longer listed or usable, but its versions stay, since stored flow versions that
    # named it must still load.
    sa.Column("deleted_at", UTCDateTime),
)

template_versions = sa.Table(
    "template_versions",
    metadata,
    sa.Column("template_key", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("definition", Json, nullable=False),
    sa.Column("source", sa.Text, nullable=False),  # as in flow_versions
    sa.Column("created_at", UTCDateTime, nullable=False),
)

sessions = sa.Table(
    "sessions",
    metadata,
    _id(),
    sa.Column("visitor_id", Id, nullable=False),
    sa.Column("flow_key", sa.String(64), nullable=False),
    sa.Column("flow_version", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("step", sa.String(200)),
    # True once the step at `step` has begun (it is being waited on); False when
    # `step` is the next step to begin.
    sa.Column("step_begun", sa.Boolean, nullable=False),
    sa.Column("state", Json, nullable=False),
    sa.Column("origin_event_id", Id, nullable=False),
    sa.Column("depth", sa.Integer, nullable=False),
    # The last event of the visitor this session has looked at (goals, wait_for).
    sa.Column("event_cursor", Id, nullable=False),
    sa.Column("waiting_for", sa.String(200)),
    sa.Column("wake_at", UTCDateTime),
    # When a worker should look at the session next: its wake-up time, or "now" when
    # something happened to it (an event, a delivery outcome, a resume, an edit).
    sa.Column("due_at", UTCDateTime),
    sa.Column("paused_since", UTCDateTime),
    sa.Column("resume_status", sa.String(16)),
    # Bumped by every change; a worker applies its result only if nothing else
    # changed the session since it was read.
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("claimed_by", sa.String(64)),
    sa.Column("claim_expires_at", UTCDateTime),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime),
    sa.Index(None, "visitor_id", "flow_key"),
    sa.Index(None, "flow_key", "status", "step"),
    sa.Index(None, "flow_key", "started_at"),
    # Sessions failed, by when, for the health of flows and their steps (health.py).
    # `status` is a column too, constant as it is: SQLite plans without statistics and
    # would otherwise prefer `(flow_key, status, step)` and read every failed session.
    sa.Index(
        "ix_sessions_failed",
        "flow_key",
        "status",
        "finished_at",
        "step",
        postgresql_where=sa.text("status = 'failed'"),
        sqlite_where=sa.text("status = 'failed'"),
    ),
    sa.Index(
        "ix_sessions_due",
        "due_at",
        postgresql_where=sa.text("due_at IS NOT NULL"),
        sqlite_where=sa.text("due_at IS NOT NULL"),
    ),
)

timeline = sa.Table(
    "timeline",
    metadata,
    _id(),
    sa.Column("session_id", Id, nullable=False),
    sa.Column("visitor_id", Id, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("step", sa.String(200)),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("data", Json, nullable=False),
    sa.Index(None, "session_id", "id"),
    # Goals reached, for the conversion of every flow in the UI's flows list.
    sa.Index(
        "ix_timeline_goals",
        "session_id",
        postgresql_where=sa.text("kind = 'goal'"),
        sqlite_where=sa.text("kind = 'goal'"),
    ),
    sqlite_autoincrement=True,  # ids of erased rows never come back (migration 0004)
)

# Segments (SPEC §7, docs/segments.md): versioned documents, as templates are, with an
# audit log of their changes as flows have.
segments = sa.Table(
    "segments",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

segment_versions = sa.Table(
    "segment_versions",
    metadata,
    sa.Column("segment_key", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("definition", Json, nullable=False),
    sa.Column("source", sa.Text, nullable=False),  # as in flow_versions
    sa.Column("created_at", UTCDateTime, nullable=False),
)

segment_changes = sa.Table(
    "segment_changes",
    metadata,
    _id(),
    sa.Column("segment_key", sa.String(64), nullable=False, index=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("diff", sa.Text),
    sa.Column("note", sa.Text),
)

# Who is in each segment now, kept in the transaction of every change that can move
# them (store/segments.py); entries and exits are `$segment_entered`/`$segment_left`
# events in the visitors' histories.
segment_members = sa.Table(
    "segment_members",
    metadata,
    sa.Column("segment_key", sa.String(64), primary_key=True),
    sa.Column("visitor_id", Id, primary_key=True),
    sa.Column("entered_at", UTCDateTime, nullable=False),
    sa.Index(None, "visitor_id"),
)

# Work for one visitor that falls due at a time rather than on a change (store/due.py):
# a segment's time window passing (`kind` "segment", `key` its key), a date trigger's
# next occurrence (`kind` "date", `key` the flow's key). The worker claims these as it
# claims sessions, and sleeps until the earliest.
due_checks = sa.Table(
    "due_checks",
    metadata,
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("visitor_id", Id, primary_key=True),
    sa.Column("due_at", UTCDateTime, nullable=False),
    sa.Index(None, "due_at"),
    sa.Index(None, "visitor_id"),
)

# Why events that matched a flow's trigger by type started no session there
# (store/refusals.py): the latest such refusal per visitor and flow, and how many.
trigger_refusals = sa.Table(
    "trigger_refusals",
    metadata,
    sa.Column("visitor_id", Id, primary_key=True),
    sa.Column("flow_key", sa.String(64), primary_key=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("event_id", Id, nullable=False),
    sa.Column("event_type", sa.String(200), nullable=False),
    sa.Column("reason", sa.String(16), nullable=False),
    sa.Column("data", Json, nullable=False),
    sa.Column("refusals", sa.Integer, nullable=False),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    _id(),
    # Null for a transactional email sent through the API (`batch/emails`), which
    # belongs to no session, flow or step.
    sa.Column("session_id", Id),
    sa.Column("visitor_id", Id, nullable=False),
    sa.Column("flow_key", sa.String(64)),
    sa.Column("step", sa.String(200)),
    sa.Column("kind", sa.String(16), nullable=False),
    # Message-ID or webhook-id: decided before the first attempt, the same on all.
    sa.Column("idempotency_id", sa.String(200), nullable=False, unique=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("payload", Json, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("max_attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UTCDateTime),
    sa.Column("last_error", sa.Text),
    sa.Column("claim_expires_at", UTCDateTime),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    # The broadcast an email belongs to (store/broadcasts.py); null for the others.
    sa.Column("broadcast_id", Id),
    sa.Index(None, "visitor_id", "id"),
    sa.Index(None, "session_id"),
    sa.Index(
        "ix_deliveries_broadcast",
        "broadcast_id",
        "state",
        postgresql_where=sa.text("broadcast_id IS NOT NULL"),
        sqlite_where=sa.text("broadcast_id IS NOT NULL"),
    ),
    sa.Index(
        "ix_deliveries_pending",
        "next_attempt_at",
        postgresql_where=sa.text("state = 'pending'"),
        sqlite_where=sa.text("state = 'pending'"),
    ),
    # Deliveries being retried and deliveries failed, per flow and step, for the
    # canvas and the flows list (health.py).
    sa.Index(
        "ix_deliveries_retrying",
        "flow_key",
        "step",
        postgresql_where=sa.text("state = 'pending' AND attempts > 0"),
        sqlite_where=sa.text("state = 'pending' AND attempts > 0"),
    ),
    sa.Index(
        "ix_deliveries_failed",
        "flow_key",
        "step",
        "updated_at",
        postgresql_where=sa.text("state = 'failed'"),
        sqlite_where=sa.text("state = 'failed'"),
    ),
    sqlite_autoincrement=True,  # ids of erased rows never come back (migration 0004)
)

# One-off emails to a segment or to everyone subscribed (store/broadcasts.py). Its
# recipients become deliveries a chunk at a time (a due check of kind `broadcast`),
# `cursor` the last visitor id done; the counts say who was skipped and why.
broadcasts = sa.Table(
    "broadcasts",
    metadata,
    _id(),
    sa.Column("name", sa.String(200), nullable=False),
    # An email step's value (SPEC §2.2): subject, html, text, template, from, reply_to.
    sa.Column("email", Json, nullable=False),
    sa.Column("segment_key", sa.String(64)),
    sa.Column("inclusive_tags", Json, nullable=False),
    sa.Column("exclusive_tags", Json, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("send_at", UTCDateTime),
    # `HH:MM`: each visitor gets it at this time of the day of `send_at` in their zone.
    sa.Column("local_time", sa.String(5)),
    sa.Column("per_hour", sa.Integer),
    sa.Column("cursor", Id, nullable=False, server_default="0"),
    sa.Column("queued", sa.Integer, nullable=False, server_default="0"),
    sa.Column("skipped_unsubscribed", sa.Integer, nullable=False, server_default="0"),
    sa.Column("skipped_suppressed", sa.Integer, nullable=False, server_default="0"),
    sa.Column("failed_to_render", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("queued_at", UTCDateTime),
)

# Opens and clicks of broadcast emails (flows' go on their sessions' timelines): one
# row per email and kind (and link, for clicks; "" for an open).
broadcast_engagements = sa.Table(
    "broadcast_engagements",
    metadata,
    sa.Column("delivery_id", Id, primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("url", sa.String(2048), primary_key=True),
    sa.Column("broadcast_id", Id, nullable=False, index=True),
    sa.Column("visitor_id", Id, nullable=False, index=True),
    sa.Column("at", UTCDateTime, nullable=False),
)

# Test sends of an email (`POST /api/emails/test`) kept in the outbox when no SMTP
# server is configured. Apart from deliveries: they belong to no session, are never
# dispatched and never counted. `visitor_id` is the stored visitor it was rendered for,
# if any, so that erasing the visitor erases it too.
test_emails = sa.Table(
    "test_emails",
    metadata,
    _id(),
    sa.Column("visitor_id", Id),
    sa.Column("to_key", sa.String(320), nullable=False, index=True),
    sa.Column("message_id", sa.String(200), nullable=False),
    sa.Column("payload", Json, nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index(None, "visitor_id"),
    sqlite_autoincrement=True,  # ids of erased rows never come back (migration 0004)
)

suppressions = sa.Table(
    "suppressions",
    metadata,
    sa.Column("email_hash", sa.String(64), primary_key=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# Registries of tag names and field keys, as Bento's `fetch/tags` and `fetch/fields`
# list them. A visitor's tags and fields are stored on the visitor; these only give
# names an id and a creation time.
tags = sa.Table(
    "tags",
    metadata,
    _id(),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

custom_fields = sa.Table(
    "custom_fields",
    metadata,
    _id(),
    sa.Column("key", sa.String(200), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)
