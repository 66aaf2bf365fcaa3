"""Did the customer come? Teams attendance for logged online meetings, read after they end.

A logged meeting with a Teams join link gets an :class:`AttendanceCheck` (on ``meeting_logged``
and ``meeting_deal_chosen``), due ``READY_AFTER`` after its end. The ``attendance`` job reads
the check's meeting through ``graph_sync.online_meetings`` under its organizer (three requests:
find by join URL, list the reports, the session's report with its records), then:

- someone from the customer joined: **held**, with who joined, when and for how long;
- nobody from the customer joined: **no-show**: the interaction's status is ``no_show`` (so the
  deal's last interaction falls back to the last held one, and the idle reminder stands), and
  the rep is asked (``meeting_attended``: the Teams no-show card) to reschedule, mark it held
  anyway, or drop it;
- attendance not available: **held (not verified)**, saying why: not a Teams meeting, a
  meeting the customer organized (Teams gives its reports to the organizer's tenant only), the
  permission or the application access policy missing, or no report ``GIVE_UP_AFTER`` after
  the end (looked for with backoff until then).

The CRM hears ``interaction.updated`` (``change`` ``attendance``) with the result.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.crm import webhooks as crm_webhooks
from connector.crm.events import InteractionUpdated
from connector.deals.changes import announce
from connector.jobs import register_job
from connector.meetings.interactions import refresh_last_interaction
from connector.microsoft365 import NotConfigured, graph_client
from connector.settings import SETTINGS_EXTENSION, Settings
from connector.signals import (
    LoggedMeeting,
    meeting_attended,
    meeting_deal_chosen,
    meeting_logged,
    settings_of,
)
from connector.stage_reminders.replan import remind_by_hand
from connector.store.db import get_store
from connector.store.models import AttendanceCheck, Deal, Interaction, Rep, utcnow
from connector.store.types import (
    Attendance,
    InteractionStatus,
    Joined,
    MeetingDetails,
)
from graph_sync.errors import Forbidden, GraphSyncError
from graph_sync.online_meetings import (
    AttendanceRecord,
    AttendanceReport,
    find_online_meeting,
    get_attendance_report,
    list_attendance_reports,
)

log = logging.getLogger(__name__)

READY_AFTER = dt.timedelta(minutes=10)
"""First look this long after the end (Teams makes the report a few minutes after it)."""
GIVE_UP_AFTER = dt.timedelta(hours=6)
"""No report this long after the end: not verified."""
LONGEST_WAIT = dt.timedelta(hours=1)
SESSION_SLACK = dt.timedelta(hours=2)
"""A report belongs to an occurrence when its session starts within this of the occurrence."""
BATCH = 50
RESCHEDULE_IN = dt.timedelta(hours=1)
"""When the reminder to reschedule a no-show falls due."""

PENDING, DONE, GAVE_UP = "pending", "done", "gave_up"
HELD, NO_SHOW, NOT_VERIFIED = "held", "no_show", "not_verified"


# ---- creating the checks ---------------------------------------------------------------


def ensure_check(session: Session, interaction: LoggedMeeting) -> AttendanceCheck | None:
    """A check for a logged Teams meeting (once); a meeting without a join link says why not."""
    details = interaction.details
    if details is None or interaction.deal_id is None:
        return None
    check = None
    if details.join_url:
        check = session.scalar(
            select(AttendanceCheck).where(AttendanceCheck.interaction_id == interaction.id)
        )
        if check is not None:
            return check
        check = AttendanceCheck(
            interaction_id=interaction.id,
            status=PENDING,
            due_at=(interaction.ended_at or interaction.started_at) + READY_AFTER,
            attempts=0,
        )
        session.add(check)
    if details.attendance is None:
        row = (
            interaction
            if isinstance(interaction, Interaction)
            else session.get(Interaction, interaction.id)  # a round's row, given as a view
        )
        if row is not None:
            row.details = details.but(attendance=first_attendance(details))
    return check


def first_attendance(details: MeetingDetails) -> Attendance:
    """What a meeting newly logged on a deal starts with: pending for a Teams meeting (its
    report is read after the end), not verified for the others, saying why. The round writes
    it with the new row (:func:`ensure_check` then has nothing to change)."""
    if details.join_url:
        return Attendance(result="pending", reason="Teams attendance is read after the end")
    reason = "not a Teams meeting" if not details.online else "no Teams join link"
    return Attendance(result=NOT_VERIFIED, reason=reason)


def on_meeting_logged(session: Session, *, interaction: LoggedMeeting, reps: list[str]) -> None:
    """``meeting_logged``: a Teams meeting is checked after it ends."""
    if settings_of(session).attendance_enabled:
        ensure_check(session, interaction)


def on_deal_chosen(session: Session, *, interaction: Interaction, **_: Any) -> None:
    """``meeting_deal_chosen``: a meeting a rep put on a deal is checked too."""
    if settings_of(session).attendance_enabled:
        ensure_check(session, interaction)


# ---- reading the attendance --------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """What one look found: a result, or ``retry`` (the report is not there yet)."""

    result: str
    reason: str | None = None
    report: AttendanceReport | None = None
    retry: bool = False


@dataclass(frozen=True)
class _Meeting:
    interaction_id: int
    organizer: str | None
    user: str | None
    """The organizer's Entra id (or address) when the organizer is ours; None otherwise."""
    join_url: str
    start: dt.datetime
    end: dt.datetime


