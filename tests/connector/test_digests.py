"""The daily digest (opt-in) and the admins' health card."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from connector.store.db import get_store
from connector.store.models import Mailbox, OutboxItem, Rep, utcnow
from connector.teams.digests import queue_digests, queue_health
from connector.teams.views import digest_view, health_view
from tests.connector.conftest import make_app
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
                last_error="403 Forbidden: MailboxSettings.Read",
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
