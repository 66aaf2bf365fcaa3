"""Teams through Graph over the sandbox: install for a rep, its chat, activity feed."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from graph_sync.auth import GraphCredentials
from graph_sync.client import GraphClient
from graph_sync.errors import Forbidden, NotFound
from graph_sync.teams import (
    ACTIVITY_PERMISSION,
    INSTALL_PERMISSION,
    find_installation,
    get_installation_chat,
    install_app_for_user,
    send_activity_notification,
)

from .conftest import Control


def publish(control: Control, **extra: Any) -> str:
    answer = control.post(
        "/teamsApps",
        {
            "externalId": "0f8e2f4c-1f0e-4c7e-9a53-4b7f2a0c9e11",
            "displayName": "DealBridge",
            **extra,
        },
    )
    assert answer.status_code == 201, answer.text
    app_id: str = answer.json()["id"]
    return app_id


def test_install_for_a_rep_returns_the_installation_and_its_chat(
    graph: GraphClient, control: Control
) -> None:
    app_id = publish(control)
    ann = control.add_user("ann")["id"]

    installation = install_app_for_user(graph, ann, app_id)
    chat = get_installation_chat(graph, ann, installation)

    assert find_installation(graph, ann, app_id) == installation
    assert chat


def test_installing_twice_is_the_same_installation(graph: GraphClient, control: Control) -> None:
    app_id = publish(control)
    ann = control.add_user("ann")["id"]

    first = install_app_for_user(graph, ann, app_id)
    again = install_app_for_user(graph, ann, app_id)

    assert again == first


def test_app_missing_from_the_catalog_is_not_found(graph: GraphClient, control: Control) -> None:
    ann = control.add_user("ann")["id"]

    with pytest.raises(NotFound):
        install_app_for_user(graph, ann, "00000000-0000-0000-0000-000000000000")
    assert find_installation(graph, ann, "00000000-0000-0000-0000-000000000000") is None


def test_activity_notification_lands_in_the_reps_feed(graph: GraphClient, control: Control) -> None:
    app_id = publish(control, activityTypes=["reminderDue"])
    ann = control.add_user("ann")["id"]
    install_app_for_user(graph, ann, app_id)

    send_activity_notification(
        graph,
        ann,
        "reminderDue",
        "Call back Fabrikam today",
        "https://crm.example/deals/42",
        {"deal": "Fabrikam renewal"},
    )
    (notice,) = control.get(f"/users/{ann}/activities")["value"]

    assert notice["activityType"] == "reminderDue"
    assert notice["previewText"]["content"] == "Call back Fabrikam today"
    assert notice["templateParameters"] == [{"name": "deal", "value": "Fabrikam renewal"}]


def test_install_without_permission_is_forbidden_naming_it(
    credentials: GraphCredentials, control: Control
) -> None:
    app_id = publish(control)
    control.settings(roles=["User.Read.All"])
    ann = control.add_user("ann")["id"]

    with (
        GraphClient(credentials, credentials.login_base_url) as client,
        pytest.raises(Forbidden) as raised,
    ):
        install_app_for_user(client, ann, app_id)

    assert raised.value.permission == INSTALL_PERMISSION


def test_activity_without_permission_is_forbidden_naming_it(
    credentials: GraphCredentials, control: Control
) -> None:
    control.settings(roles=["User.Read.All"])
    ann = control.add_user("ann")["id"]

    with (
        GraphClient(credentials, credentials.login_base_url) as client,
        pytest.raises(Forbidden) as raised,
    ):
        send_activity_notification(client, ann, "reminderDue", "x", "https://crm.example/d/1")

    assert raised.value.permission == ACTIVITY_PERMISSION


def test_the_teams_page_shows_each_users_activity_feed(
    graph: GraphClient, control: Control
) -> None:
    app_id = publish(control, activityTypes=["meetingBrief"])
    ann = control.add_user("ann")["id"]
    install_app_for_user(graph, ann, app_id)

    send_activity_notification(
        graph,
        ann,
        "meetingBrief",
        "Fabrikam ERP rollout · Negotiation, 12 days · accepted: Dana Ruiz",
        "https://crm.example/deals/42",
        {"meetingSubject": "Pricing review", "dealName": "Fabrikam ERP rollout"},
    )
    page = requests.get(f"{control.base_url}/teams", timeout=10).text

    assert "Activity feed" in page
    assert "meetingBrief" in page
    assert "accepted: Dana Ruiz" in page
