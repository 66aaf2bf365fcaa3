"""Background jobs (APScheduler): the outbox drain, syncs, renewals, digests.

Jobs are stored in the same database (SQLAlchemyJobStore), so they survive a restart, and
``coalesce`` plus ``max_instances=1`` make a missed run happen once, not many times. Every job
is a function of ids that runs inside ``app.app_context()``.

APScheduler runs in the scheduler leader only (``connector.leader``). Embedded (one process on
SQLite) the leader runs each job itself, as it always did. With many processes (``dispatch``)
the leader only decides that a job is due: it writes a ``job_runs`` row per job and period
(the unique ``run_key`` makes a period run once however often the lead changes hands), and
the workers claim and run those rows (``claim_runs``, ``run_claimed``).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from sqlalchemy import delete, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from connector import metrics
from connector.settings import SETTINGS_EXTENSION
from connector.store.db import get_store
from connector.store.locks import KINDS
from connector.store.models import JobRun, utcnow

log = logging.getLogger(__name__)
SCHEDULER_EXTENSION = "dealbridge.scheduler"
DISPATCH_EXTENSION = "dealbridge.dispatch"  # True: the leader dispatches, workers run
FAN_OUTS = "dealbridge.fan_outs"
KEEP_RUNS = dt.timedelta(days=7)  # finished job runs are deleted after this
RUN_LEASE = dt.timedelta(seconds=30)
"""A claimed run's lease, renewed every third of it while the run goes on (``run_claimed``):
a worker that dies mid-run leaves it (and its mailbox's next round) to another this soon."""
_EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)  # interval jobs fire on multiples from here
_APPS: dict[str, Flask] = {}


def run_in_app(app_name: str, job: str) -> None:
    """The stored job's entry point: look the app up by name (jobs must be picklable)."""
    app = _APPS.get(app_name)
    if app is None:
        log.warning("job %s skipped: app %s is not running here", job, app_name)
        return
    if app.extensions.get(DISPATCH_EXTENSION):
        seconds = app.extensions["dealbridge.job_intervals"][job]
        period = period_of(utcnow(), seconds).isoformat()
        fan_out = app.extensions.get(FAN_OUTS, {}).get(job)
        if fan_out is None:
            dispatch(app, job, run_key=f"{job}@{period}")
            return
        due, one_off = fan_out
        for key in due(app):  # one run per key, for the workers to share
            dispatch(app, one_off, arg=key, run_key=f"{one_off}:{key}@{period}", alone=True)
        return
    task: Callable[[Flask], Any] = app.extensions["dealbridge.jobs"][job]
    with app.app_context():
        _timed(job, None, lambda: task(app))


def _timed(job: str, arg: str | None, call: Callable[[], Any]) -> str | None:
    """Run one job, log and count it; the error text when it failed (never raised)."""
    started = time.monotonic()
    error = None
    try:
        call()
    except Exception as exc:  # one failing run must not kill the scheduler; it is logged
        error = f"{type(exc).__name__}: {exc}"
        log.exception("job %s failed", job, extra={"job": job, "arg": arg})
    metrics.job_run(log, job, time.monotonic() - started, error, arg=arg)
    return error


