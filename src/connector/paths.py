"""The folders and files the process writes, checked before anything is written to them.

A read-only filesystem (or a folder of another user, or a path under a file) used to surface
as a traceback from ``mkdir``, SQLite or prometheus-client, whichever wrote first. Each check
here creates what is missing, proves it can write there, and otherwise raises
:class:`StartupProblem`: one line naming the setting and the path. The ``dealbridge`` command
prints it as ``Error: ...`` and exits with 2. Only the standard library at run time: the
command imports this module before anything else.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"


class StartupProblem(Exception):
    """The process cannot start as configured: one line naming what and where."""


def _unwritable(setting: str, path: Path, exc: OSError, kind: str = "folder") -> StartupProblem:
    reason = exc.strerror or type(exc).__name__
    return StartupProblem(
        f"{setting}: cannot write to {path} ({reason}); make it a {kind} this user can write "
        "(not on a read-only filesystem) or point the setting elsewhere"
    )


def writable_folder(path: Path, setting: str) -> None:
    """Create ``path`` if missing and prove a file can be written in it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".dealbridge-write-check-"):
            pass
    except OSError as exc:
        raise _unwritable(setting, path, exc) from exc


def sqlite_file(url: URL) -> Path | None:
    """The file of a SQLite URL (None for another database, memory or a ``file:`` URI)."""
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    return None if database.startswith("file:") else Path(database)


def writable_sqlite(url: URL, setting: str) -> None:
    """A SQLite database must be writable, and so must its folder (its journal goes there).

    A folder that does not exist is not refused here: the database is then out of reach,
    which ``/readyz`` reports (and a command opening the store says)."""
    path = sqlite_file(url)
    if path is None or not path.parent.is_dir():
        return
    try:
        if path.exists():
            with path.open("r+b"):
                pass
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".dealbridge-write-check-"):
            pass
    except OSError as exc:
        raise _unwritable(setting, path, exc, "database file in a folder") from exc


def writable_multiproc_dir() -> None:
    """``PROMETHEUS_MULTIPROC_DIR``, when set: every metric of the process writes a file there."""
    folder = os.environ.get(MULTIPROC_DIR)
    if folder:
        writable_folder(Path(folder), MULTIPROC_DIR)
