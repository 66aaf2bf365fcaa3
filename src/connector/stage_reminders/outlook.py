"""Reminder events on reps' Outlook calendars: the outbox handler for kind ``calendar``.

Each outbox item names a reminder; the handler reconciles that reminder's event with the
reminder as it is now (create, move, or remove), through graph_sync's CalendarWriter in
``$batch`` calls. Idempotent across crashes and retries: creates carry a transactionId derived
from the reminder key and version, and a retried create first looks the key up on the calendar.
The payload is :class:`ReminderDelivery` (the same as the ``teams`` kind's). Outcomes are
given after each ``$batch`` round, once the event ids it made are stored.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Iterator, Sequence
from decimal import Decimal

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.microsoft365 import NotConfigured, graph_client
from connector.outbox import Delivered, Delivery, Outcome, RetryLater, register_handler
from connector.settings import SETTINGS_EXTENSION, Settings
from connector.stage_reminders.replan import ACTIVE, ReminderDelivery
from connector.store.db import get_store
from connector.store.models import Deal, Pipeline, Reminder, Rep, utcnow
from graph_sync.calendar import (
    CalendarOpResult,
    CalendarWriter,
    CreateReminder,
    DeleteReminder,
    ReminderEvent,
    UpdateReminder,
)
from graph_sync.errors import GraphSyncError

KIND = "calendar"
Op = CreateReminder | UpdateReminder | DeleteReminder


def _amount(deal: Deal) -> str:
    if deal.amount is None:
        return "—"
    value = (
        deal.amount.quantize(Decimal(1))
        if deal.amount == deal.amount.to_integral()
        else deal.amount
    )
    return f"{value:,} {deal.currency or ''}".strip()


def event_body(reminder: Reminder, deal: Deal, stage_name: str, now: dt.datetime) -> str:
    """What the rep reads in Outlook: the message and the deal at a glance (no attendees)."""
    days = max((now - deal.stage_entered_at).days, 0)
    last = deal.last_interaction_at.strftime("%d %b %Y") if deal.last_interaction_at else "none yet"
    rows = [
        ("Deal", deal.title),
        ("Account", deal.account_name or "—"),
        ("Stage", f"{stage_name} ({days} days)"),
        ("Amount", _amount(deal)),
        ("Last interaction", last),
    ]
    table = "".join(
        f"<tr><td style='color:#666;padding-right:12px'>{html.escape(k)}</td>"
        f"<td>{html.escape(str(v))}</td></tr>"
        for k, v in rows
    )
    link = (
        f"<p><a href='{html.escape(deal.crm_url, quote=True)}'>Open the deal in the CRM</a></p>"
        if deal.crm_url
        else ""
    )
    return (
        f"<p>{html.escape(reminder.message)}</p><table>{table}</table>{link}"
        "<p style='color:#888'>From DealBridge. Mark it done or snooze it from the Teams card; "
        "this event follows.</p>"
    )


Item = Delivery[ReminderDelivery]


def deliver(app: Flask, items: Sequence[Item]) -> Iterator[tuple[int, Outcome]]:
    """Outbox handler for ``calendar``: each reminder's event, as the reminder is now."""
    settings: Settings = app.extensions[SETTINGS_EXTENSION]
    try:
        writer = CalendarWriter(graph_client(app))
    except NotConfigured as exc:
        yield from ((item.id, RetryLater(exc.detail)) for item in items)
        return
    now = utcnow()
    ops: list[tuple[int, Op]] = []
    nothing: list[int] = []
    with get_store(app).sessions() as session:
        for item in items:
            reminder = session.get(Reminder, item.payload.reminder_id)
            op = _op_for(session, item, reminder, settings, now)
            if op is None:
                nothing.append(item.id)
            else:
                ops.append((item.id, op))
    yield from ((item_id, Delivered({"event": None})) for item_id in nothing)
    if not ops:
        return
    outcomes: dict[int, Outcome] = {}
    results = _apply(writer, [op for _, op in ops])
    recreate: list[tuple[int, Op]] = []
    for (item_id, op), result in zip(ops, results, strict=True):
        if result.outcome == "gone" and isinstance(op, UpdateReminder):
            # Someone deleted the event in Outlook: put it back (a new generation).
            event = op.event.model_copy(update={"generation": op.event.generation + 1000})
            recreate.append((item_id, CreateReminder(mailbox=op.mailbox, event=event, verify=True)))
            continue
        outcomes[item_id] = _outcome(result)
    if recreate:
        for (item_id, _), result in zip(
            recreate, _apply(writer, [op for _, op in recreate]), strict=True
        ):
            outcomes[item_id] = _outcome(result)
    _store_event_ids(app, items, ops + recreate, outcomes)
    yield from outcomes.items()


