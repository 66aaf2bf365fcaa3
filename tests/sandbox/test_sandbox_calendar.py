"""Exchange's calendar semantics over Graph: meeting copies, cancellation, recurrence, time zones,
idempotent creation, and calendarView delta rounds."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from sandbox.server import RunningSandbox

from .conftest import Control, meeting

WINDOW = {"startDateTime": "2026-11-01T00:00:00Z", "endDateTime": "2026-12-01T00:00:00Z"}


@pytest.fixture
def graph(sandbox: RunningSandbox, graph_http: requests.Session) -> Any:
    class Graph:
        base = f"{sandbox.base_url}/v1.0"

        def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
            url = path if path.startswith("http") else f"{self.base}{path}"
            return graph_http.request(method, url, timeout=10, **kwargs)

        def ok(self, method: str, path: str, **kwargs: Any) -> Any:
            answer = self.call(method, path, **kwargs)
            assert answer.status_code < 300, answer.text
            return answer.json() if answer.content else None

    return Graph()


@pytest.fixture
def team(control: Control) -> dict[str, str]:
    return {
        "ann": control.add_user("ann", "Ann Rep", "Pacific Standard Time")["id"],
        "bob": control.add_user("bob", "Bob Buyer", "W. Europe Standard Time")["id"],
        "cat": control.add_user("cat", "Cat Champion")["id"],
    }


def _only(items: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(items) == 1, items
    return items[0]


def test_attendee_copies_share_the_icaluid_and_have_their_own_ids(
    graph: Any, team: dict[str, str], control: Control
) -> None:
    created = graph.ok(
        "POST",
        "/users/ann@contoso.example/events",
        json=meeting(
            "Discovery call",
            "2026-11-23T17:00:00",
            "2026-11-23T18:00:00",
            "bob@contoso.example",
            "Cat@Contoso.example",
            "outsider@fabrikam.example",
        ),
    )
    bob = _only(control.stored_events("bob@contoso.example"))
    cat = _only(control.stored_events("cat@contoso.example"))
    assert bob["iCalUId"] == cat["iCalUId"] == created["iCalUId"]
    assert len({bob["id"], cat["id"], created["id"]}) == 3
    assert (bob["isOrganizer"], bob["responseStatus"]["response"]) == (False, "notResponded")
    assert bob["organizer"]["emailAddress"]["address"] == "ann@contoso.example"
    assert created["responseStatus"]["response"] == "organizer"
    assert {a["status"]["response"] for a in created["attendees"]} == {"none"}


def test_organizer_updates_reach_copies_and_cancellation_marks_them(
    graph: Any, team: dict[str, str], control: Control
) -> None:
    created = graph.ok(
        "POST",
        f"/users/{team['ann']}/events",
        json=meeting(
            "Proposal walk-through",
            "2026-11-24T17:00:00",
            "2026-11-24T18:00:00",
            "bob@contoso.example",
        ),
    )
    graph.ok(
        "PATCH",
        f"/users/{team['ann']}/events/{created['id']}",
        json={
            "subject": "Proposal walk-through (v2)",
            "start": {"dateTime": "2026-11-24T10:00:00", "timeZone": "Pacific Standard Time"},
            "end": {"dateTime": "2026-11-24T11:00:00", "timeZone": "Pacific Standard Time"},
        },
    )
    moved = _only(control.stored_events("bob@contoso.example"))
    graph.ok("DELETE", f"/users/{team['ann']}/events/{created['id']}")
    cancelled = _only(control.stored_events("bob@contoso.example"))
    assert moved["subject"] == "Proposal walk-through (v2)"
    assert moved["start"] == {"dateTime": "2026-11-24T18:00:00.0000000", "timeZone": "UTC"}
    assert cancelled["isCancelled"] is True
    assert cancelled["subject"].startswith("Canceled: ")
    assert control.stored_events("ann@contoso.example") == []


def test_removing_an_attendee_cancels_their_copy_and_adding_one_sends_a_copy(
    graph: Any, team: dict[str, str], control: Control
) -> None:
    created = graph.ok(
        "POST",
        f"/users/{team['ann']}/events",
        json=meeting(
            "Pricing", "2026-11-24T17:00:00", "2026-11-24T18:00:00", "bob@contoso.example"
        ),
    )
    graph.ok(
        "PATCH",
        f"/users/{team['ann']}/events/{created['id']}",
        json={
            "attendees": [{"emailAddress": {"address": "cat@contoso.example"}, "type": "optional"}]
        },
    )
    assert _only(control.stored_events("bob@contoso.example"))["isCancelled"] is True
    assert _only(control.stored_events("cat@contoso.example"))["isCancelled"] is False


def test_declining_removes_the_copy_and_the_organizer_sees_the_answer(
    graph: Any, team: dict[str, str], control: Control
) -> None:
    created = graph.ok(
        "POST",
        f"/users/{team['ann']}/events",
        json=meeting(
            "Pricing", "2026-11-24T17:00:00", "2026-11-24T18:00:00", "bob@contoso.example"
        ),
    )
    bob_copy = _only(control.stored_events("bob@contoso.example"))
    answer = graph.call(
        "POST", f"/users/{team['bob']}/events/{bob_copy['id']}/decline", json={"sendResponse": True}
    )
    organizer = graph.ok("GET", f"/users/{team['ann']}/events/{created['id']}")
    assert answer.status_code == 202
    assert control.stored_events("bob@contoso.example") == []
    assert organizer["attendees"][0]["status"]["response"] == "declined"


def test_a_repeated_post_with_the_same_transaction_id_makes_one_event(
    graph: Any, team: dict[str, str]
) -> None:
    body = meeting(
        "Reminder: follow up",
        "2026-11-25T09:00:00",
        "2026-11-25T09:15:00",
        transactionId="reminder-7-attempt",
    )
    first = graph.ok("POST", f"/users/{team['ann']}/events", json=body)
    again = graph.ok("POST", f"/users/{team['ann']}/events", json=body)
    listed = graph.ok("GET", f"/users/{team['ann']}/events")
    assert again["id"] == first["id"]
    assert [e["id"] for e in listed["value"]] == [first["id"]]


def test_an_unknown_property_is_refused_like_graph(graph: Any, team: dict[str, str]) -> None:
    body = meeting("Typo", "2026-11-25T09:00:00", "2026-11-25T09:15:00", isReminderSet=True)
    answer = graph.call("POST", f"/users/{team['ann']}/events", json=body)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "RequestBodyRead"
    assert "isReminderSet" in answer.json()["error"]["message"]


def test_times_come_in_utc_unless_a_time_zone_is_preferred(
    graph: Any, team: dict[str, str]
) -> None:
    created = graph.ok(
        "POST",
        f"/users/{team['ann']}/events",
        json={
            "subject": "Local lunch",
            "start": {"dateTime": "2026-07-01T12:00:00", "timeZone": "Pacific Standard Time"},
            "end": {"dateTime": "2026-07-01T13:00:00", "timeZone": "Pacific Standard Time"},
        },
    )
    path = f"/users/{team['ann']}/events/{created['id']}"
    in_paris = graph.call("GET", path, headers={"Prefer": 'outlook.timezone="Europe/Paris"'})
    in_windows = graph.ok(
        "GET", path, headers={"Prefer": 'outlook.timezone="W. Europe Standard Time"'}
    )
    assert created["start"] == {"dateTime": "2026-07-01T19:00:00.0000000", "timeZone": "UTC"}
    assert created["originalStartTimeZone"] == "Pacific Standard Time"
    assert in_paris.json()["start"]["dateTime"] == "2026-07-01T21:00:00.0000000"
    assert in_paris.headers["Preference-Applied"] == 'outlook.timezone="Europe/Paris"'
    assert in_windows["start"]["timeZone"] == "W. Europe Standard Time"


def test_weekly_series_expands_with_a_moved_and_a_cancelled_occurrence(
    graph: Any, team: dict[str, str], control: Control
) -> None:
    master = graph.ok(
        "POST",
        f"/users/{team['ann']}/events",
        json=meeting(
            "Pipeline review",
            "2026-11-02T17:00:00",
            "2026-11-02T17:30:00",
            "bob@contoso.example",
            recurrence={
                "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["Monday", "Thursday"]},
                "range": {"type": "endDate", "startDate": "2026-11-02", "endDate": "2026-11-16"},
            },
        ),
    )
    view = graph.ok(
        "GET",
        f"/users/{team['ann']}/calendarView",
        params=WINDOW,
        headers={"Prefer": "odata.maxpagesize=50"},
    )["value"]
    days = [e["start"]["dateTime"][:10] for e in view]
    second, third = view[1], view[2]
    graph.ok(
        "PATCH",
        f"/users/{team['ann']}/events/{second['id']}",
        json={
            "start": {"dateTime": "2026-11-05T20:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2026-11-05T20:30:00", "timeZone": "UTC"},
        },
    )
    graph.ok("DELETE", f"/users/{team['ann']}/events/{third['id']}")
    after = graph.ok("GET", f"/users/{team['ann']}/calendarView", params=WINDOW)["value"]
    bob_view = graph.ok("GET", f"/users/{team['bob']}/calendarView", params=WINDOW)["value"]
    assert days == ["2026-11-02", "2026-11-05", "2026-11-09", "2026-11-12", "2026-11-16"]
    assert {e["seriesMasterId"] for e in view} == {master["id"]}
    assert [(e["type"], e["start"]["dateTime"][:13]) for e in after] == [
        ("occurrence", "2026-11-02T17"),
        ("exception", "2026-11-05T20"),
        ("occurrence", "2026-11-12T17"),
        ("occurrence", "2026-11-16T17"),
    ]
    assert after[1]["id"] == second["id"]
    assert [e["isCancelled"] for e in bob_view] == [False, False, True, False, False]


def test_occurrences_keep_their_wall_clock_time_across_daylight_saving(
    graph: Any, team: dict[str, str]
) -> None:
    graph.ok(
        "POST",
        f"/users/{team['ann']}/events",
        json={
            "subject": "Morning check-in",
            "start": {"dateTime": "2026-10-30T09:00:00", "timeZone": "Pacific Standard Time"},
            "end": {"dateTime": "2026-10-30T09:15:00", "timeZone": "Pacific Standard Time"},
            "recurrence": {
                "pattern": {"type": "daily", "interval": 1},
                "range": {"type": "numbered", "startDate": "2026-10-30", "numberOfOccurrences": 4},
            },
        },
    )
    view = graph.ok(
        "GET",
        f"/users/{team['ann']}/calendarView",
        params={"startDateTime": "2026-10-29T00:00:00Z", "endDateTime": "2026-11-05T00:00:00Z"},
        headers={"Prefer": 'outlook.timezone="Pacific Standard Time"'},
    )["value"]
    utc = graph.ok(
        "GET",
        f"/users/{team['ann']}/calendarView",
        params={"startDateTime": "2026-10-29T00:00:00Z", "endDateTime": "2026-11-05T00:00:00Z"},
    )["value"]
    assert {e["start"]["dateTime"][11:16] for e in view} == {"09:00"}
    assert [e["start"]["dateTime"][11:13] for e in utc] == ["16", "16", "17", "17"]


def test_calendar_view_needs_a_window_and_pages_by_ten(
    graph: Any, team: dict[str, str], control: Control
) -> None:
    for hour in range(12):
        control.add_event(
            "ann@contoso.example",
            meeting(f"Slot {hour}", f"2026-11-10T{hour:02d}:00:00", f"2026-11-10T{hour:02d}:30:00"),
        )
    missing = graph.call("GET", f"/users/{team['ann']}/calendarView")
    first = graph.ok("GET", f"/users/{team['ann']}/calendarView", params=WINDOW)
    second = graph.ok("GET", first["@odata.nextLink"])
    assert missing.json()["error"]["code"] == "ErrorInvalidParameter"
    assert len(first["value"]) == 10
    assert [e["subject"] for e in second["value"]] == ["Slot 10", "Slot 11"]
    assert "@odata.nextLink" not in second


def _round(
    graph: Any, url: str, params: dict[str, str] | None = None
) -> tuple[list[list[dict[str, Any]]], str]:
    pages, link = [], None
    answer = graph.ok("GET", url, params=params, headers={"Prefer": "odata.maxpagesize=2"})
    while True:
        pages.append(answer["value"])
        link = answer.get("@odata.nextLink")
        if not link:
            return pages, answer["@odata.deltaLink"]
        answer = graph.ok("GET", link, headers={"Prefer": "odata.maxpagesize=2"})


def test_delta_over_three_rounds_returns_only_changes(
    graph: Any, team: dict[str, str], control: Control
) -> None:
    ids = [
        control.add_event(
            "bob@contoso.example",
            meeting(f"Call {day}", f"2026-11-{day:02d}T10:00:00", f"2026-11-{day:02d}T11:00:00"),
        )["id"]
        for day in (2, 3, 4, 5, 6)
    ]
    url = f"/users/{team['bob']}/calendarView/delta()"
    first, link = _round(graph, url, WINDOW)
    graph.ok("PATCH", f"/users/{team['bob']}/events/{ids[1]}", json={"subject": "Call 3 (moved)"})
    second, link = _round(graph, link)
    graph.ok("DELETE", f"/users/{team['bob']}/events/{ids[4]}")
    third, link = _round(graph, link)
    quiet, _ = _round(graph, link)
    assert [len(page) for page in first] == [2, 2, 1]
    assert sorted(e["id"] for page in first for e in page) == sorted(ids)
    assert [[e["subject"] for e in page] for page in second] == [["Call 3 (moved)"]]
    assert third == [
        [{"@odata.type": "#microsoft.graph.event", "id": ids[4], "@removed": {"reason": "deleted"}}]
    ]
    assert quiet == [[]]


def test_delta_reports_changes_outside_the_window_as_removed(
    graph: Any, team: dict[str, str], control: Control
) -> None:
    inside = control.add_event(
        "bob@contoso.example", meeting("In", "2026-11-10T10:00:00", "2026-11-10T11:00:00")
    )
    _, link = _round(graph, f"/users/{team['bob']}/calendarView/delta", WINDOW)
    graph.ok(
        "PATCH",
        f"/users/{team['bob']}/events/{inside['id']}",
        json={
            "start": {"dateTime": "2027-01-10T10:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2027-01-10T11:00:00", "timeZone": "UTC"},
        },
    )
    outside = control.add_event(
        "bob@contoso.example", meeting("Out", "2027-02-01T10:00:00", "2027-02-01T11:00:00")
    )
    changes, _ = _round(graph, link)
    removed = {e["id"] for page in changes for e in page if "@removed" in e}
    assert removed == {inside["id"], outside["id"]}


def test_delta_sends_a_series_whole_as_master_and_bare_occurrences(
    graph: Any, team: dict[str, str], control: Control
) -> None:
    control.add_event(
        "bob@contoso.example", meeting("Single", "2026-11-01T08:00:00", "2026-11-01T09:00:00")
    )
    master = control.add_event(
        "bob@contoso.example",
        meeting(
            "Stand-up",
            "2026-11-02T09:00:00",
            "2026-11-02T09:15:00",
            recurrence={
                "pattern": {"type": "daily", "interval": 1},
                "range": {"type": "numbered", "startDate": "2026-11-02", "numberOfOccurrences": 3},
            },
        ),
    )
    pages, _ = _round(graph, f"/users/{team['bob']}/calendarView/delta", WINDOW)
    series_page = pages[1]
    assert [e["subject"] for e in pages[0]] == ["Single"]
    assert [e.get("type") for e in series_page] == [
        "seriesMaster",
        "occurrence",
        "occurrence",
        "occurrence",
    ]
    assert series_page[0]["id"] == master["id"]
    assert set(series_page[1]) == {
        "@odata.type",
        "@odata.etag",
        "id",
        "seriesMasterId",
        "type",
        "start",
        "end",
    }


def test_an_unknown_or_expired_delta_token_answers_410_sync_state_not_found(
    graph: Any, team: dict[str, str], control: Control
) -> None:
    _, link = _round(graph, f"/users/{team['bob']}/calendarView/delta", WINDOW)
    control.fault(route=r"calendarView/delta.*deltatoken", status=410, count=1)
    forced = graph.call("GET", link)
    unknown = graph.call("GET", f"/users/{team['bob']}/calendarView/delta?$deltatoken=nope")
    still_good = graph.call("GET", link)
    assert (forced.status_code, forced.json()["error"]["code"]) == (410, "SyncStateNotFound")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (410, "SyncStateNotFound")
    assert still_good.status_code == 200


def test_a_refused_patch_leaves_the_event_as_it_was(graph: Any, team: dict[str, str]) -> None:
    created = graph.ok(
        "POST",
        f"/users/{team['ann']}/events",
        json=meeting("Kept", "2026-11-24T17:00:00", "2026-11-24T18:00:00"),
    )
    path = f"/users/{team['ann']}/events/{created['id']}"
    refused = graph.call(
        "PATCH",
        path,
        json={"subject": "Changed", "end": {"dateTime": "2026-11-24T16:00:00", "timeZone": "UTC"}},
    )
    after = graph.ok("GET", path)
    assert refused.status_code == 400
    assert (after["subject"], after["changeKey"]) == ("Kept", created["changeKey"])
