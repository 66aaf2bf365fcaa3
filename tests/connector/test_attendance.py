"""Teams attendance over the sandbox: held, no-show, partial, not Teams, permission missing,
report late, a recurring occurrence, a rescheduled meeting; the CRM hears the attendance."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from connector.meetings.attendance import check_due
from connector.outbox import drain
from connector.store.db import get_store
from connector.store.models import AttendanceCheck, Deal, Interaction, utcnow
from sandbox.config import ALL_ROLES
from tests.connector.conftest import Tenant, meeting, recurrence, tenant_app
from tests.connector.receiver import Receiver, running_receiver
from tests.connector.test_meeting_sync import _graph, add_deal, interactions, sync
from tests.databases import Template

NOW = utcnow().replace(second=0, microsecond=0)
START = NOW - dt.timedelta(hours=2)
END = START + dt.timedelta(minutes=30)
DANA = "dana@fabrikam.com"


@pytest.fixture
def crm() -> Iterator[Receiver]:
    with running_receiver() as receiver:
        yield receiver


@pytest.fixture
def t(
    tmp_path: Path, migrated_template: Template, sandbox_tenant: Any, crm: Receiver
) -> Iterator[Tenant]:
    """The sandbox tenant and an app reading it (not served), with a CRM webhook receiver."""
    with tenant_app(
        tmp_path,
        migrated_template,
        sandbox_tenant,
        serve=False,
        webhook_url=crm.url,
        webhook_secret="s" * 32,
    ) as tenant:
        yield tenant


def _rep_and_deal(t: Tenant) -> str:
    ann = t.add_rep("ann", "Ann Lee")
    add_deal(t, "OPP-1", ann, contacts=[DANA], domains=["fabrikam.com"])
    return ann


def _teams_meeting(t: Tenant, ann: str, start: dt.datetime = START, **extra: Any) -> str:
    event = t.add_event(
        ann, meeting("Pricing review", start, [DANA], isOnlineMeeting=True, **extra)
    )
    join_url: str = event["onlineMeeting"]["joinUrl"]
    return join_url


def _joined(
    t: Tenant,
    join_url: str,
    *people: tuple[str, int],
    start: dt.datetime = START,
    ready: float = 0,
) -> None:
    t.control(
        "POST",
        "/attendance",
        {
            "joinUrl": join_url,
            "start": start.isoformat(),
            "end": (start + dt.timedelta(minutes=30)).isoformat(),
            "joined": [{"email": who, "minutes": minutes} for who, minutes in people],
            "readyAfterMinutes": ready,
        },
    )


def _deal(t: Tenant) -> Deal:
    with get_store(t.app).session() as session:
        deal = session.scalar(select(Deal).where(Deal.crm_id == "OPP-1"))
        assert deal is not None
        session.expunge(deal)
        return deal


def _attendance_hooks(t: Tenant, crm: Receiver) -> list[dict[str, Any]]:
    drain(t.app)
    bodies = [json.loads(r.body) for r in crm.received]
    return [
        b["data"]
        for b in bodies
        if b["type"] == "interaction.updated" and b["data"].get("change") == "attendance"
    ]


def _graph_requests(t: Tenant) -> dict[str, int]:
    summary = t.control("GET", "/requests")
    return {
        route: count for route, count in summary["byRoute"].items() if "onlineMeetings" in route
    }


def test_a_customer_who_joined_makes_the_meeting_held_with_who_came(
    t: Tenant, crm: Receiver
) -> None:
    ann = _rep_and_deal(t)
    join_url = _teams_meeting(t, ann)
    _joined(t, join_url, (ann, 30), (DANA, 25))
    sync(t, ann)
    t.http.delete(f"{t.sandbox.base_url}/_sandbox/requests", timeout=10)

    assert check_due(t.app) == [(interactions(t)[0].id, "held")]

    [logged] = interactions(t)
    assert logged.status == "held"
    attendance = logged.details.attendance if logged.details else None
    assert attendance is not None
    assert attendance.result == "held"
    assert [(p.email, p.minutes) for p in attendance.customer] == [(DANA, 25.0)]
    assert [p.email for p in attendance.ours] == [ann]
    assert attendance.minutes == 30.0
    assert _deal(t).last_interaction_at == START
    [hook] = _attendance_hooks(t, crm)
    assert hook["status"] == "held"
    assert hook["attendance"]["result"] == "held"
    assert hook["attendance"]["customer"][0]["email"] == DANA
    # three Graph requests per verified meeting: find it, list its reports, read the session's
    assert sum(_graph_requests(t).values()) == 3


def test_nobody_from_the_customer_is_a_no_show_and_the_deals_clock_does_not_move(
    t: Tenant, crm: Receiver
) -> None:
    ann = _rep_and_deal(t)
    join_url = _teams_meeting(t, ann)
    _joined(t, join_url, (ann, 12))  # the rep waited twelve minutes, alone
    sync(t, ann)
    assert _deal(t).last_interaction_at == START  # held (not verified yet) until Teams says

    [(_, result)] = check_due(t.app)

    assert result == "no_show"
    [logged] = interactions(t)
    assert logged.status == "no_show"
    assert logged.details
    assert logged.details.attendance
    assert "nobody from the customer" in (logged.details.attendance.reason or "")
    assert _deal(t).last_interaction_at is None
    [hook] = _attendance_hooks(t, crm)
    assert (hook["status"], hook["attendance"]["result"]) == ("no_show", "no_show")
    # the next round reads the same event again: the calendar does not undo the no-show
    sync(t, ann, full=True)
    assert interactions(t)[0].status == "no_show"


def test_only_our_side_joined_is_a_no_show_naming_who_waited(t: Tenant) -> None:
    ann = _rep_and_deal(t)
    bob = t.add_rep("bob", "Bob Berg")
    join_url = _teams_meeting(t, ann)
    _joined(t, join_url, (ann, 30), (bob, 20))
    sync(t, ann)

    [(_, result)] = check_due(t.app)

    assert result == "no_show"
    [logged] = interactions(t)
    assert logged.details
    assert logged.details.attendance
    assert sorted(p.email or "" for p in logged.details.attendance.ours) == [ann, bob]
    assert logged.details.attendance.customer == ()


def test_one_of_two_customers_is_enough_for_held(t: Tenant) -> None:
    ann = _rep_and_deal(t)
    event = t.add_event(
        ann,
        meeting("Pricing", START, [DANA, "lee@fabrikam.com"], isOnlineMeeting=True),
    )
    _joined(t, event["onlineMeeting"]["joinUrl"], (ann, 30), ("lee@fabrikam.com", 5))
    sync(t, ann)

    [(_, result)] = check_due(t.app)

    assert result == "held"
    [logged] = interactions(t)
    assert logged.details
    assert logged.details.attendance
    assert [p.email for p in logged.details.attendance.customer] == ["lee@fabrikam.com"]


def test_a_meeting_that_is_not_on_teams_is_held_not_verified(t: Tenant) -> None:
    ann = _rep_and_deal(t)
    t.add_event(ann, meeting("On site", START, [DANA]))
    sync(t, ann)

    assert check_due(t.app) == []

    [logged] = interactions(t)
    assert logged.status == "held"
    assert logged.details
    assert logged.details.attendance
    assert (logged.details.attendance.result, logged.details.attendance.reason) == (
        "not_verified",
        "not a Teams meeting",
    )
    with get_store(t.app).session() as session:
        assert session.scalars(select(AttendanceCheck)).all() == []


def test_a_round_writes_each_new_meeting_once_with_its_attendance_state(t: Tenant) -> None:
    """The attendance a logged meeting starts with (pending for Teams, not verified for the
    others) goes in with its row: no UPDATE of the interactions the round just inserted."""
    ann = _rep_and_deal(t)
    t.add_event(ann, meeting("On site", START, [DANA]))
    _teams_meeting(t, ann, START + dt.timedelta(hours=1))
    statements: list[str] = []
    engine = get_store(t.app).engine
    listen = lambda *a: statements.append(a[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listen)
    try:
        sync(t, ann)
    finally:
        event.remove(engine, "before_cursor_execute", listen)

    assert [s for s in statements if s.lstrip().startswith("UPDATE interactions")] == []
    by_subject = {i.subject: i.details.attendance for i in interactions(t) if i.details}
    assert {s: (a.result, a.reason) for s, a in by_subject.items() if a} == {
        "On site": ("not_verified", "not a Teams meeting"),
        "Pricing review": ("pending", "Teams attendance is read after the end"),
    }
    with get_store(t.app).session() as session:
        assert len(session.scalars(select(AttendanceCheck)).all()) == 1


@pytest.mark.parametrize("missing", ["permission", "policy"])
def test_without_the_permission_or_the_policy_it_is_held_not_verified_saying_why(
    t: Tenant, crm: Receiver, missing: str
) -> None:
    if missing == "permission":
        roles = [r for r in ALL_ROLES if r != "OnlineMeetingArtifact.Read.All"]
        t.control("PATCH", "/settings", {"roles": roles})
    else:
        t.control("PUT", "/online-meetings/policy", {"granted": False})
    ann = _rep_and_deal(t)
    join_url = _teams_meeting(t, ann)
    _joined(t, join_url, (ann, 30), (DANA, 30))
    sync(t, ann)

    [(_, result)] = check_due(t.app)

    assert result == "not_verified"
    [logged] = interactions(t)
    assert logged.status == "held"
    assert logged.details
    assert logged.details.attendance
    reason = logged.details.attendance.reason or ""
    assert "not permitted" in reason
    assert ("OnlineMeetingArtifact.Read.All" if missing == "permission" else "policy") in reason
    with get_store(t.app).session() as session:
        [check] = session.scalars(select(AttendanceCheck)).all()
        assert check.status == "gave_up"
    [hook] = _attendance_hooks(t, crm)
    assert hook["attendance"]["result"] == "not_verified"


def test_a_late_report_is_looked_for_again_then_given_up_saying_why(t: Tenant) -> None:
    ann = _rep_and_deal(t)
    join_url = _teams_meeting(t, ann)
    _joined(t, join_url, (ann, 30), (DANA, 30), ready=600)  # ten hours late
    sync(t, ann)

    assert check_due(t.app) == []  # not ready: looked again later
    with get_store(t.app).session() as session:
        [check] = session.scalars(select(AttendanceCheck)).all()
        first_retry = check.due_at
        assert check.status == "pending"
        assert check.attempts == 1
        assert first_retry > utcnow()
    [logged] = interactions(t)
    assert logged.details
    assert logged.details.attendance
    assert logged.details.attendance.result == "pending"
    assert "not ready" in (logged.details.attendance.reason or "")

    assert check_due(t.app, now=first_retry) == []
    with get_store(t.app).session() as session:
        [check] = session.scalars(select(AttendanceCheck)).all()
        assert check.due_at - first_retry > dt.timedelta(minutes=10)  # backing off

    [(_, result)] = check_due(t.app, now=END + dt.timedelta(hours=7))
    assert result == "not_verified"
    [logged] = interactions(t)
    assert logged.details
    assert logged.details.attendance
    assert "no attendance report 6 hours after the end" in (logged.details.attendance.reason or "")


def test_a_report_that_arrives_late_is_read_on_a_later_look(t: Tenant) -> None:
    ann = _rep_and_deal(t)
    join_url = _teams_meeting(t, ann)
    _joined(t, join_url, (ann, 30), (DANA, 30), ready=600)
    sync(t, ann)
    assert check_due(t.app) == []
    _joined(t, join_url, (ann, 30), (DANA, 30), ready=0)  # now it is there

    [(_, result)] = check_due(t.app, now=utcnow() + dt.timedelta(hours=1))

    assert result == "held"


def test_each_occurrence_of_a_series_gets_its_own_sessions_attendance(t: Tenant) -> None:
    ann = _rep_and_deal(t)
    first = NOW.replace(hour=9, minute=0) - dt.timedelta(days=3)
    body = meeting(
        "Weekly sync",
        first,
        [DANA],
        isOnlineMeeting=True,
        recurrence=recurrence(first, 3, daily=True),
    )
    join_url = t.add_event(ann, body)["onlineMeeting"]["joinUrl"]
    second = first + dt.timedelta(days=1)
    _joined(t, join_url, (ann, 30), start=first)  # alone
    _joined(t, join_url, (ann, 30), (DANA, 28), start=second)
    sync(t, ann)
    occurrences = interactions(t)
    assert len(occurrences) == 3

    found = dict(check_due(t.app))

    # the third had no session at all (no report a day later): held, not verified
    assert found == {
        occurrences[0].id: "no_show",
        occurrences[1].id: "held",
        occurrences[2].id: "not_verified",
    }
    assert [i.status for i in interactions(t)] == ["no_show", "held", "held"]
    assert _deal(t).last_interaction_at == second + dt.timedelta(days=1)  # held, not verified


def test_a_rescheduled_meeting_is_checked_after_its_new_end(t: Tenant) -> None:
    ann = _rep_and_deal(t)
    soon = NOW + dt.timedelta(hours=1)
    event = t.add_event(ann, meeting("Pricing", soon, [DANA], isOnlineMeeting=True))
    sync(t, ann)
    later = NOW + dt.timedelta(days=2)
    _graph(
        t,
        "PATCH",
        f"/users/{ann}/events/{event['id']}",
        {
            "start": {"dateTime": later.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
            "end": {
                "dateTime": (later + dt.timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%S"),
                "timeZone": "UTC",
            },
        },
    )
    sync(t, ann)

    assert check_due(t.app, now=soon + dt.timedelta(hours=1)) == []  # the old end: not yet

    with get_store(t.app).session() as session:
        [check] = session.scalars(select(AttendanceCheck)).all()
        assert check.due_at == later + dt.timedelta(minutes=40)
        assert check.attempts == 0
        interaction = session.get(Interaction, check.interaction_id)
        assert interaction is not None
        assert interaction.status == "scheduled"
