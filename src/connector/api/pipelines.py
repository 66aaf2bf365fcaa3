"""REST API v1: pipelines and their stages."""

from __future__ import annotations

import re

from sqlalchemy import select

from connector.api.routing import Api
from connector.api.schemas import PipelineIn, PipelineList, PipelineOut, StageOut
from connector.deals.pipelines import StageSpec, get_pipeline, replace_stages
from connector.errors import invalid
from connector.stage_reminders.replan import check_rules
from connector.store.db import db_session
from connector.store.models import Pipeline

api = Api("api_v1_pipelines", "/api/v1")


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
