"""Teams cards for reps: the outbox handlers for kinds ``teams`` (reminders) and ``teams_card``
(meeting logged, pick a deal, after the meeting, digest, health): plan each card, then send or
update it. The views are ``connector.teams.views``; the chats, ``connector.teams.chats``.

A reminder's card is posted in the rep's 1:1 chat with the bot when it falls due, and updated
in place (PUT) when the reminder changes elsewhere (done from the API, cancelled because the
deal moved on). The chat comes from the bot's install activity (`connector.teams.bot`); a rep the
bot never heard from gets the app installed through Graph, or, when that is not permitted, an
activity-feed notice, and the reason is recorded on their ``TeamsConversation``. A rep who
blocked the bot (403 MessageWritesBlocked) is recorded and not retried.

Idempotent: the ``TeamsCard`` row (key ``reminder:<id>`` or ``<kind>:<interaction id>``) is
read before every POST, and an activity id is committed right after the POST that made it.

The Bot Connector has no idempotency key, so an answer lost after it may have posted (a
timeout, a reset, a 500/502/504) is recorded as :class:`~connector.outbox.Uncertain`, and so
is an item whose process died while posting it (each post is announced to the outbox first).
Before posting such a card again we look for it in the chat through Graph
(``GET /chats/{id}/messages``, application permission ``Chat.Read.All``): a bot message whose
card has the same ``refresh`` data (the card's key: its view, subject id and stamp) is the
card we posted, and its id is stored instead of posting again. Where the tenant does not grant
that permission (403) or the chat has no Graph id, we post again: a missed card is worse than
a duplicate. That possible duplicate is counted on the outbox item
(``result.unchecked_repeats``) and logged. See docs/reliability.md.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from flask import Flask
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from cards.models import (
    BriefView,
    CardView,
    PickDealView,
    ReminderView,
)
from cards.teams import BotConnector, BotConnectorError, card_activity
from connector.deals.reps import quiet_until
from connector.meetings.briefs import declined
from connector.microsoft365 import NotConfigured, graph_client
from connector.outbox import (
    Attempting,
    Delivered,
    Delivery,
    Failed,
    Outcome,
    RetryLater,
    Uncertain,
    enqueue,
    register_handler,
)
from connector.settings import SETTINGS_EXTENSION, Settings
from connector.signals import (
    LoggedMeeting,
    meeting_attended,
    meeting_brief_due,
    meeting_logged,
    meeting_needs_choice,
    reminders_changed,
    settings_of,
)
from connector.stage_reminders.replan import ACTIVE, ReminderDelivery
from connector.store.db import chunks, get_store
from connector.store.models import (
    Interaction,
    OutboxItem,
    Reminder,
    Rep,
    TeamsCard,
    utcnow,
)
from connector.teams.chats import (
    Chat,
    Unreachable,
    bot_connector,
    connector_outcome,
    may_get_cards,
    open_chat,
    record_blocked,
)
from connector.teams.views import (
    after_meeting_view,
    brief_view,
    digest_view,
    health_view,
    interaction_stamp,
    meeting_logged_view,
    pick_deal_view,
    reminder_view,
)
from graph_sync.errors import Forbidden, GraphSyncError, NotFound
from graph_sync.teams import (
    CHAT_READ,
    list_chat_messages,
    send_activity_notification,
)

log = logging.getLogger(__name__)
KIND = "teams"
CARD_KIND = "teams_card"
MeetingCard = str  # "meeting_logged" | "pick_deal" | "after_meeting"
MEETING_CARDS = ("meeting_logged", "pick_deal", "after_meeting")
FEED_ACTIVITY = {
    "reminder": "reminderDue",
    "pick_deal": "meetingNeedsChoice",
    "brief": "meetingBrief",
}
"""Activity types the manifest declares (manifest/template/manifest.json)."""
REMINDER_REFRESH = "reminder_refresh"
LOST_ANSWER = {0, 500, 502, 504}
"""Bot Connector failures of a POST that may come after it posted (0: timeout or reset)."""
LOOK_BACK = 2
"""Pages of the chat's newest messages (50 each) searched for a card whose answer was lost."""


