"""Alembic environment: the engine comes from the Store (config.attributes["engine"])."""

from alembic import context
from sqlalchemy import Engine

from connector.store.models import Base

config = context.config
engine: Engine = config.attributes["engine"]

with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # Batch mode rebuilds a table by dropping it: with foreign keys on, SQLite would delete
        # its children's rows too (ON DELETE CASCADE). The pragma works only outside a
        # transaction: here, before any migration wrote.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=sqlite,
        compare_type=True,
    )
    try:
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
    finally:
        if sqlite:
            connection.rollback()  # nothing left open: the pragma is ignored in a transaction
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
