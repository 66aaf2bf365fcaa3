"""REST API v1: deals and their stage moves."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json

from pydantic import ValidationError
from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connector.api.routing import DEAL_ID, ID_RULE, Api, actor, body_context
from connector.api.schemas import (
    BulkDeal,
    BulkDealsIn,
    BulkDealsRaw,
    BulkItemResult,
    BulkResult,
    DealIn,
    DealList,
    DealOut,
    DealQuery,
    InteractionIn,
    StageChangeOut,
    StageHistory,
    StageMove,
)
from connector.deals.changes import (
    Outcome,
    announce,
    announce_created,
    check_deal,
    create_deals,
    deal_out,
    get_deal,
    log_interaction,
    move_stage,
    upsert_deal,
)
from connector.deals.pipelines import get_pipeline
from connector.errors import Conflict, DealBridgeError, from_validation_error, invalid
from connector.settings import current_settings
from connector.stage_reminders.replan import deferred_deliveries, withdraw_all
from connector.store.db import db_session
from connector.store.models import Deal, Pipeline, utcnow

api = Api("api_v1_deals", "/api/v1")


def _pipelines(session: Session) -> dict[str, Pipeline]:
    return {p.id: p for p in session.scalars(select(Pipeline))}


@api.operation(
    "PUT",
    f"/deals/{ID_RULE}",
    summary="Create or update a deal",
    status=201,
    tag="deals",
    scope="write",
    body=DealIn,
    response=DealOut,
    errors=(400, 401, 403, 413, 422),
    path_params=DEAL_ID,
)
def put_deal(deal_id: str, body: DealIn) -> tuple[DealOut, int]:
    """Upsert by the CRM's id. Idempotent: sending the same deal again changes nothing.
    A changed stage is recorded in the deal's stage history and restarts its stage clock."""
    session = db_session()
    now = utcnow()
    deal, outcome = upsert_deal(
        session,
        deal_id,
        body,
        actor=actor(),
        now=now,
        default_pipeline=current_settings().default_pipeline,
    )
    pipeline = get_pipeline(session, deal.pipeline_id)
    out = deal_out(deal, pipeline, now)
    session.commit()
    return out, 201 if outcome == "created" else 200


@api.operation(
    "POST",
    "/deals:bulk",
    summary="Create or update up to 1,000 deals",
    tag="deals",
    scope="write",
    body=BulkDealsRaw,
    documented_body=BulkDealsIn,
    response=BulkResult,
    errors=(400, 401, 403, 413, 422),
)
def bulk_deals(body: BulkDealsRaw) -> BulkResult:
    """Each deal is applied on its own (all or nothing per item): a bad item gets its
    errors in its result and does not stop the others."""
    session = db_session()
    now = utcnow()
    settings = current_settings()
    pipelines = _pipelines(session)
    results: dict[int, BulkItemResult] = {}
    planned: list[tuple[int, BulkDeal]] = []  # a BulkDeal is a DealIn with its id
    seen: set[str] = set()
    context = body_context()
    # Plan: validate every item (shape, pipeline, stage) before touching the session.
    for index, raw in enumerate(body.deals):
        crm_id = raw.get("id") if isinstance(raw.get("id"), str) else None
        try:
            item = BulkDeal.model_validate(raw, context=context)
            if item.id in seen:
                raise invalid("id", f"deal {item.id!r} appears twice in this call")
            seen.add(item.id)
            check_deal(pipelines, item, settings.default_pipeline)
        except ValidationError as exc:
            problem = from_validation_error(exc, "body", prefix=f"deals.{index}.")
            results[index] = _failed(crm_id, index, problem)
            continue
        except DealBridgeError as exc:
            results[index] = _failed(crm_id, index, exc, prefix=f"deals.{index}.")
            continue
        planned.append((index, item))
    # Apply: one flush for the batch; if the database still refuses it (a concurrent writer),
    # redo item by item in savepoints so only the refused items fail.
    try:
        with session.begin_nested():
            outcomes = _apply_bulk(session, planned, pipelines, now)
    except IntegrityError:
        outcomes = {}
        for entry in planned:
            try:
                with session.begin_nested():
                    outcomes.update(_apply_bulk(session, [entry], pipelines, now))
            except IntegrityError as exc:
                conflict = Conflict(f"the database refused it: {exc.orig}")
                results[entry[0]] = _failed(entry[1].id, entry[0], conflict)
    for index, (item_id, outcome) in outcomes.items():
        results[index] = BulkItemResult(id=item_id, index=index, result=outcome)
    session.commit()
    items = [results[i] for i in sorted(results)]
    counts = {key: sum(r.result == key for r in items) for key in _OUTCOMES}
    return BulkResult(**counts, items=items)


_OUTCOMES = ("created", "updated", "unchanged", "failed")


