"""Teams online meetings and their attendance reports (app-only).

Three requests per verified meeting: find the meeting by its join URL under its organizer
(onlinemeeting-get.md: `GET /users/{id}/onlineMeetings?$filter=JoinWebUrl eq '…'`, the only list
an application may make), list its attendance reports (one per session: a recurring meeting has
one per occurrence), then the session's report with `$expand=attendanceRecords`
(meetingattendancereport-get.md). Both need the tenant's Teams application access policy for the
organizer; a 403 says which permission the call needs. Parsed with our own models (hot path);
the sandbox's shapes are checked against msgraph-sdk's typed models in its contract tests.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from graph_sync.client import GraphClient
from graph_sync.timezones import to_utc

MEETINGS_PERMISSION = "OnlineMeetings.Read.All"
"""Application permission to find an online meeting by its join URL."""
ARTIFACTS_PERMISSION = "OnlineMeetingArtifact.Read.All"
"""Application permission to read attendance reports."""


class _Wire(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")


class OnlineMeeting(_Wire):
    """`onlineMeeting`, the fields we use."""

    id: str
    join_web_url: str | None = Field(default=None, alias="joinWebUrl")


class _Meetings(_Wire):
    value: list[OnlineMeeting] = Field(default_factory=list)


class AttendanceInterval(_Wire):
    """`attendanceInterval`: one stretch in the meeting."""

    join_date_time: str | None = Field(default=None, alias="joinDateTime")
    leave_date_time: str | None = Field(default=None, alias="leaveDateTime")
    duration_in_seconds: int | None = Field(default=None, alias="durationInSeconds")


class Identity(_Wire):
    id: str | None = None
    display_name: str | None = Field(default=None, alias="displayName")
    tenant_id: str | None = Field(default=None, alias="tenantId")


class AttendanceRecord(_Wire):
    """`attendanceRecord`: one participant of a session."""

    email_address: str | None = Field(default=None, alias="emailAddress")
    identity: Identity | None = None
    role: str | None = None
    total_attendance_in_seconds: int | None = Field(default=None, alias="totalAttendanceInSeconds")
    attendance_intervals: list[AttendanceInterval] = Field(
        default_factory=list, alias="attendanceIntervals"
    )

    def joined_at(self) -> datetime | None:
        """The first join (aware UTC)."""
        times = [i.join_date_time for i in self.attendance_intervals if i.join_date_time]
        return min(to_utc(t, "UTC") for t in times) if times else None


class AttendanceReport(_Wire):
    """`meetingAttendanceReport`: one session; records only when expanded."""

    id: str
    total_participant_count: int | None = Field(default=None, alias="totalParticipantCount")
    meeting_start_date_time: str | None = Field(default=None, alias="meetingStartDateTime")
    meeting_end_date_time: str | None = Field(default=None, alias="meetingEndDateTime")
    attendance_records: list[AttendanceRecord] = Field(
        default_factory=list, alias="attendanceRecords"
    )

    def started(self) -> datetime | None:
        return to_utc(self.meeting_start_date_time, "UTC") if self.meeting_start_date_time else None

    def ended(self) -> datetime | None:
        return to_utc(self.meeting_end_date_time, "UTC") if self.meeting_end_date_time else None


class _Reports(_Wire):
    value: list[AttendanceReport] = Field(default_factory=list)


def _meetings(organizer: str) -> str:
    return f"/users/{quote(organizer, safe='@')}/onlineMeetings"


def find_online_meeting(client: GraphClient, organizer: str, join_url: str) -> OnlineMeeting | None:
    """The organizer's online meeting with this join URL (None: not theirs, or not Teams)."""
    literal = join_url.replace("'", "''")
    raw = client.get_bytes(
        _meetings(organizer),
        params={"$filter": f"JoinWebUrl eq '{literal}'"},
        mailbox=organizer,
        permission=MEETINGS_PERMISSION,
    )
    found = _Meetings.model_validate_json(raw).value
    return found[0] if found else None


def list_attendance_reports(
    client: GraphClient, organizer: str, meeting_id: str
) -> list[AttendanceReport]:
    """The meeting's sessions' reports (without their records)."""
    raw = client.get_bytes(
        f"{_meetings(organizer)}/{quote(meeting_id, safe='')}/attendanceReports",
        mailbox=organizer,
        permission=ARTIFACTS_PERMISSION,
    )
    return _Reports.model_validate_json(raw).value


def get_attendance_report(
    client: GraphClient, organizer: str, meeting_id: str, report_id: str
) -> AttendanceReport:
    """One session's report with its attendance records."""
    raw = client.get_bytes(
        f"{_meetings(organizer)}/{quote(meeting_id, safe='')}/attendanceReports/"
        f"{quote(report_id, safe='')}",
        params={"$expand": "attendanceRecords"},
        mailbox=organizer,
        permission=ARTIFACTS_PERMISSION,
    )
    return AttendanceReport.model_validate_json(raw)
