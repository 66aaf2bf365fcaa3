"""One scheduler leader among all processes; a dead leader is replaced; a period runs once.

PostgreSQL: the suite's throwaway cluster (``pytest --database=postgresql``), a fresh copy of
the migrated template per test.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from connector.app import create_app
from connector.jobs import (
    _APPS,
    DISPATCH_EXTENSION,
    claim_runs,
    dispatch,
    register_fan_out,
    register_job,
    register_task,
    run_claimed,
    run_in_app,
)
from connector.leader import LEADER_NAME, LeaderLoop, Leadership, last_seen
from connector.store.db import Store, get_store
from connector.store.models import JobRun, SchedulerLeader
from tests.connector.conftest import _free_port, make_app
from tests.databases import Template


@pytest.fixture
def postgres_url(tmp_path: Path, migrated_template: Template) -> str:
    """A migrated database of the suite's throwaway cluster (tests/databases.py)."""
    if migrated_template.dialect != "postgresql":
        pytest.skip("needs --database=postgresql (the suite's PostgreSQL cluster)")
    return migrated_template.fresh(tmp_path / "unused.db")


def _pg_app(url: str, **overrides: Any) -> Any:
    return create_app(
        {
            "TESTING": True,
            "database_url": url,
            "auto_migrate": False,
            "scheduler_enabled": False,
            **overrides,
        }
    )


def _wait_for(predicate: Any, seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.1)
    return None


# ---- SQLite: the one process leads ----------------------------------------------------------


def test_on_sqlite_the_one_process_leads_and_beats(tmp_path: Path, migrated_template: Path) -> None:
    app = make_app(tmp_path / "one.db", migrated_template)
    loop = LeaderLoop(app, dispatch=False, interval=0.2).start()
    try:
        assert loop.leading
        assert loop.scheduler is not None
        assert loop.scheduler.running
        seen = last_seen(get_store(app))
        assert seen is not None
        assert seen.holder == loop.leadership.holder
    finally:
        loop.stop()
        get_store(app).dispose()
    assert app.extensions.get("dealbridge.scheduler") is None


def test_on_sqlite_a_dispatched_run_is_claimed_once_and_recorded(
    tmp_path: Path, migrated_template: Path
) -> None:
    app = make_app(tmp_path / "runs.db", migrated_template)
    ran: list[str] = []
    register_job(app, "counted", lambda app: ran.append("job"), seconds=60)
    try:
        assert dispatch(app, "counted", run_key="counted@p1")
        assert not dispatch(app, "counted", run_key="counted@p1")
        first = claim_runs(app, "w1")
        assert [r.run_key for r in first] == ["counted@p1"]
        assert claim_runs(app, "w2") == []  # taken, and its lease has not ended
        assert run_claimed(app, first[0]) is None
        assert ran == ["job"]
        with get_store(app).session() as session:
            row = session.scalar(select(JobRun).where(JobRun.run_key == "counted@p1"))
            assert row is not None
            assert (row.status, row.holder, row.attempts) == ("done", "w1", 1)
    finally:
        get_store(app).dispose()


def test_a_fanned_out_job_is_one_run_per_key_and_one_at_a_time_per_key(
    tmp_path: Path, migrated_template: Path
) -> None:
    """Many processes: the leader turns the periodic job into one round per due mailbox; a
    mailbox whose round is still running gets none until it ends."""
    app = make_app(tmp_path / "fan.db", migrated_template)
    rounds: list[str] = []
    register_task(app, "round", lambda app, key: rounds.append(key))
    register_job(app, "sweep", lambda app: pytest.fail("fanned out: never run whole"), seconds=1)
    register_fan_out(app, "sweep", lambda app: ["ann", "raj"], "round")
    app.extensions[DISPATCH_EXTENSION] = True
    _APPS[app.name] = app
    try:

        def runs() -> list[tuple[str | None, str]]:
            with get_store(app).session() as session:
                return [
                    (r.arg, r.status) for r in session.scalars(select(JobRun).order_by(JobRun.id))
                ]

        run_in_app(app.name, "sweep")
        assert runs() == [("ann", "due"), ("raj", "due")]
        claimed = claim_runs(app, "w1")
        ann = next(r for r in claimed if r.arg == "ann")
        run_claimed(app, ann)  # raj's round is still running
        time.sleep(1.1)  # the next period
        run_in_app(app.name, "sweep")
        assert runs() == [("ann", "done"), ("raj", "running"), ("ann", "due")]
        assert rounds == ["ann"]
    finally:
        _APPS.pop(app.name, None)
        get_store(app).dispose()


# ---- PostgreSQL: the advisory lock -----------------------------------------------------------


def test_one_leader_at_a_time_on_postgresql(postgres_url: str) -> None:
    first, second = Store(postgres_url), Store(postgres_url)
    one, other = Leadership(first, "one"), Leadership(second, "other")
    try:
        assert one.try_acquire()
        assert not other.try_acquire()
        assert one.still_held()
        assert not other.still_held()
        one.release()
        assert other.try_acquire()
        assert not one.try_acquire()
    finally:
        one.release()
        other.release()
        first.dispose()
        second.dispose()


