"""versions keep the author's text; notes in the audit log; drafts of flows

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 03:30:00

A flow or template version now keeps the text it was read from (comments, key order,
block scalars: SPEC §7), and diffs compare those texts. The versions stored before
get a YAML dump of their definition, written in block style with multi-line strings
as `|` blocks, so that every version has a text. The dump is written out here, not
imported, so that this migration keeps doing what it did when the code moves on.
The audit log gains the note a person may write with a save, and `flow_drafts` holds
the draft of a flow worked on while its current version runs.
"""

import io

import sqlalchemy as sa
from alembic import op
from ruamel.yaml import YAML
from ruamel.yaml.scalarstring import LiteralScalarString

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

BATCH = 1_000
_VERSIONS = (("flow_versions", "flow_key"), ("template_versions", "template_key"))


def _literal_blocks(value):
    if isinstance(value, dict):
        return {key: _literal_blocks(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_literal_blocks(item) for item in value]
    if (
        isinstance(value, str)
        and "\n" in value.rstrip("\n")
        and all(line == line.rstrip(" \t\r") for line in value.split("\n"))
    ):
        return LiteralScalarString(value)
    return value


def _dump(document) -> str:
    out = io.StringIO()
    writer = YAML()
    writer.default_flow_style = False
    writer.indent(mapping=2, sequence=4, offset=2)
    writer.width = 4096
    writer.dump(_literal_blocks(document), out)
    return out.getvalue()


def _backfill(conn, name: str, key: str) -> None:
    table = sa.table(name, sa.column(key), sa.column("version"), sa.column("definition", sa.JSON))
    text = sa.table(name, sa.column(key), sa.column("version"), sa.column("source"))
    done = 0
    while True:
        rows = conn.execute(
            sa.select(table).order_by(table.c[key], table.c.version).offset(done).limit(BATCH)
        ).all()
        for row in rows:
            conn.execute(
                text.update()
                .where(text.c[key] == row[0], text.c.version == row.version)
                .values(source=_dump(row.definition))
            )
        done += len(rows)
        if len(rows) < BATCH:
            return


def upgrade() -> None:
    conn = op.get_bind()
    for name, key in _VERSIONS:
        op.add_column(name, sa.Column("source", sa.Text))
        _backfill(conn, name, key)
        with op.batch_alter_table(name) as table:
            table.alter_column("source", existing_type=sa.Text, nullable=False)
    op.add_column("flow_changes", sa.Column("note", sa.Text))
    op.create_table(
        "flow_drafts",
        sa.Column("flow_key", sa.String(64), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("flow_key", name="pk_flow_drafts"),
    )


def downgrade() -> None:
    op.drop_table("flow_drafts")
    with op.batch_alter_table("flow_changes") as table:
        table.drop_column("note")
    for name, _ in reversed(_VERSIONS):
        with op.batch_alter_table(name) as table:
            table.drop_column("source")