def _apply_bulk(
    session: Session,
    planned: list[tuple[int, BulkDeal]],
    pipelines: dict[str, Pipeline],
    now: dt.datetime,
) -> dict[int, tuple[str, Outcome]]:
    ids = [item.id for _, item in planned]
    existing = {d.crm_id: d for d in session.scalars(select(Deal).where(Deal.crm_id.in_(ids)))}
    default_pipeline = current_settings().default_pipeline
    outcomes: dict[int, tuple[str, Outcome]] = {}
    changed: list[Deal] = []
    new: list[tuple[int, BulkDeal]] = []
    for index, item in planned:
        if item.id not in existing:
            new.append((index, item))
            continue
        deal, outcome = upsert_deal(
            session,
            item.id,
            item,
            actor=actor(),
            now=now,
            default_pipeline=default_pipeline,
            existing=existing[item.id],
            pipelines=pipelines,
            flush=False,
            lookup=False,
        )
        outcomes[index] = (item.id, outcome)
        if outcome != "unchanged":
            changed.append(deal)
    session.flush()
    # The new ones (all of a CRM's first sync) in one insert per table, announced together.
    created = create_deals(
        session,
        [(item.id, item) for _, item in new],
        actor=actor(),
        now=now,
        default_pipeline=default_pipeline,
        pipelines=pipelines,
    )
    outcomes.update((index, (item.id, "created")) for index, item in new)
    with deferred_deliveries(session, current_settings(), now):
        for deal in changed:
            announce(session, deal, now)
        if created:
            announce_created(session, created, now)
    return outcomes


def _failed(
    crm_id: str | None, index: int, exc: DealBridgeError, prefix: str = ""
) -> BulkItemResult:
    errors = [
        {**e.model_dump(), "field": prefix + e.field if prefix else e.field} for e in exc.errors
    ] or [{"field": prefix.rstrip(".") or "(item)", "message": exc.detail, "location": "body"}]
    return BulkItemResult(id=crm_id, index=index, result="failed", errors=errors)


@api.operation(
    "GET",
    f"/deals/{ID_RULE}",
    summary="Get a deal",
    tag="deals",
    response=DealOut,
    errors=(401, 404),
    path_params=DEAL_ID,
)
def get_one_deal(deal_id: str) -> DealOut:
    session = db_session()
    deal = get_deal(session, deal_id)
    return deal_out(deal, get_pipeline(session, deal.pipeline_id), utcnow())


def _decode_cursor(cursor: str) -> tuple[dt.datetime, int]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor.encode() + b"=="))
        return dt.datetime.fromisoformat(raw[0]), int(raw[1])
    except (ValueError, TypeError, IndexError, KeyError, binascii.Error) as exc:
        raise invalid("cursor", "not a cursor this API gave out", "query") from exc


def _encode_cursor(deal: Deal) -> str:
    raw = json.dumps([deal.updated_at.isoformat(), deal.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@api.operation(
    "GET",
    "/deals",
    summary="List deals",
    tag="deals",
    query=DealQuery,
    response=DealList,
    errors=(401, 422),
)
def list_deals(query: DealQuery) -> DealList:
    """Oldest change first, so a CRM can follow changes with updated_since and the cursor."""
    session = db_session()
    stmt = select(Deal)
    if query.pipeline:
        stmt = stmt.where(Deal.pipeline_id == query.pipeline)
    if query.stage:
        stmt = stmt.where(Deal.stage_key == query.stage)
    if query.owner:
        stmt = stmt.where(Deal.owner_email == query.owner)
    if query.status:
        stmt = stmt.where(Deal.status == query.status)
    if query.updated_since:
        stmt = stmt.where(Deal.updated_at >= query.updated_since)
    if query.cursor:
        after, last_id = _decode_cursor(query.cursor)
        stmt = stmt.where(
            or_(Deal.updated_at > after, and_(Deal.updated_at == after, Deal.id > last_id))
        )
    rows = list(session.scalars(stmt.order_by(Deal.updated_at, Deal.id).limit(query.limit + 1)))
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    pipelines = _pipelines(session)
    now = utcnow()
    return DealList(
        items=[deal_out(d, pipelines[d.pipeline_id], now) for d in rows],
        next_cursor=_encode_cursor(rows[-1]) if more and rows else None,
    )


@api.operation(
    "DELETE",
    f"/deals/{ID_RULE}",
    summary="Delete a deal",
    tag="deals",
    scope="write",
    status=204,
    errors=(401, 403, 404),
    path_params=DEAL_ID,
)
def delete_deal(deal_id: str) -> None:
    """Deletes the deal with its stage history and interactions."""
    session = db_session()
    deal = get_deal(session, deal_id)
    withdraw_all(session, deal, current_settings(), utcnow())
    session.delete(deal)
    session.commit()


@api.operation(
    "POST",
    f"/deals/{ID_RULE}/stage",
    summary="Move a deal to another stage",
    tag="deals",
    scope="write",
    body=StageMove,
    response=DealOut,
    errors=(400, 401, 403, 404, 422),
    path_params=DEAL_ID,
)
def post_stage(deal_id: str, body: StageMove) -> DealOut:
    """An unknown stage answers 422 naming the pipeline's stages."""
    session = db_session()
    now = utcnow()
    deal = get_deal(session, deal_id)
    move_stage(session, deal, body.stage, actor=actor(), now=now)
    if body.note:
        note = InteractionIn(kind="note", subject=f"Moved to {body.stage}", text=body.note)
        log_interaction(session, deal, note, actor=actor(), source="api", now=now)
    out = deal_out(deal, get_pipeline(session, deal.pipeline_id), now)
    session.commit()
    return out


@api.operation(
    "GET",
    f"/deals/{ID_RULE}/stages",
    summary="A deal's stage history",
    tag="deals",
    response=StageHistory,
    errors=(401, 404),
    path_params=DEAL_ID,
)
def get_stage_history(deal_id: str) -> StageHistory:
    deal = get_deal(db_session(), deal_id)
    return StageHistory(
        items=[
            StageChangeOut(
                from_stage=c.from_stage,
                to_stage=c.to_stage,
                changed_at=c.changed_at,
                changed_by=c.changed_by,
            )
            for c in deal.stage_changes
        ]
    )


# ---- interactions --------------------------------------------------------------------