# --- the outbox payloads ---------------------------------------------------------------------


class MeetingCardPayload(BaseModel):
    """A meeting card for one rep: logged, pick the deal, or after the meeting."""

    kind: Literal["meeting_logged", "pick_deal", "after_meeting"]
    interaction_id: int
    rep: str


class ReminderRefreshPayload(BaseModel):
    """Show a reminder's new state on the card already sent."""

    kind: Literal["reminder_refresh"]
    reminder_id: int
    version: int


class DailyCardPayload(BaseModel):
    """A rep's daily digest, or an admin's health card, of one day."""

    kind: Literal["digest", "health"]
    rep: str
    day: dt.date


class BriefPayload(BaseModel):
    """The brief before a customer meeting, for one rep and the start it was due for."""

    kind: Literal["brief"]
    interaction_id: int
    rep: str
    start: dt.datetime


CardPayload = Annotated[
    MeetingCardPayload | ReminderRefreshPayload | DailyCardPayload | BriefPayload,
    Field(discriminator="kind"),
]
"""The payload of kind ``teams_card``, told apart by ``kind``."""


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
    session: Session, payload: ReminderDelivery, settings: Settings, now: dt.datetime
) -> Planned | Outcome:
    reminder = session.get(Reminder, payload.reminder_id)
    if reminder is None:
        return Delivered({"skipped": "the reminder no longer exists"})
    if not reminder.rep_email:
        return Failed("the deal has no owner to remind")
    if reminder.status in ACTIVE and reminder.effective_due_at > now:
        return RetryLater("not due yet", reminder.effective_due_at - now)
    key = f"reminder:{reminder.id}"
    quiet = _quiet_until(session, reminder, settings, now)
    if quiet is not None and reminder.status in ACTIVE:
        return RetryLater("the rep's quiet hours", quiet - now)
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


def _quiet_until(
    session: Session, reminder: Reminder, settings: Settings, now: dt.datetime
) -> dt.datetime | None:
    """The end of the rep's quiet hours, when a new reminder card would come inside them."""
    rep = session.scalar(select(Rep).where(Rep.email == reminder.rep_email))
    if rep is None:
        return None
    # Only her zone is needed: not the whole working calendar, whose holidays may not load.
    zone = ZoneInfo(rep.time_zone or settings.default_time_zone)
    return quiet_until(session, rep, zone, now)


def _plan_meeting_card(
    session: Session, payload: CardPayload, settings: Settings
) -> Planned | Outcome:
    if isinstance(payload, ReminderRefreshPayload):
        return _plan_reminder_refresh(session, payload, settings)
    if isinstance(payload, DailyCardPayload):
        return _plan_daily_card(session, payload, settings)
    if isinstance(payload, BriefPayload):
        return _plan_brief(session, payload, settings)
    kind = payload.kind
    interaction = session.get(Interaction, payload.interaction_id)
    if interaction is None:
        return Delivered({"skipped": "the meeting no longer exists"})
    rep = payload.rep.lower() or None
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
    wanted = interaction.status not in ("cancelled", "withdrawn")  # refreshed, never sent anew
    return _plan(session, f"{kind}:{interaction.id}", rep, kind, view, stamp, wanted=wanted)


def _plan_brief(session: Session, payload: BriefPayload, settings: Settings) -> Planned | Outcome:
    """The brief, unless the meeting moved, was cancelled, or the rep declined it since."""
    interaction = session.get(Interaction, payload.interaction_id)
    if interaction is None or interaction.status != "scheduled":
        return Delivered({"skipped": "the meeting is no longer coming up"})
    if interaction.started_at != payload.start:
        return Delivered({"skipped": "the meeting moved: its brief moved with it"})
    if declined(interaction.details, payload.rep):
        return Delivered({"skipped": "the rep declined the meeting"})
    view = brief_view(session, interaction, settings, dt.datetime.now(dt.UTC))
    key = f"brief:{interaction.id}:{payload.rep}:{payload.start:%Y%m%dT%H%M}"
    return _plan(
        session, key, payload.rep, "brief", view, view.stamp if view else None, wanted=True
    )


