"""An event's writable properties as a client sends them (POST/PATCH bodies), checked like Graph."""

from __future__ import annotations

import html
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from sandbox import timezones
from sandbox.errors import GraphError, without_annotations
from sandbox.recurrence import PatternedRecurrence

# Properties Graph computes; a client that echoes them back is not refused, they are ignored.
READ_ONLY = frozenset(
    {
        "id",
        "createdDateTime",
        "lastModifiedDateTime",
        "changeKey",
        "iCalUId",
        "uid",
        "hasAttachments",
        "bodyPreview",
        "isCancelled",
        "isOrganizer",
        "seriesMasterId",
        "type",
        "webLink",
        "onlineMeetingUrl",
        "onlineMeeting",
        "originalStart",
        "originalStartTimeZone",
        "originalEndTimeZone",
        "organizer",
        "responseStatus",
        "cancelledOccurrences",
        "exceptionOccurrences",
        "calendar",
        "instances",
        "attachments",
        "extensions",
    }
)

_ENUMS: dict[str, tuple[str, ...]] = {
    "sensitivity": ("normal", "personal", "private", "confidential"),
    "show_as": ("free", "tentative", "busy", "oof", "workingElsewhere", "unknown"),
    "importance": ("low", "normal", "high"),
    "online_meeting_provider": (
        "unknown",
        "teamsForBusiness",
        "skypeForBusiness",
        "skypeForConsumer",
    ),
}
_ATTENDEE_TYPES = ("required", "optional", "resource")
_BODY_TYPES = ("text", "html")


def _canonical(value: Any, allowed: tuple[str, ...]) -> Any:
    """Graph reads enum members case-insensitively and writes them in their declared casing."""
    if not isinstance(value, str):
        return value
    for member in allowed:
        if member.lower() == value.lower():
            return member
    raise ValueError(f"Requested value '{value}' was not found.")


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class EmailAddressIn(_Wire):
    """`emailAddress` of an attendee or organizer."""

    address: str | None = None
    name: str | None = None


class AttendeeIn(_Wire):
    """`attendee`: who, and whether required; `status` is the server's to set."""

    model_config = ConfigDict(extra="ignore")
    email_address: EmailAddressIn
    type: str = "required"

    @field_validator("type")
    @classmethod
    def _type(cls, value: str) -> str:
        canonical: str = _canonical(value, _ATTENDEE_TYPES)
        return canonical


class DateTimeTimeZoneIn(_Wire):
    """`dateTimeTimeZone`: a wall-clock time and the zone it is in (Windows or IANA name)."""

    date_time: str
    time_zone: str = "UTC"


class ItemBodyIn(_Wire):
    """`itemBody`."""

    content_type: str = "text"
    content: str = ""

    @field_validator("content_type")
    @classmethod
    def _type(cls, value: str) -> str:
        canonical: str = _canonical(value, _BODY_TYPES)
        return canonical


class LocationIn(_Wire):
    """`location`; Outlook fills in `locationType`, `uniqueId` and `uniqueIdType`."""

    display_name: str = ""
    location_type: str | None = None
    location_email_address: str | None = None
    location_uri: str | None = None
    unique_id: str | None = None
    unique_id_type: str | None = None
    address: dict[str, Any] | None = None
    coordinates: dict[str, Any] | None = None


class ExtendedPropertyIn(_Wire):
    """`singleValueLegacyExtendedProperty`: a MAPI property id string and its value."""

    id: str
    value: str


