from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from reminders.rules import parse_duration
from reminders.worktime import (
    WorkingCalendar,
    add_business_time,
    add_duration,
    business_time_between,
    is_working_time,
    local_instant,
    next_working_moment,
    place_in_working_time,
    snooze_until,
    working_hours_on,
)
from tests.reminders.samples import BERLIN, KOLKATA, LOS_ANGELES, SYDNEY, berlin, calendar


def local(t: datetime, zone: ZoneInfo) -> tuple[int, int, int, int, int]:
    shown = t.astimezone(zone)
    return (shown.year, shown.month, shown.day, shown.hour, shown.minute)


@pytest.mark.parametrize("zone", [LOS_ANGELES, BERLIN, KOLKATA, SYDNEY])
def test_working_hours_are_the_reps_wall_clock(zone: ZoneInfo) -> None:
    cal = calendar(str(zone))
    monday = date(2026, 6, 15)

    assert is_working_time(cal, datetime.combine(monday, time(9, 0), zone))
    assert is_working_time(cal, datetime.combine(monday, time(16, 59), zone))
    assert not is_working_time(cal, datetime.combine(monday, time(8, 59), zone))
    assert not is_working_time(cal, datetime.combine(monday, time(17, 0), zone))
    assert not is_working_time(cal, datetime(2026, 6, 13, 12, 0, tzinfo=zone))  # Saturday


def test_one_instant_is_placed_in_each_reps_own_morning() -> None:
    # Saturday 13 June 2026, 03:00 UTC: Friday evening in Los Angeles, Saturday elsewhere.
    t = datetime(2026, 6, 13, 3, 0, tzinfo=UTC)

    placed = {
        str(zone): local(place_in_working_time(calendar(str(zone)), t), zone)
        for zone in (LOS_ANGELES, BERLIN, KOLKATA, SYDNEY)
    }

    assert placed == {
        "America/Los_Angeles": (2026, 6, 15, 9, 0),
        "Europe/Berlin": (2026, 6, 15, 9, 0),
        "Asia/Kolkata": (2026, 6, 15, 9, 0),
        "Australia/Sydney": (2026, 6, 15, 9, 0),
    }
    assert place_in_working_time(calendar("Asia/Kolkata"), t) == datetime(
        2026, 6, 15, 3, 30, tzinfo=UTC
    )


def test_results_are_in_utc() -> None:
    result = next_working_moment(calendar(), berlin(2026, 6, 13, 12, 0))

    assert result.tzinfo is UTC
    assert result == datetime(2026, 6, 15, 7, 0, tzinfo=UTC)


def test_a_moment_inside_working_hours_stays_put() -> None:
    t = berlin(2026, 6, 15, 11, 17, 42)

    assert next_working_moment(calendar(), t) == t
    assert place_in_working_time(calendar(), t) == berlin(2026, 6, 15, 11, 18)


def test_a_due_time_rounded_past_the_end_of_day_moves_to_the_next_morning() -> None:
    assert place_in_working_time(calendar(), berlin(2026, 6, 15, 16, 59, 30)) == berlin(
        2026, 6, 16, 9, 0
    )


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="has no time zone"):
        is_working_time(calendar(), datetime(2026, 6, 15, 10, 0))


def test_business_days_keep_the_time_of_day_and_skip_the_weekend() -> None:
    cal = calendar()
    two = parse_duration("2 business days")

    assert add_business_time(cal, berlin(2026, 6, 16, 15, 0), two) == berlin(2026, 6, 18, 15, 0)
    assert add_business_time(cal, berlin(2026, 6, 19, 15, 0), two) == berlin(2026, 6, 23, 15, 0)
    # From a Saturday, all of Monday and Tuesday must pass: Wednesday's start.
    assert add_business_time(cal, berlin(2026, 6, 20, 10, 0), two) == berlin(2026, 6, 24, 9, 0)


def test_business_hours_carry_over_into_the_next_working_day() -> None:
    cal = calendar()

    result = add_business_time(cal, berlin(2026, 6, 19, 15, 0), parse_duration("4 business hours"))

    assert result == berlin(2026, 6, 22, 11, 0)
    assert business_time_between(cal, berlin(2026, 6, 19, 15, 0), result) == timedelta(hours=4)


def test_add_business_time_refuses_calendar_units() -> None:
    with pytest.raises(ValueError, match="not business time"):
        add_business_time(calendar(), berlin(2026, 6, 15, 10, 0), parse_duration("24h"))


