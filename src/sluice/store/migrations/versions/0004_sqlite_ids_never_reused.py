"""ids of erased rows are never handed out again on SQLite

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 00:40:00

Erasing a visitor deletes its row, events, timeline entries and messages. SQLite gives
a new row the largest id + 1, so when the erased rows were the newest their ids came
back: a new visitor got the erased one's id, and with it the erased visitor's (exited)
sessions as its own history — enough to keep it out of an `entry: once` flow. With
AUTOINCREMENT SQLite remembers the largest id a table ever had. The tables are
rebuilt to get it (SQLite cannot add it to a table); PostgreSQL's sequences never
reused ids, so nothing changes there.
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TABLES = ("visitors", "events", "timeline", "deliveries")


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in TABLES:
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_autoincrement": True}
        ):
            pass


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in TABLES:
        with op.batch_alter_table(table, recreate="always"):
            pass
