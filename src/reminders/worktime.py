"""A rep's working time: working days and hours in their zone, public holidays, and arithmetic.

Every function takes timezone-aware datetimes and returns aware datetimes in UTC (format them
with ``t.astimezone(calendar.zone)`` for display). Comparisons and arithmetic run on UTC
instants because Python compares two datetimes of the same zone by wall clock, ignoring
``fold`` (PEP 495), which misorders the repeated hour when clocks go back.

DST choices, applied everywhere a wall-clock time becomes an instant:

- a wall time that does not exist (clocks go forward, e.g. 02:30 on the last Sunday of March
  in Berlin) becomes the first instant after the gap (03:00): the first moment the clock
  shows that time or later;
- a wall time that happens twice (clocks go back) is the first of the two (``fold=0``), so a
  working day ending at 02:30 on such a night ends at the first 02:30.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property, lru_cache
from typing import Any, Literal, Self, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from reminders.rules import Duration

ONE_DAY = timedelta(days=1)
# Ten years without a working day means the calendar is broken, not that we should keep looking.
MAX_DAYS_SEARCHED = 3660

SnoozeOption = Literal["1d", "3d", "next_week"]
SNOOZE_OPTIONS: tuple[SnoozeOption, ...] = ("1d", "3d", "next_week")

_WEEKDAY_NAMES = {
    "monday": 1,
    "tuesday": 2,
    "wednesday": 3,
    "thursday": 4,
    "friday": 5,
    "saturday": 6,
    "sunday": 7,
}


class WorkingCalendar(BaseModel):
    """When a rep works: zone, working days and hours, and optionally a country's holidays.

    Built by the connector from Graph ``mailboxSettings.workingHours`` (time zone mapped from
    Windows to IANA first), or from the settings' defaults when a mailbox has none.
    """

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
    )

    time_zone: str
    """IANA zone name, e.g. ``Europe/Berlin``."""
    working_days: frozenset[int] = Field(default=frozenset({1, 2, 3, 4, 5}), min_length=1)
    """ISO weekdays (1 = Monday … 7 = Sunday); English day names such as Graph's are accepted."""
    start: time = time(9, 0)
    """Start of the working day, wall clock, whole minutes."""
    end: time = time(17, 0)
    """End of the working day (exclusive), wall clock, whole minutes, after ``start``."""
    holiday_country: str | None = None
    """ISO 3166 code whose public holidays are days off (``holidays`` package), e.g. ``DE``."""
    holiday_subdivision: str | None = None
    """A subdivision of that country known to the ``holidays`` package, e.g. ``BY``."""

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(
                f"unknown time zone {name!r}: use an IANA name like Europe/Berlin"
            ) from e
        return name

    @field_validator("working_days", mode="before")
    @classmethod
    def _day_names(cls, days: Any) -> Any:
        if isinstance(days, (list, tuple, set, frozenset)):
            return [_WEEKDAY_NAMES.get(d.lower(), d) if isinstance(d, str) else d for d in days]
        return days

    @field_validator("working_days")
    @classmethod
    def _iso_weekdays(cls, days: frozenset[int]) -> frozenset[int]:
        if bad := sorted(d for d in days if not 1 <= d <= 7):
            raise ValueError(f"working days are ISO weekdays 1..7 or day names; got {bad}")
        return days

    @field_validator("start", "end")
    @classmethod
    def _whole_minutes(cls, value: time) -> time:
        if value.second or value.microsecond or value.tzinfo is not None:
            raise ValueError(f"{value} must be a wall-clock time in whole minutes, like 09:00")
        return value

    @field_validator("holiday_country")
    @classmethod
    def _known_country(cls, code: str | None) -> str | None:
        if code is not None and code not in _supported_countries():
            raise ValueError(f"no public holidays known for country {code!r} (ISO 3166 alpha-2)")
        return code

    @model_validator(mode="after")
    def _consistent(self) -> WorkingCalendar:
        length = datetime.combine(date.min, self.end) - datetime.combine(date.min, self.start)
        if length < timedelta(hours=1):
            hours = f"{self.start:%H:%M}-{self.end:%H:%M}"
            raise ValueError(f"the working day must last at least an hour ({hours})")
        if self.holiday_subdivision is not None:
            if self.holiday_country is None:
                raise ValueError("holiday_subdivision needs holiday_country")
            known = _supported_countries()[self.holiday_country]
            if self.holiday_subdivision not in known:
                msg = (
                    f"unknown subdivision {self.holiday_subdivision!r} of {self.holiday_country}; "
                    f"known: {', '.join(known) or 'none'}"
                )
                raise ValueError(msg)
        return self

    @cached_property
    def _schedule(self) -> _Schedule:
        # A cached_property rather than a PrivateAttr: read on every call, and pydantic's
        # __getattr__ for private attributes costs about 10 % of a re-plan.
        return _schedule_for(
            self.time_zone,
            self.working_days,
            self.start,
            self.end,
            self.holiday_country,
            self.holiday_subdivision,
        )

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy; ``update`` is validated (pydantic's own copy would skip validation and keep
        the schedule compiled for the old values)."""
        if update:
            return self.model_validate({**self.model_dump(), **update})
        return super().model_copy(deep=deep)

    @property
    def zone(self) -> ZoneInfo:
        """The rep's zone, for display."""
        return self._schedule.zone

    def is_holiday(self, day: date) -> bool:
        """True when ``day`` is a public holiday in the calendar's country."""
        return self._schedule.is_holiday(day)


