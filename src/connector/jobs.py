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

from connector.meetings.sync import mark_held, sync_mailbox
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


def run_for_mailbox(app_name: str, email: str) -> None:
    """The one-off, debounced delta round after a change notification."""
    app = _APPS.get(app_name)
    if app is None:
        return

    with app.app_context():
        try:
            sync_mailbox(app, email)
            mark_held(app)
        except Exception:  # recorded per mailbox; the scheduler must live on
            log.exception("sync of %s failed", email)
