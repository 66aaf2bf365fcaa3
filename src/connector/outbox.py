"""The outbox: every delivery (calendar event, Teams card, webhook) waits here until it is made.

A delivery is written in the same transaction as the change that caused it, under an
idempotency key, so it is never lost and never queued twice. The drain job claims due items
with a lease (``status='in_flight'``, ``next_attempt_at`` = lease end): a process that dies
mid-delivery leaves the item to be claimed again when the lease ends. Handlers must therefore
be idempotent themselves (Graph ``transactionId``, stored ids, the webhook's delivery id).
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from connector import metrics
from connector.store.db import get_store
from connector.store.models import OutboxItem, utcnow
from connector.store.types import OutboxStatus

log = logging.getLogger(__name__)
HANDLERS = "dealbridge.outbox_handlers"
LEASE = dt.timedelta(minutes=5)
MAX_ATTEMPTS = 15
FIRST_RETRY = dt.timedelta(seconds=30)
LONGEST_RETRY = dt.timedelta(hours=1)


@dataclass(frozen=True)
class Delivered:
    result: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RetryLater:
    error: str
    after: dt.timedelta | None = None  # Retry-After from the other side, when it said one


@dataclass(frozen=True)
class Failed:
    """A permanent failure: retrying cannot help (e.g. the CRM answered 400)."""

    error: str


Outcome = Delivered | RetryLater | Failed
Handler = Callable[[Flask, Sequence[OutboxItem]], dict[int, Outcome]]


def register_handler(app: Flask, kind: str, handler: Handler) -> None:
    app.extensions.setdefault(HANDLERS, {})[kind] = handler


def enqueue(
    session: Session,
    kind: str,
    key: str,
    payload: dict[str, Any],
    *,
    due: dt.datetime | None = None,
    replace: bool = False,
    new: bool = False,
) -> OutboxItem:
    """Queue a delivery once per key. With ``replace``, a pending one gets the new payload.
    ``new`` says the key cannot exist yet (its subject was just created): no lookup."""
    found = (
        None if new else session.scalar(select(OutboxItem).where(OutboxItem.idempotency_key == key))
    )
    if found is not None:
        if replace and found.payload != payload:
            # An in-flight delivery keeps its lease; _record sees the new payload and requeues.
            found.payload = payload
            if found.status != "in_flight":
                found.status, found.attempts = OutboxStatus.PENDING, 0
                found.next_attempt_at = due or utcnow()
        return found
    item = OutboxItem(
        kind=kind,
        idempotency_key=key,
        payload=payload,
        status="pending",
        next_attempt_at=due or utcnow(),
    )
    session.add(item)
    return item


def backoff(attempts: int, after: dt.timedelta | None = None) -> dt.timedelta:
    """Exponential from 30 s to 1 h with ±10 % jitter; never earlier than the Retry-After."""
    base: dt.timedelta = min(FIRST_RETRY * 2 ** max(attempts - 1, 0), LONGEST_RETRY)
    jittered: dt.timedelta = base * random.uniform(0.9, 1.1)
    return max(jittered, after) if after else jittered


@dataclass
class DrainReport:
    claimed: int = 0
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def claim(session: Session, now: dt.datetime, limit: int, kinds: set[str]) -> list[OutboxItem]:
    """Take due items (and in-flight ones whose lease ended) for this process."""
    due = session.scalars(
        select(OutboxItem)
        .where(
            OutboxItem.kind.in_(kinds),
            OutboxItem.status.in_(("pending", "in_flight")),
            OutboxItem.next_attempt_at <= now,
        )
        .order_by(OutboxItem.next_attempt_at, OutboxItem.id)
        .limit(limit)
    ).all()
    claimed = []
    for item in due:
        # Compare-and-set on the row: another worker that claimed it first wins.
        taken = session.execute(
            update(OutboxItem)
            .where(
                OutboxItem.id == item.id,
                OutboxItem.status == item.status,
                OutboxItem.next_attempt_at == item.next_attempt_at,
            )
            .values(status="in_flight", next_attempt_at=now + LEASE, attempts=item.attempts + 1)
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount == 1:  # type: ignore[attr-defined]
            claimed.append(item)
    return claimed


def drain(
    app: Flask,
    *,
    now: dt.datetime | None = None,
    limit: int = 200,
    kinds: set[str] | None = None,
) -> DrainReport:
    """Deliver what is due (of ``kinds``, default all), kind by kind; record each outcome."""
    handlers: dict[str, Handler] = {
        kind: handler
        for kind, handler in app.extensions.get(HANDLERS, {}).items()
        if kinds is None or kind in kinds
    }
    report = DrainReport()
    if not handlers:
        return report
    store = get_store(app)
    now = now or utcnow()
    with store.session() as session:
        items = claim(session, now, limit, set(handlers))
        ids = [item.id for item in items]
    report.claimed = len(ids)
    if not ids:
        return report
    with store.sessions() as session:
        claimed = list(session.scalars(select(OutboxItem).where(OutboxItem.id.in_(ids))))
    by_kind: dict[str, list[OutboxItem]] = defaultdict(list)
    for item in claimed:
        by_kind[item.kind].append(item)
    for kind, batch in by_kind.items():
        try:
            outcomes = handlers[kind](app, batch)
        except Exception as exc:  # a handler bug must not lose the batch: retry it later
            log.exception("outbox handler %s failed", kind)
            outcomes = {item.id: RetryLater(f"{type(exc).__name__}: {exc}") for item in batch}
        _record(app, batch, outcomes, report)
    return report


def _record(
    app: Flask, batch: Sequence[OutboxItem], outcomes: dict[int, Outcome], report: DrainReport
) -> None:
    now = utcnow()
    with get_store(app).session() as session:
        for claimed in batch:
            item = session.get(OutboxItem, claimed.id)
            if item is None:
                continue
            outcome = outcomes.get(item.id, RetryLater("the handler gave no outcome"))
            if isinstance(outcome, Delivered) and item.payload != claimed.payload:
                item.status, item.next_attempt_at = OutboxStatus.PENDING, now  # changed in flight
                item.result = outcome.result
                report.delivered += 1
            elif isinstance(outcome, Delivered):
                item.status, item.delivered_at, item.last_error = OutboxStatus.DONE, now, None
                item.result = outcome.result
                report.delivered += 1
            elif isinstance(outcome, Failed) or item.attempts >= MAX_ATTEMPTS:
                item.status = OutboxStatus.DEAD
                item.last_error = outcome.error[:2000]
                report.failed += 1
                report.errors.append(f"{item.idempotency_key}: {outcome.error}")
                log.warning("delivery %s gave up: %s", item.idempotency_key, outcome.error)
            else:
                item.status = OutboxStatus.PENDING
                item.last_error = outcome.error[:2000]
                item.next_attempt_at = now + backoff(item.attempts, outcome.after)
                report.retried += 1
            metrics.delivery(log, item, getattr(outcome, "error", None))
