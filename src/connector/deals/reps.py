"""A rep's own preferences (today: the daily digest), whichever channel serves them."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.store.models import RepPreference


def wants_digest(session: Session, rep_email: str) -> bool:
    pref = session.scalar(select(RepPreference).where(RepPreference.rep_email == rep_email))
    return bool(pref and pref.daily_digest)


def set_digest(session: Session, rep_email: str, on: bool) -> None:
    pref = session.scalar(select(RepPreference).where(RepPreference.rep_email == rep_email))
    if pref is None:
        session.add(RepPreference(rep_email=rep_email, daily_digest=on))
    else:
        pref.daily_digest = on
