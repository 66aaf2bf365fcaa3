"""Deals: upsert from the CRM, stage moves with history, interactions logged by hand.

These are the store calls that the REST API, the CSV import and the Teams actions share, so
each change is recorded the same way whoever makes it.
"""

from __future__ import annotations

import datetime as dt
import uuid
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from connector.deals.models import Account, Contact, DealIn, DealOut, InteractionIn
from connector.deals.pipelines import get_pipeline
from connector.errors import Conflict, NotFound, invalid
from connector.signals import deal_changed, deals_created
from connector.store.db import insert_numbered, insert_rows
from connector.store.models import (
    Deal,
    DealContact,
    DealDomain,
    Interaction,
    Pipeline,
    Stage,
    StageChange,
)
from connector.store.types import DealStatus, InteractionStatus

CENTS = Decimal("0.01")
NEW_DEALS = "dealbridge.new_deals"  # session.info: deals created in this transaction
Outcome = Literal["created", "updated", "unchanged"]


def announce(session: Session, deal: Deal, now: dt.datetime) -> None:
    """Tell the subscribers (re-planning first of all) that a flushed deal changed."""
    if not deal_changed.receivers:  # a deal changed with nothing to re-plan it must not pass
        raise RuntimeError("nothing receives deal_changed: stage_reminders.init_app(app) does")
    deal_changed.send(session, deal=deal, now=now)


def announce_created(session: Session, deals: Sequence[NewDeal], now: dt.datetime) -> None:
    """Tell the subscribers (re-planning first of all) of deals :func:`create_deals` wrote."""
    if not deals_created.receivers:
        raise RuntimeError("nothing receives deals_created: stage_reminders.init_app(app) does")
    deals_created.send(session, deals=deals, now=now)


@dataclass(frozen=True, slots=True)
class NewDeal:
    """A deal :func:`create_deals` just wrote as a row, as re-planning reads it: not loaded
    back as an ORM object (for a bulk call's 1,000 deals that was a query and 1,000 objects).
    It has no interaction yet, and no contacts or domains are read from it."""

    id: int
    crm_id: str
    title: str
    pipeline_id: str
    stage_key: str
    status: DealStatus
    owner_email: str | None
    account_name: str | None
    amount: Decimal | None
    currency: str | None
    expected_close_date: dt.date | None
    crm_url: str | None
    stage_entered_at: dt.datetime
    last_interaction_at: dt.datetime | None = None


def get_deal(session: Session, crm_id: str) -> Deal:
    deal = session.scalar(select(Deal).where(Deal.crm_id == crm_id))
    if deal is None:
        raise NotFound(f"no deal with id {crm_id!r}", deal=crm_id)
    return deal


def stage_of(pipeline: Pipeline, key: str, field: str = "stage") -> Stage:
    stage = pipeline.stage(key)
    if stage is None:
        valid = ", ".join(s.key for s in pipeline.stages)
        raise invalid(field, f"unknown stage {key!r} in pipeline {pipeline.id!r}; valid: {valid}")
    return stage


def check_deal(pipelines: dict[str, Pipeline], data: DealIn, default_pipeline: str) -> Stage:
    """The deal's stage, or InvalidInput naming the pipeline or stage field."""
    pipeline_id = data.pipeline or default_pipeline
    pipeline = pipelines.get(pipeline_id)
    if pipeline is None:
        raise invalid("pipeline", f"unknown pipeline {pipeline_id!r}")
    return stage_of(pipeline, data.stage)


def _status_for(stage: Stage, asked: str | None) -> DealStatus:
    if stage.is_won:
        return DealStatus.WON
    if stage.is_lost:
        return DealStatus.LOST
    return DealStatus(asked) if asked else DealStatus.OPEN


def _snapshot(deal: Deal) -> dict[str, Any]:
    return {
        "title": deal.title,
        "pipeline_id": deal.pipeline_id,
        "stage_key": deal.stage_key,
        "status": deal.status,
        "owner_email": deal.owner_email,
        "account_name": deal.account_name,
        "amount": deal.amount,
        "currency": deal.currency,
        "expected_close_date": deal.expected_close_date,
        "crm_url": deal.crm_url,
        "lead_source": deal.lead_source,
        "product": deal.product,
        "contacts": [(c.name, c.email) for c in deal.contacts],
        "domains": [d.domain for d in deal.domains],
    }


