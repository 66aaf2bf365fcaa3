"""Where a rep is reached in Teams: their 1:1 chat with the bot, opened from what Teams told
us, or made by installing our app through Graph; a rep who blocked the bot is recorded.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import requests
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from cards.teams import BOT_SCOPE, BotConnector, BotConnectorError
from connector.microsoft365 import NotConfigured, graph_client
from connector.outbox import Failed, Outcome, RetryLater
from connector.settings import SETTINGS_EXTENSION, Settings
from connector.store.db import get_store
from connector.store.models import (
    Rep,
    TeamsConversation,
)
from graph_sync.catalog import find_catalog_app
from graph_sync.directory import get_user
from graph_sync.errors import Forbidden, GraphSyncError, Throttled
from graph_sync.teams import (
    get_installation_chat,
    install_app_for_user,
)

log = logging.getLogger(__name__)
CONNECTOR_EXTENSION = "dealbridge.bot_connector"
DEFAULT_SERVICE_URL = "https://smba.trafficmanager.net/teams/"
"""Teams' global Bot Connector; used only until Teams tells us a rep's own serviceUrl."""
CATALOG_PERMISSION = "AppCatalog.Read.All"


# --- where a rep is reached ------------------------------------------------------------------


def conversation_of(session: Session, rep_email: str) -> TeamsConversation | None:
    """The rep's Teams conversation row, if the bot or a delivery ever made one."""
    return session.scalar(
        select(TeamsConversation)
        .where(TeamsConversation.rep_email == rep_email.lower())
        .order_by(TeamsConversation.updated_at.desc(), TeamsConversation.id.desc())
        .limit(1)
    )


def may_get_cards(app: Flask, email: str) -> bool:
    """An active rep, or an admin (the health card): nobody an admin deactivated or deleted
    gets a new card."""
    settings: Settings = app.extensions[SETTINGS_EXTENSION]
    with get_store(app).session() as session:
        rep = session.scalar(select(Rep).where(Rep.email == email.lower()))
    if rep is not None:
        return rep.active
    return email.lower() in {a.lower() for a in settings.admin_emails}


def known_service_url(session: Session) -> str:
    """The Bot Connector URL Teams last gave us (same for the tenant), else Teams' global one."""
    url = session.scalar(
        select(TeamsConversation.service_url)
        .where(TeamsConversation.service_url != "")
        .order_by(TeamsConversation.updated_at.desc())
        .limit(1)
    )
    return url or DEFAULT_SERVICE_URL


@dataclass(frozen=True)
class Chat:
    """A 1:1 chat the bot can post in."""

    service_url: str
    conversation_id: str


class Unreachable(Exception):
    """The rep cannot be reached in Teams; `outcome` says whether to retry."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(getattr(outcome, "error", ""))
        self.outcome = outcome


def bot_connector(app: Flask) -> BotConnector:
    """The app's Bot Connector client; its token comes from the app's MSAL token provider."""
    connector: BotConnector | None = app.extensions.get(CONNECTOR_EXTENSION)
    if connector is None:
        client = graph_client(app)
        connector = BotConnector(requests.Session(), lambda: client.tokens.token(BOT_SCOPE))
        app.extensions[CONNECTOR_EXTENSION] = connector
    return connector


def open_chat(app: Flask, connector: BotConnector, rep_email: str) -> Chat:
    """The rep's chat with the bot: stored, created from what Teams told us, or installed."""
    settings: Settings = app.extensions[SETTINGS_EXTENSION]
    bot_id = settings.effective_bot_id or ""
    with get_store(app).session() as session:
        conversation = conversation_of(session, rep_email)
        rep = session.scalar(select(Rep).where(Rep.email == rep_email.lower()))
        if conversation is None:
            conversation = claim_installation(app, session, rep_email, rep)
        if conversation is not None and conversation.blocked_at is not None:
            raise Unreachable(Failed(f"{rep_email} blocked the bot: {conversation.blocked_reason}"))
        if conversation is not None and conversation.conversation_id and conversation.service_url:
            return Chat(conversation.service_url, conversation.conversation_id)
        known = (
            (conversation.service_url, conversation.teams_user_id, conversation.tenant_id)
            if conversation is not None and conversation.service_url
            else None
        )
        user = (rep.entra_id if rep is not None else None) or rep_email
        service_url = known_service_url(session)
    if known is not None:
        chat = Chat(known[0], _create(connector, known[0], bot_id, known[1], known[2]))
        _remember(app, rep_email, chat, teams_user_id=known[1])
        return chat
    return _install(app, connector, rep_email, user, service_url)


