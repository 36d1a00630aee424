"""Alembic environment: migrations run on the connection the Database hands in."""

from alembic import context

from sluice.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
context.run_migrations()
