"""The outbox never loses a delivery and never doubles one; webhooks are signed."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from flask import Flask
from pydantic import BaseModel, TypeAdapter
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from connector.crm import webhooks as crm_webhooks
from connector.crm.events import DealStageChanged
from connector.crm.webhooks import WebhookDelivery
from connector.outbox import (
    LEASE,
    MAX_ATTEMPTS,
    Delivered,
    Delivery,
    Failed,
    Handler,
    Outcome,
    RetryLater,
    Uncertain,
    backoff,
    batched,
    claim,
    drain,
    enqueue,
    register_handler,
    stored,
)
from connector.stage_reminders.replan import ReminderDelivery
from connector.store.db import get_store
from connector.store.models import OutboxItem, utcnow
from connector.store.types import OutboxStatus
from connector.teams.delivery import CardPayload
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


class Numbered(BaseModel):
    """The payload of the tests' kind."""

    n: int = 0


def _counting_handler(calls: list[int], outcome: Outcome) -> Handler:
    def handler(app: Flask, items: Sequence[Delivery[Numbered]]) -> Iterator[tuple[int, Outcome]]:
        for item in items:
            calls.append(item.id)
            yield item.id, outcome

    return handler


def test_a_crash_mid_delivery_is_delivered_after_the_lease(app: Flask) -> None:
    calls: list[int] = []
    register_handler(app, "test", _counting_handler(calls, Delivered()), payload=Numbered)
    with get_store(app).session() as session:
        enqueue(session, "test", "k1", Numbered(n=1))
    # A worker claims it and dies before recording anything.
    now = utcnow()
    with get_store(app).session() as session:
        assert len(claim(session, now, 10, {"test"})) == 1
    assert drain(app, now=now + dt.timedelta(seconds=1)).claimed == 0  # still leased
    later = drain(app, now=now + LEASE + dt.timedelta(seconds=1))
    assert (later.delivered, later.reclaimed) == (1, 1)
    assert len(calls) == 1
    item = _items(app)[0]
    assert item.attempts == 2
    assert item.result == {"reclaimed": 1}


def test_a_handler_that_raises_loses_nothing(app: Flask) -> None:
    def broken(app: Flask, items: Sequence[Delivery[Numbered]]) -> Iterator[tuple[int, Outcome]]:
        yield items[0].id, Delivered()
        raise RuntimeError("bug")

    register_handler(app, "test", broken, payload=Numbered)
    with get_store(app).session() as session:
        enqueue(session, "test", "k1", Numbered(n=1))
        enqueue(session, "test", "k2", Numbered(n=2))
    report = drain(app)
    assert (report.delivered, report.retried) == (1, 1)
    assert [item.status for item in _items(app)] == ["done", "pending"]


def test_gives_up_after_max_attempts(app: Flask) -> None:
    register_handler(app, "test", _counting_handler([], RetryLater("down")), payload=Numbered)
    with get_store(app).session() as session:
        enqueue(session, "test", "k1", Numbered())
    now = utcnow()
    for _ in range(MAX_ATTEMPTS):
        now += dt.timedelta(hours=2)
        drain(app, now=now)
    item = _items(app)[0]
    assert (item.status, item.attempts) == ("dead", MAX_ATTEMPTS)


def test_payload_changed_while_in_flight_is_delivered_again(app: Flask) -> None:
    seen: list[int] = []

    def handler(app: Flask, items: Sequence[Delivery[Numbered]]) -> Iterator[tuple[int, Outcome]]:
        for item in items:
            seen.append(item.payload.n)
            if item.payload.n == 1:
                with get_store(app).session() as session:
                    enqueue(session, "test", "k1", Numbered(n=2), replace=True)
            yield item.id, Delivered()

    register_handler(app, "test", handler, payload=Numbered)
    with get_store(app).session() as session:
        enqueue(session, "test", "k1", Numbered(n=1))
    drain(app)
    drain(app)
    assert seen == [1, 2]
    assert _items(app)[0].status == "done"


