"""A worker that lives keeps what it claimed: a batch longer than one lease is not taken over
by another worker (both would post the same card), and an outcome of a claim taken over
elsewhere is not written over the other worker's (found by tests/e2e/test_processes.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from flask import Flask
from pydantic import BaseModel
from sqlalchemy import select, update

from connector.outbox import Delivered, Delivery, Outcome, claim, drain, enqueue, register_handler
from connector.store.db import get_store
from connector.store.models import OutboxItem, utcnow
from connector.store.types import OutboxStatus
from tests.connector.conftest import make_app
from tests.databases import Template

LEASE_SECONDS = 0.6


class Numbered(BaseModel):
    n: int = 0


def _app(tmp_path: Path, template: Template) -> Flask:
    return make_app(tmp_path / "dealbridge.db", template, outbox_lease_seconds=LEASE_SECONDS)


def test_a_batch_longer_than_the_lease_is_not_claimed_again_while_its_worker_lives(
    tmp_path: Path, migrated_template: Template
) -> None:
    app = _app(tmp_path, migrated_template)
    taken_by_another: list[int] = []

    def slow(app: Flask, items: Sequence[Delivery[Numbered]]) -> Iterator[tuple[int, Outcome]]:
        for item in items:
            time.sleep(LEASE_SECONDS / 2)  # the batch takes twice the lease
            with get_store(app).session() as session:  # another worker looks meanwhile
                taken_by_another.extend(i.id for i in claim(session, utcnow(), 10, {"test"}))
            yield item.id, Delivered()

    register_handler(app, "test", slow, payload=Numbered)
    try:
        with get_store(app).session() as session:
            for n in range(4):
                enqueue(session, "test", f"k{n}", Numbered(n=n))
        report = drain(app)
        assert report.delivered == 4
        assert taken_by_another == []
    finally:
        get_store(app).dispose()


def test_the_outcome_of_a_claim_taken_over_elsewhere_is_not_recorded(
    tmp_path: Path, migrated_template: Template
) -> None:
    app = _app(tmp_path, migrated_template)

    def taken_over(
        app: Flask, items: Sequence[Delivery[Numbered]]
    ) -> Iterator[tuple[int, Outcome]]:
        for item in items:  # meanwhile another worker claimed it (its claim counts an attempt)
            with get_store(app).session() as session:
                session.execute(
                    update(OutboxItem)
                    .where(OutboxItem.id == item.id)
                    .values(attempts=OutboxItem.attempts + 1)
                )
            yield item.id, Delivered({"by": "the first worker"})

    register_handler(app, "test", taken_over, payload=Numbered)
    try:
        with get_store(app).session() as session:
            enqueue(session, "test", "k", Numbered())
        drain(app)
        with get_store(app).session() as session:
            item = session.scalars(select(OutboxItem)).one()
            assert item.status == OutboxStatus.IN_FLIGHT  # the other worker's, untouched
            assert item.result.get("by") is None
    finally:
        get_store(app).dispose()
