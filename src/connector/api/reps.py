"""REST API v1: reps (working hours, Teams id, daily digest)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connector.api.routing import Api
from connector.api.schemas import Email, RepIn, RepList, RepOut
from connector.deals.reps import (
    brief_minutes_of,
    claim_installation,
    delete_rep,
    set_active,
    set_brief_minutes,
    set_digest,
    wants_digest,
)
from connector.errors import NotFound, invalid
from connector.meetings.exclusions import exclusions_of
from connector.store.db import db_session
from connector.store.models import Deal, Rep, RepPreference, utcnow
from reminders.worktime import WorkingCalendar

api = Api("api_v1_reps", "/api/v1")


def rep_out(rep: Rep, open_deals: int, daily_digest: bool | None = None) -> RepOut:
    if daily_digest is None:
        daily_digest = wants_digest(db_session(), rep.email)
    return RepOut(
        brief_minutes=brief_minutes_of(db_session(), rep.email),
        daily_digest=daily_digest,
        email=rep.email,
        display_name=rep.display_name,
        entra_id=rep.entra_id,
        time_zone=rep.time_zone,
        working_days=list(rep.working_days),
        work_start=rep.work_start,
        work_end=rep.work_end,
        holiday_country=rep.holiday_country,
        manager=rep.manager_email,
        active=rep.active,
        open_deals=open_deals,
    )


def _open_deals_by_owner(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(Deal.owner_email, func.count())
        .where(Deal.status == "open")
        .group_by(Deal.owner_email)
    )
    return {owner: count for owner, count in rows if owner}


@api.operation("GET", "/reps", summary="List reps", tag="reps", response=RepList)
def list_reps() -> RepList:
    session = db_session()
    counts = _open_deals_by_owner(session)
    reps = session.scalars(select(Rep).order_by(Rep.email))
    digests = set(
        session.scalars(select(RepPreference.rep_email).where(RepPreference.daily_digest.is_(True)))
    )
    return RepList(items=[rep_out(r, counts.get(r.email, 0), r.email in digests) for r in reps])


REP_RULE = "<string(maxlength=320):email>"


_EMAIL: TypeAdapter[str] = TypeAdapter(Email)


def _rep_email(email: str) -> str:
    try:
        return str(_EMAIL.validate_python(email))
    except ValidationError as exc:
        raise invalid("email", f"{email!r} is not an email address", "path") from exc


@api.operation(
    "GET",
    f"/reps/{REP_RULE}",
    summary="Get a rep",
    tag="reps",
    response=RepOut,
    errors=(401, 404),
    path_params={"email": "The rep's email / UPN."},
)
def get_rep(email: str) -> RepOut:

    session = db_session()
    rep = session.scalar(select(Rep).where(Rep.email == _rep_email(email)))
    if rep is None:
        raise NotFound(f"no rep {email!r}", rep=email)
    return rep_out(rep, _open_deals_by_owner(session).get(rep.email, 0))


class ExclusionOut(BaseModel):
    """A meeting the rep said not to log ("Don't log this meeting")."""

    interaction: int | None
    """The interaction withdrawn (null when it is gone since)."""
    meeting_key: str
    series_key: str
    """What is kept out: the series' iCalUId, so updates and every occurrence stay out."""
    excluded_at: dt.datetime
    undo_until: dt.datetime
    """Until then the rep (only she) can undo it."""


class ExclusionList(BaseModel):
    items: list[ExclusionOut]


@api.operation(
    "GET",
    f"/reps/{REP_RULE}/exclusions",
    summary="List the meetings a rep excluded",
    tag="reps",
    response=ExclusionList,
    errors=(401, 404),
    path_params={"email": "The rep's email / UPN."},
)
def list_exclusions(email: str) -> ExclusionList:
    """The rep's own "Don't log this meeting" choices, newest first. Read only: an admin can
    see them but not lift them (only the rep can, within a day, from Teams)."""
    session = db_session()
    rep = session.scalar(select(Rep).where(Rep.email == _rep_email(email)))
    if rep is None:
        raise NotFound(f"no rep {email!r}", rep=email)
    return ExclusionList(
        items=[
            ExclusionOut(
                interaction=e.interaction_id,
                meeting_key=e.meeting_key,
                series_key=e.series_key,
                excluded_at=e.created_at,
                undo_until=e.undo_until,
            )
            for e in exclusions_of(session, rep.email)
        ]
    )


