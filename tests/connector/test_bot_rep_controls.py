"""The rep's own controls on the "meeting logged" card, pressed by the sandbox's simulated rep
(a signed invoke to our bot over HTTP): Don't log this meeting, Undo, and `settings`."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from connector.deals.reps import preference_of
from connector.store.db import get_store
from connector.store.models import Interaction, MeetingExclusion, OutboxItem
from tests.connector.test_bot_actions import (
    _answered_card,
    _button,
    _crm_events,
    _meeting,
    _meeting_card,
    _texts,
)
from tests.connector.test_bot_world import REP, TeamsWorld, teams_sandbox, world

__all__ = ["teams_sandbox", "world"]


def _status(world: TeamsWorld, interaction_id: int) -> str:
    with get_store(world.app).session() as session:
        interaction = session.get(Interaction, interaction_id)
        assert interaction is not None
        return str(interaction.status)


def _logged_card(world: TeamsWorld) -> tuple[int, str, dict[str, object]]:
    world.install()
    world.deal("OPP-1")
    meeting = _meeting(world, status="held", on="OPP-1", ical_uid="uid-pricing", mailboxes=[REP])
    activity_id, card = _meeting_card(world, "meeting_logged", meeting)
    return meeting, activity_id, card


def test_dont_log_withdraws_the_meeting_tells_the_crm_and_offers_undo(world: TeamsWorld) -> None:
    meeting, activity_id, card = _logged_card(world)

    answer = world.press(activity_id, "withdraw_meeting", _button(card, "withdraw_meeting"))

    shown = _answered_card(answer)
    assert "Meeting not logged" in _texts(shown)
    assert _button(shown, "undo_withdraw")
    assert _status(world, meeting) == "withdrawn"
    with get_store(world.app).session() as session:
        [exclusion] = session.scalars(select(MeetingExclusion)).all()
        assert (exclusion.series_key, exclusion.rep_email) == ("uid-pricing", REP)
    [event] = _crm_events(world)
    assert event["type"] == "interaction.withdrawn"
    assert event["data"]["interaction"] == meeting
    assert (event["data"]["deal"], event["data"]["by"]) == ("OPP-1", REP)
    assert event["data"]["source"] == "teams"


def test_undo_brings_the_meeting_back_and_tells_the_crm(world: TeamsWorld) -> None:
    meeting, activity_id, card = _logged_card(world)
    withdrawn = _answered_card(
        world.press(activity_id, "withdraw_meeting", _button(card, "withdraw_meeting"))
    )

    answer = world.press(activity_id, "undo_withdraw", _button(withdrawn, "undo_withdraw"))

    shown = _answered_card(answer)
    assert "Meeting logged" in _texts(shown)
    assert _button(shown, "withdraw_meeting")
    assert _status(world, meeting) == "held"
    types = [e["type"] for e in _crm_events(world)]
    assert types == ["interaction.withdrawn", "interaction.restored"]


def test_undo_after_its_day_is_an_error_teams_shows(world: TeamsWorld) -> None:
    meeting, activity_id, card = _logged_card(world)
    withdrawn = _answered_card(
        world.press(activity_id, "withdraw_meeting", _button(card, "withdraw_meeting"))
    )
    with get_store(world.app).session() as session:
        exclusion = session.scalars(select(MeetingExclusion)).one()
        exclusion.undo_until = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)

    answer = world.press(activity_id, "undo_withdraw", _button(withdrawn, "undo_withdraw"))

    assert answer["body"]["statusCode"] == 409
    assert "for a day" in answer["body"]["value"]["message"]
    assert _status(world, meeting) == "withdrawn"


def test_pressing_dont_log_twice_changes_nothing_more(world: TeamsWorld) -> None:
    _, activity_id, card = _logged_card(world)
    data = _button(card, "withdraw_meeting")
    world.press(activity_id, "withdraw_meeting", data)
    again = world.press(activity_id, "withdraw_meeting", data)

    assert "Meeting not logged" in _texts(_answered_card(again))
    assert [e["type"] for e in _crm_events(world)] == ["interaction.withdrawn"]


def test_settings_shows_and_changes_the_reps_preferences(world: TeamsWorld) -> None:
    world.install()
    world.say("settings channels teams")
    world.say("settings quiet 20:00-07:30")
    world.say("settings digest 08:15")
    world.say("settings pause 2d")

    with get_store(world.app).session() as session:
        pref = preference_of(session, REP)
        assert pref is not None
        assert (pref.channels, pref.quiet_start, pref.quiet_end) == ("teams", "20:00", "07:30")
        assert (pref.digest_time, pref.daily_digest) == ("08:15", True)
        assert pref.capture_paused_until is not None
    world.say("settings")
    last = world.chat()[-1]
    text = last.get("text") or _texts(last["attachments"][0]["content"])
    assert "paused until" in text.lower()
    assert "Teams only" in text


def test_a_bad_settings_value_says_what_is_wrong_and_changes_nothing(world: TeamsWorld) -> None:
    world.install()
    world.say("settings quiet 25:00-07:00")

    last = world.chat()[-1]
    assert "HH:MM" in (last.get("text") or "")
    with get_store(world.app).session() as session:
        assert preference_of(session, REP) is None


def test_no_new_reminder_card_comes_in_quiet_hours(world: TeamsWorld) -> None:
    world.install()
    now = dt.datetime.now(dt.UTC)  # the rep's time zone is UTC
    start, end = now - dt.timedelta(hours=1), now + dt.timedelta(hours=2)
    world.say(f"settings quiet {start:%H:%M}-{end:%H:%M}")
    world.deal(stage="negotiation")
    reminder_id = world.due_reminder()
    before = len(world.chat())

    world.drain()

    assert len(world.chat()) == before
    with get_store(world.app).session() as session:
        item = session.scalar(select(OutboxItem).where(OutboxItem.idempotency_key.like("teams:%")))
        assert item is not None
        assert item.status == "pending"
        assert item.next_attempt_at > dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
    assert reminder_id


def test_a_rep_who_chose_outlook_gets_no_teams_reminder_card(world: TeamsWorld) -> None:
    world.app.extensions["dealbridge.settings"].reminder_channels = ["calendar", "teams"]
    world.install()
    world.say("settings channels outlook")

    world.deal(stage="negotiation")

    with get_store(world.app).session() as session:
        kinds = set(session.scalars(select(OutboxItem.kind).where(OutboxItem.kind != "webhook")))
    assert "calendar" in kinds
    assert "teams" not in kinds
