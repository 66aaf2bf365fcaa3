"""The outbox: every delivery (calendar event, Teams card, webhook) waits here until it is made.

A delivery is written in the same transaction as the change that caused it, under an
idempotency key, so it is never lost and never queued twice. Its payload is a pydantic model
of its kind (registered with the handler; a discriminated union where a kind has sub-kinds),
stored as JSON and validated back into the model before the handler sees it.

The drain job claims due items with a lease (``status='in_flight'``, ``next_attempt_at`` =
lease end) and records each item's outcome in its own short commit as soon as the handler
yields it, so after a crash only the item then in flight is uncertain; the rest of the claimed
batch is claimed again when the lease ends. An item the handler said it was acting on
(:data:`ATTEMPTING`) when its process died is claimed again as ``uncertain``; so is an item
whose last answer was lost after the other side may have acted (:class:`Uncertain`): a
handler that cannot simply repeat itself (a Teams card) looks first. Handlers are idempotent
themselves (Graph ``transactionId``, stored ids, the webhook's delivery id).
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

from flask import Flask
from pydantic import BaseModel, TypeAdapter, ValidationError
from sqlalchemy import Table, bindparam, case, literal, select, update
from sqlalchemy.orm import Session

from connector import metrics
from connector.settings import SETTINGS_EXTENSION, Settings
from connector.store.db import chunks, get_store, insert_rows, write_lock
from connector.store.models import OutboxItem, utcnow
from connector.store.types import OutboxStatus

log = logging.getLogger(__name__)
HANDLERS = "dealbridge.outbox_handlers"
UNSETTLED = "unsettled"
ATTEMPTING_NOW = "attempting"
UNCHECKED = "unchecked_repeats"
"""``result`` flag: an attempt may have acted unheard (lost answer, death); cleared once done."""
BATCH = "dealbridge.outbox_batch"  # session.info: the enqueues of a batch, by key
NEW_ROWS = "dealbridge.outbox_new_rows"  # session.info: rows of new keys, written together
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
class Uncertain:
    """The answer was lost after the other side may have acted (a timeout, a reset, a 504
    after the post): retried like :class:`RetryLater`, and the next attempt is told so."""

    error: str
    after: dt.timedelta | None = None


@dataclass(frozen=True)
class Failed:
    """A permanent failure: retrying cannot help (e.g. the CRM answered 400)."""

    error: str


Outcome = Delivered | RetryLater | Uncertain | Failed


@dataclass(frozen=True)
class Attempting:
    """Not an outcome: the handler is about to do what cannot be repeated blindly (post a
    card). Recorded at once, so if the process dies now the item is claimed again as
    ``uncertain``; items of the batch it never reached are not."""

    unchecked: bool = False
    """It repeats an attempt that may have acted, without being able to check: counted on the
    item as ``result.unchecked_repeats`` (each may be a duplicate)."""


ATTEMPTING = Attempting()
P = TypeVar("P")


@dataclass(frozen=True)
class Delivery(Generic[P]):
    """One claimed item as its handler sees it: the payload is the kind's model."""

    id: int
    key: str
    attempts: int
    """This attempt included."""
    delivered_at: dt.datetime | None
    payload: P
    uncertain: bool = False
    """An earlier attempt may have acted without our knowing: its answer was lost, or the
    process holding the item died. Look before repeating what cannot be repeated."""


Handler = Callable[[Flask, Sequence[Delivery[Any]]], Iterable[tuple[int, Outcome | Attempting]]]
"""Yields ``(item id, outcome)`` for each item as soon as it is known (and, optionally,
``(item id, ATTEMPTING)`` just before acting on it); each is recorded at once."""


@dataclass(frozen=True)
class Registration:
    handler: Handler
    payload: TypeAdapter[Any]


@dataclass(frozen=True)
class OutboxTiming:
    lease: dt.timedelta = LEASE
    first_retry: dt.timedelta = FIRST_RETRY


def _timing(app: Flask) -> OutboxTiming:
    """The lease and first retry of the app's settings (``DEALBRIDGE_OUTBOX_*``)."""
    settings: Settings | None = app.extensions.get(SETTINGS_EXTENSION)
    if settings is None:
        return OutboxTiming()
    return OutboxTiming(
        dt.timedelta(seconds=settings.outbox_lease_seconds),
        dt.timedelta(seconds=settings.outbox_first_retry_seconds),
    )


