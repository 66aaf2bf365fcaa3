"""The console's audit trail: one row per action an admin took (who, what, on what, when)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.store.models import AuditEntry, utcnow


def record(
    session: Session,
    actor: str,
    action: str,
    target: str,
    detail: str | None = None,
    *,
    now: dt.datetime | None = None,
) -> AuditEntry:
    """Add the row in the action's own transaction: the action and its record commit together."""
    entry = AuditEntry(
        at=now or utcnow(),
        actor=actor,
        action=action,
        target=target[:512],
        detail=detail[:4000] if detail else None,
    )
    session.add(entry)
    return entry


def latest(
    session: Session, *, actor: str | None = None, action: str | None = None, limit: int = 200
) -> list[AuditEntry]:
    """The newest rows first, optionally one admin's or one kind of action's."""
    query = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)
    if actor:
        query = query.where(AuditEntry.actor == actor.lower())
    if action:
        query = query.where(AuditEntry.action == action)
    return list(session.scalars(query))
