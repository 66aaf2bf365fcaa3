"""The scheduler and its leader survive any error of their store (issue 14).

On a full disk APScheduler's ``update_job`` raised inside its thread, the thread ended, and
nothing was delivered, synced or renewed until a restart, while ``/healthz`` said ok. Here the
database is broken under a running service (``dealbridge serve``'s waitress and background:
the leader loop, its scheduler and, on PostgreSQL, a worker), in one of three ways:

- ``read_only`` (SQLite, no root needed): every new connection is ``PRAGMA query_only``, so
  every write fails with ``OperationalError: attempt to write a readonly database``;
- ``disk_full`` (SQLite, as root: CI runs as root): the database lives on a 24 MiB tmpfs,
  filled to the last byte;
- ``server_stopped`` (PostgreSQL): the throwaway cluster is stopped under the running app.

While broken, ``/readyz`` fails naming the scheduler (or the database); healed, every webhook
queued before, during and after arrives, once per delivery id. (A webhook POSTed just before
the disk filled, whose outcome could not be written, is sent again when its lease ends, under
the same ``X-DealBridge-Delivery`` id: the CRM's dedupe key, docs/api.md.)
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import event

from connector.api.keys import create_key
from connector.jobs import register_job
from connector.leader import LeaderLoop
from connector.store.db import get_store
from tests.connector.conftest import _free_port, make_app
from tests.connector.receiver import Receiver, running_receiver
from tests.databases import Cluster, Template

pytestmark = pytest.mark.timeout(300)


def _wait_for(predicate: Callable[[], Any], seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.1)
    return None


# ---- how the database is broken, and healed ------------------------------------------------


class Breakage:
    def break_(self) -> None:
        raise NotImplementedError

    def heal(self) -> None:
        raise NotImplementedError


class ReadOnly(Breakage):
    """Every new SQLite connection refuses writes (the pool is emptied so none is old)."""

    def __init__(self, app: Flask) -> None:
        self.engine = get_store(app).engine

    @staticmethod
    def _query_only(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA query_only = ON")

    def break_(self) -> None:
        event.listen(self.engine, "connect", self._query_only)
        self.engine.dispose()

    def heal(self) -> None:
        event.remove(self.engine, "connect", self._query_only)
        self.engine.dispose()


class DiskFull(Breakage):
    """The tmpfs the database lives on, filled to the last byte by a filler file."""

    def __init__(self, folder: Path) -> None:
        self.filler = folder / "filler"

    def break_(self) -> None:
        block = b"\0" * (1 << 16)
        with self.filler.open("wb", buffering=0) as out:
            with contextlib.suppress(OSError):  # ENOSPC: full
                while True:
                    out.write(block)
            with contextlib.suppress(OSError):
                while True:
                    out.write(b"\0")

    def heal(self) -> None:
        self.filler.unlink()


class ServerStopped(Breakage):
    """The PostgreSQL cluster stopped under the running app, and started on the same port."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def break_(self) -> None:
        self.cluster.stop()

    def heal(self) -> None:
        self.cluster.start_again()


