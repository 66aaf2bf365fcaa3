"""A PostgreSQL worker listens for new work on a connection of its own, and closes it when it
stops (found at merge: the connection was taken after detaching it, so every idle period
opened a connection that was never closed, and the worker only ever polled)."""

from __future__ import annotations

import time

import pytest

from connector.store.db import get_store
from connector.worker import Worker, _listen
from tests.connector.conftest import Tenant


def _postgresql(t: Tenant) -> None:
    if get_store(t.app).engine.dialect.name != "postgresql":
        pytest.skip("LISTEN/NOTIFY wake-ups are PostgreSQL's; SQLite workers poll")


def test_the_worker_listens_on_a_connection_of_its_own(m365: Tenant) -> None:
    _postgresql(m365)
    connection = _listen(m365.app)
    assert connection is not None
    try:
        assert not connection.closed
        assert get_store(m365.app).engine.pool.checkedout() == 0  # not the pool's any more
    finally:
        connection.close()


def test_a_stopped_worker_closes_its_wake_up_connection(m365: Tenant) -> None:
    _postgresql(m365)
    worker = Worker(m365.app, idle=0.1)
    worker.start_thread()
    deadline = time.monotonic() + 10
    while worker._listener is None and time.monotonic() < deadline:
        time.sleep(0.05)
    listener = worker._listener
    assert listener is not None  # it listens (before the fix: None, every idle period)
    worker.stop()
    assert listener.closed
    assert worker._listener is None
