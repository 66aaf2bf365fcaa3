"""The outbox never loses a delivery and never doubles one; webhooks are signed."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from connector.crm import webhooks as crm_webhooks
from connector.crm.events import DealStageChanged
from connector.outbox import (
    LEASE,
    MAX_ATTEMPTS,
    Delivered,
    Failed,
    Outcome,
    RetryLater,
    backoff,
    drain,
    enqueue,
    register_handler,
)
from connector.store.db import get_store
from connector.store.models import OutboxItem, utcnow
from tests.connector.conftest import make_app
from tests.connector.receiver import Receiver, running_receiver
from tests.databases import Template

SECRET = "whsec-test-0123456789"


@pytest.fixture
def crm() -> Iterator[Receiver]:
    with running_receiver() as receiver:
        yield receiver


@pytest.fixture
def hooked_app(tmp_path: Path, migrated_template: Template, crm: Receiver) -> Iterator[Flask]:
    app = make_app(
        tmp_path / "db.sqlite", migrated_template, webhook_url=crm.url, webhook_secret=SECRET
    )
    yield app
    get_store(app).dispose()


def _items(app: Flask) -> list[OutboxItem]:
    with get_store(app).session() as session:
        return list(session.scalars(select(OutboxItem).order_by(OutboxItem.id)))


def _notify(app: Flask, key: str = "deal:OPP-1:stage:2") -> None:
    settings = app.extensions["dealbridge.settings"]
    with get_store(app).session() as session:
        crm_webhooks.notify(
            session,
            settings,
            DealStageChanged(deal="OPP-1", from_="negotiation", to="won"),
            key=key,
            now=utcnow(),
        )


def test_webhook_is_signed_and_delivered_once(hooked_app: Flask, crm: Receiver) -> None:
    _notify(hooked_app)
    _notify(hooked_app)  # the same change reported twice is one delivery
    report = drain(hooked_app)
    assert report.delivered == 1
    assert len(crm.received) == 1
    sent = crm.received[0]
    assert crm_webhooks.verify(SECRET, sent.body, sent.headers["X-Dealbridge-Signature"])
    assert not crm_webhooks.verify(
        "other-secret", sent.body, sent.headers["X-Dealbridge-Signature"]
    )
    assert json.loads(sent.body)["type"] == "deal.stage_changed"
    assert SECRET.encode() not in sent.body
    assert drain(hooked_app).claimed == 0


def test_a_500_is_retried_with_backoff_and_the_same_delivery_id(
    hooked_app: Flask, crm: Receiver
) -> None:
    crm.answer_next(500)
    _notify(hooked_app)
    first = drain(hooked_app)
    assert (first.delivered, first.retried) == (0, 1)
    item = _items(hooked_app)[0]
    assert item.status == "pending"
    assert item.next_attempt_at > utcnow() + dt.timedelta(seconds=20)
    assert "500" in (item.last_error or "")
    drain(hooked_app, now=item.next_attempt_at + dt.timedelta(seconds=1))
    assert _items(hooked_app)[0].status == "done"
    ids = [r.headers["X-Dealbridge-Delivery"] for r in crm.received]
    assert len(ids) == 2
    assert ids[0] == ids[1]


def test_a_429_waits_at_least_its_retry_after(hooked_app: Flask, crm: Receiver) -> None:
    crm.answer_next(429, {"Retry-After": "600"})
    _notify(hooked_app)
    drain(hooked_app)
    item = _items(hooked_app)[0]
    assert item.next_attempt_at >= utcnow() + dt.timedelta(seconds=590)


def test_a_400_is_not_retried_forever(hooked_app: Flask, crm: Receiver) -> None:
    crm.answer_next(400)
    _notify(hooked_app)
    report = drain(hooked_app)
    assert report.failed == 1
    assert _items(hooked_app)[0].status == "dead"


def test_no_webhook_url_queues_nothing(app: Flask) -> None:
    _notify(app)
    assert _items(app) == []


def _counting_handler(calls: list[int], outcome: Outcome) -> object:
    def handler(app: Flask, items: Sequence[OutboxItem]) -> dict[int, Outcome]:
        calls.extend(item.id for item in items)
        return {item.id: outcome for item in items}

    return handler


def test_a_crash_mid_delivery_is_delivered_after_the_lease(app: Flask) -> None:
    calls: list[int] = []
    register_handler(app, "test", _counting_handler(calls, Delivered()))  # type: ignore[arg-type]
    with get_store(app).session() as session:
        enqueue(session, "test", "k1", {"n": 1})
    # A worker claims it and dies before recording anything.
    from connector.outbox import claim

    now = utcnow()
    with get_store(app).session() as session:
        assert len(claim(session, now, 10, {"test"})) == 1
    assert drain(app, now=now + dt.timedelta(seconds=1)).claimed == 0  # still leased
    later = drain(app, now=now + LEASE + dt.timedelta(seconds=1))
    assert later.delivered == 1
    assert len(calls) == 1
    assert _items(app)[0].attempts == 2


def test_a_handler_that_raises_loses_nothing(app: Flask) -> None:
    def broken(app: Flask, items: Sequence[OutboxItem]) -> dict[int, Outcome]:
        raise RuntimeError("bug")

    register_handler(app, "test", broken)
    with get_store(app).session() as session:
        enqueue(session, "test", "k1", {})
    report = drain(app)
    assert report.retried == 1
    assert _items(app)[0].status == "pending"


def test_gives_up_after_max_attempts(app: Flask) -> None:
    register_handler(app, "test", _counting_handler([], RetryLater("down")))  # type: ignore[arg-type]
    with get_store(app).session() as session:
        enqueue(session, "test", "k1", {})
    now = utcnow()
    for _ in range(MAX_ATTEMPTS):
        now += dt.timedelta(hours=2)
        drain(app, now=now)
    item = _items(app)[0]
    assert (item.status, item.attempts) == ("dead", MAX_ATTEMPTS)


def test_payload_changed_while_in_flight_is_delivered_again(app: Flask) -> None:
    seen: list[dict[str, object]] = []

    def handler(app: Flask, items: Sequence[OutboxItem]) -> dict[int, Outcome]:
        for item in items:
            seen.append(dict(item.payload))
            if item.payload == {"v": 1}:
                with get_store(app).session() as session:
                    enqueue(session, "test", "k1", {"v": 2}, replace=True)
        return {item.id: Delivered() for item in items}

    register_handler(app, "test", handler)
    with get_store(app).session() as session:
        enqueue(session, "test", "k1", {"v": 1})
    drain(app)
    drain(app)
    assert seen == [{"v": 1}, {"v": 2}]
    assert _items(app)[0].status == "done"


def test_backoff_grows_and_respects_retry_after() -> None:
    assert backoff(1) < backoff(4)
    assert backoff(30) <= dt.timedelta(hours=1, minutes=7)
    assert backoff(1, dt.timedelta(minutes=10)) >= dt.timedelta(minutes=10)


def test_failed_outcome_is_final(app: Flask) -> None:
    register_handler(app, "test", _counting_handler([], Failed("gone")))  # type: ignore[arg-type]
    with get_store(app).session() as session:
        enqueue(session, "test", "k1", {})
    drain(app)
    assert _items(app)[0].status == "dead"