def test_a_payload_that_no_longer_validates_is_dead_and_the_drain_goes_on(app: Flask) -> None:
    calls: list[int] = []
    register_handler(app, "test", _counting_handler(calls, Delivered()), payload=Numbered)
    with get_store(app).session() as session:
        session.add(
            OutboxItem(kind="test", idempotency_key="old", payload={"n": "many"}, status="pending")
        )
        enqueue(session, "test", "k2", Numbered(n=2))
    report = drain(app)
    assert (report.failed, report.delivered) == (1, 1)
    old, new = _items(app)
    assert old.status == "dead"
    assert "not valid any more" in (old.last_error or "")
    assert "n:" in (old.last_error or "")
    assert new.status == "done"
    assert calls == [new.id]


def test_an_uncertain_outcome_is_retried_counted_and_told_to_the_next_try(app: Flask) -> None:
    told: list[bool] = []

    def handler(app: Flask, items: Sequence[Delivery[Numbered]]) -> Iterator[tuple[int, Outcome]]:
        for item in items:
            told.append(item.uncertain)
            yield item.id, Uncertain("504 after the post") if not told[:-1] else Delivered()

    register_handler(app, "test", handler, payload=Numbered)
    with get_store(app).session() as session:
        enqueue(session, "test", "k1", Numbered())
    first = drain(app)
    assert (first.uncertain, first.retried) == (1, 1)
    drain(app, now=utcnow() + dt.timedelta(hours=1))
    assert told == [False, True]
    item = _items(app)[0]
    assert item.status == "done"
    assert item.result == {"lost_answers": 1}


CRASHING_WORKER = r"""
import os, signal, sys
from pathlib import Path
from pydantic import BaseModel
from connector.app import create_app
from connector.outbox import ATTEMPTING, Delivered, drain, register_handler

class Numbered(BaseModel):
    n: int = 0

url, made = sys.argv[1], Path(sys.argv[2])
app = create_app({"TESTING": True, "database_url": url, "auto_migrate": False,
                  "scheduler_enabled": False, "instance_path": str(made.parent)})

def handler(app, items):
    for item in items:
        yield item.id, ATTEMPTING
        if item.payload.n == 3:
            os.kill(os.getpid(), signal.SIGKILL)  # dies delivering the third
        with made.open("a") as log:
            log.write(f"{item.key}\n")
        yield item.id, Delivered()

register_handler(app, "test", handler, payload=Numbered)
drain(app)
"""


