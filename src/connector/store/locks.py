"""Named locks across processes: one holder at a time of (kind, name), whatever process it is.

PostgreSQL: a session advisory lock, ``pg_try_advisory_lock(kind, hashtext(name))``, held on
a connection of its own for as long as the lock is held. A holder that dies (even by SIGKILL)
loses its connection, and PostgreSQL drops the lock with it. Two names may share a hash: then
they wait for each other, which is safe (never two holders of one name).

SQLite: ``flock`` on a file beside the database (``<database>.locks/<kind>-<hash>``), dropped
by the kernel when its holder's descriptor closes or its process dies. An in-memory database
has one process: the caller's own thread lock is all there is.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

from sqlalchemy import Engine, text

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: SQLite there is one process anyway
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

KINDS = {"mailbox_round": 0x64620001, "migrations": 0x64620002, "job_schedule": 0x64620003}
"""Each kind's first advisory-lock key (int4), so kinds never meet each other."""
POLL = 0.1  # seconds between tries while waiting


class Store(Protocol):
    """What a lock needs of ``store.db.Store`` (which imports this module)."""

    @property
    def engine(self) -> Engine: ...


class LockUnavailable(Exception):
    """The lock could not even be tried: the database (or the lock folder) is out of reach."""


@contextlib.contextmanager
def hold(
    store: Store,
    kind: str,
    name: str,
    *,
    wait: float = 0.0,
    waiting: Callable[[], None] | None = None,
) -> Iterator[bool]:
    """Hold the lock of ``(kind, name)`` for the block; yields False when another holder kept
    it for ``wait`` seconds (0: one try). ``waiting`` is called once, when the first try finds
    it held. Raises LockUnavailable when it cannot be tried at all."""
    take = _postgres if store.engine.dialect.name == "postgresql" else _sqlite_file
    with take(store, KINDS[kind], name, wait, waiting) as held:
        yield held


def _tries(wait: float, waiting: Callable[[], None] | None) -> Iterator[None]:
    """Yield before each try until ``wait`` has passed (the first at once)."""
    deadline = time.monotonic() + wait
    yield
    if waiting is not None:
        waiting()
    while time.monotonic() < deadline:
        time.sleep(min(POLL, max(0.0, deadline - time.monotonic())))
        yield


@contextlib.contextmanager
def _postgres(
    store: Store, kind: int, name: str, wait: float, waiting: Callable[[], None] | None
) -> Iterator[bool]:
    try:
        connection = store.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    except Exception as exc:
        raise LockUnavailable(f"the database cannot be reached: {exc}") from exc
    held = False
    try:
        for _ in _tries(wait, waiting):
            held = bool(
                connection.scalar(
                    text("SELECT pg_try_advisory_lock(:kind, hashtext(:name))"),
                    {"kind": kind, "name": name},
                )
            )
            if held:
                break
        yield held
    finally:
        if held:
            try:
                connection.execute(
                    text("SELECT pg_advisory_unlock(:kind, hashtext(:name))"),
                    {"kind": kind, "name": name},
                )
            except Exception:  # gone with its connection; never back to the pool with it
                log.warning("lock %s of %s: unlock failed", kind, name, exc_info=True)
                connection.invalidate()
        connection.close()


def lock_folder(store: Store) -> Path | None:
    """Where a SQLite database's lock files go (None for an in-memory database)."""
    database = store.engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).resolve().parent / f"{Path(database).name}.locks"


@contextlib.contextmanager
def _sqlite_file(
    store: Store, kind: int, name: str, wait: float, waiting: Callable[[], None] | None
) -> Iterator[bool]:
    folder = lock_folder(store)
    if folder is None or fcntl is None:
        yield True
        return
    digest = hashlib.sha256(name.encode()).hexdigest()[:24]
    try:
        folder.mkdir(exist_ok=True)
        descriptor = os.open(folder / f"{kind:x}-{digest}", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise LockUnavailable(f"{folder}: {exc.strerror}") from exc
    held = False
    try:
        for _ in _tries(wait, waiting):
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held = True
                break
            except BlockingIOError:
                continue
        yield held
    finally:
        os.close(descriptor)  # drops the flock with it