def register_handler(app: Flask, kind: str, handler: Handler, *, payload: Any) -> None:
    """Deliver ``kind`` with ``handler``; its payloads are ``payload`` (a model, or an
    ``Annotated`` union with a discriminator)."""
    app.extensions.setdefault(HANDLERS, {})[kind] = Registration(handler, TypeAdapter(payload))


def delivery_of(app: Flask, item: OutboxItem, *, uncertain: bool = False) -> Delivery[Any]:
    """A stored item as its kind's handler sees it (tools and tests call handlers directly)."""
    registration: Registration = app.extensions[HANDLERS][item.kind]
    payload = registration.payload.validate_python(item.payload)
    return Delivery(
        item.id, item.idempotency_key, item.attempts, item.delivered_at, payload, uncertain
    )


def stored(payload: BaseModel) -> dict[str, Any]:
    """The JSON a payload is stored as (field order and keys as the models declare them)."""
    return payload.model_dump(mode="json", by_alias=True)


def enqueue(
    session: Session,
    kind: str,
    key: str,
    payload: BaseModel,
    *,
    due: dt.datetime | None = None,
    replace: bool = False,
    new: bool = False,
) -> OutboxItem | None:
    """Queue a delivery once per key. With ``replace``, a pending one gets the new payload.
    ``new`` says the key cannot exist yet (its subject was just created): no lookup. Returns
    the item, or None inside :func:`batched` for a key that may exist: its lookup waits for
    the batch's end, and what it then finds or inserts is nobody's to hold."""
    data = stored(payload)
    batch: dict[str, _Queued] | None = session.info.get(BATCH)
    if batch is not None and not new:
        queued = batch.get(key)
        if queued is None:
            batch[key] = _Queued(kind, data, due, replace=replace)
        else:
            queued.again.append((data, due, replace))
        return None
    found = (
        None if new else session.scalar(select(OutboxItem).where(OutboxItem.idempotency_key == key))
    )
    if found is not None:
        if replace and found.payload != data:
            _replace(session, [(found, data, due or utcnow())])
        return found
    item = _new_item(kind, key, data, due)
    session.add(item)
    if batch is not None:
        batch[key] = _Queued(kind, data, due, added=item)
    return item


def enqueue_new(
    session: Session, kind: str, key: str, payload: BaseModel, *, due: dt.datetime | None = None
) -> None:
    """Queue a delivery whose key cannot exist yet (its subject was just created): no lookup.
    Inside :func:`new_rows` the row is written with the others at its end, one ``INSERT`` for
    them all and no ORM object (a reminder's two channels for 1,000 new deals are 4,500
    rows); else as ``enqueue(new=True)``."""
    rows: list[dict[str, Any]] | None = session.info.get(NEW_ROWS)
    if rows is None:
        enqueue(session, kind, key, payload, due=due, new=True)
        return
    rows.append(_new_row(kind, key, stored(payload), due))


@contextmanager
def new_rows(session: Session) -> Iterator[None]:
    """The :func:`enqueue_new` inside are written together when it ends without error (the
    session's transaction holds them as it holds any other write). One inside another joins
    it."""
    if NEW_ROWS in session.info:
        yield
        return
    rows: list[dict[str, Any]] = []
    session.info[NEW_ROWS] = rows
    try:
        yield
    finally:
        session.info.pop(NEW_ROWS, None)
    _insert(session, rows)


def _insert(session: Session, rows: list[dict[str, Any]]) -> None:
    """New rows in the session's transaction with Core (``store.db.insert_rows``; the ORM's
    bulk insert costs three times as much), their defaults given once."""
    if not rows:
        return
    now = utcnow()  # the defaults given once: a default computed per row costs 8 % of a bulk
    for row in rows:
        row.setdefault("attempts", 0)
        row.setdefault("result", {})
        row.setdefault("created_at", now)
        row.setdefault("updated_at", now)
    insert_rows(session, OutboxItem, rows)