def period_of(now: dt.datetime, seconds: float) -> dt.datetime:
    """The start of the period of ``seconds`` that ``now`` falls in (counted from _EPOCH)."""
    step = dt.timedelta(seconds=seconds)
    return _EPOCH + step * ((now - _EPOCH) // step)


def register_fan_out(app: Flask, job: str, due: Callable[[Flask], list[str]], task: str) -> None:
    """With many processes, the periodic ``job`` is one run of the one-off ``task`` per key
    ``due`` names (e.g. a mailbox round per due mailbox), so the workers share the rounds;
    embedded, ``job`` runs as registered."""
    app.extensions.setdefault(FAN_OUTS, {})[job] = (due, task)


def dispatch(
    app: Flask, job: str, *, run_key: str, arg: str | None = None, alone: bool = False
) -> bool:
    """The leader's part: a run of ``job`` is due (False when this period is already there).

    ``alone``: not while a run of the same job and ``arg`` is due or running (one round per
    mailbox at a time across all processes; what arrived meanwhile waits for the next)."""
    now = utcnow()
    try:
        with get_store(app).session() as session:
            if alone and session.scalar(
                select(JobRun.id)
                .where(JobRun.job == job, JobRun.arg == arg)
                .where(
                    or_(
                        JobRun.status == "due",
                        (JobRun.status == "running") & (JobRun.lease_until > now),
                    )
                )
                .limit(1)
            ):
                return False
            session.add(JobRun(job=job, arg=arg, run_key=run_key, status="due", due_at=now))
    except IntegrityError:
        return False
    with get_store(app).session() as session:  # the record of runs is kept for KEEP_RUNS
        session.execute(
            delete(JobRun).where(
                JobRun.status.in_(("done", "failed")), JobRun.due_at < now - KEEP_RUNS
            )
        )
    log.debug("job %s dispatched", job, extra={"job": job, "run_key": run_key})
    return True


WAKE_CHANNEL = "dealbridge_work"
"""PostgreSQL ``NOTIFY`` channel: a run was made due now; idle workers look at once."""


def schedule(app: Flask, job: str, arg: str, when: dt.datetime) -> None:
    """One due run of the one-off ``job`` for ``arg``, at ``when``, for any worker (a web
    process that runs nothing itself can ask for it): a later call moves the run that is
    still due, so what comes meanwhile is one run. A run of the same ``arg`` under way does
    not stop it; it waits for that one to end (``claim_runs``)."""
    now = utcnow()
    with get_store(app).session() as session:
        if session.get_bind().dialect.name == "postgresql":  # two notifications at once: one row
            session.execute(
                text("SELECT pg_advisory_xact_lock(:kind, hashtext(:name))"),
                {"kind": KINDS["job_schedule"], "name": f"{job}:{arg}"},
            )
        due = session.scalar(
            select(JobRun)
            .where(JobRun.job == job, JobRun.arg == arg, JobRun.status == "due")
            .order_by(JobRun.id)
            .limit(1)
            .with_for_update()
        )
        if due is not None:
            due.due_at = when
        else:
            key = f"{job}:{arg}@{now.isoformat()}#{uuid.uuid4().hex[:8]}"
            session.add(JobRun(job=job, arg=arg, run_key=key, status="due", due_at=when))
        if when <= now and session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": WAKE_CHANNEL})
    log.debug("%s(%s) due at %s", job, arg, when.isoformat(), extra={"job": job, "arg": arg})


def claim_runs(app: Flask, holder: str, *, limit: int = 4) -> list[JobRun]:
    """A worker's part: take due runs (and runs whose worker's lease ended); a run of a job
    and ``arg`` waits while another of the same is under way (one round per mailbox).

    PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so workers never wait on each other's rows; SQLite
    has one writer at a time and renders no ``FOR UPDATE``: the compare-and-set decides."""
    now = utcnow()
    running = aliased(JobRun)
    under_way = (
        select(running.id)
        .where(running.job == JobRun.job, running.arg == JobRun.arg, running.id != JobRun.id)
        .where(running.status == "running", running.lease_until > now)
    )
    with get_store(app).session() as session:
        due = list(
            session.scalars(
                select(JobRun)
                .where(
                    or_(
                        (JobRun.status == "due") & (JobRun.due_at <= now),
                        (JobRun.status == "running") & (JobRun.lease_until <= now),
                    )
                )
                .where(or_(JobRun.arg.is_(None), ~under_way.exists()))
                .order_by(JobRun.due_at, JobRun.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        taken = []
        one_each: set[tuple[str, str]] = set()  # never two runs of one job and arg at once
        for run in due:
            if run.arg is not None:
                if (run.job, run.arg) in one_each:
                    continue
                one_each.add((run.job, run.arg))
            claimed = session.execute(
                update(JobRun)
                .where(JobRun.id == run.id, JobRun.status == run.status)
                .where(JobRun.attempts == run.attempts)
                .values(
                    status="running",
                    lease_until=now + RUN_LEASE,
                    attempts=run.attempts + 1,
                    holder=holder,
                    started_at=now,
                )
                .execution_options(synchronize_session=False)
            )
            if claimed.rowcount == 1:  # type: ignore[attr-defined]
                taken.append(run)
        return taken


def run_claimed(app: Flask, run: JobRun) -> str | None:
    """Run a claimed job run and record how it ended."""
    if run.arg is None:
        task: Callable[[Flask], Any] | None = app.extensions.get("dealbridge.jobs", {}).get(run.job)
        call = None if task is None else (lambda: task(app))
    else:
        one: Callable[[Flask, str], Any] | None = app.extensions.get("dealbridge.tasks", {}).get(
            run.job
        )
        arg = run.arg
        call = None if one is None else (lambda: one(app, arg))
    renewing = _LeaseRenewal(app, run.id, run.attempts + 1)
    try:
        with app.app_context():
            error = "no such job here" if call is None else _timed(run.job, run.arg, call)
    finally:
        renewing.stop()
    with get_store(app).session() as session:
        session.execute(
            update(JobRun)
            .where(JobRun.id == run.id)
            .values(
                status="failed" if error else "done",
                finished_at=utcnow(),
                lease_until=None,
                error=error[:2000] if error else None,
            )
        )
    return error


class _LeaseRenewal:
    """A daemon thread that renews a claimed run's lease every third of ``RUN_LEASE`` until
    stopped; it renews only the claim it was given (the same attempt, still running)."""

    def __init__(self, app: Flask, run_id: int, attempt: int) -> None:
        self.app, self.run_id, self.attempt = app, run_id, attempt
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dealbridge-run-lease", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(RUN_LEASE.total_seconds() / 3):
            try:
                with get_store(self.app).session() as session:
                    session.execute(
                        update(JobRun)
                        .where(
                            JobRun.id == self.run_id,
                            JobRun.status == "running",
                            JobRun.attempts == self.attempt,
                        )
                        .values(lease_until=utcnow() + RUN_LEASE)
                    )
            except Exception:  # the database is away: the next turn tries again
                log.warning("job run %s: the lease could not be renewed", self.run_id)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def register_job(app: Flask, name: str, task: Callable[[Flask], Any], seconds: float) -> None:
    """Declare a periodic job; it starts with the scheduler."""
    app.extensions.setdefault("dealbridge.jobs", {})[name] = task
    app.extensions.setdefault("dealbridge.job_intervals", {})[name] = seconds


def start_scheduler(app: Flask, *, force: bool = False, dispatch: bool = False) -> Any | None:
    """Start the in-process scheduler (None when disabled by settings, unless ``force``).

    With ``dispatch`` (many processes) a job's run becomes a ``job_runs`` row for the workers,
    and the outbox is not a job: every worker drains it in its own loop."""
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

    settings = app.extensions[SETTINGS_EXTENSION]
    if not (settings.scheduler_enabled or force):
        return None
    _APPS[app.name] = app
    app.extensions[DISPATCH_EXTENSION] = dispatch
    store = get_store(app)
    scheduler = _surviving_scheduler()(
        jobstores={"default": SQLAlchemyJobStore(engine=store.engine, tablename="scheduled_jobs")},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300},
        timezone="UTC",
    )
    for name, seconds in app.extensions.get("dealbridge.job_intervals", {}).items():
        if dispatch and name == "outbox":
            continue
        scheduler.add_job(
            run_in_app,
            "interval",
            args=[app.name, name],
            seconds=seconds,
            start_date=_EPOCH,  # runs fall on period boundaries: run_key names the period
            id=name,
            replace_existing=True,
        )
    scheduler.start()
    app.extensions[SCHEDULER_EXTENSION] = scheduler
    return scheduler


TURN_AT_MOST = 5.0
"""The scheduler's thread turns at least this often (APScheduler sleeps until the next job,
up to the longest interval): a turn is its sign of life (``SchedulerLiveness``)."""
RETRY_AT_MOST = 30.0
"""After failing turns the scheduler waits 1, 2, 4 ... seconds, at most this, and tries again."""


@dataclass
class SchedulerLiveness:
    """What the scheduler's thread last did: when it turned, and since when it fails."""

    last_turn: float = field(default_factory=time.monotonic)
    failures: int = 0
    failing_since: float | None = None
    last_error: str | None = None

    def turned(self, error: BaseException | None = None) -> float:
        """Record a turn (failed when ``error``); the wait before the next failing one."""
        now = time.monotonic()
        self.last_turn = now
        if error is None:
            self.failures, self.failing_since, self.last_error = 0, None, None
            return 0.0
        self.failures += 1
        self.failing_since = self.failing_since or now
        self.last_error = f"{type(error).__name__}: {error}"[:500]
        return float(min(RETRY_AT_MOST, 2 ** (self.failures - 1)))


def _surviving_scheduler() -> type[Any]:
    """APScheduler's BackgroundScheduler whose thread survives its job store's errors.

    APScheduler 3 catches an error of ``get_due_jobs`` but not of ``update_job`` or
    ``get_next_run_time`` in the same turn: on a full disk ``update_job`` raised, the thread
    ended, and nothing ran again until a restart. Here a failing turn is logged and retried
    with backoff (a job whose next run could not be stored runs again on the next turn:
    ``coalesce`` makes that once, and each job is idempotent); every turn, good or bad, is
    recorded in ``liveness`` for ``/readyz``."""
    from apscheduler.schedulers.background import BackgroundScheduler

    class SurvivingScheduler(BackgroundScheduler):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.liveness = SchedulerLiveness()

        def _process_jobs(self) -> float:
            try:
                wait = super()._process_jobs()
            except Exception as exc:  # the store is away, the disk full: retry, never die
                retry = self.liveness.turned(exc)
                log.warning(
                    "scheduler turn failed (retrying in %.0f s): %s",
                    retry,
                    self.liveness.last_error,
                    exc_info=True,
                )
                return retry
            self.liveness.turned()
            return TURN_AT_MOST if wait is None else min(float(wait), TURN_AT_MOST)

        @property
        def thread_alive(self) -> bool:
            thread = getattr(self, "_thread", None)
            return bool(thread is not None and thread.is_alive())

    return SurvivingScheduler


def register_task(app: Flask, name: str, task: Callable[[Flask, str], Any]) -> None:
    """Declare a one-off task of one id (e.g. a mailbox's round), run later by ``run_task``."""
    app.extensions.setdefault("dealbridge.tasks", {})[name] = task


def run_task(app_name: str, name: str, key: str) -> None:
    """A stored one-off job's entry point: the task registered under ``name``, for ``key``."""
    app = _APPS.get(app_name)
    if app is None:
        log.warning("task %s(%s) skipped: app %s is not running here", name, key, app_name)
        return
    if app.extensions.get(DISPATCH_EXTENSION):
        dispatch(app, name, arg=key, run_key=f"{name}:{key}@{utcnow().isoformat()}", alone=True)
        return
    task: Callable[[Flask, str], Any] = app.extensions["dealbridge.tasks"][name]
    with app.app_context():
        _timed(name, key, lambda: task(app, key))
