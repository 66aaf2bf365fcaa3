"""Online meetings and attendance reports: shapes checked with msgraph-sdk's typed models."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msal
import requests

from sandbox.server import RunningSandbox

from .conftest import GRAPH_SCOPE, MICROSOFT_LOGIN, AuthorityRewrite, Control, meeting
from .typed_contract import assert_typed

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
START = NOW - dt.timedelta(hours=2)
END = START + dt.timedelta(minutes=30)


def _iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def _online(control: Control, **extra: Any) -> dict[str, Any]:
    control.add_user("ann", "Ann Rep")
    return control.add_event(
        "ann@contoso.example",
        meeting(
            "Pricing",
            _iso(START),
            _iso(END),
            "dana@fabrikam.com",
            isOnlineMeeting=True,
            **extra,
        ),
    )


def _scenario(control: Control, join_url: str, joined: list[dict[str, Any]], **rest: Any) -> None:
    body = {"joinUrl": join_url, "start": START.isoformat(), "end": END.isoformat()}
    answer = control.post("/attendance", body | {"joined": joined} | rest)
    assert answer.status_code == 201, answer.text


def _find(graph_http: requests.Session, base: str, join_url: str) -> requests.Response:
    return graph_http.get(
        f"{base}/v1.0/users/ann@contoso.example/onlineMeetings",
        params={"$filter": f"JoinWebUrl eq '{join_url}'"},
        timeout=10,
    )


def test_a_meetings_attendance_report_has_graphs_shapes(
    sandbox: RunningSandbox, control: Control, graph_http: requests.Session
) -> None:
    from msgraph.generated.models.attendance_record_collection_response import (
        AttendanceRecordCollectionResponse,
    )
    from msgraph.generated.models.meeting_attendance_report import MeetingAttendanceReport
    from msgraph.generated.models.meeting_attendance_report_collection_response import (
        MeetingAttendanceReportCollectionResponse,
    )
    from msgraph.generated.models.online_meeting_collection_response import (
        OnlineMeetingCollectionResponse,
    )

    event = _online(control)
    join_url = event["onlineMeeting"]["joinUrl"]
    _scenario(
        control,
        join_url,
        [
            {"email": "ann@contoso.example", "minutes": 30},
            {"email": "dana@fabrikam.com", "name": "Dana", "minutes": 25, "joinAfterMinutes": 3},
        ],
        readyAfterMinutes=0,
    )
    found = _find(graph_http, sandbox.base_url, join_url)
    assert found.status_code == 200, found.text
    [online] = assert_typed(OnlineMeetingCollectionResponse, found.json()).value
    assert online.join_web_url == join_url
    base = f"{sandbox.base_url}/v1.0/users/ann@contoso.example/onlineMeetings/{online.id}"
    listed = graph_http.get(f"{base}/attendanceReports", timeout=10).json()
    [report] = assert_typed(MeetingAttendanceReportCollectionResponse, listed).value
    assert report.total_participant_count == 2
    full = graph_http.get(
        f"{base}/attendanceReports/{report.id}",
        params={"$expand": "attendanceRecords"},
        timeout=10,
    ).json()
    parsed = assert_typed(MeetingAttendanceReport, full)
    dana = next(r for r in parsed.attendance_records if r.email_address == "dana@fabrikam.com")
    assert dana.total_attendance_in_seconds == 25 * 60
    assert dana.attendance_intervals[0].join_date_time == START + dt.timedelta(minutes=3)
    records = graph_http.get(f"{base}/attendanceReports/{report.id}/attendanceRecords", timeout=10)
    assert len(assert_typed(AttendanceRecordCollectionResponse, records.json()).value) == 2


def test_no_report_until_it_is_ready_and_none_when_nobody_joined(
    sandbox: RunningSandbox, control: Control, graph_http: requests.Session
) -> None:
    event = _online(control)
    join_url = event["onlineMeeting"]["joinUrl"]
    [online] = _find(graph_http, sandbox.base_url, join_url).json()["value"]
    reports = (
        f"{sandbox.base_url}/v1.0/users/ann@contoso.example/onlineMeetings/"
        f"{online['id']}/attendanceReports"
    )
    _scenario(control, join_url, [])  # nobody joined: Teams makes no report
    assert graph_http.get(reports, timeout=10).json()["value"] == []
    _scenario(control, join_url, [{"email": "dana@fabrikam.com"}], readyAfterMinutes=600)
    assert graph_http.get(reports, timeout=10).json()["value"] == []  # not ready yet


def test_the_filter_finds_only_the_organizers_meetings_and_is_required(
    sandbox: RunningSandbox, control: Control, graph_http: requests.Session
) -> None:
    event = _online(control)
    control.add_user("bob", "Bob Rep")
    join_url = event["onlineMeeting"]["joinUrl"]
    other = graph_http.get(
        f"{sandbox.base_url}/v1.0/users/bob@contoso.example/onlineMeetings",
        params={"$filter": f"JoinWebUrl eq '{join_url}'"},
        timeout=10,
    )
    assert other.json()["value"] == []
    bare = graph_http.get(
        f"{sandbox.base_url}/v1.0/users/ann@contoso.example/onlineMeetings", timeout=10
    )
    assert bare.status_code == 400


def test_403_without_the_permission_or_the_access_policy(
    sandbox: RunningSandbox, control: Control
) -> None:
    event = _online(control)
    join_url = event["onlineMeeting"]["joinUrl"]
    control.settings(roles=["Calendars.ReadWrite", "OnlineMeetings.Read.All"])
    fresh = msal.ConfidentialClientApplication(  # a new app: no token cached with old roles
        sandbox.client_id,
        client_credential=sandbox.client_secret,
        authority=f"{MICROSOFT_LOGIN}/{sandbox.tenant_id}",
        http_client=AuthorityRewrite(sandbox.base_url),
    )
    token = fresh.acquire_token_for_client([GRAPH_SCOPE])
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {token['access_token']}"
    [online] = _find(http, sandbox.base_url, join_url).json()["value"]
    reports = http.get(
        f"{sandbox.base_url}/v1.0/users/ann@contoso.example/onlineMeetings/"
        f"{online['id']}/attendanceReports",
        timeout=10,
    )
    assert reports.status_code == 403
    assert "OnlineMeetingArtifact.Read.All" in reports.json()["error"]["message"]
    assert control.http.put(
        f"{sandbox.base_url}/_sandbox/online-meetings/policy", json={"granted": False}, timeout=10
    ).ok
    assert _find(http, sandbox.base_url, join_url).status_code == 403
