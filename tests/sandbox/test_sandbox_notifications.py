"""Change notifications: validation handshake, a notification per change, lifecycle events."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from sandbox.server import RunningSandbox

from .conftest import Control, Receiver, meeting

NOTIFICATION_KEYS = {
    "subscriptionId",
    "subscriptionExpirationDateTime",
    "changeType",
    "resource",
    "resourceData",
    "clientState",
    "tenantId",
}


def _in(minutes: int) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


@pytest.fixture
def subscribe(sandbox: RunningSandbox, graph_http: requests.Session, receiver: Receiver) -> Any:
    def create(user: str, **more: Any) -> requests.Response:
        body = {
            "changeType": "created,updated,deleted",
            "notificationUrl": receiver.url,
            "resource": f"/users/{user}/events",
            "expirationDateTime": _in(60),
            "clientState": "dealbridge-state",
        } | more
        return graph_http.post(f"{sandbox.base_url}/v1.0/subscriptions", json=body, timeout=15)

    return create


def test_a_subscription_receives_a_notification_after_an_event_is_created(
    subscribe: Any, receiver: Receiver, control: Control, sandbox: RunningSandbox
) -> None:
    ann = control.add_user("ann", "Ann Rep")
    created = subscribe(ann["id"])
    event = control.add_event(
        "ann@contoso.example", meeting("Kick-off", "2026-11-23T10:00:00", "2026-11-23T11:00:00")
    )
    item = receiver.wait_for(1)[0]
    assert created.status_code == 201, created.text
    assert set(item) == NOTIFICATION_KEYS
    assert item["changeType"] == "created"
    assert item["clientState"] == "dealbridge-state"
    assert item["subscriptionId"] == created.json()["id"]
    assert item["tenantId"] == sandbox.tenant_id
    assert item["resource"] == f"Users/{ann['id']}/Events/{event['id']}"
    assert item["resourceData"]["id"] == event["id"]
    assert item["resourceData"]["@odata.type"] == "#Microsoft.Graph.Event"


def test_an_attendee_subscription_hears_of_the_organizers_update_and_cancellation(
    subscribe: Any,
    receiver: Receiver,
    control: Control,
    sandbox: RunningSandbox,
    graph_http: requests.Session,
) -> None:
    control.add_user("ann", "Ann Rep")
    bob = control.add_user("bob", "Bob Buyer")
    subscribe("bob@contoso.example")
    event = control.add_event(
        "ann@contoso.example",
        meeting("Demo", "2026-11-23T10:00:00", "2026-11-23T11:00:00", "bob@contoso.example"),
    )
    base = f"{sandbox.base_url}/v1.0/users/ann@contoso.example/events/{event['id']}"
    graph_http.patch(base, json={"subject": "Demo (moved)"}, timeout=10)
    graph_http.delete(base, timeout=10)
    items = receiver.wait_for(3)
    assert [i["changeType"] for i in items] == ["created", "updated", "updated"]
    assert {i["resource"].split("/")[1] for i in items} == {bob["id"]}


def test_a_subscription_only_hears_the_change_types_it_asked_for(
    subscribe: Any,
    receiver: Receiver,
    control: Control,
    sandbox: RunningSandbox,
    graph_http: requests.Session,
) -> None:
    control.add_user("ann", "Ann Rep")
    subscribe("ann@contoso.example", changeType="deleted")
    event = control.add_event(
        "ann@contoso.example", meeting("Short", "2026-11-23T10:00:00", "2026-11-23T11:00:00")
    )
    graph_http.delete(
        f"{sandbox.base_url}/v1.0/users/ann@contoso.example/events/{event['id']}", timeout=10
    )
    items = receiver.wait_for(1)
    assert [i["changeType"] for i in items] == ["deleted"]


def test_a_failed_validation_refuses_the_subscription(
    subscribe: Any, receiver: Receiver, control: Control
) -> None:
    control.add_user("ann", "Ann Rep")
    receiver.echo_validation = False
    answer = subscribe("ann@contoso.example")
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "ValidationError"
    assert receiver.validations[0].startswith("Validation: Testing client application reachability")


def test_expiration_beyond_4230_minutes_is_refused(subscribe: Any, control: Control) -> None:
    control.add_user("ann", "Ann Rep")
    too_far = subscribe("ann@contoso.example", expirationDateTime=_in(4231))
    at_most = subscribe("ann@contoso.example", expirationDateTime=_in(4229))
    assert too_far.status_code == 400
    assert too_far.json()["error"]["message"] == (
        "Subscription expiration can only be 4230 minutes in the future."
    )
    assert at_most.status_code == 201


def test_subscribing_to_an_unknown_mailbox_or_resource_is_refused(
    subscribe: Any, control: Control
) -> None:
    control.add_user("ann", "Ann Rep")
    unknown = subscribe("nobody@contoso.example")
    messages = subscribe("ann@contoso.example", resource="/users/ann@contoso.example/messages")
    assert unknown.status_code == 404
    assert messages.status_code == 400


def test_a_lifecycle_notification_is_sent_on_demand(
    subscribe: Any,
    receiver: Receiver,
    control: Control,
    sandbox: RunningSandbox,
    graph_http: requests.Session,
) -> None:
    control.add_user("ann", "Ann Rep")
    created = subscribe("ann@contoso.example", lifecycleNotificationUrl=receiver.url).json()
    sent = control.post(
        "/lifecycle", {"subscriptionId": created["id"], "lifecycleEvent": "subscriptionRemoved"}
    )
    item = receiver.wait_for(1)[0]
    after = graph_http.get(f"{sandbox.base_url}/v1.0/subscriptions/{created['id']}", timeout=10)
    assert sent.status_code == 202
    assert item["lifecycleEvent"] == "subscriptionRemoved"
    assert item["subscriptionId"] == created["id"]
    assert after.status_code == 404


def test_the_control_api_reports_deliveries(
    subscribe: Any, receiver: Receiver, control: Control
) -> None:
    control.add_user("ann", "Ann Rep")
    subscribe("ann@contoso.example")
    control.add_event(
        "ann@contoso.example", meeting("X", "2026-11-23T10:00:00", "2026-11-23T11:00:00")
    )
    receiver.wait_for(1)
    deadline = time.monotonic() + 5
    outcomes = control.get("/notifications")["value"]
    while not outcomes and time.monotonic() < deadline:
        time.sleep(0.02)
        outcomes = control.get("/notifications")["value"]
    assert [(o["kind"], o["status"]) for o in outcomes] == [("change", 202)]
