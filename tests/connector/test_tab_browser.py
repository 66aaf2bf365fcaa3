"""The "My deals" tab in a real browser (Debian's Chromium through Playwright): the sandbox's
Teams page frames the tab as Teams does and answers its getAuthToken; the rep presses the
buttons. ``DEALBRIDGE_UPDATE_SCREENSHOTS=1`` writes the screenshots docs/teams.md shows."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select

from connector.settings import SETTINGS_EXTENSION
from connector.store.db import get_store
from connector.store.models import Deal, Interaction, Reminder
from tests.browser import browser
from tests.connector.test_bot_actions import _meeting
from tests.connector.test_bot_world import REP, TeamsWorld, teams_sandbox, world
from tests.connector.test_tab import app_url, resource

__all__ = ["browser", "teams_sandbox", "world"]
DOCS = Path(__file__).resolve().parents[2] / "docs"


def _shot(page: Any, name: str, tmp_path: Path) -> None:
    page.screenshot(path=str(tmp_path / name), full_page=True)
    if os.environ.get("DEALBRIDGE_UPDATE_SCREENSHOTS") == "1":
        page.screenshot(path=str(DOCS / name), full_page=True)


def _arrange(world: TeamsWorld) -> tuple[int, int]:
    world.app.extensions[SETTINGS_EXTENSION].tab_frame_ancestors = [world.sandbox.base_url]
    world.deal("OPP-1", title="Fabrikam ERP rollout", stage="negotiation")
    world.deal(
        "OPP-2", title="Fabrikam support renewal", stage="solution_presentation", amount="12000.00"
    )
    now = dt.datetime.now(dt.UTC)
    with get_store(world.app).session() as session:
        reminder = session.scalars(
            select(Reminder).where(Reminder.status == "open").order_by(Reminder.due_at)
        ).first()
        assert reminder is not None
        reminder.due_at = now - dt.timedelta(minutes=30)
        reminder_id = reminder.id
    why = "An attendee is a contact of the deal: dana.ruiz@fabrikam.com"
    meeting = _meeting(
        world, status="held", on="OPP-1", ical_uid="uid-review", mailboxes=[REP], explanation=why
    )
    candidates = [{"deal": "OPP-1", "rule": "domain"}, {"deal": "OPP-2", "rule": "domain"}]
    waiting = _meeting(
        world, status="needs_choice", on=None, candidates=candidates, mailboxes=[REP]
    )
    with get_store(world.app).session() as session:
        for row in session.scalars(select(Interaction)):
            row.started_at = now - dt.timedelta(hours=1)
            row.ended_at = now - dt.timedelta(minutes=30)
            if row.id == waiting:
                row.subject = "Fabrikam quarterly check-in"
        for deal in session.scalars(select(Deal)):
            deal.stage_entered_at = now - dt.timedelta(days=12 if deal.crm_id == "OPP-1" else 4)
    return reminder_id, meeting


def _open(world: TeamsWorld, browser: Any) -> tuple[Any, Any]:
    page = browser.new_page(viewport={"width": 1180, "height": 900})
    query = urlencode({"url": f"{app_url(world)}/teams/tab/my-deals", "resource": resource(world)})
    page.goto(f"{world.sandbox.base_url}/teams/tab/{REP}?{query}")
    frame = page.frame_locator("#tab")
    frame.locator('body[data-ready="true"]').wait_for(timeout=15_000)
    return page, frame


def test_the_tab_signs_in_through_teams_and_shows_the_reps_day(
    world: TeamsWorld, browser: Any, tmp_path: Path
) -> None:
    _arrange(world)

    page, frame = _open(world, browser)

    assert frame.locator("h1").inner_text() == "My deals"
    assert "Fabrikam ERP rollout" in frame.locator("#deals").inner_text()
    assert "days in stage" in frame.locator("#deals").inner_text()
    assert "Pricing review" in frame.locator("#meetings").inner_text()
    assert "Why:" in frame.locator("#meetings").inner_text()
    assert "Fabrikam support renewal" in frame.locator("#waiting").inner_text()
    calls = page.evaluate("window.sandboxTab.calls")
    assert calls[:2] == ["initialize", "authentication.getAuthToken"]
    _shot(page, "teams-tab.png", tmp_path)
    page.close()


def test_done_dont_log_and_undo_pressed_in_the_tab(
    world: TeamsWorld, browser: Any, tmp_path: Path
) -> None:
    reminder_id, meeting = _arrange(world)
    page, frame = _open(world, browser)

    frame.locator(f'[data-reminder="{reminder_id}"] button', has_text="Done").click()
    frame.locator(f'[data-reminder="{reminder_id}"]').wait_for(state="detached")
    frame.locator(f'[data-meeting="{meeting}"] button', has_text="Don't log").click()
    frame.locator(f'[data-meeting="{meeting}"] button', has_text="Undo").wait_for()
    _shot(page, "teams-tab-withdrawn.png", tmp_path)

    with get_store(world.app).session() as session:
        assert str(session.get(Reminder, reminder_id).status) == "done"  # type: ignore[union-attr]
        assert str(session.get(Interaction, meeting).status) == "withdrawn"  # type: ignore[union-attr]
    frame.locator(f'[data-meeting="{meeting}"] button', has_text="Undo").click()
    frame.locator(f'[data-meeting="{meeting}"] button', has_text="Don't log").wait_for()
    with get_store(world.app).session() as session:
        assert str(session.get(Interaction, meeting).status) == "held"  # type: ignore[union-attr]
    page.close()


def test_pausing_capture_in_the_tab_shows_that_it_is_paused(
    world: TeamsWorld, browser: Any, tmp_path: Path
) -> None:
    _arrange(world)
    page, frame = _open(world, browser)

    frame.locator("#pause").select_option("1d")
    frame.locator("form.settings button[type=submit]").click()
    frame.locator("#paused").wait_for()

    assert "paused until" in frame.locator("#paused").inner_text()
    page.close()


def test_outside_teams_the_tab_says_to_open_it_in_teams(world: TeamsWorld, browser: Any) -> None:
    page = browser.new_page()
    page.goto(f"{app_url(world)}/teams/tab/my-deals")

    page.locator("#status", has_text="Open DealBridge in Microsoft Teams").wait_for()
    page.close()