@dataclass
class _Queued:
    """A key enqueued in a batch: what its first enqueue asked (kind, payload, due, replace),
    what later enqueues of the same key asked, in order, and the item when the first one
    added it (``new``: no lookup)."""

    kind: str
    payload: dict[str, Any]
    due: dt.datetime | None
    replace: bool = False
    again: list[tuple[dict[str, Any], dt.datetime | None, bool]] = field(default_factory=list)
    added: OutboxItem | None = None


def _new_item(kind: str, key: str, data: dict[str, Any], due: dt.datetime | None) -> OutboxItem:
    return OutboxItem(**_new_row(kind, key, data, due))


def _new_row(kind: str, key: str, data: dict[str, Any], due: dt.datetime | None) -> dict[str, Any]:
    return {
        "kind": kind,
        "idempotency_key": key,
        "payload": data,
        "status": OutboxStatus.PENDING,
        "next_attempt_at": due or utcnow(),
    }


@contextmanager
def batched(session: Session) -> Iterator[None]:
    """The enqueues inside are looked up together at the end: one ``IN (…)`` query for every
    key (one autoflush), then the new items are inserted together (one Core ``INSERT``; the
    items the enqueues returned stay outside the session), instead of a ``SELECT`` per item,
    each autoflushing the unit of work. The outcome is the same as enqueuing one by one. A
    batch inside a batch joins it."""
    if BATCH in session.info:
        yield
        return
    batch: dict[str, _Queued] = {}
    session.info[BATCH] = batch
    try:
        yield
    finally:
        session.info.pop(BATCH, None)
    waiting = sorted(k for k, q in batch.items() if q.added is None)
    found: dict[str, OutboxItem] = {}
    for chunk in chunks(waiting):
        query = select(OutboxItem).where(OutboxItem.idempotency_key.in_(chunk))
        found.update((item.idempotency_key, item) for item in session.scalars(query))
    rows: list[dict[str, Any]] = []
    replaced: list[tuple[OutboxItem, dict[str, Any], dt.datetime]] = []
    for key, queued in batch.items():
        item = queued.added or found.get(key)
        if item is None:  # a new key: its row as enqueuing one by one leaves it
            row = _new_row(queued.kind, key, queued.payload, queued.due)
            for data, due, replace in queued.again:
                if replace and row["payload"] != data:
                    row.update(payload=data, next_attempt_at=due or utcnow())
            rows.append(row)
            continue
        if queued.added is not None:  # added in this transaction: nobody else has it in flight
            for data, due, replace in queued.again:
                if replace and item.payload != data:
                    item.payload, item.next_attempt_at = data, due or utcnow()
            continue
        queued.again.insert(0, (queued.payload, queued.due, queued.replace))  # the first found it
        payload, changed = item.payload, None
        for data, due, replace in queued.again:
            if replace and payload != data:
                payload, changed = data, due or utcnow()
        if changed is not None:
            replaced.append((item, payload, changed))
    _insert(session, rows)
    _replace(session, replaced)


REPLACED = ("payload", "status", "attempts", "next_attempt_at", "updated_at")


def _replace(
    session: Session, replaced: Sequence[tuple[OutboxItem, dict[str, Any], dt.datetime]]
) -> None:
    """New payloads for stored items, each due at its time, in one ``executemany``: pending
    again, unless a worker has the item in flight (it keeps its lease; :func:`_record` sees the
    new payload and queues it again). Which of the two is decided by the database as the row
    is written, not from what this session read: a worker may have recorded the item done
    since (the change would then never be delivered)."""
    if not replaced:
        return
    table = cast(Table, OutboxItem.__table__)
    flying = table.c.status == OutboxStatus.IN_FLIGHT
    statement = (
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .values(
            payload=bindparam("b_payload", type_=table.c.payload.type),
            status=case((flying, table.c.status), else_=literal(OutboxStatus.PENDING.value)),
            attempts=case((flying, table.c.attempts), else_=0),
            next_attempt_at=case(
                (flying, table.c.next_attempt_at),
                else_=bindparam("b_due", type_=table.c.next_attempt_at.type),
            ),
            updated_at=utcnow(),
        )
    )
    session.connection().execute(
        statement,
        [{"b_id": item.id, "b_payload": data, "b_due": due} for item, data, due in replaced],
    )
    for item, _, _ in replaced:
        session.expire(item, REPLACED)  # read again if asked: the database decided them


