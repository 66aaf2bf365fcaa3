"""Delivery and meeting-sync throughput with 1, 2 and 4 `dealbridge worker` processes on
PostgreSQL, the ratio to 1 worker, and the leader's failover time after a SIGKILL.

The tests' throwaway PostgreSQL cluster (tests/databases.py) and the sandbox tenant (its own
process); a first run with one worker warms up and is discarded. For each worker count: a
fresh database, REPS reps and DEALS deals whose stage reminders wait in the outbox (held back
until the workers are up), then the clock runs until every calendar delivery is done; then
one `mailbox_round` job run per mailbox (MEETINGS events each, an external attendee on a
deal) until all are done.
Skipped with one line when the PostgreSQL binaries are absent.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select, text, update

from bench.bench_meetings import CLIENT_ID, SECRET, TENANT, SandboxProcess

REPS = 8
DEALS = 120
MEETINGS = 40  # per mailbox
WORKERS = tuple(int(n) for n in os.environ.get("BENCH_WORKERS", "1,2,4").split(","))
WARM_UP = 1  # workers in the discarded first run: imports, connections, the sandbox's caches


@contextlib.contextmanager
def postgres() -> Iterator[str | None]:
    """The tests' throwaway cluster (``tests.databases.Cluster``: initdb/pg_ctl on a free
    port, as the ``postgres`` user when run as root); its base URL, None without binaries."""
    from tests.databases import Cluster, find_server_binaries

    binaries = find_server_binaries()
    if binaries is None:
        yield None
        return
    cluster = Cluster.create(binaries)
    try:
        yield cluster.url("postgres").rsplit("/", 1)[0]
    finally:
        cluster.destroy()


def _settings(url: str, sandbox: SandboxProcess) -> dict[str, str]:
    return {
        "DEALBRIDGE_DATABASE_URL": url,
        "DEALBRIDGE_AUTO_MIGRATE": "false",
        "DEALBRIDGE_TENANT_ID": TENANT,
        "DEALBRIDGE_CLIENT_ID": CLIENT_ID,
        "DEALBRIDGE_CLIENT_SECRET": SECRET,
        "DEALBRIDGE_LOGIN_BASE_URL": sandbox.base_url,
        "DEALBRIDGE_GRAPH_BASE_URL": sandbox.base_url,
        "DEALBRIDGE_PUBLIC_URL": "http://127.0.0.1:9",
        "DEALBRIDGE_REMINDER_CHANNELS": '["calendar"]',
        "DEALBRIDGE_CALENDAR_LEAD_HOURS": str(24 * 14),
        "DEALBRIDGE_LOG_LEVEL": "INFO",
        "DEALBRIDGE_SYNC_POLL_MINUTES": "60",
    }


def _seed(url: str, sandbox: SandboxProcess) -> Any:
    """A fresh database and tenant: reps, deals (reminders held back), meetings."""
    from connector.api.schemas import DealIn
    from connector.app import create_app, prepare_database
    from connector.deals.changes import upsert_deal
    from connector.store.db import Store, get_store
    from connector.store.models import Mailbox, OutboxItem, Rep, utcnow

    prepare_database(Store(url))
    env = {k.removeprefix("DEALBRIDGE_").lower(): v for k, v in _settings(url, sandbox).items()}
    env["reminder_channels"] = ["calendar"]
    env.pop("log_level")
    app = create_app({"TESTING": True, **env, "scheduler_enabled": False})
    sandbox.control("POST", "/reset", {})
    now = utcnow()
    start = now.replace(minute=0, second=0, microsecond=0) + dt.timedelta(days=1)
    with get_store(app).session() as session:
        for r in range(REPS):
            email = f"rep{r}@contoso.example"
            user = sandbox.control(
                "POST", "/users", {"userPrincipalName": email, "displayName": f"Rep {r}"}
            )
            session.add(Rep(email=email, display_name=f"Rep {r}", entra_id=user["id"]))
            # Not due for the leader's own poll (a never-read mailbox is due at once): the
            # timed rounds below are the first read of each mailbox, not an idle one after
            # the workers read it while the deliveries were timed.
            session.add(Mailbox(rep_email=email, needs_sync=False, last_round_at=now))
    with get_store(app).session() as session:
        for d in range(DEALS):
            body = DealIn.model_validate(
                {
                    "title": f"Deal {d}",
                    "pipeline": "classic5",
                    "stage": "negotiation",
                    "owner": f"rep{d % REPS}@contoso.example",
                    "account": {"name": f"Customer {d}", "domains": []},
                    "contacts": [{"email": f"buyer{d}@fabrikam{d}.example"}],
                }
            )
            upsert_deal(
                session,
                f"OPP-{d}",
                body,
                actor="bench",
                now=now - dt.timedelta(days=3),
                default_pipeline="classic5",
            )
        later = utcnow() + dt.timedelta(days=1)  # held back until the workers are up
        session.execute(update(OutboxItem).values(next_attempt_at=later))
    for r in range(REPS):
        for m in range(MEETINGS):
            d = (r + m * REPS) % DEALS
            begins = start + dt.timedelta(hours=m)
            sandbox.control(
                "POST",
                f"/users/rep{r}@contoso.example/events",
                {
                    "subject": f"Call {m}",
                    "start": {"dateTime": f"{begins:%Y-%m-%dT%H:%M:%S}", "timeZone": "UTC"},
                    "end": {
                        "dateTime": f"{begins + dt.timedelta(minutes=30):%Y-%m-%dT%H:%M:%S}",
                        "timeZone": "UTC",
                    },
                    "attendees": [{"emailAddress": {"address": f"buyer{d}@fabrikam{d}.example"}}],
                },
            )
    return app


def _start_workers(count: int, env: dict[str, str], folder: Path) -> list[subprocess.Popen[bytes]]:
    workers = []
    for n in range(count):
        log = (folder / f"worker{n}.log").open("w")
        workers.append(
            subprocess.Popen(
                [sys.executable, "-m", "connector", "worker", "--interval", "0.5", "--idle", "0.1"],
                env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    return workers


def _wait(predicate: Any, seconds: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def _peak_mib(pid: int) -> float:
    """A live process's peak resident memory (VmHWM), MiB (0 where /proc is not there)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    line = next((x for x in status.splitlines() if x.startswith("VmHWM:")), "VmHWM: 0 kB")
    return int(line.split()[1]) / 1024


