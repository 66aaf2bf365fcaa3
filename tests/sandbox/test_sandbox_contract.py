"""Every response shape the sandbox serves parses with msgraph-sdk typed models: none unknown."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from sandbox.server import RunningSandbox

from .conftest import Control, Receiver, meeting
from .typed_contract import assert_typed, parse, unknown_fields

TAG = "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name DealBridgeReminder"
WINDOW = {"startDateTime": "2026-11-01T00:00:00Z", "endDateTime": "2026-12-01T00:00:00Z"}


@pytest.fixture
def seeded(control: Control) -> dict[str, Any]:
    ann = control.add_user("ann", "Ann Rep", "Pacific Standard Time")
    control.add_user("bob", "Bob Buyer", "W. Europe Standard Time")
    single = control.add_event(
        "ann@contoso.example",
        meeting(
            "Deal review",
            "2026-11-23T17:00:00",
            "2026-11-23T18:00:00",
            "bob@contoso.example",
            location={"displayName": "Room 1"},
            categories=["DealBridge"],
            isOnlineMeeting=True,
            onlineMeetingProvider="teamsForBusiness",
            singleValueExtendedProperties=[{"id": TAG, "value": "r-1"}],
        ),
    )
    series = control.add_event(
        "ann@contoso.example",
        meeting(
            "Weekly pipeline",
            "2026-11-02T16:00:00",
            "2026-11-02T16:30:00",
            recurrence={
                "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
                "range": {"type": "numbered", "startDate": "2026-11-02", "numberOfOccurrences": 4},
            },
        ),
    )
    return {"ann": ann, "single": single, "series": series}


def _get(session: requests.Session, url: str, **kwargs: Any) -> Any:
    answer = session.get(url, timeout=10, **kwargs)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_user_shapes_are_graph_user_models(
    sandbox: RunningSandbox, graph_http: requests.Session, seeded: dict[str, Any]
) -> None:
    from msgraph.generated.models.mailbox_settings import MailboxSettings
    from msgraph.generated.models.user import User
    from msgraph.generated.models.user_collection_response import UserCollectionResponse

    base = f"{sandbox.base_url}/v1.0"
    users = assert_typed(UserCollectionResponse, _get(graph_http, f"{base}/users"))
    one = assert_typed(User, _get(graph_http, f"{base}/users/ann@contoso.example"))
    settings = assert_typed(
        MailboxSettings, _get(graph_http, f"{base}/users/{seeded['ann']['id']}/mailboxSettings")
    )
    assert len(users.value) == 2
    assert one.id == seeded["ann"]["id"]
    assert settings.time_zone == "Pacific Standard Time"
    assert settings.working_hours.start_time is not None


def test_organization_shape_lists_verified_domains(
    sandbox: RunningSandbox, graph_http: requests.Session, control: Control
) -> None:
    from msgraph.generated.models.organization_collection_response import (
        OrganizationCollectionResponse,
    )

    orgs = assert_typed(
        OrganizationCollectionResponse, _get(graph_http, f"{sandbox.base_url}/v1.0/organization")
    )
    names = [d.name for d in orgs.value[0].verified_domains]
    assert sandbox.domain in names


def test_event_shapes_are_graph_event_models(
    sandbox: RunningSandbox, graph_http: requests.Session, seeded: dict[str, Any]
) -> None:
    from msgraph.generated.models.event import Event
    from msgraph.generated.models.event_collection_response import EventCollectionResponse

    base = f"{sandbox.base_url}/v1.0/users/ann@contoso.example"
    created = assert_typed(Event, seeded["single"])
    fetched = assert_typed(
        Event,
        _get(
            graph_http,
            f"{base}/events/{created.id}",
            params={"$expand": f"singleValueExtendedProperties($filter=id eq '{TAG}')"},
        ),
    )
    listed = assert_typed(EventCollectionResponse, _get(graph_http, f"{base}/events"))
    view = assert_typed(
        EventCollectionResponse,
        _get(
            graph_http,
            f"{base}/calendarView",
            params=WINDOW,
            headers={"Prefer": "odata.maxpagesize=50"},
        ),
    )
    assert fetched.single_value_extended_properties[0].value == "r-1"
    assert {e.subject for e in listed.value} == {"Deal review", "Weekly pipeline"}
    assert sorted(e.type.value for e in view.value).count("occurrence") == 4


def test_delta_pages_are_graph_delta_responses(
    sandbox: RunningSandbox, graph_http: requests.Session, seeded: dict[str, Any]
) -> None:
    from msgraph.generated.users.item.calendar_view.delta.delta_get_response import (
        DeltaGetResponse,
    )

    url = f"{sandbox.base_url}/v1.0/users/ann@contoso.example/calendarView/delta"
    first = assert_typed(DeltaGetResponse, _get(graph_http, url, params=WINDOW))
    graph_http.delete(
        f"{sandbox.base_url}/v1.0/users/ann@contoso.example/events/{seeded['single']['id']}",
        timeout=10,
    )
    second = assert_typed(DeltaGetResponse, _get(graph_http, first.odata_delta_link))
    assert [e.additional_data.get("@removed") for e in second.value] == [{"reason": "deleted"}]


def test_subscription_shape_is_graph_subscription_model(
    sandbox: RunningSandbox,
    graph_http: requests.Session,
    seeded: dict[str, Any],
    receiver: Receiver,
) -> None:
    from msgraph.generated.models.subscription import Subscription

    answer = graph_http.post(
        f"{sandbox.base_url}/v1.0/subscriptions",
        json={
            "changeType": "created,updated,deleted",
            "notificationUrl": receiver.url,
            "lifecycleNotificationUrl": receiver.url,
            "resource": f"/users/{seeded['ann']['id']}/events",
            "expirationDateTime": "2099-01-01T00:00:00Z",
            "clientState": "s3cret-state",
        },
        timeout=10,
    )
    assert answer.status_code == 400  # 2099 is beyond 4,230 minutes
    answer = graph_http.post(
        f"{sandbox.base_url}/v1.0/subscriptions",
        json={
            "changeType": "created,updated,deleted",
            "notificationUrl": receiver.url,
            "resource": f"/users/{seeded['ann']['id']}/events",
            "expirationDateTime": _soon(),
            "clientState": "s3cret-state",
        },
        timeout=10,
    )
    assert answer.status_code == 201, answer.text
    sub = assert_typed(Subscription, answer.json())
    assert sub.change_type == "created,updated,deleted"


def test_error_bodies_are_graph_odata_errors(
    sandbox: RunningSandbox, graph_http: requests.Session, control: Control
) -> None:
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError

    answers = [
        graph_http.get(f"{sandbox.base_url}/v1.0/users/nobody@contoso.example", timeout=10),
        requests.get(f"{sandbox.base_url}/v1.0/users", timeout=10),
        graph_http.post(
            f"{sandbox.base_url}/v1.0/users/nobody@contoso.example/events", json={}, timeout=10
        ),
    ]
    parsed = [assert_typed(ODataError, a.json()) for a in answers]
    assert [p.error.code for p in parsed] == [
        "Request_ResourceNotFound",
        "InvalidAuthenticationToken",
        "ErrorInvalidUser",
    ]
    assert all(p.error.inner_error.request_id for p in parsed)


def test_an_invented_field_is_caught_by_the_contract_check() -> None:
    from msgraph.generated.models.event import Event

    parsed = parse(
        Event,
        {
            "subject": "x",
            "start": {"dateTime": "2026-01-01T00:00:00.0000000", "timeZone": "UTC", "offset": 1},
            "isAllday": False,
            "@odata.etag": 'W/"x"',
        },
    )
    assert unknown_fields(parsed) == ["$.isAllday", "$.start.offset"]


def _soon() -> str:
    from datetime import UTC, datetime, timedelta

    return (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")