# --------------------------------------------------------------------------- public functions


def is_working_time(calendar: WorkingCalendar, t: datetime) -> bool:
    """True when ``t`` falls inside the rep's working hours on a working day."""
    schedule = calendar._schedule
    u = _utc(t)
    hours = schedule.hours(schedule.local_date(u))
    return hours is not None and hours[0] <= u < hours[1]


def next_working_moment(calendar: WorkingCalendar, t: datetime) -> datetime:
    """``t`` itself if it is working time, else the start of the next working period."""
    return calendar._schedule.next_working(_utc(t))


def place_in_working_time(calendar: WorkingCalendar, t: datetime) -> datetime:
    """Where a reminder due at ``t`` goes: the next working moment, rounded up to the minute."""
    schedule = calendar._schedule
    placed = schedule.next_working(_utc(t))
    if placed.second or placed.microsecond:
        rounded = placed.replace(second=0, microsecond=0) + timedelta(minutes=1)
        placed = schedule.next_working(rounded)
    return placed


def add_business_time(calendar: WorkingCalendar, start: datetime, duration: Duration) -> datetime:
    """``start`` plus a business duration, counted in working time only.

    Working time is a continuum: a start outside working hours counts from the next working
    moment, and the end of one working day is the start of the next. ``N business days`` keeps
    the wall-clock time of day (Tue 15:00 + 2 → Thu 15:00; Sat 10:00 + 2 → Wed 09:00, i.e.
    after all of Monday and Tuesday). ``N business hours`` adds elapsed working time. The
    result is always working time. Raises ``ValueError`` for a calendar unit.
    """
    if not duration.is_business_time:
        raise ValueError(f"{duration} is not business time; use add_duration")
    return add_duration(calendar, start, duration)


def add_duration(calendar: WorkingCalendar, start: datetime, duration: Duration) -> datetime:
    """``start`` plus any duration: business units as :func:`add_business_time`; ``minutes``
    and ``hours`` as elapsed time; ``days`` and ``weeks`` keep the wall-clock time in the rep's
    zone. Calendar results are not moved into working time (see :func:`place_in_working_time`).
    """
    return calendar._schedule.advance(_utc(start), duration.amount, duration.unit)


def add_working_time(calendar: WorkingCalendar, start: datetime, amount: timedelta) -> datetime:
    """``start`` plus ``amount`` of elapsed working time (the continuum of
    :func:`add_business_time`); the result is always working time."""
    return calendar._schedule.add_working(_utc(start), amount)


def business_time_between(calendar: WorkingCalendar, start: datetime, end: datetime) -> timedelta:
    """How much working time lies between two instants (zero when ``end`` is not later)."""
    return calendar._schedule.working_between(_utc(start), _utc(end))


def working_hours_on(calendar: WorkingCalendar, day: date) -> tuple[datetime, datetime] | None:
    """The rep's working hours on a local date as UTC instants, or None on a day off."""
    return calendar._schedule.hours(day)


def local_instant(calendar: WorkingCalendar, wall: datetime) -> datetime:
    """The UTC instant of a naive wall-clock time in the rep's zone (DST as the module says)."""
    if wall.tzinfo is not None:
        raise ValueError(f"{wall.isoformat()} already has a time zone; pass a wall-clock time")
    return calendar._schedule.instant(wall)