def test_calendar_days_keep_the_wall_clock_across_dst_but_hours_are_elapsed() -> None:
    cal = calendar()
    friday = berlin(2026, 3, 27, 10, 0)  # clocks go forward on Sunday 29 March

    three_days = add_duration(cal, friday, parse_duration("3d"))
    seventy_two_hours = add_duration(cal, friday, parse_duration("72h"))

    assert local(three_days, BERLIN) == (2026, 3, 30, 10, 0)
    assert three_days - friday == timedelta(hours=71)
    assert local(seventy_two_hours, BERLIN) == (2026, 3, 30, 11, 0)


def test_business_day_across_spring_forward_keeps_the_wall_clock() -> None:
    result = add_business_time(
        calendar(), berlin(2026, 3, 27, 10, 0), parse_duration("1 business day")
    )

    assert local(result, BERLIN) == (2026, 3, 30, 10, 0)


def test_business_hours_across_fall_back_count_working_time_only() -> None:
    cal = calendar("America/Los_Angeles")
    friday = datetime(2026, 10, 30, 15, 0, tzinfo=LOS_ANGELES)  # clocks go back on 1 November

    result = add_business_time(cal, friday, parse_duration("3 business hours"))

    assert local(result, LOS_ANGELES) == (2026, 11, 2, 10, 0)
    assert business_time_between(cal, friday, result) == timedelta(hours=3)


def test_a_working_day_starting_in_the_spring_forward_gap_starts_when_the_clock_jumps() -> None:
    # Berlin skips 02:00-03:00 on Sunday 29 March 2026; this rep works Sundays from 02:30.
    cal = calendar(working_days=[7], start=time(2, 30), end=time(10, 0))

    start = next_working_moment(cal, berlin(2026, 3, 29, 0, 0))

    assert start == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert local(start, BERLIN) == (2026, 3, 29, 3, 0)
    assert local_instant(cal, datetime(2026, 3, 29, 2, 30)) == start


def test_a_wall_time_repeated_at_fall_back_is_its_first_occurrence() -> None:
    # Los Angeles repeats 01:00-02:00 on Sunday 1 November 2026.
    cal = calendar("America/Los_Angeles", working_days=[7], start=time(1, 30), end=time(12, 0))

    hours = working_hours_on(cal, date(2026, 11, 1))

    assert hours is not None
    assert hours[0] == datetime(2026, 11, 1, 8, 30, tzinfo=UTC)  # 01:30 PDT, not PST
    assert hours[1] - hours[0] == timedelta(hours=11, minutes=30)


def test_sydney_working_day_across_its_april_fall_back() -> None:
    cal = calendar("Australia/Sydney")
    friday = datetime(2026, 4, 3, 16, 0, tzinfo=SYDNEY)  # Good Friday; clocks go back 5 April

    result = add_business_time(cal, friday, parse_duration("1 business day"))

    assert local(result, SYDNEY) == (2026, 4, 6, 16, 0)
    assert result - friday == timedelta(days=3, hours=1)


def test_public_holidays_are_days_off_when_a_country_is_set() -> None:
    christmas_eve_evening = berlin(2026, 12, 24, 17, 30)

    with_holidays = place_in_working_time(calendar(holiday_country="DE"), christmas_eve_evening)
    without = place_in_working_time(calendar(), christmas_eve_evening)

    assert with_holidays == berlin(2026, 12, 28, 9, 0)  # 25 Dec is Friday, 26 Dec Saturday
    assert without == berlin(2026, 12, 25, 9, 0)
    assert calendar(holiday_country="DE").is_holiday(date(2026, 12, 25))


def test_a_subdivisions_own_holidays_count() -> None:
    epiphany = berlin(2026, 1, 6, 10, 0)  # a Tuesday; a holiday in Bavaria, not in Berlin

    assert not is_working_time(calendar(holiday_country="DE", holiday_subdivision="BY"), epiphany)
    assert is_working_time(calendar(holiday_country="DE", holiday_subdivision="BE"), epiphany)


def test_business_days_skip_holidays_in_india() -> None:
    cal = calendar("Asia/Kolkata", holiday_country="IN")
    friday = datetime(2026, 1, 23, 11, 0, tzinfo=KOLKATA)  # Monday 26 January is Republic Day

    result = add_business_time(cal, friday, parse_duration("1 business day"))

    assert local(result, KOLKATA) == (2026, 1, 27, 11, 0)


