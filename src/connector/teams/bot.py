"""The Teams bot endpoint, ``POST /api/messages``.

Every request is authenticated first (``cards.auth.BotFrameworkAuthenticator``: the Bot
Connector's JWT against its OpenID metadata); anything wrong answers 401 and nothing is read
further, metadata that cannot be fetched answers 503 (Teams retries). Then:

- install (``installationUpdate``, ``conversationUpdate``) in the personal scope only
  (``conversationType == "personal"``; a team, a group chat or a meeting chat is never a rep's
  chat): the rep's conversation reference is stored (serviceUrl, conversation id, user ids,
  tenant), mapped to the rep by Entra object id, else by the e-mail or UPN Teams gives for the
  member; an uninstall (``installationUpdate`` ``remove``, or the bot in ``membersRemoved``)
  stops cards until the rep installs again or writes, and nothing else undoes it;
- an activity from another tenant is ignored; its card action gets a Universal Actions
  error response (403, ``application/vnd.microsoft.error``);
- messages ``help``, ``reminders``, ``deals``, ``digest on|off``, ``deal <text>`` and
  ``my day`` (the message extension's deal cards, as a carousel); anything else gets the help
  card with what was not understood; a rep's own lists asked for in a group go to her own chat;
- message-extension invokes ``composeExtension/query`` and ``composeExtension/queryLink``
  (``connector.teams.extension``): the deals the rep may see, as result lists and unfurls;
- ``adaptiveCard/action`` invokes (Action.Execute) and Action.Submit fallbacks: done, snooze,
  advance, note, pick_deal, wrong_deal, meeting_outcome, refresh (``connector.teams.verbs``),
  through the same store calls as the REST API (so reminders re-plan and deliveries queue),
  each sending the CRM a signed webhook, answered with the refreshed card. A stale card gets
  the current state; a bad verb or data gets an error Teams shows; nothing answers 500.
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
    CARD_CONTENT_TYPE,
    Activity,
    CardActionError,
    card_response,
    error_response,
    error_response_for,
    is_card_action,
)
from cards.auth import BotAuthError, BotAuthFailure, BotFrameworkAuthenticator
from cards.builders import build_card, deal_card
from cards.extensions import text_response
from cards.models import CardView, HelpView
from cards.teams import BotConnectorError, card_activity
from connector.deals.reps import set_digest, wants_digest
from connector.microsoft365 import NotConfigured
from connector.settings import SETTINGS_EXTENSION, Settings
from connector.store.db import db_session
from connector.store.models import (
    Rep,
    TeamsCard,
    TeamsConversation,
    utcnow,
)
from connector.teams import extension
from connector.teams.chats import bot_connector
from connector.teams.deal_search import day_deals, deal_views, search_deals
from connector.teams.delivery import store_card, update_card_row
from connector.teams.preferences import settings_answer
from connector.teams.verbs import apply_action
from connector.teams.views import (
    my_deals_view,
    my_reminders_view,
)

log = logging.getLogger(__name__)
AUTH_EXTENSION = "dealbridge.bot_auth"
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
        if activity.type == "invoke" and activity.name == ADAPTIVE_CARD_ACTION:
            # Universal Actions: an error response Teams shows on the card, not a silent {}.
            message = "This DealBridge serves another organization; your card cannot be used here."
            return jsonify(error_response(403, "Forbidden", message)), 200
        if activity.type == "invoke" and activity.name in extension.EXTENSION_INVOKES:
            # a message where results would be (and no unfurl): nothing of ours is shown
            return jsonify(text_response("This DealBridge serves another organization.")), 200
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
        if activity.type == "invoke" and activity.name in extension.EXTENSION_INVOKES:
            try:
                found = extension.answer(session, activity, rep_for(session, activity), settings)
            except CardActionError as e:
                found = text_response(e.message)
            session.commit()
            return jsonify(found), 200
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
        if activity.type == "invoke" and activity.name in extension.EXTENSION_INVOKES:
            return jsonify(text_response("DealBridge could not search just now. Try again.")), 200
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
    """A rep's 1:1 chat with the bot. Only `personal` is: Teams leaves `conversationType` out
    of a meeting's chat, which customers may be in (tests/connector/teams_payloads/)."""
    conversation = activity.conversation
    return conversation is not None and conversation.conversation_type == "personal"


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
    """Install, uninstall and membership activities of the rep's 1:1 chat; a team's, a group
    chat's or a meeting's say nothing about that chat and are left alone."""
    if not _personal(activity):
        return
    extra = activity.model_extra or {}
    bot_id = activity.recipient.id if activity.recipient else ""
    if activity.type == "installationUpdate":
        if extra.get("action") in ("remove", "remove-upgrade"):
            _uninstalled(session, activity, now)
            return
    else:  # conversationUpdate
        removed = extra.get("membersRemoved")
        if isinstance(removed, list) and any(
            isinstance(m, dict) and m.get("id") == bot_id for m in removed
        ):
            _uninstalled(session, activity, now)  # the bot left the chat: the app was removed
            return
        if not activity.members_added:
            return  # a rename or someone else leaving: nothing to remember, nothing to undo
        if not [m for m in activity.members_added if m.id != bot_id]:
            return
    rep = rep_for(session, activity) or _rep_from_members(app, session, activity)
    row = remember_conversation(session, activity, rep)
    if row is not None:
        log.info("Teams conversation stored for %s", row.rep_email or "an unknown user")


