"""The Teams bot endpoint, ``POST /api/messages``.

Every request is authenticated first (``cards.auth.BotFrameworkAuthenticator``: the Bot
Connector's JWT against its OpenID metadata); anything wrong answers 401 and nothing is read
further, metadata that cannot be fetched answers 503 (Teams retries). Then:

- install (``installationUpdate``, ``conversationUpdate``): the rep's conversation reference is
  stored (serviceUrl, conversation id, user ids, tenant), mapped to the rep by Entra object id,
  else by the e-mail or UPN Teams gives for the member;
- messages ``help``, ``reminders``, ``deals``; anything else gets the short help card;
- ``adaptiveCard/action`` invokes (Action.Execute) and Action.Submit fallbacks: done, snooze,
  advance, note, pick_deal, wrong_deal, meeting_outcome, refresh — through the same store calls
  as the REST API (so reminders re-plan and deliveries queue), each sending the CRM a signed
  webhook, answered with the refreshed card. A stale card gets the current state; a bad verb or
  data gets an error Teams shows; nothing answers 500.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from typing import Any

import requests
from flask import Blueprint, Flask, Response, current_app, jsonify, request
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cards.actions import (
    ADAPTIVE_CARD_ACTION,
    Activity,
    Advance,
    CardActionError,
    CardActionRequest,
    Done,
    MeetingOutcome,
    Note,
    PickDeal,
    Refresh,
    Snooze,
    WrongDeal,
    card_response,
    error_response,
    error_response_for,
    is_card_action,
    parse_card_action,
)
from cards.auth import BotAuthError, BotAuthFailure, BotFrameworkAuthenticator
from cards.builders import build_card
from cards.models import AfterMeetingView, CardView, HelpView, MeetingLoggedView
from cards.teams import BotConnectorError, card_activity
from connector.crm import webhooks as crm_webhooks
from connector.deals.changes import get_deal, log_interaction, move_stage
from connector.deals.models import InteractionIn
from connector.deals.pipelines import get_pipeline
from connector.deals.reps import set_digest, wants_digest
from connector.errors import DealBridgeError
from connector.meetings.interactions import choose_deal, get_interaction
from connector.microsoft365 import NotConfigured
from connector.settings import SETTINGS_EXTENSION, Settings
from connector.stage_reminders.replan import ACTIVE, complete, snooze, working_calendar
from connector.store.db import db_session
from connector.store.models import (
    Deal,
    Interaction,
    Reminder,
    Rep,
    StageChange,
    TeamsCard,
    TeamsConversation,
    utcnow,
)
from connector.teams.chats import bot_connector
from connector.teams.delivery import store_card, update_card_row
from connector.teams.views import (
    after_meeting_view,
    meeting_logged_view,
    my_deals_view,
    my_reminders_view,
    pick_deal_view,
    reminder_view,
)
from reminders.worktime import snooze_until

log = logging.getLogger(__name__)
AUTH_EXTENSION = "dealbridge.bot_auth"
SOURCE = "teams"
_GUID = re.compile(r"^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$", re.IGNORECASE)
_MENTION = re.compile(r"<at>.*?</at>", re.IGNORECASE | re.DOTALL)

bot = Blueprint("bot", __name__)


def authenticator(app: Flask) -> BotFrameworkAuthenticator:
    """The app's one authenticator (its key cache lives as long as the app)."""
    found: BotFrameworkAuthenticator | None = app.extensions.get(AUTH_EXTENSION)
    if found is None:
        settings: Settings = app.extensions[SETTINGS_EXTENSION]
        found = BotFrameworkAuthenticator(
            settings.bot_openid_metadata_url, settings.effective_bot_id or "", requests.Session()
        )
        app.extensions[AUTH_EXTENSION] = found
    return found


def _unauthorized() -> tuple[Response, int]:
    return jsonify({"error": "unauthorized"}), 401