def test_a_period_is_dispatched_once_and_each_run_claimed_once(postgres_url: str) -> None:
    app = _pg_app(postgres_url)
    runs: list[str] = []
    lock = threading.Lock()

    def count(app: Any) -> None:
        with lock:
            runs.append("counted")

    register_job(app, "counted", count, seconds=60)
    try:
        with get_store(app).session() as session:
            session.query(JobRun).delete()
        keys = [f"counted@2026-12-02T01:{m:02d}:00+00:00" for m in range(12)]
        assert all(dispatch(app, "counted", run_key=k) for k in keys)
        assert not any(dispatch(app, "counted", run_key=k) for k in keys)  # a new leader's try

        claimed: list[list[int]] = []

        def worker(name: str) -> None:
            mine = []
            while batch := claim_runs(app, name, limit=2):
                for run in batch:
                    run_claimed(app, run)
                    mine.append(run.id)
            with lock:
                claimed.append(mine)

        threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        ids = [i for mine in claimed for i in mine]
        assert len(ids) == len(set(ids)) == len(keys)
        assert len(runs) == len(keys)
        with get_store(app).session() as session:
            done = session.scalar(
                select(func.count()).select_from(JobRun).where(JobRun.status == "done")
            )
        assert done == len(keys)
    finally:
        get_store(app).dispose()


def _worker(url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(sys.path),
        "DEALBRIDGE_DATABASE_URL": url,
        "DEALBRIDGE_AUTO_MIGRATE": "false",
        "DEALBRIDGE_LOG_FORMAT": "json",
    }
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "connector", "worker", "--interval", "0.5", "--idle", "0.2"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def test_a_killed_leader_is_replaced_within_seconds(postgres_url: str, tmp_path: Path) -> None:
    store = Store(postgres_url)
    first = _worker(postgres_url, tmp_path / "first.log")
    second = None
    try:

        def holder() -> str | None:
            row = last_seen(store)
            return row.holder if row else None

        assert _wait_for(lambda: (holder() or "").endswith(f":{first.pid}"), 60), (
            tmp_path / "first.log"
        ).read_text()
        second = _worker(postgres_url, tmp_path / "second.log")
        assert _wait_for(lambda: "starting as worker" in (tmp_path / "second.log").read_text(), 60)
        [started] = [
            json.loads(line)
            for line in (tmp_path / "second.log").read_text().splitlines()
            if "starting as worker" in line
        ]
        assert started["frozen_objects"] > 50_000  # what start-up made (connector.heap.settle)
        time.sleep(1.5)  # three election turns of the second: the lock stays with the first
        assert (holder() or "").endswith(f":{first.pid}")

        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        killed = time.monotonic()
        assert _wait_for(lambda: (holder() or "").endswith(f":{second.pid}"), 30), (
            tmp_path / "second.log"
        ).read_text()
        took = time.monotonic() - killed
        print(f"leader takeover after SIGKILL: {took:.2f} s")  # a figure, not an assertion
        assert "leader elected" in (tmp_path / "second.log").read_text()
        with store.sessions() as session:
            row = session.get(SchedulerLeader, LEADER_NAME)
            assert row is not None
            assert row.since >= row.seen_at - dt.timedelta(seconds=30)  # a new lead, just begun
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
        store.dispose()


def test_serve_on_postgresql_works_leads_and_is_ready(
    postgres_url: str, tmp_path: Path, sandbox_tenant: Any
) -> None:
    import requests

    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(sys.path),
        "DEALBRIDGE_DATABASE_URL": postgres_url,
        "DEALBRIDGE_AUTO_MIGRATE": "false",
        # serve refuses to start without Microsoft 365: the session's sandbox tenant stands in
        "DEALBRIDGE_TENANT_ID": sandbox_tenant.tenant_id,
        "DEALBRIDGE_CLIENT_ID": sandbox_tenant.client_id,
        "DEALBRIDGE_CLIENT_SECRET": sandbox_tenant.client_secret,
        "DEALBRIDGE_LOGIN_BASE_URL": sandbox_tenant.base_url,
        "DEALBRIDGE_GRAPH_BASE_URL": sandbox_tenant.base_url,
        "DEALBRIDGE_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "connector", "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:

        def ready() -> Any:
            try:
                answer = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
            except requests.ConnectionError:
                return None
            return answer if answer.status_code == 200 else None

        answer = _wait_for(ready, 60)
        assert answer is not None, log.read_text()
        checks = {c["name"]: c for c in answer.json()["checks"]}
        assert str(server.pid) in checks["leader"]["detail"]
        text = log.read_text()
        assert "starting as web+worker" in text
        # what start-up made is frozen (connector.heap.settle): the whole app, its imports
        frozen = re.search(r"serving on \S+ .*frozen_objects=(\d+)", text)
        assert frozen is not None, text
        assert int(frozen.group(1)) > 50_000
        assert "postgresql+psycopg://postgres@127.0.0.1" in text
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=20)
