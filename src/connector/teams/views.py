"""Teams card views built from the store: reminders, meetings, a rep's lists, the daily digest
and the admins' health card. Views only: no sending here (``connector.teams.delivery``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.orm import Session

from cards.models import (
    AfterMeetingState,
    AfterMeetingView,
    BriefView,
    ConsentMissing,
    DealCandidate,
    DealLine,
    DigestReminder,
    DigestView,
    HealthView,
    IdleDeal,
    LastInteraction,
    MailboxSyncFailure,
    MatchReason,
    MeetingCancelled,
    MeetingLoggedAutomatically,
    MeetingLoggedByChoice,
    MeetingLoggedView,
    MeetingWithdrawn,
    Money,
    MyDealsView,
    MyRemindersView,
    OutcomeAsked,
    OutcomeNotNeeded,
    OutcomeRecorded,
    PickDealView,
    PickPending,
    PickSettled,
    ReminderDone,
    ReminderLine,
    ReminderOpen,
    ReminderSnoozed,
    ReminderSuperseded,
    ReminderView,
    SecretExpiring,
    StageDeals,
)
from cards.models import Stage as CardStage
from connector.meetings.exclusions import exclusion_of
from connector.settings import Settings
from connector.stage_reminders.replan import ACTIVE, is_overdue, working_calendar
from connector.store.models import (
    Deal,
    Interaction,
    Mailbox,
    Pipeline,
    Reminder,
    Rep,
)
from connector.store.types import MeetingDetails
from connector.teams.briefs import attendance_line, no_show_state
from connector.teams.chats import conversation_of

# --- card views from the store ---------------------------------------------------------------


def crm_link(deal: Deal, settings: Settings) -> str:
    """The deal in the CRM, else its page in DealBridge's API."""
    if deal.crm_url:
        return deal.crm_url
    base = settings.public_url or "http://localhost"
    return f"{base}/api/v1/deals/{quote(deal.crm_id, safe='')}"


def _pipeline(session: Session, deal: Deal) -> Pipeline:
    pipeline = session.get(Pipeline, deal.pipeline_id)
    assert pipeline is not None, "a deal's pipeline always exists (foreign key)"
    return pipeline


def _stages(pipeline: Pipeline) -> list[CardStage]:
    return [CardStage(id=s.key, name=s.name) for s in pipeline.stages]


def _stage(pipeline: Pipeline, key: str) -> CardStage:
    stage = pipeline.stage(key)
    return CardStage(id=key, name=stage.name if stage else key)


def _money(deal: Deal) -> Money | None:
    if deal.amount is None or not deal.currency:
        return None
    return Money(amount=deal.amount, currency=deal.currency.upper())


def _days_in_stage(deal: Deal, now: dt.datetime) -> int:
    return max((now - deal.stage_entered_at).days, 0)


def _last_interaction(session: Session, deal: Deal) -> LastInteraction | None:
    latest = session.scalar(
        select(Interaction)
        .where(Interaction.deal_id == deal.id, Interaction.status == "held")
        .order_by(Interaction.started_at.desc(), Interaction.id.desc())
        .limit(1)
    )
    if latest is None:
        return None
    what = latest.subject or (latest.text or "")[:80] or latest.kind
    return LastInteraction(at=latest.started_at, summary=f"{latest.kind.capitalize()}: {what}")


def viewer_ids(session: Session, rep_email: str | None) -> list[str]:
    """The rep's Teams id, so their card refreshes itself (Universal Actions `refresh`)."""
    if not rep_email:
        return []
    conversation = conversation_of(session, rep_email)
    if conversation is None or not conversation.teams_user_id.startswith("29:"):
        return []
    return [conversation.teams_user_id]


def reminder_stamp(reminder: Reminder, deal: Deal) -> str:
    """The version of what a reminder card shows."""
    return f"r{reminder.version}.{deal.stage_key}.{deal.status}"[:64]


