"""The Bot Connector client against the sandbox's Bot Connector over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from cards.samples import sample_views
from cards.teams import BotConnector, BotConnectorError, MessageWritesBlocked, card_activity
from sandbox.server import RunningSandbox, start_sandbox

ANN = "ann@contoso.example"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with start_sandbox() as running:
        yield running


@pytest.fixture
def http(sandbox: RunningSandbox) -> requests.Session:
    session = requests.Session()
    session.post(f"{sandbox.base_url}/_sandbox/reset").raise_for_status()
    session.post(
        f"{sandbox.base_url}/_sandbox/users",
        json={"userPrincipalName": ANN, "displayName": "Ann"},
    ).raise_for_status()
    # Installing needs a bot endpoint; nothing listens there, the answers are only recorded.
    session.post(
        f"{sandbox.base_url}/_sandbox/teams/bot", json={"endpoint": "http://127.0.0.1:9/api"}
    )
    session.post(f"{sandbox.base_url}/_sandbox/teams/{ANN}/install").raise_for_status()
    return session


def _bot_token(
    sandbox: RunningSandbox, scope: str = "https://api.botframework.com/.default"
) -> str:
    answer = requests.post(
        f"{sandbox.base_url}/{sandbox.tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": sandbox.client_id,
            "client_secret": sandbox.client_secret,
            "scope": scope,
        },
        timeout=10,
    )
    token: str = answer.json()["access_token"]
    return token


@pytest.fixture
def connector(sandbox: RunningSandbox, http: requests.Session) -> BotConnector:
    return BotConnector(http, lambda: _bot_token(sandbox))


def _url(sandbox: RunningSandbox) -> str:
    return f"{sandbox.base_url}/teams/"


def _user_id(sandbox: RunningSandbox, http: requests.Session) -> str:
    user_id: str = http.get(f"{sandbox.base_url}/_sandbox/teams/{ANN}").json()["teamsUserId"]
    return user_id


def test_a_card_is_sent_in_a_new_conversation_and_updated_in_place(
    sandbox: RunningSandbox, http: requests.Session, connector: BotConnector
) -> None:
    conversation = connector.create_conversation(
        _url(sandbox), sandbox.client_id, _user_id(sandbox, http), sandbox.tenant_id
    )
    first = card_activity(sample_views()["reminder"])
    activity_id = connector.send(_url(sandbox), conversation, first)
    connector.update(
        _url(sandbox), conversation, activity_id, card_activity(sample_views()["reminder-done"])
    )

    [shown] = http.get(f"{sandbox.base_url}/_sandbox/teams/{ANN}/activities").json()["value"]
    assert (shown["id"], shown["versions"]) == (activity_id, 2)
    assert shown["summary"] == first["summary"]
    assert "text" not in first


def test_members_name_the_user_with_email_and_upn(
    sandbox: RunningSandbox, http: requests.Session, connector: BotConnector
) -> None:
    conversation = connector.create_conversation(
        _url(sandbox), sandbox.client_id, _user_id(sandbox, http), sandbox.tenant_id
    )
    [member] = connector.members(_url(sandbox), conversation)
    assert (member.email, member.user_principal_name) == (ANN, ANN)


def test_a_user_who_blocked_the_bot_is_message_writes_blocked(
    sandbox: RunningSandbox, http: requests.Session, connector: BotConnector
) -> None:
    conversation = connector.create_conversation(
        _url(sandbox), sandbox.client_id, _user_id(sandbox, http), sandbox.tenant_id
    )
    http.post(f"{sandbox.base_url}/_sandbox/teams/{ANN}/block", json={"blocked": True})
    with pytest.raises(MessageWritesBlocked) as raised:
        connector.send(_url(sandbox), conversation, {"type": "message", "text": "hi"})
    assert (raised.value.status, raised.value.transient) == (403, False)


def test_throttling_carries_the_retry_after(
    sandbox: RunningSandbox, http: requests.Session, connector: BotConnector
) -> None:
    http.post(
        f"{sandbox.base_url}/_sandbox/faults",
        json={"route": "teams/v3", "status": 429, "retryAfter": 2.5, "count": 1},
    )
    with pytest.raises(BotConnectorError) as raised:
        connector.create_conversation(
            _url(sandbox), sandbox.client_id, _user_id(sandbox, http), sandbox.tenant_id
        )
    assert (raised.value.status, raised.value.retry_after, raised.value.transient) == (
        429,
        2.5,
        True,
    )


def test_a_graph_token_is_not_a_bot_token(sandbox: RunningSandbox, http: requests.Session) -> None:
    graph = BotConnector(http, lambda: _bot_token(sandbox, "https://graph.microsoft.com/.default"))
    with pytest.raises(BotConnectorError) as raised:
        graph.create_conversation(
            _url(sandbox), sandbox.client_id, _user_id(sandbox, http), sandbox.tenant_id
        )
    assert raised.value.status == 401


def test_the_token_is_never_sent_to_a_plain_http_host_elsewhere(http: requests.Session) -> None:
    sent: list[str] = []
    connector = BotConnector(http, lambda: sent.append("token") or "t")
    with pytest.raises(BotConnectorError) as raised:
        connector.send("http://smba.example.com/teams/", "19:x", {"type": "message"})
    assert (raised.value.code, sent) == ("UntrustedServiceUrl", [])
