"""Alembic's entry point: migrate the connection ``voxline.store.database`` hands over,
inside the transaction it holds."""

from alembic import context

from voxline.store.schema import metadata

context.configure(connection=context.config.attributes["connection"], target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
