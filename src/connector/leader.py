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
import time
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


STUCK_AFTER = 60.0
"""A loop (the leader's, or its scheduler's thread) that has not turned for this long is stuck."""
FAILING_AFTER = 30.0
"""A scheduler whose turns have failed for this long (its store away, the disk full) is not
ready; shorter failures are retried quietly."""
BACKOFF_AT_MOST = 15.0
"""The leader loop waits interval, 2x, 4x ... after failing turns, at most this (well within
the minute in which ``/readyz`` wants a heartbeat)."""


class LeaderLoop:
    """A daemon thread: every ``interval`` seconds, try for the lead or keep it and beat.

    It survives any error (of its store, of the scheduler) and retries with backoff; while it
    leads it keeps a scheduler running (started again if its thread ended) and beats only
    while that scheduler turns. ``liveness`` says what ``/readyz`` reports of it."""

    def __init__(
        self,
        app: Flask,
        *,
        dispatch: bool,
        interval: float = 2.0,
        stuck_after: float = STUCK_AFTER,
        failing_after: float = FAILING_AFTER,
    ) -> None:
        self.app = app
        self.dispatch = dispatch
        self.interval = interval
        self.stuck_after = stuck_after
        self.failing_after = failing_after
        self.leadership = Leadership(get_store(app))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dealbridge-leader", daemon=True)
        self.scheduler: Any = None
        self.last_turn = time.monotonic()
        self.failures = 0
        self.failing_since: float | None = None
        self.last_error: str | None = None

    @property
    def leading(self) -> bool:
        return self.leadership.leading

    def start(self) -> LeaderLoop:
        self.app.extensions[EXTENSION] = self
        self._turn()  # the embedded leader starts its scheduler before serving
        self._thread.start()
        return self

    def step(self) -> None:
        """One turn: take, keep or lose the lead; keep the scheduler running; beat."""
        was = self.leadership.leading
        leading = self.leadership.still_held() if was else self.leadership.try_acquire()
        if leading and not was:
            metrics.set_leader(True)
            log.info(
                "leader elected: this process runs the scheduler",
                extra={"role": "leader", "holder": self.leadership.holder},
            )
        elif was and not leading:
            self._stop_scheduler()
            metrics.set_leader(False)
            log.warning("leader lost: the scheduler stopped here", extra={"role": "worker"})
        if not leading:
            return
        if self.scheduler is None or not self.scheduler.thread_alive:
            if self.scheduler is not None:
                log.error("the scheduler's thread ended: starting it again")
                self._stop_scheduler()
            self.scheduler = start_scheduler(self.app, force=True, dispatch=self.dispatch)
        if self._scheduler_problem() is None:
            self.leadership.beat()  # a leader is seen only while its scheduler works

    def _turn(self) -> None:
        try:
            self.step()
        except Exception as exc:  # the loop must live on; the next turn tries again
            self.failures += 1
            self.failing_since = self.failing_since or time.monotonic()
            self.last_error = f"{type(exc).__name__}: {exc}"[:500]
            log.warning("leader loop turn failed (%d in a row)", self.failures, exc_info=True)
        else:
            self.failures, self.failing_since, self.last_error = 0, None, None
        self.last_turn = time.monotonic()

    def _wait(self) -> float:
        return float(min(BACKOFF_AT_MOST, self.interval * 2 ** min(self.failures, 10)))

    def _run(self) -> None:
        while not self._stop.wait(self._wait()):
            self._turn()

    def _scheduler_problem(self) -> str | None:
        scheduler = self.scheduler
        if scheduler is None or not scheduler.thread_alive:
            return "the scheduler is not running although this process leads (starting it again)"
        liveness = scheduler.liveness
        now = time.monotonic()
        if now - liveness.last_turn > self.stuck_after:
            return f"the scheduler is stuck: its last turn was {now - liveness.last_turn:.0f} s ago"
        since = liveness.failing_since
        if since is not None and now - since >= self.failing_after:
            return (
                f"the scheduler's turns have failed for {now - since:.0f} s "
                f"({liveness.last_error}); retrying"
            )
        return None

    def liveness(self) -> str | None:
        """None while the loop (and, when it leads, its scheduler) works; else what is wrong."""
        if self._stop.is_set():
            return None  # stopping on purpose
        now = time.monotonic()
        if not self._thread.is_alive():
            return "the leader loop is not running (its thread ended): restart this process"
        if now - self.last_turn > max(self.stuck_after, BACKOFF_AT_MOST * 2):
            return f"the leader loop is stuck: its last turn was {now - self.last_turn:.0f} s ago"
        since = self.failing_since
        if since is not None and now - since >= self.failing_after:
            return (
                f"the leader loop's turns have failed for {now - since:.0f} s "
                f"({self.failures} in a row: {self.last_error}); retrying"
            )
        return self._scheduler_problem() if self.leading else None

    def _stop_scheduler(self, *, wait: bool = False) -> None:
        """Stop the scheduler; ``wait``: until the jobs it runs have ended (a job still
        running after the store is disposed gave its connection back to a pool nobody
        closes, and psycopg warned about it at a random later moment)."""
        if self.scheduler is not None:
            try:
                self.scheduler.shutdown(wait=wait)
            except Exception:  # already stopped, or its thread ended
                log.debug("scheduler shutdown failed", exc_info=True)
            self.scheduler = None
        self.app.extensions.pop(SCHEDULER_EXTENSION, None)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.interval + 5)
        self._stop_scheduler(wait=True)  # the process ends, or its store is disposed next
        if self.leadership.leading:
            metrics.set_leader(False)
        self.leadership.release()
