"""Card verbs: what a button on a DealBridge card does (done, snooze, advance, note, pick the
deal, wrong deal, meeting outcome, refresh), with the API's store calls, and the card after it.

Each verb that changes something the CRM did not do itself queues its webhook here; a deal
chosen for a meeting reaches the CRM through ``meeting_deal_chosen`` instead.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cards.actions import (
    Activity,
    Advance,
    CardActionError,
    CardActionRequest,
    Done,
    MeetingOutcome,
    NoShow,
    Note,
    PickDeal,
    Refresh,
    Snooze,
    UndoWithdraw,
    WithdrawMeeting,
    WrongDeal,
    parse_card_action,
)
from cards.models import AfterMeetingView, CardView, HelpView, MeetingLoggedView
from connector.crm import webhooks as crm_webhooks
from connector.crm.events import (
    DealStageChanged,
    InteractionUpdated,
    NoteLogged,
    ReminderCompleted,
    ReminderSnoozed,
    WebhookEvent,
)
from connector.deals.changes import get_deal, log_interaction, move_stage
from connector.deals.models import InteractionIn
from connector.deals.pipelines import get_pipeline
from connector.errors import DealBridgeError
from connector.meetings.attendance import decide_no_show
from connector.meetings.exclusions import undo, withdraw
from connector.meetings.interactions import choose_deal, get_interaction
from connector.settings import Settings
from connector.stage_reminders.replan import ACTIVE, complete, snooze, working_calendar
from connector.store.models import (
    Deal,
    Interaction,
    Reminder,
    Rep,
    StageChange,
    TeamsCard,
)
from connector.store.types import MeetingDetails, Outcome
from connector.teams.deal_search import deal_view, may_see
from connector.teams.delivery import queue_meeting_card
from connector.teams.views import (
    after_meeting_view,
    meeting_logged_view,
    my_deals_view,
    my_reminders_view,
    pick_deal_view,
    reminder_view,
)
from reminders.worktime import snooze_until

SOURCE = "teams"


def _raw_ids(activity: Activity) -> dict[str, str]:
    """The ids a button carried (a parsed action keeps only those its verb needs)."""
    value = activity.value if isinstance(activity.value, dict) else {}
    action = value.get("action") if activity.type == "invoke" else None
    data = action.get("data") if isinstance(action, dict) else value
    if not isinstance(data, dict):
        return {}
    keys = ("reminderId", "dealId", "interactionId")
    return {k: str(data[k]) for k in keys if isinstance(data.get(k), str | int)}


def _actor(activity: Activity, rep: Rep | None) -> str:
    if rep is not None:
        return rep.email
    sender = activity.from_
    return (sender.name or sender.id) if sender is not None else "someone in Teams"


def _number(value: str | None, what: str) -> int:
    try:
        return int(value or "")
    except ValueError as e:
        raise CardActionError(f"This card names no valid {what}.") from e


def apply_action(
    app: Flask,
    session: Session,
    activity: Activity,
    rep: Rep | None,
    settings: Settings,
    now: dt.datetime,
) -> CardView:
    """Apply a card action with the API's store calls; the view of the refreshed card."""
    action = parse_card_action(activity)
    ids = _raw_ids(activity)
    actor = _actor(activity, rep)
    try:
        return _apply(session, action, ids, actor, rep, settings, activity, now)
    except DealBridgeError as e:
        raise CardActionError(e.detail, status=e.status, code=type(e).__name__) from e


