"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-24 20:20:45.459032
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import sluice.store.schema

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deliveries",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "session_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "visitor_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("flow_key", sa.String(length=64), nullable=False),
        sa.Column("step", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("idempotency_id", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column(
            "payload", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sluice.store.schema.UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("claim_expires_at", sluice.store.schema.UTCDateTime(), nullable=True),
        sa.Column("created_at", sluice.store.schema.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sluice.store.schema.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
        sa.UniqueConstraint("idempotency_id", name=op.f("uq_deliveries_idempotency_id")),
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_deliveries_pending",
            ["next_attempt_at"],
            unique=False,
            postgresql_where=sa.text("state = 'pending'"),
            sqlite_where=sa.text("state = 'pending'"),
        )
        batch_op.create_index(batch_op.f("ix_deliveries_session_id"), ["session_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_deliveries_visitor_id_id"), ["visitor_id", "id"], unique=False
        )

    op.create_table(
        "events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "visitor_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("type", sa.String(length=200), nullable=False),
        sa.Column(
            "details", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column(
            "fields", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True
        ),
        sa.Column("date", sluice.store.schema.UTCDateTime(), nullable=False),
        sa.Column("accepted_at", sluice.store.schema.UTCDateTime(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("depth", sa.Integer(), server_default="0", nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.UniqueConstraint(
            "visitor_id",
            "type",
            "idempotency_key",
            name=op.f("uq_events_visitor_id_type_idempotency_key"),
        ),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_events_visitor_id_id"), ["visitor_id", "id"], unique=False
        )

    op.create_table(
        "flow_changes",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("flow_key", sa.String(length=64), nullable=False),
        sa.Column("at", sluice.store.schema.UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("diff", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flow_changes")),
    )
    with op.batch_alter_table("flow_changes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_flow_changes_flow_key"), ["flow_key"], unique=False)

    op.create_table(
        "flow_versions",
        sa.Column("flow_key", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "definition", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("created_at", sluice.store.schema.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("flow_key", "version", name=op.f("pk_flow_versions")),
    )
    op.create_table(
        "flows",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("off_since", sluice.store.schema.UTCDateTime(), nullable=True),
        sa.Column("created_at", sluice.store.schema.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sluice.store.schema.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_flows")),
    )
    op.create_table(
        "sessions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "visitor_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("flow_key", sa.String(length=64), nullable=False),
        sa.Column("flow_version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("step", sa.String(length=200), nullable=True),
        sa.Column("step_begun", sa.Boolean(), nullable=False),
        sa.Column(
            "state", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column(
            "origin_event_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column(
            "event_cursor", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("waiting_for", sa.String(length=200), nullable=True),
        sa.Column("wake_at", sluice.store.schema.UTCDateTime(), nullable=True),
        sa.Column("due_at", sluice.store.schema.UTCDateTime(), nullable=True),
        sa.Column("paused_since", sluice.store.schema.UTCDateTime(), nullable=True),
        sa.Column("resume_status", sa.String(length=16), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("claim_expires_at", sluice.store.schema.UTCDateTime(), nullable=True),
        sa.Column("started_at", sluice.store.schema.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sluice.store.schema.UTCDateTime(), nullable=False),
        sa.Column("finished_at", sluice.store.schema.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
    )
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sessions_due",
            ["due_at"],
            unique=False,
            postgresql_where=sa.text("due_at IS NOT NULL"),
            sqlite_where=sa.text("due_at IS NOT NULL"),
        )
        batch_op.create_index(
            batch_op.f("ix_sessions_flow_key_started_at"), ["flow_key", "started_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_sessions_flow_key_status_step"),
            ["flow_key", "status", "step"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_sessions_visitor_id_flow_key"), ["visitor_id", "flow_key"], unique=False
        )

    op.create_table(
        "settings_store",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_settings_store")),
    )
    op.create_table(
        "suppressions",
        sa.Column("email_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sluice.store.schema.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("email_hash", name=op.f("pk_suppressions")),
    )
    op.create_table(
        "template_versions",
        sa.Column("template_key", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "definition", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("created_at", sluice.store.schema.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("template_key", "version", name=op.f("pk_template_versions")),
    )
    op.create_table(
        "templates",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sluice.store.schema.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sluice.store.schema.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_templates")),
    )
    op.create_table(
        "timeline",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "session_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "visitor_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("at", sluice.store.schema.UTCDateTime(), nullable=False),
        sa.Column("step", sa.String(length=200), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("data", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_timeline")),
    )
    with op.batch_alter_table("timeline", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_timeline_session_id_id"), ["session_id", "id"], unique=False
        )

    op.create_table(
        "visitors",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("email_key", sa.String(length=320), nullable=False),
        sa.Column(
            "fields", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("tags", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.Column("unsubscribed_at", sluice.store.schema.UTCDateTime(), nullable=True),
        sa.Column("created_at", sluice.store.schema.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sluice.store.schema.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_visitors")),
        sa.UniqueConstraint("email_key", name=op.f("uq_visitors_email_key")),
        sa.UniqueConstraint("uuid", name=op.f("uq_visitors_uuid")),
    )


def downgrade() -> None:
    op.drop_table("visitors")
    with op.batch_alter_table("timeline", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_timeline_session_id_id"))

    op.drop_table("timeline")
    op.drop_table("templates")
    op.drop_table("template_versions")
    op.drop_table("suppressions")
    op.drop_table("settings_store")
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sessions_visitor_id_flow_key"))
        batch_op.drop_index(batch_op.f("ix_sessions_flow_key_status_step"))
        batch_op.drop_index(batch_op.f("ix_sessions_flow_key_started_at"))
        batch_op.drop_index(
            "ix_sessions_due",
            postgresql_where=sa.text("due_at IS NOT NULL"),
            sqlite_where=sa.text("due_at IS NOT NULL"),
        )

    op.drop_table("sessions")
    op.drop_table("flows")
    op.drop_table("flow_versions")
    with op.batch_alter_table("flow_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_flow_changes_flow_key"))

    op.drop_table("flow_changes")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_visitor_id_id"))

    op.drop_table("events")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deliveries_visitor_id_id"))
        batch_op.drop_index(batch_op.f("ix_deliveries_session_id"))
        batch_op.drop_index(
            "ix_deliveries_pending",
            postgresql_where=sa.text("state = 'pending'"),
            sqlite_where=sa.text("state = 'pending'"),
        )

    op.drop_table("deliveries")
