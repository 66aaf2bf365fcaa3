"""The personal tab "My deals", served by DealBridge and framed by Teams.

``GET /teams/tab/my-deals`` is the page Teams frames (the manifest's ``staticTabs``
``contentUrl``; only Teams, and DEALBRIDGE_TAB_FRAME_ANCESTORS, may frame it). It holds no data:
its script (``/teams/tab/static/teams-tab.js``, ours, no CDN) asks Teams for the rep's SSO
token (``authentication.getAuthToken``) and sends it with every request below; each validates
it (``teams.sso``) and finds the rep by the token's ``oid`` (else its ``preferred_username``).

- ``GET /teams/tab/my-deals/view``: the rep's day, rendered here: today's reminders (done,
  snooze, open), deals by stage with days in stage, meetings logged this week and why they
  matched (Don't log / Undo), meetings waiting for a choice of deal, her settings.
- ``POST /teams/tab/api/reminders/{id}/done`` and ``.../snooze`` (``{"snooze": "1d"}``),
  ``POST /teams/tab/api/meetings/{id}/withdraw``, ``.../undo``, ``.../deal``
  (``{"deal": "OPP-1"}``), ``PUT /teams/tab/api/preferences``: the same store calls as the
  bot's card verbs and the REST API, with the same CRM webhooks (``source: tab``).

Only the rep's own reminders and meetings are shown or changed; another's answers 404.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any, Literal

from flask import Blueprint, Flask, Response, current_app, jsonify, render_template, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connector.crm import webhooks as crm_webhooks
from connector.crm.events import ReminderCompleted, ReminderSnoozed
from connector.errors import DealBridgeError, Forbidden, NotFound, Unauthorized
from connector.errors import from_validation_error as _invalid
from connector.headers import teams_tab
from connector.meetings.exclusions import can_undo, exclusion_of, may_control, undo, withdraw
from connector.meetings.interactions import choose_deal
from connector.settings import SETTINGS_EXTENSION, Settings
from connector.stage_reminders.replan import ACTIVE, complete, snooze, working_calendar
from connector.store.db import db_session
from connector.store.models import Deal, Interaction, Reminder, Rep, utcnow
from connector.store.types import InteractionKind, InteractionStatus
from connector.teams.preferences import PreferencesIn, apply_preferences, preferences_out
from connector.teams.sso import TabAuthError, TabAuthFailure, TabTokenValidator, tab_resource
from connector.teams.verbs import refresh_meeting_cards
from connector.teams.views import (
    crm_link,
    my_deals_view,
    my_reminders_view,
    pick_deal_view,
)
from reminders.worktime import SnoozeOption, snooze_until

log = logging.getLogger(__name__)
SOURCE = "tab"
VALIDATOR = "dealbridge.tab_sso"
MAX_ID = 2**31 - 1
LOGGED = (InteractionStatus.HELD, InteractionStatus.SCHEDULED, InteractionStatus.WITHDRAWN)

tab = Blueprint(
    "teams_tab",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/teams/tab/static",
)


class KeysUnavailable(DealBridgeError):
    status, title, slug = 503, "Sign-in keys unavailable", "keys-unavailable"


# --- who is asking ---------------------------------------------------------------------------


def _validator(app: Flask) -> TabTokenValidator:
    found: TabTokenValidator | None = app.extensions.get(VALIDATOR)
    if found is None:
        found = TabTokenValidator.for_settings(app.extensions[SETTINGS_EXTENSION])
        app.extensions[VALIDATOR] = found
    return found


def _settings() -> Settings:
    settings: Settings = current_app.extensions[SETTINGS_EXTENSION]
    return settings


def signed_in_rep(session: Session) -> Rep:
    """The rep the request's Teams SSO token is for; Unauthorized otherwise."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        user = _validator(app).validate(request.headers.get("Authorization"))
    except TabAuthError as e:
        if e.reason is TabAuthFailure.KEYS_UNAVAILABLE:
            log.error("tab sign-in refused: Entra signing keys unavailable")
            raise KeysUnavailable("Entra's signing keys could not be fetched; try again") from e
        log.info("tab sign-in refused: %s", e.reason.value)
        raise Unauthorized("the Teams sign-in token was refused", reason=e.reason.value) from e
    rep = session.scalar(select(Rep).where(func.lower(Rep.entra_id) == user.oid))
    if rep is None and user.username:
        rep = session.scalar(select(Rep).where(func.lower(Rep.email) == user.username))
    if rep is None or not rep.active:
        raise Forbidden("DealBridge does not know you as a rep; ask your admin to add you")
    return rep


