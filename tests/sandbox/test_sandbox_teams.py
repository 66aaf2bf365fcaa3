"""The sandbox's Teams side alone: what it signs, what it refuses, what it shows."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from cards.auth import BotFrameworkAuthenticator
from sandbox.server import RunningSandbox, start_sandbox

ANN = "ann@contoso.example"


class FakeBot:
    """Records what the sandbox posts and answers an invoke with a card."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.url = ""

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        activity = json.loads(request.get_data())
        self.received.append((request.headers.get("Authorization", ""), activity))
        body: dict[str, Any] = {}
        if activity["type"] == "invoke":
            card = {
                "type": "AdaptiveCard",
                "version": "1.5",
                "body": [{"type": "TextBlock", "text": "ok"}],
            }
            body = {
                "statusCode": 200,
                "type": "application/vnd.microsoft.card.adaptive",
                "value": card,
            }
        return Response(json.dumps(body), content_type="application/json")(environ, start_response)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with start_sandbox() as running:
        yield running


@pytest.fixture
def bot(sandbox: RunningSandbox) -> Iterator[FakeBot]:
    fake = FakeBot()
    server = make_server("127.0.0.1", 0, fake, threaded=True)
    fake.url = f"http://127.0.0.1:{server.server_port}/api/messages"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    http = requests.Session()
    http.post(f"{sandbox.base_url}/_sandbox/reset").raise_for_status()
    http.post(
        f"{sandbox.base_url}/_sandbox/users",
        json={"userPrincipalName": ANN, "displayName": "Ann Lee"},
    ).raise_for_status()
    http.post(f"{sandbox.base_url}/_sandbox/teams/bot", json={"endpoint": fake.url})
    yield fake
    server.shutdown()
    thread.join(timeout=5)
    server.server_close()


def test_installing_sends_signed_activities_a_bot_can_verify(
    sandbox: RunningSandbox, bot: FakeBot
) -> None:
    requests.post(f"{sandbox.base_url}/_sandbox/teams/{ANN}/install").raise_for_status()
    metadata = requests.get(f"{sandbox.base_url}/_sandbox/teams/bot").json()["openIdMetadata"]
    checker = BotFrameworkAuthenticator(metadata, sandbox.client_id, requests.Session())

    kinds = []
    for header, activity in bot.received:
        claims = checker.authenticate(header, (activity["serviceUrl"], activity["channelId"]))
        assert claims.issuer == "https://api.botframework.com"
        kinds.append(activity["type"])
    assert kinds == ["installationUpdate", "conversationUpdate"]


def test_a_button_press_is_an_invoke_and_the_answered_card_replaces_it(
    sandbox: RunningSandbox, bot: FakeBot
) -> None:
    requests.post(f"{sandbox.base_url}/_sandbox/teams/{ANN}/install").raise_for_status()
    token = requests.post(
        f"{sandbox.base_url}/{sandbox.tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": sandbox.client_id,
            "client_secret": sandbox.client_secret,
            "scope": "https://api.botframework.com/.default",
        },
    ).json()["access_token"]
    state = requests.get(f"{sandbox.base_url}/_sandbox/teams/{ANN}").json()
    sent = requests.post(
        f"{sandbox.base_url}/teams/v3/conversations/{state['conversationId']}/activities",
        json={"type": "message", "text": "a card"},
        headers={"Authorization": f"Bearer {token}"},
    ).json()

    answer = requests.post(
        f"{sandbox.base_url}/_sandbox/teams/{ANN}/activities/{sent['id']}/actions",
        json={"verb": "done", "data": {"reminderId": "7"}},
    ).json()

    invoke = bot.received[-1][1]
    assert (invoke["type"], invoke["name"], invoke["replyToId"]) == (
        "invoke",
        "adaptiveCard/action",
        sent["id"],
    )
    assert invoke["value"]["action"] == {
        "type": "Action.Execute",
        "verb": "done",
        "data": {"reminderId": "7"},
    }
    assert answer["body"]["statusCode"] == 200
    [shown] = requests.get(f"{sandbox.base_url}/_sandbox/teams/{ANN}/activities").json()["value"]
    assert shown["versions"] == 2


def test_oversized_and_too_new_cards_are_refused(sandbox: RunningSandbox, bot: FakeBot) -> None:
    requests.post(f"{sandbox.base_url}/_sandbox/teams/{ANN}/install").raise_for_status()
    token = requests.post(
        f"{sandbox.base_url}/{sandbox.tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": sandbox.client_id,
            "client_secret": sandbox.client_secret,
            "scope": "https://api.botframework.com/.default",
        },
    ).json()["access_token"]
    chat = requests.get(f"{sandbox.base_url}/_sandbox/teams/{ANN}").json()["conversationId"]
    url = f"{sandbox.base_url}/teams/v3/conversations/{chat}/activities"
    headers = {"Authorization": f"Bearer {token}"}

    big = requests.post(url, json={"type": "message", "text": "x" * 41_000}, headers=headers)
    card = {
        "contentType": "application/vnd.microsoft.card.adaptive",
        "content": {"type": "AdaptiveCard", "version": "1.6", "body": []},
    }
    new = requests.post(url, json={"type": "message", "attachments": [card]}, headers=headers)

    assert (big.status_code, big.json()["error"]["code"]) == (413, "MessageSizeTooBig")
    assert new.status_code == 400


def test_the_chats_page_shows_each_reps_cards_and_a_reset_forgets_them(
    sandbox: RunningSandbox, bot: FakeBot
) -> None:
    requests.post(f"{sandbox.base_url}/_sandbox/teams/{ANN}/messages", json={"text": "help"})
    page = requests.get(f"{sandbox.base_url}/teams")
    assert page.status_code == 200
    assert "Ann Lee" in page.text
    assert "help" in page.text

    requests.post(f"{sandbox.base_url}/_sandbox/reset").raise_for_status()

    assert "Ann Lee" not in requests.get(f"{sandbox.base_url}/teams").text
    assert requests.get(f"{sandbox.base_url}/_sandbox/teams/bot").json()["endpoint"] is None
