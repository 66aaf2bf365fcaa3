"""A rep removed while her mailbox is being read: the round ends quietly and writes nothing
(schemathesis found it: a rep deleted through the API during a background round left a
traceback, ``assert mailbox is not None``, in the service's log)."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time

import pytest
from sqlalchemy import func, select

from connector.deals.reps import delete_rep
from connector.meetings.sync import SyncReport, sync_mailbox
from connector.store.db import get_store
from connector.store.models import Interaction, Mailbox, Rep, utcnow
from tests.connector.conftest import Tenant, meeting


def test_a_rep_deleted_during_her_round_ends_it_without_an_error(
    m365: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    ann = m365.add_rep("ann", "Ann Lee")
    start = utcnow().replace(microsecond=0) - dt.timedelta(days=2)
    m365.add_event(ann, meeting("Kick-off", start, [ann, "dana@fabrikam.com"]))
    m365.control("PATCH", "/settings", {"latencySeconds": 0.4})  # each Graph call waits
    reports: list[SyncReport] = []
    round_ = threading.Thread(target=lambda: reports.append(sync_mailbox(m365.app, ann)))
    store = get_store(m365.app)
    with caplog.at_level(logging.INFO, logger="connector"):
        round_.start()
        time.sleep(0.25)  # the round has begun and waits on Graph
        with store.session() as session:
            rep = session.scalar(select(Rep).where(Rep.email == ann))
            assert rep is not None
            delete_rep(session, rep, utcnow())
        round_.join(timeout=30)
    m365.control("PATCH", "/settings", {"latencySeconds": 0})
    assert len(reports) == 1
    assert reports[0].error is None, reports
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Mailbox)) == 0
        assert session.scalar(select(func.count()).select_from(Interaction)) == 0
