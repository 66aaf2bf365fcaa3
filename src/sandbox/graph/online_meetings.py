"""Online meetings and their attendance reports, as app-only Graph serves them.

onlinemeeting-get.md (`GET /users/{userId}/onlineMeetings?$filter=JoinWebUrl eq '{joinUrl}'`:
the only list an application may make, OnlineMeetings.Read.All), meetingattendancereport-list.md
and -get.md (`$expand=attendanceRecords`), attendancerecord-list.md
(OnlineMeetingArtifact.Read.All);
both need the Teams application access policy granted for the user in the path
(cloud-communication-online-meeting-application-access-policy.md), else 403. Only the organizer's
meetings are found under their user: a meeting someone else organized is not in the list.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sandbox.errors import GraphError
from sandbox.graph.permissions import Permission
from sandbox.graph.service import Router
from sandbox.graph.users import directory_user
from sandbox.graph.wire import GraphRequest, GraphResponse, ok
from sandbox.online_meetings import Session, meeting_id
from sandbox.timezones import format_timestamp

if TYPE_CHECKING:
    from sandbox.calendars import StoredEvent
    from sandbox.directory import User
    from sandbox.tenant import Tenant

READ_MEETINGS = Permission(
    ("OnlineMeetings.Read.All", "OnlineMeetings.ReadWrite.All"),
    "Forbidden",
    "Application does not have permission to read online meetings. API requires one of "
    "'OnlineMeetings.Read.All, OnlineMeetings.ReadWrite.All'.",
)
READ_ARTIFACTS = Permission(
    ("OnlineMeetingArtifact.Read.All",),
    "Forbidden",
    "Application does not have permission to read online meeting artifacts. API requires "
    "'OnlineMeetingArtifact.Read.All'.",
)
_FILTER = re.compile(r"^\s*joinweburl\s+eq\s+'((?:[^']|'')*)'\s*$", re.IGNORECASE)


def _policy(tenant: Tenant) -> None:
    if not tenant.online.access_policy:
        raise GraphError(
            403,
            "Forbidden",
            "No application access policy found for this app.",
        )


def _organized(tenant: Tenant, user: User) -> list[StoredEvent]:
    calendar = tenant.calendars.calendar(user.id)
    return [
        e
        for e in calendar.stored()
        if e.is_organizer and e.online_meeting and e.type != "exception" and not e.is_cancelled
    ]


def _meeting_json(request: GraphRequest, user: User, event: StoredEvent) -> dict[str, Any]:
    join_url = str((event.online_meeting or {}).get("joinUrl"))
    mid = meeting_id(user.id, join_url)
    return {
        "@odata.type": "#microsoft.graph.onlineMeeting",
        "id": mid,
        "creationDateTime": format_timestamp(event.created),
        "startDateTime": format_timestamp(event.start),
        "endDateTime": format_timestamp(event.end),
        "joinWebUrl": join_url,
        "subject": event.fields.get("subject"),
        "isEntryExitAnnounced": True,
        "allowedPresenters": "everyone",
        "chatInfo": {
            "threadId": f"19:meeting_{mid[-24:]}@thread.v2",
            "messageId": "0",
            "replyChainMessageId": None,
        },
        "participants": {
            "organizer": {
                "upn": user.user_principal_name,
                "role": "presenter",
                "identity": {"user": {"id": user.id, "displayName": user.display_name}},
            },
            "attendees": [],
        },
    }


def list_meetings(tenant: Tenant, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
    """GET /users/{user}/onlineMeetings?$filter=JoinWebUrl eq '…'."""
    user = directory_user(tenant, params["user"])
    _policy(tenant)
    match = _FILTER.match(request.query.get("$filter", ""))
    if match is None:
        raise GraphError(
            400,
            "BadRequest",
            "Filter expression expected - /onlineMeetings?$filter=JoinWebUrl eq 'joinUrl'.",
        )
    wanted = match.group(1).replace("''", "'")
    with tenant.lock:
        found = [
            _meeting_json(request, user, e)
            for e in _organized(tenant, user)
            if (e.online_meeting or {}).get("joinUrl") == wanted
        ]
    context = f"{request.graph_base}/$metadata#users('{user.id}')/onlineMeetings"
    return ok({"@odata.context": context, "value": found[:1]})


def _join_url(tenant: Tenant, user: User, mid: str) -> str:
    for event in _organized(tenant, user):
        join_url = str((event.online_meeting or {}).get("joinUrl"))
        if meeting_id(user.id, join_url) == mid:
            return join_url
    raise GraphError(404, "NotFound", "The online meeting was not found.")


def _report_json(session: Session, records: bool, tenant: Tenant) -> dict[str, Any]:
    scenario = session.scenario
    starts = [scenario.start + timedelta(minutes=j.join_after_minutes) for j in scenario.joined]
    ends = [s + timedelta(minutes=j.minutes) for s, j in zip(starts, scenario.joined, strict=True)]
    body: dict[str, Any] = {
        "id": session.report_id,
        "totalParticipantCount": len(scenario.joined),
        "meetingStartDateTime": format_timestamp(min(starts)),
        "meetingEndDateTime": format_timestamp(max(ends)),
    }
    if records:
        body["attendanceRecords"] = [
            _record_json(tenant, session, n, start) for n, start in enumerate(starts)
        ]
    return body


def _record_json(tenant: Tenant, session: Session, n: int, start: datetime) -> dict[str, Any]:
    joined = session.scenario.joined[n]
    member = tenant.directory.find(joined.email)
    seconds = joined.minutes * 60
    return {
        "id": member.id if member else f"{session.report_id[:8]}-{n}",
        "emailAddress": joined.email,
        "totalAttendanceInSeconds": seconds,
        "role": joined.role,
        "identity": {
            "@odata.type": "#microsoft.graph.communicationsUserIdentity",
            "id": member.id if member else None,
            "displayName": (member.display_name if member else None) or joined.name,
            "tenantId": tenant.tenant_id if member else joined.tenant_id,
        },
        "attendanceIntervals": [
            {
                "joinDateTime": format_timestamp(start),
                "leaveDateTime": format_timestamp(start + timedelta(seconds=seconds)),
                "durationInSeconds": seconds,
            }
        ],
    }


def _sessions(tenant: Tenant, params: dict[str, str]) -> list[Session]:
    user = directory_user(tenant, params["user"])
    _policy(tenant)
    with tenant.lock:
        join_url = _join_url(tenant, user, params["meeting"])
        return tenant.online.reports(join_url, datetime.now(UTC))


def list_reports(tenant: Tenant, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
    """GET …/onlineMeetings/{id}/attendanceReports (records only with `$expand`)."""
    expand = "attendancerecords" in request.query.get("$expand", "").lower()
    value = [_report_json(s, expand, tenant) for s in _sessions(tenant, params)]
    return ok(
        {"@odata.context": f"{request.graph_base}/$metadata#attendanceReports", "value": value}
    )


def _one(tenant: Tenant, params: dict[str, str]) -> Session:
    for session in _sessions(tenant, params):
        if session.report_id == params["report"]:
            return session
    raise GraphError(404, "NotFound", "The attendance report was not found.")


def get_report(tenant: Tenant, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
    """GET …/attendanceReports/{reportId} (`$expand=attendanceRecords`)."""
    expand = "attendancerecords" in request.query.get("$expand", "").lower()
    return ok(_report_json(_one(tenant, params), expand, tenant))


def list_records(tenant: Tenant, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
    """GET …/attendanceReports/{reportId}/attendanceRecords."""
    session = _one(tenant, params)
    body = _report_json(session, True, tenant)
    context = f"{request.graph_base}/$metadata#attendanceRecords"
    return ok({"@odata.context": context, "value": body["attendanceRecords"]})


def register(router: Router) -> None:
    """Serve the online-meeting routes."""
    base = "/users/{user}/onlineMeetings"
    router.add("GET", base, list_meetings, READ_MEETINGS)
    reports = f"{base}/{{meeting}}/attendanceReports"
    router.add("GET", reports, list_reports, READ_ARTIFACTS)
    router.add("GET", f"{reports}/{{report}}", get_report, READ_ARTIFACTS)
    router.add("GET", f"{reports}/{{report}}/attendanceRecords", list_records, READ_ARTIFACTS)
