"""visitors with a Unicode domain are keyed by its IDNA form

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 19:00:00

A visitor is now found by its address lower-cased with the domain in IDNA ASCII form
(`sluice.addresses.email_key`), so that `anna@bücher.example` and
`anna@xn--bcher-kva.example` are one visitor. Rows keyed before by a Unicode domain get
the new key and the stored address its IDNA domain, or they could no longer be found.
Where the IDNA spelling is already another visitor's, the row is left as it was (two
visitors of one person cannot be merged here). The logic is written out here, not
imported, so that this migration keeps doing what it did when the code moves on.
"""

import idna
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BATCH = 10_000


def _ascii(email: str) -> str | None:
    """`email` with its domain lower-cased and in IDNA form; None if it has none."""
    local, _, domain = email.rpartition("@")
    if domain.isascii():
        return f"{local}@{domain.lower()}"
    try:
        return f"{local}@{idna.encode(domain, uts46=True).decode()}"
    except idna.IDNAError:
        return None


def upgrade() -> None:
    conn = op.get_bind()
    visitors = sa.table("visitors", sa.column("id"), sa.column("email"), sa.column("email_key"))
    after = 0
    while True:
        rows = conn.execute(
            sa.select(visitors.c.id, visitors.c.email, visitors.c.email_key)
            .where(visitors.c.id > after)
            .order_by(visitors.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        after = rows[-1].id
        for row in rows:
            if row.email_key.isascii():
                continue
            email, key = _ascii(row.email.strip()), _ascii(row.email_key)
            if email is None or key is None or key == row.email_key:
                continue
            key = key.lower()
            taken = conn.execute(
                sa.select(visitors.c.id).where(visitors.c.email_key == key)
            ).first()
            if taken is None:
                conn.execute(
                    visitors.update()
                    .where(visitors.c.id == row.id)
                    .values(email=email, email_key=key)
                )


def downgrade() -> None:
    """The IDNA keys stay: the code before this revision finds them when given the
    IDNA spelling."""
