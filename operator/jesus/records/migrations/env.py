"""Alembic's environment: always handed an open connection by `jesus.records.migrate`."""

from __future__ import annotations

from alembic import context

from jesus.records.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run the archive's migrations with `jesus archive migrate`, not the alembic command")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
