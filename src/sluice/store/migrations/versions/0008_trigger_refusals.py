"""why events that matched a trigger started no session

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 21:50:00

"Why didn't they get it?" needs what the trigger decided at ingest: an event that
matched a flow's trigger by type but started no session (its `if` was false, an
entry rule or cooldown refused it, the flow was off, or the budget of caused events
was spent). One row per visitor and flow keeps the latest refusal and a count
(store/refusals.py), so the table grows with visitors × flows, not with events.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "trigger_refusals",
        sa.Column("visitor_id", Id, nullable=False),
        sa.Column("flow_key", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("event_id", Id, nullable=False),
        sa.Column("event_type", sa.String(200), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("data", Json, nullable=False),
        sa.Column("refusals", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("visitor_id", "flow_key", name="pk_trigger_refusals"),
    )


def downgrade() -> None:
    op.drop_table("trigger_refusals")