@bot.post("/api/messages")
def messages() -> tuple[Response, int]:
    """Teams posts every activity here."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    settings: Settings = app.extensions[SETTINGS_EXTENSION]
    if not settings.effective_bot_id:
        log.warning("bot request refused: DEALBRIDGE_BOT_ID (or CLIENT_ID) is not set")
        return _unauthorized()
    body = request.get_json(silent=True)
    try:
        activity = Activity.model_validate(body)
    except ValidationError:
        return _unauthorized()
    try:
        authenticator(app).authenticate(request.headers.get("Authorization"), activity)
    except BotAuthError as e:
        if e.reason is BotAuthFailure.KEYS_UNAVAILABLE:
            log.error("bot request refused: Bot Framework keys unavailable (%s)", e.detail)
            return jsonify({"error": "signing keys unavailable"}), 503
        log.info("bot request refused: %s", e.reason.value)
        return _unauthorized()
    if not _same_tenant(activity, settings):
        log.warning("bot request from another tenant ignored: %s", activity.tenant_id)
        return jsonify({}), 200
    return _dispatch(app, activity, settings)


def _same_tenant(activity: Activity, settings: Settings) -> bool:
    ours = settings.tenant_id or ""
    theirs = activity.tenant_id or ""
    if not _GUID.match(ours) or not theirs:
        return True
    return ours.lower() == theirs.lower()


def _dispatch(app: Flask, activity: Activity, settings: Settings) -> tuple[Response, int]:
    session = db_session()
    now = utcnow()
    try:
        if activity.type == "invoke":
            if activity.name != ADAPTIVE_CARD_ACTION:
                return jsonify({}), 200
            answer = _invoke(app, session, activity, settings, now)
            session.commit()
            return jsonify(answer), 200
        if activity.type in ("installationUpdate", "conversationUpdate"):
            _installed(app, session, activity, now)
        elif activity.type == "message":
            _message(app, session, activity, settings, now)
        session.commit()
    except Exception:  # Teams shows nothing useful for a 500; log it and answer calmly
        session.rollback()
        log.exception("bot activity %s failed", activity.type)
        if activity.type == "invoke":
            message = "DealBridge could not do that just now. Try again in a moment."
            return jsonify(error_response(500, "InternalError", message)), 200
    return jsonify({}), 200


# --- who is talking --------------------------------------------------------------------------


def rep_for(session: Session, activity: Activity) -> Rep | None:
    """The rep behind an activity: by Entra object id, else by a stored conversation."""
    sender = activity.from_
    if sender is None:
        return None
    if sender.aad_object_id:
        rep = session.scalar(
            select(Rep).where(func.lower(Rep.entra_id) == sender.aad_object_id.lower())
        )
        if rep is not None:
            return rep
    conversation = _conversation_row(session, activity)
    if conversation is not None and conversation.rep_email:
        return session.scalar(select(Rep).where(Rep.email == conversation.rep_email))
    return None


def _conversation_row(session: Session, activity: Activity) -> TeamsConversation | None:
    sender = activity.from_
    if sender is None:
        return None
    if sender.aad_object_id:
        found = session.scalar(
            select(TeamsConversation).where(
                TeamsConversation.aad_object_id == sender.aad_object_id.lower()
            )
        )
        if found is not None:
            return found
    return session.scalar(
        select(TeamsConversation).where(TeamsConversation.teams_user_id == sender.id).limit(1)
    )


def _personal(activity: Activity) -> bool:
    conversation = activity.conversation
    return conversation is not None and conversation.conversation_type in (None, "personal")


def remember_conversation(
    session: Session, activity: Activity, rep: Rep | None
) -> TeamsConversation | None:
    """Store (or refresh) the rep's conversation reference from a personal-chat activity."""
    sender = activity.from_
    if sender is None or activity.conversation is None or not _personal(activity):
        return None
    row = _conversation_row(session, activity)
    if row is None and rep is not None:
        row = session.scalar(
            select(TeamsConversation).where(TeamsConversation.rep_email == rep.email).limit(1)
        )
    if row is None:
        row = TeamsConversation(teams_user_id=sender.id, service_url=activity.service_url or "")
        session.add(row)
    if rep is not None:
        row.rep_email = rep.email
    if sender.aad_object_id:
        row.aad_object_id = sender.aad_object_id.lower()
    row.teams_user_id = sender.id
    row.service_url = activity.service_url or row.service_url
    row.conversation_id = activity.conversation.id
    row.tenant_id = activity.tenant_id or row.tenant_id
    row.fallback_reason = None
    # They are talking to the bot: whatever blocked it before is over.
    row.blocked_at = None
    row.blocked_reason = None
    row.updated_at = utcnow()
    session.flush()
    return row