def claim_installation(
    app: Flask | None, session: Session, rep_email: str, rep: Rep | None
) -> TeamsConversation | None:
    """The chat of someone who installed the app before an admin mapped them as a rep: Teams
    told us their Entra object id but no rep had it. Found by the rep's Entra id, else (with
    `app`) by the id Graph gives for their e-mail; the row is then the rep's."""
    unclaimed = select(TeamsConversation).where(
        TeamsConversation.rep_email.is_(None), TeamsConversation.aad_object_id.is_not(None)
    )
    if session.scalar(unclaimed.limit(1)) is None:
        return None
    entra_id = rep.entra_id if rep is not None else None
    if not entra_id and app is not None:
        entra_id = _entra_id_of(app, rep_email)
    if not entra_id:
        return None
    row = session.scalar(
        unclaimed.where(TeamsConversation.aad_object_id == entra_id.lower()).limit(1)
    )
    if row is not None:
        row.rep_email = rep_email.lower()
        log.info("Teams: the chat installed before %s was mapped is theirs now", rep_email)
    return row


def _entra_id_of(app: Flask, email: str) -> str | None:
    try:
        return get_user(graph_client(app), email).id
    except (NotConfigured, GraphSyncError) as e:
        log.info("Teams: no Entra id for %s: %s", email, e)
        return None


def _create(
    connector: BotConnector, service_url: str, bot_id: str, user_id: str, tenant: str | None
) -> str:
    try:
        return connector.create_conversation(service_url, bot_id, user_id, tenant)
    except BotConnectorError as e:
        raise Unreachable(connector_outcome(e)) from e


def _install(app: Flask, connector: BotConnector, rep_email: str, user: str, url: str) -> Chat:
    """Install our app for the rep through Graph and post in its chat; else say why not."""
    settings: Settings = app.extensions[SETTINGS_EXTENSION]
    try:
        client = graph_client(app)
    except NotConfigured as e:
        raise Unreachable(RetryLater(e.detail)) from e
    try:
        catalog_id = _catalog_id(app, settings)
        installation = install_app_for_user(client, user, catalog_id)
        chat_id = get_installation_chat(client, user, installation)
    except (Forbidden, _NoCatalogApp) as e:
        raise Unreachable(_fallback(app, rep_email, user, f"cannot install the app: {e}")) from e
    except Throttled as e:
        after = dt.timedelta(seconds=e.retry_after) if e.retry_after else None
        raise Unreachable(RetryLater(str(e), after)) from e
    except GraphSyncError as e:
        raise Unreachable(RetryLater(f"installing the app failed: {e}")) from e
    chat = Chat(url, chat_id)
    _remember(app, rep_email, chat, teams_user_id=user)
    return chat


class _NoCatalogApp(Exception):
    """Our app is not in the org catalog (or the catalog cannot be read)."""


def _catalog_id(app: Flask, settings: Settings) -> str:
    if not settings.teams_app_id:
        raise _NoCatalogApp("DEALBRIDGE_TEAMS_APP_ID is not set")
    known: str | None = app.extensions.get("dealbridge.teams_catalog_id")
    if known:
        return known
    try:
        found = find_catalog_app(
            graph_client(app), settings.teams_app_id, permission=CATALOG_PERMISSION
        )
    except Forbidden as e:
        raise _NoCatalogApp(f"the org catalog cannot be read ({CATALOG_PERMISSION})") from e
    if found is None:
        raise _NoCatalogApp(f"app {settings.teams_app_id} is not in the org catalog")
    app.extensions["dealbridge.teams_catalog_id"] = found.id
    return found.id


def _fallback(app: Flask, rep_email: str, user: str, reason: str) -> Outcome:
    """Record why the rep has no chat; the caller may still notify through the feed."""
    with get_store(app).session() as session:
        conversation = conversation_of(session, rep_email)
        if conversation is None:
            conversation = TeamsConversation(
                rep_email=rep_email.lower(), teams_user_id=user, service_url=""
            )
            session.add(conversation)
        conversation.fallback_reason = reason[:2000]
    log.warning("Teams: no chat with %s: %s", rep_email, reason)
    return Failed(f"no Teams chat with {rep_email}: {reason}")


def _remember(app: Flask, rep_email: str, chat: Chat, *, teams_user_id: str) -> None:
    with get_store(app).session() as session:
        conversation = conversation_of(session, rep_email)
        if conversation is None:
            conversation = TeamsConversation(rep_email=rep_email.lower(), teams_user_id="")
            session.add(conversation)
        conversation.teams_user_id = conversation.teams_user_id or teams_user_id
        conversation.service_url = chat.service_url
        conversation.conversation_id = chat.conversation_id
        conversation.fallback_reason = None


def connector_outcome(error: BotConnectorError) -> Outcome:
    if error.transient:
        after = dt.timedelta(seconds=error.retry_after) if error.retry_after else None
        return RetryLater(f"Bot Connector: {error}", after)
    return Failed(f"Bot Connector: {error}")


def record_blocked(app: Flask, rep_email: str, reason: str, now: dt.datetime) -> None:
    """The rep blocked or removed the bot: stop posting until they talk to it again."""
    with get_store(app).session() as session:
        conversation = conversation_of(session, rep_email)
        if conversation is not None:
            conversation.blocked_at = now
            conversation.blocked_reason = reason[:2000]
