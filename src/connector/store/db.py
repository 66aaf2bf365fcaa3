"""Engine, sessions and migrations of the deal store."""

from __future__ import annotations

import logging
import sqlite3
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

import pydantic_core
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask, current_app, g
from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    Table,
    create_engine,
    event,
    func,
    insert,
    inspect,
    make_url,
    select,
    text,
)
from sqlalchemy.orm import Session, sessionmaker

from connector.store import locks

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"
EXTENSION = "dealbridge.store"
MIGRATION_WAIT = 600.0  # seconds an upgrade waits for another process's
SQLITE_BUSY_TIMEOUT = 30.0  # seconds a SQLite statement waits for another connection's lock


class MigrationBusy(RuntimeError):
    """Another process's upgrade did not end in time."""


class NewerDatabase(RuntimeError):
    """The database is at a revision this code does not know: a newer DealBridge migrated it."""


def json_text(value: Any) -> str:
    """What a JSON column stores: compact JSON text, written by pydantic's serializer. A first
    round writes about six values a meeting (its details, webhook and card payloads, their
    results): 18-29 us a meeting with ``json.dumps``, 6-9 us with this. Read back with
    ``pydantic_core.from_json``. Non-ASCII text is kept as UTF-8, not escaped; a value with
    no JSON form is refused (pydantic writes times, sets and bytes, which ``json.dumps``
    refused: what the store is given comes from models dumped in JSON mode)."""
    return pydantic_core.to_json(value, serialize_unknown=False).decode()


class Store:
    """One database: its engine, a session factory and its migrations."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        kwargs: dict[str, Any] = {
            "echo": echo,
            "json_serializer": json_text,
            "json_deserializer": pydantic_core.from_json,
        }
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {
                "check_same_thread": False,
                "timeout": SQLITE_BUSY_TIMEOUT,
            }
        else:
            # A server restart (or a proxy's idle timeout) leaves dead connections in the pool:
            # check each one as it is taken, so no request fails because of it.
            kwargs["pool_pre_ping"] = True
        self.engine: Engine = create_engine(url, **kwargs)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.sessions, "before_flush", _number_new_rows)
        # A Store nobody disposed (a CLI command's app) still closes its pooled connections
        # when it goes: PostgreSQL would otherwise keep them until the process ends.
        weakref.finalize(self, self.engine.dispose)

    @property
    def display_url(self) -> str:
        """The URL to show an admin: which database, the password masked."""
        return make_url(self.url).render_as_string(hide_password=True)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error."""
        with self.sessions() as session, session.begin():
            yield session

    def alembic_config(self) -> Config:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["engine"] = self.engine
        return config

    def upgrade(self) -> None:
        """Apply every migration not yet applied (hold :meth:`migrating` around it)."""
        command.upgrade(self.alembic_config(), "head")

    @contextmanager
    def migrating(self, waiting: Callable[[], None] | None = None) -> Iterator[None]:
        """One upgrade at a time, whatever process runs it (``store.locks``: an advisory lock
        on PostgreSQL, a lock file beside a SQLite database). Another process's upgrade is
        waited for (``waiting`` is called once; by default a log line says so), for at most
        :data:`MIGRATION_WAIT`; then this one finds nothing left to do."""

        def said() -> None:
            log.warning("another process is upgrading the database; waiting for it to finish")

        with locks.hold(
            self, "migrations", "schema", wait=MIGRATION_WAIT, waiting=waiting or said
        ) as held:
            if not held:
                raise MigrationBusy(
                    f"another process has been upgrading {self.display_url} for more than "
                    f"{MIGRATION_WAIT:.0f} s; is it stuck?"
                )
            yield

    def refuse_newer(self) -> None:
        """Raise NewerDatabase when a newer DealBridge migrated this database: serving or
        writing it with older code would break what the newer one relies on."""
        revision = self.unknown_revision()
        if revision is not None:
            raise NewerDatabase(
                f"the database {self.display_url} is at revision {revision}, which this "
                f"DealBridge does not know (its newest is {self.head_revision()}): a newer "
                "version migrated it; run that version, or restore a backup taken before"
            )

    def unknown_revision(self) -> str | None:
        """The database's revision when this code does not know it (a newer DealBridge
        migrated it), else None."""
        current = self.current_revision()
        if current is None:
            return None
        script = ScriptDirectory.from_config(self.alembic_config())
        known = {revision.revision for revision in script.walk_revisions()}
        return None if current in known else current

    def current_revision(self) -> str | None:
        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def head_revision(self) -> str | None:
        return ScriptDirectory.from_config(self.alembic_config()).get_current_head()

    def is_current(self) -> bool:
        return self.current_revision() == self.head_revision()

    def ping(self) -> bool:
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception:  # any driver error means "not reachable"; healthz reports it
            log.exception("database ping failed")
            return False
        return True

    def dispose(self) -> None:
        self.engine.dispose()


def write_lock(session: Session) -> None:
    """Take the database's write lock for the session's transaction now, before it reads what
    it will write: SQLite's ``BEGIN IMMEDIATE`` (its transactions otherwise start at the first
    write, after the reads, and a concurrent writer's update is lost). On PostgreSQL this is a
    no-op: lock the rows themselves with ``SELECT ... FOR UPDATE`` (``with_for_update()``)."""
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        return
    raw = connection.connection.dbapi_connection
    if raw is not None and not raw.in_transaction:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