def _installed(app: Flask, session: Session, activity: Activity, now: dt.datetime) -> None:
    value = activity.model_extra.get("action") if activity.model_extra else None
    if activity.type == "installationUpdate" and value in ("remove", "remove-upgrade"):
        row = _conversation_row(session, activity)
        if row is not None:
            row.blocked_at = now
            row.blocked_reason = "the rep removed the app"
        return
    if activity.type == "conversationUpdate":
        bot_ids = {activity.recipient.id if activity.recipient else ""}
        added = [m for m in activity.members_added or [] if m.id not in bot_ids]
        if not added and activity.members_added:
            return
    rep = rep_for(session, activity) or _rep_from_members(app, session, activity)
    row = remember_conversation(session, activity, rep)
    if row is not None:
        log.info("Teams conversation stored for %s", row.rep_email or "an unknown user")


def _rep_from_members(app: Flask, session: Session, activity: Activity) -> Rep | None:
    """Ask Teams for the member's e-mail and UPN (TeamsInfo.getMember) and match a rep."""
    if activity.conversation is None or not activity.service_url or activity.from_ is None:
        return None
    try:
        members = bot_connector(app).members(activity.service_url, activity.conversation.id)
    except (NotConfigured, BotConnectorError) as e:
        log.info("Teams members unavailable: %s", e)
        return None
    for member in members:
        if member.id != activity.from_.id:
            continue
        for address in (member.email, member.user_principal_name):
            if address:
                rep = session.scalar(select(Rep).where(func.lower(Rep.email) == address.lower()))
                if rep is not None:
                    return rep
    return None


# --- messages --------------------------------------------------------------------------------


def _message(
    app: Flask, session: Session, activity: Activity, settings: Settings, now: dt.datetime
) -> None:
    rep = rep_for(session, activity)
    remember_conversation(session, activity, rep)
    if is_card_action(activity):
        _submitted(app, session, activity, rep, settings, now)
        return
    text = _MENTION.sub("", activity.text or "").strip()
    word = text.lower().split()[0] if text else ""
    view: CardView
    if word == "help" or not text:
        view = HelpView()
    elif word == "reminders" and rep is not None:
        view = my_reminders_view(session, rep, settings, now)
    elif word == "deals" and rep is not None:
        view = my_deals_view(session, rep, settings, now)
    elif word == "digest" and rep is not None:
        _reply(app, activity, _digest_switch(session, rep, text))
        return
    elif word in ("reminders", "deals", "digest"):
        _reply(app, activity, _not_a_rep(activity))
        return
    else:
        view = HelpView(unknown_text=text[:200])
    _reply(app, activity, card_activity(view))


def _digest_switch(session: Session, rep: Rep, text: str) -> dict[str, Any]:
    """`digest on` / `digest off`: the daily digest card, opt-in."""
    words = text.lower().split()
    if len(words) > 1 and words[1] in ("on", "off"):
        set_digest(session, rep.email, words[1] == "on")
    on = wants_digest(session, rep.email)
    state = "on: it comes at the start of your working day" if on else "off"
    return {
        "type": "message",
        "text": f"Your daily digest is {state}. Say 'digest on' or 'digest off'.",
    }


def _not_a_rep(activity: Activity) -> dict[str, Any]:
    who = activity.from_.name if activity.from_ and activity.from_.name else "you"
    return {
        "type": "message",
        "text": f"DealBridge does not know {who} as a rep yet. Ask your admin to add your "
        "work e-mail as a rep in DealBridge.",
    }


def _reply(app: Flask, activity: Activity, answer: dict[str, Any]) -> None:
    if activity.conversation is None or not activity.service_url:
        return
    try:
        connector = bot_connector(app)
        if activity.id:
            connector.reply(activity.service_url, activity.conversation.id, activity.id, answer)
        else:
            connector.send(activity.service_url, activity.conversation.id, answer)
    except (NotConfigured, BotConnectorError) as e:
        log.warning("could not answer in Teams: %s", e)


