"""Deals, calendars and rules the reminder tests share."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from reminders.planner import DealState
from reminders.rules import ReminderRule, parse_rule
from reminders.worktime import WorkingCalendar

BERLIN = ZoneInfo("Europe/Berlin")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")
KOLKATA = ZoneInfo("Asia/Kolkata")
SYDNEY = ZoneInfo("Australia/Sydney")

NOW = datetime(2026, 3, 25, 12, 0, tzinfo=UTC)


def berlin(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    """A wall-clock time in Berlin, e.g. berlin(2026, 3, 23, 9, 0)."""
    return datetime(year, month, day, hour, minute, second, tzinfo=BERLIN)


def calendar(zone: str = "Europe/Berlin", **fields: Any) -> WorkingCalendar:
    return WorkingCalendar(time_zone=zone, **fields)


def deal(**fields: Any) -> DealState:
    """An open deal in negotiation since Monday 23 March 2026, 10:00 Berlin."""
    values: dict[str, Any] = {
        "deal_id": "D-1001",
        "title": "ACME renewal",
        "pipeline": "Sales",
        "stage_key": "negotiation",
        "stage_name": "Negotiation",
        "status": "open",
        "entered_stage_at": berlin(2026, 3, 23, 10, 0),
        "last_held_interaction_at": None,
        "expected_close_date": date(2026, 4, 30),
        "amount": Decimal("12500"),
        "currency": "EUR",
        "account_name": "ACME GmbH",
        "owner_email": "ann.lee@example.com",
        "owner_name": "Ann Lee",
        "crm_url": "https://crm.example.com/deals/D-1001",
    }
    values.update(fields)
    return DealState(**values)


def rule(kind: str, message: str = "Look at {deal.title}", **fields: Any) -> ReminderRule:
    return parse_rule({"kind": kind, "message": message, **fields})