def backoff(
    attempts: int, after: dt.timedelta | None = None, first: dt.timedelta = FIRST_RETRY
) -> dt.timedelta:
    """Exponential from 30 s to 1 h with ±10 % jitter; never earlier than the Retry-After."""
    base: dt.timedelta = min(first * 2 ** max(attempts - 1, 0), LONGEST_RETRY)
    jittered: dt.timedelta = base * random.uniform(0.9, 1.1)
    return max(jittered, after) if after else jittered


@dataclass
class DrainReport:
    claimed: int = 0
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    uncertain: int = 0
    """Answers lost after the other side may have acted (each is retried, and counted on the
    item as ``result.lost_answers``)."""
    reclaimed: int = 0
    """Items whose lease ended in another process (it died holding them)."""
    errors: list[str] = field(default_factory=list)


def claim(
    session: Session, now: dt.datetime, limit: int, kinds: set[str], lease: dt.timedelta = LEASE
) -> list[OutboxItem]:
    """Take due items (and in-flight ones whose lease ended) for this process. The returned
    rows keep the status they had before (``in_flight``: their lease ended elsewhere).

    On PostgreSQL the rows are locked as they are read (``FOR UPDATE SKIP LOCKED``), so
    workers claiming at once take different items instead of waiting on each other; SQLite
    has no row locks (one writer at a time) and relies on the compare-and-set below."""
    due = session.scalars(
        select(OutboxItem)
        .where(
            OutboxItem.kind.in_(kinds),
            OutboxItem.status.in_((OutboxStatus.PENDING, OutboxStatus.IN_FLIGHT)),
            OutboxItem.next_attempt_at <= now,
        )
        .order_by(OutboxItem.next_attempt_at, OutboxItem.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
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
            .values(
                status=OutboxStatus.IN_FLIGHT,
                next_attempt_at=now + lease,
                attempts=item.attempts + 1,
            )
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount == 1:  # type: ignore[attr-defined]
            claimed.append(item)
    return claimed


@dataclass(frozen=True)
class _Claimed:
    id: int
    kind: str
    key: str
    attempts: int
    delivered_at: dt.datetime | None
    payload: dict[str, Any]
    reclaimed: bool
    uncertain: bool


def drain(
    app: Flask,
    *,
    now: dt.datetime | None = None,
    limit: int = 200,
    kinds: set[str] | None = None,
) -> DrainReport:
    """Deliver what is due (of ``kinds``, default all), kind by kind; record each outcome as
    soon as the handler gives it, in its own commit."""
    registered: dict[str, Registration] = {
        kind: registration
        for kind, registration in app.extensions.get(HANDLERS, {}).items()
        if kinds is None or kind in kinds
    }
    report = DrainReport()
    if not registered:
        return report
    timing = _timing(app)
    now = now or utcnow()
    with get_store(app).session() as session:
        batch = [
            _claimed(item, reclaimed=item.status == OutboxStatus.IN_FLIGHT)
            for item in claim(session, now, limit, set(registered), timing.lease)
        ]
        for item in batch:
            if item.reclaimed:
                _count(session, item.id, "reclaimed", unsettled=item.uncertain)
    report.claimed = len(batch)
    report.reclaimed = sum(1 for item in batch if item.reclaimed)
    by_kind: dict[str, list[_Claimed]] = defaultdict(list)
    for item in batch:
        by_kind[item.kind].append(item)
    held = _Held(app, batch, timing.lease)
    for kind, items in by_kind.items():
        _deliver_kind(app, registered[kind], items, report, timing, held)
    return report


class _Held:
    """The claimed batch, held while this drain makes progress: each outcome (and each
    :data:`ATTEMPTING`) renews the lease of the items still to come, at most every third of
    the lease. So a batch that takes longer than one lease is not claimed again by another
    worker while this one lives (each would post the same card); a process that dies stops
    renewing, and what it held is claimed again when the lease ends."""

    def __init__(self, app: Flask, items: list[_Claimed], lease: dt.timedelta) -> None:
        self.app = app
        self.lease = lease
        self.waiting = {item.id: item.attempts for item in items}
        self.renewed_at = utcnow()

    def finished(self, item_id: int) -> None:
        self.waiting.pop(item_id, None)
        self.renew()

    def renew(self) -> None:
        now = utcnow()
        if not self.waiting or now - self.renewed_at < self.lease / 3:
            return
        self.renewed_at = now
        by_attempts: dict[int, list[int]] = defaultdict(list)
        for item_id, attempts in self.waiting.items():
            by_attempts[attempts].append(item_id)
        with get_store(self.app).session() as session:
            for attempts, ids in by_attempts.items():  # only rows still ours (same claim)
                session.execute(
                    update(OutboxItem)
                    .where(
                        OutboxItem.id.in_(ids),
                        OutboxItem.status == OutboxStatus.IN_FLIGHT,
                        OutboxItem.attempts == attempts,
                        OutboxItem.next_attempt_at < now + self.lease,  # only ever later
                    )
                    .values(next_attempt_at=now + self.lease)
                    .execution_options(synchronize_session=False)
                )


def _claimed(item: OutboxItem, *, reclaimed: bool) -> _Claimed:
    """The row as claimed (``item`` still shows what it was before the claim)."""
    result = item.result or {}
    died_attempting = reclaimed and bool(result.get(ATTEMPTING_NOW))
    return _Claimed(
        item.id,
        item.kind,
        item.idempotency_key,
        item.attempts + 1,
        item.delivered_at,
        dict(item.payload or {}),
        reclaimed=reclaimed,
        uncertain=died_attempting or bool(result.get(UNSETTLED)),
    )


def _count(session: Session, item_id: int, name: str, *, unsettled: bool = True) -> None:
    """Count a lost answer or a reclaimed lease on the item; ``unsettled`` until delivered."""
    item = session.get(OutboxItem, item_id)
    if item is not None:
        result = {k: v for k, v in (item.result or {}).items() if k != ATTEMPTING_NOW}
        result[name] = int(result.get(name) or 0) + 1
        if unsettled:
            result[UNSETTLED] = True
        item.result = result


def _attempting(app: Flask, item_id: int, unchecked: bool) -> None:
    with get_store(app).session() as session:
        item = session.get(OutboxItem, item_id)
        if item is not None:
            result = {**(item.result or {}), ATTEMPTING_NOW: True}
            if unchecked:
                result[UNCHECKED] = int(result.get(UNCHECKED) or 0) + 1
                log.warning("delivery %s: repeated without checking", item.idempotency_key)
            item.result = result


def _deliver_kind(
    app: Flask,
    registration: Registration,
    items: list[_Claimed],
    report: DrainReport,
    timing: OutboxTiming,
    held: _Held | None = None,
) -> None:
    by_id = {item.id: item for item in items}

    def record(claimed: _Claimed, outcome: Outcome) -> None:
        _record(app, claimed, outcome, report, timing)
        if held is not None:
            held.finished(claimed.id)

    deliveries: list[Delivery[Any]] = []
    for item in items:
        try:
            payload = registration.payload.validate_python(item.payload)
        except ValidationError as exc:  # a stored payload the model no longer reads
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'payload'}: {e['msg']}"
                for e in exc.errors()
            )
            error = f"the stored {item.kind} payload is not valid any more: {problems}"
            record(item, Failed(error))
            continue
        deliveries.append(
            Delivery(item.id, item.key, item.attempts, item.delivered_at, payload, item.uncertain)
        )
    pending = {d.id for d in deliveries}
    if not deliveries:
        return
    try:
        for item_id, outcome in registration.handler(app, deliveries):
            if isinstance(outcome, Attempting):
                _attempting(app, item_id, outcome.unchecked)
                if held is not None:
                    held.renew()
            elif item_id in pending:
                pending.discard(item_id)
                record(by_id[item_id], outcome)
    except Exception as exc:  # a handler bug must not lose the batch: retry what is left
        log.exception("outbox handler %s failed", items[0].kind)
        for item_id in sorted(pending):
            record(by_id[item_id], RetryLater(f"{type(exc).__name__}: {exc}"))
        return
    for item_id in sorted(pending):
        record(by_id[item_id], RetryLater("the handler gave no outcome"))


