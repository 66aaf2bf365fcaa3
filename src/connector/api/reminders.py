"""REST API v1: reminders — list, snooze, done."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from flask import g
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import select

from connector.api.routing import DEAL_ID, ID_RULE, Api
from connector.api.schemas import AwareDatetime, Email, PlausibleDatetime, Strict
from connector.deals.changes import get_deal
from connector.errors import NotFound, invalid
from connector.settings import current_settings
from connector.stage_reminders.replan import complete, is_overdue, snooze, working_calendar
from connector.store.db import db_session
from connector.store.models import Deal, Reminder, Rep, utcnow
from reminders.worktime import snooze_until

api = Api("api_v1_reminders", "/api/v1")


class ReminderOut(BaseModel):
    id: int
    deal: str
    deal_title: str
    rep: str | None
    stage: str
    rule: str
    kind: str
    title: str
    message: str
    due_at: dt.datetime
    overdue: bool = Field(
        description="Past its due time: still open (or snoozed) and its due time, or the end of "
        'its snooze, has passed. What the rep\'s Teams cards show as "overdue since".'
    )
    stage_deadline: bool = Field(
        description="The reminder an `sla` rule gives at its limit, the stage's deadline: the "
        "deal should have left the stage by then. False for the sla's earlier warning and for "
        "every other rule. Says nothing about whether it is past due (see `overdue`)."
    )
    status: Literal["open", "snoozed", "done", "cancelled"]
    snoozed_until: dt.datetime | None
    done_at: dt.datetime | None
    done_by: str | None
    calendar_event: bool = Field(description="An event for it is on the rep's calendar.")


class ReminderList(BaseModel):
    items: list[ReminderOut]


class ReminderQuery(Strict):
    rep: Email | None = None
    due_before: AwareDatetime | None = None
    status: Literal["open", "snoozed", "done", "cancelled", "active"] = "active"
    limit: int = Field(default=200, ge=1, le=1000)


class SnoozeIn(Strict):
    until: PlausibleDatetime | None = Field(default=None, description="Snooze until this time.")
    option: Literal["1d", "3d", "next_week"] | None = Field(
        default=None, description="Or one of the card's choices, in the rep's working time."
    )

    @model_validator(mode="after")
    def _one_of(self) -> SnoozeIn:
        if (self.until is None) == (self.option is None):
            raise ValueError("give either until or option")
        return self


class DoneIn(Strict):
    by: Email | None = Field(default=None, description="Who did it (default: the API key).")


def reminder_out(reminder: Reminder, deal: Deal, now: dt.datetime | None = None) -> ReminderOut:
    return ReminderOut(
        id=reminder.id,
        deal=deal.crm_id,
        deal_title=deal.title,
        rep=reminder.rep_email,
        stage=reminder.stage_key,
        rule=reminder.rule_id,
        kind=reminder.kind,
        title=reminder.title,
        message=reminder.message,
        due_at=reminder.due_at,
        overdue=is_overdue(reminder, now or utcnow()),
        stage_deadline=reminder.stage_deadline,
        status=reminder.status,
        snoozed_until=reminder.snoozed_until,
        done_at=reminder.done_at,
        done_by=reminder.done_by,
        calendar_event=reminder.calendar_event_id is not None,
    )


@api.operation(
    "GET",
    "/reminders",
    summary="List reminders",
    tag="reminders",
    query=ReminderQuery,
    response=ReminderList,
    errors=(401, 422),
)
def list_reminders(query: ReminderQuery) -> ReminderList:
    """Open and snoozed ones by default, soonest first; filter by rep and due time."""
    session = db_session()
    stmt = select(Reminder, Deal).join(Deal, Deal.id == Reminder.deal_id)
    if query.status == "active":
        stmt = stmt.where(Reminder.status.in_(("open", "snoozed")))
    else:
        stmt = stmt.where(Reminder.status == query.status)
    if query.rep:
        stmt = stmt.where(Reminder.rep_email == query.rep)
    if query.due_before:
        stmt = stmt.where(Reminder.due_at < query.due_before)
    rows = session.execute(stmt.order_by(Reminder.due_at, Reminder.id).limit(query.limit))
    now = utcnow()
    return ReminderList(items=[reminder_out(r, d, now) for r, d in rows])


@api.operation(
    "GET",
    f"/deals/{ID_RULE}/reminders",
    summary="A deal's reminders",
    tag="reminders",
    response=ReminderList,
    errors=(401, 404),
    path_params=DEAL_ID,
)
def deal_reminders(deal_id: str) -> ReminderList:
    session = db_session()
    deal = get_deal(session, deal_id)
    rows = session.scalars(
        select(Reminder).where(Reminder.deal_id == deal.id).order_by(Reminder.due_at, Reminder.id)
    )
    now = utcnow()
    return ReminderList(items=[reminder_out(r, deal, now) for r in rows])


def _reminder(reminder_id: int) -> tuple[Reminder, Deal]:
    session = db_session()
    reminder = session.get(Reminder, reminder_id)
    if reminder is None:
        raise NotFound(f"no reminder {reminder_id}", reminder=reminder_id)
    return reminder, reminder.deal


@api.operation(
    "POST",
    "/reminders/<int:reminder_id>/snooze",
    summary="Snooze a reminder",
    tag="reminders",
    scope="write",
    body=SnoozeIn,
    response=ReminderOut,
    errors=(400, 401, 403, 404, 409, 422),
    path_params={"reminder_id": "The reminder's id."},
)
def snooze_reminder(reminder_id: int, body: SnoozeIn) -> ReminderOut:
    """Until a time, or by an option (1d, 3d, next_week) placed in the rep's working time.
    The calendar event moves with it."""
    session = db_session()
    reminder, deal = _reminder(reminder_id)
    now = utcnow()
    settings = current_settings()
    if body.until is not None:
        if body.until <= now:
            raise invalid("until", "must be in the future")
        until = body.until
    else:
        rep = session.scalar(select(Rep).where(Rep.email == reminder.rep_email))
        until = snooze_until(working_calendar(rep, settings), now, body.option)  # type: ignore[arg-type]
    snooze(session, reminder, until, settings, now)
    out = reminder_out(reminder, deal)
    session.commit()
    return out


@api.operation(
    "POST",
    "/reminders/<int:reminder_id>/done",
    summary="Mark a reminder done",
    tag="reminders",
    scope="write",
    body=DoneIn,
    response=ReminderOut,
    errors=(400, 401, 403, 404, 409, 422),
    path_params={"reminder_id": "The reminder's id."},
)
def done_reminder(reminder_id: int, body: DoneIn) -> ReminderOut:
    """Done twice is fine (the first time counts); the calendar event is removed."""
    session = db_session()
    reminder, deal = _reminder(reminder_id)
    complete(session, reminder, body.by or str(g.caller.name), current_settings(), utcnow())
    out = reminder_out(reminder, deal)
    session.commit()
    return out
