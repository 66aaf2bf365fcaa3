"""Answers lost after the sandbox acted (`lost`, `lost_reset`), and Graph's chat messages."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from sandbox.config import ALL_ROLES
from sandbox.server import RunningSandbox
from tests.sandbox.test_sandbox_teams import ANN, FakeBot, bot, sandbox

__all__ = ["bot", "sandbox"]
CARD = "application/vnd.microsoft.card.adaptive"


def _token(sandbox: RunningSandbox, scope: str) -> str:
    answer = requests.post(
        f"{sandbox.base_url}/{sandbox.tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": sandbox.client_id,
            "client_secret": sandbox.client_secret,
            "scope": scope,
        },
        timeout=30,
    )
    answer.raise_for_status()
    token: str = answer.json()["access_token"]
    return token


@pytest.fixture
def chat(sandbox: RunningSandbox, bot: FakeBot) -> Iterator[str]:
    requests.post(f"{sandbox.base_url}/_sandbox/teams/{ANN}/install").raise_for_status()
    state = requests.get(f"{sandbox.base_url}/_sandbox/teams/{ANN}").json()
    yield str(state["conversationId"])
    requests.patch(f"{sandbox.base_url}/_sandbox/settings", json={"roles": list(ALL_ROLES)})


def _post_card(sandbox: RunningSandbox, chat: str, n: int) -> requests.Response:
    card = {"type": "AdaptiveCard", "version": "1.5", "body": [{"type": "TextBlock", "text": n}]}
    bot_token = _token(sandbox, "https://api.botframework.com/.default")
    return requests.post(
        f"{sandbox.base_url}/teams/v3/conversations/{chat}/activities",
        json={"type": "message", "attachments": [{"contentType": CARD, "content": card}]},
        headers={"Authorization": f"Bearer {bot_token}"},
        timeout=30,
    )


def _shown(sandbox: RunningSandbox) -> list[dict[str, Any]]:
    answer = requests.get(f"{sandbox.base_url}/_sandbox/teams/{ANN}/activities", timeout=30)
    value: list[dict[str, Any]] = answer.json()["value"]
    return value


def _fault(sandbox: RunningSandbox, status: str) -> None:
    rule = {"route": "POST .*/activities$", "status": status, "count": 1}
    requests.post(f"{sandbox.base_url}/_sandbox/faults", json=rule).raise_for_status()


def test_a_lost_post_is_made_and_answered_504(sandbox: RunningSandbox, chat: str) -> None:
    _fault(sandbox, "lost")
    answer = _post_card(sandbox, chat, 1)
    assert answer.status_code == 504
    assert answer.json()["error"]["code"] == "GatewayTimeout"
    assert len(_shown(sandbox)) == 1


def test_a_lost_reset_post_is_made_and_the_connection_dropped(
    sandbox: RunningSandbox, chat: str
) -> None:
    _fault(sandbox, "lost_reset")
    with pytest.raises(requests.ConnectionError):
        _post_card(sandbox, chat, 1)
    assert len(_shown(sandbox)) == 1


def test_chat_messages_need_a_chat_read_permission(sandbox: RunningSandbox, chat: str) -> None:
    _post_card(sandbox, chat, 1).raise_for_status()
    graph = _token(sandbox, "https://graph.microsoft.com/.default")
    answer = requests.get(
        f"{sandbox.base_url}/v1.0/chats/{chat}/messages",
        headers={"Authorization": f"Bearer {graph}"},
        timeout=30,
    )
    assert answer.status_code == 403
    assert "Chat.Read.All" in answer.json()["error"]["message"]


def test_chat_messages_are_newest_first_with_the_card_as_json(
    sandbox: RunningSandbox, chat: str
) -> None:
    requests.patch(
        f"{sandbox.base_url}/_sandbox/settings", json={"roles": [*ALL_ROLES, "Chat.Read.All"]}
    ).raise_for_status()
    ids = [_post_card(sandbox, chat, n).json()["id"] for n in range(3)]
    graph = {"Authorization": f"Bearer {_token(sandbox, 'https://graph.microsoft.com/.default')}"}
    page = requests.get(
        f"{sandbox.base_url}/v1.0/chats/{chat}/messages?$top=2", headers=graph, timeout=30
    ).json()
    assert [m["id"] for m in page["value"]] == [ids[2], ids[1]]
    newest = page["value"][0]
    assert newest["from"]["application"]["applicationIdentityType"] == "bot"
    assert newest["chatId"] == chat
    [attachment] = newest["attachments"]
    assert attachment["contentType"] == CARD
    assert isinstance(attachment["content"], str)
    assert f'<attachment id="{attachment["id"]}">' in newest["body"]["content"]
    rest = requests.get(page["@odata.nextLink"], headers=graph, timeout=30).json()
    assert [m["id"] for m in rest["value"]] == [ids[0]]
    assert "@odata.nextLink" not in rest
    too_many = requests.get(
        f"{sandbox.base_url}/v1.0/chats/{chat}/messages?$top=51", headers=graph, timeout=30
    )
    assert too_many.status_code == 400
    unknown = requests.get(
        f"{sandbox.base_url}/v1.0/chats/19:nobody@unq.gbl.spaces/messages",
        headers=graph,
        timeout=30,
    )
    assert unknown.status_code == 404
