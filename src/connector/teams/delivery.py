"""Teams cards for reps: the outbox handlers for kinds ``teams`` (reminders) and ``teams_card``
(meeting logged, pick a deal, after the meeting), and the card views built from the store.

A reminder's card is posted in the rep's 1:1 chat with the bot when it falls due, and updated
in place (PUT) when the reminder changes elsewhere (done from the API, cancelled because the
deal moved on). The chat comes from the bot's install activity (`connector.teams.bot`); a rep the
bot never heard from gets the app installed through Graph, or, when that is not permitted, an
activity-feed notice, and the reason is recorded on their ``TeamsConversation``. A rep who
blocked the bot (403 MessageWritesBlocked) is recorded and not retried.

Idempotent: the ``TeamsCard`` row (key ``reminder:<id>`` or ``<kind>:<interaction id>``) is
read before every POST, and an activity id is committed right after the POST that made it.
Residual risk: a crash between the Connector's answer and that commit (milliseconds) makes the
retry post a second card; the Bot Connector has no idempotency key and Teams no way to list a
chat's activities for the bot, so this cannot be closed from our side. A missed card would be
worse than a duplicate.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from cards.models import (
    AfterMeetingView,
    CardView,
    DealCandidate,
    DealLine,
    LastInteraction,
    MatchReason,
    MeetingCancelled,
    MeetingLoggedAutomatically,
    MeetingLoggedByChoice,
    MeetingLoggedView,
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
    StageDeals,
)
from cards.models import Stage as CardStage
from cards.teams import BOT_SCOPE, BotConnector, BotConnectorError, card_activity
from connector.microsoft365 import NotConfigured, graph_client
from connector.outbox import Delivered, Failed, Outcome, RetryLater, enqueue, register_handler
from connector.settings import SETTINGS_EXTENSION, Settings
from connector.stage_reminders.replan import ACTIVE
from connector.store.db import get_store
from connector.store.models import (
    Deal,
    Interaction,
    OutboxItem,
    Pipeline,
    Reminder,
    Rep,
    TeamsCard,
    TeamsConversation,
    utcnow,
)
from graph_sync.catalog import find_catalog_app
from graph_sync.errors import Forbidden, GraphSyncError, Throttled
from graph_sync.teams import (
    get_installation_chat,
    install_app_for_user,
    send_activity_notification,
)

log = logging.getLogger(__name__)
KIND = "teams"
CARD_KIND = "teams_card"
CONNECTOR_EXTENSION = "dealbridge.bot_connector"
DEFAULT_SERVICE_URL = "https://smba.trafficmanager.net/teams/"
"""Teams' global Bot Connector; used only until Teams tells us a rep's own serviceUrl."""
CATALOG_PERMISSION = "AppCatalog.Read.All"
MeetingCard = str  # "meeting_logged" | "pick_deal" | "after_meeting"
MEETING_CARDS = ("meeting_logged", "pick_deal", "after_meeting")
FEED_ACTIVITY = {"reminder": "reminderDue", "pick_deal": "meetingNeedsChoice"}
"""Activity types the manifest declares (manifest/template/manifest.json)."""


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
    details = interaction.details or {}
    parts = (
        interaction.deal_id,
        interaction.status,
        interaction.match_rule,
        details.get("chosen_at"),
        str(details.get("outcome")),
    )
    return "i" + hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def meeting_logged_view(
    session: Session, interaction: Interaction, settings: Settings
) -> MeetingLoggedView | None:
    """The meeting-logged card; None when the meeting is on no deal."""
    deal = session.get(Deal, interaction.deal_id) if interaction.deal_id else None
    if deal is None:
        return None
    details = interaction.details or {}
    state: MeetingLoggedAutomatically | MeetingLoggedByChoice | MeetingCancelled
    state = MeetingLoggedAutomatically()
    if interaction.status == "cancelled":
        state = MeetingCancelled()
    elif interaction.match_rule == "chosen":
        state = MeetingLoggedByChoice(
            by=str(details.get("chosen_by") or "someone"),
            at=_parsed(details.get("chosen_at")) or interaction.updated_at,
        )
    rule = str(details.get("explanation") or _rule_words(interaction.match_rule))
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
    details = interaction.details or {}
    current = session.get(Deal, interaction.deal_id) if interaction.deal_id else None
    candidates: list[DealCandidate] = []
    seen: set[str] = set()
    for stored in details.get("candidates") or []:
        if not isinstance(stored, dict):
            continue
        deal = session.scalar(select(Deal).where(Deal.crm_id == str(stored.get("deal"))))
        if deal is None or deal.crm_id in seen:
            continue
        seen.add(deal.crm_id)
        why = stored.get("address") or stored.get("rule") or "a possible match"
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
            by=str(details.get("chosen_by") or "someone"),
            at=_parsed(details.get("chosen_at")) or interaction.updated_at,
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
    details = interaction.details or {}
    recorded = details.get("outcome")
    state: OutcomeAsked | OutcomeRecorded | OutcomeNotNeeded = OutcomeAsked()
    if isinstance(recorded, dict) and recorded.get("outcome"):
        state = OutcomeRecorded(
            outcome=recorded["outcome"],
            note=recorded.get("note"),
            stage_name=recorded.get("stage_name"),
            by=str(recorded.get("by") or "someone"),
            at=_parsed(recorded.get("at")) or interaction.updated_at,
        )
    elif deal.status != "open":
        state = OutcomeNotNeeded(reason=f"The deal was {deal.status}")
    elif interaction.status == "cancelled":
        state = OutcomeNotNeeded(reason="The meeting was cancelled")
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
            overdue=reminder.effective_due_at < now,
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


# --- where a rep is reached ------------------------------------------------------------------


def conversation_of(session: Session, rep_email: str) -> TeamsConversation | None:
    """The rep's Teams conversation row, if the bot or a delivery ever made one."""
    return session.scalar(
        select(TeamsConversation)
        .where(TeamsConversation.rep_email == rep_email.lower())
        .order_by(TeamsConversation.updated_at.desc(), TeamsConversation.id.desc())
        .limit(1)
    )


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


