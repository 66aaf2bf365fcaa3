"""Reading meetings over the sandbox: delta rounds, windows, recurrence, zones, subscriptions."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import msgspec
import pytest
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from graph_sync.client import GraphClient
from graph_sync.meetings import (
    CalendarWindow,
    ChangeNotificationCollection,
    DeltaRound,
    LifecycleNotificationCollection,
    create_subscription,
    delete_subscription,
    read_delta,
    renew_subscription,
)
from graph_sync.models import decode_page

from .conftest import Control, event_body

WINDOW = CalendarWindow(
    start=datetime(2026, 12, 1, tzinfo=UTC), end=datetime(2027, 1, 1, tzinfo=UTC)
)
DELTA_ROUTE = "GET /v1.0/users/{user}/calendarView/delta"


def day(n: int, hour: int = 9) -> str:
    return f"2026-12-{n:02d}T{hour:02d}:00:00"


def event_ids(found: DeltaRound) -> list[str]:
    return [m.event_id for m in found.meetings]


def test_delta_rounds_see_creates_updates_and_deletes_once_each(
    graph: GraphClient, control: Control
) -> None:
    ann = control.add_user("ann")["id"]
    created = [control.add_event(ann, event_body(f"m{n}", day(n), day(n, 10))) for n in range(1, 6)]

    first = read_delta(graph, ann, WINDOW, None, page_size=2)
    graph.patch_json(f"/users/{ann}/events/{created[0]['id']}", {"subject": "m1 moved on"})
    graph.delete(f"/users/{ann}/events/{created[1]['id']}")
    added = control.add_event(ann, event_body("m6", day(6), day(6, 10)))
    second = read_delta(graph, ann, WINDOW, first.delta_link, page_size=2)
    third = read_delta(graph, ann, WINDOW, second.delta_link, page_size=2)

    assert sorted(event_ids(first)) == sorted(e["id"] for e in created)
    assert first.pages >= 3
    assert sorted(event_ids(second)) == sorted([created[0]["id"], added["id"]])
    assert {m.subject for m in second.meetings} == {"m1 moved on", "m6"}
    assert second.removed == [created[1]["id"]]
    assert second.removed_reasons[created[1]["id"]] == "deleted"
    assert third.meetings == []
    assert third.removed == []
    assert third.pages == 1


def test_initial_round_uses_the_page_size_and_follows_next_links(
    graph: GraphClient, control: Control
) -> None:
    ann = control.add_user("ann")["id"]
    for n in range(1, 8):
        control.add_event(ann, event_body(f"m{n}", day(n), day(n, 10)))

    found = read_delta(graph, ann, WINDOW, None, page_size=3)

    assert len(found.meetings) == 7
    assert len(set(event_ids(found))) == 7
    assert control.calls(DELTA_ROUTE) == found.pages >= 3


def test_expired_delta_token_restarts_the_round_once(graph: GraphClient, control: Control) -> None:
    ann = control.add_user("ann")["id"]
    for n in range(1, 4):
        control.add_event(ann, event_body(f"m{n}", day(n), day(n, 10)))
    first = read_delta(graph, ann, WINDOW, None)
    control.fault(route="GET /v1.0/users/.*/delta.*deltatoken", status=410, count=1)

    again = read_delta(graph, ann, WINDOW, first.delta_link)

    assert again.restarted is True
    assert sorted(event_ids(again)) == sorted(event_ids(first))
    assert again.delta_link


def test_meetings_outside_the_window_are_left_out(graph: GraphClient, control: Control) -> None:
    ann = control.add_user("ann")["id"]
    inside = control.add_event(ann, event_body("in", day(10), day(10, 10)))
    control.add_event(ann, event_body("before", "2026-11-20T09:00:00", "2026-11-20T10:00:00"))

    found = read_delta(graph, ann, WINDOW, None)
    graph.patch_json(
        f"/users/{ann}/events/{inside['id']}",
        {
            "start": {"dateTime": "2027-02-01T09:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2027-02-01T10:00:00", "timeZone": "UTC"},
        },
    )
    after_move = read_delta(graph, ann, WINDOW, found.delta_link)

    assert [m.subject for m in found.meetings] == ["in"]
    assert after_move.meetings == []
    assert after_move.removed == [inside["id"]]


def test_recurring_series_comes_as_occurrences_with_stable_keys(
    graph: GraphClient, control: Control
) -> None:
    ann = control.add_user("ann")["id"]
    series = event_body(
        "weekly call",
        "2026-12-07T15:00:00",
        "2026-12-07T15:30:00",
        "carol@fabrikam.com",
        recurrence={
            "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
            "range": {"type": "numbered", "startDate": "2026-12-07", "numberOfOccurrences": 3},
        },
    )
    master = control.add_event(ann, series)

    first = read_delta(graph, ann, WINDOW, None)
    occurrences = sorted(first.meetings, key=lambda m: m.start)
    second_one = occurrences[1]
    graph.patch_json(
        f"/users/{ann}/events/{second_one.event_id}",
        {
            "start": {"dateTime": "2026-12-14T17:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2026-12-14T17:30:00", "timeZone": "UTC"},
        },
    )
    after_move = read_delta(graph, ann, WINDOW, first.delta_link)
    moved = [m for m in after_move.meetings if m.event_type == "exception"]

    assert [m.event_type for m in occurrences] == ["occurrence"] * 3
    assert {m.series_master_id for m in occurrences} == {master["id"]}
    assert len({m.occurrence_key for m in occurrences}) == 3
    assert [m.start.hour for m in occurrences] == [15, 15, 15]
    assert len(moved) == 1
    assert moved[0].start == datetime(2026, 12, 14, 17, tzinfo=UTC)
    assert moved[0].occurrence_key == second_one.occurrence_key


def test_one_meeting_has_one_key_in_every_attendees_mailbox(
    graph: GraphClient, control: Control
) -> None:
    ann = control.add_user("ann")
    bob = control.add_user("bob")
    control.add_event(
        ann["id"],
        event_body("pricing", day(3), day(3, 10), bob["userPrincipalName"], "dana@fabrikam.com"),
    )

    ann_round = read_delta(graph, ann["id"], WINDOW, None)
    bob_round = read_delta(graph, bob["id"], WINDOW, None)

    (ann_meeting,) = ann_round.meetings
    (bob_meeting,) = bob_round.meetings
    assert ann_meeting.occurrence_key == bob_meeting.occurrence_key
    assert ann_meeting.event_id != bob_meeting.event_id
    assert bob_meeting.organizer_email == ann["userPrincipalName"].lower()
    assert {a.email for a in bob_meeting.attendees} == {
        bob["userPrincipalName"].lower(),
        "dana@fabrikam.com",
    }


def test_organizer_cancellation_marks_the_attendees_copy_cancelled(
    graph: GraphClient, control: Control
) -> None:
    ann = control.add_user("ann")
    bob = control.add_user("bob")
    event = control.add_event(
        ann["id"], event_body("demo", day(4), day(4, 10), bob["userPrincipalName"])
    )
    before = read_delta(graph, bob["id"], WINDOW, None)

    graph.post_json(f"/users/{ann['id']}/events/{event['id']}/cancel", {"comment": "sorry"})
    after = read_delta(graph, bob["id"], WINDOW, before.delta_link)

    assert [m.is_cancelled for m in before.meetings] == [False]
    assert [m.is_cancelled for m in after.meetings] == [True]


def test_windows_time_zone_events_are_read_as_utc(graph: GraphClient, control: Control) -> None:
    ann = control.add_user("ann", time_zone="W. Europe Standard Time")["id"]
    control.add_event(
        ann,
        {
            "subject": "Berlin morning",
            "start": {"dateTime": "2026-12-15T09:00:00", "timeZone": "W. Europe Standard Time"},
            "end": {"dateTime": "2026-12-15T10:00:00", "timeZone": "W. Europe Standard Time"},
        },
    )

    (meeting,) = read_delta(graph, ann, WINDOW, None).meetings

    assert meeting.start == datetime(2026, 12, 15, 8, tzinfo=UTC)
    assert meeting.end - meeting.start == timedelta(hours=1)


def test_window_must_be_aware_and_ordered() -> None:
    with pytest.raises(ValueError, match="aware"):
        CalendarWindow(start=datetime(2026, 1, 1), end=datetime(2026, 2, 1))
    with pytest.raises(ValueError, match="after"):
        CalendarWindow(start=WINDOW.end, end=WINDOW.start)


def test_rolling_window_spans_whole_days_back_and_ahead() -> None:
    window = CalendarWindow.around(datetime(2026, 6, 15, 13, 30, tzinfo=UTC), days_back=30)

    assert window.start == datetime(2026, 5, 16, tzinfo=UTC)
    assert window.end == datetime(2026, 9, 14, tzinfo=UTC)


# --- subscriptions -----------------------------------------------------------------------------


class _Quiet(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return


@dataclass
class Receiver:
    """A subscriber endpoint: answers Graph's validation, keeps what it is sent."""

    url: str
    posts: list[tuple[str, bytes]] = field(default_factory=list)

    def wait_for(self, path: str, timeout: float = 5.0) -> bytes:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for got_path, body in self.posts:
                if got_path == path:
                    return body
            time.sleep(0.02)
        raise AssertionError(f"nothing posted to {path}: {self.posts}")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    box: list[Receiver] = []

    @Request.application
    def endpoint(request: Request) -> Response:
        token = parse_qs(request.query_string.decode()).get("validationToken")
        if token:
            return Response(token[0], content_type="text/plain")
        box[0].posts.append((request.path, request.get_data()))
        return Response(status=202)

    server = make_server("127.0.0.1", 0, endpoint, threaded=True, request_handler=_Quiet)
    box.append(Receiver(f"http://127.0.0.1:{server.server_port}"))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield box[0]
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_subscription_is_created_notifies_renews_and_deletes(
    graph: GraphClient, control: Control, receiver: Receiver
) -> None:
    ann = control.add_user("ann")["id"]

    subscription = create_subscription(
        graph, ann, f"{receiver.url}/notify", f"{receiver.url}/lifecycle", "s3cret", minutes=60
    )
    control.add_event(ann, event_body("new", day(5), day(5, 10)))
    notified = ChangeNotificationCollection.model_validate_json(receiver.wait_for("/notify"))
    renewed = renew_subscription(graph, subscription.id, minutes=10_000)
    deleted = delete_subscription(graph, subscription.id)
    deleted_again = delete_subscription(graph, subscription.id)

    now = datetime.now(UTC)
    assert subscription.resource == f"/users/{ann}/events"
    assert timedelta(minutes=55) < subscription.expiration_date_time - now < timedelta(minutes=65)
    (change,) = notified.value
    assert change.subscription_id == subscription.id
    assert change.change_type == "created"
    assert change.client_state == "s3cret"
    assert change.mailbox is not None
    assert change.mailbox.lower() == ann.lower()
    assert renewed.expiration_date_time - now <= timedelta(minutes=4230, seconds=5)
    assert renewed.expiration_date_time > subscription.expiration_date_time
    assert (deleted, deleted_again) == (True, False)