def check_due(app: Flask, now: dt.datetime | None = None) -> list[tuple[int, str]]:
    """The ``attendance`` job: every due check, looked at once; (interaction, result) each."""
    now = now or utcnow()
    with get_store(app).session() as session:
        due = list(
            session.scalars(
                select(AttendanceCheck.id)
                .where(AttendanceCheck.status == PENDING, AttendanceCheck.due_at <= now)
                .order_by(AttendanceCheck.due_at)
                .limit(BATCH)
            )
        )
    results: list[tuple[int, str]] = []
    for check_id in due:
        try:
            found = check_one(app, check_id, now)
        except Exception:  # one meeting's surprise must not stop the others' checks
            log.exception("attendance check %s failed; it is looked at again next run", check_id)
            continue
        if found is not None:
            results.append(found)
    return results


def check_one(app: Flask, check_id: int, now: dt.datetime) -> tuple[int, str] | None:
    """Look at one check's meeting; record what Teams says, or when to look again."""
    with get_store(app).session() as session:
        meeting = _meeting_of(session, check_id, now)
    if meeting is None:
        return None
    verdict = _look(app, meeting, now)
    with get_store(app).session() as session:
        return _record(session, check_id, meeting, verdict, now)


def _meeting_of(session: Session, check_id: int, now: dt.datetime) -> _Meeting | None:
    check = session.get(AttendanceCheck, check_id)
    if check is None or check.status != PENDING:
        return None
    interaction = session.get(Interaction, check.interaction_id)
    details = interaction.details if interaction is not None else None
    if interaction is None or details is None or not details.join_url:
        check.status, check.last_error = DONE, "the meeting is no longer logged"
        return None
    if interaction.status == InteractionStatus.CANCELLED:
        check.status, check.last_error = DONE, "the meeting was cancelled"
        return None
    end = interaction.ended_at or interaction.started_at
    if end + READY_AFTER > now:  # not over yet (moved later): look after its new end
        check.due_at = end + READY_AFTER
        return None
    organizer = (details.organizer or "").lower() or None
    rep = (
        session.scalar(select(Rep).where(Rep.email == organizer)) if organizer is not None else None
    )
    ours = rep is not None or (organizer is not None and organizer in details.internal_participants)
    user = ((rep.entra_id if rep is not None else None) or organizer) if ours else None
    return _Meeting(interaction.id, organizer, user, details.join_url, interaction.started_at, end)