def _apply(
    session: Session,
    action: CardActionRequest,
    ids: dict[str, str],
    actor: str,
    rep: Rep | None,
    settings: Settings,
    activity: Activity,
    now: dt.datetime,
) -> CardView:
    match action:
        case Done():
            reminder = _reminder(session, action.reminder_id)
            if reminder.status in ACTIVE:
                complete(session, reminder, actor, settings, now)
                _notify(
                    session,
                    settings,
                    ReminderCompleted(**_reminder_data(reminder, actor)),
                    f"reminder.completed:{reminder.id}",
                    now,
                )
            return reminder_view(session, reminder, settings, now)
        case Snooze():
            reminder = _reminder(session, action.reminder_id)
            if reminder.status in ACTIVE:
                owner = session.scalar(select(Rep).where(Rep.email == reminder.rep_email))
                until = snooze_until(working_calendar(owner, settings), now, action.option)
                snooze(session, reminder, until, settings, now)
                data = ReminderSnoozed(**_reminder_data(reminder, actor), until=_iso(until))
                _notify(
                    session,
                    settings,
                    data,
                    f"reminder.snoozed:{reminder.id}:{reminder.version}",
                    now,
                )
            return reminder_view(session, reminder, settings, now)
        case Advance():
            deal = get_deal(session, action.deal_id)
            _may_act(session, action.view, deal, rep)
            _advance(session, deal, action.stage, actor, settings, now)
            return _card_after(session, action.view, ids, deal, rep, settings, now)
        case Note():
            deal = get_deal(session, action.deal_id)
            _may_act(session, action.view, deal, rep)
            _note(session, deal, action.text, actor, rep, settings, activity, now)
            return _card_after(session, action.view, ids, deal, rep, settings, now)
        case PickDeal():
            interaction = get_interaction(session, _number(action.interaction_id, "meeting"))
            if interaction.status == "cancelled":
                return _meeting_card(session, action.view, interaction, rep, settings)
            current = session.get(Deal, interaction.deal_id) if interaction.deal_id else None
            if (
                current is None
                or current.crm_id != action.deal_id
                or interaction.match_rule != "chosen"
            ):
                # the CRM hears of it through meeting_deal_chosen, as for the API's choice
                choose_deal(session, interaction.id, action.deal_id, by=actor, now=now)
            view = action.view if action.view in ("meeting_logged", "pick_deal") else "pick_deal"
            return _meeting_card(session, view, interaction, rep, settings)
        case WrongDeal():
            interaction = get_interaction(session, _number(action.interaction_id, "meeting"))
            if interaction.status == "cancelled":
                return _meeting_card(session, "meeting_logged", interaction, rep, settings)
            rep_email = rep.email if rep is not None else None
            return pick_deal_view(session, interaction, rep_email, asking=True)
        case MeetingOutcome():
            interaction = get_interaction(session, _number(action.interaction_id, "meeting"))
            _outcome(session, interaction, action, actor, rep, settings, activity, now)
            return _meeting_card(session, "after_meeting", interaction, rep, settings)
        case WithdrawMeeting() | UndoWithdraw():
            interaction = get_interaction(session, _number(action.interaction_id, "meeting"))
            if rep is None:
                raise CardActionError(
                    "Only a rep known to DealBridge can change what is logged about her.",
                    status=403,
                    code="Forbidden",
                )
            if isinstance(action, WithdrawMeeting):
                withdraw(session, interaction, rep.email, settings, now, source=SOURCE)
            else:
                undo(session, interaction, rep.email, settings, now, source=SOURCE)
            refresh_meeting_cards(session, interaction, but=rep.email)
            return _meeting_card(session, "meeting_logged", interaction, rep, settings)
        case NoShow():  # Teams attendance: the no-show card's answer
            interaction = get_interaction(session, _number(action.interaction_id, "meeting"))
            if interaction.status == "no_show" and not _no_show_decided(interaction):
                decide_no_show(session, interaction, action.decision, by=actor, now=now)
            return _meeting_card(session, "after_meeting", interaction, rep, settings)
        case Refresh():
            return _current(session, action, ids, rep, settings, now)
    raise CardActionError("DealBridge does not know this action.")