def _stop(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()


def one_run(base: str, count: int, sandbox: SandboxProcess, folder: Path) -> dict[str, float]:
    from connector.jobs import dispatch
    from connector.leader import last_seen
    from connector.meetings.notifications import MAILBOX_ROUND
    from connector.store.db import get_store
    from connector.store.models import JobRun, OutboxItem, utcnow

    name = f"bench_{count}"
    admin = create_engine(f"{base}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        connection.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    url = f"{base}/{name}"
    app = _seed(url, sandbox)
    store = get_store(app)
    with store.sessions() as session:
        items = session.scalar(select(func.count()).select_from(OutboxItem))
    workers = _start_workers(count, _settings(url, sandbox), folder)
    print(f"   {count} workers: logs in {folder}")
    try:
        assert _wait(lambda: last_seen(store) is not None, 120), "no leader"
        for n in range(count):
            log = folder / f"worker{n}.log"
            assert _wait(lambda log=log: "starting as worker" in log.read_text(), 120), n
        with store.session() as session:
            session.execute(update(OutboxItem).values(next_attempt_at=utcnow()))
        started = time.monotonic()

        def delivered() -> bool:
            with store.sessions() as session:
                left = session.scalar(
                    select(func.count())
                    .select_from(OutboxItem)
                    .where(
                        (OutboxItem.status == "in_flight")
                        | (
                            (OutboxItem.status == "pending")
                            & (OutboxItem.next_attempt_at <= utcnow() + dt.timedelta(minutes=1))
                        )
                    )
                )
            return left == 0

        assert _wait(delivered, 600, 0.1), "the outbox did not drain"
        deliveries = time.monotonic() - started
        with store.sessions() as session:
            by_status = dict(
                session.execute(
                    select(OutboxItem.status, func.count()).group_by(OutboxItem.status)
                ).all()
            )
            errors = session.scalars(select(OutboxItem.last_error).limit(3)).all()
        done = by_status.get("done", 0)
        if done != items:
            print(f"   {count} workers: outbox {by_status}; errors {errors}")
        started = time.monotonic()
        for r in range(REPS):
            email = f"rep{r}@contoso.example"
            dispatch(app, MAILBOX_ROUND, arg=email, run_key=f"bench:{email}")

        def rounds_done() -> bool:
            with store.sessions() as session:
                left = session.scalar(
                    select(func.count())
                    .select_from(JobRun)
                    .where(JobRun.run_key.like("bench:%"), JobRun.status.in_(("due", "running")))
                )
            return left == 0

        assert _wait(rounds_done, 600, 0.1), "the rounds did not end"
        rounds = time.monotonic() - started
        failover = float("nan")
        if count >= 2:
            row = last_seen(store)
            assert row is not None
            pid = int(row.holder.rsplit(":", 1)[1])
            leader = next(w for w in workers if w.pid == pid)
            leader.send_signal(signal.SIGKILL)
            leader.wait(timeout=10)
            killed = time.monotonic()

            def replaced() -> bool:
                now = last_seen(store)
                return now is not None and not now.holder.endswith(f":{pid}")

            assert _wait(replaced, 60, 0.02), "no new leader"
            failover = time.monotonic() - killed
        return {
            "worker_peak_mib": max(_peak_mib(w.pid) for w in workers if w.poll() is None),
            "items": float(items or 0),
            "delivered": float(done or 0),
            "deliveries_per_s": (done or 0) / deliveries,
            "events_per_s": REPS * MEETINGS / rounds,
            "failover_s": failover,
        }
    finally:
        _stop(workers)
        store.dispose()


def main() -> None:
    with postgres() as base:
        if base is None:
            print("   skipped: no PostgreSQL server binaries (apt-get install postgresql)")
            return
        sandbox = SandboxProcess()
        folder = Path(tempfile.mkdtemp(prefix="dealbridge-bench-scale-"))
        try:
            one_run(base, WARM_UP, sandbox, folder)  # discarded: the first run pays the starts
            results = {n: one_run(base, n, sandbox, folder) for n in WORKERS}
        finally:
            sandbox.stop()
            if os.environ.get("BENCH_KEEP_LOGS") is None:
                shutil.rmtree(folder, ignore_errors=True)
    first = results[WORKERS[0]]
    print(
        f"   {REPS} reps, {DEALS} deals ({int(first['items'])} calendar deliveries), "
        f"{REPS * MEETINGS} meetings; workers on {os.cpu_count()} cores"
    )
    print("   workers  deliveries/s  ratio  events/s (rounds)  ratio  leader failover  peak MiB")
    for n, r in results.items():
        fail = "-" if r["failover_s"] != r["failover_s"] else f"{r['failover_s']:.2f} s"
        print(
            f"   {n:>7}  {r['deliveries_per_s']:>12.1f}  "
            f"{r['deliveries_per_s'] / first['deliveries_per_s']:>5.2f}  "
            f"{r['events_per_s']:>17.1f}  {r['events_per_s'] / first['events_per_s']:>5.2f}  "
            f"{fail:>15}  {r['worker_peak_mib']:>8.0f}"
        )
    print(f"   peak MiB: the largest worker's resident peak after {MEETINGS} events a mailbox")


if __name__ == "__main__":
    main()