def _look(app: Flask, meeting: _Meeting, now: dt.datetime) -> Verdict:
    if meeting.user is None:
        who = meeting.organizer or "someone outside your organization"
        return Verdict(
            NOT_VERIFIED,
            f"the customer organized the meeting ({who}): Teams gives attendance reports only "
            "to the organizer's organization",
        )
    try:
        client = graph_client(app)
        found = find_online_meeting(client, meeting.user, meeting.join_url)
        if found is None:
            return Verdict(
                NOT_VERIFIED,
                f"Teams has no online meeting with this join link under {meeting.organizer}",
            )
        reports = list_attendance_reports(client, meeting.user, found.id)
        session_report = _session(reports, meeting)
        if session_report is None:
            if now >= meeting.end + GIVE_UP_AFTER:
                hours = int(GIVE_UP_AFTER.total_seconds() // 3600)
                return Verdict(
                    NOT_VERIFIED,
                    f"no attendance report {hours} hours after the end (Teams makes none when "
                    "nobody joined)",
                )
            return Verdict("pending", "the attendance report is not ready yet", retry=True)
        report = get_attendance_report(client, meeting.user, found.id, session_report.id)
    except NotConfigured as e:
        return Verdict("pending", e.detail, retry=True)
    except Forbidden as e:
        needed = e.permission or "OnlineMeetingArtifact.Read.All"
        return Verdict(
            NOT_VERIFIED,
            f"attendance is not permitted ({needed}, and the Teams application access policy "
            f"for the organizer): {e}",
        )
    except GraphSyncError as e:
        if now >= meeting.end + GIVE_UP_AFTER:
            return Verdict(NOT_VERIFIED, f"Teams did not answer: {e}")
        return Verdict("pending", f"Teams did not answer: {e}", retry=True)
    return Verdict(HELD, report=report)  # held or no-show: _record tells them apart


def _session(reports: list[AttendanceReport], meeting: _Meeting) -> AttendanceReport | None:
    """The report of this occurrence: the session that started nearest its start."""
    near = [
        r
        for r in reports
        if (started := r.started()) is not None
        and meeting.start - SESSION_SLACK <= started <= meeting.end + SESSION_SLACK
    ]
    if not near:
        return None
    return min(near, key=lambda r: abs((r.started() or meeting.start) - meeting.start))


def _record(
    session: Session, check_id: int, meeting: _Meeting, verdict: Verdict, now: dt.datetime
) -> tuple[int, str] | None:
    check = session.get(AttendanceCheck, check_id)
    interaction = session.get(Interaction, meeting.interaction_id)
    if check is None or interaction is None or check.status != PENDING:
        return None
    check.attempts += 1
    if verdict.retry:
        check.last_error = verdict.reason
        check.due_at = now + min(READY_AFTER * 2 ** (check.attempts - 1), LONGEST_WAIT)
        details = interaction.details or MeetingDetails()
        interaction.details = details.but(
            attendance=Attendance(result="pending", reason=verdict.reason, checked_at=_iso(now))
        )
        return None
    settings = settings_of(session)
    details = interaction.details or MeetingDetails()
    attendance = _attendance(verdict, details, settings, now)
    check.status = DONE if attendance.result != NOT_VERIFIED else GAVE_UP
    check.last_error = attendance.reason
    interaction.details = details.but(attendance=attendance)
    deal = session.get(Deal, interaction.deal_id) if interaction.deal_id else None
    if attendance.result == NO_SHOW and interaction.status in (
        InteractionStatus.HELD,
        InteractionStatus.SCHEDULED,  # ended, not yet marked held by the round
    ):
        interaction.status = InteractionStatus.NO_SHOW
    session.flush()
    if deal is not None:
        refresh_last_interaction(session, deal, now)
        session.flush()
        announce(session, deal, now)
    tell(session, settings, interaction, deal, attendance, now)
    return interaction.id, attendance.result or NOT_VERIFIED


def _attendance(
    verdict: Verdict, details: MeetingDetails, settings: Settings, now: dt.datetime
) -> Attendance:
    if verdict.report is None:
        return Attendance(result=verdict.result, reason=verdict.reason, checked_at=_iso(now))
    ours_addresses = {p.lower() for p in details.internal_participants}
    if details.organizer:
        ours_addresses.add(details.organizer.lower())
    internal_domains = {a.rsplit("@", 1)[-1] for a in ours_addresses if "@" in a}
    internal_domains |= {d.lower() for d in settings.internal_domains}
    customer: list[Joined] = []
    ours: list[Joined] = []
    for record in verdict.report.attendance_records:
        side = _side(record, ours_addresses, internal_domains, settings.tenant_id)
        joined_at = record.joined_at()
        person = Joined(
            email=record.email_address,
            name=record.identity.display_name if record.identity else None,
            side=side,
            joined_at=_iso(joined_at) if joined_at else None,
            minutes=round((record.total_attendance_in_seconds or 0) / 60, 1),
        )
        (ours if side == "ours" else customer).append(person)
    started, ended = verdict.report.started(), verdict.report.ended()
    minutes = round((ended - started).total_seconds() / 60, 1) if started and ended else None
    result = HELD if customer else NO_SHOW
    reason = None if customer else "nobody from the customer joined the Teams meeting"
    return Attendance(
        result=result,
        reason=reason,
        customer=tuple(customer),
        ours=tuple(ours),
        started_at=_iso(started) if started else None,
        ended_at=_iso(ended) if ended else None,
        minutes=minutes,
        checked_at=_iso(now),
    )


def _side(
    record: AttendanceRecord, ours: set[str], domains: set[str], tenant_id: str | None
) -> str:
    email = (record.email_address or "").lower()
    if email and (email in ours or email.rsplit("@", 1)[-1] in domains):
        return "ours"
    identity = record.identity
    if identity is not None and tenant_id and identity.tenant_id == tenant_id and not email:
        return "ours"
    return "customer"


def tell(
    session: Session,
    settings: Settings,
    interaction: Interaction,
    deal: Deal | None,
    attendance: Attendance,
    now: dt.datetime,
    *,
    by: str | None = None,
    source: str | None = None,
) -> None:
    """``interaction.updated`` with the attendance to the CRM; the rep's card (``teams``)."""
    event = InteractionUpdated(
        interaction=interaction.id,
        deal=deal.crm_id if deal else None,
        kind="meeting",
        status=interaction.status,
        subject=interaction.subject,
        start=interaction.started_at.isoformat(),
        end=interaction.ended_at.isoformat() if interaction.ended_at else None,
        change="attendance",
        attendance=attendance.model_dump(mode="json"),
        **({"by": by} if by else {}),
        **({"source": source} if source else {}),
    )
    decided = f":{attendance.decided_by}" if attendance.decided_by else ""
    crm_webhooks.notify(
        session,
        settings,
        event,
        key=f"interaction.updated:{interaction.id}:attendance:{attendance.result}{decided}",
        now=now,
    )
    if by is None:
        reps = [deal.owner_email] if deal and deal.owner_email else []
        reps = reps or list((interaction.details or MeetingDetails()).internal_participants)[:1]
        meeting_attended.send(session, interaction=interaction, result=attendance.result, reps=reps)


# ---- a rep's answer on the no-show card --------------------------------------------------


def decide_no_show(
    session: Session, interaction: Interaction, decision: str, *, by: str, now: dt.datetime
) -> Interaction:
    """``reschedule`` (a reminder on the deal to find a new time; it stays a no-show), ``held``
    (it happened after all: held, the deal's clock moves) or ``drop`` (nothing to be done: it
    stays a no-show, the card says so)."""
    details = interaction.details or MeetingDetails()
    attendance = details.attendance or Attendance(result=NO_SHOW)
    deal = session.get(Deal, interaction.deal_id) if interaction.deal_id else None
    if decision == "reschedule":
        if deal is None:
            raise ValueError("the meeting is on no deal")
        remind_by_hand(
            session,
            deal,
            f"reschedule:{interaction.id}",
            f"Reschedule “{(interaction.subject or 'the meeting')[:200]}” with {deal.title[:200]}",
            "Nobody from the customer joined the Teams meeting: find a new time.",
            now + RESCHEDULE_IN,
            settings_of(session),
            now,
        )
        attendance = attendance.model_copy(
            update={"reason": f"rescheduled by {by}: a reminder is on the deal", "decided_by": by}
        )
    elif decision == "held":
        interaction.status = InteractionStatus.HELD
        attendance = attendance.model_copy(
            update={"result": HELD, "reason": f"marked held by {by}", "decided_by": by}
        )
    elif decision == "drop":
        attendance = attendance.model_copy(
            update={"reason": f"no-show, dropped by {by}", "decided_by": by}
        )
    else:
        raise ValueError(f"unknown decision {decision!r}")
    interaction.details = details.but(attendance=attendance.model_dump(mode="json"))
    session.flush()
    if deal is not None:
        refresh_last_interaction(session, deal, now)
        session.flush()
        announce(session, deal, now)
    tell(session, settings_of(session), interaction, deal, attendance, now, by=by, source="teams")
    return interaction


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat()


def init_app(app: Flask) -> None:
    """The ``attendance`` job (every minute) and the receivers that create the checks."""
    settings: Settings = app.extensions[SETTINGS_EXTENSION]
    meeting_logged.connect(on_meeting_logged)
    meeting_deal_chosen.connect(on_deal_chosen)
    if settings.microsoft365_configured and settings.attendance_enabled:
        register_job(app, "attendance", lambda app: check_due(app), seconds=60)
