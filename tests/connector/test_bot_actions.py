"""Every card button, pressed by the sandbox's simulated rep (a signed invoke to our bot over
HTTP), applied through the store, answered with the refreshed card, told to the CRM."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import select

from connector.crm.webhooks import verify
from connector.store.db import get_store
from connector.store.models import Deal, Interaction, Reminder
from connector.store.types import MeetingDetails
from connector.teams.delivery import queue_meeting_card
from tests.connector.test_bot_world import REP, WEBHOOK_SECRET, TeamsWorld, teams_sandbox, world

__all__ = ["teams_sandbox", "world"]
CARD = "application/vnd.microsoft.card.adaptive"


def _buttons(card: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(card, dict):
        if card.get("type") == "Action.Execute":
            found.append(card)
        for value in card.values():
            found.extend(_buttons(value))
    elif isinstance(card, list):
        for value in card:
            found.extend(_buttons(value))
    return found


def _button(card: dict[str, Any], verb: str, **match: str) -> dict[str, Any]:
    for button in _buttons(card.get("body", [])) + _buttons(card.get("actions", [])):
        data = button.get("data", {})
        if button["verb"] == verb and all(data.get(k) == v for k, v in match.items()):
            return dict(data)
    raise AssertionError(f"no {verb} button {match} on the card")


def _texts(card: Any) -> str:
    if isinstance(card, dict):
        own = card.get("text") if isinstance(card.get("text"), str) else ""
        return " ".join([own, *(_texts(v) for v in card.values())])
    if isinstance(card, list):
        return " ".join(_texts(v) for v in card)
    return ""


def _reminder_card(world: TeamsWorld) -> tuple[str, dict[str, Any], int]:
    world.install()
    world.deal(stage="negotiation")
    reminder_id = world.due_reminder()
    world.drain()
    sent = world.chat()[-1]
    return sent["id"], sent["attachments"][0]["content"], reminder_id


def _reminder(world: TeamsWorld, reminder_id: int) -> Reminder:
    with get_store(world.app).session() as session:
        reminder = session.get(Reminder, reminder_id)
        assert reminder is not None
        session.expunge(reminder)
        return reminder


def _answered_card(answer: dict[str, Any]) -> dict[str, Any]:
    assert answer["status"] == 200
    assert answer["body"]["statusCode"] == 200, answer["body"]
    assert answer["body"]["type"] == CARD
    card: dict[str, Any] = answer["body"]["value"]
    return card


def _crm_events(world: TeamsWorld) -> list[dict[str, Any]]:
    world.drain()
    events = []
    for received in world.crm.received:
        signature = received.headers.get("X-Dealbridge-Signature", "")
        assert verify(WEBHOOK_SECRET, received.body, signature)
        events.append(json.loads(received.body))
    return events


def test_done_marks_the_reminder_done_and_tells_the_crm(world: TeamsWorld) -> None:
    activity_id, card, reminder_id = _reminder_card(world)

    answer = world.press(activity_id, "done", _button(card, "done"))

    assert "Done by ann.lee@contoso.example" in _texts(_answered_card(answer))
    assert _reminder(world, reminder_id).status == "done"
    [event] = _crm_events(world)
    assert (event["type"], event["data"]["reminder"]) == ("reminder.completed", reminder_id)


def test_snooze_puts_it_off_to_the_next_working_day(world: TeamsWorld) -> None:
    activity_id, card, reminder_id = _reminder_card(world)

    answer = world.press(activity_id, "snooze", _button(card, "snooze", snooze="1d"))

    assert "Snoozed until" in _texts(_answered_card(answer))
    reminder = _reminder(world, reminder_id)
    assert reminder.status == "snoozed"
    assert reminder.snoozed_until is not None
    # The rep works in UTC: "1d" is a later working day, whatever the hour of the run.
    assert reminder.snoozed_until.date() > dt.datetime.now(dt.UTC).date()
    assert reminder.snoozed_until.isoweekday() <= 5
    assert [e["type"] for e in _crm_events(world)] == ["reminder.snoozed"]


def test_advance_moves_the_deal_and_the_old_reminder_gives_way(world: TeamsWorld) -> None:
    activity_id, card, reminder_id = _reminder_card(world)

    answer = world.press(
        activity_id, "advance", _button(card, "advance"), inputs={"stage": "deal_closing"}
    )

    assert "No longer needed: Moved to" in _texts(_answered_card(answer))
    deal = world.client.get("/api/v1/deals/OPP-1", headers=world.auth).json
    assert deal["stage"] == "deal_closing"
    assert _reminder(world, reminder_id).status == "cancelled"
    [event] = _crm_events(world)
    assert event["type"] == "deal.stage_changed"
    assert (event["data"]["from"], event["data"]["to"]) == ("negotiation", "deal_closing")


def test_a_note_is_logged_on_the_deal(world: TeamsWorld) -> None:
    activity_id, card, reminder_id = _reminder_card(world)

    answer = world.press(
        activity_id, "note", _button(card, "note"), inputs={"note": "Dana wants a 3-year term"}
    )

    _answered_card(answer)
    # "Gone quiet" waits for a meeting, call or email with the customer: a note is not one
    assert _reminder(world, reminder_id).status == "open"
    notes = world.client.get("/api/v1/deals/OPP-1/interactions", headers=world.auth).json
    assert [(i["kind"], i["text"]) for i in notes["items"]] == [
        ("note", "Dana wants a 3-year term")
    ]
    assert [e["type"] for e in _crm_events(world)] == ["note.logged"]


def test_a_stale_card_answers_with_the_current_state(world: TeamsWorld) -> None:
    activity_id, card, reminder_id = _reminder_card(world)
    world.client.post("/api/v1/deals/OPP-1/stage", json={"stage": "won"}, headers=world.auth)

    answer = world.press(activity_id, "done", _button(card, "done"))

    assert "No longer needed: The deal was won" in _texts(_answered_card(answer))
    assert _reminder(world, reminder_id).status == "cancelled"


def test_a_bad_verb_or_bad_data_is_an_error_teams_shows(world: TeamsWorld) -> None:
    activity_id, _, _ = _reminder_card(world)

    unknown = world.press(activity_id, "launch_rockets", {"view": "reminder"})
    broken = world.press(activity_id, "done", {"view": "reminder", "reminderId": "abc"})
    missing = world.press(activity_id, "done", {"view": "reminder", "reminderId": "999999"})

    for answer in (unknown, broken, missing):
        assert answer["status"] == 200
        assert answer["body"]["type"] == "application/vnd.microsoft.error"
    assert missing["body"]["statusCode"] == 404


def test_an_action_submit_from_an_old_client_updates_the_card_in_place(world: TeamsWorld) -> None:
    activity_id, card, reminder_id = _reminder_card(world)

    world.press(activity_id, "done", _button(card, "done"), submit=True)

    assert _reminder(world, reminder_id).status == "done"
    [sent] = [a for a in world.chat() if a["id"] == activity_id]
    assert sent["versions"] == 2
    assert "Done by" in _texts(sent["attachments"][0]["content"])


def test_refresh_shows_a_change_made_elsewhere(world: TeamsWorld) -> None:
    activity_id, card, reminder_id = _reminder_card(world)
    world.client.post(f"/api/v1/reminders/{reminder_id}/done", json={}, headers=world.auth)

    answer = world.press(activity_id, "refresh", card["refresh"]["action"]["data"])

    assert "Done by key:test-write" in _texts(_answered_card(answer))


def _meeting(world: TeamsWorld, *, status: str, on: str | None, **details: Any) -> int:
    with get_store(world.app).session() as session:
        deal = session.scalar(select(Deal).where(Deal.crm_id == on)) if on else None
        start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
        interaction = Interaction(
            deal_id=deal.id if deal else None,
            kind="meeting",
            source="graph",
            external_key=f"meeting:{status}:{on}",
            status=status,
            subject="Pricing review",
            started_at=start,
            ended_at=start + dt.timedelta(hours=1),
            match_rule="domain" if deal else None,
            matched_address="dana.ruiz@fabrikam.com",
            details=MeetingDetails.model_validate(details),
        )
        session.add(interaction)
        session.flush()
        return interaction.id


def _meeting_card(world: TeamsWorld, kind: str, interaction_id: int) -> tuple[str, dict[str, Any]]:
    with get_store(world.app).session() as session:
        queue_meeting_card(session, kind, interaction_id, REP)
    world.drain()
    sent = world.chat()[-1]
    return sent["id"], sent["attachments"][0]["content"]


def _interaction(world: TeamsWorld, interaction_id: int) -> tuple[str | None, MeetingDetails]:
    with get_store(world.app).session() as session:
        interaction = session.get(Interaction, interaction_id)
        assert interaction is not None
        deal = session.get(Deal, interaction.deal_id) if interaction.deal_id else None
        assert interaction.details is not None
        return (deal.crm_id if deal else None), interaction.details


def test_pick_deal_settles_a_meeting_that_needed_a_choice(world: TeamsWorld) -> None:
    world.install()
    world.deal("OPP-1")
    world.deal("OPP-2", title="Fabrikam support renewal")
    candidates = [{"deal": "OPP-1", "rule": "domain"}, {"deal": "OPP-2", "rule": "domain"}]
    meeting = _meeting(world, status="needs_choice", on=None, candidates=candidates)
    activity_id, card = _meeting_card(world, "pick_deal", meeting)

    answer = world.press(activity_id, "pick_deal", _button(card, "pick_deal", dealId="OPP-2"))

    assert "Fabrikam support renewal" in _texts(_answered_card(answer))
    deal, details = _interaction(world, meeting)
    assert (deal, details.chosen_by) == ("OPP-2", REP)
    assert details.explanation == (
        f"{REP} chose deal OPP-2 (DealBridge had asked: OPP-1, OPP-2 were equally good)"
    )
    assert [e["type"] for e in _crm_events(world)] == ["interaction.updated"]


def test_wrong_deal_offers_my_other_deals(world: TeamsWorld) -> None:
    world.install()
    world.deal("OPP-1")
    world.deal("OPP-2", title="Fabrikam support renewal")
    meeting = _meeting(world, status="held", on="OPP-1")
    activity_id, card = _meeting_card(world, "meeting_logged", meeting)

    answer = world.press(activity_id, "wrong_deal", _button(card, "wrong_deal"))

    offered = _answered_card(answer)
    assert _button(offered, "pick_deal", dealId="OPP-2")
    assert _interaction(world, meeting)[0] == "OPP-1"


def test_the_meeting_outcome_is_recorded_with_a_note_and_the_next_stage(world: TeamsWorld) -> None:
    world.install()
    world.deal("OPP-1", stage="negotiation")
    meeting = _meeting(world, status="held", on="OPP-1")
    activity_id, card = _meeting_card(world, "after_meeting", meeting)

    answer = world.press(
        activity_id,
        "meeting_outcome",
        _button(card, "meeting_outcome"),
        inputs={"outcome": "progressing", "note": "They accept the price", "stage": "deal_closing"},
    )

    assert "Recorded by ann.lee@contoso.example" in _texts(_answered_card(answer))
    deal = world.client.get("/api/v1/deals/OPP-1", headers=world.auth).json
    assert deal["stage"] == "deal_closing"
    outcome = _interaction(world, meeting)[1].outcome
    assert outcome is not None
    assert outcome.outcome == "progressing"
    assert sorted(e["type"] for e in _crm_events(world)) == [
        "deal.stage_changed",
        "interaction.updated",
        "note.logged",
    ]


def test_a_note_from_the_recap_card_does_not_bring_the_recap_back(world: TeamsWorld) -> None:
    """A note is the rep's own words, not the customer's reply: "Send the recap" (an
    after_interaction rule) answers meetings, calls and emails, so the note that says it was
    sent neither cancels the reminder nor plans the same one again."""
    world.install()
    world.deal(stage="first_interaction")
    call = {"kind": "call", "subject": "Discovery call with Dana"}  # just now, in the stage
    answer = world.client.post("/api/v1/deals/OPP-1/interactions", json=call, headers=world.auth)
    assert answer.status_code == 201, answer.json
    reminder_id = world.due_reminder()
    recap = _reminder(world, reminder_id)
    assert recap.title.startswith("Send the recap")
    world.drain()
    sent = world.chat()[-1]
    card = sent["attachments"][0]["content"]

    answer = world.press(sent["id"], "note", _button(card, "note"), inputs={"note": "recap sent"})

    _answered_card(answer)
    assert _reminder(world, reminder_id).status == "open"  # still there, until they press Done
    listed = world.client.get("/api/v1/deals/OPP-1/reminders", headers=world.auth).json
    recaps = [r for r in listed["items"] if r["rule"] == "recap"]
    assert [(r["id"], r["status"]) for r in recaps] == [(reminder_id, "open")]
    notes = world.client.get("/api/v1/deals/OPP-1/interactions", headers=world.auth).json
    assert sorted(i["kind"] for i in notes["items"]) == ["call", "note"]