T = TypeVar("T")


def chunks(values: Sequence[T], size: int = 500) -> Iterator[Sequence[T]]:
    """``values`` in slices of ``size``: for ``IN (…)`` lists and multi-row inserts (SQLite's
    bound-parameter limit is far above 500 of either)."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def insert_rows(session: Session, model: type[Any], rows: Sequence[dict[str, Any]]) -> None:
    """New rows of ``model`` in the session's transaction with Core, 500 a statement: no ORM
    object, no unit of work (1,000 new deals of a bulk call were 10,750 objects). Columns the
    rows leave out get their defaults; give the same ones in every row, or each row computes
    them. :func:`insert_numbered` when their ids are needed."""
    statement, connection = insert(cast(Table, model.__table__)), session.connection()
    for part in chunks(rows):
        connection.execute(statement, list(part))


def insert_numbered(
    session: Session, model: type[Any], rows: Sequence[dict[str, Any]]
) -> list[int]:
    """:func:`insert_rows` of rows that need their new ids back: the ids, in the rows' order.
    On SQLite the rows are numbered first, as SQLite would number them (its largest id plus
    one, or for an AUTOINCREMENT table the largest it ever gave: :func:`_top_id`; under the
    write lock) and written with a plain
    ``executemany``: ``INSERT ... RETURNING`` there goes row group by row group and cannot
    say which id went to which row. PostgreSQL returns them in order."""
    if not rows:
        return []
    column = cast(Table, model.__table__).primary_key.columns.values()[0]
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        write_lock(session)
        top = _top_id(connection, column)
        ids = list(range(top + 1, top + 1 + len(rows)))
        insert_rows(
            session, model, [row | {column.key: i} for row, i in zip(rows, ids, strict=True)]
        )
        return ids
    statement = insert(cast(Table, model.__table__)).returning(column, sort_by_parameter_order=True)
    return [i for part in chunks(rows) for i in connection.execute(statement, list(part)).scalars()]


def _top_id(connection: Connection, column: Any) -> int:
    """The largest id SQLite has given in the column's table: its largest row's, or, for a
    table that never gives an id twice (``sqlite_autoincrement``), the largest it ever gave,
    as SQLite keeps it in ``sqlite_sequence`` (raised by any insert, explicit ids too), so rows
    numbered here do not take a deleted row's id either."""
    table = column.table
    if table.dialect_options["sqlite"].get("autoincrement"):
        query = text("SELECT seq FROM sqlite_sequence WHERE name = :name")
        return int(connection.execute(query, {"name": table.name}).scalar() or 0)
    return int(connection.execute(select(func.max(column))).scalar() or 0)


def _number_new_rows(session: Session, _context: Any, _instances: Any) -> None:
    """Give the new rows of a flush their ids before it, as SQLite would (its next rowid
    is the largest plus one), under the write lock: SQLite cannot say which id it gave which
    row of a multi-row ``INSERT ... RETURNING``, so without ids the ORM inserts new rows one
    statement each (1,000 deals took 10,750 statements); with them, one per table and batch.
    PostgreSQL needs none of this: its ids come back in order."""
    new: dict[Any, list[Any]] = {}
    for instance in session.new:
        mapper = inspect(instance).mapper
        keys = mapper.primary_key
        if (
            len(keys) == 1
            and isinstance(keys[0].type, Integer)
            and getattr(instance, keys[0].key) is None
        ):
            new.setdefault(mapper, []).append(instance)
    batches = {mapper: rows for mapper, rows in new.items() if len(rows) > 1}
    if not batches:
        return
    write_lock(session)
    connection = session.connection()
    for mapper, rows in batches.items():
        column = mapper.primary_key[0]
        top = _top_id(connection, column)
        for number, instance in enumerate(rows, start=top + 1):
            setattr(instance, column.key, number)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the scheduler write while the API reads; FKs are off by default in SQLite.
    _switch_to_wal(cursor)
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _switch_to_wal(cursor: sqlite3.Cursor) -> None:
    """``PRAGMA journal_mode=WAL``, waiting as long as any statement would (the connection's
    busy timeout). SQLite refuses the switch at once, without its busy handler, when two
    connections escalate their locks together: processes opening a fresh database at once
    (two upgrades, two workers starting) failed about one try in five. Once the file is in
    WAL mode (it stays so) the switch is a no-op that takes no lock."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT
    pause = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


def init_app(app: Flask, store: Store) -> None:
    app.extensions[EXTENSION] = store

    @app.teardown_appcontext
    def _close_session(_exc: BaseException | None) -> None:
        session: Session | None = g.pop("db_session", None)
        if session is not None:
            session.close()


def get_store(app: Flask | None = None) -> Store:
    store: Store = (app or current_app).extensions[EXTENSION]
    return store


def db_session() -> Session:
    """The request's session (closed at teardown)."""
    if "db_session" not in g:
        g.db_session = get_store().sessions()
    session: Session = g.db_session
    return session
