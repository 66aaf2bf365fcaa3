"""Reps in Teams as they come and go: a rep who installed the app before an admin mapped them
gets cards once mapped (by Entra id or by e-mail alone)."""

from __future__ import annotations

import pytest

from tests.connector.samples import deal_body
from tests.connector.test_bot_world import TeamsWorld, teams_sandbox, world

__all__ = ["teams_sandbox", "world"]
BO = "bo.berg@contoso.example"


def _card_reaches(world: TeamsWorld, who: str) -> None:
    body = deal_body(owner=who, stage="negotiation")
    answer = world.client.put("/api/v1/deals/OPP-BO", json=body, headers=world.auth)
    assert answer.status_code == 201, answer.json
    world.due_reminder("OPP-BO")
    before = len(world.chat(who))
    world.drain()
    summaries = [a.get("summary", "") for a in world.chat(who)[before:]]
    assert len(summaries) == 1, summaries


@pytest.mark.parametrize("mapped_by", ["entra_id", "email"])
def test_a_rep_who_installed_before_being_mapped_gets_cards(
    world: TeamsWorld, mapped_by: str
) -> None:
    user = world.control("POST", "/users", {"userPrincipalName": BO, "displayName": "Bo Berg"})
    world.install(BO)  # nobody maps Bo yet: the bot keeps the chat without a rep
    body = {"display_name": "Bo Berg"}
    if mapped_by == "entra_id":
        body["entra_id"] = user.json()["id"]
    answer = world.client.put(f"/api/v1/reps/{BO}", json=body, headers=world.auth)
    assert answer.status_code == 201
    _card_reaches(world, BO)
