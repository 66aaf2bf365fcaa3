"""Background jobs (APScheduler): the outbox drain and, later, syncs and renewals.

Jobs are stored in the same database (SQLAlchemyJobStore), so they survive a restart, and
``coalesce`` plus ``max_instances=1`` make a missed run happen once, not many times. Every job
is a function of ids that runs inside ``app.app_context()``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Flask

from connector.settings import SETTINGS_EXTENSION
from connector.store.db import get_store

log = logging.getLogger(__name__)
SCHEDULER_EXTENSION = "dealbridge.scheduler"
_APPS: dict[str, Flask] = {}


def run_in_app(app_name: str, job: str) -> None:
    """The stored job's entry point: look the app up by name (jobs must be picklable)."""
    app = _APPS.get(app_name)
    if app is None:
        log.warning("job %s skipped: app %s is not running here", job, app_name)
        return
    task: Callable[[Flask], Any] = app.extensions["dealbridge.jobs"][job]
    with app.app_context():
        try:
            task(app)
        except Exception:  # one failing run must not kill the scheduler; it is logged
            log.exception("job %s failed", job)


def register_job(app: Flask, name: str, task: Callable[[Flask], Any], seconds: float) -> None:
    """Declare a periodic job; it starts with the scheduler."""
    app.extensions.setdefault("dealbridge.jobs", {})[name] = task
    app.extensions.setdefault("dealbridge.job_intervals", {})[name] = seconds


def start_scheduler(app: Flask, *, force: bool = False) -> Any | None:
    """Start the in-process scheduler (None when disabled by settings, unless ``force``)."""
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    settings = app.extensions[SETTINGS_EXTENSION]
    if not (settings.scheduler_enabled or force):
        return None
    _APPS[app.name] = app
    store = get_store(app)
    scheduler = BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=store.engine, tablename="scheduled_jobs")},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300},
        timezone="UTC",
    )
    for name, seconds in app.extensions.get("dealbridge.job_intervals", {}).items():
        scheduler.add_job(
            run_in_app,
            "interval",
            args=[app.name, name],
            seconds=seconds,
            id=name,
            replace_existing=True,
        )
    scheduler.start()
    app.extensions[SCHEDULER_EXTENSION] = scheduler
    return scheduler


def register_task(app: Flask, name: str, task: Callable[[Flask, str], Any]) -> None:
    """Declare a one-off task of one id (e.g. a mailbox's round), run later by ``run_task``."""
    app.extensions.setdefault("dealbridge.tasks", {})[name] = task


def run_task(app_name: str, name: str, key: str) -> None:
    """A stored one-off job's entry point: the task registered under ``name``, for ``key``."""
    app = _APPS.get(app_name)
    if app is None:
        log.warning("task %s(%s) skipped: app %s is not running here", name, key, app_name)
        return
    task: Callable[[Flask, str], Any] = app.extensions["dealbridge.tasks"][name]
    with app.app_context():
        try:
            task(app, key)
        except Exception:  # recorded by the task where it can be; the scheduler must live on
            log.exception("task %s(%s) failed", name, key)
