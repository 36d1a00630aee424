"""the budget of events and sessions one event causes through flows

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 19:30:00

Depth 8 bounded how deep chains of events caused by flows go, not how wide: a flow
with three `track` steps of its own trigger turned one event into thousands. An event
recorded by a flow now names the event from outside its chain began with
(`root_event_id`), and that event counts what flows caused from it (`caused`), so the
count can be bounded (SPEC §7). Rows from before keep no root: their chains count
from the next event recorded.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("events", sa.Column("root_event_id", Id))
    op.add_column("events", sa.Column("caused", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    # SQLite rebuilds the table to drop a column; it keeps AUTOINCREMENT (see 0004).
    with op.batch_alter_table("events", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("caused")
        batch.drop_column("root_event_id")