# --- the page and its view -------------------------------------------------------------------


@tab.get("/teams/tab/my-deals")
@teams_tab
def page() -> str:
    """The page Teams frames; the data comes with the SSO token (``view``)."""
    return render_template("tab/page.html", resource=tab_resource(_settings()) or "")


@tab.get("/teams/tab/my-deals/view")
@teams_tab
def view() -> str:
    session = db_session()
    rep = signed_in_rep(session)
    return render_template("tab/view.html", **tab_view(session, rep, _settings(), utcnow()))


def tab_view(session: Session, rep: Rep, settings: Settings, now: dt.datetime) -> dict[str, Any]:
    """Everything the tab shows the rep, from the store (her own only)."""
    zone = working_calendar(rep, settings).zone
    local = now.astimezone(zone)
    day_end = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(), zone)
    week_start = dt.datetime.combine(
        local.date() - dt.timedelta(days=local.weekday()), dt.time(), zone
    )
    reminders = [
        line
        for line in my_reminders_view(session, rep, settings, now).reminders
        if line.due_at < day_end
    ]
    return {
        "rep": rep,
        "zone": zone,
        "now": now,
        "today": local.date(),
        "reminders": reminders,
        "deals": my_deals_view(session, rep, settings, now),
        "meetings": _meetings_this_week(session, rep, settings, week_start, now),
        "waiting": _waiting(session, rep),
        "preferences": preferences_out(session, rep, settings, now),
        "local": lambda moment: moment.astimezone(zone).strftime("%a %d %b %H:%M"),
    }


def _meetings_this_week(
    session: Session, rep: Rep, settings: Settings, start: dt.datetime, now: dt.datetime
) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(Interaction)
        .where(
            Interaction.kind == InteractionKind.MEETING,
            Interaction.status.in_(LOGGED),
            Interaction.started_at >= start.astimezone(dt.UTC),
            Interaction.started_at < (start + dt.timedelta(days=7)).astimezone(dt.UTC),
        )
        .order_by(Interaction.started_at, Interaction.id)
        .limit(500)
    )
    found = []
    for interaction in rows:
        if not may_control(interaction, rep.email, session):
            continue
        deal = session.get(Deal, interaction.deal_id) if interaction.deal_id else None
        if deal is None:
            continue
        details = interaction.details
        exclusion = exclusion_of(session, interaction)
        found.append(
            {
                "id": interaction.id,
                "subject": interaction.subject or "(no subject)",
                "start": interaction.started_at,
                "deal": deal.title,
                "crm_url": crm_link(deal, settings),
                "why": (details.explanation if details else None) or "Matched by DealBridge",
                "address": interaction.matched_address,
                "withdrawn": interaction.status == InteractionStatus.WITHDRAWN,
                "can_undo": can_undo(exclusion, rep.email, now),
                "undo_until": exclusion.undo_until if exclusion else None,
            }
        )
    return found[:50]


def _waiting(session: Session, rep: Rep) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(Interaction)
        .where(Interaction.status == InteractionStatus.NEEDS_CHOICE)
        .order_by(Interaction.started_at.desc(), Interaction.id.desc())
        .limit(500)
    )
    found = []
    for interaction in rows:
        if interaction.details is None or rep.email not in interaction.details.mailboxes:
            continue
        picked = pick_deal_view(session, interaction, rep.email, asking=True)
        found.append(
            {
                "id": interaction.id,
                "subject": picked.meeting_subject,
                "start": picked.meeting_start,
                "candidates": picked.candidates,
            }
        )
    return found[:20]


# --- what the rep can do ---------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SnoozeIn(_Body):
    snooze: SnoozeOption


class DealIn(_Body):
    deal: str = Field(min_length=1, max_length=128)


class Done(_Body):
    ok: Literal[True] = True


def _body(model: type[BaseModel]) -> Any:
    data = request.get_json(silent=True)
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as e:
        raise _invalid(e, "body") from e


def _own_reminder(session: Session, rep: Rep, reminder_id: int) -> Reminder:
    reminder = session.get(Reminder, reminder_id) if reminder_id <= MAX_ID else None
    if reminder is None or reminder.rep_email != rep.email:
        raise NotFound(f"no reminder {reminder_id} of yours", reminder=reminder_id)
    return reminder


