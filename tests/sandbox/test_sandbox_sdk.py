"""The real msgraph-sdk, through its request adapter and middleware, calls every endpoint served."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from .conftest import Control, Receiver

TAG = "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name DealBridgeReminder"
Run = Callable[[Any], Any]


def _event(subject: str, start: str, end: str, *attendees: str, **more: Any) -> Any:
    from msgraph.generated.models.attendee import Attendee
    from msgraph.generated.models.date_time_time_zone import DateTimeTimeZone
    from msgraph.generated.models.email_address import EmailAddress
    from msgraph.generated.models.event import Event

    return Event(
        subject=subject,
        start=DateTimeTimeZone(date_time=start, time_zone="UTC"),
        end=DateTimeTimeZone(date_time=end, time_zone="UTC"),
        attendees=[Attendee(email_address=EmailAddress(address=a)) for a in attendees],
        **more,
    )


@pytest.fixture
def people(control: Control) -> dict[str, str]:
    ann = control.add_user("ann", "Ann Rep", "Pacific Standard Time")
    bob = control.add_user("bob", "Bob Buyer")
    return {"ann": ann["id"], "bob": bob["id"]}


def test_sdk_reads_users_mailbox_settings_and_organization(
    graph_client: Any, run: Run, people: dict[str, str]
) -> None:
    users = run(graph_client.users.get())
    ann = run(graph_client.users.by_user_id("ann@contoso.example").get())
    settings = run(graph_client.users.by_user_id(people["ann"]).mailbox_settings.get())
    organization = run(graph_client.organization.get())
    assert {u.user_principal_name for u in users.value} == {
        "ann@contoso.example",
        "bob@contoso.example",
    }
    assert ann.id == people["ann"]
    assert settings.time_zone == "Pacific Standard Time"
    assert organization.value[0].verified_domains[0].name == "contoso.example"


def test_sdk_creates_reads_updates_and_deletes_an_event(
    graph_client: Any, run: Run, people: dict[str, str]
) -> None:
    from msgraph.generated.models.event import Event
    from msgraph.generated.models.single_value_legacy_extended_property import (
        SingleValueLegacyExtendedProperty,
    )
    from msgraph.generated.users.item.events.events_request_builder import EventsRequestBuilder
    from msgraph.generated.users.item.events.item.event_item_request_builder import (
        EventItemRequestBuilder,
    )

    events = graph_client.users.by_user_id(people["ann"]).events
    created = run(
        events.post(
            _event(
                "Reminder: send proposal",
                "2026-11-24T15:00:00",
                "2026-11-24T15:15:00",
                transaction_id="reminder-42",
                single_value_extended_properties=[
                    SingleValueLegacyExtendedProperty(id=TAG, value="42")
                ],
            )
        )
    )
    config = EventItemRequestBuilder.EventItemRequestBuilderGetRequestConfiguration(
        query_parameters=EventItemRequestBuilder.EventItemRequestBuilderGetQueryParameters(
            expand=[f"singleValueExtendedProperties($filter=id eq '{TAG}')"]
        )
    )
    config.headers.add("Prefer", 'outlook.timezone="Pacific Standard Time"')
    fetched = run(events.by_event_id(created.id).get(request_configuration=config))
    tagged = f"singleValueExtendedProperties/Any(ep: ep/id eq '{TAG}' and ep/value eq '42')"
    found = run(
        events.get(
            request_configuration=EventsRequestBuilder.EventsRequestBuilderGetRequestConfiguration(
                query_parameters=EventsRequestBuilder.EventsRequestBuilderGetQueryParameters(
                    filter=tagged
                )
            )
        )
    )
    patched = run(events.by_event_id(created.id).patch(Event(subject="Reminder: proposal sent")))
    run(events.by_event_id(created.id).delete())
    after = run(events.get())
    assert fetched.start.date_time == "2026-11-24T07:00:00.0000000"
    assert fetched.start.time_zone == "Pacific Standard Time"
    assert fetched.single_value_extended_properties[0].value == "42"
    assert [e.id for e in found.value] == [created.id]
    assert patched.subject == "Reminder: proposal sent"
    assert after.value == []


def test_sdk_reads_calendar_view_and_series_instances(
    graph_client: Any, run: Run, people: dict[str, str]
) -> None:
    from msgraph.generated.models.patterned_recurrence import PatternedRecurrence
    from msgraph.generated.models.recurrence_pattern import RecurrencePattern
    from msgraph.generated.models.recurrence_pattern_type import RecurrencePatternType
    from msgraph.generated.models.recurrence_range import RecurrenceRange
    from msgraph.generated.models.recurrence_range_type import RecurrenceRangeType
    from msgraph.generated.users.item.calendar_view.calendar_view_request_builder import (
        CalendarViewRequestBuilder,
    )
    from msgraph.generated.users.item.events.item.instances.instances_request_builder import (
        InstancesRequestBuilder,
    )

    user = graph_client.users.by_user_id(people["ann"])
    series = run(
        user.events.post(
            _event(
                "Daily stand-up",
                "2026-11-02T08:00:00",
                "2026-11-02T08:15:00",
                recurrence=PatternedRecurrence(
                    pattern=RecurrencePattern(type=RecurrencePatternType.Daily, interval=1),
                    range=RecurrenceRange(
                        type=RecurrenceRangeType.Numbered,
                        start_date=datetime(2026, 11, 2).date(),
                        number_of_occurrences=5,
                    ),
                ),
            )
        )
    )
    view = run(
        user.calendar_view.get(
            request_configuration=CalendarViewRequestBuilder.CalendarViewRequestBuilderGetRequestConfiguration(
                query_parameters=CalendarViewRequestBuilder.CalendarViewRequestBuilderGetQueryParameters(
                    start_date_time="2026-11-03T00:00:00Z", end_date_time="2026-11-05T00:00:00Z"
                )
            )
        )
    )
    instances = run(
        user.events.by_event_id(series.id).instances.get(
            request_configuration=InstancesRequestBuilder.InstancesRequestBuilderGetRequestConfiguration(
                query_parameters=InstancesRequestBuilder.InstancesRequestBuilderGetQueryParameters(
                    start_date_time="2026-11-01T00:00:00Z", end_date_time="2026-12-01T00:00:00Z"
                )
            )
        )
    )
    assert [e.start.date_time[:10] for e in view.value] == ["2026-11-03", "2026-11-04"]
    assert {e.series_master_id for e in view.value} == {series.id}
    assert len(instances.value) == 5


def test_sdk_follows_delta_links_with_and_without_parentheses(
    graph_client: Any, run: Run, people: dict[str, str], control: Control
) -> None:
    from msgraph.generated.users.item.calendar_view.delta.delta_request_builder import (
        DeltaRequestBuilder,
    )

    for day in (2, 3, 4):
        control.add_event(
            "ann@contoso.example",
            {
                "subject": f"Call {day}",
                "start": {"dateTime": f"2026-11-0{day}T10:00:00"},
                "end": {"dateTime": f"2026-11-0{day}T11:00:00"},
            },
        )
    delta = graph_client.users.by_user_id(people["ann"]).calendar_view.delta
    config = DeltaRequestBuilder.DeltaRequestBuilderGetRequestConfiguration(
        query_parameters=DeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters(
            start_date_time="2026-11-01T00:00:00Z", end_date_time="2026-12-01T00:00:00Z"
        )
    )
    config.headers.add("Prefer", "odata.maxpagesize=2")
    page = run(delta.get(request_configuration=config))
    subjects = [e.subject for e in page.value]
    while page.odata_next_link:
        page = run(delta.with_url(page.odata_next_link).get(request_configuration=config))
        subjects += [e.subject for e in page.value]
    assert sorted(subjects) == ["Call 2", "Call 3", "Call 4"]
    assert page.odata_delta_link
    routes = control.requests_served()["byRoute"]
    assert routes["GET /v1.0/users/{user}/calendarView/delta()"] == 1
    assert routes["GET /v1.0/users/{user}/calendarView/delta"] == 1


def test_sdk_meeting_actions_cancel_and_respond(
    graph_client: Any, run: Run, people: dict[str, str], control: Control
) -> None:
    from msgraph.generated.users.item.events.item.accept.accept_post_request_body import (
        AcceptPostRequestBody,
    )
    from msgraph.generated.users.item.events.item.cancel.cancel_post_request_body import (
        CancelPostRequestBody,
    )

    ann = graph_client.users.by_user_id(people["ann"])
    bob = graph_client.users.by_user_id(people["bob"])
    created = run(
        ann.events.post(
            _event(
                "Negotiation", "2026-11-25T13:00:00", "2026-11-25T14:00:00", "bob@contoso.example"
            )
        )
    )
    bob_copy = run(bob.events.get()).value[0]
    run(bob.events.by_event_id(bob_copy.id).accept.post(AcceptPostRequestBody(send_response=True)))
    organizer_view = run(ann.events.by_event_id(created.id).get())
    run(ann.events.by_event_id(created.id).cancel.post(CancelPostRequestBody(comment="Deal lost")))
    bob_after = run(bob.events.by_event_id(bob_copy.id).get())
    assert organizer_view.attendees[0].status.response.value == "accepted"
    assert bob_after.is_cancelled is True
    assert run(ann.events.get()).value == []


def test_sdk_manages_a_subscription(
    graph_client: Any, run: Run, people: dict[str, str], receiver: Receiver
) -> None:
    from msgraph.generated.models.subscription import Subscription

    soon = datetime.now(UTC) + timedelta(hours=1)
    created = run(
        graph_client.subscriptions.post(
            Subscription(
                change_type="created,updated,deleted",
                notification_url=receiver.url,
                resource=f"/users/{people['ann']}/events",
                expiration_date_time=soon,
                client_state="state-1",
            )
        )
    )
    renewed = run(
        graph_client.subscriptions.by_subscription_id(created.id).patch(
            Subscription(expiration_date_time=soon + timedelta(hours=24))
        )
    )
    listed = run(graph_client.subscriptions.get())
    fetched = run(graph_client.subscriptions.by_subscription_id(created.id).get())
    run(graph_client.subscriptions.by_subscription_id(created.id).delete())
    assert receiver.validations, "the sandbox did the validation handshake"
    assert renewed.expiration_date_time > created.expiration_date_time
    assert [s.id for s in listed.value] == [created.id]
    assert fetched.client_state == "state-1"
    assert run(graph_client.subscriptions.get()).value == []


def test_sdk_request_adapter_sends_a_batch(
    graph_client: Any, run: Run, people: dict[str, str]
) -> None:
    from kiota_abstractions.method import Method
    from kiota_abstractions.request_information import RequestInformation

    body = {
        "requests": [
            {"id": "1", "method": "GET", "url": f"/users/{people['ann']}"},
            {
                "id": "2",
                "method": "POST",
                "url": f"/users/{people['ann']}/events",
                "headers": {"Content-Type": "application/json"},
                "body": {
                    "subject": "From a batch",
                    "start": {"dateTime": "2026-11-26T09:00:00"},
                    "end": {"dateTime": "2026-11-26T09:30:00"},
                },
            },
        ]
    }
    info = RequestInformation(Method.POST, "{+baseurl}/$batch", {})
    info.set_stream_content(json.dumps(body).encode(), "application/json")
    info.headers.try_add("Accept", "application/json")
    raw = run(graph_client.request_adapter.send_primitive_async(info, "bytes", {}))
    answers = {a["id"]: a for a in json.loads(raw)["responses"]}
    assert answers["1"]["status"] == 200
    assert answers["2"]["status"] == 201
    assert answers["2"]["body"]["subject"] == "From a batch"