def upsert_deal(
    session: Session,
    crm_id: str,
    data: DealIn,
    *,
    actor: str,
    now: dt.datetime,
    default_pipeline: str,
    existing: Deal | None = None,
    pipelines: dict[str, Pipeline] | None = None,
    flush: bool = True,
    lookup: bool = True,
) -> tuple[Deal, Outcome]:
    """Create or update a deal from the CRM. Idempotent: the same body twice changes nothing.

    ``pipelines`` is a cache for batches: the identity map holds objects weakly, so without
    it every item would load its pipeline and stages again. With ``flush=False`` the caller
    flushes and calls ``announce`` itself (a batch flushes once)."""
    pipeline = _pipeline_for(session, data, default_pipeline, pipelines)
    stage = stage_of(pipeline, data.stage)
    deal = existing
    if deal is None and lookup:  # a batch has looked every id up already
        deal = session.scalar(select(Deal).where(Deal.crm_id == crm_id))
    created = deal is None
    if deal is None:
        deal = Deal(crm_id=crm_id, stage_entered_at=now, created_at=now, updated_at=now)
        session.add(deal)
        # Lets the re-plan skip looking for reminders of a deal that cannot have any yet.
        session.info.setdefault(NEW_DEALS, weakref.WeakSet()).add(deal)
    before = {} if created else _snapshot(deal)

    for name, value in _values(data, pipeline, stage).items():
        setattr(deal, name, value)
    _set_contacts(deal, data.contacts)
    _set_domains(deal, data.account.domains if data.account else [])

    if created or before["pipeline_id"] != pipeline.id:
        # a new deal, or one moved to another pipeline, enters its stage from nowhere
        _record_stage_change(deal, None, stage.key, actor, now)
    elif before["stage_key"] != stage.key:
        _record_stage_change(deal, before["stage_key"], stage.key, actor, now)
    if not created and _snapshot(deal) == before:
        return deal, "unchanged"
    deal.updated_at = now
    if flush:
        session.flush()
        announce(session, deal, now)
    return deal, "created" if created else "updated"


def _pipeline_for(
    session: Session, data: DealIn, default_pipeline: str, cache: dict[str, Pipeline] | None
) -> Pipeline:
    pipeline_id = data.pipeline or default_pipeline
    cache = cache if cache is not None else {}
    pipeline = cache.get(pipeline_id) or session.get(Pipeline, pipeline_id)
    if pipeline is None:
        raise invalid("pipeline", f"unknown pipeline {pipeline_id!r}")
    cache[pipeline_id] = pipeline
    return pipeline


def _values(data: DealIn, pipeline: Pipeline, stage: Stage) -> dict[str, Any]:
    """The deal's own columns as the CRM's body sets them (contacts and domains aside)."""
    return {
        "title": data.title,
        "pipeline_id": pipeline.id,
        "stage_key": stage.key,
        "status": _status_for(stage, data.status),
        "owner_email": data.owner,
        "account_name": data.account.name if data.account else None,
        "amount": data.amount.quantize(CENTS) if data.amount is not None else None,
        "currency": data.currency,
        "expected_close_date": data.expected_close_date,
        "crm_url": str(data.crm_url) if data.crm_url else None,
        "lead_source": data.lead_source,
        "product": data.product,
    }


def create_deals(
    session: Session,
    items: Sequence[tuple[str, DealIn]],
    *,
    actor: str,
    now: dt.datetime,
    default_pipeline: str,
    pipelines: dict[str, Pipeline],
) -> list[NewDeal]:
    """New deals, none of whose ids exists yet (the caller looked them up; their pipelines and
    stages were checked), written as :func:`upsert_deal` writes them, with their contacts,
    domains and first stage change: one Core ``INSERT`` per table for them all instead of an
    ORM object each (1,000 deals of a bulk call were 4,000 objects through the unit of work).
    They come back for the caller to announce with :func:`announce_created`, as
    :class:`NewDeal` views of their rows, in order. Raises InvalidInput as
    :func:`upsert_deal` does, before writing."""
    if not items:
        return []
    rows = []
    for crm_id, data in items:
        pipeline = _pipeline_for(session, data, default_pipeline, pipelines)
        stage = stage_of(pipeline, data.stage)
        rows.append(
            {
                "crm_id": crm_id,
                **_values(data, pipeline, stage),
                "stage_entered_at": now,
                "created_at": now,
                "updated_at": now,
            }
        )
    numbered = insert_numbered(session, Deal, rows)
    ids: dict[str, int] = {row["crm_id"]: i for row, i in zip(rows, numbered, strict=True)}
    contacts = [
        {"deal_id": ids[crm_id], "name": name, "email": email}
        for crm_id, data in items
        for name, email in _contact_values(data.contacts)
    ]
    domains = [
        {"deal_id": ids[crm_id], "domain": domain}
        for crm_id, data in items
        for domain in _domain_values(data.account.domains if data.account else [])
    ]
    changes = [
        {
            "deal_id": ids[row["crm_id"]],
            "pipeline_id": row["pipeline_id"],
            "from_stage": None,
            "to_stage": row["stage_key"],
            "changed_at": now,
            "changed_by": actor,
        }
        for row in rows
    ]
    insert_rows(session, DealContact, contacts)
    insert_rows(session, DealDomain, domains)
    insert_rows(session, StageChange, changes)
    return [
        NewDeal(
            id=ids[row["crm_id"]],
            crm_id=row["crm_id"],
            title=row["title"],
            pipeline_id=row["pipeline_id"],
            stage_key=row["stage_key"],
            status=row["status"],
            owner_email=row["owner_email"],
            account_name=row["account_name"],
            amount=row["amount"],
            currency=row["currency"],
            expected_close_date=row["expected_close_date"],
            crm_url=row["crm_url"],
            stage_entered_at=now,
        )
        for row in rows
    ]


