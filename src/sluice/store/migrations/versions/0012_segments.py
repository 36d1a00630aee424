"""segments, their members, and work due at a time for one visitor

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 16:00:00

Segments are versioned documents with an audit log; who is in each is kept as rows,
changed in the transaction of the change that moves a visitor in or out. Time-window
rules ("2 purchases within 30 days") and date triggers fall due at a time rather than
on a change: `due_checks` holds one row per visitor and segment (or flow) with the
time to look again, which the worker claims as it claims sessions.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "segments",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_segments"),
    )
    op.create_table(
        "segment_versions",
        sa.Column("segment_key", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("definition", Json, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("segment_key", "version", name="pk_segment_versions"),
    )
    op.create_table(
        "segment_changes",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("segment_key", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("diff", sa.Text),
        sa.Column("note", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_segment_changes"),
    )
    op.create_index("ix_segment_changes_segment_key", "segment_changes", ["segment_key"])
    op.create_table(
        "segment_members",
        sa.Column("segment_key", sa.String(64), nullable=False),
        sa.Column("visitor_id", Id, nullable=False),
        sa.Column("entered_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("segment_key", "visitor_id", name="pk_segment_members"),
    )
    op.create_index("ix_segment_members_visitor_id", "segment_members", ["visitor_id"])
    op.create_table(
        "due_checks",
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("visitor_id", Id, nullable=False),
        sa.Column("due_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("kind", "key", "visitor_id", name="pk_due_checks"),
    )
    op.create_index("ix_due_checks_due_at", "due_checks", ["due_at"])
    op.create_index("ix_due_checks_visitor_id", "due_checks", ["visitor_id"])


def downgrade() -> None:
    for table in ("due_checks", "segment_members", "segment_changes"):
        op.drop_table(table)
    op.drop_table("segment_versions")
    op.drop_table("segments")
