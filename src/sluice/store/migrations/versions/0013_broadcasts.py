"""broadcasts: one-off emails to a segment or to everyone subscribed

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 16:10:00

A broadcast's recipients become deliveries a chunk at a time, so a broadcast to
100,000 visitors is accepted at once; each email is a delivery like a flow's (same
dispatcher, retries, tracking), marked with its broadcast. Opens and clicks of
broadcast emails have no session timeline to go on: they get a table of their own.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "broadcasts",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("email", Json, nullable=False),
        sa.Column("segment_key", sa.String(64)),
        sa.Column("inclusive_tags", Json, nullable=False),
        sa.Column("exclusive_tags", Json, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("send_at", sa.DateTime),
        sa.Column("local_time", sa.String(5)),
        sa.Column("per_hour", sa.Integer),
        sa.Column("cursor", Id, nullable=False, server_default="0"),
        sa.Column("queued", sa.Integer, nullable=False, server_default="0"),
        sa.Column("skipped_unsubscribed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("skipped_suppressed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("failed_to_render", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("queued_at", sa.DateTime),
        sa.PrimaryKeyConstraint("id", name="pk_broadcasts"),
    )
    op.create_table(
        "broadcast_engagements",
        sa.Column("delivery_id", Id, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("broadcast_id", Id, nullable=False),
        sa.Column("visitor_id", Id, nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("delivery_id", "kind", "url", name="pk_broadcast_engagements"),
    )
    op.create_index(
        "ix_broadcast_engagements_broadcast_id", "broadcast_engagements", ["broadcast_id"]
    )
    op.create_index("ix_broadcast_engagements_visitor_id", "broadcast_engagements", ["visitor_id"])
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("broadcast_id", Id))
    op.create_index(
        "ix_deliveries_broadcast",
        "deliveries",
        ["broadcast_id", "state"],
        postgresql_where=sa.text("broadcast_id IS NOT NULL"),
        sqlite_where=sa.text("broadcast_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_broadcast", table_name="deliveries")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("broadcast_id")
    op.drop_table("broadcast_engagements")
    op.drop_table("broadcasts")
