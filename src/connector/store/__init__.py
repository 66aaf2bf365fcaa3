"""The deal store: SQLAlchemy 2 models, Alembic migrations, sessions."""

from connector.store.db import Store, get_store, init_app

__all__ = ["Store", "get_store", "init_app"]