def test_lifecycle_notification_parses(
    graph: GraphClient, control: Control, receiver: Receiver
) -> None:
    ann = control.add_user("ann")["id"]
    subscription = create_subscription(
        graph, ann, f"{receiver.url}/notify", f"{receiver.url}/lifecycle", "s3cret"
    )

    sent = control.post(
        "/lifecycle", {"subscriptionId": subscription.id, "lifecycleEvent": "missed"}
    )
    notified = LifecycleNotificationCollection.model_validate_json(receiver.wait_for("/lifecycle"))

    assert sent.status_code == 202
    (event,) = notified.value
    assert event.lifecycle_event == "missed"
    assert event.subscription_id == subscription.id


def test_a_page_graph_could_not_have_sent_is_refused_naming_the_field() -> None:
    """The wire structs (msgspec) refuse a wrong type with the path to it, for the round's
    UnreadablePage; fields Graph adds over time are ignored."""
    good = b'{"value": [{"id": "e1", "subject": "Hi", "newField": 1}], "@odata.deltaLink": "d"}'
    page = decode_page(good)
    assert (page.value[0].subject, page.delta_link) == ("Hi", "d")
    with pytest.raises(msgspec.ValidationError, match=r"\$\.value\[0\]\.isAllDay"):
        decode_page(b'{"value": [{"id": "e1", "isAllDay": "yes"}]}')
    with pytest.raises(msgspec.DecodeError):
        decode_page(b"<html>not json</html>")
