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

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from connector.signals import rep_changed
from connector.store.models import Deal, Rep, RepPreference, TeamsCard, TeamsConversation


def wants_digest(session: Session, rep_email: str) -> bool:
    pref = session.scalar(select(RepPreference).where(RepPreference.rep_email == rep_email))
    return bool(pref and pref.daily_digest)


def set_digest(session: Session, rep_email: str, on: bool) -> None:
    pref = preference_of(session, rep_email)
    if pref is None:
        _add_preference(session, RepPreference(rep_email=rep_email, daily_digest=on))
    else:
        pref.daily_digest = on


# --- the rep's own controls: channels, quiet hours, digest time, a pause of capture ----------

CHANNEL_CHOICES = ("teams", "outlook", "both")
_CHOICE_CHANNELS = {"teams": ("teams",), "outlook": ("calendar",), "both": ("calendar", "teams")}


_SEEN = "dealbridge.preferences"
"""session.info: the preferences read in this session, by rep (None: she has none). A meeting
round asks once per reminder it re-plans; the row is the session's own object, so changes to
it are seen, and the writers below keep the entry current when they add or delete one."""


def preference_of(session: Session, rep_email: str) -> RepPreference | None:
    seen: dict[str, RepPreference | None] = session.info.setdefault(_SEEN, {})
    if rep_email not in seen:
        query = select(RepPreference).where(RepPreference.rep_email == rep_email)
        seen[rep_email] = session.scalar(query)
    return seen[rep_email]


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget_preferences(session: Session) -> None:
    """Read again in the next transaction: another process may have changed them."""
    session.info.pop(_SEEN, None)


def _add_preference(session: Session, pref: RepPreference) -> RepPreference:
    session.add(pref)
    session.info.setdefault(_SEEN, {})[pref.rep_email] = pref
    return pref


def _preference(session: Session, rep_email: str) -> RepPreference:
    pref = preference_of(session, rep_email)
    if pref is None:
        pref = _add_preference(session, RepPreference(rep_email=rep_email, daily_digest=False))
    return pref


def update_preferences(session: Session, rep_email: str, **changes: object) -> RepPreference:
    """Set the named preferences (``channels``, ``quiet_start``, ``quiet_end``,
    ``digest_time``, ``capture_paused_until``, ``daily_digest``); the bot's ``settings``
    command and the tab both come here. Values are checked by their callers' models."""
    pref = _preference(session, rep_email)
    for name, value in changes.items():
        if name not in _PREFERENCES:
            raise ValueError(f"no preference {name!r}")
        setattr(pref, name, value)
    session.flush()
    return pref


_PREFERENCES = frozenset(
    {"channels", "quiet_start", "quiet_end", "digest_time", "capture_paused_until", "daily_digest"}
)


def channels_for(session: Session, rep_email: str | None, admin_channels: list[str]) -> list[str]:
    """The reminder channels that reach the rep: the admin's, narrowed to her choice."""
    pref = preference_of(session, rep_email) if rep_email else None
    if pref is None or pref.channels not in _CHOICE_CHANNELS:
        return list(admin_channels)
    wanted = _CHOICE_CHANNELS[pref.channels]
    return [c for c in admin_channels if c in wanted]


def capture_paused(session: Session, rep_email: str, now: dt.datetime) -> dt.datetime | None:
    """Until when the rep paused meeting capture, or None when it runs."""
    pref = preference_of(session, rep_email)
    until = pref.capture_paused_until if pref is not None else None
    return until if until is not None and until > now else None


def quiet_until(
    session: Session, rep: Rep, zone: dt.tzinfo, now: dt.datetime
) -> dt.datetime | None:
    """The end of the rep's quiet hours when ``now`` is inside them, else None."""
    pref = preference_of(session, rep.email)
    if pref is None or not pref.quiet_start or not pref.quiet_end:
        return None
    start, end = _hhmm(pref.quiet_start), _hhmm(pref.quiet_end)
    local = now.astimezone(zone)
    t = local.time()
    inside = start <= t < end if start < end else (t >= start or t < end)
    if not inside or start == end:
        return None
    day = local.date() if t < end else local.date() + dt.timedelta(days=1)
    return dt.datetime.combine(day, end, zone).astimezone(dt.UTC)


def _hhmm(text: str) -> dt.time:
    hours, minutes = text.split(":")
    return dt.time(int(hours), int(minutes))


def brief_minutes_of(session: Session, rep_email: str) -> int | None:
    """The rep's brief time before a customer meeting (None: the default setting)."""
    return session.scalar(
        select(RepPreference.brief_minutes).where(RepPreference.rep_email == rep_email)
    )


def set_brief_minutes(session: Session, rep_email: str, minutes: int) -> None:
    pref = preference_of(session, rep_email)
    if pref is None:
        new = RepPreference(rep_email=rep_email, daily_digest=False, brief_minutes=minutes)
        _add_preference(session, new)
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
    session.info.get(_SEEN, {}).pop(rep.email, None)
    session.delete(rep)
