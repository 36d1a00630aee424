"""test sends of emails kept in the outbox; deleted templates

Revision ID: 0011
Revises: 0009
Create Date: 2026-12-01 04:00:00

A person can send an email of a flow or a template to an address of their choice to
see it (`POST /api/emails/test`). Without an SMTP server it is kept in the outbox,
marked as a test; it belongs to no session and must never be dispatched or counted,
so it has a table of its own rather than a row in `deliveries` (whose rows all carry
a visitor: a test may be rendered for a made-up one).

A template can be deleted when no flow uses it. Its versions stay (stored flow
versions that named it must still load for the sessions on them), so deleting marks
the template `deleted_at` instead of removing its rows.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.add_column("templates", sa.Column("deleted_at", sa.DateTime))
    op.create_table(
        "test_emails",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("visitor_id", Id),
        sa.Column("to_key", sa.String(320), nullable=False),
        sa.Column("message_id", sa.String(200), nullable=False),
        sa.Column("payload", Json, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_test_emails"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_test_emails_to_key", "test_emails", ["to_key"])
    op.create_index("ix_test_emails_visitor_id", "test_emails", ["visitor_id"])


def downgrade() -> None:
    op.drop_table("test_emails")
    with op.batch_alter_table("templates") as batch:
        batch.drop_column("deleted_at")
