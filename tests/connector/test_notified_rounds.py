"""Change notifications become rounds where the work is done, and a burst is one or two rounds.

Embedded (SQLite) the one process's scheduler runs the round; on PostgreSQL the web process
that received the notification only writes a job run, and a worker (another app on the same
database, as another process) reads the mailbox. Rounds are counted, never timed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from connector.app import create_app
from connector.jobs import _APPS, SCHEDULER_EXTENSION
from connector.meetings import sync as meetings_sync
from connector.meetings.notifications import MAILBOX_ROUND
from connector.settings import SETTINGS_EXTENSION
from connector.store.db import get_store
from connector.store.models import Interaction, JobRun, Mailbox
from connector.worker import Worker
from tests.connector.conftest import Tenant, meeting
from tests.connector.test_meeting_sync import PAST, add_deal

STATE = "the-client-state-we-gave-graph"
BURST = 8
DEBOUNCE = 3.0
"""Long beside a loaded machine's delays: a notification whose commit waited on a round's write
(SQLite's one writer) for over a second once made a third round with 1 s."""


def _shared(app: Flask) -> bool:
    return get_store(app).engine.dialect.name == "postgresql"


def _subscribed_rep(t: Tenant) -> str:
    ann = t.add_rep("ann", "Ann Lee")
    add_deal(t, "OPP-1", ann, contacts=["dana@fabrikam.com"])
    assert meetings_sync.sync_mailbox(t.app, ann).error is None  # read once: all quiet
    with get_store(t.app).session() as session:
        mailbox = session.scalars(select(Mailbox).where(Mailbox.rep_email == ann)).one()
        mailbox.subscription_id = "sub-ann"
        mailbox.client_state_hash = hashlib.sha256(STATE.encode()).hexdigest()
    return ann


def _notify(t: Tenant, rep: str) -> None:
    body = {
        "value": [
            {
                "subscriptionId": "sub-ann",
                "clientState": STATE,
                "changeType": "created",
                "resource": f"users/{rep}/events/x",
                "tenantId": t.sandbox.tenant_id,
                "subscriptionExpirationDateTime": "2030-01-01T00:00:00Z",
            }
        ]
    }
    answer = t.app.test_client().post("/api/graph/notifications", json=body)
    assert answer.status_code == 202, answer.text


def _logged(app: Flask) -> int:
    with get_store(app).session() as session:
        return int(session.scalar(select(func.count()).select_from(Interaction)) or 0)


@pytest.fixture
def worker_app(m365: Tenant) -> Iterator[Flask]:
    """Another app on the same database, as a `dealbridge worker` process would be."""
    app = create_app(settings=m365.app.extensions[SETTINGS_EXTENSION])
    yield app
    from connector.microsoft365 import close

    close(app)
    get_store(app).dispose()


def test_a_web_process_asks_for_the_round_and_a_worker_reads_the_mailbox(
    m365: Tenant, worker_app: Flask
) -> None:
    if not _shared(m365.app):
        pytest.skip("embedded SQLite: the one process reads the mailbox itself")
    ann = _subscribed_rep(m365)
    m365.add_event(ann, meeting("Pricing call", PAST, ["dana@fabrikam.com"]))
    with get_store(m365.app).session() as session:
        before = session.scalars(select(Mailbox.last_round_at)).one()

    _notify(m365, ann)  # the web app has no scheduler and no worker

    with get_store(m365.app).session() as session:
        runs = session.scalars(select(JobRun).where(JobRun.job == MAILBOX_ROUND)).all()
        assert [(r.arg, r.status) for r in runs] == [(ann, "due")]
        assert session.scalars(select(Mailbox.last_round_at)).one() == before  # not read here
    assert _logged(m365.app) == 0

    worker = Worker(worker_app)
    for _ in range(20):
        if worker.turn() == 0 and _logged(m365.app):
            break
    assert _logged(m365.app) == 1
    with get_store(m365.app).session() as session:
        assert session.scalars(select(JobRun.status).where(JobRun.job == MAILBOX_ROUND)).all() == [
            "done"
        ]


@pytest.fixture
def rounds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The rounds that ran (busy ones are no rounds)."""
    ran: list[str] = []
    real = meetings_sync.sync_mailbox

    def counted(app: Flask, email: str, **kwargs: Any) -> meetings_sync.SyncReport:
        report = real(app, email, **kwargs)
        if not report.busy:
            ran.append(email)
        return report

    monkeypatch.setattr(meetings_sync, "sync_mailbox", counted)
    return ran


def test_a_burst_of_notifications_is_at_most_two_rounds_and_every_change_is_logged(
    m365: Tenant, worker_app: Flask, rounds: list[str]
) -> None:
    from apscheduler.schedulers.background import BackgroundScheduler

    settings = m365.app.extensions[SETTINGS_EXTENSION]
    m365.app.extensions[SETTINGS_EXTENSION] = settings.model_copy(
        update={"sync_debounce_seconds": DEBOUNCE, "sync_max_wait_seconds": 60.0}
    )
    ann = _subscribed_rep(m365)
    rounds.clear()
    for n in range(BURST):
        m365.add_event(
            ann, meeting(f"Call {n}", PAST + dt.timedelta(hours=n), ["dana@fabrikam.com"])
        )
    background: Any
    if _shared(m365.app):
        background = Worker(worker_app, idle=0.1)
        background.start_thread()
    else:  # embedded: the one process's scheduler runs the round
        background = BackgroundScheduler(timezone="UTC")
        background.start()
        m365.app.extensions[SCHEDULER_EXTENSION] = background
        _APPS[m365.app.name] = m365.app
    try:
        go = threading.Barrier(BURST)

        def notify() -> None:
            go.wait()
            _notify(m365, ann)

        senders = [threading.Thread(target=notify) for _ in range(BURST)]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join(30)
        for _ in range(300):  # bounded: until all is read and nothing waits, then a while more
            with get_store(m365.app).session() as session:
                waiting = session.scalars(select(Mailbox.needs_sync)).one()
                due = session.scalar(select(func.count()).where(JobRun.status != "done"))
            if _logged(m365.app) == BURST and not waiting and not due:
                break
            time.sleep(0.1)
        time.sleep(DEBOUNCE + 1)  # a round that was still to come would have come by now
    finally:
        if isinstance(background, Worker):
            background.stop()
        else:
            background.shutdown(wait=True)
            m365.app.extensions.pop(SCHEDULER_EXTENSION, None)

    assert _logged(m365.app) == BURST
    assert 1 <= len(rounds) <= 2, rounds


def test_two_notifications_at_once_make_one_leading_round_not_two(
    m365: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two notifications for a quiet mailbox arrive together. The first is read at once (the
    leading edge); the second must see the first and wait with what else comes. Each reads
    the mailbox and writes it back: unlocked, both read it quiet and both asked for a round
    now (a burst made three rounds on a loaded machine)."""
    ann = _subscribed_rep(m365)
    real = meetings_sync.notified
    together = threading.Barrier(2)
    asked: list[dt.datetime] = []

    def notified(mailbox: Mailbox, settings: Any, now: dt.datetime) -> dt.datetime:
        # both inside their transactions, having read the mailbox, if the other can be (else
        # the other waits for this one's lock, as it should)
        with contextlib.suppress(threading.BrokenBarrierError):
            together.wait(1)
        when = real(mailbox, settings, now)
        asked.append(when - now)
        return when

    monkeypatch.setattr(meetings_sync, "notified", notified)
    senders = [threading.Thread(target=_notify, args=(m365, ann)) for _ in range(2)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(30)

    assert len(asked) == 2
    assert sorted(w > dt.timedelta(0) for w in asked) == [False, True], asked
