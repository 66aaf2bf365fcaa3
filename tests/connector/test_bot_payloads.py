"""The bot against activities as Teams publishes them (tests/connector/teams_payloads/, each
naming its source): a meeting chat, an uninstall from a team or a group chat, the bot removed
from a rep's chat, a card action from another tenant."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import select

from cards.actions import ERROR_CONTENT_TYPE
from connector.store.db import get_store
from connector.store.models import TeamsConversation
from sandbox.teams.channel import ChannelKeys
from tests.connector.test_bot_world import REP, TeamsWorld, teams_sandbox, world

__all__ = ["teams_sandbox", "world"]
PAYLOADS = Path(__file__).parent / "teams_payloads"


def payload(w: TeamsWorld, name: str, conversation: str = "") -> dict[str, Any]:
    """A published activity with this test's tenant, rep, bot and Bot Connector in it."""
    text = (PAYLOADS / f"{name}.json").read_text()
    for placeholder, value in {
        "{tenant}": w.sandbox.tenant_id,
        "{aad}": w.rep_user_id,
        "{bot}": f"28:{w.sandbox.client_id}",
        "{service_url}": f"{w.sandbox.base_url}/teams/",
        "{conversation}": conversation,
    }.items():
        text = text.replace(placeholder, value)
    activity: dict[str, Any] = json.loads(text)
    assert activity.pop("_source")
    return activity


def post(w: TeamsWorld, activity: dict[str, Any]) -> requests.Response:
    keys: ChannelKeys = w.sandbox._app.extensions["sandbox.teams"].keys
    token = keys.sign(w.sandbox.client_id, activity["serviceUrl"])
    return requests.post(
        w.bot_url,
        data=json.dumps(activity),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        timeout=10,
    )


def conversations(w: TeamsWorld) -> list[TeamsConversation]:
    with get_store(w.app).session() as session:
        rows = list(session.scalars(select(TeamsConversation).order_by(TeamsConversation.id)))
        session.expunge_all()
        return rows


def test_a_meeting_chat_is_never_stored_as_the_reps_chat(world: TeamsWorld) -> None:
    answer = post(world, payload(world, "meeting_chat_member_added"))
    assert answer.status_code == 200
    assert conversations(world) == []

    chat = world.install()["conversationId"]
    assert post(world, payload(world, "meeting_chat_member_added")).status_code == 200
    [stored] = conversations(world)
    assert (stored.rep_email, stored.conversation_id) == (REP, chat)


def test_removing_the_app_from_a_team_or_a_group_chat_leaves_the_reps_chat_alone(
    world: TeamsWorld,
) -> None:
    world.install()
    for name in ("installation_update_team_remove", "installation_update_group_chat_remove"):
        assert post(world, payload(world, name)).status_code == 200
    [stored] = conversations(world)
    assert (stored.blocked_at, stored.blocked_reason) == (None, None)


def _uninstall(w: TeamsWorld, chat: str) -> dict[str, Any]:
    activity = payload(w, "installation_update_group_chat_remove")
    activity["conversation"] = {
        "conversationType": "personal",
        "tenantId": w.sandbox.tenant_id,
        "id": chat,
    }
    return activity


def test_the_bot_removed_from_the_reps_chat_never_undoes_an_uninstall(world: TeamsWorld) -> None:
    chat = world.install()["conversationId"]
    assert post(world, _uninstall(world, chat)).status_code == 200
    [removed] = conversations(world)
    assert removed.blocked_at is not None

    removal = payload(world, "conversation_update_bot_removed_personal", chat)
    assert post(world, removal).status_code == 200
    [still] = conversations(world)
    assert (still.blocked_at, still.blocked_reason) == (removed.blocked_at, removed.blocked_reason)


def test_the_bot_removed_from_the_reps_chat_is_an_uninstall(world: TeamsWorld) -> None:
    chat = world.install()["conversationId"]
    removal = payload(world, "conversation_update_bot_removed_personal", chat)
    assert post(world, removal).status_code == 200
    [stored] = conversations(world)
    assert stored.blocked_at is not None


def test_a_card_action_from_another_tenant_gets_a_universal_actions_error(
    world: TeamsWorld,
) -> None:
    answer = post(world, payload(world, "invoke_other_tenant"))
    assert answer.status_code == 200
    body = answer.json()
    assert body["type"] == ERROR_CONTENT_TYPE
    assert 400 <= body["statusCode"] < 500
    assert body["value"]["code"] == "Forbidden"
    assert body["value"]["message"]
    assert conversations(world) == []


def _group_message(w: TeamsWorld, text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "id": "1700000000000",
        "text": f"<at>DealBridge</at> {text}",
        "serviceUrl": f"{w.sandbox.base_url}/teams/",
        "channelId": "msteams",
        "from": {"id": "29:rep-in-group", "aadObjectId": w.rep_user_id},
        "conversation": {
            "id": "19:group-with-customers@thread.v2",
            "conversationType": "groupChat",
        },
        "recipient": {"id": f"28:{w.sandbox.client_id}"},
        "channelData": {"tenant": {"id": w.sandbox.tenant_id}},
    }


def test_a_reps_lists_asked_for_in_a_group_chat_go_to_her_own_chat_only(world: TeamsWorld) -> None:
    """Customers may be in a group or meeting chat: her deals and reminders never go there."""
    world.install()
    world.deal(stage="negotiation")
    world.control("DELETE", "/requests")
    before = len(world.chat())
    for text in ("deals", "reminders"):
        assert post(world, _group_message(world, text)).status_code == 200
    posted = [
        entry["path"]
        for entry in world.control("GET", "/requests").json()["recent"]
        if "group-with-customers" in entry["path"]
    ]
    assert posted == []
    summaries = [line["summary"] for line in world.chat()[before:]]
    assert summaries[0] == "Your open deals"
    assert summaries[1].startswith("Your open reminders (")
