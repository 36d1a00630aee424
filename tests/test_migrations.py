"""Applying every migration gives exactly the schema the code declares."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from sluice.store.db import Database
from sluice.store.schema import metadata


def test_migrations_produce_the_declared_schema(database_url):
    db = Database(database_url)
    db.upgrade()  # a second upgrade is a no-op
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn)
        differences = compare_metadata(context, metadata)
    db.dispose()
    assert differences == []