def _submitted(
    app: Flask,
    session: Session,
    activity: Activity,
    rep: Rep | None,
    settings: Settings,
    now: dt.datetime,
) -> None:
    """Action.Submit (old clients): apply, then replace the card the button was on."""
    try:
        view = apply_action(app, session, activity, rep, settings, now)
    except CardActionError as e:
        _reply(app, activity, {"type": "message", "text": e.message})
        return
    if not activity.reply_to_id or activity.conversation is None or not activity.service_url:
        return
    session.commit()
    try:
        bot_connector(app).update(
            activity.service_url,
            activity.conversation.id,
            activity.reply_to_id,
            card_activity(view),
        )
    except (NotConfigured, BotConnectorError) as e:
        log.warning("could not update the card in Teams: %s", e)
        return
    stamp = getattr(view, "stamp", None)
    card = session.scalar(select(TeamsCard).where(TeamsCard.activity_id == activity.reply_to_id))
    if card is not None:
        store_card(
            app,
            card.key,
            card.rep_email,
            card.kind,
            card.conversation_id,
            activity.reply_to_id,
            stamp,
        )


# --- card actions ----------------------------------------------------------------------------


def _invoke(
    app: Flask, session: Session, activity: Activity, settings: Settings, now: dt.datetime
) -> dict[str, Any]:
    rep = rep_for(session, activity)
    remember_conversation(session, activity, rep)
    try:
        view = apply_action(app, session, activity, rep, settings, now)
    except CardActionError as e:
        session.rollback()
        return error_response_for(e)
    stamp = getattr(view, "stamp", None)
    if activity.reply_to_id and stamp:
        card = session.scalar(
            select(TeamsCard).where(TeamsCard.activity_id == activity.reply_to_id)
        )
        if card is not None:
            # Teams shows the answered card in place: the outbox need not PUT it again.
            update_card_row(
                session,
                card.key,
                card.rep_email,
                card.kind,
                card.conversation_id,
                activity.reply_to_id,
                stamp,
            )
    return card_response(build_card(view))


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
                    "reminder.completed",
                    _reminder_data(reminder, actor),
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
                data = _reminder_data(reminder, actor) | {"until": _iso(until)}
                _notify(
                    session,
                    settings,
                    "reminder.snoozed",
                    data,
                    f"reminder.snoozed:{reminder.id}:{reminder.version}",
                    now,
                )
            return reminder_view(session, reminder, settings, now)
        case Advance():
            deal = get_deal(session, action.deal_id)
            _advance(session, deal, action.stage, actor, settings, now)
            return _card_after(session, action.view, ids, deal, rep, settings, now)
        case Note():
            deal = get_deal(session, action.deal_id)
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
        case Refresh():
            return _current(session, action, ids, rep, settings, now)
    raise CardActionError("DealBridge does not know this action.")


def _reminder(session: Session, reminder_id: str) -> Reminder:
    reminder = session.get(Reminder, _number(reminder_id, "reminder"))
    if reminder is None:
        raise CardActionError("This reminder no longer exists.", status=404, code="NotFound")
    return reminder


def _reminder_data(reminder: Reminder, actor: str) -> dict[str, Any]:
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
    event_type: str,
    data: dict[str, Any],
    key: str,
    now: dt.datetime,
) -> None:
    crm_webhooks.notify(session, settings, event_type, data, key=f"teams:{key}", now=now)


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
    data = {
        "deal": deal.crm_id,
        "from": before,
        "to": target.key,
        "by": actor,
        "at": _iso(now),
        "source": SOURCE,
    }
    _notify(
        session,
        settings,
        "deal.stage_changed",
        data,
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
        data = {
            "deal": deal.crm_id,
            "interaction": interaction.id,
            "text": text,
            "by": actor,
            "source": SOURCE,
        }
        _notify(session, settings, "note.logged", data, f"note.logged:{interaction.id}", now)
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
    details = dict(interaction.details or {})
    if isinstance(details.get("outcome"), dict):
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
    details["outcome"] = {
        "outcome": action.outcome,
        "note": action.note,
        "stage_name": moved_to,
        "by": actor,
        "at": now.isoformat(),
    }
    interaction.details = details
    session.flush()
    data = {
        "interaction": interaction.id,
        "deal": deal.crm_id,
        "by": actor,
        "change": "outcome",
        "outcome": action.outcome,
        "source": SOURCE,
    }
    _notify(
        session,
        settings,
        "interaction.updated",
        data,
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
    raise CardActionError("This card cannot be refreshed.")


def init_app(app: Flask) -> None:
    """Serve `/api/messages` (no API key: the Bot Connector's JWT is checked instead)."""
    app.register_blueprint(bot)