@api.operation(
    "PUT",
    f"/reps/{REP_RULE}",
    summary="Create or update a rep",
    status=201,
    tag="reps",
    scope="write",
    body=RepIn,
    response=RepOut,
    errors=(400, 401, 403, 422),
    path_params={"email": "The rep's email / UPN."},
)
def put_rep(email: str, body: RepIn) -> tuple[RepOut, int]:
    """Fields left out keep their value (working hours are read from Outlook otherwise).

    `active: false` stops everything for the rep at once: her Graph subscription is deleted,
    her open reminders withdrawn (Outlook events deleted, Teams cards updated to say so), no
    card is sent to her, and the CRM gets `rep.deactivated` listing her open deals to
    reassign. `active: true` brings her back (subscription, reminders planned again)."""
    session = db_session()
    address = _rep_email(email)
    rep = session.scalar(select(Rep).where(Rep.email == address))
    created = rep is None
    if rep is None:
        rep = Rep(email=address, display_name=address.split("@")[0])
        session.add(rep)
    fields: dict[str, Any] = body.model_dump(exclude_unset=True)
    digest = fields.pop("daily_digest", None)
    if digest is not None:
        set_digest(session, address, digest)
    brief = fields.pop("brief_minutes", None)
    if brief is not None:
        set_brief_minutes(session, address, brief)
    if "manager" in fields:
        fields["manager_email"] = fields.pop("manager")
    for required in ("work_start", "work_end", "time_zone", "working_days", "active"):
        if fields.get(required, "") is None:
            del fields[required]  # null means "leave as it is" for fields that always have one
    start = fields.get("work_start") or rep.work_start or "09:00"
    end = fields.get("work_end") or rep.work_end or "17:00"
    if end <= start:
        raise invalid("work_end", "must be after work_start")
    _plannable(fields, rep, start, end)
    active = fields.pop("active", None)
    for name, value in fields.items():
        if value is not None or name in {"entra_id", "holiday_country", "manager_email"}:
            setattr(rep, name, value)
    session.flush()
    claim_installation(session, rep)
    if active is not None and not created:
        set_active(session, rep, active, utcnow())  # stops (or restarts) everything for her
    elif active is not None:
        rep.active = active
    out = rep_out(rep, _open_deals_by_owner(session).get(rep.email, 0))
    session.commit()
    return out, 201 if created else 200


def _plannable(fields: dict[str, Any], rep: Rep, start: str, end: str) -> None:
    """The rep's working time as the planner will read it (``WorkingCalendar``): refused here,
    naming the field, rather than stored and failing every later re-plan of her deals."""
    country = fields.get("holiday_country", rep.holiday_country)
    try:
        WorkingCalendar(
            time_zone="UTC",  # checked by RepIn itself; the zone does not change these rules
            start=dt.time.fromisoformat(start),
            end=dt.time.fromisoformat(end),
            holiday_country=country,
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        where = [str(part) for part in error["loc"]]
        field = "holiday_country" if "holiday_country" in where else "work_end"
        raise invalid(field, str(error["msg"]).removeprefix("Value error, ")) from exc


@api.operation(
    "DELETE",
    f"/reps/{REP_RULE}",
    summary="Delete a rep (offboarding)",
    tag="reps",
    scope="write",
    status=204,
    errors=(400, 401, 403, 404),
    path_params={"email": "The rep's email / UPN."},
)
def remove_rep(email: str) -> None:
    """Everything stops for her as with `active: false` (subscription deleted, reminders
    withdrawn, no card, `rep.deactivated` with `deleted: true` listing her open deals), then
    DealBridge forgets her: the rep, her preferences, her Teams chat reference and cards, her
    mailbox's sync state. Her deals and their interactions stay (the CRM's data)."""
    session = db_session()
    rep = session.scalar(select(Rep).where(Rep.email == _rep_email(email)))
    if rep is None:
        raise NotFound(f"no rep {email!r}", rep=email)
    delete_rep(session, rep, utcnow())
    session.commit()


# ---- analytics -----------------------------------------------------------------------