def _create(
    connector: BotConnector, service_url: str, bot_id: str, user_id: str, tenant: str | None
) -> str:
    try:
        return connector.create_conversation(service_url, bot_id, user_id, tenant)
    except BotConnectorError as e:
        raise Unreachable(_connector_outcome(e)) from e


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


def _connector_outcome(error: BotConnectorError) -> Outcome:
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


# --- delivering one card ---------------------------------------------------------------------


@dataclass(frozen=True)
class Planned:
    """What to do for one card: send it, update it, or nothing."""

    action: str
    """`send`, `update` or `skip`."""
    key: str
    rep_email: str | None
    kind: str
    view: CardView | None
    stamp: str | None
    activity_id: str | None = None
    conversation_id: str | None = None
    note: str = ""


def _plan(
    session: Session,
    key: str,
    rep: str | None,
    kind: str,
    view: CardView | None,
    stamp: str | None,
    *,
    wanted: bool,
) -> Planned:
    card = session.scalar(select(TeamsCard).where(TeamsCard.key == key))
    if view is None:
        return Planned("skip", key, rep, kind, None, None, note="nothing to show")
    if card is None or card.activity_id is None:
        if not wanted:
            return Planned(
                "skip", key, rep, kind, view, stamp, note="never sent; nothing to change"
            )
        return Planned("send", key, rep, kind, view, stamp)
    if card.stamp == stamp:
        return Planned("skip", key, rep, kind, view, stamp, note="the card is current")
    return Planned("update", key, rep, kind, view, stamp, card.activity_id, card.conversation_id)


def _plan_reminder(
    session: Session, payload: dict[str, Any], settings: Settings, now: dt.datetime
) -> Planned | Outcome:
    reminder = session.get(Reminder, int(payload.get("reminder_id") or 0))
    if reminder is None:
        return Delivered({"skipped": "the reminder no longer exists"})
    if not reminder.rep_email:
        return Failed("the deal has no owner to remind")
    if reminder.status in ACTIVE and reminder.effective_due_at > now:
        return RetryLater("not due yet", reminder.effective_due_at - now)
    key = f"reminder:{reminder.id}"
    view = reminder_view(session, reminder, settings, now)
    active = reminder.status in ACTIVE
    planned = _plan(session, key, reminder.rep_email, "reminder", view, view.stamp, wanted=active)
    card = session.scalar(select(TeamsCard).where(TeamsCard.key == key))
    resurfaced = (
        reminder.status == "snoozed"
        and reminder.snoozed_until is not None
        and card is not None
        and card.activity_id is not None
        and card.updated_at < reminder.snoozed_until <= now
    )
    if resurfaced:
        # The snooze is over: a new card, so the rep is reminded again (the old one stays).
        return Planned("send", key, reminder.rep_email, "reminder", view, view.stamp)
    return planned


