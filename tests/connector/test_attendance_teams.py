"""Teams side of attendance and briefs, over the sandbox's Graph and Bot Connector: the no-show
card and its answers, the after-the-meeting card with the attendance, the brief before a
meeting (once per occurrence, moved with the meeting, none when declined)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import requests
from sqlalchemy import select

from connector.meetings.attendance import check_due
from connector.meetings.briefs import briefs_due
from connector.meetings.sync import sync_mailbox
from connector.microsoft365 import graph_client
from connector.store.db import get_store
from connector.store.models import Deal, Interaction, OutboxItem, Reminder
from tests.connector.conftest import meeting, recurrence
from tests.connector.test_bot_world import REP, TeamsWorld, teams_sandbox, world

__all__ = ["teams_sandbox", "world"]
DANA = "dana.ruiz@fabrikam.com"
NOW = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
START = NOW - dt.timedelta(hours=2)


def _event(world: TeamsWorld, organizer: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = world.control("POST", f"/users/{organizer}/events", body)
    assert answer.status_code == 201, answer.text
    event: dict[str, Any] = answer.json()
    return event


def _sync(world: TeamsWorld, who: str = REP) -> None:
    report = sync_mailbox(world.app, who)
    assert report.error is None, report.error


def _graph(world: TeamsWorld, method: str, path: str, body: Any = None) -> None:
    token = graph_client(world.app).tokens.token()
    requests.request(
        method,
        f"{world.sandbox.base_url}/v1.0{path}",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ).raise_for_status()


def _attended_meeting(world: TeamsWorld, *joined: tuple[str, int]) -> int:
    world.install()
    world.deal("OPP-1")
    event = _event(world, REP, meeting("Pricing review", START, [DANA], isOnlineMeeting=True))
    answer = world.control(
        "POST",
        "/attendance",
        {
            "joinUrl": event["onlineMeeting"]["joinUrl"],
            "start": START.isoformat(),
            "end": (START + dt.timedelta(minutes=30)).isoformat(),
            "joined": [{"email": who, "minutes": minutes} for who, minutes in joined],
            "readyAfterMinutes": 0,
        },
    )
    assert answer.status_code == 201, answer.text
    _sync(world)
    [(interaction_id, _)] = check_due(world.app)
    world.drain()
    return interaction_id


def _card_with(world: TeamsWorld, text: str) -> tuple[str, dict[str, Any]]:
    for sent in reversed(world.chat()):
        for attachment in sent.get("attachments") or []:
            if text in json.dumps(attachment.get("content")):
                return sent["id"], attachment["content"]
    raise AssertionError(f"no card with {text!r} in {[s.get('summary') for s in world.chat()]}")


def _button(card: dict[str, Any], verb: str, **want: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            data = node.get("data")
            wanted = isinstance(data, dict) and all(data.get(k) == v for k, v in want.items())
            if node.get("verb") == verb and wanted:
                found.append(data)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(card)
    assert found, f"no {verb} button with {want}"
    return found[0]


def _interaction(world: TeamsWorld, interaction_id: int) -> Interaction:
    with get_store(world.app).session() as session:
        found = session.get(Interaction, interaction_id)
        assert found is not None
        session.expunge(found)
        return found


def _hooks(world: TeamsWorld) -> list[dict[str, Any]]:
    world.drain()
    return [json.loads(r.body) for r in world.crm.received]


def test_a_no_show_gets_the_no_show_card_and_reschedule_puts_a_reminder_on_the_deal(
    world: TeamsWorld,
) -> None:
    interaction_id = _attended_meeting(world, (REP, 10))
    activity_id, card = _card_with(world, "Nobody from the customer joined")
    assert "waited" in json.dumps(card)

    answer = world.press(
        activity_id, "no_show", _button(card, "no_show", decision="reschedule"), submit=False
    )

    assert "A reminder to reschedule is on the deal" in json.dumps(answer)
    assert _interaction(world, interaction_id).status == "no_show"
    with get_store(world.app).session() as session:
        reminder = session.scalar(
            select(Reminder).where(Reminder.key == f"by_hand:reschedule:{interaction_id}")
        )
        assert reminder is not None
        assert reminder.status == "open"
        assert reminder.title.startswith("Reschedule “Pricing review”")
    updates = [
        h["data"]["attendance"]
        for h in _hooks(world)
        if h["type"] == "interaction.updated" and h["data"].get("change") == "attendance"
    ]
    assert [u["result"] for u in updates] == ["no_show", "no_show"]
    assert updates[1]["decided_by"]


def test_held_anyway_makes_it_held_and_moves_the_deals_clock(world: TeamsWorld) -> None:
    interaction_id = _attended_meeting(world, (REP, 10))
    activity_id, card = _card_with(world, "Nobody from the customer joined")

    answer = world.press(activity_id, "no_show", _button(card, "no_show", decision="held"))

    assert "How did the meeting go?" in json.dumps(answer)
    assert _interaction(world, interaction_id).status == "held"
    with get_store(world.app).session() as session:
        deal = session.scalar(select(Deal).where(Deal.crm_id == "OPP-1"))
        assert deal is not None
        assert deal.last_interaction_at == START


def test_a_held_meeting_gets_the_after_meeting_card_with_who_came(world: TeamsWorld) -> None:
    _attended_meeting(world, (REP, 30), (DANA, 25))

    _, card = _card_with(world, "How did the meeting go?")

    assert "Held (Teams attendance, 30 min)" in json.dumps(card)  # first join to last leave
    assert f"{DANA} (25 min)" in json.dumps(card)


def _brief_cards(world: TeamsWorld) -> list[dict[str, Any]]:
    return [s for s in world.chat() if (s.get("summary") or "").startswith("Before “")]


def test_the_brief_comes_once_before_the_meeting_naming_the_deal_and_who_accepted(
    world: TeamsWorld,
) -> None:
    world.install()
    world.deal("OPP-1", stage="negotiation")
    soon = NOW + dt.timedelta(minutes=10)
    _event(world, REP, meeting("Pricing review", soon, [DANA], isOnlineMeeting=True))
    _sync(world)

    assert len(briefs_due(world.app)) == 1
    briefs_due(world.app)  # the next minute's run: the same brief, not a second one
    world.drain()

    [brief] = _brief_cards(world)
    text = json.dumps(brief)
    assert "Before your meeting" in text
    assert "Fabrikam ERP rollout" in text
    assert "Negotiation" in text
    with get_store(world.app).session() as session:
        keys = session.scalars(
            select(OutboxItem.idempotency_key).where(
                OutboxItem.idempotency_key.like("teams_card:brief:%")
            )
        ).all()
    assert len(keys) == 1


def test_no_brief_for_a_meeting_that_is_still_far_off_or_cancelled(world: TeamsWorld) -> None:
    world.install()
    world.deal("OPP-1")
    _event(world, REP, meeting("Later", NOW + dt.timedelta(hours=3), [DANA]))
    cancelled = _event(world, REP, meeting("Cancelled", NOW + dt.timedelta(minutes=5), [DANA]))
    _graph(world, "POST", f"/users/{REP}/events/{cancelled['id']}/cancel", {"comment": "no"})
    _sync(world)

    assert briefs_due(world.app) == []


def test_a_declined_meeting_gets_no_brief(world: TeamsWorld) -> None:
    world.install()
    world.deal("OPP-1")
    world.control(
        "POST", "/users", {"userPrincipalName": "bo@contoso.example", "displayName": "Bo"}
    )
    _event(
        world,
        "bo@contoso.example",
        meeting("Bo's pricing call", NOW + dt.timedelta(minutes=10), [DANA, REP]),
    )
    [copy] = [
        e
        for e in world.control("GET", f"/users/{REP}/events").json()["value"]
        if e["subject"] == "Bo's pricing call"
    ]
    _graph(world, "POST", f"/users/{REP}/events/{copy['id']}/decline", {"sendResponse": True})
    _sync(world, "bo@contoso.example")
    with get_store(world.app).session() as session:
        [logged] = session.scalars(select(Interaction)).all()
        assert logged.status == "scheduled"

    assert briefs_due(world.app) == []


def test_a_moved_meeting_moves_its_brief(world: TeamsWorld) -> None:
    world.install()
    world.deal("OPP-1")
    soon = NOW + dt.timedelta(minutes=10)
    event = _event(world, REP, meeting("Pricing review", soon, [DANA]))
    _sync(world)
    assert len(briefs_due(world.app)) == 1  # queued for 10 minutes from now
    moved = soon + dt.timedelta(minutes=3)
    _graph(
        world,
        "PATCH",
        f"/users/{REP}/events/{event['id']}",
        {
            "start": {"dateTime": moved.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
            "end": {
                "dateTime": (moved + dt.timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%S"),
                "timeZone": "UTC",
            },
        },
    )
    _sync(world)
    assert len(briefs_due(world.app)) == 1  # one for the new time

    world.drain()

    [brief] = _brief_cards(world)  # the one for the old time found the meeting moved
    assert moved.strftime("%Y-%m-%dT%H:%M") in json.dumps(brief)
    with get_store(world.app).session() as session:
        results = [
            item.result
            for item in session.scalars(
                select(OutboxItem).where(OutboxItem.idempotency_key.like("teams_card:brief:%"))
            )
        ]
    assert {"skipped": "the meeting moved: its brief moved with it"} in results


def test_each_occurrence_of_a_series_gets_its_own_brief(world: TeamsWorld) -> None:
    world.install()
    world.deal("OPP-1")
    first = NOW + dt.timedelta(minutes=10)
    body = meeting(
        "Daily stand-up with Fabrikam", first, [DANA], recurrence=recurrence(first, 3, daily=True)
    )
    _event(world, REP, body)
    _sync(world)

    [(first_id, _)] = briefs_due(world.app)
    tomorrow = first + dt.timedelta(days=1) - dt.timedelta(minutes=5)
    [(second_id, _)] = briefs_due(world.app, now=tomorrow)

    assert first_id != second_id


def test_a_reps_own_brief_time_wins_and_zero_turns_briefs_off(world: TeamsWorld) -> None:
    world.install()
    world.deal("OPP-1")
    _event(world, REP, meeting("Pricing review", NOW + dt.timedelta(minutes=10), [DANA]))
    _sync(world)

    answer = world.client.put(f"/api/v1/reps/{REP}", json={"brief_minutes": 5}, headers=world.auth)
    assert answer.status_code == 200, answer.json
    assert answer.json["brief_minutes"] == 5
    assert briefs_due(world.app) == []  # ten minutes away, five wanted
    assert len(briefs_due(world.app, now=NOW + dt.timedelta(minutes=6))) == 1

    world.client.put(f"/api/v1/reps/{REP}", json={"brief_minutes": 0}, headers=world.auth)
    assert briefs_due(world.app, now=NOW + dt.timedelta(minutes=9)) == []
    bad = world.client.put(f"/api/v1/reps/{REP}", json={"brief_minutes": -1}, headers=world.auth)
    assert bad.status_code == 422
    assert "brief_minutes" in json.dumps(bad.json)