def snooze_until(calendar: WorkingCalendar, now: datetime, option: SnoozeOption) -> datetime:
    """When a reminder snoozed at ``now`` comes back, in the rep's working time.

    ``1d`` / ``3d``: the 1st / 3rd working day after today (in the rep's zone), at the same
    time of day when that is within working hours, else at the start of the working day
    (Friday 18:00 + 1d → Monday 09:00; Saturday 10:00 + 1d → Monday 10:00).
    ``next_week``: the start of the first working day of next week; a week starts the day
    after the longest run of days off (Monday for Mon–Fri, Sunday for Sun–Thu).
    """
    schedule = calendar._schedule
    local = _utc(now).astimezone(schedule.zone)
    today = local.date()
    if option == "next_week":
        day = today + ONE_DAY
        while day.isoweekday() != schedule.week_start:
            day += ONE_DAY
        wall = datetime.combine(day, schedule.start)
    else:
        day = today
        for _ in range(3 if option == "3d" else 1):
            day = schedule.next_working_day(day + ONE_DAY)
        time_of_day = local.time().replace(tzinfo=None)
        keep_time = schedule.start <= time_of_day < schedule.end
        wall = datetime.combine(day, time_of_day if keep_time else schedule.start)
    return place_in_working_time(calendar, schedule.instant(wall))


# --------------------------------------------------------------------------- the compiled schedule


def _utc(t: datetime) -> datetime:
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"{t.isoformat()} has no time zone; pass an aware datetime")
    return t.astimezone(UTC)


@lru_cache(maxsize=1)
def _supported_countries() -> dict[str, list[str]]:
    # Imported here: about 70 ms, paid only by calendars that name a country.
    import holidays

    return {
        code: list(subdivisions)
        for code, subdivisions in holidays.list_supported_countries().items()
    }


@lru_cache(maxsize=4096)
def _holiday_dates(country: str, subdivision: str | None, year: int) -> frozenset[date]:
    import holidays

    # holidays warns when it lacks a year's lunar holidays (IN outside 2001-2035); the rest count.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return frozenset(holidays.country_holidays(country, subdiv=subdivision, years=year).keys())


_T = TypeVar("_T")


def _remember(memo: dict[tuple[Any, ...], Any], key: tuple[Any, ...], work: Callable[[], _T]) -> _T:
    """``work()``, once per key: a schedule's sums are pure. Bounded like a schedule's hours."""
    try:
        found: _T = memo[key]
        return found
    except KeyError:
        pass
    found = work()
    if len(memo) > 20_000:
        memo.clear()
    memo[key] = found
    return found


@lru_cache(maxsize=1024)
def _schedule_for(
    zone_name: str,
    working_days: frozenset[int],
    start: time,
    end: time,
    country: str | None,
    subdivision: str | None,
) -> _Schedule:
    return _Schedule(ZoneInfo(zone_name), working_days, start, end, country, subdivision)


