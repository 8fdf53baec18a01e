"""Alembic environment: runs on the connection ``engine.migrate`` hands over (no alembic.ini)."""

from alembic import context
from sqlalchemy import Connection

from callqual.store.schema import metadata

connection: Connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
