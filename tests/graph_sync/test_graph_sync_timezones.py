"""Windows and IANA zone names, Graph's dateTime text, mailbox settings with custom zones."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from graph_sync.models import MailboxSettings, series_uid
from graph_sync.timezones import (
    UnknownTimeZone,
    graph_date_time,
    iana_name,
    to_utc,
    windows_name,
    windows_zones,
)


def test_every_windows_zone_maps_to_a_zone_zoneinfo_knows() -> None:
    mapping = windows_zones()

    assert len(mapping) >= 139
    for name, iana in mapping.items():
        assert zoneinfo.ZoneInfo(iana) is not None, name


@pytest.mark.parametrize(
    ("name", "iana"),
    [
        ("Pacific Standard Time", "America/Los_Angeles"),
        ("W. Europe Standard Time", "Europe/Berlin"),
        ("GMT Standard Time", "Europe/London"),
        ("India Standard Time", "Asia/Calcutta"),
        ("AUS Eastern Standard Time", "Australia/Sydney"),
        ("UTC", "UTC"),
        ("tzone://Microsoft/Utc", "UTC"),
        ("pacific standard time", "America/Los_Angeles"),
        ("Europe/Paris", "Europe/Paris"),
    ],
)
def test_zone_names_map_to_iana(name: str, iana: str) -> None:
    assert iana_name(name) == iana


def test_unknown_zone_name_is_refused() -> None:
    with pytest.raises(UnknownTimeZone):
        iana_name("Customized Time Zone")


def test_graph_date_time_with_seven_digits_in_a_windows_zone_becomes_utc() -> None:
    summer = to_utc("2026-07-01T09:00:00.0000000", "Pacific Standard Time")
    winter = to_utc("2026-01-15T09:00:00.1234567", "Pacific Standard Time")

    assert summer == datetime(2026, 7, 1, 16, tzinfo=UTC)
    assert winter == datetime(2026, 1, 15, 17, 0, 0, 123456, tzinfo=UTC)


def test_an_offset_in_the_text_wins_over_the_zone() -> None:
    assert to_utc("2026-07-01T09:00:00Z", "Tokyo Standard Time") == datetime(
        2026, 7, 1, 9, tzinfo=UTC
    )


@pytest.mark.parametrize(
    "text",
    [
        "2026-07-01T09:00:00.0000000",
        "2026-07-01T09:00:00.9999999",
        " 2026-07-01T09:00:00.1234567 ",
        "2026-07-01T09:00:00",
        "2026-07-01T09:00:00.5Z",
        "2026-07-01T09:00:00.1234567+02:00",
    ],
)
def test_utc_as_the_rounds_ask_for_it_reads_as_any_spelling_of_utc(text: str) -> None:
    """The delta rounds ask Graph for UTC: that zone takes the short way, to the same instant."""
    moment = to_utc(text, "UTC")

    assert moment.tzinfo is UTC
    assert moment == to_utc(text, "Coordinated Universal Time") == to_utc(text, "Etc/UTC")
    assert moment == to_utc(text, None)


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)))
def test_graph_date_time_round_trips(moment: datetime) -> None:
    aware = moment.replace(tzinfo=UTC)

    assert to_utc(graph_date_time(aware), "UTC") == aware


def test_naive_datetime_is_refused_for_graph() -> None:
    with pytest.raises(ValueError, match="naive"):
        graph_date_time(datetime(2026, 1, 1))


def test_custom_working_hours_zone_falls_back_to_the_mailbox_zone() -> None:
    settings = MailboxSettings.from_graph(
        {
            "timeZone": "Romance Standard Time",
            "workingHours": {
                "daysOfWeek": ["Monday", "Tuesday"],
                "startTime": "08:30:00.0000000",
                "endTime": "16:30:00.0000000",
                "timeZone": {
                    "@odata.type": "#microsoft.graph.customTimeZone",
                    "bias": -60,
                    "name": "Customized Time Zone",
                },
            },
        }
    )

    assert settings.time_zone == "Europe/Paris"
    assert settings.working_hours_time_zone == "Europe/Paris"
    assert settings.zone_source == "custom_fallback"
    assert settings.working_days == [1, 2]
    assert settings.start == time(8, 30)


def test_mailbox_without_settings_gets_weekday_office_hours_in_utc() -> None:
    settings = MailboxSettings.from_graph({})

    assert settings.time_zone == "UTC"
    assert settings.working_days == [1, 2, 3, 4, 5]
    assert (settings.start, settings.end) == (time(8), time(17))
    assert settings.zone_source == "default"


def test_series_uid_clears_the_occurrence_date_stamp() -> None:
    master = "040000008200E00074C5B7101A82E00800000000C0AF10FB5C7ADD0100000000000000001000"
    occurrence = master[:32] + "07EA0C0E" + master[40:]

    assert series_uid(occurrence) == master
    assert series_uid("not-a-goid") == "not-a-goid"


def test_dst_gap_local_time_still_maps_to_one_instant() -> None:
    # 02:30 does not exist in Los Angeles on 2026-03-08; zoneinfo applies the pre-gap offset.
    moment = to_utc("2026-03-08T02:30:00.0000000", "Pacific Standard Time")

    assert moment - to_utc("2026-03-08T01:30:00.0000000", "Pacific Standard Time") == timedelta(
        hours=1
    )


def test_an_iana_zone_has_the_windows_name_outlook_shows() -> None:
    assert windows_name("Europe/Berlin") == "W. Europe Standard Time"
    assert windows_name("America/Los_Angeles") == "Pacific Standard Time"
    with pytest.raises(UnknownTimeZone):
        windows_name("Mars/Olympus_Mons")