def _uninstalled(session: Session, activity: Activity, now: dt.datetime) -> None:
    """The rep removed the app: no card until they install it again or talk to the bot. A
    second word of the same removal keeps the first one's time and reason."""
    row = _conversation_row(session, activity)
    if row is not None and row.blocked_at is None:
        row.blocked_at = now
        row.blocked_reason = "the rep removed the app"


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
    if " ".join(text.lower().split()[:2]) == "my day":
        word = "my day"
    view: CardView
    if word in PRIVATE_WORDS and rep is not None and not _personal(activity):
        _answer_privately(app, session, activity, rep, word, text, settings, now)
        return
    if word == "help" or not text:
        view = HelpView()
    elif word == "reminders" and rep is not None:
        view = my_reminders_view(session, rep, settings, now)
    elif word == "deals" and rep is not None:
        view = my_deals_view(session, rep, settings, now)
    elif word == "digest" and rep is not None:
        _reply(app, activity, _digest_switch(session, rep, text))
        return
    elif word in ("deal", "my day") and rep is not None:
        _reply(app, activity, _deal_answer(session, rep, word, text, settings, now))
        return
    elif word in PRIVATE_WORDS:
        _reply(app, activity, _not_a_rep(activity))
        return
    elif word == "settings" and rep is not None and _personal(activity):  # the rep's own
        _reply(app, activity, settings_answer(session, rep, text, settings, now))
        return
    else:
        view = HelpView(unknown_text=text[:200])
    _reply(app, activity, card_activity(view))


PRIVATE_WORDS = frozenset({"reminders", "deals", "digest", "deal", "my day"})
CAROUSEL_MAX = 10
"""Teams shows at most 10 cards in a carousel."""


def _deal_answer(
    session: Session, rep: Rep, word: str, text: str, settings: Settings, now: dt.datetime
) -> dict[str, Any]:
    """`deal <text>` and `my day`: the message extension's deal cards, as a carousel."""
    if word == "deal":
        wanted = " ".join(text.split()[1:])[:200]
        if not wanted:
            return {"type": "message", "text": "Say what to look for, e.g. 'deal northwind'."}
        deals = search_deals(session, rep, wanted, count=CAROUSEL_MAX)
        summary = f"{len(deals)} deals match “{wanted[:60]}”" if deals else ""
        if not deals:
            return {
                "type": "message",
                "text": f"No open deal you may see matches “{wanted[:60]}”. "
                "Try a title, an account, a contact or a CRM id.",
            }
    else:
        deals, due = day_deals(session, rep, now, count=CAROUSEL_MAX)
        if not deals:
            return {"type": "message", "text": "Nothing is due today and you have no open deals."}
        summary = (
            f"Your day: {len(deals)} deals need you today"
            if due
            else "Nothing is due today. Your most recently active deals:"
        )
    views = deal_views(session, deals, rep, settings, visible=True)
    cards = [{"contentType": CARD_CONTENT_TYPE, "content": deal_card(v)} for v in views]
    return {
        "type": "message",
        "summary": summary,
        "text": summary,
        "attachmentLayout": "carousel",
        "attachments": cards,
    }


def _answer_privately(
    app: Flask,
    session: Session,
    activity: Activity,
    rep: Rep,
    word: str,
    text: str,
    settings: Settings,
    now: dt.datetime,
) -> None:
    """A rep's lists asked for in a group, meeting or channel chat, where customers may read
    along: the answer goes to her own chat with the bot, and nothing of it to the group."""
    chat = session.scalar(
        select(TeamsConversation).where(
            TeamsConversation.rep_email == rep.email,
            TeamsConversation.conversation_id.is_not(None),
            TeamsConversation.blocked_at.is_(None),
        )
    )
    if chat is None or chat.conversation_id is None:
        _reply(
            app,
            activity,
            {
                "type": "message",
                "text": "I answer that only in your own chat with DealBridge: open the "
                "DealBridge app in Teams and ask there.",
            },
        )
        return
    if word == "digest":
        answer = _digest_switch(session, rep, text)
    elif word in ("deal", "my day"):
        answer = _deal_answer(session, rep, word, text, settings, now)
    elif word == "reminders":
        answer = card_activity(my_reminders_view(session, rep, settings, now))
    else:
        answer = card_activity(my_deals_view(session, rep, settings, now))
    try:
        bot_connector(app).send(chat.service_url, chat.conversation_id, answer)
    except (NotConfigured, BotConnectorError) as e:
        log.warning("could not answer in the rep's own chat: %s", e)


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


def init_app(app: Flask) -> None:
    """Serve `/api/messages` (no API key: the Bot Connector's JWT is checked instead)."""
    app.register_blueprint(bot)
