"""Two reps' rounds on one meeting, truly at the same time: logged once, with both reps.

Each try adds a customer meeting that Ann organizes and Raj attends, then runs both mailboxes'
delta rounds in two threads released together, so both reach the per-meeting write at once.
"""

from __future__ import annotations

import datetime as dt
import threading

from sqlalchemy import select

from connector.meetings.sync import SyncReport, sync_due, sync_mailbox
from connector.store.db import get_store
from connector.store.models import Interaction, Mailbox, Rep
from tests.connector.conftest import Tenant, meeting
from tests.connector.test_meeting_sync import PAST, add_deal

TRIES = 8


def _rounds_at_once(t: Tenant, *emails: str) -> list[SyncReport]:
    start = threading.Barrier(len(emails))
    reports: dict[str, SyncReport] = {}
    crashes: list[BaseException] = []

    def run(email: str) -> None:
        start.wait()
        try:
            reports[email] = sync_mailbox(t.app, email)
        except BaseException as error:  # a crash must fail the test, not vanish in the thread
            crashes.append(error)

    threads = [threading.Thread(target=run, args=(email,)) for email in emails]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert crashes == []
    return [reports[email] for email in emails]


def test_two_reps_rounds_at_once_log_one_meeting_with_both_reps(m365: Tenant) -> None:
    ann = m365.add_rep("ann", "Ann Lee")
    raj = m365.add_rep("raj", "Raj Patel")
    add_deal(m365, "OPP-1", ann, contacts=["dana@fabrikam.com"])
    _rounds_at_once(m365, ann, raj)  # the first rounds set up both mailboxes' delta links

    for n in range(TRIES):
        subject = f"Pricing call {n}"
        start = PAST + dt.timedelta(hours=n)
        m365.add_event(ann, meeting(subject, start, [raj, "dana@fabrikam.com"]))

        reports = _rounds_at_once(m365, ann, raj)

        assert [r.error for r in reports] == [None, None], f"try {n}"
        with get_store(m365.app).session() as session:
            logged = session.scalars(
                select(Interaction).where(Interaction.subject == subject)
            ).all()
            assert len(logged) == 1, f"try {n}"
            assert logged[0].details is not None
            assert list(logged[0].details.mailboxes) == sorted([ann, raj]), f"try {n}"
            for mailbox in session.scalars(select(Mailbox)):
                assert (mailbox.last_error, mailbox.failures) == (None, 0), f"try {n}"


def test_a_round_that_cannot_read_its_page_is_recorded_and_the_next_mailbox_still_syncs(
    m365: Tenant,
) -> None:
    ann = m365.add_rep("ann", "Ann Lee")
    raj = m365.add_rep("raj", "Raj Patel")
    add_deal(m365, "OPP-1", raj, contacts=["dana@fabrikam.com"])
    m365.add_event(raj, meeting("Pricing call", PAST, ["dana@fabrikam.com"]))
    with get_store(m365.app).session() as session:
        ann_id = session.scalars(select(Rep.entra_id).where(Rep.email == ann)).one()
    m365.control(
        "POST", "/faults", {"route": f"users/{ann_id}/calendarView", "status": "unreadable"}
    )

    reports = {r.mailbox: r for r in sync_due(m365.app)}

    assert reports[ann].error is not None
    assert reports[raj].error is None
    with get_store(m365.app).session() as session:
        failed = session.scalars(select(Mailbox).where(Mailbox.rep_email == ann)).one()
        assert failed.last_error
        assert failed.failures == 1
        assert failed.needs_sync  # retried, not forgotten
        assert session.scalars(select(Interaction.subject)).all() == ["Pricing call"]


def test_two_rounds_joining_a_meeting_already_logged_lose_no_rep(m365: Tenant) -> None:
    """The lost update: a meeting Ann's round logged; Raj's and Kim's rounds both add their
    mailbox to the same stored interaction at once. Without a row lock between load and write,
    one of them overwrites the other's mailbox list."""
    ann = m365.add_rep("ann", "Ann Lee")
    raj = m365.add_rep("raj", "Raj Patel")
    kim = m365.add_rep("kim", "Kim Akers")
    add_deal(m365, "OPP-1", ann, contacts=["dana@fabrikam.com"])
    _rounds_at_once(m365, ann, raj, kim)  # the first rounds set up the delta links

    for n in range(TRIES):
        subject = f"Review {n}"
        start = PAST + dt.timedelta(hours=n)
        m365.add_event(ann, meeting(subject, start, [raj, kim, "dana@fabrikam.com"]))
        assert sync_mailbox(m365.app, ann).error is None  # logged, with Ann only

        reports = _rounds_at_once(m365, raj, kim)

        assert [r.error for r in reports] == [None, None], f"try {n}"
        with get_store(m365.app).session() as session:
            logged = session.scalars(
                select(Interaction).where(Interaction.subject == subject)
            ).one()
            assert logged.details is not None
            assert list(logged.details.mailboxes) == sorted([ann, raj, kim]), f"try {n}"
