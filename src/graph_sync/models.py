"""Our own models of what we read from Graph (parsed from raw bytes), and the connector-facing
`Meeting` and `MailboxSettings`. Event bodies are never read nor kept.

A delta page's wire models (`DeltaPage`, `GraphEvent` and theirs) are msgspec structs, the
rest pydantic. `Meeting` is an internal value built from the decoded `GraphEvent`: a frozen slotted
dataclass, not a pydantic model (a round of 20,000 events holds 20,000 of them: ~4 KB each as
pydantic instances, each with a `__dict__` and a fields-set)."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any, Literal

import msgspec
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from graph_sync.timezones import UnknownTimeZone, iana_name, to_utc

log = logging.getLogger(__name__)


class GraphModel(BaseModel):
    """camelCase on the wire; unknown fields ignored (Graph adds fields over time)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )


class GraphBody(BaseModel):
    """A body we send to Graph: camelCase on the wire, absent fields left out."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    def wire(self) -> dict[str, Any]:
        """As Graph takes it (teams.py's `model_dump(by_alias=True, exclude_none=True)`)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class Wire(msgspec.Struct, rename="camel", frozen=True):
    """What a delta page carries, decoded by msgspec (camelCase on the wire, unknown fields
    ignored; :func:`decode_page`): every round reads its pages' events, and these structs
    take a quarter of the pydantic models' time (5.8-6.8 against 23.4-27.1 us an event, a
    200-event page, three runs each in the same hour)."""


class DateTimeTimeZone(Wire, frozen=True):
    """Graph's `dateTimeTimeZone`: a local time without offset and the zone it is in."""

    date_time: str
    """Local time, e.g. `2026-11-23T09:00:00.0000000`."""
    time_zone: str | None = None
    """Windows or IANA zone name; UTC when absent."""

    def to_utc(self) -> datetime:
        """The instant, as an aware UTC datetime."""
        return to_utc(self.date_time, self.time_zone)


class EmailAddress(Wire, frozen=True):
    """A name and an address."""

    name: str | None = None
    """Display name."""
    address: str | None = None
    """SMTP address (may be missing for some room or group entries)."""


class Recipient(Wire, frozen=True):
    """An organizer or a recipient."""

    email_address: EmailAddress = msgspec.field(default_factory=EmailAddress)
    """Who."""


class ResponseStatus(Wire, frozen=True):
    """An attendee's (or the mailbox owner's) answer."""

    response: str | None = None
    """none, organizer, tentativelyAccepted, accepted, declined, notResponded."""
    time: str | None = None
    """When they answered."""


class Attendee(Wire, frozen=True):
    """An attendee of an event."""

    email_address: EmailAddress = msgspec.field(default_factory=EmailAddress)
    """Who."""
    type: str | None = None
    """required, optional or resource."""
    status: ResponseStatus | None = None
    """Their answer."""


class Location(Wire, frozen=True):
    """Where; only the display name is kept."""

    display_name: str | None = None
    """Location name as shown in Outlook."""


class OnlineMeetingInfo(Wire, frozen=True):
    """`onlineMeetingInfo`: how to join an online meeting."""

    join_url: str | None = None
    """The Teams join link (the key to the meeting's attendance reports)."""


class Removed(Wire, frozen=True):
    """The `@removed` annotation of a delta item."""

    reason: str | None = None
    """`deleted` or `changed` (out of the window)."""


class GraphEvent(Wire, frozen=True):
    """An event as calendarView/delta returns it (body never requested nor kept)."""

    id: str
    """Event id in this mailbox."""
    i_cal_u_id: str | None = None
    """Same across attendees' copies; one per occurrence of a series."""
    subject: str | None = None
    """Subject line."""
    start: DateTimeTimeZone | None = None
    """Start, local time and zone."""
    end: DateTimeTimeZone | None = None
    """End, local time and zone."""
    is_all_day: bool = False
    """All-day event."""
    is_cancelled: bool = False
    """Cancelled by the organizer (attendees' copies)."""
    sensitivity: str | None = None
    """normal, personal, private or confidential."""
    show_as: str | None = None
    """free, tentative, busy, oof, workingElsewhere, unknown."""
    type: str | None = None
    """singleInstance, occurrence, exception or seriesMaster."""
    series_master_id: str | None = None
    """The series' master event id, for occurrences and exceptions."""
    original_start: str | None = None
    """Occurrence's start in the series before any move (DateTimeOffset text)."""
    organizer: Recipient | None = None
    """Who organised it."""
    attendees: list[Attendee] = msgspec.field(default_factory=list)
    """Who was invited."""
    is_online_meeting: bool = False
    """A Teams (or other online) meeting."""
    online_meeting: OnlineMeetingInfo | None = None
    """Its join link, for an online meeting."""
    location: Location | None = None
    """Where."""
    categories: list[str] = msgspec.field(default_factory=list)
    """Outlook categories."""
    response_status: ResponseStatus | None = None
    """The mailbox owner's answer."""
    last_modified_date_time: str | None = None
    """Last change (DateTimeOffset text)."""
    change_key: str | None = None
    """Version of the event."""
    removed: Removed | None = msgspec.field(default=None, name="@removed")
    """Set when the delta says the event is gone (or changed outside the window)."""

    def original_start_utc(self) -> datetime | None:
        """`originalStart` as an aware UTC datetime."""
        if not self.original_start:
            return None
        return to_utc(self.original_start, "UTC")


class DeltaPage(Wire, frozen=True):
    """One page of a calendarView delta."""

    value: list[GraphEvent] = msgspec.field(default_factory=list)
    """Events (and `@removed` stubs) of this page."""
    next_link: str | None = msgspec.field(default=None, name="@odata.nextLink")
    """Follow it for the next page."""
    delta_link: str | None = msgspec.field(default=None, name="@odata.deltaLink")
    """The round is complete; store it for the next round."""


def decode_page(raw: bytes) -> DeltaPage:
    """A delta page from Graph's bytes; ``msgspec.DecodeError`` (with the path of the first
    field that failed) when they are not one."""
    return _PAGE.decode(raw)


def decode_event(raw: bytes) -> GraphEvent:
    """One event from Graph's bytes (as :func:`decode_page`)."""
    return _EVENT.decode(raw)


_PAGE = msgspec.json.Decoder(DeltaPage)
_EVENT = msgspec.json.Decoder(GraphEvent)


@dataclass(frozen=True, slots=True, kw_only=True)
class MeetingAttendee:
    """An attendee of a meeting, as the connector stores it."""

    email: str
    """Lower-case SMTP address."""
    name: str | None = None
    """Display name."""
    type: str = "required"
    """required, optional or resource."""
    response: str = "none"
    """none, organizer, tentativelyAccepted, accepted, declined, notResponded."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Meeting:
    """A meeting read from one mailbox: what the connector may log (never a body)."""

    mailbox: str
    """The mailbox (user id or UPN) it was read from."""
    event_id: str
    """Event id in that mailbox."""
    ical_uid: str
    """Shared by every attendee's copy of the meeting."""
    occurrence_key: str
    """One interaction per key across mailboxes: iCalUId, plus the original start of an
    occurrence or exception (stable when an occurrence is moved)."""
    subject: str
    """Subject line."""
    start: datetime
    """Start (aware, UTC)."""
    end: datetime
    """End (aware, UTC)."""
    organizer_email: str | None
    """Organizer's address, lower-case."""
    organizer_name: str | None = None
    """Organizer's display name."""
    attendees: list[MeetingAttendee]
    """Invited people with their answers."""
    is_online: bool = False
    """An online (Teams) meeting."""
    join_url: str | None = None
    """The online meeting's join link (Teams attendance is looked up by it)."""
    location_name: str | None = None
    """Location display name."""
    series_master_id: str | None = None
    """The series it belongs to, for recurring meetings."""
    original_start: datetime | None = None
    """The occurrence's start before any move (recurring meetings)."""
    event_type: str = "singleInstance"
    """singleInstance, occurrence or exception."""
    sensitivity: str = "normal"
    """normal, personal, private or confidential."""
    is_all_day: bool = False
    """All-day event."""
    is_cancelled: bool = False
    """Cancelled by its organizer."""
    categories: list[str] = field(default_factory=list)
    """Outlook categories."""
    show_as: str | None = None
    """free, busy, ..."""
    response: str | None = None
    """The mailbox owner's own answer."""
    last_modified: datetime | None = None
    """Last change."""
    change_key: str | None = None
    """Version of the event."""

    @classmethod
    def from_event(cls, mailbox: str, event: GraphEvent, master_uid: str | None = None) -> Meeting:
        """The meeting an event of `mailbox` describes (not for `@removed` stubs or masters);
        `master_uid` is the series master's iCalUId when the round saw it."""
        if event.start is None or event.end is None:
            raise ValueError(f"event {event.id} has no start or end")
        ical_uid = event.i_cal_u_id or master_uid or event.series_master_id or event.id
        original = event.original_start_utc()
        key = ical_uid
        if event.type in ("occurrence", "exception"):
            # An unmoved occurrence starts at its original start; an exception keeps originalStart.
            anchor = original or event.start.to_utc()
            key = f"{series_uid(ical_uid)}|{anchor.strftime('%Y-%m-%dT%H:%M:%SZ')}"
        organizer = event.organizer.email_address if event.organizer else None
        return cls(
            mailbox=mailbox,
            event_id=event.id,
            ical_uid=ical_uid,
            occurrence_key=key,
            subject=event.subject or "",
            start=event.start.to_utc(),
            end=event.end.to_utc(),
            organizer_email=_lower(organizer.address) if organizer else None,
            organizer_name=_shared(organizer.name) if organizer else None,
            attendees=[
                MeetingAttendee(
                    email=_lower(a.email_address.address) or "",
                    name=_shared(a.email_address.name),
                    type=_shared(a.type) or "required",
                    response=_shared(a.status.response if a.status else None) or "none",
                )
                for a in event.attendees
                if a.email_address.address
            ],
            is_online=event.is_online_meeting,
            join_url=event.online_meeting.join_url if event.online_meeting else None,
            location_name=event.location.display_name if event.location else None,
            series_master_id=event.series_master_id,
            original_start=original,
            event_type=_shared(event.type) or "singleInstance",
            sensitivity=_shared(event.sensitivity) or "normal",
            is_all_day=event.is_all_day,
            is_cancelled=event.is_cancelled,
            categories=list(event.categories),
            show_as=_shared(event.show_as),
            response=_shared(event.response_status.response) if event.response_status else None,
            last_modified=(
                to_utc(event.last_modified_date_time, "UTC")
                if event.last_modified_date_time
                else None
            ),
            change_key=event.change_key,
        )


# MS-OXOCAL GlobalObjectId: class id, then the instance date (4 bytes) of an occurrence.
_GOID_CLASS = "040000008200E00074C5B7101A82E008"


def series_uid(ical_uid: str) -> str:
    """The series' iCalUId: Exchange stamps each occurrence's with its original date
    (MS-OXOCAL 2.2.1.27); zeroing the stamp gives one id for master, occurrences, exceptions."""
    if len(ical_uid) >= 40 and ical_uid[:32].upper() == _GOID_CLASS:
        return ical_uid[:32] + "00000000" + ical_uid[40:]
    return ical_uid


def _lower(address: str | None) -> str | None:
    return sys.intern(address.strip().lower()) if address else None


def _shared(text: str | None) -> str | None:
    """One string object for each of the values that repeat over a round's meetings (the
    attendees' addresses and names, their types and answers, the event's type): msgspec
    makes a new one each time it reads one, where pydantic's parser shares short strings,
    and a 20,000-event first round kept 8 MiB more (``sys.intern``, about 50 ns)."""
    return sys.intern(text) if text else text


# --- mailbox settings ------------------------------------------------------------------------

_DAYS = {
    "monday": 1,
    "tuesday": 2,
    "wednesday": 3,
    "thursday": 4,
    "friday": 5,
    "saturday": 6,
    "sunday": 7,
}


class _ZoneName(GraphModel):
    name: str | None = None
    odata_type: str | None = Field(default=None, alias="@odata.type")


class _WorkingHours(GraphModel):
    days_of_week: list[str] = Field(default_factory=list)
    start_time: str | None = None
    end_time: str | None = None
    time_zone: _ZoneName | None = None


class GraphMailboxSettings(GraphModel):
    """`GET /users/{id}/mailboxSettings`, the parts we use."""

    time_zone: str | None = None
    """Windows or IANA name."""
    working_hours: _WorkingHours | None = None
    """Working days and hours, with their own zone (standard or custom)."""


class MailboxSettings(BaseModel):
    """A rep's working calendar as the planner needs it."""

    model_config = ConfigDict(frozen=True)

    time_zone: str
    """IANA name of the mailbox's zone."""
    working_days: list[int]
    """ISO weekdays, 1 = Monday ... 7 = Sunday."""
    start: time
    """Start of the working day (in `working_hours_time_zone`)."""
    end: time
    """End of the working day."""
    working_hours_time_zone: str
    """IANA zone the hours are in (the mailbox zone when Graph gives a custom zone)."""
    zone_source: Literal["graph", "custom_fallback", "default"] = "graph"
    """`custom_fallback`: working hours had a customTimeZone, the mailbox zone was used."""

    @classmethod
    def from_graph(cls, raw: GraphMailboxSettings | dict[str, Any]) -> MailboxSettings:
        """Map Graph's settings: Windows zones to IANA, day names to ISO numbers."""
        settings = (
            raw
            if isinstance(raw, GraphMailboxSettings)
            else GraphMailboxSettings.model_validate(raw)
        )
        source: Literal["graph", "custom_fallback", "default"] = "graph"
        mailbox_zone = _known_zone(settings.time_zone)
        if mailbox_zone is None:
            mailbox_zone, source = "UTC", "default"
        hours = settings.working_hours or _WorkingHours()
        hours_zone = _known_zone(hours.time_zone.name if hours.time_zone else None)
        if hours_zone is None:
            # customTimeZone carries bias rules, not a name we can map: use the mailbox zone.
            hours_zone = mailbox_zone
            if hours.time_zone is not None and source == "graph":
                source = "custom_fallback"
        days = sorted({_DAYS[d.lower()] for d in hours.days_of_week if d.lower() in _DAYS})
        return cls(
            time_zone=mailbox_zone,
            working_days=days or [1, 2, 3, 4, 5],
            start=_clock(hours.start_time, time(8, 0)),
            end=_clock(hours.end_time, time(17, 0)),
            working_hours_time_zone=hours_zone,
            zone_source=source,
        )


def _known_zone(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return iana_name(name)
    except UnknownTimeZone:
        log.info("time zone %r is not a Windows or IANA name", name)
        return None


def _clock(text: str | None, default: time) -> time:
    if not text:
        return default
    return time.fromisoformat(text[:8])
