"""Properties of working-time arithmetic and the planner, over many zones, hours and dates."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reminders.planner import DealState, plan_reminders
from reminders.rules import Duration, ReminderRule, parse_duration, parse_rule
from reminders.worktime import (
    SNOOZE_OPTIONS,
    SnoozeOption,
    WorkingCalendar,
    add_business_time,
    business_time_between,
    is_working_time,
    next_working_moment,
    place_in_working_time,
    snooze_until,
)

PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

# Zones with DST in both hemispheres, half-hour offsets and a half-hour DST shift.
ZONES = [
    "UTC",
    "America/Los_Angeles",
    "America/New_York",
    "America/Sao_Paulo",
    "America/Santiago",
    "America/St_Johns",
    "Europe/Berlin",
    "Europe/London",
    "Africa/Cairo",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Asia/Jerusalem",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "Pacific/Auckland",
    "Pacific/Chatham",
]
COUNTRIES = [None, "DE", "US", "IN", "AU", "GB", "BR"]

instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2040, 12, 31), timezones=st.just(UTC)
)


@st.composite
def calendars(
    draw: st.DrawFn, earliest_start: int = 0, latest_end: int = 23 * 60 + 59
) -> WorkingCalendar:
    """Any zone of ZONES; working hours within [earliest_start, latest_end] minutes of the day."""
    start = draw(st.integers(earliest_start, latest_end - 60))
    end = draw(st.integers(start + 60, latest_end))
    return WorkingCalendar(
        time_zone=draw(st.sampled_from(ZONES)),
        working_days=draw(st.frozensets(st.integers(1, 7), min_size=1)),
        start=time(start // 60, start % 60),
        end=time(end // 60, end % 60),
        holiday_country=draw(st.sampled_from(COUNTRIES)),
    )


# Clock changes happen at night (00:00-03:00, Santiago at 24:00); with working hours in the
# day the time of day always exists, which the additivity of business days relies on.
daytime_calendars = calendars(earliest_start=5 * 60, latest_end=21 * 60)
business_days = st.integers(1, 40).map(lambda n: Duration(amount=n, unit="business_days"))
business_hours = st.integers(1, 200).map(lambda n: Duration(amount=n, unit="business_hours"))


@PROPERTY_SETTINGS
@given(calendars(), instants)
def test_next_working_moment_is_the_moment_itself_or_a_later_working_one(
    cal: WorkingCalendar, t: datetime
) -> None:
    moment = next_working_moment(cal, t)

    assert moment >= t
    assert is_working_time(cal, moment)
    assert (moment == t) == is_working_time(cal, t)
    assert next_working_moment(cal, moment) == moment


@PROPERTY_SETTINGS
@given(calendars(), instants)
def test_nothing_between_a_moment_and_its_next_working_moment_is_working_time(
    cal: WorkingCalendar, t: datetime
) -> None:
    moment = next_working_moment(cal, t)

    # Every working period is at least an hour long, so sampling each 30 minutes finds one.
    probe = t
    while probe < moment:
        assert not is_working_time(cal, probe)
        probe += timedelta(minutes=30)


@PROPERTY_SETTINGS
@given(calendars(), instants)
def test_a_placed_due_time_is_a_whole_minute_of_working_time(
    cal: WorkingCalendar, t: datetime
) -> None:
    placed = place_in_working_time(cal, t)

    assert placed >= t
    assert is_working_time(cal, placed)
    assert placed.tzinfo is UTC
    assert (placed.second, placed.microsecond) == (0, 0)


@PROPERTY_SETTINGS
@given(calendars(), instants, st.one_of(business_days, business_hours))
def test_business_time_ends_later_and_inside_working_time(
    cal: WorkingCalendar, t: datetime, duration: Duration
) -> None:
    end = add_business_time(cal, t, duration)

    assert end > t
    assert is_working_time(cal, end)


@PROPERTY_SETTINGS
@given(calendars(), instants, business_hours, business_hours)
def test_business_hours_add_up(cal: WorkingCalendar, t: datetime, a: Duration, b: Duration) -> None:
    total = Duration(amount=a.amount + b.amount, unit="business_hours")

    assert add_business_time(cal, add_business_time(cal, t, a), b) == add_business_time(
        cal, t, total
    )
    assert business_time_between(cal, t, add_business_time(cal, t, a)) == timedelta(hours=a.amount)


@PROPERTY_SETTINGS
@given(daytime_calendars, instants, business_days, business_days)
def test_business_days_add_up(cal: WorkingCalendar, t: datetime, a: Duration, b: Duration) -> None:
    total = Duration(amount=a.amount + b.amount, unit="business_days")

    assert add_business_time(cal, add_business_time(cal, t, a), b) == add_business_time(
        cal, t, total
    )


@PROPERTY_SETTINGS
@given(
    daytime_calendars,
    instants,
    st.timedeltas(timedelta(0), timedelta(days=10)),
    st.one_of(business_days, business_hours),
)
def test_business_time_is_monotone_in_the_start(
    cal: WorkingCalendar, t: datetime, later_by: timedelta, duration: Duration
) -> None:
    assert add_business_time(cal, t, duration) <= add_business_time(cal, t + later_by, duration)


@PROPERTY_SETTINGS
@given(
    calendars(),
    instants,
    st.sampled_from(["business days", "business hours"]),
    st.integers(1, 30),
    st.integers(1, 30),
)
def test_business_time_is_monotone_in_the_amount(
    cal: WorkingCalendar, t: datetime, unit: str, a: int, b: int
) -> None:
    shorter, longer = sorted((a, b))

    after_shorter = add_business_time(cal, t, parse_duration(f"{shorter} {unit}"))
    after_longer = add_business_time(cal, t, parse_duration(f"{longer} {unit}"))

    assert after_shorter <= after_longer


@PROPERTY_SETTINGS
@given(calendars(), instants, st.sampled_from(SNOOZE_OPTIONS))
def test_a_snoozed_reminder_comes_back_later_in_working_time(
    cal: WorkingCalendar, now: datetime, option: SnoozeOption
) -> None:
    until = snooze_until(cal, now, option)

    assert until > now
    assert is_working_time(cal, until)


# --------------------------------------------------------------------------- the planner

durations = st.one_of(
    st.integers(1, 600).map(lambda n: f"{n}m"),
    st.integers(1, 96).map(lambda n: f"{n}h"),
    st.integers(1, 30).map(lambda n: f"{n}d"),
    st.integers(1, 8).map(lambda n: f"{n}w"),
    st.integers(1, 30).map(lambda n: f"{n} business days"),
    st.integers(1, 60).map(lambda n: f"{n} business hours"),
)
day_durations = st.one_of(
    st.integers(1, 30).map(lambda n: f"{n}d"),
    st.integers(1, 4).map(lambda n: f"{n}w"),
    st.integers(1, 20).map(lambda n: f"{n} business days"),
)
MESSAGE = "{deal.title}: {days_in_stage} days in {deal.stage}, quiet {days_idle}, due {due}"


@st.composite
def stage_rules(draw: st.DrawFn) -> list[ReminderRule]:
    makers: dict[str, Callable[[], dict[str, object]]] = {
        "on_enter": lambda: {"after": draw(durations)},
        "idle": lambda: {"after": draw(durations)},
        "sla": lambda: {
            "within": draw(durations),
            "warn_at": draw(st.none() | st.floats(0.05, 0.95)),
        },
        "before_close": lambda: {"before": draw(day_durations)},
        "repeat": lambda: {"every": draw(durations), "max_times": draw(st.integers(1, 6))},
        "after_interaction": lambda: {"within": draw(durations)},
    }
    kinds = draw(st.lists(st.sampled_from(list(makers)), min_size=1, max_size=6))
    return [
        parse_rule({"kind": kind, "id": f"rule-{n}", "message": MESSAGE, **makers[kind]()})
        for n, kind in enumerate(kinds)
    ]


@st.composite
def deals(draw: st.DrawFn) -> DealState:
    entered = draw(instants)
    interaction = draw(st.none() | st.timedeltas(timedelta(days=-5), timedelta(days=40)))
    close_in = draw(st.none() | st.integers(-10, 120))
    return DealState(
        deal_id=draw(st.text(min_size=1, max_size=12)),
        title="Deal",
        pipeline="Sales",
        stage_key=draw(st.sampled_from(["lead", "negotiation", "deal:closing"])),
        stage_name="Stage",
        entered_stage_at=entered,
        last_held_interaction_at=None if interaction is None else entered + interaction,
        expected_close_date=None if close_in is None else entered.date() + timedelta(days=close_in),
    )


@PROPERTY_SETTINGS
@given(deals(), stage_rules(), calendars(), st.timedeltas(timedelta(0), timedelta(days=60)))
def test_planned_reminders_are_in_working_time_sorted_and_uniquely_keyed(
    deal: DealState, rules: list[ReminderRule], cal: WorkingCalendar, age: timedelta
) -> None:
    now = deal.entered_stage_at + age

    reminders = plan_reminders(deal, rules, cal, now)

    assert all(is_working_time(cal, r.due_at) and r.due_at.tzinfo is UTC for r in reminders)
    assert [(r.due_at, r.key) for r in reminders] == sorted((r.due_at, r.key) for r in reminders)
    assert len({r.key for r in reminders}) == len(reminders)
    assert all(r.due_at >= place_in_working_time(cal, deal.entered_stage_at) for r in reminders)


@PROPERTY_SETTINGS
@given(deals(), stage_rules(), calendars(), st.timedeltas(timedelta(0), timedelta(days=60)))
def test_the_same_input_plans_the_same_reminders(
    deal: DealState, rules: list[ReminderRule], cal: WorkingCalendar, age: timedelta
) -> None:
    now = deal.entered_stage_at + age
    copy = DealState.model_validate(deal.model_dump())
    same_calendar = WorkingCalendar.model_validate(cal.model_dump())

    assert plan_reminders(deal, rules, cal, now) == plan_reminders(
        copy, list(rules), same_calendar, now
    )


@PROPERTY_SETTINGS
@given(deals(), stage_rules(), calendars(), st.timedeltas(timedelta(days=41), timedelta(days=400)))
def test_once_interactions_are_past_replanning_later_keeps_every_key_and_due_time(
    deal: DealState, rules: list[ReminderRule], cal: WorkingCalendar, later: timedelta
) -> None:
    now = deal.entered_stage_at + timedelta(days=40)

    first = plan_reminders(deal, rules, cal, now)
    again = plan_reminders(deal, rules, cal, now + later)

    assert first == again


@PROPERTY_SETTINGS
@given(deals(), stage_rules(), calendars(), st.sampled_from(["won", "lost"]))
def test_closed_deals_have_no_reminders(
    deal: DealState, rules: list[ReminderRule], cal: WorkingCalendar, status: str
) -> None:
    closed = deal.model_copy(update={"status": status})

    assert plan_reminders(closed, rules, cal, deal.entered_stage_at) == []
