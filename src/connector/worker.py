"""A worker: drain the outbox and run the job runs the leader found due, until stopped.

Any number of workers share one PostgreSQL database; each claims its own rows (the outbox's
claim and ``jobs.claim_runs``), so they never do the same work twice and never wait on each
other. ``dealbridge worker`` runs one in the foreground, beside a leader candidate.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

from flask import Flask

from connector.jobs import WAKE_CHANNEL, claim_runs, run_claimed
from connector.leader import holder_name
from connector.outbox import drain
from connector.store.db import get_store

log = logging.getLogger(__name__)


class Worker:
    """Turns of: the due job runs, then the outbox; sleeps ``idle`` seconds when idle."""

    def __init__(self, app: Flask, *, idle: float = 1.0) -> None:
        self.app = app
        self.idle = idle
        self.holder = holder_name()
        self.stopping = threading.Event()
        self.shared = get_store(app).engine.dialect.name == "postgresql"
        self._listener: Any = None
        self._thread: threading.Thread | None = None

    def turn(self) -> int:
        """One turn; how much work it did (job runs and outbox items)."""
        done = 0
        for run in claim_runs(self.app, self.holder):
            run_claimed(self.app, run)
            done += 1
        with self.app.app_context():
            done += drain(self.app).claimed
        return done

    def run_forever(self) -> None:
        try:
            while not self.stopping.is_set():
                try:
                    busy = self.turn()
                except Exception:  # the database is away or a bug: log, wait, go on
                    log.exception("worker turn failed")
                    busy = 0
                if not busy:
                    self._rest()
        finally:  # the wake-up connection is the worker's own: it goes with the worker
            if self._listener is not None:
                with contextlib.suppress(Exception):
                    self._listener.close()
                self._listener = None

    def _rest(self) -> None:
        """Wait ``idle`` seconds, or (PostgreSQL) until a run is made due now
        (``jobs.schedule`` notifies :data:`WAKE_CHANNEL`): a notified round starts at once."""
        if self._listener is None and self.shared:
            self._listener = _listen(self.app)
        if self._listener is None:
            self.stopping.wait(self.idle)
            return
        try:
            for _ in self._listener.notifies(timeout=self.idle, stop_after=1):
                pass
        except Exception:  # the database went away: plain waits until it is back
            log.warning("worker: lost the wake-up connection", exc_info=True)
            with contextlib.suppress(Exception):
                self._listener.close()
            self._listener = None
            self.stopping.wait(self.idle)

    def start_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.run_forever, name="dealbridge-worker", daemon=True)
        thread.start()
        self._thread = thread
        return thread

    def stop(self, *, wait: float = 30.0) -> None:
        """Stop after the turn in progress (waiting for it at most ``wait`` seconds, so that
        it has given its connections back before the store is disposed)."""
        self.stopping.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=wait)


def _listen(app: Flask) -> Any:
    """A connection of its own that listens on :data:`WAKE_CHANNEL` (None if it cannot)."""
    connection: Any = None
    try:
        pooled = get_store(app).engine.raw_connection()
        # Take the driver's connection before detaching: a detached proxy no longer holds it.
        connection = pooled.driver_connection
        pooled.detach()  # its own for as long as the worker lives, never back to the pool
        assert connection is not None
        connection.autocommit = True
        connection.execute(f"LISTEN {WAKE_CHANNEL}")
    except Exception:
        log.warning("worker: cannot listen for new work; looking every idle period", exc_info=True)
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()
        return None
    return connection