def _record(
    app: Flask, claimed: _Claimed, outcome: Outcome, report: DrainReport, timing: OutboxTiming
) -> None:
    """One item's outcome, in its own commit."""
    now = utcnow()
    with get_store(app).session() as session:
        # Read after any change a round is committing to the item (its row locked, or
        # SQLite's write lock): a payload changed meanwhile must be seen, or the item would be
        # recorded done with a payload never delivered.
        write_lock(session)
        item = session.get(OutboxItem, claimed.id, with_for_update=True)
        if item is None:
            return
        if item.attempts > claimed.attempts:  # our lease ended and another worker claimed it
            log.warning(
                "delivery %s: claimed again elsewhere; this outcome is not recorded",
                item.idempotency_key,
            )
            return
        counters = ("lost_answers", "reclaimed", UNCHECKED)
        kept = {k: v for k, v in (item.result or {}).items() if k in counters}
        if isinstance(outcome, Delivered) and item.payload != claimed.payload:
            item.status, item.next_attempt_at = OutboxStatus.PENDING, now  # changed in flight
            item.result = {**outcome.result, **kept}
            report.delivered += 1
        elif isinstance(outcome, Delivered):
            item.status, item.delivered_at, item.last_error = OutboxStatus.DONE, now, None
            item.result = {**outcome.result, **kept}
            report.delivered += 1
        elif isinstance(outcome, Failed) or item.attempts >= MAX_ATTEMPTS:
            item.result = {k: v for k, v in (item.result or {}).items() if k != ATTEMPTING_NOW}
            item.status = OutboxStatus.DEAD
            item.last_error = outcome.error[:2000]
            report.failed += 1
            report.errors.append(f"{item.idempotency_key}: {outcome.error}")
            log.warning("delivery %s gave up: %s", item.idempotency_key, outcome.error)
        else:
            if isinstance(outcome, Uncertain):
                _count(session, item.id, "lost_answers")
                report.uncertain += 1
                log.warning(
                    "delivery %s: answer lost after a possible delivery (%s); retried with care",
                    item.idempotency_key,
                    outcome.error,
                )
            else:
                item.result = {k: v for k, v in (item.result or {}).items() if k != ATTEMPTING_NOW}
            item.status = OutboxStatus.PENDING
            item.last_error = outcome.error[:2000]
            item.next_attempt_at = now + backoff(item.attempts, outcome.after, timing.first_retry)
            report.retried += 1
        metrics.delivery(log, item, getattr(outcome, "error", None))