def test_working_days_accept_graph_day_names() -> None:
    cal = WorkingCalendar.model_validate(
        {
            "timeZone": "Asia/Jerusalem",
            "workingDays": ["sunday", "monday", "tuesday", "wednesday", "thursday"],
            "start": "08:30",
            "end": "17:30",
        }
    )

    assert cal.working_days == frozenset({7, 1, 2, 3, 4})
    assert cal.start == time(8, 30)


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({"time_zone": "Pacific Standard Time"}, "unknown time zone 'Pacific Standard Time'"),
        ({"time_zone": "Europe/Berlin", "start": "17:00", "end": "09:00"}, "at least an hour"),
        ({"time_zone": "Europe/Berlin", "start": "09:00", "end": "09:30"}, "at least an hour"),
        ({"time_zone": "Europe/Berlin", "start": "09:00:30"}, "whole minutes"),
        ({"time_zone": "Europe/Berlin", "working_days": [0, 8]}, "got [0, 8]"),
        ({"time_zone": "Europe/Berlin", "working_days": []}, "at least 1 item"),
        ({"time_zone": "Europe/Berlin", "holiday_country": "XX"}, "country 'XX'"),
        ({"time_zone": "Europe/Berlin", "holiday_subdivision": "BY"}, "needs holiday_country"),
        (
            {"time_zone": "Europe/Berlin", "holiday_country": "DE", "holiday_subdivision": "ZZ"},
            "unknown subdivision 'ZZ' of DE",
        ),
    ],
)
def test_bad_calendar_is_refused_naming_the_problem(
    fields: dict[str, object], complaint: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        WorkingCalendar.model_validate(fields)

    assert complaint in str(caught.value)


def test_snooze_one_day_keeps_the_time_on_the_next_working_day() -> None:
    cal = calendar()

    assert snooze_until(cal, berlin(2026, 6, 16, 15, 20), "1d") == berlin(2026, 6, 17, 15, 20)
    assert snooze_until(cal, berlin(2026, 6, 19, 15, 20), "1d") == berlin(2026, 6, 22, 15, 20)


def test_snooze_after_hours_comes_back_at_the_start_of_the_day() -> None:
    cal = calendar()

    assert snooze_until(cal, berlin(2026, 6, 19, 18, 0), "1d") == berlin(2026, 6, 22, 9, 0)
    assert snooze_until(cal, berlin(2026, 6, 20, 10, 0), "1d") == berlin(2026, 6, 22, 10, 0)


def test_snooze_three_days_counts_working_days_and_holidays() -> None:
    cal = calendar(holiday_country="DE")
    # Wednesday 1 April 2026: Good Friday 3 April and Easter Monday 6 April are off.
    result = snooze_until(cal, berlin(2026, 4, 1, 11, 0), "3d")

    assert result == berlin(2026, 4, 8, 11, 0)


def test_snooze_next_week_is_the_first_working_morning_of_next_week() -> None:
    cal = calendar(holiday_country="DE")

    assert snooze_until(cal, berlin(2026, 6, 17, 15, 0), "next_week") == berlin(2026, 6, 22, 9, 0)
    assert snooze_until(cal, berlin(2026, 6, 22, 8, 0), "next_week") == berlin(2026, 6, 29, 9, 0)
    # Easter Monday 6 April 2026 is off in Germany: Tuesday.
    assert snooze_until(cal, berlin(2026, 4, 1, 15, 0), "next_week") == berlin(2026, 4, 7, 9, 0)


def test_snooze_next_week_starts_on_sunday_for_a_sunday_to_thursday_week() -> None:
    zone = ZoneInfo("Asia/Jerusalem")
    cal = calendar("Asia/Jerusalem", working_days=[7, 1, 2, 3, 4])

    result = snooze_until(cal, datetime(2026, 6, 17, 15, 0, tzinfo=zone), "next_week")

    assert local(result, zone) == (2026, 6, 21, 9, 0)
    assert result.astimezone(zone).isoweekday() == 7


def test_a_copied_calendar_with_a_new_zone_works_in_the_new_zone() -> None:
    berlin_calendar = calendar()
    berlin_calendar.zone  # noqa: B018 - compile the schedule before copying

    tokyo = berlin_calendar.model_copy(update={"time_zone": "Asia/Tokyo"})

    assert str(tokyo.zone) == "Asia/Tokyo"
    assert next_working_moment(tokyo, datetime(2026, 6, 15, 0, 0, tzinfo=UTC)) == datetime(
        2026, 6, 15, 0, 0, tzinfo=UTC
    )
    with pytest.raises(ValidationError, match="unknown time zone"):
        berlin_calendar.model_copy(update={"time_zone": "Mars/Olympus"})


def test_equal_calendars_are_interchangeable_as_keys() -> None:
    used = calendar(holiday_country="DE")
    is_working_time(used, berlin(2026, 6, 15, 10, 0))

    assert used == calendar(holiday_country="DE")
    assert {used: "rep"}[calendar(holiday_country="DE")] == "rep"
