"""Recurring series: the `patternedRecurrence` of an event and its expansion into occurrences."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator
from pydantic.alias_generators import to_camel

from sandbox import timezones
from sandbox.directory import WEEKDAYS

# Outlook's limit on occurrences a series may have (Exchange caps numbered ranges at 999).
MAX_OCCURRENCES = 999


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class RecurrencePattern(_Wire):
    """`recurrencePattern`. The sandbox expands `daily` and `weekly`; other types are refused."""

    type: Literal["daily", "weekly"]
    interval: int = 1
    days_of_week: list[str] = []
    first_day_of_week: str = "sunday"
    day_of_month: int = 0
    month: int = 0
    index: str = "first"

    @field_validator("type", mode="before")
    @classmethod
    def _lower_type(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("days_of_week")
    @classmethod
    def _days(cls, days: list[str]) -> list[str]:
        lowered = [d.lower() for d in days]
        for day in lowered:
            if day not in WEEKDAYS:
                raise ValueError(f"Requested value '{day}' was not found.")
        return lowered

    @field_validator("first_day_of_week")
    @classmethod
    def _first_day(cls, day: str) -> str:
        if day.lower() not in WEEKDAYS:
            raise ValueError(f"Requested value '{day}' was not found.")
        return day.lower()

    @model_validator(mode="after")
    def _complete(self) -> RecurrencePattern:
        if self.interval < 1:
            raise ValueError("The recurrence pattern interval must be positive.")
        if self.type == "weekly" and not self.days_of_week:
            raise ValueError("A weekly recurrence pattern needs daysOfWeek.")
        return self


class RecurrenceRange(_Wire):
    """`recurrenceRange`: from `startDate` until `endDate`, for a number of occurrences, or ever."""

    type: Literal["endDate", "noEnd", "numbered"]
    start_date: date
    end_date: date | None = None
    number_of_occurrences: int = 0
    recurrence_time_zone: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> RecurrenceRange:
        if self.type == "endDate" and (self.end_date is None or self.end_date < self.start_date):
            raise ValueError("An endDate range needs an endDate on or after its startDate.")
        if self.type == "numbered" and not 0 < self.number_of_occurrences <= MAX_OCCURRENCES:
            raise ValueError("A numbered range needs numberOfOccurrences between 1 and 999.")
        if self.recurrence_time_zone:
            timezones.zone(self.recurrence_time_zone)
        return self


class PatternedRecurrence(_Wire):
    """`patternedRecurrence` as a client sends it on a series master."""

    pattern: RecurrencePattern
    range: RecurrenceRange

    def to_graph(self, start_zone: str) -> dict[str, Any]:
        """The recurrence as Graph returns it, every property present."""
        rng = self.range
        return {
            "pattern": {
                "type": self.pattern.type,
                "interval": self.pattern.interval,
                "month": self.pattern.month,
                "dayOfMonth": self.pattern.day_of_month,
                "daysOfWeek": list(self.pattern.days_of_week),
                "firstDayOfWeek": self.pattern.first_day_of_week,
                "index": self.pattern.index,
            },
            "range": {
                "type": rng.type,
                "startDate": rng.start_date.isoformat(),
                "endDate": rng.end_date.isoformat() if rng.end_date else "0001-01-01",
                "recurrenceTimeZone": rng.recurrence_time_zone or start_zone,
                "numberOfOccurrences": rng.number_of_occurrences,
            },
        }


def occurrence_starts(
    recurrence: PatternedRecurrence,
    first_start: datetime,
    start_zone: str,
    until: datetime | None = None,
    since: datetime | None = None,
) -> Iterator[datetime]:
    """Original starts (UTC) of a series, in order, at the series' wall-clock time of day.

    `since` lets an unbounded series skip ahead; `until` stops the walk (exclusive).
    """
    zone = timezones.zone(recurrence.range.recurrence_time_zone or start_zone)
    local_time: time = first_start.astimezone(zone).time()
    rng = recurrence.range
    numbered = rng.type == "numbered"
    skip_to = None if numbered or since is None else since.astimezone(zone)
    for produced, day in enumerate(_dates(recurrence, skip_to)):
        if rng.type == "endDate" and rng.end_date is not None and day > rng.end_date:
            return
        if numbered and produced >= rng.number_of_occurrences:
            return
        moment = datetime.combine(day, local_time, tzinfo=zone).astimezone(UTC)
        if until is not None and moment >= until:
            return
        yield moment


def _dates(recurrence: PatternedRecurrence, since: datetime | None) -> Iterator[date]:
    pattern, start = recurrence.pattern, recurrence.range.start_date
    skip_days = max(0, (since.date() - start).days - 1) if since is not None else 0
    if pattern.type == "daily":
        step = pattern.interval
        current = start + timedelta(days=(skip_days // step) * step)
        while True:
            yield current
            current += timedelta(days=step)
    first_day = WEEKDAYS.index(pattern.first_day_of_week)
    # Weeks are counted from the week (starting on firstDayOfWeek) that holds startDate.
    week_start = start - timedelta(days=(_sunday_index(start) - first_day) % 7)
    wanted = sorted((WEEKDAYS.index(d) - first_day) % 7 for d in pattern.days_of_week)
    step_weeks = pattern.interval
    week = (skip_days // 7 // step_weeks) * step_weeks
    while True:
        base = week_start + timedelta(weeks=week)
        for offset in wanted:
            day = base + timedelta(days=offset)
            if day >= start:
                yield day
        week += step_weeks


def _sunday_index(day: date) -> int:
    return (day.weekday() + 1) % 7
