"""indexes of what is failing: deliveries being retried or failed, sessions failed

Revision ID: 0009
Revises: 0007
Create Date: 2026-11-30 22:00:00

The canvas shows, on every step, the deliveries waiting for another attempt and those
that failed, and the flows list counts each flow's failing steps and the sessions
failed in the last 24 h (health.py). Three partial indexes let them read only the
rows in trouble, by flow and step, however many sessions and deliveries there are.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_INDEXES = (
    (
        "ix_sessions_failed",
        "sessions",
        ["flow_key", "status", "finished_at", "step"],
        "status = 'failed'",
    ),
    (
        "ix_deliveries_retrying",
        "deliveries",
        ["flow_key", "step"],
        "state = 'pending' AND attempts > 0",
    ),
    (
        "ix_deliveries_failed",
        "deliveries",
        ["flow_key", "step", "updated_at"],
        "state = 'failed'",
    ),
)


def upgrade() -> None:
    for name, table, columns, where in _INDEXES:
        op.create_index(
            name,
            table,
            columns,
            postgresql_where=sa.text(where),
            sqlite_where=sa.text(where),
        )


def downgrade() -> None:
    for name, table, _, _ in reversed(_INDEXES):
        op.drop_index(name, table_name=table)
