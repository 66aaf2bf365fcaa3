"""Pipelines and their stages, including the five presets of the sales teams' documents."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connector.errors import Conflict, NotFound
from connector.store.models import Deal, Pipeline, Stage
from reminders.presets import PRESET_RULES


@dataclass(frozen=True)
class StageSpec:
    key: str
    name: str
    probability: float
    is_won: bool = False
    is_lost: bool = False
    rules: tuple[dict[str, Any], ...] = ()


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _preset(names: list[str], keys: dict[str, str] | None = None) -> list[StageSpec]:
    # Probabilities rise evenly through the open stages; Won and Lost close every preset.
    keys = keys or {}
    step = 80 / max(len(names) - 1, 1)
    stages = [
        StageSpec(keys.get(name, _slug(name)), name, round(10 + step * i, 1))
        for i, name in enumerate(names)
    ]
    won = StageSpec("won", "Won", 100.0, is_won=True)
    lost = StageSpec("lost", "Lost", 0.0, is_lost=True)
    return [*stages, won, lost]


PRESETS: dict[str, tuple[str, list[StageSpec]]] = {
    "journey7": (
        "Customer journey (7 stages)",
        _preset(
            [
                "Identification",
                "Qualification",
                "Initial contact",
                "Solution",
                "Negotiation",
                "Closing",
                "After-sales service",
            ],
            keys={"After-sales service": "after_sales"},
        ),
    ),
    "classic5": (
        "Classic funnel (5 stages)",
        _preset(
            [
                "Lead generation",
                "First interaction",
                "Solution presentation",
                "Negotiation",
                "Deal closing",
            ]
        ),
    ),
    "b2b6": (
        "B2B buying process (6 stages)",
        _preset(
            [
                "Need identification",
                "Solution search",
                "Evaluation of options",
                "Agreement",
                "Deal",
                "Post-sale support",
            ]
        ),
    ),
    "aida4": ("AIDA (4 stages)", _preset(["Attention", "Interest", "Desire", "Action"])),
    "measure5": (
        "Measured funnel (5 stages)",
        _preset(["Lead", "Qualified lead", "Presentation", "Commercial proposal", "Deal"]),
    ),
}


def default_rules(preset: str, stage_key: str) -> list[dict[str, Any]]:
    """The preset's default reminder rules of a stage, as stored JSON."""
    rules = PRESET_RULES.get(preset, {}).get(stage_key, [])
    return [rule.model_dump(mode="json") for rule in rules]


def install_preset(session: Session, preset: str, pipeline_id: str | None = None) -> Pipeline:
    """Create the pipeline of a preset (its id defaults to the preset's name)."""
    if preset not in PRESETS:
        raise NotFound(f"no preset named {preset!r}; presets: {', '.join(PRESETS)}")
    name, specs = PRESETS[preset]
    pipeline = Pipeline(id=pipeline_id or preset, name=name, preset=preset)
    pipeline.stages = [
        Stage(
            key=spec.key,
            name=spec.name,
            position=i,
            probability=spec.probability,
            is_won=spec.is_won,
            is_lost=spec.is_lost,
            rules=default_rules(preset, spec.key),
        )
        for i, spec in enumerate(specs)
    ]
    session.add(pipeline)
    session.flush()
    return pipeline


def get_pipeline(session: Session, pipeline_id: str) -> Pipeline:
    pipeline = session.get(Pipeline, pipeline_id)
    if pipeline is None:
        raise NotFound(f"no pipeline {pipeline_id!r}", pipeline=pipeline_id)
    return pipeline


def ensure_presets(session: Session) -> None:
    """Install every preset pipeline that does not exist yet (first start)."""
    existing = set(session.scalars(select(Pipeline.id)))
    for preset in PRESETS:
        if preset not in existing:
            install_preset(session, preset)


def replace_stages(session: Session, pipeline: Pipeline, name: str, specs: list[StageSpec]) -> None:
    """Set a pipeline's stages (order as given). A stage still holding deals cannot go."""
    keep = {spec.key for spec in specs}
    removed = [stage.key for stage in pipeline.stages if stage.key not in keep]
    if removed:
        in_use = session.execute(
            select(Deal.stage_key, func.count())
            .where(Deal.pipeline_id == pipeline.id, Deal.stage_key.in_(removed))
            .group_by(Deal.stage_key)
        ).all()
        if in_use:
            listed = ", ".join(f"{key} ({count} deals)" for key, count in in_use)
            raise Conflict(
                f"cannot remove stages that still hold deals: {listed}; move those deals first",
                pipeline=pipeline.id,
            )
    by_key = {stage.key: stage for stage in pipeline.stages}
    pipeline.name = name
    stages = []
    for position, spec in enumerate(specs):
        stage = by_key.get(spec.key) or Stage(key=spec.key)
        stage.name = spec.name
        stage.position = position
        stage.probability = spec.probability
        stage.is_won = spec.is_won
        stage.is_lost = spec.is_lost
        stage.rules = list(spec.rules)
        stages.append(stage)
    pipeline.stages = stages
    session.flush()
