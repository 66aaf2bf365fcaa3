"""``Pipeline.stage`` answers from an index of the loaded stages: it follows every edit."""

from __future__ import annotations

from flask import Flask
from sqlalchemy.orm import Session

from connector.store.db import get_store
from connector.store.models import Pipeline, Stage


def _stage(key: str, position: int) -> Stage:
    return Stage(key=key, name=key.title(), position=position)


def test_a_stage_is_found_by_key_after_every_kind_of_edit(app: Flask) -> None:
    with Session(get_store(app).engine) as session:
        pipeline = Pipeline(id="p", name="P", stages=[_stage("a", 0), _stage("b", 1)])
        session.add(pipeline)
        session.commit()
        assert pipeline.stage("a") is pipeline.stages[0]
        assert pipeline.stage("z") is None

        pipeline.stages.append(_stage("c", 2))  # appended
        assert pipeline.stage("c") is pipeline.stages[2]

        pipeline.stages[0].key = "first"  # re-keyed in place
        assert (pipeline.stage("a"), pipeline.stage("first")) == (None, pipeline.stages[0])

        removed = pipeline.stages.pop(1)  # removed
        assert removed.key == "b"
        assert pipeline.stage("b") is None

        pipeline.stages = [_stage("x", 0)]  # replaced
        assert (pipeline.stage("first"), pipeline.stage("x")) == (None, pipeline.stages[0])
        session.commit()

        session.expire(pipeline)  # loaded again
        assert pipeline.stage("x") is pipeline.stages[0]

    with Session(get_store(app).engine) as other:  # another session's copy, changed elsewhere
        copy = other.get(Pipeline, "p")
        assert copy is not None
        assert copy.stage("x") is not None
        with Session(get_store(app).engine) as session:
            edited = session.get(Pipeline, "p")
            assert edited is not None
            edited.stages[0].key = "y"
            session.commit()
        other.expire_all()
        assert (copy.stage("x"), copy.stage("y")) == (None, copy.stages[0])
