"""Meetings as interactions on deals: settle a choice, move a meeting to another deal.

A meeting becomes one interaction (key: iCalUId, plus the occurrence's original start for
recurring ones) whichever mailbox it was read from; see ``connector.meetings.sync``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connector.deals.changes import announce, get_deal
from connector.errors import Conflict, NotFound
from connector.signals import meeting_deal_chosen
from connector.store.models import Deal, Interaction
from connector.store.types import InteractionStatus


def get_interaction(session: Session, interaction_id: int) -> Interaction:
    interaction = session.get(Interaction, interaction_id)
    if interaction is None:
        raise NotFound(f"no interaction {interaction_id}", interaction=interaction_id)
    return interaction


def meeting_status(
    started_at: dt.datetime, ended_at: dt.datetime | None, now: dt.datetime
) -> InteractionStatus:
    """Scheduled until it ends, held after."""
    ended = (ended_at or started_at) <= now
    return InteractionStatus.HELD if ended else InteractionStatus.SCHEDULED


def choose_deal(
    session: Session,
    interaction_id: int,
    deal_crm_id: str,
    *,
    by: str,
    now: dt.datetime,
) -> Interaction:
    """Settle a meeting that needed a choice, or move a logged meeting to another deal."""
    interaction = get_interaction(session, interaction_id)
    if interaction.status == InteractionStatus.CANCELLED:
        raise Conflict(f"interaction {interaction_id} was cancelled", interaction=interaction_id)
    deal = get_deal(session, deal_crm_id)
    previous = session.get(Deal, interaction.deal_id) if interaction.deal_id else None
    moved = previous is not None and previous.id != deal.id
    interaction.deal_id = deal.id
    interaction.match_rule = "chosen"
    interaction.matched_address = by
    if interaction.status == InteractionStatus.NEEDS_CHOICE:
        interaction.status = meeting_status(interaction.started_at, interaction.ended_at, now)
    if interaction.details is not None:  # a meeting; one logged by hand has no details
        details = interaction.details
        suggested = [str(c.deal) for c in details.candidates]
        outside = bool(suggested) and deal.crm_id not in suggested
        changes: dict[str, Any] = {
            "chosen_by": by,
            "chosen_at": now.isoformat(),
            "explanation": chosen_explanation(
                deal.crm_id, by, previous.crm_id if moved and previous else None, suggested
            ),
        }
        if moved and previous is not None:
            changes["moved_from"] = previous.crm_id
        if outside:
            changes["chosen_outside_candidates"] = True
        interaction.details = details.but(**changes)
    touched = [deal] + ([previous] if moved and previous is not None else [])
    for affected in touched:
        refresh_last_interaction(session, affected, now)
    session.flush()
    for affected in touched:
        announce(session, affected, now)
    meeting_deal_chosen.send(session, interaction=interaction, deal=deal.crm_id, by=by, now=now)
    return interaction


def chosen_explanation(deal: str, by: str, moved_from: str | None, suggested: list[str]) -> str:
    """Why a meeting is on the deal a rep chose, in words (the card's and the API's "why")."""
    text = f"{by} chose deal {deal}"
    if moved_from is not None:
        text += f", moving it from deal {moved_from}"
    if len(suggested) > 1 and deal in suggested:
        text += f" (DealBridge had asked: {', '.join(suggested)} were equally good)"
    elif suggested and deal not in suggested:
        text += f" (not one of the deals DealBridge suggested: {', '.join(suggested)})"
    return text


def refresh_last_interaction(session: Session, deal: Deal, now: dt.datetime) -> None:
    """The deal's last interaction: the latest held one (cancelled ones do not count)."""

    latest = session.scalar(
        select(func.max(Interaction.started_at)).where(
            Interaction.deal_id == deal.id,
            Interaction.status == InteractionStatus.HELD,
            Interaction.started_at <= now,
        )
    )
    if latest is not None and latest.tzinfo is None:
        latest = latest.replace(tzinfo=dt.UTC)
    set_last_interaction(deal, latest, now)


def set_last_interaction(deal: Deal, latest: dt.datetime | None, now: dt.datetime) -> None:
    """Record the deal's latest held interaction (:func:`refresh_last_interaction` looks it up;
    a round that looked up many deals at once gives it)."""
    if deal.last_interaction_at != latest:
        deal.last_interaction_at = latest
        deal.updated_at = now
