"""an index of the goals reached

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 21:30:00

The web UI's flows list shows every flow's conversion (goals reached per session
started). A partial index of the `goal` timeline entries lets it count them without
reading the whole timeline.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_timeline_goals",
        "timeline",
        ["session_id"],
        postgresql_where=sa.text("kind = 'goal'"),
        sqlite_where=sa.text("kind = 'goal'"),
    )


def downgrade() -> None:
    op.drop_index("ix_timeline_goals", table_name="timeline")
