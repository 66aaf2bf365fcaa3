"""One delta round per mailbox at a time across all processes (issue 12).

Two apps on one database stand for two processes: each has its own engine, pool and
in-process round locks, so only the store's lock (``store.locks``: a PostgreSQL advisory lock,
a lock file beside a SQLite database) can keep their rounds apart. The first round is held in
the middle of its Graph read while the second is started from another thread.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from connector.app import create_app
from connector.meetings import sync as meetings_sync
from connector.meetings.sync import SyncReport, sync_mailbox
from connector.settings import SETTINGS_EXTENSION
from connector.store import locks
from connector.store.db import get_store
from connector.store.models import Interaction, Mailbox, MailboxEvent
from tests.connector.conftest import Tenant, meeting
from tests.connector.test_meeting_sync import PAST, add_deal

MEETINGS = 3


@pytest.fixture
def other_process(m365: Tenant) -> Iterator[Flask]:
    """A second app on the same database: as another process would be."""
    app = create_app(settings=m365.app.extensions[SETTINGS_EXTENSION])
    yield app
    from connector.microsoft365 import close

    close(app)
    get_store(app).dispose()


class HeldRead:
    """read_delta, held in its first call until ``go`` is set."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.reading, self.go = threading.Event(), threading.Event()
        self.calls = 0
        real = meetings_sync.read_delta

        def held(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            delta = real(*args, **kwargs)
            if self.calls == 1:
                self.reading.set()
                assert self.go.wait(30)
            return delta

        monkeypatch.setattr(meetings_sync, "read_delta", held)


def _in_thread(app: Flask, email: str, **kwargs: Any) -> tuple[threading.Thread, list[SyncReport]]:
    out: list[SyncReport] = []
    thread = threading.Thread(target=lambda: out.append(sync_mailbox(app, email, **kwargs)))
    thread.start()
    return thread, out


def _setup(t: Tenant) -> str:
    ann = t.add_rep("ann", "Ann Lee")
    add_deal(t, "OPP-1", ann, contacts=["dana@fabrikam.com"])
    for n in range(MEETINGS):
        start = PAST + dt.timedelta(hours=n)
        t.add_event(ann, meeting(f"Call {n}", start, ["dana@fabrikam.com"]))
    return ann


def _logged_once(app: Flask, email: str) -> None:
    with get_store(app).session() as session:
        mailbox = session.scalars(select(Mailbox).where(Mailbox.rep_email == email)).one()
        links = session.scalar(
            select(func.count())
            .select_from(MailboxEvent)
            .where(MailboxEvent.mailbox_id == mailbox.id)
        )
        interactions = session.scalar(select(func.count()).select_from(Interaction))
        assert (links, interactions) == (MEETINGS, MEETINGS)
        assert (mailbox.last_error, mailbox.failures) == (None, 0)


def test_a_round_started_elsewhere_while_one_runs_does_not_start(
    m365: Tenant, other_process: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    ann = _setup(m365)
    read = HeldRead(monkeypatch)
    first, reports = _in_thread(m365.app, ann)
    assert read.reading.wait(30)

    second = sync_mailbox(other_process, ann)  # another process, the same mailbox, now

    assert second.busy
    assert second.error is None
    assert read.calls == 1  # it never read the mailbox
    read.go.set()
    first.join(30)
    assert reports[0].error is None
    assert not reports[0].busy
    assert reports[0].meetings == MEETINGS
    _logged_once(m365.app, ann)


def test_a_round_that_waits_runs_after_the_other_and_logs_nothing_twice(
    m365: Tenant, other_process: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    ann = _setup(m365)
    read = HeldRead(monkeypatch)
    first, reports = _in_thread(m365.app, ann)
    assert read.reading.wait(30)
    told = threading.Event()

    second, later = _in_thread(other_process, ann, wait=30, waiting=told.set)
    assert told.wait(30)  # it says that it waits ...
    assert read.calls == 1  # ... and reads nothing while the first round runs
    read.go.set()
    first.join(30)
    second.join(30)

    assert [r.error for r in reports + later] == [None, None]
    assert not later[0].busy
    assert read.calls == 2
    assert later[0].meetings == 0  # the first round's delta link: nothing new
    _logged_once(m365.app, ann)


def test_the_lock_is_free_again_when_its_holder_is_gone(m365: Tenant) -> None:
    store = get_store(m365.app)
    with locks.hold(store, "mailbox_round", "ann@x") as held:
        assert held
        with locks.hold(store, "mailbox_round", "ann@x") as again:
            assert not again  # not even the same process holds it twice
        with locks.hold(store, "mailbox_round", "raj@x") as other:
            assert other  # another mailbox is another lock
    with locks.hold(store, "mailbox_round", "ann@x") as after:
        assert after
