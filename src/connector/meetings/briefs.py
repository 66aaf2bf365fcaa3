"""The brief before a customer meeting: due a set time before each matched meeting's start.

The ``briefs`` job (every minute) finds the scheduled meetings on deals whose brief is due (the
deal owner's ``brief_minutes`` preference, else ``DEALBRIDGE_BRIEF_MINUTES_BEFORE``, before the
start) and says so (``meeting_brief_due``); ``teams`` queues the brief under a key naming the
occurrence and its start, so each occurrence gets one brief, and a meeting moved to another
time gets one for its new time (the old one, if not sent yet, finds the meeting moved and is
dropped). None for a cancelled meeting or one the rep declined.
"""

from __future__ import annotations

import datetime as dt

from flask import Flask
from sqlalchemy import select

from connector.jobs import register_job
from connector.settings import SETTINGS_EXTENSION, Settings
from connector.signals import meeting_brief_due
from connector.store.db import get_store
from connector.store.models import Deal, Interaction, RepPreference, utcnow
from connector.store.types import InteractionKind, InteractionStatus, MeetingDetails

LONGEST = dt.timedelta(minutes=24 * 60)
"""The longest a brief may come before its meeting (the settings' bound)."""


def brief_minutes(preference: int | None, settings: Settings) -> int:
    """Minutes before the start (0: no brief)."""
    return settings.brief_minutes_before if preference is None else preference


def declined(details: MeetingDetails | None, rep: str) -> bool:
    """The rep said no to the meeting (their answer on the meeting, as the round read it)."""
    if details is None:
        return False
    return any(
        (a.email or "").lower() == rep.lower() and a.response == "declined"
        for a in details.attendees
    )


def briefs_due(app: Flask, now: dt.datetime | None = None) -> list[tuple[int, str]]:
    """The ``briefs`` job: (interaction, rep) of every brief due now, each said once a run."""
    now = now or utcnow()
    settings: Settings = app.extensions[SETTINGS_EXTENSION]
    told: list[tuple[int, str]] = []
    with get_store(app).session() as session:
        rows = session.execute(
            select(Interaction, Deal)
            .join(Deal, Deal.id == Interaction.deal_id)
            .where(
                Interaction.kind == InteractionKind.MEETING,
                Interaction.status == InteractionStatus.SCHEDULED,
                Interaction.started_at > now,
                Interaction.started_at <= now + LONGEST,
                Deal.owner_email.is_not(None),
            )
            .order_by(Interaction.started_at)
        ).all()
        owners = {deal.owner_email for _, deal in rows if deal.owner_email}
        preferences = {
            p.rep_email: p.brief_minutes
            for p in session.scalars(
                select(RepPreference).where(RepPreference.rep_email.in_(owners))
            )
        }
        for interaction, deal in rows:
            rep = (deal.owner_email or "").lower()
            minutes = brief_minutes(preferences.get(rep), settings)
            if minutes <= 0:
                continue
            due = interaction.started_at - dt.timedelta(minutes=minutes)
            if due > now or declined(interaction.details, rep):
                continue
            meeting_brief_due.send(
                session, interaction=interaction, rep=rep, start=interaction.started_at, due=due
            )
            told.append((interaction.id, rep))
    return told


def init_app(app: Flask) -> None:
    """The ``briefs`` job, every minute (with Microsoft 365 configured)."""
    settings: Settings = app.extensions[SETTINGS_EXTENSION]
    if settings.microsoft365_configured:
        register_job(app, "briefs", lambda app: briefs_due(app), seconds=60)