def test_a_kill_mid_batch_repeats_only_the_item_in_flight(app: Flask, tmp_path: Path) -> None:
    """A real process, killed with SIGKILL while delivering the third of four claimed items:
    the two delivered before are recorded and never delivered again; only the third, which
    it had said it was attempting, comes back as uncertain."""
    with get_store(app).session() as session:
        for n in (1, 2, 3, 4):
            enqueue(session, "test", f"k{n}", Numbered(n=n))
    made = tmp_path / "made.log"
    worker = tmp_path / "worker.py"
    worker.write_text(CRASHING_WORKER)
    settings = app.extensions["dealbridge.settings"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    died = subprocess.run(
        [sys.executable, str(worker), settings.database_url, str(made)], env=env, timeout=120
    )
    assert died.returncode == -signal.SIGKILL
    assert made.read_text().split() == ["k1", "k2"]
    assert [i.status for i in _items(app)] == ["done", "done", "in_flight", "in_flight"]

    again: list[str] = []

    def handler(app: Flask, items: Sequence[Delivery[Numbered]]) -> Iterator[tuple[int, Outcome]]:
        for item in items:
            again.append(f"{item.key} uncertain={item.uncertain}")
            yield item.id, Delivered()

    register_handler(app, "test", handler, payload=Numbered)
    drain(app, now=utcnow() + LEASE + dt.timedelta(seconds=1))
    assert again == ["k3 uncertain=True", "k4 uncertain=False"]
    assert {i.status for i in _items(app)} == {"done"}


def test_stored_payloads_keep_their_keys_and_order(app: Flask) -> None:
    """Rows queued before the payloads were models load, and new rows are the same JSON."""
    before = {
        "calendar": {
            "reminder_id": 7,
            "version": 2,
            "key": "r",
            "mailbox": "a@b",
            "event_id": None,
        },
        "teams_card": {"kind": "pick_deal", "interaction_id": 3, "rep": "a@b"},
        "teams_card ": {"kind": "reminder_refresh", "reminder_id": 7, "version": 2},
        "teams_card  ": {"kind": "digest", "rep": "a@b", "day": "2026-11-30"},
        "webhook": {"id": "d", "type": "deal.stage_changed", "occurred_at": "Z", "data": {"x": 1}},
    }
    models = {
        "calendar": TypeAdapter(ReminderDelivery),
        "teams_card": TypeAdapter(CardPayload),
        "webhook": TypeAdapter(WebhookDelivery),
    }
    for kind, old in before.items():
        model = models[kind.strip()].validate_python(old)
        assert json.dumps(stored(model)) == json.dumps(old)
    assert isinstance(models["teams_card"].validate_python(before["teams_card "]), BaseModel)


def test_backoff_grows_and_respects_retry_after() -> None:
    assert backoff(1) < backoff(4)
    assert backoff(30) <= dt.timedelta(hours=1, minutes=7)
    assert backoff(1, dt.timedelta(minutes=10)) >= dt.timedelta(minutes=10)


def test_failed_outcome_is_final(app: Flask) -> None:
    register_handler(app, "test", _counting_handler([], Failed("gone")), payload=Numbered)
    with get_store(app).session() as session:
        enqueue(session, "test", "k1", Numbered())
    drain(app)
    assert _items(app)[0].status == "dead"


def test_a_webhook_answer_lost_after_the_crm_got_it_is_sent_again_and_counted(
    hooked_app: Flask, crm: Receiver
) -> None:
    crm.answer_next(504)  # the CRM received it; a proxy gave up on its answer
    _notify(hooked_app)
    first = drain(hooked_app)
    assert (first.uncertain, first.retried) == (1, 1)
    drain(hooked_app, now=utcnow() + dt.timedelta(hours=1))
    item = _items(hooked_app)[0]
    assert item.status == "done"
    assert item.result == {"status": 200, "lost_answers": 1}
    ids = [r.headers["X-Dealbridge-Delivery"] for r in crm.received]
    assert len(ids) == 2
    assert len(set(ids)) == 1  # the CRM drops the repeat by its id


def _enqueues(session: Session, payload: type[Numbered]) -> None:
    """Every case of a key: new, new twice, existing (pending, in flight), with and without
    replace, replaced twice, one that is new and then replaced."""
    enqueue(session, "test", "fresh", payload(n=1))
    enqueue(session, "test", "twice", payload(n=1))
    enqueue(session, "test", "twice", payload(n=2))
    enqueue(session, "test", "twice-replaced", payload(n=1))
    enqueue(session, "test", "twice-replaced", payload(n=2), replace=True)
    enqueue(session, "test", "kept", payload(n=9))
    enqueue(session, "test", "replaced", payload(n=9), replace=True)
    enqueue(session, "test", "replaced-twice", payload(n=8), replace=True)
    enqueue(session, "test", "replaced-twice", payload(n=9), replace=True)
    enqueue(session, "test", "in-flight", payload(n=9), replace=True)
    enqueue(session, "test", "same", payload(n=1), replace=True)


def test_a_batch_of_enqueues_ends_as_one_by_one(app: Flask) -> None:
    """``batched`` looks every key up once at its end: the rows are those enqueuing one by one
    leaves (the payload, status, attempts of each), with one lookup instead of one per key."""
    from sqlalchemy import event

    from connector.outbox import batched

    due = utcnow() + dt.timedelta(hours=1)

    def prepare() -> None:
        with get_store(app).session() as session:
            session.execute(delete(OutboxItem))
            for key in ("kept", "replaced", "replaced-twice", "in-flight", "same"):
                item = enqueue(session, "test", key, Numbered(n=1), due=due)
                assert item is not None  # outside a batch: the item
                item.attempts = 3
            session.flush()
            flying = session.scalar(
                select(OutboxItem).where(OutboxItem.idempotency_key == "in-flight")
            )
            assert flying is not None
            flying.status = OutboxStatus.IN_FLIGHT

    def rows() -> list[tuple[str, dict[str, object], str, int]]:
        return [
            (i.idempotency_key, i.payload, str(i.status), i.attempts)
            for i in _items(app)
            if i.kind == "test"
        ]

    prepare()
    with get_store(app).session() as session:
        _enqueues(session, Numbered)
    one_by_one = sorted(rows())
    prepare()
    lookups: list[str] = []
    engine = get_store(app).engine
    looks_up = "WHERE outbox.idempotency_key"  # (SQLite numbers new rows: SELECT max(id))
    listen = lambda *a: lookups.append(a[2]) if looks_up in a[2] else None  # noqa: E731
    event.listen(engine, "before_cursor_execute", listen)
    try:
        with get_store(app).session() as session, batched(session):
            _enqueues(session, Numbered)
    finally:
        event.remove(engine, "before_cursor_execute", listen)
    assert sorted(rows()) == one_by_one
    assert len(lookups) == 1


# --- a change made while a worker delivers the old payload ---------------------------------


def _in_flight(app: Flask, key: str, n: int) -> None:
    with get_store(app).session() as session:
        enqueue(session, "test", key, Numbered(n=n))
        item = session.scalar(select(OutboxItem).where(OutboxItem.idempotency_key == key))
        assert item is not None
        item.status = OutboxStatus.IN_FLIGHT


def _state(app: Flask, key: str) -> tuple[str, dict[str, int]]:
    with get_store(app).session() as session:
        item = session.scalar(select(OutboxItem).where(OutboxItem.idempotency_key == key))
        assert item is not None
        return item.status, item.payload


@pytest.mark.parametrize("together", [False, True], ids=["alone", "batched"])
def test_a_change_read_in_flight_is_delivered_when_the_worker_records_meanwhile(
    app: Flask, together: bool
) -> None:
    """A round reads the item in flight; the worker records the old payload delivered and
    commits; the round then changes the payload (alone, or in a batch as a meeting round
    does). The new payload is delivered: the item is pending again, whatever the round read."""
    _in_flight(app, "k1", 1)
    store = get_store(app)
    with store.session() as round_:
        read = round_.scalar(select(OutboxItem).where(OutboxItem.idempotency_key == "k1"))
        assert read is not None
        assert read.status == OutboxStatus.IN_FLIGHT
        with store.session() as worker:
            item = worker.get(OutboxItem, read.id)
            assert item is not None
            item.status, item.delivered_at = OutboxStatus.DONE, utcnow()
        with batched(round_) if together else contextlib.nullcontext():
            enqueue(round_, "test", "k1", Numbered(n=2), replace=True)
            enqueue(round_, "test", "k1", Numbered(n=3), replace=True)

    assert _state(app, "k1") == (OutboxStatus.PENDING, {"n": 3})


def test_a_change_committed_while_the_worker_records_is_delivered_again(app: Flask) -> None:
    """The worker delivers the old payload; a round changes it and holds its transaction open
    while the worker records the outcome. The worker's record waits for the round and sees
    the change: the item is pending again with the new payload, not done."""
    import threading
    import time

    delivering, changed = threading.Event(), threading.Event()

    def handler(app: Flask, items: Sequence[Delivery[Numbered]]) -> Iterator[tuple[int, Outcome]]:
        for item in items:
            delivering.set()
            assert changed.wait(10)
            yield item.id, Delivered()

    register_handler(app, "test", handler, payload=Numbered)
    with get_store(app).session() as session:
        enqueue(session, "test", "k1", Numbered(n=1))
    worker = threading.Thread(target=drain, args=(app,))
    worker.start()
    try:
        assert delivering.wait(10)
        with get_store(app).session() as round_:
            enqueue(round_, "test", "k1", Numbered(n=2), replace=True)
            round_.flush()
            changed.set()
            time.sleep(0.3)  # the worker records meanwhile (its read must wait for this commit)
    finally:
        changed.set()
        worker.join(10)

    assert _state(app, "k1") == (OutboxStatus.PENDING, {"n": 2})
