"""Jobs live in the database: they survive a restart and are not doubled by it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import select, text

from connector.jobs import start_scheduler
from connector.meetings.notifications import schedule_sync
from connector.store.db import get_store
from connector.store.models import JobRun, utcnow
from tests.connector.conftest import make_app
from tests.databases import Template


def _stored_jobs(app) -> list[str]:  # type: ignore[no-untyped-def]
    with get_store(app).engine.connect() as connection:
        return sorted(row[0] for row in connection.execute(text("SELECT id FROM scheduled_jobs")))


def test_jobs_survive_a_restart_once_each(tmp_path: Path, migrated_template: Template) -> None:
    db = tmp_path / "jobs.db"
    first = make_app(db, migrated_template)
    url = first.extensions["dealbridge.settings"].effective_database_url
    scheduler = start_scheduler(first, force=True)
    assert scheduler is not None
    scheduler.pause()  # keep the one-off job from running before the "crash"
    schedule_sync(first, "ann@contoso.com", utcnow() + dt.timedelta(minutes=5))
    before = _stored_jobs(first)
    assert {"outbox", "digests", "health"} <= set(before)
    if get_store(first).engine.dialect.name == "sqlite":
        assert "sync:ann@contoso.com" in before
    else:  # shared: the round is a job run for any worker, stored as a row
        with get_store(first).session() as session:
            runs = session.execute(select(JobRun.job, JobRun.arg, JobRun.status)).all()
        assert [tuple(r) for r in runs] == [("mailbox_round", "ann@contoso.com", "due")]
    scheduler.shutdown(wait=False)
    get_store(first).dispose()

    second = create_on_same_db(db, url)
    again = start_scheduler(second, force=True)
    assert again is not None
    try:
        assert _stored_jobs(second) == before
        ids = [job.id for job in again.get_jobs()]
        assert len(ids) == len(set(ids))
    finally:
        again.shutdown(wait=False)
        get_store(second).dispose()


def create_on_same_db(db: Path, url: str):  # type: ignore[no-untyped-def]
    from connector.app import create_app

    return create_app(
        {
            "TESTING": True,
            "database_url": url,
            "auto_migrate": False,
            "scheduler_enabled": False,
            "instance_path": db.parent,
        }
    )
