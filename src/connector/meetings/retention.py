"""Retention of interactions: with ``DEALBRIDGE_INTERACTION_RETENTION_DAYS`` set, a daily job
deletes the interactions (meetings and notes) that started longer ago than that, and what
points at them (the mailboxes' event links, the Teams cards' rows). Off by default: the
interactions are the deal's history and the CRM may not keep its own copy. Deals keep their
``last_interaction_at`` (a fact about the deal, not the person)."""

from __future__ import annotations

import datetime as dt
import logging

from flask import Flask
from sqlalchemy import delete, select

from connector.jobs import register_job
from connector.settings import SETTINGS_EXTENSION, Settings
from connector.store.db import get_store
from connector.store.models import Interaction, MailboxEvent, TeamsCard, utcnow

log = logging.getLogger(__name__)
DAY_SECONDS = 24 * 3600
BATCH = 500


def purge_interactions(app: Flask, now: dt.datetime | None = None) -> int:
    """Delete the interactions older than the retention; how many. Nothing when it is unset."""
    settings: Settings = app.extensions[SETTINGS_EXTENSION]
    if settings.interaction_retention_days is None:
        return 0
    cutoff = (now or utcnow()) - dt.timedelta(days=settings.interaction_retention_days)
    deleted = 0
    while True:  # in batches, each its own short transaction beside a running service
        with get_store(app).session() as session:
            old = session.execute(
                select(Interaction.id, Interaction.external_key)
                .where(Interaction.started_at < cutoff)
                .limit(BATCH)
            ).all()
            if not old:
                break
            ids = [row.id for row in old]
            keys = [row.external_key for row in old]
            session.execute(delete(MailboxEvent).where(MailboxEvent.meeting_key.in_(keys)))
            cards = [
                f"{kind}:{i}"
                for i in ids
                for kind in ("meeting_logged", "pick_deal", "after_meeting")
            ]
            session.execute(delete(TeamsCard).where(TeamsCard.key.in_(cards)))
            session.execute(delete(Interaction).where(Interaction.id.in_(ids)))
            deleted += len(ids)
    if deleted:
        log.info("retention: %d interactions older than %s deleted", deleted, cutoff.date())
    return deleted


def init_app(app: Flask) -> None:
    """The daily retention job, when a retention is set."""
    settings: Settings = app.extensions[SETTINGS_EXTENSION]
    if settings.interaction_retention_days is not None:
        register_job(app, "interaction_retention", purge_interactions, seconds=DAY_SECONDS)
