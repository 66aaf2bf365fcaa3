"""REST API v1: deals, stage moves, interactions, pipelines, reps, analytics."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
from typing import Any

from flask import g
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connector.api.routing import Api
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
    Email,
    Funnel,
    FunnelQuery,
    InteractionIn,
    InteractionList,
    InteractionOut,
    PipelineIn,
    PipelineList,
    PipelineOut,
    RepIn,
    RepList,
    RepOut,
    StageChangeOut,
    StageHistory,
    StageMove,
    StageOut,
)
from connector.deals import analytics
from connector.deals.changes import (
    Outcome,
    announce,
    check_deal,
    deal_out,
    get_deal,
    log_interaction,
    move_stage,
    upsert_deal,
)
from connector.deals.pipelines import StageSpec, get_pipeline, replace_stages
from connector.deals.reps import set_digest, wants_digest
from connector.errors import (
    Conflict,
    DealBridgeError,
    NotFound,
    from_validation_error,
    invalid,
)
from connector.settings import current_settings
from connector.stage_reminders.replan import check_rules, deferred_deliveries, withdraw_all
from connector.store.db import db_session
from connector.store.models import Deal, Interaction, Pipeline, Rep, RepPreference, utcnow

api = Api("api_v1", "/api/v1")
ID_RULE = "<string(maxlength=128):deal_id>"
DEAL_ID = {"deal_id": "The CRM's id of the deal."}


def _actor() -> str:
    return str(g.caller.name)


def _pipelines(session: Session) -> dict[str, Pipeline]:
    return {p.id: p for p in session.scalars(select(Pipeline))}


# ---- deals ---------------------------------------------------------------------------


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
        actor=_actor(),
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
    planned: list[tuple[int, BulkDeal, DealIn]] = []
    seen: set[str] = set()
    # Plan: validate every item (shape, pipeline, stage) before touching the session.
    for index, raw in enumerate(body.deals):
        crm_id = raw.get("id") if isinstance(raw.get("id"), str) else None
        try:
            item = BulkDeal.model_validate(raw)
            if item.id in seen:
                raise invalid("id", f"deal {item.id!r} appears twice in this call")
            seen.add(item.id)
            data = DealIn.model_validate(item.model_dump(exclude={"id"}))
            check_deal(pipelines, data, settings.default_pipeline)
        except ValidationError as exc:
            problem = from_validation_error(exc, "body", prefix=f"deals.{index}.")
            results[index] = _failed(crm_id, index, problem)
            continue
        except DealBridgeError as exc:
            results[index] = _failed(crm_id, index, exc, prefix=f"deals.{index}.")
            continue
        planned.append((index, item, data))
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
    planned: list[tuple[int, BulkDeal, DealIn]],
    pipelines: dict[str, Pipeline],
    now: dt.datetime,
) -> dict[int, tuple[str, Outcome]]:
    ids = [item.id for _, item, _ in planned]
    existing = {d.crm_id: d for d in session.scalars(select(Deal).where(Deal.crm_id.in_(ids)))}
    outcomes: dict[int, tuple[str, Outcome]] = {}
    changed: list[Deal] = []
    for index, item, data in planned:
        deal, outcome = upsert_deal(
            session,
            item.id,
            data,
            actor=_actor(),
            now=now,
            default_pipeline=current_settings().default_pipeline,
            existing=existing.get(item.id),
            pipelines=pipelines,
            flush=False,
            lookup=False,
        )
        outcomes[index] = (item.id, outcome)
        if outcome != "unchanged":
            changed.append(deal)
    session.flush()
    with deferred_deliveries(session, current_settings(), now):
        for deal in changed:
            announce(session, deal, now)
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
    move_stage(session, deal, body.stage, actor=_actor(), now=now)
    if body.note:
        note = InteractionIn(kind="note", subject=f"Moved to {body.stage}", text=body.note)
        log_interaction(session, deal, note, actor=_actor(), source="api", now=now)
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
    errors=(400, 401, 403, 404, 409, 422),
    path_params=DEAL_ID,
)
def post_interaction(deal_id: str, body: InteractionIn) -> tuple[InteractionOut, int]:
    """With an external_id the same interaction is logged once however often it is sent;
    reusing an external_id for different content is a 409."""
    session = db_session()
    deal = get_deal(session, deal_id)
    interaction, created = log_interaction(
        session, deal, body, actor=_actor(), source="api", now=utcnow()
    )
    out = interaction_out(interaction, deal.crm_id)
    session.commit()
    return out, 201 if created else 200


# ---- pipelines -----------------------------------------------------------------------


def pipeline_out(pipeline: Pipeline) -> PipelineOut:
    return PipelineOut(
        id=pipeline.id,
        name=pipeline.name,
        preset=pipeline.preset,
        stages=[
            StageOut(
                key=s.key,
                name=s.name,
                probability=s.probability,
                won=s.is_won,
                lost=s.is_lost,
                rules=s.rules,
            )
            for s in pipeline.stages
        ],
    )


@api.operation(
    "GET", "/pipelines", summary="List pipelines", tag="pipelines", response=PipelineList
)
def list_pipelines() -> PipelineList:
    session = db_session()
    return PipelineList(
        items=[pipeline_out(p) for p in session.scalars(select(Pipeline).order_by(Pipeline.id))]
    )


PIPELINE_RULE = "<string(maxlength=64):pipeline_id>"


@api.operation(
    "GET",
    f"/pipelines/{PIPELINE_RULE}",
    summary="Get a pipeline with its stages",
    tag="pipelines",
    response=PipelineOut,
    errors=(401, 404),
    path_params={"pipeline_id": "The pipeline's id, e.g. classic5."},
)
def get_one_pipeline(pipeline_id: str) -> PipelineOut:
    return pipeline_out(get_pipeline(db_session(), pipeline_id))


@api.operation(
    "PUT",
    f"/pipelines/{PIPELINE_RULE}",
    summary="Create a pipeline or replace its stages",
    status=201,
    tag="pipelines",
    scope="write",
    body=PipelineIn,
    response=PipelineOut,
    errors=(400, 401, 403, 409, 422),
    path_params={"pipeline_id": "The pipeline's id, e.g. enterprise."},
)
def put_pipeline(pipeline_id: str, body: PipelineIn) -> tuple[PipelineOut, int]:
    """Stages in the order given. A stage that still holds deals cannot be removed (409)."""
    if not _valid_key(pipeline_id):
        raise invalid("pipeline_id", "use lowercase letters, digits, _ and -", "path")
    session = db_session()
    specs = []
    for index, stage in enumerate(body.stages):
        rules = check_rules(stage.rules, f"stages.{index}.rules")
        specs.append(
            StageSpec(
                key=stage.key,
                name=stage.name,
                probability=stage.probability,
                is_won=stage.won,
                is_lost=stage.lost,
                rules=tuple(rules),
            )
        )
    pipeline = session.get(Pipeline, pipeline_id)
    created = pipeline is None
    if pipeline is None:
        pipeline = Pipeline(id=pipeline_id, name=body.name)
        session.add(pipeline)
    replace_stages(session, pipeline, body.name, specs)
    out = pipeline_out(pipeline)
    session.commit()
    return out, 201 if created else 200


def _valid_key(value: str) -> bool:

    return re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", value) is not None


# ---- reps ----------------------------------------------------------------------------


def rep_out(rep: Rep, open_deals: int, daily_digest: bool | None = None) -> RepOut:
    if daily_digest is None:
        daily_digest = wants_digest(db_session(), rep.email)
    return RepOut(
        daily_digest=daily_digest,
        email=rep.email,
        display_name=rep.display_name,
        entra_id=rep.entra_id,
        time_zone=rep.time_zone,
        working_days=list(rep.working_days),
        work_start=rep.work_start,
        work_end=rep.work_end,
        holiday_country=rep.holiday_country,
        manager=rep.manager_email,
        active=rep.active,
        open_deals=open_deals,
    )


def _open_deals_by_owner(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(Deal.owner_email, func.count())
        .where(Deal.status == "open")
        .group_by(Deal.owner_email)
    )
    return {owner: count for owner, count in rows if owner}


@api.operation("GET", "/reps", summary="List reps", tag="reps", response=RepList)
def list_reps() -> RepList:
    session = db_session()
    counts = _open_deals_by_owner(session)
    reps = session.scalars(select(Rep).order_by(Rep.email))
    digests = set(
        session.scalars(select(RepPreference.rep_email).where(RepPreference.daily_digest.is_(True)))
    )
    return RepList(items=[rep_out(r, counts.get(r.email, 0), r.email in digests) for r in reps])


REP_RULE = "<string(maxlength=320):email>"


_EMAIL: TypeAdapter[str] = TypeAdapter(Email)


def _rep_email(email: str) -> str:
    try:
        return str(_EMAIL.validate_python(email))
    except ValidationError as exc:
        raise invalid("email", f"{email!r} is not an email address", "path") from exc


@api.operation(
    "GET",
    f"/reps/{REP_RULE}",
    summary="Get a rep",
    tag="reps",
    response=RepOut,
    errors=(401, 404),
    path_params={"email": "The rep's email / UPN."},
)
def get_rep(email: str) -> RepOut:

    session = db_session()
    rep = session.scalar(select(Rep).where(Rep.email == _rep_email(email)))
    if rep is None:
        raise NotFound(f"no rep {email!r}", rep=email)
    return rep_out(rep, _open_deals_by_owner(session).get(rep.email, 0))


@api.operation(
    "PUT",
    f"/reps/{REP_RULE}",
    summary="Create or update a rep",
    status=201,
    tag="reps",
    scope="write",
    body=RepIn,
    response=RepOut,
    errors=(400, 401, 403, 422),
    path_params={"email": "The rep's email / UPN."},
)
def put_rep(email: str, body: RepIn) -> tuple[RepOut, int]:
    """Fields left out keep their value (working hours are read from Outlook otherwise)."""
    session = db_session()
    address = _rep_email(email)
    rep = session.scalar(select(Rep).where(Rep.email == address))
    created = rep is None
    if rep is None:
        rep = Rep(email=address, display_name=address.split("@")[0])
        session.add(rep)
    fields: dict[str, Any] = body.model_dump(exclude_unset=True)
    digest = fields.pop("daily_digest", None)
    if digest is not None:
        set_digest(session, address, digest)
    if "manager" in fields:
        fields["manager_email"] = fields.pop("manager")
    for required in ("work_start", "work_end", "time_zone", "working_days", "active"):
        if fields.get(required, "") is None:
            del fields[required]  # null means "leave as it is" for fields that always have one
    start = fields.get("work_start") or rep.work_start or "09:00"
    end = fields.get("work_end") or rep.work_end or "17:00"
    if end <= start:
        raise invalid("work_end", "must be after work_start")
    for name, value in fields.items():
        if value is not None or name in {"entra_id", "holiday_country", "manager_email"}:
            setattr(rep, name, value)
    session.flush()
    out = rep_out(rep, _open_deals_by_owner(session).get(rep.email, 0))
    session.commit()
    return out, 201 if created else 200


# ---- analytics -----------------------------------------------------------------------


@api.operation(
    "GET",
    "/analytics/funnel",
    summary="Stage conversion and time in stage",
    tag="analytics",
    query=FunnelQuery,
    response=Funnel,
    errors=(401, 404, 422),
)
def get_funnel(query: FunnelQuery) -> Funnel:
    """For each stage: the deals that reached it, conversion to the next stage
    (reached next / reached this × 100), and the average and median days spent in it.
    Deals are those that entered the pipeline between from and to, cut by owner,
    lead source or product when given."""
    session = db_session()
    pipeline = get_pipeline(session, query.pipeline)
    if query.from_ and query.to and query.to <= query.from_:
        raise invalid("to", "must be after from", "query")
    return analytics.funnel(session, pipeline, query, utcnow())
