"""Meetings log themselves: Outlook calendars in the sandbox → interactions on the right deals.

Everything goes over real HTTP: the app reads the sandbox through the real msal and
msgraph-sdk, and the sandbox posts change notifications to the app served on a free port.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import event as orm_events
from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.admin.cli import cli
from connector.api.schemas import DealIn
from connector.deals.changes import upsert_deal
from connector.meetings.notifications import ensure_subscriptions
from connector.meetings.sync import SyncReport, mark_held, sync_mailbox
from connector.signals import meeting_logged, meeting_needs_choice
from connector.store.db import get_store
from connector.store.models import Deal, Interaction, Mailbox, Reminder, utcnow
from graph_sync.meetings import DeltaRound
from tests.connector.conftest import Tenant, meeting, recurrence

NOW = utcnow().replace(minute=0, second=0, microsecond=0)
PAST = NOW - dt.timedelta(days=2)
FUTURE = NOW + dt.timedelta(days=3)


def add_deal(
    t: Tenant,
    crm_id: str,
    owner: str,
    *,
    contacts: list[str] = (),
    domains: list[str] = (),
    title: str = "",
    at: dt.datetime | None = None,
) -> None:  # type: ignore[assignment]
    body = DealIn.model_validate(
        {
            "title": title or f"Deal {crm_id}",
            "pipeline": "classic5",
            "stage": "negotiation",
            "owner": owner,
            "account": {"name": "Customer", "domains": list(domains)},
            "contacts": [{"email": c} for c in contacts],
        }
    )
    with get_store(t.app).session() as session:
        upsert_deal(
            session,
            crm_id,
            body,
            actor="test",
            now=at or utcnow() - dt.timedelta(days=20),
            default_pipeline="classic5",
        )


def sync(t: Tenant, *emails: str, **kwargs: Any) -> list[SyncReport]:
    reports = [sync_mailbox(t.app, email, **kwargs) for email in emails]
    for report in reports:
        assert report.error is None, report.error
    return reports


def interactions(t: Tenant) -> list[Interaction]:
    with get_store(t.app).session() as session:
        return list(
            session.scalars(
                select(Interaction)
                .where(Interaction.kind == "meeting")
                .order_by(Interaction.started_at)
            )
        )


def deal_of(t: Tenant, interaction: Interaction) -> str | None:
    with get_store(t.app).session() as session:
        deal = session.get(Deal, interaction.deal_id) if interaction.deal_id else None
        return deal.crm_id if deal else None


def test_a_customer_meeting_is_logged_on_the_contacts_deal(m365: Tenant) -> None:
    ann = m365.add_rep("ann", "Ann Lee")
    add_deal(m365, "OPP-1", ann, contacts=["dana@fabrikam.com"], domains=["fabrikam.com"])
    m365.add_event(ann, meeting("Pricing review", PAST, ["dana@fabrikam.com"]))
    sync(m365, ann)
    [logged] = interactions(m365)
    assert deal_of(m365, logged) == "OPP-1"
    assert (logged.match_rule, logged.matched_address) == ("contact", "dana@fabrikam.com")
    assert logged.status == "held"
    assert logged.details is not None
    assert "body" not in logged.details.stored()
    assert logged.details.attendees[0].email == "dana@fabrikam.com"
    with get_store(m365.app).session() as session:
        deal = session.scalar(select(Deal).where(Deal.crm_id == "OPP-1"))
        assert deal is not None
        assert deal.last_interaction_at == PAST


def test_domain_matches_when_no_contact_does(m365: Tenant) -> None:
    ann = m365.add_rep("ann", "Ann Lee")
    add_deal(m365, "OPP-1", ann, domains=["fabrikam.com"])
    m365.add_event(ann, meeting("Intro", PAST, ["new.person@fabrikam.com"]))
    sync(m365, ann)
    [logged] = interactions(m365)
    assert (deal_of(m365, logged), logged.match_rule) == ("OPP-1", "domain")


def test_consumer_mail_domains_never_match(m365: Tenant) -> None:
    ann = m365.add_rep("ann", "Ann Lee")
    add_deal(m365, "OPP-1", ann, domains=["gmail.com"])
    m365.add_event(ann, meeting("Coffee", PAST, ["someone@gmail.com"]))
    [report] = sync(m365, ann)
    assert interactions(m365) == []
    assert report.skipped == {"no_matching_deal": 1}


def test_the_deal_owned_by_a_participant_wins(m365: Tenant) -> None:
    ann = m365.add_rep("ann", "Ann Lee")
    raj = m365.add_rep("raj", "Raj Patel")
    add_deal(m365, "RAJS", raj, domains=["fabrikam.com"])
    add_deal(m365, "ANNS", ann, domains=["fabrikam.com"])
    m365.add_event(ann, meeting("Roadmap", PAST, ["cto@fabrikam.com"]))
    sync(m365, ann)
    [logged] = interactions(m365)
    assert deal_of(m365, logged) == "ANNS"


def test_equally_good_deals_need_a_choice_that_the_api_settles(m365: Tenant) -> None:
    ann = m365.add_rep("ann", "Ann Lee")
    add_deal(m365, "A", ann, domains=["fabrikam.com"])
    add_deal(m365, "B", ann, domains=["fabrikam.com"])
    m365.add_event(ann, meeting("Which project?", PAST, ["cto@fabrikam.com"]))
    [report] = sync(m365, ann)
    assert report.needs_choice == 1
    [pending] = interactions(m365)
    assert pending.status == "needs_choice"
    assert pending.details is not None
    assert {c.deal for c in pending.details.candidates} == {"A", "B"}
    client = m365.app.test_client()
    headers = {"Authorization": f"Bearer {_key(m365)}"}
    listed = client.get("/api/v1/interactions?status=needs_choice", headers=headers).json["items"]
    assert [i["id"] for i in listed] == [pending.id]
    chosen = client.post(
        f"/api/v1/interactions/{pending.id}/deal", json={"deal": "B"}, headers=headers
    )
    assert chosen.status_code == 200, chosen.json
    assert (chosen.json["deal"], chosen.json["status"]) == ("B", "held")
    sync(m365, ann, full=True)  # a later round keeps the rep's choice
    [settled] = interactions(m365)
    assert deal_of(m365, settled) == "B"


def test_a_meeting_two_deals_could_own_asks_even_when_one_was_active_later(
    m365: Tenant,
) -> None:
    """Issue 11: the newer deal was taken by an unwritten "most recently active" rule."""
    ann = m365.add_rep("ann", "Ann Lee")
    add_deal(m365, "OLD", ann, domains=["fabrikam.com"], at=utcnow() - dt.timedelta(days=20))
    add_deal(m365, "NEW", ann, domains=["fabrikam.com"], at=utcnow() - dt.timedelta(days=1))
    m365.add_event(ann, meeting("Which project?", PAST, ["cto@fabrikam.com"]))
    asked: list[tuple[int, list[str]]] = []

    def ask(_session: Any, *, interaction: Interaction, reps: list[str]) -> None:
        asked.append((interaction.id, reps))

    with meeting_needs_choice.connected_to(ask):
        [report] = sync(m365, ann)

    assert report.needs_choice == 1
    [pending] = interactions(m365)
    assert (pending.status, pending.deal_id) == ("needs_choice", None)
    assert asked == [(pending.id, [ann])]  # teams sends the pick-a-deal card on this signal
    assert pending.details is not None
    assert [c.deal for c in pending.details.candidates] == ["NEW", "OLD"]
    assert pending.details.explanation is not None
    assert pending.details.explanation.startswith("needs a choice between NEW")


def test_the_explanation_names_the_deal_a_rep_chose_and_says_so(m365: Tenant) -> None:
    """Issue 11: after the rep chose another deal, the stored explanation named the old one."""
    ann = m365.add_rep("ann", "Ann Lee")
    add_deal(m365, "OPP-1", ann, contacts=["dana@fabrikam.com"])
    add_deal(m365, "OPP-2", ann, title="Fabrikam support renewal")
    m365.add_event(ann, meeting("Pricing review", PAST, ["dana@fabrikam.com"]))
    sync(m365, ann)
    client = m365.app.test_client()
    headers = {"Authorization": f"Bearer {_key(m365)}"}
    [logged] = client.get("/api/v1/deals/OPP-1/interactions", headers=headers).json["items"]
    assert logged["details"]["explanation"].startswith("matched deal OPP-1")

    moved = client.post(
        f"/api/v1/interactions/{logged['id']}/deal", json={"deal": "OPP-2"}, headers=headers
    )

    assert moved.status_code == 200, moved.json
    said = "key:test chose deal OPP-2, moving it from deal OPP-1"  # the API key's name
    assert moved.json["details"]["explanation"].startswith(said)
    assert "OPP-1 by contact" not in moved.json["details"]["explanation"]
    sync(m365, ann, full=True)  # a later round keeps the choice and its explanation
    [kept] = client.get("/api/v1/deals/OPP-2/interactions", headers=headers).json["items"]
    assert kept["details"]["explanation"].startswith(said)


def _key(t: Tenant) -> str:
    from connector.api.keys import create_key

    with get_store(t.app).session() as session:
        return create_key(session, "test", "write")


def test_private_meeting_is_never_logged(m365: Tenant) -> None:
    ann = m365.add_rep("ann", "Ann Lee")
    add_deal(m365, "OPP-1", ann, contacts=["dana@fabrikam.com"])
    m365.add_event(
        ann, meeting("Job interview", PAST, ["dana@fabrikam.com"], sensitivity="private")
    )
    m365.add_event(ann, meeting("Board", PAST, ["dana@fabrikam.com"], sensitivity="confidential"))
    [report] = sync(m365, ann)
    assert interactions(m365) == []
    assert report.skipped == {"private": 2}


def test_internal_only_all_day_declined_and_excluded_are_not_logged(m365: Tenant) -> None:
    ann = m365.add_rep("ann", "Ann Lee")
    raj = m365.add_rep("raj", "Raj Patel")
    add_deal(m365, "OPP-1", ann, contacts=["dana@fabrikam.com"])
    m365.add_event(ann, meeting("Team sync", PAST, [raj]))
    day = PAST.replace(hour=0)
    m365.add_event(
        ann, {**meeting("Offsite", day, ["dana@fabrikam.com"], minutes=24 * 60), "isAllDay": True}
    )
    m365.add_event(
        ann, meeting("Personal", PAST, ["dana@fabrikam.com"], categories=["Private stuff"])
    )
    m365.app.extensions["dealbridge.settings"].excluded_categories.append("private stuff")
    [report] = sync(m365, ann)
    assert interactions(m365) == []
    assert report.skipped == {"internal_only": 1, "all_day": 1, "excluded_category": 1}


def _twice_in_one_round(monkeypatch: pytest.MonkeyPatch, **copy: Any) -> None:
    """Each meeting read comes twice in its round: as it is, then a second copy (another event
    id, the same meeting) with ``copy`` changed, as a calendar holding a duplicate gives it."""
    from connector.meetings import sync as sync_module

    read = sync_module.read_delta

    def doubled(*args: Any, **kwargs: Any) -> DeltaRound:
        delta = read(*args, **kwargs)
        copies = [replace(m, event_id=f"{m.event_id}-copy", **copy) for m in delta.meetings]
        return replace(delta, meetings=[*delta.meetings, *copies])

    monkeypatch.setattr(sync_module, "read_delta", doubled)


def test_a_meeting_logged_then_made_private_in_the_same_round_leaves_no_trace(
    m365: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The round writes its new meetings together after its changes: the one a later copy
    made private is never written, and nobody hears of it."""
    ann = m365.add_rep("ann", "Ann Lee")
    add_deal(m365, "OPP-1", ann, contacts=["dana@fabrikam.com"])
    m365.add_event(ann, meeting("Demo", PAST, ["dana@fabrikam.com"]))
    _twice_in_one_round(monkeypatch, sensitivity="private")
    heard: list[int] = []
    with meeting_logged.connected_to(lambda _s, *, interaction, reps: heard.append(1)):
        [report] = sync(m365, ann)
    assert interactions(m365) == []
    assert heard == []
    assert report.failed == []


