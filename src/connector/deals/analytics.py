"""Funnel analytics: conversion between stages and time spent in each.

``conversion(i → i+1) = deals that reached stage i+1 / deals that reached stage i × 100``
(SALES_PROCESS.md). A deal reached a stage when it was ever in it or in any later open stage
(a CRM may skip stages); a won deal reached every open stage; a lost deal reached the
furthest open stage it was in.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.deals.models import Funnel, FunnelQuery, FunnelStage
from connector.store.models import Deal, Pipeline, StageChange

_DAY = 86400.0


def funnel(session: Session, pipeline: Pipeline, query: FunnelQuery, now: dt.datetime) -> Funnel:
    open_stages = [s for s in pipeline.stages if not (s.is_won or s.is_lost)]
    position = {s.key: i for i, s in enumerate(open_stages)}
    won_keys = {s.key for s in pipeline.stages if s.is_won}

    deals_stmt = select(Deal.id, Deal.stage_key, Deal.status).where(Deal.pipeline_id == pipeline.id)
    if query.owner:
        deals_stmt = deals_stmt.where(Deal.owner_email == query.owner)
    if query.lead_source:
        deals_stmt = deals_stmt.where(Deal.lead_source == query.lead_source)
    if query.product:
        deals_stmt = deals_stmt.where(Deal.product == query.product)
    deals = {row.id: row for row in session.execute(deals_stmt)}

    history: dict[int, list[StageChange]] = defaultdict(list)
    changes = session.scalars(
        select(StageChange)
        .where(StageChange.pipeline_id == pipeline.id)
        .order_by(StageChange.deal_id, StageChange.changed_at, StageChange.id)
    )
    for change in changes:
        if change.deal_id in deals:
            history[change.deal_id].append(change)

    reached = [0] * len(open_stages)
    durations: dict[str, list[float]] = defaultdict(list)
    in_now: dict[str, int] = defaultdict(int)
    counted = won = lost = 0
    for deal_id, row in deals.items():
        visits = history.get(deal_id, [])
        entered = visits[0].changed_at if visits else None
        if query.from_ and (entered is None or entered < query.from_):
            continue
        if query.to and (entered is None or entered >= query.to):
            continue
        counted += 1
        won += row.status == "won"
        lost += row.status == "lost"
        furthest = -1
        for i, visit in enumerate(visits):
            if visit.to_stage in won_keys:
                furthest = len(open_stages) - 1
            furthest = max(furthest, position.get(visit.to_stage, -1))
            left = visits[i + 1].changed_at if i + 1 < len(visits) else None
            if left is not None and visit.to_stage in position:
                durations[visit.to_stage].append((left - visit.changed_at).total_seconds() / _DAY)
        if row.stage_key in position and row.status == "open":
            in_now[row.stage_key] += 1
        for i in range(furthest + 1):
            reached[i] += 1

    stages = []
    for i, stage in enumerate(open_stages):
        spent = durations.get(stage.key, [])
        nxt = reached[i + 1] if i + 1 < len(open_stages) else None
        stages.append(
            FunnelStage(
                stage=stage.key,
                name=stage.name,
                reached=reached[i],
                conversion_to_next=_percent(nxt, reached[i]) if nxt is not None else None,
                conversion_from_first=_percent(reached[i], reached[0]) if i else 100.0,
                in_stage_now=in_now.get(stage.key, 0),
                avg_days_in_stage=round(statistics.fmean(spent), 2) if spent else None,
                median_days_in_stage=round(statistics.median(spent), 2) if spent else None,
            )
        )
    if stages and not reached[0]:
        stages[0].conversion_from_first = None
    return Funnel(pipeline=pipeline.id, deals=counted, won=won, lost=lost, stages=stages)


def _percent(part: int, whole: int) -> float | None:
    return round(part * 100.0 / whole, 2) if whole else None
