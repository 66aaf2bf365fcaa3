"""Users, mailbox settings and verified domains over the sandbox (typed SDK on cold paths)."""

from __future__ import annotations

from datetime import time

import pytest

from graph_sync.auth import GraphCredentials
from graph_sync.client import GraphClient
from graph_sync.directory import (
    MAILBOX_SETTINGS_READ,
    get_mailbox_settings,
    get_user,
    get_verified_domains,
    list_users,
)
from graph_sync.errors import Forbidden, NotFound, UnreadablePage

from .conftest import Control


def test_user_is_found_by_id_and_by_upn(graph: GraphClient, control: Control) -> None:
    ann = control.add_user("ann")

    by_id = get_user(graph, ann["id"])
    by_upn = get_user(graph, ann["userPrincipalName"])

    assert by_id == by_upn
    assert by_id.user_principal_name == ann["userPrincipalName"]
    assert by_id.display_name == "Ann"


def test_unknown_user_is_not_found(graph: GraphClient, control: Control) -> None:
    with pytest.raises(NotFound):
        get_user(graph, "nobody@contoso.example")


def test_list_users_returns_every_user_across_pages(graph: GraphClient, control: Control) -> None:
    made = {control.add_user(f"rep{n}")["id"] for n in range(5)}

    found = list_users(graph, page_size=2)

    assert {u.id for u in found} == made
    assert len(found) == 5


def test_mailbox_settings_map_windows_zone_and_working_days(
    graph: GraphClient, control: Control
) -> None:
    ann = control.add_user(
        "ann",
        time_zone="Tokyo Standard Time",
        workingHours={
            "daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "saturday"],
            "startTime": "09:30:00.0000000",
            "endTime": "18:00:00.0000000",
            "timeZone": {"name": "Tokyo Standard Time"},
        },
    )

    settings = get_mailbox_settings(graph, ann["id"])

    assert settings.time_zone == "Asia/Tokyo"
    assert settings.working_hours_time_zone == "Asia/Tokyo"
    assert settings.working_days == [1, 2, 3, 4, 6]
    assert (settings.start, settings.end) == (time(9, 30), time(18, 0))
    assert settings.zone_source == "graph"


def test_verified_domains_come_from_the_organization(graph: GraphClient, control: Control) -> None:
    domains = get_verified_domains(graph)

    assert control.domain in domains
    assert all(d == d.lower() for d in domains)


def test_missing_mailbox_settings_permission_is_forbidden_naming_it(
    credentials: GraphCredentials, control: Control
) -> None:
    control.settings(roles=["User.Read.All"])
    ann = control.add_user("ann")

    with (
        GraphClient(credentials, credentials.login_base_url) as client,
        pytest.raises(Forbidden) as raised,
    ):
        get_mailbox_settings(client, ann["id"])

    assert raised.value.permission == MAILBOX_SETTINGS_READ


def test_missing_organization_permission_is_forbidden_naming_it(
    credentials: GraphCredentials, control: Control
) -> None:
    control.settings(roles=["User.Read.All"])

    with (
        GraphClient(credentials, credentials.login_base_url) as client,
        pytest.raises(Forbidden) as raised,
    ):
        get_verified_domains(client)

    assert raised.value.permission == "Organization.Read.All"
    assert raised.value.code == "Authorization_RequestDenied"
    assert raised.value.needs_admin_consent


def test_a_403_without_a_permission_code_is_not_taken_for_missing_consent() -> None:
    refused = Forbidden(403, "AccessDenied", "Authorization_RequestDenied in the words only")

    assert not refused.needs_admin_consent


@pytest.mark.parametrize("missing", ["id", "userPrincipalName"])
def test_a_user_without_id_or_upn_is_an_error_never_the_string_none(
    graph: GraphClient, control: Control, missing: str
) -> None:
    ann = control.add_user("ann")
    control.fault(route=r"GET /v1\.0/users", status="incomplete", drop=[missing], count=1)
    with pytest.raises(UnreadablePage, match=missing):
        get_user(graph, ann["id"])


@pytest.mark.parametrize("missing", ["id", "userPrincipalName"])
def test_a_page_of_users_without_id_or_upn_is_an_error(
    graph: GraphClient, control: Control, missing: str
) -> None:
    control.add_user("ann")
    control.add_user("bob")
    control.fault(route=r"GET /v1\.0/users", status="incomplete", drop=[missing], count=1)
    with pytest.raises(UnreadablePage, match=missing):
        list_users(graph)


class _NoTypedClient(GraphClient):
    """A client whose typed SDK must not be used (its models cost seconds to import)."""

    @property
    def sdk(self) -> object:
        raise AssertionError("the typed SDK was used")


def test_a_rounds_directory_reads_need_no_typed_sdk(
    credentials: GraphCredentials, control: Control
) -> None:
    """What a new round reads (the user, its mailbox settings, the verified domains) is raw
    JSON into our models: no msgraph typed model is imported in the timed path."""
    ann = control.add_user("ann")
    with _NoTypedClient(credentials, credentials.login_base_url) as client:
        assert get_user(client, ann["userPrincipalName"]).id == ann["id"]
        assert get_mailbox_settings(client, ann["id"]).time_zone
        assert control.domain in get_verified_domains(client)