def _superseded_reason(session: Session, deal: Deal, pipeline: Pipeline, reminder: Reminder) -> str:
    rep = session.scalar(select(Rep).where(Rep.email == reminder.rep_email))
    if rep is not None and not rep.active:
        return f"{rep.display_name or rep.email} is no longer active in DealBridge: withdrawn"
    if deal.status in ("won", "lost"):
        return f"The deal was {deal.status}"
    change = deal.stage_changes[-1] if deal.stage_changes else None
    if deal.stage_key != reminder.stage_key and change is not None:
        return f"Moved to {_stage(pipeline, change.to_stage).name} by {change.changed_by}"
    last = _last_interaction(session, deal)
    if last is not None:
        return f"{last.summary} was logged, so it no longer applies"
    return "The deal changed, so this reminder no longer applies"


def reminder_view(
    session: Session, reminder: Reminder, settings: Settings, now: dt.datetime
) -> ReminderView:
    """The reminder card's view, as the reminder is now."""
    deal = reminder.deal
    pipeline = _pipeline(session, deal)
    state: ReminderOpen | ReminderSnoozed | ReminderDone | ReminderSuperseded = ReminderOpen()
    if reminder.status == "snoozed" and reminder.snoozed_until is not None:
        state = ReminderSnoozed(until=reminder.snoozed_until)
    elif reminder.status == "done":
        state = ReminderDone(by=reminder.done_by or "someone", at=reminder.done_at or now)
    elif reminder.status == "cancelled":
        state = ReminderSuperseded(reason=_superseded_reason(session, deal, pipeline, reminder))
    return ReminderView(
        reminder_id=str(reminder.id),
        deal_id=deal.crm_id,
        deal_title=deal.title,
        account=deal.account_name or "—",
        stage=_stage(pipeline, deal.stage_key),
        pipeline=_stages(pipeline),
        amount=_money(deal),
        days_in_stage=_days_in_stage(deal, now),
        last_interaction=_last_interaction(session, deal),
        rule_title=reminder.title,
        rule_message=reminder.message,
        due_at=reminder.effective_due_at,
        state=state,
        crm_url=crm_link(deal, settings),
        stamp=reminder_stamp(reminder, deal),
        viewer_ids=viewer_ids(session, reminder.rep_email),
    )


def interaction_stamp(interaction: Interaction) -> str:
    """The version of what a meeting card shows."""
    details = interaction.details or MeetingDetails()
    outcome = details.outcome.model_dump(mode="json") if details.outcome else None
    parts = (  # plain strings: repr() of an enum member would change every stored stamp
        interaction.deal_id,
        str(interaction.status),
        interaction.match_rule,
        details.chosen_at,
        str(outcome),
    )
    return "i" + hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def meeting_logged_view(
    session: Session, interaction: Interaction, settings: Settings
) -> MeetingLoggedView | None:
    """The meeting-logged card; None when the meeting is on no deal."""
    deal = session.get(Deal, interaction.deal_id) if interaction.deal_id else None
    if deal is None:
        return None
    details = interaction.details or MeetingDetails()
    state: MeetingLoggedAutomatically | MeetingLoggedByChoice | MeetingCancelled | MeetingWithdrawn
    state = MeetingLoggedAutomatically()
    if interaction.status == "cancelled":
        state = MeetingCancelled()
    elif interaction.status == "withdrawn":
        state = _withdrawn(session, interaction)
    elif interaction.match_rule == "chosen":
        state = MeetingLoggedByChoice(
            by=details.chosen_by or "someone",
            at=_parsed(details.chosen_at) or interaction.updated_at,
        )
    rule = details.explanation or _rule_words(interaction.match_rule)
    return MeetingLoggedView(
        interaction_id=str(interaction.id),
        meeting_subject=interaction.subject or "(no subject)",
        meeting_start=interaction.started_at,
        deal_id=deal.crm_id,
        deal_title=deal.title,
        account=deal.account_name or "—",
        reason=MatchReason(rule=rule[:500], address=interaction.matched_address),
        state=state,
        crm_url=crm_link(deal, settings),
        stamp=interaction_stamp(interaction),
        viewer_ids=viewer_ids(session, deal.owner_email),
    )


def _withdrawn(session: Session, interaction: Interaction) -> MeetingWithdrawn:
    """The rep's "Don't log this meeting", with Undo while its day lasts."""
    exclusion = exclusion_of(session, interaction)
    if exclusion is None:
        return MeetingWithdrawn(by="a rep", at=interaction.updated_at)
    now = dt.datetime.now(dt.UTC)
    return MeetingWithdrawn(
        by=exclusion.rep_email,
        at=exclusion.created_at,
        undo_until=exclusion.undo_until if now < exclusion.undo_until else None,
    )


