"""The daily digest (opt-in, at the start of each rep's working day) and the admins' health card.

Both are Teams cards queued in the outbox (kind ``teams_card``) once per rep and day; the
Teams delivery builds the card from the store when it sends it, so it shows the state then.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from cards.models import (
    ConsentMissing,
    DigestReminder,
    DigestView,
    HealthView,
    IdleDeal,
    MailboxSyncFailure,
    SecretExpiring,
)
from connector.outbox import enqueue
from connector.settings import SETTINGS_EXTENSION, Settings
from connector.stage_reminders.replan import working_calendar
from connector.store.db import get_store
from connector.store.models import Deal, Mailbox, Reminder, Rep, RepPreference, utcnow
from connector.teams.delivery import crm_link

CARD_KIND = "teams_card"
DIGEST_LIST = 10
FAILING_AFTER = 3  # failed rounds in a row before admins hear of a mailbox
SECRET_WARNING = dt.timedelta(days=30)
PERMISSION_HINTS = {
    "MailboxSettings": "MailboxSettings.Read",
    "Calendars": "Calendars.ReadWrite",
    "User": "User.Read.All",
    "Organization": "Organization.Read.All",
}


def wants_digest(session: Session, rep_email: str) -> bool:
    pref = session.scalar(select(RepPreference).where(RepPreference.rep_email == rep_email))
    return bool(pref and pref.daily_digest)


def set_digest(session: Session, rep_email: str, on: bool) -> None:
    pref = session.scalar(select(RepPreference).where(RepPreference.rep_email == rep_email))
    if pref is None:
        session.add(RepPreference(rep_email=rep_email, daily_digest=on))
    else:
        pref.daily_digest = on


def digest_view(
    session: Session, rep: Rep, settings: Settings, day: dt.date, now: dt.datetime
) -> DigestView:
    """Due today, overdue, and the deals idle longest, in the rep's own day."""
    zone = working_calendar(rep, settings).zone
    start = dt.datetime.combine(day, dt.time(), zone).astimezone(dt.UTC)
    end = start + dt.timedelta(days=1)
    rows = session.execute(
        select(Reminder, Deal)
        .join(Deal, Deal.id == Reminder.deal_id)
        .where(Reminder.rep_email == rep.email, Reminder.status.in_(("open", "snoozed")))
        .order_by(Reminder.due_at, Reminder.id)
    ).all()

    def item(reminder: Reminder, deal: Deal) -> DigestReminder:
        return DigestReminder(
            reminder_id=str(reminder.id),
            deal_title=deal.title,
            account=deal.account_name or "",
            rule_title=reminder.title,
            due_at=reminder.effective_due_at,
            crm_url=crm_link(deal, settings),
        )

    due_today = [item(r, d) for r, d in rows if start <= r.effective_due_at < end]
    overdue = [item(r, d) for r, d in rows if r.effective_due_at < start]
    deals = session.scalars(
        select(Deal).where(Deal.owner_email == rep.email, Deal.status == "open")
    ).all()

    def idle_since(deal: Deal) -> dt.datetime:
        return deal.last_interaction_at or deal.stage_entered_at

    idle = sorted(deals, key=idle_since)[:DIGEST_LIST]
    return DigestView(
        rep_name=rep.display_name or rep.email,
        day=day,
        due_today=due_today[:DIGEST_LIST],
        overdue=overdue[:DIGEST_LIST],
        idle_longest=[
            IdleDeal(
                deal_id=d.crm_id,
                title=d.title,
                account=d.account_name or "",
                stage_name=d.stage_key.replace("_", " ").capitalize(),
                idle_days=max((now - idle_since(d)).days, 0),
                crm_url=crm_link(d, settings),
            )
            for d in idle
        ],
    )


def health_view(session: Session, settings: Settings, now: dt.datetime) -> HealthView | None:
    """What admins must fix, or None when all is well."""
    failing = [
        MailboxSyncFailure(
            mailbox=m.rep_email,
            since=m.last_success_at or m.created_at,
            error=(m.last_error or "")[:300],
        )
        for m in session.scalars(select(Mailbox).where(Mailbox.failures >= FAILING_AFTER))
    ]
    consent_url = f"{settings.public_url or 'http://localhost'}/admin/consented"
    missing: dict[str, ConsentMissing] = {}
    for mailbox in session.scalars(select(Mailbox).where(Mailbox.last_error.is_not(None))):
        error = mailbox.last_error or ""
        if "403" not in error and "Forbidden" not in error and "denied" not in error.lower():
            continue
        for hint, permission in PERMISSION_HINTS.items():
            if hint in error:
                missing[permission] = ConsentMissing(permission=permission, consent_url=consent_url)
    expiring = []
    if settings.client_secret_expires_on is not None:
        expires = dt.datetime.combine(settings.client_secret_expires_on, dt.time(), dt.UTC)
        if expires - now <= SECRET_WARNING:
            expiring.append(SecretExpiring(name="DEALBRIDGE_CLIENT_SECRET", expires_at=expires))
    if not (failing or missing or expiring):
        return None
    return HealthView(
        checked_at=now,
        failing_mailboxes=failing[:DIGEST_LIST],
        missing_consent=list(missing.values()),
        expiring_secrets=expiring,
        admin_url=f"{settings.public_url or 'http://localhost'}/healthz",
    )


def queue_digests(app: Flask, now: dt.datetime | None = None) -> list[str]:
    """Queue today's digest for each opted-in rep whose working day has begun."""
    settings: Settings = app.extensions[SETTINGS_EXTENSION]
    now = now or utcnow()
    queued = []
    with get_store(app).session() as session:
        prefs = session.scalars(select(RepPreference).where(RepPreference.daily_digest.is_(True)))
        for pref in prefs:
            rep = session.scalar(select(Rep).where(Rep.email == pref.rep_email))
            if rep is None or not rep.active:
                continue
            calendar = working_calendar(rep, settings)
            local = now.astimezone(calendar.zone)
            working_day = local.isoweekday() in calendar.working_days
            if (
                not working_day
                or calendar.is_holiday(local.date())
                or local.time() < calendar.start
            ):
                continue
            payload: dict[str, Any] = {
                "kind": "digest",
                "rep": rep.email,
                "day": local.date().isoformat(),
            }
            key = f"teams_card:digest:{rep.email}:{local.date().isoformat()}"
            enqueue(session, CARD_KIND, key, payload)
            queued.append(rep.email)
    return queued


def queue_health(app: Flask, now: dt.datetime | None = None) -> list[str]:
    """Tell each admin (DEALBRIDGE_ADMIN_EMAILS) once a day when something needs fixing."""
    settings: Settings = app.extensions[SETTINGS_EXTENSION]
    now = now or utcnow()
    if not settings.admin_emails:
        return []
    with get_store(app).session() as session:
        if health_view(session, settings, now) is None:
            return []
        for admin in settings.admin_emails:
            payload = {"kind": "health", "rep": admin, "day": now.date().isoformat()}
            key = f"teams_card:health:{admin}:{now.date().isoformat()}"
            enqueue(session, CARD_KIND, key, payload)
    return list(settings.admin_emails)