class EventInput(_Wire):
    """The writable properties of an `event`, every one optional (POST and PATCH share it)."""

    subject: str | None = None
    body: ItemBodyIn | None = None
    start: DateTimeTimeZoneIn | None = None
    end: DateTimeTimeZoneIn | None = None
    location: LocationIn | None = None
    locations: list[LocationIn] | None = None
    attendees: list[AttendeeIn] | None = None
    categories: list[str] | None = None
    sensitivity: str | None = None
    show_as: str | None = None
    importance: str | None = None
    is_all_day: bool | None = None
    is_reminder_on: bool | None = None
    reminder_minutes_before_start: int | None = None
    is_online_meeting: bool | None = None
    online_meeting_provider: str | None = None
    response_requested: bool | None = None
    allow_new_time_proposals: bool | None = None
    hide_attendees: bool | None = None
    is_draft: bool | None = None
    recurrence: PatternedRecurrence | None = None
    transaction_id: str | None = Field(default=None, max_length=255)
    single_value_extended_properties: list[ExtendedPropertyIn] | None = None

    @model_validator(mode="before")
    @classmethod
    def _drop_read_only(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if k not in READ_ONLY and not k.startswith("@")}
        return data

    @field_validator("sensitivity", "show_as", "importance", "online_meeting_provider")
    @classmethod
    def _enum(cls, value: str | None, info: Any) -> str | None:
        return None if value is None else _canonical(value, _ENUMS[info.field_name])


def parse_event_input(body: Any) -> EventInput:
    """Validate a POST/PATCH body; a wrong property or value is a 400 as Graph answers it."""
    if not isinstance(body, dict):
        raise GraphError(400, "RequestBodyRead", "The request body must be a JSON object.")
    try:
        return EventInput.model_validate(without_annotations(body))
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        if first["type"] == "extra_forbidden":
            message = (
                f"The property '{where.split('.')[-1]}' does not exist on type "
                "'microsoft.graph.event'. Make sure to only use property names that are defined "
                "by the type or mark the type as open type."
            )
        else:
            message = f"Invalid value for '{where}': {first['msg'].removeprefix('Value error, ')}"
        raise GraphError(400, "RequestBodyRead", message) from e


def location_graph(given: LocationIn | None) -> dict[str, Any]:
    """A location as Outlook stores it: typed, with a private unique id when it has a name."""
    if given is None or not given.display_name:
        return {
            "displayName": "",
            "locationType": "default",
            "uniqueIdType": "unknown",
            "address": {},
            "coordinates": {},
        }
    out: dict[str, Any] = {
        "displayName": given.display_name,
        "locationType": given.location_type or "default",
        "uniqueId": given.unique_id or given.display_name,
        "uniqueIdType": given.unique_id_type or "private",
    }
    if given.location_email_address:
        out["locationEmailAddress"] = given.location_email_address
    if given.location_uri:
        out["locationUri"] = given.location_uri
    out["address"] = given.address or {}
    out["coordinates"] = given.coordinates or {}
    return out


_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


def body_as(body: dict[str, str], wanted: str | None) -> dict[str, str]:
    """The body in the content type a client prefers; Outlook stores and returns HTML by default."""
    if (wanted or "html") == "text":
        if body["contentType"] == "text":
            return dict(body)
        return {"contentType": "text", "content": body_preview(body, limit=None)}
    if body["contentType"] == "html":
        return dict(body)
    escaped = html.escape(body["content"]).replace("\n", "<br>\r\n")
    return {
        "contentType": "html",
        "content": '<html>\r\n<head>\r\n<meta http-equiv="Content-Type" content="text/html; '
        f'charset=utf-8">\r\n</head>\r\n<body>\r\n{escaped}\r\n</body>\r\n</html>\r\n',
    }


def body_preview(body: dict[str, str], limit: int | None = 255) -> str:
    """`bodyPreview`: the body's text, whitespace collapsed, at most 255 characters."""
    text = body["content"]
    if body["contentType"] == "html":
        text = re.sub(r"(?is)<(head|style|script)[^>]*>.*?</\1>", " ", text)
        text = html.unescape(_TAG.sub(" ", text))
    text = _SPACE.sub(" ", text).strip()
    return text if limit is None else text[:limit]


def check_zone(name: str) -> str:
    """A `timeZone` Graph accepts; otherwise the 400 it answers."""
    try:
        timezones.zone(name)
    except timezones.UnknownTimeZoneError as e:
        raise GraphError(
            400,
            "TimeZoneNotSupportedException",
            f"A valid TimeZone value must be specified. "
            f"The following TimeZone value is not supported: '{name}'.",
        ) from e
    return name
