"""no due time on sessions a worker may not claim

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 19:40:00

The claim walks the index of due times from the earliest and stops after a batch
(store/sessions.claim_due), so a due time it may not take (a stopped session, or one
whose flow is off, that a delivery outcome made due before this version) would be read
again by every claim. Such sessions lose their due time; resuming them, or turning
their flow on, makes them due again, as before. Data only: the schema is unchanged.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        sa.text(
            "UPDATE sessions SET due_at = NULL WHERE due_at IS NOT NULL AND ("
            "status NOT IN ('active', 'waiting') "
            "OR flow_key IN (SELECT \"key\" FROM flows WHERE status = 'off'))"
        )
    )


def downgrade() -> None:
    pass  # nothing to undo: a session without a due time is made due when it can run
