"""Teams through Graph: install the app for a user, find its chat, send activity-feed notices."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests

from sandbox.server import RunningSandbox

from .conftest import Control
from .typed_contract import assert_typed

Run = Callable[[Any], Any]


@pytest.fixture
def app_id(control: Control) -> str:
    control.add_user("ann", "Ann Rep")
    answer = control.post(
        "/teamsApps",
        {
            "externalId": "0f6a2b8e-1c3d-4e5f-8a9b-0c1d2e3f4a5b",
            "displayName": "DealBridge",
            "activityTypes": ["reminderDue"],
        },
    )
    assert answer.status_code == 201, answer.text
    catalog_id: str = answer.json()["id"]
    return catalog_id


def _install(graph_client: Any, run: Run, sandbox: RunningSandbox, catalog_id: str) -> Any:
    from msgraph.generated.models.user_scope_teams_app_installation import (
        UserScopeTeamsAppInstallation,
    )

    body = UserScopeTeamsAppInstallation(
        additional_data={
            "teamsApp@odata.bind": f"{sandbox.base_url}/v1.0/appCatalogs/teamsApps/{catalog_id}"
        }
    )
    return run(
        graph_client.users.by_user_id("ann@contoso.example").teamwork.installed_apps.post(body)
    )


def test_the_app_installs_once_and_its_installation_and_chat_are_found(
    graph_client: Any,
    run: Run,
    sandbox: RunningSandbox,
    graph_http: requests.Session,
    app_id: str,
) -> None:
    from msgraph.generated.models.chat import Chat
    from msgraph.generated.models.user_scope_teams_app_installation_collection_response import (
        UserScopeTeamsAppInstallationCollectionResponse,
    )

    created = _install(graph_client, run, sandbox, app_id)
    base = f"{sandbox.base_url}/v1.0/users/ann@contoso.example/teamwork/installedApps"
    again = graph_http.post(
        base,
        json={
            "teamsApp@odata.bind": f"https://graph.microsoft.com/v1.0/appCatalogs/teamsApps/{app_id}"
        },
        timeout=10,
    )
    listed = graph_http.get(
        base,
        params={
            "$expand": "teamsApp,teamsAppDefinition",
            "$filter": "teamsApp/externalId eq '0f6a2b8e-1c3d-4e5f-8a9b-0c1d2e3f4a5b'",
        },
        timeout=10,
    )
    installations = assert_typed(UserScopeTeamsAppInstallationCollectionResponse, listed.json())
    installation = installations.value[0]
    chat = assert_typed(Chat, graph_http.get(f"{base}/{installation.id}/chat", timeout=10).json())
    assert created is None  # 201 without a body, as Graph answers
    assert again.status_code == 409
    assert installation.teams_app.id == app_id
    assert chat.id.startswith("19:")
    assert chat.id.endswith("@unq.gbl.spaces")


def test_an_activity_notice_reaches_the_users_feed_once_the_app_is_installed(
    graph_client: Any, run: Run, sandbox: RunningSandbox, app_id: str, control: Control
) -> None:
    from kiota_abstractions.api_error import APIError
    from msgraph.generated.models.item_body import ItemBody
    from msgraph.generated.models.key_value_pair import KeyValuePair
    from msgraph.generated.models.teamwork_activity_topic import TeamworkActivityTopic
    from msgraph.generated.models.teamwork_activity_topic_source import TeamworkActivityTopicSource
    from msgraph.generated.users.item.teamwork.send_activity_notification.send_activity_notification_post_request_body import (  # noqa: E501
        SendActivityNotificationPostRequestBody,
    )

    def notice(activity_type: str) -> Any:
        return SendActivityNotificationPostRequestBody(
            topic=TeamworkActivityTopic(
                source=TeamworkActivityTopicSource.Text,
                value="Acme deal",
                web_url="https://dealbridge.example/deals/7",
            ),
            activity_type=activity_type,
            preview_text=ItemBody(content="Send the proposal today"),
            template_parameters=[KeyValuePair(name="deal", value="Acme")],
        )

    feed = graph_client.users.by_user_id("ann@contoso.example").teamwork.send_activity_notification
    with pytest.raises(APIError) as not_installed:
        run(feed.post(notice("reminderDue")))
    _install(graph_client, run, sandbox, app_id)
    with pytest.raises(APIError) as undeclared:
        run(feed.post(notice("somethingElse")))
    run(feed.post(notice("reminderDue")))
    activities = control.get("/users/ann@contoso.example/activities")["value"]
    assert not_installed.value.response_status_code == 403
    assert undeclared.value.response_status_code == 400
    assert [a["previewText"]["content"] for a in activities] == ["Send the proposal today"]
    assert activities[0]["templateParameters"] == [{"name": "deal", "value": "Acme"}]


def test_installing_needs_the_installation_permission(
    sandbox: RunningSandbox, control: Control, app_id: str, msal_app: Any
) -> None:
    import msal

    from .conftest import GRAPH_SCOPE, MICROSOFT_LOGIN, AuthorityRewrite

    control.settings(roles=["User.Read.All"])
    fresh: Any = msal.ConfidentialClientApplication(
        sandbox.client_id,
        client_credential=sandbox.client_secret,
        authority=f"{MICROSOFT_LOGIN}/{sandbox.tenant_id}",
        http_client=AuthorityRewrite(sandbox.base_url),
    )
    token = fresh.acquire_token_for_client([GRAPH_SCOPE])["access_token"]
    answer = requests.post(
        f"{sandbox.base_url}/v1.0/users/ann@contoso.example/teamwork/installedApps",
        json={
            "teamsApp@odata.bind": f"https://graph.microsoft.com/v1.0/appCatalogs/teamsApps/{app_id}"
        },
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "Forbidden"