def _own_meeting(session: Session, rep: Rep, interaction_id: int) -> Interaction:
    interaction = session.get(Interaction, interaction_id) if interaction_id <= MAX_ID else None
    if interaction is None or not may_control(interaction, rep.email, session):
        raise NotFound(f"no meeting {interaction_id} of yours", interaction=interaction_id)
    return interaction


def _reminder_event(reminder: Reminder, rep: Rep) -> dict[str, Any]:
    return {
        "reminder": reminder.id,
        "deal": reminder.deal.crm_id,
        "rule": reminder.rule_id,
        "stage": reminder.stage_key,
        "by": rep.email,
        "source": SOURCE,
    }


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _ok() -> tuple[Response, int]:
    db_session().commit()
    return jsonify(Done().model_dump()), 200


@tab.post("/teams/tab/api/reminders/<int:reminder_id>/done")
def reminder_done(reminder_id: int) -> tuple[Response, int]:
    session, settings, now = db_session(), _settings(), utcnow()
    rep = signed_in_rep(session)
    reminder = _own_reminder(session, rep, reminder_id)
    if reminder.status in ACTIVE:
        complete(session, reminder, rep.email, settings, now)
        event = ReminderCompleted(**_reminder_event(reminder, rep))
        key = f"tab:reminder.completed:{reminder.id}"
        crm_webhooks.notify(session, settings, event, key=key, now=now)
    return _ok()


@tab.post("/teams/tab/api/reminders/<int:reminder_id>/snooze")
def reminder_snooze(reminder_id: int) -> tuple[Response, int]:
    session, settings, now = db_session(), _settings(), utcnow()
    rep = signed_in_rep(session)
    wanted: SnoozeIn = _body(SnoozeIn)
    reminder = _own_reminder(session, rep, reminder_id)
    if reminder.status in ACTIVE:
        until = snooze_until(working_calendar(rep, settings), now, wanted.snooze)
        snooze(session, reminder, until, settings, now)
        event = ReminderSnoozed(**_reminder_event(reminder, rep), until=_iso(until))
        key = f"tab:reminder.snoozed:{reminder.id}:{reminder.version}"
        crm_webhooks.notify(session, settings, event, key=key, now=now)
    return _ok()


@tab.post("/teams/tab/api/meetings/<int:interaction_id>/withdraw")
def meeting_withdraw(interaction_id: int) -> tuple[Response, int]:
    return _change_meeting(interaction_id, withdraw)


@tab.post("/teams/tab/api/meetings/<int:interaction_id>/undo")
def meeting_undo(interaction_id: int) -> tuple[Response, int]:
    return _change_meeting(interaction_id, undo)


def _change_meeting(interaction_id: int, change: Callable[..., object]) -> tuple[Response, int]:
    """Withdraw or undo (`change`) the signed-in rep's meeting; its cards show it."""
    session, settings, now = db_session(), _settings(), utcnow()
    rep = signed_in_rep(session)
    interaction = _own_meeting(session, rep, interaction_id)
    change(session, interaction, rep.email, settings, now, source=SOURCE)
    _refresh_cards(session, interaction)
    return _ok()


@tab.post("/teams/tab/api/meetings/<int:interaction_id>/deal")
def meeting_deal(interaction_id: int) -> tuple[Response, int]:
    session, now = db_session(), utcnow()
    rep = signed_in_rep(session)
    wanted: DealIn = _body(DealIn)
    interaction = _own_meeting(session, rep, interaction_id)
    offered = pick_deal_view(session, interaction, rep.email, asking=True).candidates
    if wanted.deal not in {c.deal_id for c in offered}:
        raise NotFound(f"no deal {wanted.deal!r} offered for this meeting", deal=wanted.deal)
    choose_deal(session, interaction.id, wanted.deal, by=rep.email, now=now)
    return _ok()


@tab.put("/teams/tab/api/preferences")
def put_preferences() -> tuple[Response, int]:
    session, settings, now = db_session(), _settings(), utcnow()
    rep = signed_in_rep(session)
    wanted: PreferencesIn = _body(PreferencesIn)
    apply_preferences(session, rep, wanted, now)
    shown = preferences_out(session, rep, settings, now)
    session.commit()
    return jsonify(shown.model_dump(mode="json")), 200


def _refresh_cards(session: Session, interaction: Interaction) -> None:
    """The meeting's Teams cards (hers too: she acted in the tab) show the change."""
    refresh_meeting_cards(session, interaction, but="")


def init_app(app: Flask) -> None:
    """Serve the "My deals" tab (no API key: Teams' SSO token is checked instead)."""
    app.register_blueprint(tab)
