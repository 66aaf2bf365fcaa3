"""A rep's own preferences (today: the daily digest), whichever channel serves them; what is
theirs once an admin maps them (a Teams chat from before); and a rep's coming and going.

Deactivating a rep (``active: false``) stops everything for her at once, in the transaction of
the change: her open reminders are withdrawn (their Outlook events deleted and their Teams
cards updated to say so, through the outbox), her Graph subscription is deleted, no card is
sent to her, and her open deals are *flagged for the CRM* (``rep.deactivated`` lists them) rather
than reassigned here: the CRM owns who owns a deal, and its next ``PUT`` of each deal with the
new owner re-plans the reminders for that owner. Reactivating brings her back: the reminders
the plan still wants are open again and delivered, and her mailbox is subscribed again.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.signals import rep_changed
from connector.store.models import Deal, Rep, RepPreference, TeamsCard, TeamsConversation


def wants_digest(session: Session, rep_email: str) -> bool:
    pref = session.scalar(select(RepPreference).where(RepPreference.rep_email == rep_email))
    return bool(pref and pref.daily_digest)


def set_digest(session: Session, rep_email: str, on: bool) -> None:
    pref = session.scalar(select(RepPreference).where(RepPreference.rep_email == rep_email))
    if pref is None:
        session.add(RepPreference(rep_email=rep_email, daily_digest=on))
    else:
        pref.daily_digest = on


def brief_minutes_of(session: Session, rep_email: str) -> int | None:
    """The rep's brief time before a customer meeting (None: the default setting)."""
    return session.scalar(
        select(RepPreference.brief_minutes).where(RepPreference.rep_email == rep_email)
    )


def set_brief_minutes(session: Session, rep_email: str, minutes: int) -> None:
    pref = session.scalar(select(RepPreference).where(RepPreference.rep_email == rep_email))
    if pref is None:
        session.add(RepPreference(rep_email=rep_email, daily_digest=False, brief_minutes=minutes))
    else:
        pref.brief_minutes = minutes


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


def open_deals_of(session: Session, email: str) -> list[Deal]:
    """The rep's open deals, by CRM id."""
    return list(
        session.scalars(
            select(Deal)
            .where(Deal.owner_email == email, Deal.status == "open")
            .order_by(Deal.crm_id)
        )
    )


def set_active(
    session: Session, rep: Rep, active: bool, now: dt.datetime, *, deleted: bool = False
) -> bool:
    """Deactivate or reactivate a rep and tell every capability (``rep_changed``); False when
    nothing changed (a rep being deleted is told about even when already inactive)."""
    if rep.active == active and not deleted:
        return False
    rep.active = active
    session.flush()
    rep_changed.send(session, rep=rep, active=active, deleted=deleted, now=now)
    return True


def delete_rep(session: Session, rep: Rep, now: dt.datetime) -> None:
    """Offboarding: everything stops as for a deactivation (``rep_changed`` with ``deleted``),
    then what DealBridge keeps about her goes: the rep, her preferences, her Teams chat
    reference and the cards it remembers (her mailbox state goes with the signal). Her deals
    stay (they are the CRM's; the webhook lists them), with their cancelled reminders."""
    set_active(session, rep, False, now, deleted=True)
    for model, column in (
        (RepPreference, RepPreference.rep_email),
        (TeamsConversation, TeamsConversation.rep_email),
        (TeamsCard, TeamsCard.rep_email),
    ):
        for row in session.scalars(select(model).where(column == rep.email)).all():
            session.delete(row)
    session.delete(rep)