def _plan_meeting_card(
    session: Session, payload: dict[str, Any], settings: Settings
) -> Planned | Outcome:
    kind = str(payload.get("kind") or "")
    if kind == REMINDER_REFRESH:
        return _plan_reminder_refresh(session, payload, settings)
    if kind in ("digest", "health"):
        return _plan_daily_card(session, kind, payload, settings)
    if kind not in MEETING_CARDS:
        return Failed(f"unknown card kind {kind!r}")
    interaction = session.get(Interaction, int(payload.get("interaction_id") or 0))
    if interaction is None:
        return Delivered({"skipped": "the meeting no longer exists"})
    rep = str(payload.get("rep") or "").lower() or None
    if rep is None:
        return Failed("no rep to show the card to")
    view: CardView | None
    if kind == "meeting_logged":
        view = meeting_logged_view(session, interaction, settings)
    elif kind == "pick_deal":
        view = pick_deal_view(session, interaction, rep, asking=False)
    else:
        view = after_meeting_view(session, interaction, settings)
    stamp = interaction_stamp(interaction)
    wanted = interaction.status != "cancelled"
    return _plan(session, f"{kind}:{interaction.id}", rep, kind, view, stamp, wanted=wanted)


REMINDER_REFRESH = "reminder_refresh"


def _plan_daily_card(
    session: Session, kind: str, payload: dict[str, Any], settings: Settings
) -> Planned | Outcome:
    """The daily digest of a rep, or the health card of an admin, as of now."""
    from connector.teams.digests import digest_view, health_view

    email = str(payload.get("rep") or "").lower()
    day = str(payload.get("day") or "")
    now = dt.datetime.now(dt.UTC)
    view: CardView | None
    if kind == "digest":
        rep = session.scalar(select(Rep).where(Rep.email == email))
        if rep is None:
            return Delivered({"skipped": "not a rep any more"})
        view = digest_view(session, rep, settings, dt.date.fromisoformat(day), now)
    else:
        view = health_view(session, settings, now)
        if view is None:
            return Delivered({"skipped": "all is well again"})
    return _plan(session, f"{kind}:{email}:{day}", email, kind, view, day, wanted=True)


def _plan_reminder_refresh(
    session: Session, payload: dict[str, Any], settings: Settings
) -> Planned | Outcome:
    """A reminder changed before its next delivery (snoozed from the API or Outlook): show
    its new state on the card already sent, now; a card never sent is left alone."""
    reminder = session.get(Reminder, int(payload.get("reminder_id") or 0))
    if reminder is None or not reminder.rep_email:
        return Delivered({"skipped": "no reminder or no rep"})
    view = reminder_view(session, reminder, settings, dt.datetime.now(dt.UTC))
    key = f"reminder:{reminder.id}"
    return _plan(session, key, reminder.rep_email, "reminder", view, view.stamp, wanted=False)


def queue_reminder_refresh(session: Session, reminder: Reminder) -> None:
    """Refresh the reminder's card now (if one was sent); the ``teams`` item keeps its time."""
    sent = session.scalar(select(TeamsCard.id).where(TeamsCard.key == f"reminder:{reminder.id}"))
    if sent is None:
        return
    payload = {"kind": REMINDER_REFRESH, "reminder_id": reminder.id, "version": reminder.version}
    enqueue(
        session, CARD_KIND, f"teams_card:{REMINDER_REFRESH}:{reminder.id}", payload, replace=True
    )


def deliver_reminders(app: Flask, items: Sequence[OutboxItem]) -> dict[int, Outcome]:
    """Outbox handler for ``teams``: each reminder's card, as the reminder is now."""
    return _deliver(app, items, reminder=True)


def deliver_cards(app: Flask, items: Sequence[OutboxItem]) -> dict[int, Outcome]:
    """Outbox handler for ``teams_card``: meeting logged, pick a deal, after the meeting."""
    return _deliver(app, items, reminder=False)


def _deliver(app: Flask, items: Sequence[OutboxItem], *, reminder: bool) -> dict[int, Outcome]:
    settings: Settings = app.extensions[SETTINGS_EXTENSION]
    try:
        connector = bot_connector(app)
    except NotConfigured as e:
        return {item.id: RetryLater(e.detail) for item in items}
    outcomes: dict[int, Outcome] = {}
    for item in items:
        now = utcnow()
        with get_store(app).session() as session:
            planned = (
                _plan_reminder(session, item.payload, settings, now)
                if reminder
                else _plan_meeting_card(session, item.payload, settings)
            )
        if not isinstance(planned, Planned):
            outcomes[item.id] = planned
            continue
        try:
            outcomes[item.id] = apply_plan(app, connector, planned, now)
        except Exception as e:  # one rep's failure must not stop the others' cards
            log.exception("Teams delivery of %s failed", planned.key)
            outcomes[item.id] = RetryLater(f"{type(e).__name__}: {e}")
    return outcomes


