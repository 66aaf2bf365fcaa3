"""One scheduler leader among all the processes, elected through the database.

PostgreSQL: the leader holds ``pg_try_advisory_lock(LOCK_KEY)`` on a connection of its own,
kept out of the pool's hands for as long as it leads. A leader that dies (even by SIGKILL)
loses its connection, PostgreSQL drops the lock with it, and the next candidate's attempt
(every ``interval`` seconds) takes it: takeover within about one interval. SQLite: one
process owns the database file, so it is the leader.

The leader writes a heartbeat row (``scheduler_leader``) every interval; ``/readyz`` and
``/metrics`` read it ("a leader seen within the last minute"). Leading means running
APScheduler (``jobs.start_scheduler``); losing the lead stops it at once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any

from flask import Flask
from sqlalchemy import Connection, select, text

from connector import metrics
from connector.jobs import SCHEDULER_EXTENSION, start_scheduler
from connector.store.db import Store, get_store
from connector.store.models import SchedulerLeader, utcnow

log = logging.getLogger(__name__)
LOCK_KEY = 0x6465616C62726467  # "dealbrdg": the one advisory lock of the scheduler
LEADER_NAME = "scheduler"
EXTENSION = "dealbridge.leader"


def holder_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Leadership:
    """Try for the lead, keep it, give it up; writes the heartbeat while it leads."""

    def __init__(self, store: Store, holder: str | None = None) -> None:
        self.store = store
        self.holder = holder or holder_name()
        self.shared = store.engine.dialect.name == "postgresql"
        self._connection: Connection | None = None
        self.leading = False

    def try_acquire(self) -> bool:
        """True when this process leads (now or already)."""
        if self.leading:
            return True
        if not self.shared:
            self.leading = True
            return True
        try:
            if self._connection is None:
                self._connection = self.store.engine.connect().execution_options(
                    isolation_level="AUTOCOMMIT"
                )
            got = self._connection.scalar(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": LOCK_KEY}
            )
        except Exception:  # the database is away: not the leader; try again next interval
            log.warning("leader election: the database cannot be reached", exc_info=True)
            self._drop()
            return False
        self.leading = bool(got)
        return self.leading

    def still_held(self) -> bool:
        """False once the lock's connection is gone (the database restarted, the network)."""
        if not self.leading:
            return False
        if self._connection is None:
            return True
        try:
            held = self._connection.scalar(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND pid = pg_backend_pid() AND objid = :low"
                ),
                {"low": LOCK_KEY & 0xFFFFFFFF},
            )
        except Exception:
            log.warning("leader: the lock's connection is lost", exc_info=True)
            held = 0
        if not held:
            self.leading = False
            self._drop()
        return self.leading

    def beat(self) -> None:
        """Write the heartbeat: this holder leads, seen now."""
        now = utcnow()
        with self.store.session() as session:
            row = session.get(SchedulerLeader, LEADER_NAME)
            if row is None:
                session.add(
                    SchedulerLeader(name=LEADER_NAME, holder=self.holder, since=now, seen_at=now)
                )
            else:
                if row.holder != self.holder:
                    row.holder, row.since = self.holder, now
                row.seen_at = now

    def release(self) -> None:
        if self._connection is not None and self.leading:
            try:
                self._connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_KEY})
            except Exception:
                log.warning("leader: could not unlock (the connection is gone)", exc_info=True)
        self.leading = False
        self._drop()

    def _drop(self) -> None:
        if self._connection is not None:
            try:
                self._connection.invalidate()  # never back to the pool with a lock on it
                self._connection.close()
            except Exception:
                log.debug("leader: closing the lock's connection failed", exc_info=True)
            self._connection = None


def last_seen(store: Store) -> SchedulerLeader | None:
    """The heartbeat row, if any leader ever wrote one."""
    with store.sessions() as session:
        return session.scalar(select(SchedulerLeader).where(SchedulerLeader.name == LEADER_NAME))


class LeaderLoop:
    """A daemon thread: every ``interval`` seconds, try for the lead or keep it and beat."""

    def __init__(self, app: Flask, *, dispatch: bool, interval: float = 2.0) -> None:
        self.app = app
        self.dispatch = dispatch
        self.interval = interval
        self.leadership = Leadership(get_store(app))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dealbridge-leader", daemon=True)
        self.scheduler: Any = None

    @property
    def leading(self) -> bool:
        return self.leadership.leading

    def start(self) -> LeaderLoop:
        self.app.extensions[EXTENSION] = self
        self.step()  # the embedded leader starts its scheduler before serving
        self._thread.start()
        return self

    def step(self) -> None:
        """One turn: take, keep or lose the lead; beat while leading."""
        was = self.leadership.leading
        leading = self.leadership.still_held() if was else self.leadership.try_acquire()
        if leading and not was:
            self.scheduler = start_scheduler(self.app, force=True, dispatch=self.dispatch)
            metrics.set_leader(True)
            log.info(
                "leader elected: this process runs the scheduler",
                extra={"role": "leader", "holder": self.leadership.holder},
            )
        elif was and not leading:
            self._stop_scheduler()
            metrics.set_leader(False)
            log.warning("leader lost: the scheduler stopped here", extra={"role": "worker"})
        if leading:
            try:
                self.leadership.beat()
            except Exception:  # the next turn finds out whether the lead is still ours
                log.warning("leader heartbeat failed", exc_info=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.step()
            except Exception:  # the loop must live on; the next turn tries again
                log.exception("leader loop turn failed")

    def _stop_scheduler(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
            self.scheduler = None
        self.app.extensions.pop(SCHEDULER_EXTENSION, None)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.interval + 5)
        self._stop_scheduler()
        if self.leadership.leading:
            metrics.set_leader(False)
        self.leadership.release()