@dataclass(eq=False)
class _Schedule:
    """A calendar compiled for arithmetic: each day's working hours as UTC instants, cached."""

    zone: ZoneInfo
    working_days: frozenset[int]
    start: time
    end: time
    country: str | None
    subdivision: str | None
    _hours: dict[date, tuple[datetime, datetime] | None] = field(default_factory=dict)
    _sums: dict[tuple[Any, ...], Any] = field(default_factory=dict)
    """Answers already worked out: a bulk of new deals enters its stages at one instant, so
    each plan asks the same sums (1,000 deals: 4,500 ``advance``, 6,750 ``next_working``, 500
    ``working_between`` calls, a handful of them distinct)."""

    @property
    def week_start(self) -> int:
        """The ISO weekday after the longest run of days off (Monday when every day is worked)."""
        best_day, best_run = 1, 0
        for day in range(1, 8):
            run = 0
            while run < 7 and ((day - 2 - run) % 7) + 1 not in self.working_days:
                run += 1
            if day in self.working_days and run > best_run:
                best_day, best_run = day, run
        return best_day

    def is_holiday(self, day: date) -> bool:
        return self.country is not None and day in _holiday_dates(
            self.country, self.subdivision, day.year
        )

    def local_date(self, u: datetime) -> date:
        return u.astimezone(self.zone).date()

    def instant(self, wall: datetime) -> datetime:
        """The UTC instant of a wall-clock time in the zone (see the module's DST choices)."""
        aware = wall.replace(tzinfo=self.zone, fold=0)
        u = aware.astimezone(UTC)
        if u.astimezone(self.zone).replace(tzinfo=None) == wall:
            return u
        # In a gap: search the transition between the two readings of the wall time.
        low = math.floor(wall.replace(tzinfo=self.zone, fold=1).astimezone(UTC).timestamp())
        high = math.ceil(u.timestamp())
        low, high = min(low, high), max(low, high)
        while low < high:
            middle = (low + high) // 2
            shown = datetime.fromtimestamp(middle, self.zone).replace(tzinfo=None)
            if shown >= wall:
                high = middle
            else:
                low = middle + 1
        return datetime.fromtimestamp(low, UTC)

    def hours(self, day: date) -> tuple[datetime, datetime] | None:
        """The day's working hours as UTC instants, or None on a day off."""
        try:
            return self._hours[day]
        except KeyError:
            pass
        hours: tuple[datetime, datetime] | None = None
        if day.isoweekday() in self.working_days and not self.is_holiday(day):
            begin = self.instant(datetime.combine(day, self.start))
            finish = self.instant(datetime.combine(day, self.end))
            hours = (begin, finish) if begin < finish else None
        if len(self._hours) > 20_000:
            self._hours.clear()
        self._hours[day] = hours
        return hours

    def working_days_from(self, day: date) -> Iterator[tuple[date, tuple[datetime, datetime]]]:
        """Each day from ``day`` on that has working hours, with those hours."""
        days_off = 0
        while True:
            hours = self.hours(day)
            if hours is not None:
                days_off = 0
                yield day, hours
            else:
                days_off += 1
                if days_off > MAX_DAYS_SEARCHED:
                    raise RuntimeError(f"no working day within {MAX_DAYS_SEARCHED} days of {day}")
            day += ONE_DAY

    def next_working_day(self, day: date) -> date:
        """``day`` itself if it has working hours, else the next day that has."""
        if self.hours(day) is not None:
            return day
        return next(self.working_days_from(day))[0]

    def next_working(self, u: datetime) -> datetime:
        return _remember(self._sums, ("next", u), lambda: self._next_working(u))

    def _next_working(self, u: datetime) -> datetime:
        day = self.local_date(u)
        hours = self.hours(day)
        if hours is not None and u < hours[1]:
            return max(u, hours[0])
        _day, (begin, _finish) = next(self.working_days_from(day + ONE_DAY))
        return begin

    def add_working(self, u: datetime, amount: timedelta) -> datetime:
        """Walk forward through working hours until ``amount`` of working time has passed."""
        return _remember(self._sums, ("add", u, amount), lambda: self._add_working(u, amount))

    def _add_working(self, u: datetime, amount: timedelta) -> datetime:
        for _day, (begin, finish) in self.working_days_from(self.local_date(u)):
            if u < finish:
                available = finish - max(u, begin)
                if amount < available:
                    return max(u, begin) + amount
                amount -= available
        raise AssertionError("unreachable: working_days_from never ends")

    def working_between(self, a: datetime, b: datetime) -> timedelta:
        return _remember(self._sums, ("between", a, b), lambda: self._working_between(a, b))

    def _working_between(self, a: datetime, b: datetime) -> timedelta:
        total = timedelta(0)
        day, last = self.local_date(a), self.local_date(b)
        while day <= last:
            hours = self.hours(day)
            if hours is not None:
                overlap = min(b, hours[1]) - max(a, hours[0])
                if overlap > timedelta(0):
                    total += overlap
            day += ONE_DAY
        return total

    def add_working_days(self, u: datetime, days: int) -> datetime:
        u = self.next_working(u)
        local = u.astimezone(self.zone)
        day, time_of_day = local.date(), local.time().replace(tzinfo=None, fold=0)
        for _ in range(days):
            day = self.next_working_day(day + ONE_DAY)
        return self.next_working(self.instant(datetime.combine(day, time_of_day)))

    def add_calendar_days(self, u: datetime, days: int) -> datetime:
        wall = u.astimezone(self.zone).replace(tzinfo=None, fold=0)
        return self.instant(wall + timedelta(days=days))

    def advance(self, u: datetime, amount: int, unit: str) -> datetime:
        return _remember(
            self._sums, ("advance", u, amount, unit), lambda: self._advance(u, amount, unit)
        )

    def _advance(self, u: datetime, amount: int, unit: str) -> datetime:
        match unit:
            case "minutes":
                return u + timedelta(minutes=amount)
            case "hours":
                return u + timedelta(hours=amount)
            case "days":
                return self.add_calendar_days(u, amount)
            case "weeks":
                return self.add_calendar_days(u, 7 * amount)
            case "business_days":
                return self.add_working_days(u, amount)
            case "business_hours":
                return self.add_working(u, timedelta(hours=amount))
        raise AssertionError(f"unknown duration unit {unit!r}")