def _plan_daily_card(
    session: Session, payload: DailyCardPayload, settings: Settings
) -> Planned | Outcome:
    """The daily digest of a rep, or the health card of an admin, as of now."""
    kind = payload.kind
    email = payload.rep.lower()
    day = payload.day.isoformat()
    now = dt.datetime.now(dt.UTC)
    view: CardView | None
    if kind == "digest":
        rep = session.scalar(select(Rep).where(Rep.email == email))
        if rep is None:
            return Delivered({"skipped": "not a rep any more"})
        view = digest_view(session, rep, settings, payload.day, now)
    else:
        view = health_view(session, settings, now)
        if view is None:
            return Delivered({"skipped": "all is well again"})
    return _plan(session, f"{kind}:{email}:{day}", email, kind, view, day, wanted=True)


def _plan_reminder_refresh(
    session: Session, payload: ReminderRefreshPayload, settings: Settings
) -> Planned | Outcome:
    """A reminder changed before its next delivery (snoozed from the API or Outlook): show
    its new state on the card already sent, now; a card never sent is left alone."""
    reminder = session.get(Reminder, payload.reminder_id)
    if reminder is None or not reminder.rep_email:
        return Delivered({"skipped": "no reminder or no rep"})
    view = reminder_view(session, reminder, settings, dt.datetime.now(dt.UTC))
    key = f"reminder:{reminder.id}"
    return _plan(session, key, reminder.rep_email, "reminder", view, view.stamp, wanted=False)


def queue_reminder_refresh(session: Session, reminders: Sequence[Reminder]) -> None:
    """Refresh the reminders' cards now (those sent: one lookup for them all); each ``teams``
    item keeps its time. A card posted between the lookup and this transaction's commit was
    made from the reminder as it was before: a meeting round looks once, after its re-plan,
    so that window is the rest of its transaction (one lookup per reminder during the re-plan
    left it longer)."""
    keys = {f"reminder:{reminder.id}": reminder for reminder in reminders}
    sent: set[str] = set()
    with session.no_autoflush:  # cards are written by their delivery, never in this session
        for part in chunks(list(keys)):
            sent.update(session.scalars(select(TeamsCard.key).where(TeamsCard.key.in_(part))))
    for key, reminder in keys.items():
        if key not in sent:
            continue
        payload = ReminderRefreshPayload(
            kind=REMINDER_REFRESH, reminder_id=reminder.id, version=reminder.version
        )
        enqueue(
            session,
            CARD_KIND,
            f"teams_card:{REMINDER_REFRESH}:{reminder.id}",
            payload,
            replace=True,
        )


def deliver_reminders(
    app: Flask, items: Sequence[Delivery[ReminderDelivery]]
) -> Iterator[tuple[int, Outcome | Attempting]]:
    """Outbox handler for ``teams``: each reminder's card, as the reminder is now."""
    return _deliver(app, items)


def deliver_cards(
    app: Flask, items: Sequence[Delivery[CardPayload]]
) -> Iterator[tuple[int, Outcome | Attempting]]:
    """Outbox handler for ``teams_card``: meeting logged, pick a deal, after the meeting."""
    return _deliver(app, items)


def _deliver(
    app: Flask, items: Sequence[Delivery[ReminderDelivery] | Delivery[CardPayload]]
) -> Iterator[tuple[int, Outcome | Attempting]]:
    settings: Settings = app.extensions[SETTINGS_EXTENSION]
    try:
        connector = bot_connector(app)
    except NotConfigured as e:
        yield from ((item.id, RetryLater(e.detail)) for item in items)
        return
    for item in items:
        now = utcnow()
        with get_store(app).session() as session:
            planned = (
                _plan_reminder(session, item.payload, settings, now)
                if isinstance(item.payload, ReminderDelivery)
                else _plan_meeting_card(session, item.payload, settings)
            )
        if not isinstance(planned, Planned):
            yield item.id, planned
            continue
        try:
            for step in apply_plan(app, connector, planned, now, uncertain=item.uncertain):
                yield item.id, step
        except Exception as e:  # one rep's failure must not stop the others' cards
            log.exception("Teams delivery of %s failed", planned.key)
            yield item.id, RetryLater(f"{type(e).__name__}: {e}")


