"""The daily digest (opt-in, at the start of each rep's working day) and the admins' health card.

Both are Teams cards queued in the outbox (kind ``teams_card``) once per rep and day; the
Teams delivery builds the card from the store when it sends it, so it shows the state then.
"""

from __future__ import annotations

import datetime as dt

from flask import Flask
from sqlalchemy import select

from connector.outbox import enqueue
from connector.settings import SETTINGS_EXTENSION, Settings
from connector.stage_reminders.replan import working_calendar
from connector.store.db import get_store
from connector.store.models import Rep, RepPreference, utcnow
from connector.teams.delivery import DailyCardPayload
from connector.teams.views import health_view

CARD_KIND = "teams_card"


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
            starts = _digest_time(pref) or calendar.start  # the rep's own time, if she set one
            if not working_day or calendar.is_holiday(local.date()) or local.time() < starts:
                continue
            payload = DailyCardPayload(kind="digest", rep=rep.email, day=local.date())
            key = f"teams_card:digest:{rep.email}:{local.date().isoformat()}"
            enqueue(session, CARD_KIND, key, payload)
            queued.append(rep.email)
    return queued


def _digest_time(pref: RepPreference) -> dt.time | None:
    if not pref.digest_time:
        return None
    hours, minutes = pref.digest_time.split(":")
    return dt.time(int(hours), int(minutes))


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
            payload = DailyCardPayload(kind="health", rep=admin, day=now.date())
            key = f"teams_card:health:{admin}:{now.date().isoformat()}"
            enqueue(session, CARD_KIND, key, payload)
    return list(settings.admin_emails)
