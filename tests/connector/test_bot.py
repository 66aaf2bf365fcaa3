"""The bot endpoint over real HTTP: who may talk to it, and what an install and messages do."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select

from connector.store.db import get_store
from connector.store.models import TeamsConversation
from sandbox.teams.channel import ChannelKeys
from tests.connector.test_bot_world import REP, TeamsWorld, teams_sandbox, world

__all__ = ["teams_sandbox", "world"]


def _keys(w: TeamsWorld) -> ChannelKeys:
    keys: ChannelKeys = w.sandbox._app.extensions["sandbox.teams"].keys
    return keys


def _install_activity(w: TeamsWorld) -> dict[str, Any]:
    return {
        "type": "installationUpdate",
        "action": "add",
        "id": "f:1",
        "serviceUrl": f"{w.sandbox.base_url}/teams/",
        "channelId": "msteams",
        "from": {"id": "29:forged", "aadObjectId": w.rep_user_id},
        "conversation": {"id": "19:forged@unq.gbl.spaces", "conversationType": "personal"},
        "recipient": {"id": f"28:{w.sandbox.client_id}"},
        "channelData": {"tenant": {"id": w.sandbox.tenant_id}},
    }


def _post(w: TeamsWorld, activity: dict[str, Any], token: str | None) -> requests.Response:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return requests.post(w.bot_url, data=json.dumps(activity), headers=headers, timeout=10)


def _conversations(w: TeamsWorld) -> list[TeamsConversation]:
    with get_store(w.app).session() as session:
        return list(session.scalars(select(TeamsConversation)))


def _token(key: rsa.RSAPrivateKey, kid: str, **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": "https://api.botframework.com", "nbf": now - 5, "exp": now + 600} | claims
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": kid})


def test_a_signed_install_is_stored_and_an_unsigned_one_is_refused(world: TeamsWorld) -> None:
    unsigned = jwt.encode({"aud": world.sandbox.client_id}, key="", algorithm="none")
    refused = _post(world, _install_activity(world), unsigned)
    assert refused.status_code == 401
    assert _conversations(world) == []

    accepted = world.install()

    assert [a["status"] for a in accepted["botAnswers"]] == [200, 200]
    [stored] = _conversations(world)
    assert (stored.rep_email, stored.conversation_id) == (REP, accepted["conversationId"])
    assert stored.service_url == f"{world.sandbox.base_url}/teams/"


def test_no_token_is_refused(world: TeamsWorld) -> None:
    assert _post(world, _install_activity(world), None).status_code == 401
    assert _conversations(world) == []


def test_a_token_forged_with_another_key_is_refused(world: TeamsWorld) -> None:
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    activity = _install_activity(world)
    token = _token(
        forger, _keys(world).kid, aud=world.sandbox.client_id, serviceurl=activity["serviceUrl"]
    )
    assert _post(world, activity, token).status_code == 401
    assert _conversations(world) == []


def test_an_expired_token_is_refused(world: TeamsWorld) -> None:
    activity = _install_activity(world)
    token = _keys(world).sign(
        world.sandbox.client_id, activity["serviceUrl"], lifetime=dt.timedelta(minutes=-10)
    )
    assert _post(world, activity, token).status_code == 401
    assert _conversations(world) == []


def test_a_token_for_another_bot_is_refused(world: TeamsWorld) -> None:
    activity = _install_activity(world)
    token = _keys(world).sign("0f6a3a7e-1111-4c6e-9a6b-3c1d2e4f5a6b", activity["serviceUrl"])
    assert _post(world, activity, token).status_code == 401
    assert _conversations(world) == []


def test_a_token_for_another_service_url_is_refused(world: TeamsWorld) -> None:
    activity = _install_activity(world)
    token = _keys(world).sign(world.sandbox.client_id, "https://evil.example.com/teams/")
    assert _post(world, activity, token).status_code == 401
    assert _conversations(world) == []


def test_unreachable_signing_keys_answer_503_so_teams_retries(world: TeamsWorld) -> None:
    from cards.auth import BotFrameworkAuthenticator
    from connector.teams.bot import AUTH_EXTENSION

    world.app.extensions[AUTH_EXTENSION] = BotFrameworkAuthenticator(
        "http://127.0.0.1:9/v1/.well-known/openidconfiguration",
        world.sandbox.client_id,
        requests.Session(),
        http_timeout=2,
    )
    activity = _install_activity(world)
    token = _keys(world).sign(world.sandbox.client_id, activity["serviceUrl"])
    assert _post(world, activity, token).status_code == 503
    assert _conversations(world) == []


def _last_card(world: TeamsWorld) -> dict[str, Any]:
    content: dict[str, Any] = world.chat()[-1]["attachments"][0]["content"]
    return content


def _texts(card: Any) -> list[str]:
    found: list[str] = []
    if isinstance(card, dict):
        if isinstance(card.get("text"), str):
            found.append(card["text"])
        for value in card.values():
            found.extend(_texts(value))
    elif isinstance(card, list):
        for value in card:
            found.extend(_texts(value))
    return found


def test_help_answers_with_the_help_card(world: TeamsWorld) -> None:
    world.install()
    world.say("help")
    assert world.chat()[-1]["summary"] == "What DealBridge can do"


def test_reminders_lists_my_open_reminders(world: TeamsWorld) -> None:
    world.install()
    world.deal(stage="negotiation")
    world.say("reminders")
    assert world.chat()[-1]["summary"].startswith("Your open reminders (")
    assert any("Fabrikam" in text for text in _texts(_last_card(world)))


def test_deals_lists_my_open_deals_by_stage(world: TeamsWorld) -> None:
    world.install()
    world.deal(stage="negotiation")
    world.say("deals")
    texts = _texts(_last_card(world))
    assert any("Fabrikam ERP rollout" in t for t in texts)
    assert any("Negotiation" in t for t in texts)


def test_anything_else_gets_the_short_help_card(world: TeamsWorld) -> None:
    world.install()
    world.say("what's the weather?")
    card = _last_card(world)
    assert any("what's the weather?" in t for t in _texts(card))
    assert world.chat()[-1]["summary"] == "What DealBridge can do"


def test_a_user_who_is_no_rep_is_told_so(world: TeamsWorld) -> None:
    world.control(
        "POST", "/users", {"userPrincipalName": "bo@contoso.example", "displayName": "Bo"}
    )
    world.install("bo@contoso.example")
    world.say("reminders", "bo@contoso.example")
    assert "does not know Bo as a rep" in world.chat("bo@contoso.example")[-1]["text"]


def test_a_rep_known_only_by_email_is_matched_through_the_members_call(world: TeamsWorld) -> None:
    world.client.put(
        f"/api/v1/reps/{REP}", json={"entra_id": "not-the-teams-one"}, headers=world.auth
    )
    world.install()
    [stored] = _conversations(world)
    assert stored.rep_email == REP


def test_a_signed_activity_from_another_tenant_is_ignored(world: TeamsWorld) -> None:
    activity = _install_activity(world)
    activity["channelData"] = {"tenant": {"id": "0b7d7c3e-2222-4d1f-8e5a-9f0e1d2c3b4a"}}
    token = _keys(world).sign(world.sandbox.client_id, activity["serviceUrl"])
    answer = _post(world, activity, token)
    assert (answer.status_code, answer.json()) == (200, {})
    assert _conversations(world) == []
    # The same signed activity from our tenant (any case) is stored: the tenant alone decided.
    activity["channelData"] = {"tenant": {"id": world.sandbox.tenant_id.upper()}}
    assert _post(world, activity, token).status_code == 200
    assert [c.conversation_id for c in _conversations(world)] == ["19:forged@unq.gbl.spaces"]
