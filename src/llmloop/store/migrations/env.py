"""Alembic environment: runs on the connection ``Database.migrate`` hands over, or on the URL."""

from alembic import context
from sqlalchemy import create_engine

from llmloop.store.tables import metadata

config = context.config


def _run(connection) -> None:  # noqa: ANN001
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    with create_engine(config.get_main_option("sqlalchemy.url")).begin() as conn:
        _run(conn)
