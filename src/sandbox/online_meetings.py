"""Teams online meetings of the tenant and the attendance each occurrence had (a test's scenario).

An event with ``isOnlineMeeting`` has an online meeting (its ``onlineMeeting.joinUrl``); the
organizer's copy is the meeting's owner, as in Teams. Who joined, when and for how long is what
a test sets (``POST /_sandbox/attendance``): Teams makes an attendance report when a session
ends, and only when someone joined; it becomes readable some minutes after the end
(``readyAfterMinutes``, default 5). Shapes: onlinemeeting.md, meetingattendancereport.md,
attendancerecord.md (microsoftgraph/microsoft-graph-docs-contrib, v1.0).
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field


class JoinInput(BaseModel):
    """One participant of a scenario: who, from when (minutes after the start), how long."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    email: str
    name: str | None = None
    minutes: int = Field(default=30, ge=0, le=24 * 60)
    join_after_minutes: int = Field(default=0, ge=0, le=24 * 60, alias="joinAfterMinutes")
    role: str = "Attendee"
    tenant_id: str | None = Field(default=None, alias="tenantId")
    """A guest's home tenant (None: ours, or an anonymous guest)."""


class AttendanceInput(BaseModel):
    """`POST /_sandbox/attendance`: what one occurrence of an online meeting had."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    join_url: str = Field(alias="joinUrl")
    start: datetime
    """The session's scheduled start (an occurrence's, for a series)."""
    end: datetime
    joined: list[JoinInput] = Field(default_factory=list)
    """Nobody: no report is made (Teams makes none for a session nobody joined)."""
    ready_after_minutes: float = Field(default=5, ge=0, alias="readyAfterMinutes")


@dataclass
class Session:
    """One session (occurrence) of an online meeting and who joined it."""

    report_id: str
    scenario: AttendanceInput


@dataclass
class OnlineMeetingsState:
    """Scenarios by join URL, and whether the admin made the application access policy."""

    sessions: dict[str, list[Session]] = field(default_factory=dict)
    access_policy: bool = True
    """`New-CsApplicationAccessPolicy` + `Grant-…` done for the app (Teams PowerShell)."""

    def add(self, given: AttendanceInput) -> Session:
        """Record a session (replacing one with the same start)."""
        found = self.sessions.setdefault(given.join_url, [])
        found[:] = [s for s in found if s.scenario.start != given.start]
        session = Session(str(uuid.uuid4()), given)
        found.append(session)
        return session

    def reports(self, join_url: str, now: datetime) -> list[Session]:
        """The sessions whose report exists by now: someone joined, and it is ready."""
        return sorted(
            (
                s
                for s in self.sessions.get(join_url, [])
                if s.scenario.joined
                and s.scenario.end + timedelta(minutes=s.scenario.ready_after_minutes) <= now
            ),
            key=lambda s: s.scenario.start,
        )


def meeting_id(organizer_id: str, join_url: str) -> str:
    """An online meeting's id as Teams makes them: base64 of `1*{organizer}*0**{thread}`."""
    thread = hashlib.sha256(join_url.encode()).hexdigest()[:24]
    raw = f"1*{organizer_id}*0**19:meeting_{thread}@thread.v2"
    return base64.b64encode(raw.encode()).decode().rstrip("=")