def apply_plan(app: Flask, connector: BotConnector, planned: Planned, now: dt.datetime) -> Outcome:
    """Send or update one card; store what was sent."""
    if planned.action == "skip" or planned.view is None or planned.rep_email is None:
        return Delivered({"skipped": planned.note})
    activity = card_activity(planned.view)
    try:
        chat = open_chat(app, connector, planned.rep_email)
    except Unreachable as e:
        if planned.action == "send":
            return _notify_in_feed(app, planned, e.outcome)
        return e.outcome
    try:
        if planned.action == "update" and planned.activity_id:
            conversation_id = planned.conversation_id or chat.conversation_id
            connector.update(chat.service_url, conversation_id, planned.activity_id, activity)
            activity_id = planned.activity_id
        else:
            conversation_id = chat.conversation_id
            activity_id = connector.send(chat.service_url, conversation_id, activity)
    except BotConnectorError as e:
        if e.status == 403:
            record_blocked(app, planned.rep_email, str(e), now)
        return _connector_outcome(e)
    store_card(
        app,
        planned.key,
        planned.rep_email,
        planned.kind,
        conversation_id,
        activity_id,
        planned.stamp,
    )
    return Delivered({"activity": activity_id, "action": planned.action})


def store_card(
    app: Flask,
    key: str,
    rep_email: str | None,
    kind: str,
    conversation_id: str | None,
    activity_id: str,
    stamp: str | None,
) -> None:
    """Remember a card sent (or replaced), right after the Connector answered."""
    with get_store(app).session() as session:
        update_card_row(session, key, rep_email, kind, conversation_id, activity_id, stamp)


def update_card_row(
    session: Session,
    key: str,
    rep_email: str | None,
    kind: str,
    conversation_id: str | None,
    activity_id: str,
    stamp: str | None,
) -> TeamsCard:
    """Upsert the TeamsCard row of a card."""
    card = session.scalar(select(TeamsCard).where(TeamsCard.key == key))
    if card is None:
        card = TeamsCard(key=key, rep_email=rep_email, kind=kind)
        session.add(card)
    card.conversation_id = conversation_id
    card.activity_id = activity_id
    card.stamp = stamp
    card.updated_at = utcnow()
    return card


def _notify_in_feed(app: Flask, planned: Planned, why: Outcome) -> Outcome:
    """No chat: a Teams activity-feed notice instead, when the manifest declares one."""
    feed_type = FEED_ACTIVITY.get(planned.kind)
    if not isinstance(why, Failed) or feed_type is None or planned.view is None:
        return why
    rep_email = planned.rep_email or ""
    with get_store(app).session() as session:
        rep = session.scalar(select(Rep).where(Rep.email == rep_email))
        user = (rep.entra_id if rep is not None else None) or rep_email
    view = planned.view
    params: dict[str, str] = {}
    web_url = "https://teams.microsoft.com"
    if isinstance(view, ReminderView):
        params = {"reminderTitle": view.rule_title[:100], "dealName": view.deal_title[:100]}
        web_url = view.crm_url
        preview = f"{view.rule_title} · {view.deal_title}"
    elif isinstance(view, PickDealView):
        params = {"meetingSubject": view.meeting_subject[:100]}
        preview = f"Which deal was “{view.meeting_subject}” about?"
    else:
        return why
    try:
        client = graph_client(app)
        send_activity_notification(client, user, feed_type, preview[:150], web_url, params)
    except GraphSyncError as e:
        return Failed(f"{why.error}; the activity feed refused too: {e}")
    return Delivered({"feed": feed_type, "reason": why.error})


# --- queueing meeting cards ------------------------------------------------------------------


def queue_meeting_card(
    session: Session, kind: MeetingCard, interaction_id: int, rep_email: str
) -> OutboxItem:
    """Queue (or refresh) a meeting card for a rep; the key the meeting sync uses too."""
    if kind not in MEETING_CARDS:
        raise ValueError(f"unknown meeting card {kind!r}")
    payload = {"kind": kind, "interaction_id": interaction_id, "rep": rep_email}
    return enqueue(
        session, CARD_KIND, f"teams_card:{kind}:{interaction_id}:{rep_email}", payload, replace=True
    )


def init_app(app: Flask) -> None:
    """Register the Teams outbox handlers."""
    register_handler(app, KIND, deliver_reminders)
    register_handler(app, CARD_KIND, deliver_cards)