@contextlib.contextmanager
def _tmpfs(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("a size-limited tmpfs needs root (CI runs as root); read_only covers the rest")
    folder = tmp_path / "small-disk"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


# ---- the running service -------------------------------------------------------------------


@contextlib.contextmanager
def _service(app: Flask) -> Iterator[tuple[str, Any]]:
    """waitress and the background, as ``dealbridge serve`` starts them."""
    from connector.admin.server import make_server, start_background

    server = make_server(app, host="127.0.0.1", port=_free_port(), threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    background = start_background(app)
    assert background.leader is not None
    background.leader.failing_after = 1.0  # not ready after a second of failing turns
    try:
        yield f"http://127.0.0.1:{server.effective_port}", background  # type: ignore[union-attr]
    finally:
        background.stop()
        server.close()
        server.task_dispatcher.shutdown()  # type: ignore[union-attr]


def _deactivate(url: str, auth: dict[str, str], reps: range) -> None:
    """Each rep created and deactivated: one ``rep.deactivated`` webhook each."""
    for n in reps:
        email = f"rep{n}@contoso.com"
        for body in ({"display_name": f"Rep {n}"}, {"active": False}):
            answer = requests.put(f"{url}/api/v1/reps/{email}", json=body, headers=auth, timeout=30)
            assert answer.status_code in {200, 201}, answer.text


def _delivered(receiver: Receiver) -> Counter[str]:
    """Each rep's ``rep.deactivated``, counted once per delivery id (the CRM's dedupe key)."""
    return Counter(rep for rep, _id in _deliveries(receiver))


def _deliveries(receiver: Receiver) -> set[tuple[str, str]]:
    return {
        (json.loads(r.body)["data"]["rep"], r.headers["X-Dealbridge-Delivery"])
        for r in list(receiver.received)
        if json.loads(r.body)["type"] == "rep.deactivated"
    }


BREAKAGES = {"sqlite": ["read_only", "disk_full"], "postgresql": ["server_stopped"]}


@pytest.mark.parametrize("how", ["read_only", "disk_full", "server_stopped"])
def test_deliveries_resume_once_the_database_heals(
    how: str, tmp_path: Path, migrated_template: Template, request: pytest.FixtureRequest
) -> None:
    if how not in BREAKAGES[migrated_template.dialect]:
        pytest.skip(f"{how} breaks {'PostgreSQL' if how == 'server_stopped' else 'SQLite'}")
    with contextlib.ExitStack() as stack:
        folder = stack.enter_context(_tmpfs(tmp_path)) if how == "disk_full" else tmp_path
        receiver = stack.enter_context(running_receiver())
        app = make_app(
            folder / "dealbridge.db",
            migrated_template,
            scheduler_enabled=True,
            webhook_url=receiver.url,
            webhook_secret="a-test-webhook-secret-of-32-chars!",
            outbox_drain_seconds=0.5,
            outbox_first_retry_seconds=0.5,
            outbox_lease_seconds=3,  # a claim whose outcome the full disk lost is taken again
            reminder_channels=[],  # webhooks only: Microsoft 365 is not needed here
        )
        stack.callback(get_store(app).dispose)
        with get_store(app).session() as session:
            auth = {"Authorization": f"Bearer {create_key(session, 'test', 'write')}"}
        breakage: Breakage = (
            ReadOnly(app)
            if how == "read_only"
            else DiskFull(folder)
            if how == "disk_full"
            else ServerStopped(request.getfixturevalue("postgres_cluster"))
        )
        url, background = stack.enter_context(_service(app))

        _deactivate(url, auth, range(0, 3))
        assert _wait_for(lambda: len(_delivered(receiver)) == 3, 60), _delivered(receiver)
        ready = requests.get(f"{url}/readyz", timeout=30)
        assert ready.status_code == 200, ready.text

        _deactivate(url, auth, range(3, 6))  # queued; broken before or while they go out
        breakage.break_()
        try:
            time.sleep(4)  # many turns of the scheduler and the loop on a broken store

            def not_ready() -> Any:
                answer = requests.get(f"{url}/readyz", timeout=30)
                return [answer] if answer.status_code == 503 else None  # a 503 is falsy

            found = _wait_for(not_ready, 30)
            assert found is not None
            answer = found[0]
            assert answer.headers["Content-Type"] == "application/problem+json"
            detail = answer.json()["detail"]
            assert "scheduler:" in detail or "database:" in detail, detail
        finally:
            breakage.heal()

        _deactivate(url, auth, range(6, 9))
        everyone = {f"rep{n}@contoso.com" for n in range(9)}
        assert _wait_for(lambda: set(_delivered(receiver)) == everyone, 90), (
            sorted(_delivered(receiver)),
            background.leader.liveness(),
        )
        time.sleep(4)  # more drains, past a lease: nothing comes under a second id
        assert _delivered(receiver) == Counter(dict.fromkeys(everyone, 1))
        again = len(receiver.received) - len(everyone)
        print(f"{how}: {again} webhooks sent again under the same delivery id")
        assert _wait_for(
            lambda: requests.get(f"{url}/readyz", timeout=30).status_code == 200, 60
        ), requests.get(f"{url}/readyz", timeout=30).json()


# ---- the loop and the scheduler themselves -------------------------------------------------


def test_a_store_error_inside_the_scheduler_thread_does_not_end_it(
    tmp_path: Path, migrated_template: Template
) -> None:
    """The issue's failure, exactly: the job store's write after a run (``update_job``)
    fails; the scheduler's thread lives on and runs the job again once writes work."""
    if migrated_template.dialect != "sqlite":
        pytest.skip("a read-only SQLite store; PostgreSQL's server_stopped is above")
    app = make_app(tmp_path / "one.db", migrated_template)
    ran: list[float] = []
    register_job(app, "counted", lambda app: ran.append(time.monotonic()), seconds=1)
    loop = LeaderLoop(app, dispatch=False, interval=0.2, failing_after=1.0).start()
    breakage = ReadOnly(app)
    try:
        assert _wait_for(lambda: len(ran) >= 1, 30)
        breakage.break_()
        assert _wait_for(lambda: loop.liveness() is not None, 30)
        problem = loop.liveness() or ""
        assert "readonly" in problem or "read-only" in problem, problem
        breakage.heal()
        healed = time.monotonic()
        assert _wait_for(lambda: ran[-1] > healed, 60), "the scheduler never ran again"
        assert _wait_for(lambda: loop.liveness() is None, 60), loop.liveness()
    finally:
        loop.stop()
        get_store(app).dispose()


def test_a_dead_scheduler_thread_is_started_again_and_reported_meanwhile(
    tmp_path: Path, migrated_template: Template
) -> None:
    app = make_app(tmp_path / "dead.db", migrated_template)
    loop = LeaderLoop(app, dispatch=False, interval=0.2).start()
    try:
        first = loop.scheduler
        first.shutdown(wait=True)  # as if its thread had ended
        assert "not running" in (loop.liveness() or "")
        assert _wait_for(lambda: loop.scheduler is not first and loop.liveness() is None, 30)
        assert loop.scheduler.running
    finally:
        loop.stop()
        get_store(app).dispose()


def test_a_dead_leader_loop_fails_readyz_naming_it(
    tmp_path: Path, migrated_template: Template
) -> None:
    app = make_app(tmp_path / "loop.db", migrated_template)
    loop = LeaderLoop(app, dispatch=False, interval=0.2).start()
    client = app.test_client()
    try:
        ready = client.get("/readyz")
        checks = {c["name"]: c for c in ready.json["checks"]}
        assert checks["scheduler"]["ok"], checks["scheduler"]
        loop._stop.set()  # the thread ends as if by a bug; stop() was never called
        loop._thread.join(timeout=10)
        loop._stop.clear()
        answer = client.get("/readyz")
        assert answer.status_code == 503
        assert answer.content_type == "application/problem+json"
        assert "scheduler: the leader loop is not running" in answer.json["detail"]
    finally:
        loop.stop()
        get_store(app).dispose()


def test_stopping_waits_for_the_running_job_and_its_connection(
    tmp_path: Path, migrated_template: Template
) -> None:
    """A job still running when the loop stopped gave its connection back after the store
    was disposed, to a pool nobody closes: psycopg's "connection ... was deleted while still
    open" ResourceWarning at a random later test (issue 14)."""
    app = make_app(tmp_path / "stop.db", migrated_template)
    started, release = threading.Event(), threading.Event()

    def slow(app: Flask) -> None:
        with get_store(app).engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
            started.set()
            release.wait(timeout=2)

    register_job(app, "slow", slow, seconds=1)
    loop = LeaderLoop(app, dispatch=False, interval=0.2).start()
    try:
        assert started.wait(timeout=30)
        threading.Timer(0.5, release.set).start()
        loop.stop()
        assert release.is_set(), "stop() returned while the job still held its connection"
    finally:
        release.set()
        get_store(app).dispose()