def _apply(writer: CalendarWriter, ops: list[Op]) -> list[CalendarOpResult]:
    try:
        return writer.apply(ops)
    except GraphSyncError as exc:
        return [
            CalendarOpResult(
                kind=op.kind,
                mailbox=op.mailbox,
                key=op.event.key if not isinstance(op, DeleteReminder) else op.key,
                outcome="failed",
                error=str(exc),
            )
            for op in ops
        ]


def _outcome(result: CalendarOpResult) -> Outcome:
    if result.outcome == "done":
        return Delivered({"event": result.event_id, "kind": result.kind})
    return RetryLater(f"{result.kind} {result.outcome}: {result.error or result.status}")


def _op_for(
    session: Session,
    item: Item,
    reminder: Reminder | None,
    settings: Settings,
    now: dt.datetime,
) -> Op | None:
    key = item.payload.key
    event_id = (reminder.calendar_event_id if reminder else None) or item.payload.event_id
    if reminder is None or reminder.status not in ACTIVE:
        mailbox = (reminder.calendar_mailbox if reminder else None) or item.payload.mailbox
        never_written = event_id is None and item.attempts <= 1 and item.delivered_at is None
        if not mailbox or never_written:
            return None
        return DeleteReminder(
            mailbox=_mailbox_id(session, str(mailbox)), event_id=event_id, key=key
        )
    deal = session.get(Deal, reminder.deal_id)
    if deal is None or not reminder.rep_email:
        return None
    rep = session.scalar(select(Rep).where(Rep.email == reminder.rep_email))
    pipeline = session.get(Pipeline, deal.pipeline_id)
    stage = pipeline.stage(deal.stage_key) if pipeline else None
    event = ReminderEvent(
        key=reminder.key,
        subject=reminder.title,
        body_html=event_body(reminder, deal, stage.name if stage else deal.stage_key, now),
        start=reminder.effective_due_at,
        time_zone=(rep.time_zone if rep else None) or settings.default_time_zone,
        reminder_minutes_before_start=settings.reminder_minutes_before,
        generation=reminder.version,
    )
    mailbox = (rep.entra_id if rep else None) or reminder.rep_email
    if reminder.calendar_event_id and reminder.calendar_mailbox == mailbox:
        return UpdateReminder(mailbox=mailbox, event_id=reminder.calendar_event_id, event=event)
    # A create retried after a crash looks the key up first (no second event).
    return CreateReminder(mailbox=mailbox, event=event, verify=item.attempts > 1 or item.uncertain)


def _mailbox_id(session: Session, mailbox: str) -> str:
    if "@" not in mailbox:
        return mailbox
    rep = session.scalar(select(Rep).where(Rep.email == mailbox))
    return (rep.entra_id if rep else None) or mailbox


def _store_event_ids(
    app: Flask,
    items: Sequence[Item],
    ops: list[tuple[int, Op]],
    outcomes: dict[int, Outcome],
) -> None:
    by_item = {item.id: item for item in items}
    with get_store(app).session() as session:
        for item_id, op in ops:
            outcome = outcomes.get(item_id)
            if not isinstance(outcome, Delivered):
                continue
            reminder = session.get(Reminder, by_item[item_id].payload.reminder_id)
            if reminder is None:
                continue
            if isinstance(op, DeleteReminder):
                reminder.calendar_event_id = None
            else:
                reminder.calendar_event_id = outcome.result.get("event")
                reminder.calendar_mailbox = op.mailbox


def init_app(app: Flask) -> None:
    register_handler(app, KIND, deliver, payload=ReminderDelivery)
