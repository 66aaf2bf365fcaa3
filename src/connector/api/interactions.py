"""REST API v1: a deal's interactions (calls, emails, notes logged by hand)."""

from __future__ import annotations

from sqlalchemy import Boolean, ColumnElement, cast, exists, func, literal, or_, select
from sqlalchemy.dialects.postgresql import JSONB

from connector.api.routing import DEAL_ID, ID_RULE, Api, actor
from connector.api.schemas import InteractionIn, InteractionList, InteractionOut
from connector.deals.changes import get_deal, log_interaction
from connector.store.db import db_session
from connector.store.models import Interaction, utcnow

api = Api("api_v1_interactions", "/api/v1")


def taken_part_by(dialect: str, rep: str) -> ColumnElement[bool]:
    """SQL for "this rep took part": among the meeting's internal participants (a JSON list in
    ``details``), or the one who logged it by hand. Evaluated by the database, so a filtered
    and limited list loads only the rows it answers."""
    if dialect == "postgresql":
        participants = func.jsonb_extract_path(
            cast(Interaction.details, JSONB), "internal_participants"
        )
        listed: ColumnElement[bool] = participants.op("@>", return_type=Boolean)(
            func.jsonb_build_array(rep)
        )
    else:  # SQLite's JSON1 (built into every SQLite that SQLAlchemy supports)
        each = func.json_each(Interaction.details, "$.internal_participants").table_valued("value")
        listed = exists(select(literal(1)).select_from(each).where(each.c.value == rep))
    return or_(Interaction.created_by == rep, listed)


def interaction_out(interaction: Interaction, crm_id: str | None) -> InteractionOut:
    return InteractionOut(
        id=interaction.id,
        deal=crm_id,
        kind=interaction.kind,
        source=interaction.source,
        status=interaction.status,
        subject=interaction.subject,
        text=interaction.text,
        started_at=interaction.started_at,
        ended_at=interaction.ended_at,
        created_by=interaction.created_by,
        match_rule=interaction.match_rule,
        matched_address=interaction.matched_address,
        details=interaction.details,
    )


@api.operation(
    "GET",
    f"/deals/{ID_RULE}/interactions",
    summary="A deal's interactions, newest first",
    tag="interactions",
    response=InteractionList,
    errors=(401, 404),
    path_params=DEAL_ID,
)
def list_interactions(deal_id: str) -> InteractionList:
    session = db_session()
    deal = get_deal(session, deal_id)
    rows = session.scalars(
        select(Interaction)
        .where(Interaction.deal_id == deal.id)
        .order_by(Interaction.started_at.desc(), Interaction.id.desc())
    )
    return InteractionList(items=[interaction_out(i, deal.crm_id) for i in rows])


@api.operation(
    "POST",
    f"/deals/{ID_RULE}/interactions",
    summary="Log a call, email or note by hand",
    tag="interactions",
    scope="write",
    body=InteractionIn,
    response=InteractionOut,
    status=201,
    also={200: "Already logged: the same external_id with the same content"},
    errors=(400, 401, 403, 404, 409, 422),
    path_params=DEAL_ID,
)
def post_interaction(deal_id: str, body: InteractionIn) -> tuple[InteractionOut, int]:
    """With an external_id the same interaction is logged once however often it is sent;
    reusing an external_id for different content is a 409."""
    session = db_session()
    deal = get_deal(session, deal_id)
    interaction, created = log_interaction(
        session, deal, body, actor=actor(), source="api", now=utcnow()
    )
    out = interaction_out(interaction, deal.crm_id)
    session.commit()
    return out, 201 if created else 200


# ---- pipelines -----------------------------------------------------------------------
