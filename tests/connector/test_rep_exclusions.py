"""A rep's "Don't log this meeting" and her pause of capture, against real rounds: the sandbox's
calendars read through the real msal and msgraph-sdk, the exclusion kept in the store."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from connector.deals.reps import channels_for, delete_rep, set_digest, update_preferences
from connector.errors import Conflict, Forbidden
from connector.meetings.exclusions import undo, withdraw
from connector.settings import SETTINGS_EXTENSION
from connector.store.db import get_store
from connector.store.models import Interaction, MeetingExclusion, Rep, utcnow
from connector.teams.digests import queue_digests
from tests.connector.conftest import Tenant, meeting, recurrence
from tests.connector.test_meeting_sync import (
    FUTURE,
    NOW,
    PAST,
    _graph,
    _key,
    add_deal,
    interactions,
    sync,
)


def _withdraw(t: Tenant, interaction_id: int, rep: str, now: dt.datetime | None = None) -> None:
    with get_store(t.app).session() as session:
        interaction = session.get(Interaction, interaction_id)
        assert interaction is not None
        settings = t.app.extensions[SETTINGS_EXTENSION]
        withdraw(session, interaction, rep, settings, now or utcnow(), source="teams")


def _undo(t: Tenant, interaction_id: int, rep: str, now: dt.datetime | None = None) -> None:
    with get_store(t.app).session() as session:
        interaction = session.get(Interaction, interaction_id)
        assert interaction is not None
        settings = t.app.extensions[SETTINGS_EXTENSION]
        undo(session, interaction, rep, settings, now or utcnow(), source="teams")


def test_a_withdrawn_meeting_stays_out_when_it_is_updated_and_read_again(m365: Tenant) -> None:
    ann = m365.add_rep("ann", "Ann Lee")
    raj = m365.add_rep("raj", "Raj Patel")
    add_deal(m365, "OPP-1", ann, contacts=["dana@fabrikam.com"])
    event = m365.add_event(ann, meeting("Pricing review", PAST, [raj, "dana@fabrikam.com"]))
    sync(m365, ann)
    [logged] = interactions(m365)
    _withdraw(m365, logged.id, ann)

    _graph(m365, "PATCH", f"/users/{ann}/events/{event['id']}", {"subject": "Pricing, again"})
    reports = sync(m365, ann, raj, full=True)  # a colleague's copy does not bring it back

    [kept] = interactions(m365)
    assert (kept.id, kept.status, kept.subject) == (logged.id, "withdrawn", "Pricing review")
    assert [r.skipped for r in reports] == [{"excluded_by_rep": 1}, {"excluded_by_rep": 1}]


def test_undo_within_the_day_brings_it_back_and_later_rounds_update_it_again(
    m365: Tenant,
) -> None:
    ann = m365.add_rep("ann", "Ann Lee")
    add_deal(m365, "OPP-1", ann, contacts=["dana@fabrikam.com"])
    event = m365.add_event(ann, meeting("Pricing review", PAST, ["dana@fabrikam.com"]))
    sync(m365, ann)
    [logged] = interactions(m365)
    _withdraw(m365, logged.id, ann)
    _undo(m365, logged.id, ann)
    _graph(m365, "PATCH", f"/users/{ann}/events/{event['id']}", {"subject": "Pricing, again"})
    sync(m365, ann)

    [back] = interactions(m365)
    assert (back.status, back.subject) == ("held", "Pricing, again")
    with get_store(m365.app).session() as session:
        assert session.scalars(select(MeetingExclusion)).all() == []


def test_undo_after_a_day_or_by_someone_else_is_refused(m365: Tenant) -> None:
    ann = m365.add_rep("ann", "Ann Lee")
    raj = m365.add_rep("raj", "Raj Patel")
    add_deal(m365, "OPP-1", ann, contacts=["dana@fabrikam.com"])
    m365.add_event(ann, meeting("Pricing review", PAST, [raj, "dana@fabrikam.com"]))
    sync(m365, ann, raj)
    [logged] = interactions(m365)
    _withdraw(m365, logged.id, ann)

    with pytest.raises(Forbidden):
        _undo(m365, logged.id, raj)
    with pytest.raises(Conflict):
        _undo(m365, logged.id, ann, now=utcnow() + dt.timedelta(days=1, minutes=1))
    [kept] = interactions(m365)
    assert kept.status == "withdrawn"


def test_a_rep_cannot_withdraw_a_meeting_that_is_not_hers(m365: Tenant) -> None:
    ann = m365.add_rep("ann", "Ann Lee")
    kim = m365.add_rep("kim", "Kim Ode")
    add_deal(m365, "OPP-1", ann, contacts=["dana@fabrikam.com"])
    m365.add_event(ann, meeting("Pricing review", PAST, ["dana@fabrikam.com"]))
    sync(m365, ann)
    [logged] = interactions(m365)

    with pytest.raises(Forbidden):
        _withdraw(m365, logged.id, kim)


def test_the_series_of_a_withdrawn_occurrence_logs_no_new_occurrence(m365: Tenant) -> None:
    ann = m365.add_rep("ann", "Ann Lee")
    add_deal(m365, "OPP-1", ann, contacts=["dana@fabrikam.com"])
    start = NOW + dt.timedelta(hours=2) - dt.timedelta(days=21)
    body = meeting("Weekly status", start, ["dana@fabrikam.com"], recurrence=recurrence(start, 2))
    series = m365.add_event(ann, body)
    sync(m365, ann)
    first, second = interactions(m365)
    _withdraw(m365, first.id, ann)
    longer = dict(body["recurrence"])
    longer["range"] = {**body["recurrence"]["range"], "numberOfOccurrences": 4}
    _graph(m365, "PATCH", f"/users/{ann}/events/{series['id']}", {"recurrence": longer})
    sync(m365, ann, full=True)

    statuses = {i.id: i.status for i in interactions(m365)}
    # the new occurrences stay out; the one logged before is the rep's to withdraw or keep
    assert statuses == {first.id: "withdrawn", second.id: "held"}


def test_while_capture_is_paused_the_mailbox_is_not_read(m365: Tenant) -> None:
    ann = m365.add_rep("ann", "Ann Lee")
    add_deal(m365, "OPP-1", ann, contacts=["dana@fabrikam.com"])
    m365.add_event(ann, meeting("Pricing review", FUTURE, ["dana@fabrikam.com"]))
    with get_store(m365.app).session() as session:
        update_preferences(session, ann, capture_paused_until=utcnow() + dt.timedelta(hours=2))
    m365.control("DELETE", "/requests")

    [report] = sync(m365, ann)

    assert report.paused_until is not None
    assert interactions(m365) == []
    assert m365.control("GET", "/requests")["byMailbox"].get(ann, 0) == 0
    assert not [r for r in m365.control("GET", "/requests")["recent"] if "/users/" in r["path"]]
    [resumed] = sync(m365, ann, now=utcnow() + dt.timedelta(hours=3))
    assert resumed.paused_until is None
    assert len(interactions(m365)) == 1


def test_admins_see_a_reps_exclusions_and_cannot_lift_them(m365: Tenant) -> None:
    ann = m365.add_rep("ann", "Ann Lee")
    add_deal(m365, "OPP-1", ann, contacts=["dana@fabrikam.com"])
    m365.add_event(ann, meeting("Pricing review", PAST, ["dana@fabrikam.com"]))
    sync(m365, ann)
    [logged] = interactions(m365)
    _withdraw(m365, logged.id, ann)
    client, headers = m365.app.test_client(), {"Authorization": f"Bearer {_key(m365)}"}

    listed = client.get(f"/api/v1/reps/{ann}/exclusions", headers=headers)
    lift = client.delete(f"/api/v1/reps/{ann}/exclusions", headers=headers)
    unknown = client.get("/api/v1/reps/nobody@contoso.example/exclusions", headers=headers)

    assert listed.status_code == 200, listed.json
    [item] = listed.json["items"]
    assert item["interaction"] == logged.id
    assert item["meeting_key"] == logged.external_key
    assert lift.status_code == 405
    shown = client.get("/api/v1/interactions?status=withdrawn", headers=headers)
    assert [i["id"] for i in shown.json["items"]] == [logged.id]
    assert unknown.status_code == 404
    assert unknown.content_type == "application/problem+json"


def test_the_digest_comes_at_the_time_the_rep_chose(m365: Tenant) -> None:
    ann = m365.add_rep("ann", "Ann Lee", time_zone="Europe/Berlin")
    with get_store(m365.app).session() as session:
        update_preferences(session, ann, daily_digest=True, digest_time="11:30")
    monday_10_berlin = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)

    assert queue_digests(m365.app, monday_10_berlin) == []  # her working day began at 9
    assert queue_digests(m365.app, monday_10_berlin + dt.timedelta(hours=1, minutes=30)) == [ann]


def test_a_reps_channels_follow_her_preferences_within_and_across_sessions(m365: Tenant) -> None:
    """The preferences are read once per session (a meeting round asks per reminder): one set
    in the same session, or since in another, is what the next delivery goes by."""
    ann = m365.add_rep("ann", "Ann Lee")
    both = ["calendar", "teams"]
    store = get_store(m365.app)
    with store.session() as session:
        assert channels_for(session, ann, both) == both  # none yet: remembered as none
        set_digest(session, ann, True)  # adds her row
        update_preferences(session, ann, channels="teams")
        assert channels_for(session, ann, both) == ["teams"]
    with store.session() as other:
        update_preferences(other, ann, channels="outlook")
    with store.session() as session:
        assert channels_for(session, ann, both) == ["calendar"]
        rep = session.scalar(select(Rep).where(Rep.email == ann))
        assert rep is not None
        delete_rep(session, rep, utcnow())
        assert channels_for(session, ann, both) == both
