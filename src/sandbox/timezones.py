"""Time zones and date-times as Outlook writes them: Windows zone names, 7 fractional digits."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, tzinfo
from functools import cache
from importlib import resources
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_DATETIME = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})(?:T(?P<time>\d{2}:\d{2}(?::\d{2})?)(?:\.(?P<frac>\d{1,9}))?)?"
    r"(?P<offset>Z|[+-]\d{2}:?\d{2})?$"
)


class UnknownTimeZoneError(ValueError):
    """A time zone name that is neither a Windows nor an IANA name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"Unknown time zone: {name!r}")
        self.name = name


class BadDateTimeError(ValueError):
    """A date-time string Graph would not accept."""


# The sandbox keeps its own CLDR copy (with IANA to Windows for every territory): it stands for
# Microsoft's side and must not import graph_sync's (tzlocal's) map, or a wrong map passes both.
@cache
def _windows_zones() -> dict[str, dict[str, str]]:
    text = resources.files("sandbox").joinpath("windows_zones.json").read_text("utf-8")
    data: dict[str, dict[str, str]] = json.loads(text)
    return data


def windows_to_iana(name: str) -> str | None:
    """The IANA zone CLDR maps a Windows zone name to (territory 001), if it is one."""
    return _windows_zones()["windowsToIana"].get(name)


def iana_to_windows(name: str) -> str | None:
    """The Windows zone name CLDR maps an IANA zone to, if any."""
    return _windows_zones()["ianaToWindows"].get(name)


@cache
def zone(name: str) -> tzinfo:
    """The zone for a Windows or IANA name, as Graph accepts both in `timeZone` and Prefer."""
    if name.upper() in {"UTC", "ETC/UTC", "GMT", "Z"}:
        return UTC
    iana = windows_to_iana(name) or name
    try:
        return ZoneInfo(iana)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise UnknownTimeZoneError(name) from e


def parse_local(text: str, zone_name: str) -> datetime:
    """A Graph `dateTimeTimeZone` (local wall time in the named zone) as an aware UTC datetime."""
    naive = _parse(text)
    if naive.tzinfo is not None:
        return naive.astimezone(UTC)
    return naive.replace(tzinfo=zone(zone_name)).astimezone(UTC)


def parse_query(text: str) -> datetime:
    """A query-string date-time (`startDateTime`): ISO 8601, UTC when it carries no offset."""
    parsed = _parse(text)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _parse(text: str) -> datetime:
    match = _DATETIME.match(text.strip())
    if not match:
        raise BadDateTimeError(f"Cannot convert the literal '{text}' to the expected type.")
    time = match["time"] or "00:00:00"
    if len(time) == 5:
        time += ":00"
    frac = (match["frac"] or "").ljust(6, "0")[:6]
    offset = match["offset"] or ""
    if offset == "Z":
        offset = "+00:00"
    elif offset and ":" not in offset:
        offset = f"{offset[:3]}:{offset[3:]}"
    try:
        return datetime.fromisoformat(f"{match['date']}T{time}.{frac}{offset}")
    except ValueError as e:
        raise BadDateTimeError(f"Cannot convert the literal '{text}' to the expected type.") from e


def format_local(moment: datetime, zone_name: str) -> dict[str, str]:
    """A `dateTimeTimeZone` in the named zone, with Outlook's 7 fractional digits and no offset."""
    local = moment.astimezone(zone(zone_name))
    return {"dateTime": local.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0", "timeZone": zone_name}


def format_timestamp(moment: datetime) -> str:
    """A DateTimeOffset the way Graph writes `createdDateTime`: UTC, 7 digits, `Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def format_utc_seconds(moment: datetime) -> str:
    """A timestamp without fractions (`innerError.date`, subscription times)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