def _record_stage_change(
    deal: Deal, from_stage: str | None, to_stage: str, actor: str, now: dt.datetime
) -> None:
    deal.stage_entered_at = now
    # Adding with the parent set (not appending) avoids loading the whole history each move.
    change = StageChange(
        deal=deal,
        pipeline_id=deal.pipeline_id,
        from_stage=from_stage,
        to_stage=to_stage,
        changed_at=now,
        changed_by=actor,
    )
    session = object_session(deal)
    assert session is not None, "the deal must be in a session"
    session.add(change)


def _contact_values(contacts: list[Contact]) -> list[tuple[str | None, str]]:
    return [(c.name, str(c.email)) for c in contacts]


def _domain_values(domains: list[str]) -> list[str]:
    return list(dict.fromkeys(domains))


def _set_contacts(deal: Deal, contacts: list[Contact]) -> None:
    wanted = _contact_values(contacts)
    if [(c.name, c.email) for c in deal.contacts] != wanted:
        deal.contacts = [DealContact(name=name, email=email) for name, email in wanted]


def _set_domains(deal: Deal, domains: list[str]) -> None:
    wanted = _domain_values(domains)
    if [d.domain for d in deal.domains] != wanted:
        deal.domains = [DealDomain(domain=domain) for domain in wanted]


def move_stage(
    session: Session,
    deal: Deal,
    stage_key: str,
    *,
    actor: str,
    now: dt.datetime,
) -> bool:
    """Move a deal to a stage of its pipeline; False when it is already there."""
    pipeline = get_pipeline(session, deal.pipeline_id)
    stage = stage_of(pipeline, stage_key)
    if deal.stage_key == stage.key:
        return False
    _record_stage_change(deal, deal.stage_key, stage.key, actor, now)
    deal.stage_key = stage.key
    deal.status = _status_for(stage, "open")
    deal.updated_at = now
    session.flush()
    announce(session, deal, now)
    return True


def log_interaction(
    session: Session,
    deal: Deal,
    data: InteractionIn,
    *,
    actor: str,
    source: str,
    now: dt.datetime,
) -> tuple[Interaction, bool]:
    """Log a call, email or note. Returns (interaction, created); an external id makes it once."""
    occurred = data.occurred_at or now
    key = f"{source}:{deal.crm_id}:{data.external_id}" if data.external_id else None
    if key:
        found = session.scalar(select(Interaction).where(Interaction.external_key == key))
        if found is not None:
            same = (found.kind, found.subject, found.text) == (data.kind, data.subject, data.text)
            if not same:
                raise Conflict(
                    f"external_id {data.external_id!r} was already used for another interaction",
                    interaction=found.id,
                )
            return found, False
    interaction = Interaction(
        deal_id=deal.id,
        kind=data.kind,
        source=source,
        external_key=key or f"{source}:{uuid.uuid4()}",
        status=InteractionStatus.HELD if occurred <= now else InteractionStatus.SCHEDULED,
        subject=data.subject,
        text=data.text,
        started_at=occurred,
        ended_at=occurred,
        created_by=data.by or actor,
        details=None,  # a call, email or note logged by hand has no meeting details
    )
    session.add(interaction)
    if occurred <= now and (
        deal.last_interaction_at is None or occurred > deal.last_interaction_at
    ):
        deal.last_interaction_at = occurred
        deal.updated_at = now
    session.flush()
    announce(session, deal, now)
    return interaction, True


def deal_out(deal: Deal, pipeline: Pipeline, now: dt.datetime) -> DealOut:
    stage = pipeline.stage(deal.stage_key)
    return DealOut(
        id=deal.crm_id,
        title=deal.title,
        pipeline=deal.pipeline_id,
        stage=deal.stage_key,
        stage_name=stage.name if stage else deal.stage_key,
        status=deal.status,
        owner=deal.owner_email,
        account=Account(name=deal.account_name, domains=[d.domain for d in deal.domains]),
        contacts=[Contact(name=c.name, email=c.email) for c in deal.contacts],
        amount=deal.amount,
        currency=deal.currency,
        expected_close_date=deal.expected_close_date,
        crm_url=deal.crm_url,
        lead_source=deal.lead_source,
        product=deal.product,
        stage_entered_at=deal.stage_entered_at,
        days_in_stage=max((now - deal.stage_entered_at).days, 0),
        last_interaction_at=deal.last_interaction_at,
        created_at=deal.created_at,
        updated_at=deal.updated_at,
    )