def _may_act(session: Session, view: str | None, deal: Deal, rep: Rep | None) -> None:
    """A shared deal card's buttons work only for reps who may see the deal (its owner, or a
    rep with another open deal on its account), each as themselves."""
    if view == "deal" and not may_see(session, rep, deal):
        raise CardActionError(
            "Only the deal's owner and reps on the same account can change this deal.",
            status=403,
            code="Forbidden",
        )


def _deal_card(session: Session, deal: Deal, rep: Rep | None, settings: Settings) -> CardView:
    return deal_view(session, deal, rep, settings)


def refresh_meeting_cards(session: Session, interaction: Interaction, *, but: str) -> None:
    """The meeting's cards already sent to other reps show the change too."""
    for kind in ("meeting_logged", "pick_deal"):
        rows = session.scalars(
            select(TeamsCard).where(TeamsCard.key == f"{kind}:{interaction.id}")
        ).all()
        for row in rows:
            if row.rep_email and row.rep_email != but:
                queue_meeting_card(session, kind, interaction.id, row.rep_email)


def _no_show_decided(interaction: Interaction) -> bool:
    """A rep already rescheduled or dropped this no-show (a second press changes nothing)."""
    attendance = interaction.details.attendance if interaction.details else None
    return attendance is not None and attendance.decided_by is not None


def _reminder(session: Session, reminder_id: str) -> Reminder:
    reminder = session.get(Reminder, _number(reminder_id, "reminder"))
    if reminder is None:
        raise CardActionError("This reminder no longer exists.", status=404, code="NotFound")
    return reminder


def _reminder_data(reminder: Reminder, actor: str) -> dict[str, Any]:
    """The fields a card's reminder event carries (``ReminderCompleted``, ``ReminderSnoozed``)."""
    return {
        "reminder": reminder.id,
        "deal": reminder.deal.crm_id,
        "rule": reminder.rule_id,
        "stage": reminder.stage_key,
        "by": actor,
        "source": SOURCE,
    }


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _notify(
    session: Session,
    settings: Settings,
    event: WebhookEvent,
    key: str,
    now: dt.datetime,
) -> None:
    crm_webhooks.notify(session, settings, event, key=f"teams:{key}", now=now)


def _advance(
    session: Session,
    deal: Deal,
    stage_key: str,
    actor: str,
    settings: Settings,
    now: dt.datetime,
) -> bool:
    """Move the deal forward; a closed deal or a stage not ahead of it is a stale card."""
    pipeline = get_pipeline(session, deal.pipeline_id)
    target = pipeline.stage(stage_key)
    if target is None:
        raise CardActionError("That stage is not in this deal's pipeline.")
    current = pipeline.stage(deal.stage_key)
    if deal.status != "open" or (current is not None and target.position <= current.position):
        return False
    before = deal.stage_key
    move_stage(session, deal, target.key, actor=actor, now=now)
    change_id = session.scalar(
        select(func.max(StageChange.id)).where(StageChange.deal_id == deal.id)
    )
    event = DealStageChanged(
        deal=deal.crm_id, from_=before, to=target.key, by=actor, at=_iso(now), source=SOURCE
    )
    _notify(
        session,
        settings,
        event,
        f"deal.stage_changed:{deal.crm_id}:{change_id}",
        now,
    )
    return True


def _note(
    session: Session,
    deal: Deal,
    text: str,
    actor: str,
    rep: Rep | None,
    settings: Settings,
    activity: Activity,
    now: dt.datetime,
) -> Interaction:
    note = InteractionIn(
        kind="note",
        subject="Note from Teams",
        text=text,
        external_id=f"teams-{activity.id}"[:200] if activity.id else None,
        by=rep.email if rep is not None else None,
    )
    interaction, created = log_interaction(session, deal, note, actor=actor, source=SOURCE, now=now)
    if created:
        note_logged = NoteLogged(
            deal=deal.crm_id, interaction=interaction.id, text=text, by=actor, source=SOURCE
        )
        _notify(session, settings, note_logged, f"note.logged:{interaction.id}", now)
    return interaction


