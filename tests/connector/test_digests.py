"""The daily digest (opt-in) and the admins' health card."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from connector.api.keys import create_key
from connector.meetings.sync import sync_mailbox
from connector.microsoft365 import WHOLE_APP, Failure
from connector.store.db import get_store
from connector.store.models import Mailbox, OutboxItem, Rep, utcnow
from connector.teams.digests import queue_digests, queue_health
from connector.teams.views import digest_view, health_view
from graph_sync.errors import EntraError, Forbidden, GraphError
from tests.connector.conftest import Tenant, make_app
from tests.connector.samples import deal_body
from tests.databases import Template

MONDAY_10_BERLIN = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)


def _queued(app: Flask) -> list[str]:
    with get_store(app).session() as session:
        return sorted(
            session.scalars(
                select(OutboxItem.idempotency_key).where(OutboxItem.kind == "teams_card")
            )
        )


def test_the_digest_is_opt_in_and_comes_once_a_working_day(
    app: Flask, client: FlaskClient, auth: dict[str, str]
) -> None:
    client.put(
        "/api/v1/reps/ann.lee@contoso.com", json={"time_zone": "Europe/Berlin"}, headers=auth
    )
    client.put("/api/v1/deals/OPP-1", json=deal_body(stage="negotiation"), headers=auth)
    assert queue_digests(app, MONDAY_10_BERLIN) == []
    opted = client.put(
        "/api/v1/reps/ann.lee@contoso.com", json={"daily_digest": True}, headers=auth
    )
    assert opted.json["daily_digest"] is True
    assert queue_digests(app, MONDAY_10_BERLIN - dt.timedelta(hours=2)) == []  # 08:00 local
    assert queue_digests(app, MONDAY_10_BERLIN) == ["ann.lee@contoso.com"]
    queue_digests(app, MONDAY_10_BERLIN + dt.timedelta(hours=3))
    assert _queued(app) == ["teams_card:digest:ann.lee@contoso.com:2026-11-23"]
    assert queue_digests(app, MONDAY_10_BERLIN - dt.timedelta(days=1)) == []  # Sunday


def test_the_digest_lists_overdue_due_today_and_idle_deals(
    app: Flask, client: FlaskClient, auth: dict[str, str]
) -> None:
    client.put("/api/v1/reps/ann.lee@contoso.com", json={"time_zone": "UTC"}, headers=auth)
    client.put("/api/v1/deals/OPP-1", json=deal_body(stage="negotiation"), headers=auth)
    settings = app.extensions["dealbridge.settings"]
    later = utcnow() + dt.timedelta(days=40)
    with get_store(app).session() as session:
        rep = session.scalar(select(Rep).where(Rep.email == "ann.lee@contoso.com"))
        assert rep is not None
        view = digest_view(session, rep, settings, later.date(), later)
    assert view.overdue
    assert [d.deal_id for d in view.idle_longest] == ["OPP-1"]
    assert view.idle_longest[0].idle_days >= 39


def test_admins_hear_of_a_failing_mailbox_and_an_expiring_secret(
    tmp_path: Path, migrated_template: Template
) -> None:
    soon = (utcnow() + dt.timedelta(days=10)).date().isoformat()
    app = make_app(
        tmp_path / "db.sqlite",
        migrated_template,
        admin_emails=["it@contoso.com"],
        client_secret_expires_on=soon,
    )
    settings = app.extensions["dealbridge.settings"]
    with get_store(app).session() as session:
        session.add(
            Mailbox(
                rep_email="ann@contoso.com",
                failures=4,
                last_error="403 ErrorAccessDenied: Access is denied.",
                last_error_code="ErrorAccessDenied",
                missing_permission="MailboxSettings.Read",
            )
        )
    with get_store(app).session() as session:
        view = health_view(session, settings, utcnow())
    assert view is not None
    assert [m.mailbox for m in view.failing_mailboxes] == ["ann@contoso.com"]
    assert [c.permission for c in view.missing_consent] == ["MailboxSettings.Read"]
    assert view.expiring_secrets[0].name == "DEALBRIDGE_CLIENT_SECRET"
    assert queue_health(app) == ["it@contoso.com"]
    assert len(_queued(app)) == 1
    get_store(app).dispose()


def test_no_health_card_when_all_is_well(app: Flask) -> None:
    settings = app.extensions["dealbridge.settings"]
    with get_store(app).session() as session:
        assert health_view(session, settings, utcnow()) is None


def _health_of(app: Flask, **mailbox: Any) -> list[str]:
    settings = app.extensions["dealbridge.settings"]
    with get_store(app).session() as session:
        session.add(Mailbox(rep_email="ann@contoso.com", failures=1, **mailbox))
    with get_store(app).session() as session:
        view = health_view(session, settings, utcnow())
    return [] if view is None else [c.permission for c in view.missing_consent]


def test_an_error_whose_text_mentions_consent_but_whose_code_does_not_is_not_consent(
    app: Flask,
) -> None:
    said = _health_of(
        app,
        last_error="503 ServiceUnavailable: 403 Forbidden from the consent service; access "
        "denied for MailboxSettings and Calendars while it restarts",
        last_error_code="ServiceUnavailable",
    )
    assert said == []


def test_an_error_whose_code_says_consent_is_consent_whatever_its_text(app: Flask) -> None:
    said = _health_of(
        app,
        last_error="the request failed",
        last_error_code="ErrorAccessDenied",
        missing_permission="Calendars.Read",
    )
    assert said == ["Calendars.Read"]


def test_a_round_refused_for_a_missing_permission_records_its_code_for_the_health_card(
    m365: Tenant,
) -> None:
    ann = m365.add_rep("ann", "Ann Lee")
    granted = m365.control("GET", "/settings")["roles"]
    m365.control(
        "PATCH", "/settings", {"roles": [r for r in granted if r != "MailboxSettings.Read"]}
    )

    report = sync_mailbox(m365.app, ann)

    assert report.error is not None
    with get_store(m365.app).session() as session:
        mailbox = session.scalar(select(Mailbox).where(Mailbox.rep_email == ann))
        assert mailbox is not None
        assert (mailbox.last_error_code, mailbox.missing_permission) == (
            "ErrorAccessDenied",
            "MailboxSettings.Read",
        )
        view = health_view(session, m365.app.extensions["dealbridge.settings"], utcnow())
    assert view is not None
    assert [c.permission for c in view.missing_consent] == ["MailboxSettings.Read"]
    client = m365.app.test_client()
    with get_store(m365.app).session() as session:
        key = create_key(session, "test", "read")
    status = client.get("/api/v1/sync/status", headers={"Authorization": f"Bearer {key}"})
    [mine] = status.json["mailboxes"]
    assert (mine["last_error_code"], mine["missing_permission"]) == (
        "ErrorAccessDenied",
        "MailboxSettings.Read",
    )


@pytest.mark.parametrize(
    ("error", "code", "missing"),
    [
        (
            Forbidden(403, "ErrorAccessDenied", "consent", permission="Calendars.Read"),
            "ErrorAccessDenied",
            "Calendars.Read",
        ),
        (
            Forbidden(
                403, "ErrorQuotaExceeded", "admin consent denied", permission="Calendars.Read"
            ),
            "ErrorQuotaExceeded",
            None,
        ),
        (
            GraphError(500, "InternalServerError", "403 Forbidden: consent"),
            "InternalServerError",
            None,
        ),
        (EntraError("invalid_client", 65001, "consent"), "AADSTS65001", WHOLE_APP),
        (EntraError("invalid_client", 7000215, "admin consent missing?"), "AADSTS7000215", None),
        (RuntimeError("403 Forbidden: consent MailboxSettings"), None, None),
    ],
)
def test_what_a_failure_says_about_consent_comes_from_its_code(
    error: BaseException, code: str | None, missing: str | None
) -> None:
    assert Failure.of(error) == Failure(code, missing)
