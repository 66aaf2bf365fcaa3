"""Time zones as Graph writes them: Windows names (CLDR windowsZones) or IANA names, to zoneinfo.

The Windows map is the one tzlocal ships (`tzlocal.windows_tz`, generated from CLDR
common/supplemental/windowsZones.xml, territory 001); the sandbox keeps its own copy because it
stands for Microsoft's side and must not import ours.
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime
from functools import cache

from tzlocal.windows_tz import tz_win, win_tz


class UnknownTimeZone(ValueError):
    """A time zone name that is neither a Windows zone (CLDR) nor an IANA zone."""


# Outlook's spellings of UTC that are not CLDR Windows zone names.
_UTC_ALIASES = frozenset(
    {"utc", "coordinated universal time", "tzone://microsoft/utc", "etc/utc", "z", "gmt"}
)


@cache
def windows_zones() -> dict[str, str]:
    """Every Windows zone name (CLDR windowsZones, territory 001) to its IANA zone."""
    return dict(win_tz)


def windows_name(iana: str) -> str:
    """The Windows zone name Outlook shows for an IANA zone (CLDR); raises UnknownTimeZone."""
    found = tz_win.get(iana)
    if found is None:
        raise UnknownTimeZone(f"no Windows zone for {iana!r}")
    return found


@cache
def _windows_folded() -> dict[str, str]:
    return {name.casefold(): iana for name, iana in windows_zones().items()}


@cache
def _iana_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def iana_name(name: str) -> str:
    """The IANA name for a Windows or IANA zone name; raises UnknownTimeZone."""
    cleaned = name.strip()
    if cleaned.casefold() in _UTC_ALIASES:
        return "UTC"
    if cleaned in _iana_names():
        return cleaned
    found = _windows_folded().get(cleaned.casefold())
    if found is None:
        raise UnknownTimeZone(f"unknown time zone {name!r}")
    return found


@cache
def zone(name: str) -> zoneinfo.ZoneInfo:
    """A ZoneInfo for a Windows or IANA zone name; raises UnknownTimeZone."""
    return zoneinfo.ZoneInfo(iana_name(name))


def to_utc(date_time: str, time_zone: str | None) -> datetime:
    """A Graph `dateTimeTimeZone` (7 fractional digits, no offset) as an aware UTC datetime.

    Python 3.11's ``fromisoformat`` reads the 7 digits (the 7th is dropped) and a ``Z``; the
    delta rounds ask Graph for UTC, so that zone skips the zone lookup (5.5 us a call → 1)."""
    moment = datetime.fromisoformat(date_time.strip())
    if moment.tzinfo is None:
        if time_zone is None or time_zone == "UTC":
            return moment.replace(tzinfo=UTC)
        moment = moment.replace(tzinfo=zone(time_zone))
    return moment.astimezone(UTC)


def graph_date_time(moment: datetime) -> str:
    """An aware datetime as Graph's `dateTime` text in UTC: 7 fractional digits, no offset."""
    if moment.tzinfo is None:
        raise ValueError("a naive datetime is ambiguous: give it a time zone")
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond:06d}0"