def _outcome(
    session: Session,
    interaction: Interaction,
    action: MeetingOutcome,
    actor: str,
    rep: Rep | None,
    settings: Settings,
    activity: Activity,
    now: dt.datetime,
) -> None:
    details = interaction.details or MeetingDetails()
    if details.outcome is not None:
        return  # answered already (a stale card): show what was recorded
    deal = get_deal(session, action.deal_id)
    if deal.status != "open" or interaction.status == "cancelled":
        return
    moved_to = None
    if action.stage and _advance(session, deal, action.stage, actor, settings, now):
        pipeline = get_pipeline(session, deal.pipeline_id)
        stage = pipeline.stage(deal.stage_key)
        moved_to = stage.name if stage else deal.stage_key
    if action.note:
        _note(session, deal, action.note, actor, rep, settings, activity, now)
    outcome = Outcome(
        outcome=action.outcome, note=action.note, stage_name=moved_to, by=actor, at=now.isoformat()
    )
    interaction.details = details.but(outcome=outcome)
    session.flush()
    event = InteractionUpdated(
        interaction=interaction.id,
        deal=deal.crm_id,
        by=actor,
        change="outcome",
        outcome=action.outcome,
        source=SOURCE,
    )
    _notify(
        session,
        settings,
        event,
        f"interaction.updated:{interaction.id}:outcome",
        now,
    )


def _meeting_card(
    session: Session, view: str | None, interaction: Interaction, rep: Rep | None, s: Settings
) -> CardView:
    owner = rep.email if rep is not None else None
    if view == "pick_deal":
        return pick_deal_view(session, interaction, owner, asking=False)
    found: AfterMeetingView | MeetingLoggedView | None
    if view == "after_meeting":
        found = after_meeting_view(session, interaction, s)
    else:
        found = meeting_logged_view(session, interaction, s)
    return found if found is not None else pick_deal_view(session, interaction, owner, asking=False)


def _card_after(
    session: Session,
    view: str | None,
    ids: dict[str, str],
    deal: Deal,
    rep: Rep | None,
    settings: Settings,
    now: dt.datetime,
) -> CardView:
    """The card the button was on, as it is now."""
    if view == "deal":
        session.flush()
        session.refresh(deal)
        return _deal_card(session, deal, rep, settings)
    if view == "reminder" and "reminderId" in ids:
        session.flush()
        reminder = _reminder(session, ids["reminderId"])
        session.refresh(reminder)
        return reminder_view(session, reminder, settings, now)
    if view in ("after_meeting", "meeting_logged", "pick_deal") and "interactionId" in ids:
        interaction = get_interaction(session, _number(ids["interactionId"], "meeting"))
        return _meeting_card(session, view, interaction, rep, settings)
    if rep is not None:
        return my_deals_view(session, rep, settings, now)
    return HelpView()


def _current(
    session: Session,
    action: Refresh,
    ids: dict[str, str],
    rep: Rep | None,
    settings: Settings,
    now: dt.datetime,
) -> CardView:
    if action.view == "reminder" and action.reminder_id:
        return reminder_view(session, _reminder(session, action.reminder_id), settings, now)
    if action.view in ("meeting_logged", "pick_deal", "after_meeting") and action.interaction_id:
        interaction = get_interaction(session, _number(action.interaction_id, "meeting"))
        return _meeting_card(session, action.view, interaction, rep, settings)
    if action.view == "my_reminders" and rep is not None:
        return my_reminders_view(session, rep, settings, now)
    if action.view == "my_deals" and rep is not None:
        return my_deals_view(session, rep, settings, now)
    if action.view == "help":
        return HelpView()
    if action.view == "deal" and action.deal_id:
        # Each viewer's own view: buttons only for those who may see the deal.
        return _deal_card(session, get_deal(session, action.deal_id), rep, settings)
    raise CardActionError("This card cannot be refreshed.")