def _rule_words(rule: str | None) -> str:
    return {
        "contact": "An attendee is a contact of the deal",
        "domain": "An attendee's domain matches the account",
        "chosen": "Chosen by a rep",
    }.get(rule or "", "Matched by DealBridge")


def _parsed(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def pick_deal_view(
    session: Session, interaction: Interaction, rep_email: str | None, *, asking: bool
) -> PickDealView:
    """The pick-a-deal card: the stored candidates, else the rep's open deals.

    `asking` keeps it pending even when the meeting is already on a deal ("wrong deal?").
    """
    details = interaction.details or MeetingDetails()
    current = session.get(Deal, interaction.deal_id) if interaction.deal_id else None
    candidates: list[DealCandidate] = []
    seen: set[str] = set()
    for stored in details.candidates:
        deal = session.scalar(select(Deal).where(Deal.crm_id == str(stored.deal)))
        if deal is None or deal.crm_id in seen:
            continue
        seen.add(deal.crm_id)
        why = stored.address or stored.rule or "a possible match"
        candidates.append(_candidate(session, deal, f"Matched by {why}"))
    if len(candidates) < 2 and rep_email:
        mine = session.scalars(
            select(Deal)
            .where(Deal.owner_email == rep_email, Deal.status == "open")
            .order_by(Deal.updated_at.desc(), Deal.id)
            .limit(10)
        )
        for deal in mine:
            if deal.crm_id not in seen and (current is None or deal.id != current.id):
                seen.add(deal.crm_id)
                candidates.append(_candidate(session, deal, "One of your open deals"))
    state: PickPending | PickSettled | MeetingCancelled = PickPending()
    if interaction.status == "cancelled":
        state = MeetingCancelled()
    elif not asking and interaction.match_rule == "chosen" and current is not None:
        state = PickSettled(
            deal_title=current.title,
            by=details.chosen_by or "someone",
            at=_parsed(details.chosen_at) or interaction.updated_at,
        )
    return PickDealView(
        interaction_id=str(interaction.id),
        meeting_subject=interaction.subject or "(no subject)",
        meeting_start=interaction.started_at,
        candidates=candidates[:10],
        state=state,
        stamp=interaction_stamp(interaction),
        viewer_ids=viewer_ids(session, rep_email),
    )


def _candidate(session: Session, deal: Deal, reason: str) -> DealCandidate:
    pipeline = _pipeline(session, deal)
    return DealCandidate(
        deal_id=deal.crm_id,
        title=deal.title,
        account=deal.account_name or "—",
        stage_name=_stage(pipeline, deal.stage_key).name,
        reason=reason,
    )


def after_meeting_view(
    session: Session, interaction: Interaction, settings: Settings
) -> AfterMeetingView | None:
    """How did the meeting go; None when the meeting is on no deal."""
    deal = session.get(Deal, interaction.deal_id) if interaction.deal_id else None
    if deal is None:
        return None
    pipeline = _pipeline(session, deal)
    recorded = (interaction.details or MeetingDetails()).outcome
    state: AfterMeetingState = OutcomeAsked()
    if recorded is not None and recorded.outcome:
        state = OutcomeRecorded(
            outcome=recorded.outcome,
            note=recorded.note,
            stage_name=recorded.stage_name,
            by=recorded.by or "someone",
            at=_parsed(recorded.at) or interaction.updated_at,
        )
    elif deal.status != "open":
        state = OutcomeNotNeeded(reason=f"The deal was {deal.status}")
    elif interaction.status == "cancelled":
        state = OutcomeNotNeeded(reason="The meeting was cancelled")
    elif interaction.status == "no_show":
        state = no_show_state(interaction)
    return AfterMeetingView(
        interaction_id=str(interaction.id),
        deal_id=deal.crm_id,
        deal_title=deal.title,
        account=deal.account_name or "—",
        meeting_subject=interaction.subject or "(no subject)",
        meeting_end=interaction.ended_at or interaction.started_at,
        stage=_stage(pipeline, deal.stage_key),
        pipeline=_stages(pipeline),
        state=state,
        crm_url=crm_link(deal, settings),
        stamp=interaction_stamp(interaction),
        viewer_ids=viewer_ids(session, deal.owner_email),
        attendance=attendance_line(interaction),
    )


def my_reminders_view(
    session: Session, rep: Rep, settings: Settings, now: dt.datetime
) -> MyRemindersView:
    """The rep's open and snoozed reminders, soonest first."""
    rows = session.execute(
        select(Reminder, Deal)
        .join(Deal, Deal.id == Reminder.deal_id)
        .where(Reminder.rep_email == rep.email, Reminder.status.in_(ACTIVE))
        .order_by(Reminder.due_at, Reminder.id)
        .limit(50)
    ).all()
    lines = [
        ReminderLine(
            reminder_id=str(reminder.id),
            deal_id=deal.crm_id,
            deal_title=deal.title,
            account=deal.account_name or "—",
            rule_title=reminder.title,
            due_at=reminder.effective_due_at,
            overdue=is_overdue(reminder, now),
            crm_url=crm_link(deal, settings),
        )
        for reminder, deal in rows
    ]
    stamp = hashlib.sha256(repr([(r.id, r.version) for r, _ in rows]).encode()).hexdigest()
    return MyRemindersView(
        rep_name=rep.display_name or rep.email, reminders=lines, stamp=stamp[:16]
    )


def my_deals_view(session: Session, rep: Rep, settings: Settings, now: dt.datetime) -> MyDealsView:
    """The rep's open deals grouped by stage, in pipeline order."""
    deals = list(
        session.scalars(
            select(Deal)
            .where(Deal.owner_email == rep.email, Deal.status == "open")
            .order_by(Deal.pipeline_id, Deal.title, Deal.id)
            .limit(200)
        )
    )
    groups: dict[tuple[str, int, str], list[DealLine]] = {}
    for deal in deals:
        pipeline = _pipeline(session, deal)
        stage = pipeline.stage(deal.stage_key)
        position = stage.position if stage else 10_000
        key = (pipeline.id, position, stage.name if stage else deal.stage_key)
        groups.setdefault(key, []).append(
            DealLine(
                deal_id=deal.crm_id,
                title=deal.title,
                account=deal.account_name or "—",
                amount=_money(deal),
                days_in_stage=_days_in_stage(deal, now),
                crm_url=crm_link(deal, settings),
            )
        )
    stages = [StageDeals(stage_name=key[2], deals=lines) for key, lines in sorted(groups.items())]
    return MyDealsView(rep_name=rep.display_name or rep.email, stages=stages)


# --- the daily digest and the health card ---------------------------------------------------

DIGEST_LIST = 10
FAILING_AFTER = 3  # failed rounds in a row before admins hear of a mailbox
SECRET_WARNING = dt.timedelta(days=30)


def digest_view(
    session: Session, rep: Rep, settings: Settings, day: dt.date, now: dt.datetime
) -> DigestView:
    """Due today, overdue, and the deals idle longest, in the rep's own day."""
    zone = working_calendar(rep, settings).zone
    start = dt.datetime.combine(day, dt.time(), zone).astimezone(dt.UTC)
    end = start + dt.timedelta(days=1)
    rows = session.execute(
        select(Reminder, Deal)
        .join(Deal, Deal.id == Reminder.deal_id)
        .where(Reminder.rep_email == rep.email, Reminder.status.in_(("open", "snoozed")))
        .order_by(Reminder.due_at, Reminder.id)
    ).all()

    def item(reminder: Reminder, deal: Deal) -> DigestReminder:
        return DigestReminder(
            reminder_id=str(reminder.id),
            deal_title=deal.title,
            account=deal.account_name or "",
            rule_title=reminder.title,
            due_at=reminder.effective_due_at,
            crm_url=crm_link(deal, settings),
        )

    due_today = [item(r, d) for r, d in rows if start <= r.effective_due_at < end]
    overdue = [item(r, d) for r, d in rows if r.effective_due_at < start]
    deals = session.scalars(
        select(Deal).where(Deal.owner_email == rep.email, Deal.status == "open")
    ).all()

    def idle_since(deal: Deal) -> dt.datetime:
        return deal.last_interaction_at or deal.stage_entered_at

    idle = sorted(deals, key=idle_since)[:DIGEST_LIST]
    return DigestView(
        rep_name=rep.display_name or rep.email,
        day=day,
        due_today=due_today[:DIGEST_LIST],
        overdue=overdue[:DIGEST_LIST],
        idle_longest=[
            IdleDeal(
                deal_id=d.crm_id,
                title=d.title,
                account=d.account_name or "",
                stage_name=d.stage_key.replace("_", " ").capitalize(),
                idle_days=max((now - idle_since(d)).days, 0),
                crm_url=crm_link(d, settings),
            )
            for d in idle
        ],
    )


def health_view(session: Session, settings: Settings, now: dt.datetime) -> HealthView | None:
    """What admins must fix, or None when all is well."""
    failing = [
        MailboxSyncFailure(
            mailbox=m.rep_email,
            since=m.last_success_at or m.created_at,
            error=(m.last_error or "")[:300],
        )
        for m in session.scalars(select(Mailbox).where(Mailbox.failures >= FAILING_AFTER))
    ]
    consent_url = f"{settings.public_url or 'http://localhost'}/admin/consented"
    missing: dict[str, ConsentMissing] = {}
    # Decided by the error's code when the round failed (microsoft365.Failure), never its text.
    lacking = select(Mailbox.missing_permission).where(Mailbox.missing_permission.is_not(None))
    for permission in session.scalars(lacking.distinct().order_by(Mailbox.missing_permission)):
        if permission is not None:
            missing[permission] = ConsentMissing(permission=permission, consent_url=consent_url)
    expiring = []
    if settings.client_secret_expires_on is not None:
        expires = dt.datetime.combine(settings.client_secret_expires_on, dt.time(), dt.UTC)
        if expires - now <= SECRET_WARNING:
            expiring.append(SecretExpiring(name="DEALBRIDGE_CLIENT_SECRET", expires_at=expires))
    if not (failing or missing or expiring):
        return None
    return HealthView(
        checked_at=now,
        failing_mailboxes=failing[:DIGEST_LIST],
        missing_consent=list(missing.values()),
        expiring_secrets=expiring,
        admin_url=f"{settings.public_url or 'http://localhost'}/healthz",
    )


# ---- the brief before a customer meeting (connector.meetings.briefs) ------------------------


def brief_view(
    session: Session, interaction: Interaction, settings: Settings, now: dt.datetime
) -> BriefView | None:
    """The deal at a glance before the meeting; None when the meeting is on no deal."""
    deal = session.get(Deal, interaction.deal_id) if interaction.deal_id else None
    if deal is None:
        return None
    pipeline = _pipeline(session, deal)
    recent = session.scalars(
        select(Interaction)
        .where(
            Interaction.deal_id == deal.id,
            Interaction.status == "held",
            Interaction.started_at < interaction.started_at,
        )
        .order_by(Interaction.started_at.desc(), Interaction.id.desc())
        .limit(3)
    )
    reminders = session.scalars(
        select(Reminder)
        .where(Reminder.deal_id == deal.id, Reminder.status.in_(ACTIVE))
        .order_by(Reminder.due_at)
        .limit(5)
    )
    details = interaction.details or MeetingDetails()
    internal = set(details.internal_participants)
    customers = [a for a in details.attendees if a.email and a.email not in internal]
    return BriefView(
        interaction_id=str(interaction.id),
        meeting_subject=interaction.subject or "(no subject)",
        meeting_start=interaction.started_at,
        deal_id=deal.crm_id,
        deal_title=deal.title,
        account=deal.account_name or "—",
        stage_name=_stage(pipeline, deal.stage_key).name,
        days_in_stage=_days_in_stage(deal, now),
        last_interactions=[
            f"{i.started_at:%b %d} · {i.kind.capitalize()}: {i.subject or (i.text or '')[:80]}"
            for i in recent
        ],
        open_reminders=[f"{r.title} (due {r.effective_due_at:%b %d})" for r in reminders],
        accepted=[a.name or a.email or "" for a in customers if a.response == "accepted"],
        not_answered=[
            a.name or a.email or ""
            for a in customers
            if a.response in (None, "none", "notResponded", "tentativelyAccepted")
        ],
        crm_url=crm_link(deal, settings),
        stamp=f"b{interaction.started_at:%Y%m%d%H%M}",
    )
