"""Serving: waitress in front of the app; the jobs beside it (embedded) or in workers.

Embedded (SQLite) ``serve`` is web, scheduler and worker in one process, as it always was: the
one process leads and APScheduler runs each job itself. On a shared database (PostgreSQL),
``serve`` with the jobs on is a web process that is also a worker and a leader candidate;
with ``DEALBRIDGE_SCHEDULER_ENABLED=false`` it only serves, and ``dealbridge worker``
processes do the rest.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Flask

from connector import metrics
from connector.leader import LeaderLoop
from connector.logs import start_line
from connector.settings import SETTINGS_EXTENSION, Settings
from connector.store.db import get_store
from connector.worker import Worker

log = logging.getLogger(__name__)


@dataclass
class Background:
    """What runs beside the web app in this process."""

    leader: LeaderLoop | None = None
    worker: Worker | None = None

    @property
    def role(self) -> str:
        if self.leader is None:
            return "web"
        return "web+worker" if self.worker is not None else "leader"

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        if self.leader is not None:
            self.leader.stop()
        metrics.process_exit()

    def shutdown(self, wait: bool = False) -> None:
        """As APScheduler's: the demo stops what it started the same way."""
        self.stop()


def shared_database(app: Flask) -> bool:
    """True when other processes may share the database (anything but SQLite)."""
    return get_store(app).engine.dialect.name != "sqlite"


def start_background(app: Flask) -> Background:
    """The leader candidate and, on a shared database, a worker thread (if jobs are on);
    the process's start line says which."""
    settings: Settings = app.extensions[SETTINGS_EXTENSION]
    background = Background()
    if settings.scheduler_enabled:
        shared = shared_database(app)
        background.leader = LeaderLoop(app, dispatch=shared)
        if shared:
            background.worker = Worker(app)
    start_line(log, settings, background.role)  # type: ignore[arg-type]
    if background.leader is not None:
        background.leader.start()
    if background.worker is not None:
        background.worker.start_thread()
    return background


def serve_app(app: Flask, *, host: str, port: int, threads: int = 8) -> None:
    """Serve until interrupted; the jobs stop cleanly on the way out."""
    from waitress import serve

    background = start_background(app)
    log.info(
        "serving on http://%s:%d",
        host,
        port,
        extra={"host": host, "port": port, "threads": threads, "role": background.role},
    )
    try:
        serve(app, host=host, port=port, threads=threads, ident="dealbridge")
    finally:
        background.stop()
