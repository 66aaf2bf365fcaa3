"""A rep's "Don't log this meeting": the interaction is withdrawn, the CRM is told
(``interaction.withdrawn``), and the meeting stays out on every later round; Undo within a day
brings it back (``interaction.restored``).

The exclusion is by the meeting's series (its iCalUId with the occurrence stamp zeroed,
``graph_sync.models.series_uid``): an updated meeting keeps its iCalUId, and every occurrence
of a recurring one shares the series', so both stay out. It holds whoever's calendar the
meeting is read from: one interaction is kept per meeting across mailboxes, and a colleague's
round must not log again what the rep withdrew. The Teams card, the tab and the API's read
for admins all use these calls; admins can read exclusions, never lift them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.crm import webhooks as crm_webhooks
from connector.crm.events import InteractionRestored, InteractionWithdrawn
from connector.deals.changes import announce
from connector.errors import Conflict, Forbidden
from connector.meetings.interactions import refresh_last_interaction
from connector.settings import Settings
from connector.store.models import Deal, Interaction, MeetingExclusion
from connector.store.types import InteractionKind, InteractionStatus
from graph_sync.models import series_uid

UNDO_WINDOW = dt.timedelta(days=1)
WITHDRAWN = InteractionStatus.WITHDRAWN


def series_key(interaction: Interaction) -> str:
    """What the exclusion is kept by: the series' iCalUId, else the interaction's key."""
    uid = interaction.details.ical_uid if interaction.details is not None else None
    return series_uid(uid)[:512] if uid else interaction.external_key


def exclusion_of(session: Session, interaction: Interaction) -> MeetingExclusion | None:
    return session.scalar(
        select(MeetingExclusion).where(MeetingExclusion.series_key == series_key(interaction))
    )


def excluded_series(session: Session, keys: Iterable[str]) -> frozenset[str]:
    """Which of these series keys a rep excluded (for a round's plan)."""
    wanted = sorted(set(keys))
    found: set[str] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        found.update(
            session.scalars(
                select(MeetingExclusion.series_key).where(MeetingExclusion.series_key.in_(chunk))
            )
        )
    return frozenset(found)


def exclusions_of(session: Session, rep_email: str) -> list[MeetingExclusion]:
    """The rep's exclusions, newest first."""
    return list(
        session.scalars(
            select(MeetingExclusion)
            .where(MeetingExclusion.rep_email == rep_email)
            .order_by(MeetingExclusion.created_at.desc(), MeetingExclusion.id.desc())
        )
    )


def may_control(interaction: Interaction, rep_email: str, session: Session) -> bool:
    """The rep's own meeting: in her calendar, or on a deal she owns."""
    if interaction.details is not None and rep_email in interaction.details.mailboxes:
        return True
    deal = session.get(Deal, interaction.deal_id) if interaction.deal_id else None
    return deal is not None and deal.owner_email == rep_email


def can_undo(exclusion: MeetingExclusion | None, rep_email: str, now: dt.datetime) -> bool:
    return exclusion is not None and exclusion.rep_email == rep_email and now < exclusion.undo_until


def withdraw(
    session: Session,
    interaction: Interaction,
    rep_email: str,
    settings: Settings,
    now: dt.datetime,
    *,
    source: str,
) -> MeetingExclusion:
    """Withdraw the meeting and keep it out; a second press changes nothing."""
    if interaction.kind != InteractionKind.MEETING or interaction.details is None:
        raise Conflict("only a meeting read from a calendar can be withdrawn")
    if not may_control(interaction, rep_email, session):
        raise Forbidden("this meeting is not in your calendar or on your deals")
    found = exclusion_of(session, interaction)
    if found is not None:
        return found
    exclusion = MeetingExclusion(
        series_key=series_key(interaction),
        meeting_key=interaction.external_key,
        rep_email=rep_email,
        interaction_id=interaction.id,
        previous_status=str(interaction.status),
        created_at=now,
        undo_until=now + UNDO_WINDOW,
    )
    session.add(exclusion)
    interaction.status = WITHDRAWN
    interaction.updated_at = now
    _touch_deal(session, interaction, now)
    event = InteractionWithdrawn(
        interaction=interaction.id,
        deal=_crm_id(session, interaction),
        by=rep_email,
        source=source,
        undo_until=_iso(exclusion.undo_until),
    )
    crm_webhooks.notify(
        session, settings, event, key=f"interaction.withdrawn:{interaction.id}:{_iso(now)}", now=now
    )
    return exclusion


def undo(
    session: Session,
    interaction: Interaction,
    rep_email: str,
    settings: Settings,
    now: dt.datetime,
    *,
    source: str,
) -> None:
    """Bring a withdrawn meeting back (within a day, by the rep who withdrew it)."""
    exclusion = exclusion_of(session, interaction)
    if exclusion is None:
        return  # not withdrawn (a stale card): nothing to undo
    if exclusion.rep_email != rep_email:
        raise Forbidden("only the rep who withdrew this meeting can bring it back")
    if now >= exclusion.undo_until:
        raise Conflict("Undo is possible for a day; this meeting stays out")
    interaction.status = InteractionStatus(exclusion.previous_status)
    interaction.updated_at = now
    session.delete(exclusion)
    _touch_deal(session, interaction, now)
    event = InteractionRestored(
        interaction=interaction.id,
        deal=_crm_id(session, interaction),
        status=str(interaction.status),
        by=rep_email,
        source=source,
    )
    crm_webhooks.notify(
        session, settings, event, key=f"interaction.restored:{interaction.id}:{_iso(now)}", now=now
    )


def _touch_deal(session: Session, interaction: Interaction, now: dt.datetime) -> None:
    session.flush()
    deal = session.get(Deal, interaction.deal_id) if interaction.deal_id else None
    if deal is not None:
        refresh_last_interaction(session, deal, now)
        session.flush()
        announce(session, deal, now)


def _crm_id(session: Session, interaction: Interaction) -> str | None:
    deal = session.get(Deal, interaction.deal_id) if interaction.deal_id else None
    return deal.crm_id if deal is not None else None


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