def after_restore(session: Session) -> int:
    """After the database was restored from an older copy: every item still to deliver may
    have been delivered since the copy was taken, so each is marked uncertain (a handler that
    cannot simply repeat itself, a Teams card, looks before it acts). The count marked."""
    marked = 0
    for item in session.scalars(
        select(OutboxItem).where(
            OutboxItem.status.in_((OutboxStatus.PENDING, OutboxStatus.IN_FLIGHT))
        )
    ):
        item.result = {**(item.result or {}), UNSETTLED: True, "restored": True}
        marked += 1
    return marked


# ---- an admin's hand on a dead delivery (the admin console) ---------------------------------


def retry_dead(session: Session, item_id: int, now: dt.datetime) -> OutboxItem | None:
    """A dead delivery is due again now, with its attempts counted from zero; None when there
    is no dead item with that id (already retried, dropped, or never dead)."""
    item = session.get(OutboxItem, item_id, with_for_update=True)
    if item is None or item.status != OutboxStatus.DEAD:
        return None
    item.status = OutboxStatus.PENDING
    item.attempts = 0
    item.next_attempt_at = now
    return item


def drop_dead(session: Session, item_id: int) -> OutboxItem | None:
    """Forget a dead delivery (the admin gave up on it); None when there is no such dead item."""
    item = session.get(OutboxItem, item_id, with_for_update=True)
    if item is None or item.status != OutboxStatus.DEAD:
        return None
    session.delete(item)
    return item
