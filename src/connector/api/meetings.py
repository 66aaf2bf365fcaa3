"""REST API v1: meetings logged from Outlook — choices to settle, and the sync's state."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from flask import g
from pydantic import BaseModel, Field
from sqlalchemy import select

from connector.api.interactions import interaction_out, taken_part_by
from connector.api.routing import Api
from connector.api.schemas import Email, InteractionList, InteractionOut, Strict
from connector.meetings.interactions import choose_deal
from connector.meetings.sync import next_round_at
from connector.settings import current_settings
from connector.store.db import db_session
from connector.store.models import Deal, Interaction, Mailbox, utcnow

api = Api("api_v1_meetings", "/api/v1")


class InteractionQuery(Strict):
    status: (
        Literal[
            "needs_choice", "scheduled", "held", "cancelled", "unmatched", "withdrawn", "no_show"
        ]
        | None
    ) = Field(
        default=None,
        description="Only interactions in this state (`needs_choice`: a meeting that matches "
        "several deals and waits for the rep's pick; `withdrawn`: the rep said not to log it; "
        "`no_show`: Teams says nobody from the customer joined).",
    )
    rep: Email | None = Field(
        default=None, description="Meetings this rep attended, and what the rep logged by hand."
    )
    kind: Literal["meeting", "call", "email", "note"] | None = Field(
        default=None, description="Only interactions of this kind."
    )
    limit: int = Field(default=100, ge=1, le=1000, description="At most this many, newest first.")


class ChooseDeal(Strict):
    deal: str = Field(min_length=1, max_length=128, description="The CRM id of the deal.")


class MailboxStatus(BaseModel):
    rep: str
    last_round_at: dt.datetime | None
    last_success_at: dt.datetime | None
    last_error: str | None
    last_error_code: str | None = Field(
        description="The last error's code as Graph or Entra gave it (ErrorAccessDenied, "
        "AADSTS65001)."
    )
    missing_permission: str | None = Field(
        description="The application permission that error's code says is not consented."
    )
    failures: int
    events_seen: int
    window_start: dt.datetime | None
    window_end: dt.datetime | None
    subscription_expires_at: dt.datetime | None
    waiting_for_a_round: bool
    next_round_at: dt.datetime = Field(
        description="When its next round is due: at once after a notification that follows a "
        "quiet spell, after the backoff when rounds fail (30 s, doubling, at most 1 h), else at "
        "the poll."
    )


class SyncStatus(BaseModel):
    mailboxes: list[MailboxStatus]


@api.operation(
    "GET",
    "/interactions",
    summary="List interactions (e.g. meetings that need a choice)",
    tag="interactions",
    query=InteractionQuery,
    response=InteractionList,
    errors=(401, 422),
)
def list_all_interactions(query: InteractionQuery) -> InteractionList:
    """Newest first. ``status=needs_choice`` lists meetings matching several deals equally
    well; ``details.candidates`` says which."""
    session = db_session()
    stmt = select(Interaction, Deal.crm_id).outerjoin(Deal, Deal.id == Interaction.deal_id)
    if query.status:
        stmt = stmt.where(Interaction.status == query.status)
    if query.kind:
        stmt = stmt.where(Interaction.kind == query.kind)
    if query.rep:
        stmt = stmt.where(taken_part_by(session.get_bind().dialect.name, query.rep))
    stmt = stmt.order_by(Interaction.started_at.desc(), Interaction.id.desc()).limit(query.limit)
    items = [interaction_out(i, crm_id) for i, crm_id in session.execute(stmt)]
    return InteractionList(items=items)


@api.operation(
    "POST",
    "/interactions/<int:interaction_id>/deal",
    summary="Settle a meeting's deal, or move it to another deal",
    tag="interactions",
    scope="write",
    body=ChooseDeal,
    response=InteractionOut,
    errors=(400, 401, 403, 404, 409, 422),
    path_params={"interaction_id": "The interaction's id."},
)
def post_interaction_deal(interaction_id: int, body: ChooseDeal) -> InteractionOut:
    """The choice sticks: later syncs of the meeting keep it on this deal."""
    session = db_session()
    interaction = choose_deal(
        session, interaction_id, body.deal, by=str(g.caller.name), now=utcnow()
    )
    out = interaction_out(interaction, body.deal)
    session.commit()
    return out


@api.operation(
    "GET",
    "/sync/status",
    summary="Calendar sync per mailbox",
    tag="sync",
    response=SyncStatus,
    errors=(401,),
)
def sync_status() -> SyncStatus:
    """Last round, last success, last error and subscription expiry of each rep's mailbox."""
    session = db_session()
    settings, now = current_settings(), utcnow()
    return SyncStatus(
        mailboxes=[
            MailboxStatus(
                rep=m.rep_email,
                last_round_at=m.last_round_at,
                last_success_at=m.last_success_at,
                last_error=m.last_error,
                last_error_code=m.last_error_code,
                missing_permission=m.missing_permission,
                failures=m.failures,
                events_seen=m.events_seen,
                window_start=m.window_start,
                window_end=m.window_end,
                subscription_expires_at=m.subscription_expires_at,
                waiting_for_a_round=m.needs_sync,
                next_round_at=next_round_at(m, settings, now),
            )
            for m in session.scalars(select(Mailbox).order_by(Mailbox.rep_email))
        ]
    )