def test_a_meeting_seen_twice_in_one_round_is_one_row_told_once(
    m365: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its second copy updates the row the first made, before it is written; the round's new
    meetings are rows written with Core, never ORM objects."""
    ann = m365.add_rep("ann", "Ann Lee")
    add_deal(m365, "OPP-1", ann, contacts=["dana@fabrikam.com"])
    m365.add_event(ann, meeting("Demo", PAST, ["dana@fabrikam.com"]))
    _twice_in_one_round(monkeypatch, subject="Demo, moved")
    heard: list[tuple[int, list[str]]] = []
    added: list[object] = []

    def told(_session: Any, *, interaction: Any, reps: list[str]) -> None:
        heard.append((interaction.id, reps))

    def flushed(session: Any, *_: Any) -> None:
        added.extend(o for o in session.new if isinstance(o, Interaction))

    with meeting_logged.connected_to(told), _listening(Session, "before_flush", flushed):
        [report] = sync(m365, ann)
    [logged] = interactions(m365)
    assert (logged.subject, deal_of(m365, logged)) == ("Demo, moved", "OPP-1")
    assert heard == [(logged.id, [ann])]
    assert added == []
    assert report.failed == []


@contextlib.contextmanager
def _listening(target: Any, name: str, listener: Any) -> Iterator[None]:
    orm_events.listen(target, name, listener)
    try:
        yield
    finally:
        orm_events.remove(target, name, listener)


def test_one_meeting_in_two_mailboxes_is_one_interaction(m365: Tenant) -> None:
    ann = m365.add_rep("ann", "Ann Lee")
    raj = m365.add_rep("raj", "Raj Patel")
    add_deal(m365, "OPP-1", ann, contacts=["dana@fabrikam.com"])
    m365.add_event(ann, meeting("Demo", PAST, [raj, "dana@fabrikam.com"]))
    sync(m365, ann, raj)
    [logged] = interactions(m365)
    assert logged.details is not None
    assert list(logged.details.mailboxes) == sorted([ann, raj])
    assert set(logged.details.internal_participants) == {ann, raj}


def test_updates_move_the_meeting_and_cancellation_keeps_it_visible(m365: Tenant) -> None:
    ann = m365.add_rep("ann", "Ann Lee")
    raj = m365.add_rep("raj", "Raj Patel")
    add_deal(m365, "OPP-1", ann, contacts=["dana@fabrikam.com"])
    event = m365.add_event(ann, meeting("Negotiation", FUTURE, [raj, "dana@fabrikam.com"]))
    sync(m365, ann, raj)
    [scheduled] = interactions(m365)
    assert scheduled.status == "scheduled"
    token = _graph_token(m365)
    later = FUTURE + dt.timedelta(hours=2)
    requests.patch(
        f"{m365.sandbox.base_url}/v1.0/users/{ann}/events/{event['id']}",
        json={"start": meeting("x", later, [])["start"], "end": meeting("x", later, [])["end"]},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ).raise_for_status()
    sync(m365, ann, raj)
    [moved] = interactions(m365)
    assert moved.started_at == later
    requests.delete(
        f"{m365.sandbox.base_url}/v1.0/users/{ann}/events/{event['id']}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ).raise_for_status()
    sync(m365, ann, raj)
    [cancelled] = interactions(m365)
    assert cancelled.status == "cancelled"
    with get_store(m365.app).session() as session:
        deal = session.scalar(select(Deal).where(Deal.crm_id == "OPP-1"))
        assert deal is not None
        assert deal.last_interaction_at is None


def _graph_token(t: Tenant) -> str:
    from connector.microsoft365 import graph_client

    return graph_client(t.app).tokens.token()


def _graph(t: Tenant, method: str, path: str, body: Any = None) -> None:
    requests.request(
        method,
        f"{t.sandbox.base_url}/v1.0{path}",
        json=body,
        headers={"Authorization": f"Bearer {_graph_token(t)}"},
        timeout=10,
    ).raise_for_status()


def test_a_chosen_meeting_that_becomes_private_is_dropped_not_kept(m365: Tenant) -> None:
    ann = m365.add_rep("ann", "Ann Lee")
    raj = m365.add_rep("raj", "Raj Patel")
    add_deal(m365, "A", ann, domains=["fabrikam.com"])
    add_deal(m365, "B", ann, domains=["fabrikam.com"])
    event = m365.add_event(ann, meeting("Which project?", PAST, [raj, "cto@fabrikam.com"]))
    sync(m365, ann, raj)
    [pending] = interactions(m365)
    headers = {"Authorization": f"Bearer {_key(m365)}"}
    chosen = m365.app.test_client().post(
        f"/api/v1/interactions/{pending.id}/deal", json={"deal": "B"}, headers=headers
    )
    assert chosen.status_code == 200, chosen.json
    _graph(m365, "PATCH", f"/users/{ann}/events/{event['id']}", {"sensitivity": "private"})
    # Only the organizer's round: Raj's copy is still logged, so privacy alone must drop it.
    [report] = sync(m365, ann)
    assert report.skipped == {"private": 1}
    assert interactions(m365) == []
    listed = m365.app.test_client().get("/api/v1/interactions", headers=headers).json["items"]
    assert listed == []


def test_the_organizers_deletion_cancels_the_meeting_before_attendees_sync(m365: Tenant) -> None:
    ann = m365.add_rep("ann", "Ann Lee")
    raj = m365.add_rep("raj", "Raj Patel")
    add_deal(m365, "OPP-1", ann, contacts=["dana@fabrikam.com"])
    event = m365.add_event(ann, meeting("Negotiation", FUTURE, [raj, "dana@fabrikam.com"]))
    sync(m365, ann, raj)
    [scheduled] = interactions(m365)
    assert scheduled.status == "scheduled"
    _graph(m365, "DELETE", f"/users/{ann}/events/{event['id']}")
    # Only the organizer's round: Raj's copy (cancelled in Outlook) is not read yet.
    [report] = sync(m365, ann)
    assert (report.removed, report.cancelled) == (1, 1)
    [kept] = interactions(m365)
    assert (kept.id, kept.status) == (scheduled.id, "cancelled")
    assert deal_of(m365, kept) == "OPP-1"
    assert kept.details is not None
    assert list(kept.details.mailboxes) == [raj]


def test_recurring_weekly_call_logs_each_occurrence_once(m365: Tenant) -> None:
    ann = m365.add_rep("ann", "Ann Lee")
    add_deal(m365, "OPP-1", ann, contacts=["dana@fabrikam.com"])
    start = NOW + dt.timedelta(hours=2) - dt.timedelta(days=21)
    body = meeting("Weekly status", start, ["dana@fabrikam.com"], recurrence=recurrence(start, 4))
    m365.add_event(ann, body)
    sync(m365, ann)
    sync(m365, ann, full=True)
    logged = interactions(m365)
    assert len(logged) == 4
    assert len({i.external_key for i in logged}) == 4
    assert len({i.details.series_id for i in logged if i.details}) == 1
    assert all(i.details is not None for i in logged)
    assert [i.status for i in logged] == ["held", "held", "held", "scheduled"]


def test_a_sliding_window_starts_a_new_round_without_duplicates(m365: Tenant) -> None:
    ann = m365.add_rep("ann", "Ann Lee")
    add_deal(m365, "OPP-1", ann, contacts=["dana@fabrikam.com"])
    m365.add_event(ann, meeting("Kickoff", PAST, ["dana@fabrikam.com"]))
    sync(m365, ann)
    [report] = sync(m365, ann, now=utcnow() + dt.timedelta(days=1))
    assert report.new_round
    assert len(interactions(m365)) == 1


def test_an_expired_delta_token_restarts_and_reconciles(m365: Tenant) -> None:
    ann = m365.add_rep("ann", "Ann Lee")
    add_deal(m365, "OPP-1", ann, contacts=["dana@fabrikam.com"])
    m365.add_event(ann, meeting("One", PAST, ["dana@fabrikam.com"]))
    sync(m365, ann)
    m365.add_event(ann, meeting("Two", PAST + dt.timedelta(hours=2), ["dana@fabrikam.com"]))
    m365.control("POST", "/faults", {"route": "delta", "status": 410, "count": 1})
    [report] = sync(m365, ann)
    assert report.restarted
    assert [i.subject for i in interactions(m365)] == ["One", "Two"]


def test_429_from_graph_is_honoured(m365: Tenant) -> None:
    ann = m365.add_rep("ann", "Ann Lee")
    add_deal(m365, "OPP-1", ann, contacts=["dana@fabrikam.com"])
    m365.add_event(ann, meeting("Throttled", PAST, ["dana@fabrikam.com"]))
    m365.control(
        "POST",
        "/faults",
        {"route": "calendarView/delta", "status": 429, "retryAfter": 0.2, "count": 2},
    )
    sync(m365, ann)
    assert len(interactions(m365)) == 1
    log = m365.control("GET", "/requests")
    assert log["byStatus"].get("429", 0) == 2


def test_a_mailbox_error_is_recorded_and_does_not_stop_the_others(m365: Tenant) -> None:
    ann = m365.add_rep("ann", "Ann Lee")
    raj = m365.add_rep("raj", "Raj Patel")
    add_deal(m365, "OPP-1", raj, contacts=["dana@fabrikam.com"])
    m365.add_event(raj, meeting("Works", PAST, ["dana@fabrikam.com"]))
    m365.control("POST", "/faults", {"route": f"users/({ann}|[^/]*)/calendarView", "status": 500})
    m365.control("DELETE", "/faults")
    m365.control("POST", "/faults", {"route": _user_route(m365, ann), "status": 500})
    failed = sync_mailbox(m365.app, ann)
    ok = sync_mailbox(m365.app, raj)
    assert failed.error is not None
    assert ok.error is None
    assert len(interactions(m365)) == 1
    status = (
        m365.app.test_client()
        .get("/api/v1/sync/status", headers={"Authorization": f"Bearer {_key(m365)}"})
        .json
    )
    by_rep = {m["rep"]: m for m in status["mailboxes"]}
    assert by_rep[ann]["failures"] == 1
    assert by_rep[ann]["last_error"]
    assert by_rep[raj]["last_success_at"]


def _user_route(t: Tenant, email: str) -> str:
    with get_store(t.app).session() as session:
        from connector.store.models import Rep

        rep = session.scalar(select(Rep).where(Rep.email == email))
        assert rep is not None
        return f"users/{rep.entra_id}/calendarView"


def test_a_notification_gets_the_meeting_logged_within_seconds(m365: Tenant) -> None:
    from connector.admin.server import shared_database
    from connector.jobs import start_scheduler
    from connector.worker import Worker

    ann = m365.add_rep("ann", "Ann Lee")
    add_deal(m365, "OPP-1", ann, contacts=["dana@fabrikam.com"])
    sync(m365, ann)
    assert ensure_subscriptions(m365.app) == {ann: "created"}
    start_scheduler(m365.app, force=True)
    # On a shared database a notification is a job run for any worker, and `serve` runs one
    # beside its scheduler (admin.server.start_background): so does this test.
    worker = Worker(m365.app) if shared_database(m365.app) else None
    if worker is not None:
        worker.start_thread()
    try:
        m365.add_event(ann, meeting("Booked from Outlook", FUTURE, ["dana@fabrikam.com"]))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not interactions(m365):
            time.sleep(0.2)
    finally:
        if worker is not None:
            worker.stop()
    assert [i.subject for i in interactions(m365)] == ["Booked from Outlook"]


def test_a_wrong_client_state_is_refused(m365: Tenant) -> None:
    ann = m365.add_rep("ann", "Ann Lee")
    ensure_subscriptions(m365.app)
    with get_store(m365.app).session() as session:
        mailbox = session.scalar(select(Mailbox).where(Mailbox.rep_email == ann))
        assert mailbox is not None
        mailbox.needs_sync = False
        sub_id = mailbox.subscription_id
    forged = {
        "value": [
            {
                "subscriptionId": sub_id,
                "clientState": "guess",
                "changeType": "created",
                "resource": f"users/{ann}/events/x",
                "tenantId": m365.sandbox.tenant_id,
                "subscriptionExpirationDateTime": "2030-01-01T00:00:00Z",
            }
        ]
    }
    answer = requests.post(f"{m365.base_url}/api/graph/notifications", json=forged, timeout=10)
    assert answer.status_code == 403
    with get_store(m365.app).session() as session:
        mailbox = session.scalar(select(Mailbox).where(Mailbox.rep_email == ann))
        assert mailbox is not None
        assert mailbox.needs_sync is False


def test_the_validation_handshake_echoes_the_token(m365: Tenant) -> None:
    token = "Validation: Testing client application reachability for subscription Request-Id: 1"
    answer = requests.post(
        f"{m365.base_url}/api/graph/notifications", params={"validationToken": token}, timeout=10
    )
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain")
    assert answer.text == token


def test_a_scheduled_meeting_becomes_held_after_it_ends(m365: Tenant) -> None:
    ann = m365.add_rep("ann", "Ann Lee")
    add_deal(m365, "OPP-1", ann, contacts=["dana@fabrikam.com"])
    soon = NOW + dt.timedelta(hours=1)
    m365.add_event(ann, meeting("Soon", soon, ["dana@fabrikam.com"]))
    sync(m365, ann)
    assert interactions(m365)[0].status == "scheduled"
    assert mark_held(m365.app, now=soon + dt.timedelta(hours=1)) == 1
    assert interactions(m365)[0].status == "held"


def test_working_hours_come_from_outlook_and_replan_the_reps_deals(m365: Tenant) -> None:
    email = f"mia@{m365.domain}"
    m365.control(
        "POST",
        "/users",
        {
            "userPrincipalName": email,
            "displayName": "Mia Chen",
            "mailboxSettings": {
                "timeZone": "Pacific Standard Time",
                "workingHours": {
                    "daysOfWeek": ["monday", "tuesday", "wednesday", "thursday"],
                    "startTime": "07:30:00.0000000",
                    "endTime": "15:30:00.0000000",
                    "timeZone": {"name": "Pacific Standard Time"},
                },
            },
        },
    )
    from connector.store.models import Rep

    with get_store(m365.app).session() as session:
        session.add(Rep(email=email, display_name="Mia Chen"))
    add_deal(m365, "OPP-1", email, contacts=["dana@fabrikam.com"])
    sync(m365, email)
    with get_store(m365.app).session() as session:
        rep = session.scalar(select(Rep).where(Rep.email == email))
        assert rep is not None
        assert (rep.time_zone, rep.working_days, rep.work_start, rep.work_end) == (
            "America/Los_Angeles",
            [1, 2, 3, 4],
            "07:30",
            "15:30",
        )
        assert rep.entra_id
        due = list(session.scalars(select(Reminder.due_at).where(Reminder.status == "open")))
    from zoneinfo import ZoneInfo

    for moment in due:
        local = moment.astimezone(ZoneInfo("America/Los_Angeles"))
        assert local.isoweekday() <= 4
        assert dt.time(7, 30) <= local.time() <= dt.time(15, 30)


def _mailbox(t: Tenant, email: str) -> Mailbox:
    with get_store(t.app).session() as session:
        mailbox = session.scalar(select(Mailbox).where(Mailbox.rep_email == email))
        assert mailbox is not None
        return mailbox


def test_lifecycle_events_renew_recreate_and_resync(m365: Tenant) -> None:
    ann = m365.add_rep("ann", "Ann Lee")
    ensure_subscriptions(m365.app)
    first = _mailbox(m365, ann)
    assert first.subscription_id
    m365.control(
        "POST",
        "/lifecycle",
        {"subscriptionId": first.subscription_id, "lifecycleEvent": "reauthorizationRequired"},
    )
    assert _wait(lambda: (_mailbox(m365, ann).subscription_expires_at or NOW) <= utcnow())
    assert ensure_subscriptions(m365.app) == {ann: "renewed"}
    m365.control(
        "POST", "/lifecycle", {"subscriptionId": first.subscription_id, "lifecycleEvent": "missed"}
    )
    assert _wait(lambda: _mailbox(m365, ann).needs_sync)
    m365.control(
        "POST",
        "/lifecycle",
        {"subscriptionId": first.subscription_id, "lifecycleEvent": "subscriptionRemoved"},
    )
    assert _wait(lambda: _mailbox(m365, ann).subscription_id is None)
    assert ensure_subscriptions(m365.app) == {ann: "created"}
    assert _mailbox(m365, ann).subscription_id != first.subscription_id


def _wait(condition: Any, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_a_held_meeting_resets_the_idle_reminder(m365: Tenant) -> None:
    ann = m365.add_rep("ann", "Ann Lee")
    add_deal(m365, "OPP-1", ann, contacts=["dana@fabrikam.com"])
    with get_store(m365.app).session() as session:
        before = {
            r.key: r.status
            for r in session.scalars(select(Reminder).where(Reminder.kind == "idle"))
        }
    assert list(before.values()) == ["open"]
    m365.add_event(ann, meeting("Check-in", PAST, ["dana@fabrikam.com"]))
    sync(m365, ann)
    with get_store(m365.app).session() as session:
        idle = {
            r.key: r.status
            for r in session.scalars(select(Reminder).where(Reminder.kind == "idle"))
        }
    old_key = next(iter(before))
    assert idle[old_key] == "cancelled"
    assert sorted(idle.values()) == ["cancelled", "open"]


def test_a_round_writes_the_reminders_it_re_planned_in_one_statement(m365: Tenant) -> None:
    """Cancelled and moved reminders of several deals: one UPDATE for all of them, not one
    per reminder (PostgreSQL pays a round trip a statement); the reminders end as before."""
    ann = m365.add_rep("ann", "Ann Lee")
    for n in range(3):
        add_deal(m365, f"OPP-{n}", ann, contacts=[f"dana{n}@fabrikam.com"])
        m365.add_event(ann, meeting(f"Check-in {n}", PAST, [f"dana{n}@fabrikam.com"]))
    with get_store(m365.app).session() as session:
        before = {r.id: (r.status, r.due_at) for r in session.scalars(select(Reminder))}
    updates: list[int] = []

    def count(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.startswith("UPDATE reminders"):
            updates.append(len(parameters) if isinstance(parameters, list) else 1)

    with _listening(get_store(m365.app).engine, "before_cursor_execute", count):
        sync(m365, ann)
    with get_store(m365.app).session() as session:
        after = {r.id: (r.status, r.due_at) for r in session.scalars(select(Reminder))}
    changed = {i for i in before if after[i] != before[i]}
    kinds = {("cancelled" if after[i][0] == "cancelled" else "moved") for i in changed}
    assert kinds == {"cancelled", "moved"}  # both shapes of change, on each deal
    assert len(changed) >= 6
    assert updates == [len(changed)]


def _delete_event(t: Tenant, email: str, event_id: str) -> None:
    requests.delete(
        f"{t.sandbox.base_url}/v1.0/users/{email}/events/{event_id}",
        headers={"Authorization": f"Bearer {_graph_token(t)}"},
        timeout=10,
    ).raise_for_status()


def test_a_round_removing_most_of_a_mailboxs_meetings_is_refused_and_recorded(
    m365: Tenant,
) -> None:
    ann = m365.add_rep("ann", "Ann Lee")
    add_deal(m365, "OPP-1", ann, contacts=["dana@fabrikam.com"])
    events = [
        m365.add_event(
            ann, meeting(f"Call {n}", PAST + dt.timedelta(hours=n), ["dana@fabrikam.com"])
        )
        for n in range(6)
    ]
    sync(m365, ann)
    assert [i.status for i in interactions(m365)] == ["held"] * 6
    for event in events[:4]:
        _delete_event(m365, ann, event["id"])

    refused = sync_mailbox(m365.app, ann)

    assert refused.error is not None
    assert "4 of the 6 meetings" in refused.error
    assert [i.status for i in interactions(m365)] == ["held"] * 6
    assert _mailbox(m365, ann).last_error == refused.error
    m365.app.extensions["dealbridge.settings"].sync_max_removal_share = 1.0
    [applied] = sync(m365, ann)  # the removals were kept for the next round
    assert applied.cancelled == 4
    assert [i.status for i in interactions(m365)] == ["cancelled"] * 4 + ["held"] * 2
    assert _mailbox(m365, ann).last_error is None


def test_sync_dry_run_prints_the_plan_and_writes_nothing(
    m365: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    ann = m365.add_rep("ann", "Ann Lee")
    add_deal(m365, "OPP-1", ann, contacts=["dana@fabrikam.com"])
    m365.add_event(ann, meeting("Pricing review", PAST, ["dana@fabrikam.com"]))
    m365.add_event(
        ann, meeting("Job interview", PAST, ["dana@fabrikam.com"], sensitivity="private")
    )
    settings = m365.app.extensions["dealbridge.settings"]
    sandbox = m365.sandbox
    for name, value in {
        "DEALBRIDGE_DATABASE_URL": settings.effective_database_url,
        "DEALBRIDGE_TENANT_ID": sandbox.tenant_id,
        "DEALBRIDGE_CLIENT_ID": sandbox.client_id,
        "DEALBRIDGE_CLIENT_SECRET": sandbox.client_secret,
        "DEALBRIDGE_LOGIN_BASE_URL": sandbox.base_url,
        "DEALBRIDGE_GRAPH_BASE_URL": sandbox.base_url,
        "DEALBRIDGE_SCHEDULER_ENABLED": "false",
    }.items():
        monkeypatch.setenv(name, value)
    before = _store_rows(m365)

    result = CliRunner().invoke(cli, ["sync", "--dry-run", "--rep", ann])

    assert result.exit_code == 0, result.output
    assert f"{ann}: 2 meetings read; would log 1, update 0, cancel 0, skip 1" in result.output
    lines = [line.strip() for line in result.output.splitlines()]
    [logged] = [line for line in lines if line.startswith('- log "Pricing review"')]
    assert "on deal OPP-1 (held): matched deal OPP-1 by contact dana@fabrikam.com" in logged
    [skipped] = [line for line in lines if line.startswith('- skip "Job interview"')]
    assert "marked private" in skipped
    assert "Dry run: nothing was written." in result.output
    assert _store_rows(m365) == before
    [report] = sync(m365, ann)  # the real round does what the plan said
    assert (report.logged, report.skipped) == (1, {"private": 1})


def _store_rows(t: Tenant) -> dict[str, Any]:
    from connector.store.models import MailboxEvent, OutboxItem, Rep

    with get_store(t.app).session() as session:
        return {
            "interactions": session.scalars(select(Interaction.id)).all(),
            "links": session.scalars(select(MailboxEvent.id)).all(),
            "mailboxes": [
                (m.rep_email, m.delta_link, m.last_round_at, m.needs_sync)
                for m in session.scalars(select(Mailbox))
            ],
            "reps": [(r.email, r.entra_id, r.time_zone) for r in session.scalars(select(Rep))],
            "outbox": session.scalars(select(OutboxItem.id)).all(),
        }


def test_the_interactions_api_filters_by_a_rep_among_the_internal_participants(
    m365: Tenant,
) -> None:
    ann = m365.add_rep("ann", "Ann Lee")
    raj = m365.add_rep("raj", "Raj Patel")
    add_deal(m365, "OPP-1", ann, domains=["fabrikam.com"])
    m365.add_event(ann, meeting("Roadmap", PAST, ["cto@fabrikam.com"]))
    sync(m365, ann)
    [logged] = interactions(m365)
    client = m365.app.test_client()
    headers = {"Authorization": f"Bearer {_key(m365)}"}

    def listed(rep: str) -> list[int]:
        got = client.get(f"/api/v1/interactions?rep={rep}", headers=headers)
        return [i["id"] for i in got.json["items"]]

    assert listed(ann) == [logged.id]
    assert listed(raj) == []
