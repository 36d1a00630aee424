"""registries of tags and fields; deliveries outside sessions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 21:00:00

The tag and field registries back Bento's `fetch/tags` and `fetch/fields`.
Transactional emails sent through `POST /api/v1/batch/emails` are deliveries that
belong to no session, flow or step, so those columns become nullable.
"""

import sqlalchemy as sa
from alembic import op

import sluice.store.schema

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "custom_fields",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sluice.store.schema.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custom_fields")),
        sa.UniqueConstraint("key", name=op.f("uq_custom_fields_key")),
    )
    op.create_table(
        "tags",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sluice.store.schema.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tags")),
        sa.UniqueConstraint("name", name=op.f("uq_tags_name")),
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.alter_column("session_id", existing_type=_ID, nullable=True)
        batch_op.alter_column("flow_key", existing_type=sa.String(length=64), nullable=True)
        batch_op.alter_column("step", existing_type=sa.String(length=200), nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.alter_column("step", existing_type=sa.String(length=200), nullable=False)
        batch_op.alter_column("flow_key", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("session_id", existing_type=_ID, nullable=False)
    op.drop_table("tags")
    op.drop_table("custom_fields")