def apply_plan(
    app: Flask,
    connector: BotConnector,
    planned: Planned,
    now: dt.datetime,
    *,
    uncertain: bool = False,
) -> Iterator[Outcome | Attempting]:
    """Send or update one card; store what was sent. Ends with the outcome; just before a
    POST, says it is attempting (a post cannot be repeated blindly). ``uncertain``: an earlier
    try may have posted it already: look for it in the chat before posting again."""
    if planned.action == "skip" or planned.view is None or planned.rep_email is None:
        yield Delivered({"skipped": planned.note})
        return
    if planned.action == "send" and not may_get_cards(app, planned.rep_email):
        yield Delivered(
            {"skipped": f"{planned.rep_email} is not an active rep (deactivated or deleted)"}
        )
        return
    activity = card_activity(planned.view)
    try:
        chat = open_chat(app, connector, planned.rep_email)
    except Unreachable as e:
        yield _notify_in_feed(app, planned, e.outcome) if planned.action == "send" else e.outcome
        return
    unchecked = False
    if planned.action == "send" and uncertain:
        try:
            looked = find_posted_card(app, chat, activity)
        except GraphSyncError as e:
            yield RetryLater(f"looking for a card that may have been posted: {e}")
            return
        if isinstance(looked, Found):
            store_card(
                app,
                planned.key,
                planned.rep_email,
                planned.kind,
                chat.conversation_id,
                looked.activity_id,
                planned.stamp,
            )
            yield Delivered({"activity": looked.activity_id, "action": "found"})
            return
        if isinstance(looked, CannotLook):  # post again, and count it: it may be a second card
            unchecked = True
            log.warning(
                "Teams card %s: an earlier post may have reached the chat and it cannot be "
                "checked (%s); posting again",
                planned.key,
                looked.reason,
            )
    try:
        if planned.action == "update" and planned.activity_id:
            conversation_id = planned.conversation_id or chat.conversation_id
            connector.update(chat.service_url, conversation_id, planned.activity_id, activity)
            activity_id = planned.activity_id
        else:
            conversation_id = chat.conversation_id
            yield Attempting(unchecked=unchecked)
            activity_id = connector.send(chat.service_url, conversation_id, activity)
    except BotConnectorError as e:
        if e.status == 403:
            record_blocked(app, planned.rep_email, str(e), now)
        if planned.action == "send" and e.status in LOST_ANSWER:
            after = dt.timedelta(seconds=e.retry_after) if e.retry_after else None
            yield Uncertain(f"Bot Connector: {e} (the card may have been posted)", after)
        else:
            yield connector_outcome(e)
        return
    store_card(
        app,
        planned.key,
        planned.rep_email,
        planned.kind,
        conversation_id,
        activity_id,
        planned.stamp,
    )
    yield Delivered({"activity": activity_id, "action": planned.action})


@dataclass(frozen=True)
class Found:
    """The card is in the chat already: the message's id (the activity id)."""

    activity_id: str


@dataclass(frozen=True)
class CannotLook:
    """The chat cannot be read (the permission is not granted, or no Graph chat id)."""

    reason: str


def find_posted_card(app: Flask, chat: Chat, activity: dict[str, Any]) -> Found | CannotLook | None:
    """Look for ``activity``'s card among the chat's newest bot messages, by its key (the
    card's ``refresh`` data, else the whole card). None: it is not there."""
    if not chat.conversation_id.startswith("19:"):
        return CannotLook("the chat has no Graph id")
    wanted = _card_key(activity)
    try:
        client = graph_client(app)
    except NotConfigured as e:
        return CannotLook(e.detail)
    try:
        messages = list_chat_messages(client, chat.conversation_id, pages=LOOK_BACK)
    except Forbidden as e:
        return CannotLook(f"the chat cannot be read ({CHAT_READ}): {e}")
    except NotFound:
        return None  # a chat with nothing in it yet
    for message in messages:
        if message.from_application is None:
            continue
        for attachment in message.attachments:
            if attachment.content_type != CARD_CONTENT_TYPE or not attachment.content:
                continue
            try:
                card = json.loads(attachment.content)
            except ValueError:
                continue
            if isinstance(card, dict) and _card_key_of(card) == wanted:
                return Found(message.id)
    return None


CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"


def _card_key(activity: dict[str, Any]) -> object:
    attachments = activity.get("attachments") or [{}]
    return _card_key_of(attachments[0].get("content") or {})


def _card_key_of(card: dict[str, Any]) -> object:
    refresh = card.get("refresh")
    if isinstance(refresh, dict) and isinstance(refresh.get("action"), dict):
        return refresh["action"].get("data")
    return card


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
    elif isinstance(view, BriefView):
        params = {"meetingSubject": view.meeting_subject[:100], "dealName": view.deal_title[:100]}
        web_url = view.crm_url
        accepted = ", ".join(view.accepted) or "nobody yet"
        preview = (
            f"{view.deal_title} · {view.stage_name}, {view.days_in_stage} days · "
            f"accepted: {accepted}"
        )
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
) -> OutboxItem | None:
    """Queue (or refresh) a meeting card for a rep; the key the meeting sync uses too (the
    item, or None inside ``outbox.batched``)."""
    if kind not in MEETING_CARDS:
        raise ValueError(f"unknown meeting card {kind!r}")
    payload = MeetingCardPayload(kind=kind, interaction_id=interaction_id, rep=rep_email)
    return enqueue(
        session, CARD_KIND, f"teams_card:{kind}:{interaction_id}:{rep_email}", payload, replace=True
    )


def on_reminders_changed(
    session: Session, *, reminders: Sequence[Reminder], now: dt.datetime
) -> None:
    """``reminders_changed``: show the new state on the cards already sent, if Teams is on."""
    if "teams" in settings_of(session).reminder_channels:
        queue_reminder_refresh(session, reminders)


def on_meeting_logged(session: Session, *, interaction: LoggedMeeting, reps: list[str]) -> None:
    """``meeting_logged``: a "meeting logged" card to each rep, if Teams is on."""
    if "teams" in settings_of(session).reminder_channels:
        for rep in reps:
            queue_meeting_card(session, "meeting_logged", interaction.id, rep)


def on_meeting_needs_choice(
    session: Session, *, interaction: LoggedMeeting, reps: list[str]
) -> None:
    """``meeting_needs_choice``: a "pick the deal" card to each rep, if Teams is on."""
    if "teams" in settings_of(session).reminder_channels:
        for rep in reps:
            queue_meeting_card(session, "pick_deal", interaction.id, rep)


def on_meeting_attended(
    session: Session, *, interaction: Interaction, result: str, reps: list[str]
) -> None:
    """``meeting_attended``: the after-the-meeting card with the attendance (the no-show card
    when nobody came), if Teams is on."""
    if "teams" in settings_of(session).reminder_channels and interaction.deal_id is not None:
        for rep in reps:
            queue_meeting_card(session, "after_meeting", interaction.id, rep)


def on_meeting_brief_due(
    session: Session, *, interaction: Interaction, rep: str, start: dt.datetime, due: dt.datetime
) -> None:
    """``meeting_brief_due``: the brief, once per occurrence and start, if Teams is on."""
    if "teams" not in settings_of(session).reminder_channels:
        return
    payload = BriefPayload(kind="brief", interaction_id=interaction.id, rep=rep, start=start)
    key = f"teams_card:brief:{interaction.id}:{rep}:{start.astimezone(dt.UTC):%Y%m%dT%H%M}"
    enqueue(session, CARD_KIND, key, payload, due=due)


def init_app(app: Flask) -> None:
    """Register the Teams outbox handlers and the signals that queue cards."""
    register_handler(app, KIND, deliver_reminders, payload=ReminderDelivery)
    register_handler(app, CARD_KIND, deliver_cards, payload=CardPayload)
    # once per process: blinker's connect is idempotent; each receiver reads its app's settings
    reminders_changed.connect(on_reminders_changed)
    meeting_logged.connect(on_meeting_logged)
    meeting_needs_choice.connect(on_meeting_needs_choice)
    meeting_attended.connect(on_meeting_attended)  # Teams attendance
    meeting_brief_due.connect(on_meeting_brief_due)  # the brief before a meeting
