"""A claimed job run's lease: renewed while its worker runs it, ended soon after the worker
dies (a killed worker's mailbox round blocked that mailbox for ten minutes: found by
tests/e2e/test_processes.py). ``RUN_LEASE`` is shortened here so the test takes a second."""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path

import pytest
from flask import Flask

from connector import jobs
from connector.jobs import claim_runs, dispatch, register_job, run_claimed
from connector.store.db import get_store
from tests.connector.conftest import make_app
from tests.databases import Template

LEASE = dt.timedelta(seconds=0.6)


@pytest.fixture
def app(tmp_path: Path, migrated_template: Template, monkeypatch: pytest.MonkeyPatch) -> Flask:
    monkeypatch.setattr(jobs, "RUN_LEASE", LEASE)
    return make_app(tmp_path / "runs.db", migrated_template)


def test_a_run_longer_than_its_lease_is_not_taken_by_another_worker(app: Flask) -> None:
    register_job(app, "slow", lambda app: time.sleep(LEASE.total_seconds() * 3), seconds=60)
    try:
        assert dispatch(app, "slow", run_key="slow@p1")
        [run] = claim_runs(app, "w1")
        running = threading.Thread(target=run_claimed, args=(app, run))
        running.start()
        taken: list[str] = []
        while running.is_alive():
            taken.extend(r.run_key for r in claim_runs(app, "w2"))
            time.sleep(0.1)
        running.join()
        assert taken == []
    finally:
        get_store(app).dispose()


def test_the_run_of_a_worker_that_died_is_taken_soon(app: Flask) -> None:
    register_job(app, "counted", lambda app: None, seconds=60)
    try:
        assert dispatch(app, "counted", run_key="counted@p1")
        assert len(claim_runs(app, "w1")) == 1  # and w1 dies: no renewal
        time.sleep(LEASE.total_seconds() * 1.5)
        [again] = claim_runs(app, "w2")
        assert run_claimed(app, again) is None
    finally:
        get_store(app).dispose()
