"""A mailbox's rounds: any failure is recorded and retried with backoff, never blocking the
other mailboxes; ``needs_sync`` is cleared only when a round has committed.

The rounds read the sandbox over real HTTP; a "bug" is a planner monkeypatched to raise, an
integrity error one that every attempt of the round meets. Clocks are passed in (``now``), so
the backoff is tested by the rounds that run, never by timings.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from connector.meetings import sync as meetings_sync
from connector.meetings.sync import retry_after, sync_due, sync_mailbox
from connector.store.db import get_store
from connector.store.models import Interaction, Mailbox, utcnow
from tests.connector.conftest import Tenant, meeting
from tests.connector.test_meeting_sync import PAST, _key, add_deal


def _mailbox(t: Tenant, email: str) -> Mailbox:
    with get_store(t.app).session() as session:
        found = session.scalars(select(Mailbox).where(Mailbox.rep_email == email)).one()
        session.expunge(found)
        return found


def _status(t: Tenant) -> dict[str, dict[str, Any]]:
    answer = t.app.test_client().get(
        "/api/v1/sync/status", headers={"Authorization": f"Bearer {_key(t)}"}
    )
    assert answer.status_code == 200
    return {m["rep"]: m for m in answer.json["mailboxes"]}


def _two_reps(t: Tenant) -> tuple[str, str]:
    ann = t.add_rep("ann", "Ann Lee")
    raj = t.add_rep("raj", "Raj Patel")
    add_deal(t, "OPP-1", raj, contacts=["dana@fabrikam.com"])
    t.add_event(raj, meeting("Pricing call", PAST, ["dana@fabrikam.com"]))
    return ann, raj


def _planner_fails_for(monkeypatch: pytest.MonkeyPatch, email: str, error: Exception) -> None:
    real = meetings_sync.plan_round

    def planner(delta: Any, stored: Any, policy: Any) -> Any:
        if stored.rep_email == email:
            raise error
        return real(delta, stored, policy)

    monkeypatch.setattr(meetings_sync, "plan_round", planner)


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("a bug in the planner"),
        IntegrityError("INSERT INTO interactions", {}, Exception("UNIQUE constraint failed")),
    ],
    ids=["bug", "integrity"],
)
def test_any_exception_in_a_round_is_recorded_and_the_next_mailbox_still_syncs(
    m365: Tenant,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    error: Exception,
) -> None:
    ann, raj = _two_reps(m365)
    _planner_fails_for(monkeypatch, ann, error)

    with caplog.at_level(logging.ERROR, logger="connector.meetings.sync"):
        reports = {r.mailbox: r for r in sync_due(m365.app)}

    assert reports[ann].error is not None
    assert reports[raj].error is None
    failed = _mailbox(m365, ann)
    assert failed.last_error
    assert type(error).__name__ in failed.last_error
    assert failed.failures == 1
    assert failed.needs_sync  # retried, not forgotten
    with get_store(m365.app).session() as session:
        assert session.scalars(select(Interaction.subject)).all() == ["Pricing call"]
    status = _status(m365)
    assert status[ann]["failures"] == 1
    assert status[ann]["last_error"]
    assert status[ann]["waiting_for_a_round"] is True
    assert status[ann]["next_round_at"] is not None
    assert status[raj]["last_success_at"]
    # not swallowed: logged with its traceback
    [logged] = [r for r in caplog.records if r.exc_info and ann in r.getMessage()]
    assert logged.exc_info is not None
    assert logged.exc_info[1] is error


def test_a_failing_mailbox_is_retried_with_backoff_then_recovers(
    m365: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    ann, raj = _two_reps(m365)
    _planner_fails_for(monkeypatch, ann, RuntimeError("a bug"))
    start = utcnow()

    def due_at(seconds: float) -> list[str]:
        return sorted(
            r.mailbox for r in sync_due(m365.app, now=start + dt.timedelta(seconds=seconds))
        )

    assert due_at(0) == [ann, raj]  # both never read
    assert due_at(10) == []  # ann waits out her backoff (30 s after the first failure)
    assert due_at(31) == [ann]  # second failure: the next wait is 60 s
    assert _mailbox(m365, ann).failures == 2
    assert due_at(31 + 59) == []
    assert due_at(31 + 61) == [ann]
    assert _mailbox(m365, ann).failures == 3

    monkeypatch.undo()  # the bug is fixed
    assert due_at(31 + 61 + 121) == [ann]
    healed = _mailbox(m365, ann)
    assert (healed.failures, healed.last_error, healed.needs_sync) == (0, None, False)
    assert due_at(31 + 61 + 121 + 1) == []  # nothing asks for a round


def test_the_backoff_doubles_up_to_an_hour() -> None:
    waits = [retry_after(n).total_seconds() for n in range(8)]
    assert waits == [0, 30, 60, 120, 240, 480, 960, 1920]
    assert retry_after(9).total_seconds() == 3600
    assert retry_after(500).total_seconds() == 3600


def test_needs_sync_stays_set_until_the_round_commits(
    m365: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    ann, _ = _two_reps(m365)
    seen: list[bool] = []
    real = meetings_sync.plan_round

    def planner(delta: Any, stored: Any, policy: Any) -> Any:
        # What a crash (kill -9) right now would leave behind for the next process:
        with get_store(m365.app).session() as other:
            mailbox = other.scalars(select(Mailbox).where(Mailbox.rep_email == ann)).one()
            seen.append(mailbox.needs_sync)
        return real(delta, stored, policy)

    monkeypatch.setattr(meetings_sync, "plan_round", planner)
    report = sync_mailbox(m365.app, ann)

    assert report.error is None
    assert seen == [True]
    assert _mailbox(m365, ann).needs_sync is False


def test_a_notification_during_the_round_keeps_the_mailbox_waiting(
    m365: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    ann, _ = _two_reps(m365)
    real = meetings_sync.read_delta

    def reader(*args: Any, **kwargs: Any) -> Any:
        delta = real(*args, **kwargs)
        with get_store(m365.app).session() as other:  # Graph notifies while we read
            mailbox = other.scalars(select(Mailbox).where(Mailbox.rep_email == ann)).one()
            mailbox.needs_sync = True
            mailbox.notified_at = utcnow()
        return delta

    monkeypatch.setattr(meetings_sync, "read_delta", reader)
    assert sync_mailbox(m365.app, ann).error is None
    assert _mailbox(m365, ann).needs_sync is True
