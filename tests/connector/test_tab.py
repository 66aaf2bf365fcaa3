"""The "My deals" tab over real HTTP: single sign-on tokens the sandbox's Teams side issues for
its simulated users (Entra's v2.0 shape, signed with the tenant's key), validated by DealBridge
against the tenant's OpenID metadata; the rep's own data only; the tab's buttons through the
same store calls and webhooks as the bot's."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import requests
from sqlalchemy import select

from connector.deals.reps import preference_of
from connector.store.db import get_store
from connector.store.models import Interaction, Reminder
from tests.connector.samples import deal_body
from tests.connector.test_bot_actions import _crm_events, _meeting
from tests.connector.test_bot_world import REP, TeamsWorld, teams_sandbox, world

__all__ = ["teams_sandbox", "world"]
BOB = "bob.ray@contoso.example"


def resource(world: TeamsWorld) -> str:
    return f"api://dealbridge.example.com/{world.sandbox.client_id}"


def app_url(world: TeamsWorld) -> str:
    return world.bot_url.removesuffix("/api/messages")


def sso_token(world: TeamsWorld, who: str = REP, **given: Any) -> str:
    body = {"resource": resource(world), **given}
    answer = world.control("POST", f"/teams/{who}/sso-token", body)
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["token"]
    return token


def tab(
    world: TeamsWorld, method: str, path: str, token: str, body: Any = None
) -> requests.Response:
    return world.http.request(
        method,
        f"{app_url(world)}/teams/tab{path}",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


def add_bob(world: TeamsWorld) -> None:
    user = world.control("POST", "/users", {"userPrincipalName": BOB, "displayName": "Bob Ray"})
    assert user.status_code == 201, user.text
    answer = world.client.put(
        f"/api/v1/reps/{BOB}",
        json={"display_name": "Bob Ray", "entra_id": user.json()["id"]},
        headers=world.auth,
    )
    assert answer.status_code in (200, 201), answer.json


def test_a_token_from_teams_for_our_resource_opens_the_reps_view(world: TeamsWorld) -> None:
    world.deal("OPP-1", title="Fabrikam ERP rollout")

    answer = tab(world, "GET", "/my-deals/view", sso_token(world))

    assert answer.status_code == 200, answer.text
    assert "Fabrikam ERP rollout" in answer.text
    assert (
        "frame-ancestors https://teams.microsoft.com" in answer.headers["Content-Security-Policy"]
    )


@pytest.mark.parametrize(
    ("case", "given"),
    [
        ("wrong audience", {"resource": "api://elsewhere.example.com/some-other-app"}),
        ("another tenant", {"tenant": "72f988bf-86f1-41af-91ab-2d7cd011db47"}),
        ("expired", {"lifetimeSeconds": -900}),
        ("bad signature", {"forged": True}),
        ("not for the tab", {"scope": "User.Read"}),
    ],
)
def test_a_bad_token_is_refused(world: TeamsWorld, case: str, given: dict[str, Any]) -> None:
    world.deal("OPP-1")

    answer = tab(world, "GET", "/my-deals/view", sso_token(world, **given))

    assert answer.status_code == 401, case
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert "OPP-1" not in answer.text


def test_no_token_or_a_tampered_one_is_refused(world: TeamsWorld) -> None:
    good = sso_token(world)
    header, payload, signature = good.split(".")
    tampered = ".".join(
        [header, payload[:-4] + ("AAAA" if payload[-4:] != "AAAA" else "BBBB"), signature]
    )

    assert world.http.get(f"{app_url(world)}/teams/tab/my-deals/view").status_code == 401
    assert tab(world, "GET", "/my-deals/view", tampered).status_code == 401
    assert tab(world, "GET", "/my-deals/view", "not-a-jwt").status_code == 401


def test_the_page_shows_the_reps_own_data_only(world: TeamsWorld) -> None:
    add_bob(world)
    world.deal("OPP-1", title="Ann's Fabrikam rollout", stage="negotiation")
    body = {"title": "Bob's Northwind renewal", "owner": BOB, "stage": "negotiation"}
    world.client.put("/api/v1/deals/OPP-2", json={**_deal(), **body}, headers=world.auth)
    bobs = _open_reminder(world, "OPP-2")

    ann = tab(world, "GET", "/my-deals/view", sso_token(world)).text
    bob = tab(world, "GET", "/my-deals/view", sso_token(world, BOB)).text
    done = tab(world, "POST", f"/api/reminders/{bobs}/done", sso_token(world), {})

    assert "Ann's Fabrikam rollout" in ann.replace("&#39;", "'")
    assert "Northwind" not in ann
    assert "Northwind" in bob
    assert "Fabrikam rollout" not in bob
    assert done.status_code == 404
    assert _reminder_status(world, bobs) == "open"


def test_done_and_snooze_from_the_tab_go_through_the_store_and_tell_the_crm(
    world: TeamsWorld,
) -> None:
    world.deal("OPP-1", stage="negotiation")
    first = _open_reminder(world, "OPP-1")
    token = sso_token(world)

    snoozed = tab(world, "POST", f"/api/reminders/{first}/snooze", token, {"snooze": "1d"})
    assert snoozed.status_code == 200, snoozed.text
    assert _reminder_status(world, first) == "snoozed"
    done = tab(world, "POST", f"/api/reminders/{first}/done", token, {})
    assert done.status_code == 200, done.text
    assert _reminder_status(world, first) == "done"

    events = [(e["type"], e["data"]["source"], e["data"]["by"]) for e in _crm_events(world)]
    assert events == [("reminder.snoozed", "tab", REP), ("reminder.completed", "tab", REP)]


def test_a_bad_snooze_is_a_problem_naming_the_field(world: TeamsWorld) -> None:
    world.deal("OPP-1", stage="negotiation")
    first = _open_reminder(world, "OPP-1")

    answer = tab(
        world, "POST", f"/api/reminders/{first}/snooze", sso_token(world), {"snooze": "9y"}
    )
    huge = tab(world, "POST", f"/api/reminders/{2**63}/done", sso_token(world), {})

    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == "snooze"
    assert huge.status_code == 404


def test_dont_log_and_undo_from_the_tab(world: TeamsWorld) -> None:
    world.deal("OPP-1")
    started = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    meeting = _meeting(world, status="held", on="OPP-1", ical_uid="uid-tab", mailboxes=[REP])
    with get_store(world.app).session() as session:
        row = session.get(Interaction, meeting)
        assert row is not None
        row.started_at = started
    token = sso_token(world)
    view = tab(world, "GET", "/my-deals/view", token).text
    assert "Pricing review" in view
    assert "Don't log this meeting" in view

    assert tab(world, "POST", f"/api/meetings/{meeting}/withdraw", token, {}).status_code == 200
    assert "Undo" in tab(world, "GET", "/my-deals/view", token).text
    assert tab(world, "POST", f"/api/meetings/{meeting}/undo", token, {}).status_code == 200

    with get_store(world.app).session() as session:
        assert str(session.get(Interaction, meeting).status) == "held"  # type: ignore[union-attr]
    sources = [(e["type"], e["data"]["source"]) for e in _crm_events(world)]
    assert sources == [("interaction.withdrawn", "tab"), ("interaction.restored", "tab")]


def test_settings_from_the_tab_and_the_paused_banner(world: TeamsWorld) -> None:
    token = sso_token(world)
    wanted = {"channels": "outlook", "quiet_start": "19:00", "quiet_end": "08:00", "pause": "1d"}

    saved = tab(world, "PUT", "/api/preferences", token, wanted)
    bad = tab(world, "PUT", "/api/preferences", token, {"quiet_start": "19:00"})

    assert saved.status_code == 200, saved.text
    assert saved.json()["channels"] == "outlook"
    assert bad.status_code == 422
    with get_store(world.app).session() as session:
        pref = preference_of(session, REP)
        assert pref is not None
        assert pref.capture_paused_until is not None
        assert (pref.quiet_start, pref.quiet_end) == ("19:00", "08:00")
    assert "Meeting capture is <b>paused until" in tab(world, "GET", "/my-deals/view", token).text


def _deal() -> dict[str, Any]:
    return deal_body()


def _open_reminder(world: TeamsWorld, crm_id: str) -> int:
    with get_store(world.app).session() as session:
        reminder = session.scalars(
            select(Reminder)
            .join(Reminder.deal)
            .where(Reminder.status == "open")
            .order_by(Reminder.due_at, Reminder.id)
        ).all()
        found = [r for r in reminder if r.deal.crm_id == crm_id]
        assert found, f"{crm_id} has no open reminder"
        found[0].due_at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
        return found[0].id


def _reminder_status(world: TeamsWorld, reminder_id: int) -> str:
    with get_store(world.app).session() as session:
        reminder = session.get(Reminder, reminder_id)
        assert reminder is not None
        return str(reminder.status)
