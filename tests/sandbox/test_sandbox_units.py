"""The sandbox's pure parts: recurrence, time zones, Exchange-style ids, OData filters, faults."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandbox import exchange_ids, timezones
from sandbox.errors import GraphError
from sandbox.faults import FaultBook, FaultRule
from sandbox.graph.query import parse_filter, sort_items
from sandbox.graph.wire import Prefer
from sandbox.recurrence import PatternedRecurrence, occurrence_starts

TAG = "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name DealBridgeReminder"


def _series(pattern: dict[str, object], rng: dict[str, object]) -> PatternedRecurrence:
    return PatternedRecurrence.model_validate({"pattern": pattern, "range": rng})


def test_every_other_week_on_two_days_until_an_end_date() -> None:
    series = _series(
        {"type": "weekly", "interval": 2, "daysOfWeek": ["tuesday", "friday"]},
        {"type": "endDate", "startDate": "2026-11-03", "endDate": "2026-12-01"},
    )
    starts = list(occurrence_starts(series, datetime(2026, 11, 3, 9, tzinfo=UTC), "UTC"))
    assert [s.date().isoformat() for s in starts] == [
        "2026-11-03",
        "2026-11-06",
        "2026-11-17",
        "2026-11-20",
        "2026-12-01",
    ]


def test_a_numbered_series_stops_after_its_count_even_when_skipping_ahead() -> None:
    series = _series(
        {"type": "daily", "interval": 3},
        {"type": "numbered", "startDate": "2026-01-01", "numberOfOccurrences": 4},
    )
    first = datetime(2026, 1, 1, 8, tzinfo=UTC)
    starts = list(occurrence_starts(series, first, "UTC", since=datetime(2026, 1, 5, tzinfo=UTC)))
    assert [s.day for s in starts] == [1, 4, 7, 10]


def test_an_endless_series_skips_ahead_to_the_window() -> None:
    series = _series({"type": "daily", "interval": 1}, {"type": "noEnd", "startDate": "2020-01-01"})
    since = datetime(2026, 6, 1, tzinfo=UTC)
    starts = occurrence_starts(
        series,
        datetime(2020, 1, 1, 7, tzinfo=UTC),
        "UTC",
        since=since,
        until=since + timedelta(days=3),
    )
    assert [s.date() for s in starts] == [
        date(2026, 5, 31),
        date(2026, 6, 1),
        date(2026, 6, 2),
        date(2026, 6, 3),
    ]


@pytest.mark.parametrize(
    ("pattern", "rng"),
    [
        (
            {"type": "absoluteMonthly", "dayOfMonth": 3},
            {"type": "noEnd", "startDate": "2026-01-03"},
        ),
        ({"type": "weekly", "interval": 1}, {"type": "noEnd", "startDate": "2026-01-03"}),
        ({"type": "daily", "interval": 1}, {"type": "endDate", "startDate": "2026-01-03"}),
    ],
)
def test_recurrences_the_sandbox_cannot_expand_are_refused(
    pattern: dict[str, object], rng: dict[str, object]
) -> None:
    with pytest.raises(ValueError, match="validation error"):
        _series(pattern, rng)


@given(st.integers(min_value=1, max_value=6), st.integers(min_value=1, max_value=40))
def test_weekly_occurrences_fall_on_the_chosen_days_in_order(interval: int, count: int) -> None:
    series = _series(
        {"type": "weekly", "interval": interval, "daysOfWeek": ["monday", "wednesday"]},
        {"type": "numbered", "startDate": "2026-03-04", "numberOfOccurrences": count},
    )
    starts = list(occurrence_starts(series, datetime(2026, 3, 4, 15, tzinfo=UTC), "UTC"))
    assert len(starts) == count
    assert starts == sorted(starts)
    assert {s.strftime("%A") for s in starts} <= {"Monday", "Wednesday"}


def test_windows_and_iana_names_name_the_same_zone() -> None:
    moment = datetime(2026, 1, 15, 12, tzinfo=UTC)
    windows = timezones.format_local(moment, "Tokyo Standard Time")
    iana = timezones.format_local(moment, "Asia/Tokyo")
    assert windows["dateTime"] == iana["dateTime"] == "2026-01-15T21:00:00.0000000"
    assert timezones.windows_to_iana("Pacific Standard Time") == "America/Los_Angeles"
    assert timezones.iana_to_windows("Europe/Paris") == "Romance Standard Time"


def test_graph_date_times_take_seven_fractional_digits_and_no_offset() -> None:
    parsed = timezones.parse_local("2026-03-29T02:30:00.1234567", "W. Europe Standard Time")
    assert parsed == datetime(2026, 3, 29, 1, 30, 0, 123456, tzinfo=UTC)
    with pytest.raises(timezones.UnknownTimeZoneError):
        timezones.zone("Mars Standard Time")


def test_occurrence_ids_round_trip_to_their_master_and_start() -> None:
    master = exchange_ids.new_item_id("82dd2496-fb7d-47c9-9585-21aed0f9cdca")
    start = datetime(2026, 11, 2, 17, tzinfo=UTC)
    occurrence = exchange_ids.occurrence_id(master, start)
    assert exchange_ids.split_occurrence_id(occurrence) == (master, start)
    assert exchange_ids.split_occurrence_id(master) is None
    assert exchange_ids.is_well_formed(occurrence)
    assert not exchange_ids.is_well_formed("not-an-id")


def test_an_occurrence_icaluid_carries_its_instance_date() -> None:
    uid = exchange_ids.new_ical_uid(datetime(2026, 11, 1, tzinfo=UTC))
    instance = exchange_ids.occurrence_ical_uid(uid, date(2026, 11, 23))
    assert uid[32:40] == "00000000"
    assert instance[32:40] == "07EA0B17"
    assert instance[40:] == uid[40:]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        (f"singleValueExtendedProperties/Any(ep: ep/id eq '{TAG}' and ep/value eq 'r-1')", True),
        (
            f"singleValueExtendedProperties/any(e: e/id eq '{TAG.lower()}' and e/value eq 'r-2')",
            False,
        ),
        ("subject eq 'Deal Review' and isCancelled eq false", True),
        ("start/dateTime ge '2026-11-23T00:00:00' and not (showAs eq 'free')", True),
        ("categories/any(c: c eq 'dealbridge') or subject eq 'x'", True),
        ("startswith(subject, 'deal') and reminderMinutesBeforeStart gt 10", True),
        ("contains(subject, 'o''brien')", False),
    ],
)
def test_filters_match_as_exchange_does(expression: str, expected: bool) -> None:
    item = {
        "subject": "Deal review",
        "isCancelled": False,
        "showAs": "busy",
        "start": {"dateTime": "2026-11-23T17:00:00.0000000", "timeZone": "UTC"},
        "categories": ["DealBridge"],
        "reminderMinutesBeforeStart": 15,
        "singleValueExtendedProperties": [{"id": TAG, "value": "r-1"}],
    }
    assert parse_filter(expression)(item) is expected


@pytest.mark.parametrize(
    "expression", ["subject eq", "subject like 'x'", "(subject eq 'x'", "eq 'x'"]
)
def test_a_malformed_filter_is_a_400(expression: str) -> None:
    with pytest.raises(GraphError) as raised:
        parse_filter(expression)
    assert raised.value.status == 400


def test_orderby_sorts_by_several_keys() -> None:
    items = [{"s": "b", "n": 1}, {"s": "a", "n": 2}, {"s": "a", "n": 1}]
    assert sort_items(items, "s asc, n desc") == [
        {"s": "a", "n": 2},
        {"s": "a", "n": 1},
        {"s": "b", "n": 1},
    ]


def test_prefer_reads_page_size_time_zone_and_body_type_together() -> None:
    prefer = Prefer.parse(
        'odata.maxpagesize=25, outlook.timezone="Pacific Standard Time", '
        'outlook.body-content-type="text"'
    )
    assert (prefer.max_page_size, prefer.time_zone, prefer.body_content_type) == (
        25,
        "Pacific Standard Time",
        "text",
    )


def test_a_counted_fault_is_spent_after_its_count() -> None:
    book = FaultBook(seed=1)
    book.add(FaultRule(route="^GET ", status=503, count=2))
    hits = [book.draw("GET /v1.0/users") is not None for _ in range(4)]
    assert hits == [True, True, False, False]
    assert book.draw("POST /v1.0/users") is None
