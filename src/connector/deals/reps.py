"""A rep's own preferences (today: the daily digest), whichever channel serves them, and what
is theirs once an admin maps them (a Teams chat from before)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.store.models import Rep, RepPreference, TeamsConversation


def wants_digest(session: Session, rep_email: str) -> bool:
    pref = session.scalar(select(RepPreference).where(RepPreference.rep_email == rep_email))
    return bool(pref and pref.daily_digest)


def set_digest(session: Session, rep_email: str, on: bool) -> None:
    pref = session.scalar(select(RepPreference).where(RepPreference.rep_email == rep_email))
    if pref is None:
        session.add(RepPreference(rep_email=rep_email, daily_digest=on))
    else:
        pref.daily_digest = on


def claim_installation(session: Session, rep: Rep) -> TeamsConversation | None:
    """A Teams chat stored before the rep was mapped (the bot knew only their Entra id)."""
    if not rep.entra_id:
        return None  # by e-mail alone: Teams delivery asks Graph for the id when it needs it
    row = session.scalar(
        select(TeamsConversation)
        .where(
            TeamsConversation.rep_email.is_(None),
            TeamsConversation.aad_object_id == rep.entra_id.lower(),
        )
        .limit(1)
    )
    if row is not None:
        row.rep_email = rep.email
    return row
