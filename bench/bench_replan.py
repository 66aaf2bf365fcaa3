"""Re-plan the reminders of 100,000 deals with the classic5 preset's rules (deals/s).

Each deal is built from a plain dict into a ``DealState`` (as the connector does from its store)
and planned for its rep's working calendar: 40 reps over eight time zones, half of them with
their country's public holidays. Baseline, measured in the same run: the same loop building
the ``DealState`` and computing days in stage, without planning.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from reminders.planner import DealState, plan_reminders
from reminders.presets import PRESET_RULES
from reminders.worktime import WorkingCalendar

DEALS = 100_000
NOW = datetime(2026, 3, 25, 12, 0, tzinfo=UTC)
RULES = PRESET_RULES["classic5"]
# Open stages carry most deals; a few are already won or lost (no reminders).
STAGES = [*[s for s, rules in RULES.items() if rules], "won", "lost"]
STAGE_WEIGHTS = [30, 25, 18, 14, 9, 2, 2]
REP_ZONES = [
    ("Europe/Berlin", "DE"),
    ("America/Los_Angeles", "US"),
    ("America/New_York", "US"),
    ("Asia/Kolkata", "IN"),
    ("Australia/Sydney", "AU"),
    ("Europe/London", "GB"),
    ("America/Sao_Paulo", "BR"),
    ("Asia/Tokyo", "JP"),
]


def rep_calendars() -> dict[str, WorkingCalendar]:
    calendars = {}
    for n in range(40):
        zone, country = REP_ZONES[n % len(REP_ZONES)]
        calendars[f"rep{n}@contoso.com"] = WorkingCalendar(
            time_zone=zone,
            start=f"{8 + n % 2:02d}:00",
            end=f"{17 + n % 2:02d}:00",
            holiday_country=country if n % 2 == 0 else None,
        )
    return calendars


def raw_deals(owners: list[str]) -> list[dict[str, Any]]:
    """Deterministic, varied deal rows as the connector's store would hand them over."""
    pick = random.Random(5)
    rows = []
    for i in range(DEALS):
        stage = pick.choices(STAGES, STAGE_WEIGHTS)[0]
        entered = NOW - timedelta(minutes=pick.randrange(0, 120 * 24 * 60))
        met = entered + (NOW - entered) * pick.random() if pick.random() < 0.6 else None
        rows.append(
            {
                "deal_id": f"OPP-{i:06d}",
                "title": f"Opportunity {i}",
                "pipeline": "Sales",
                "stage_key": stage,
                "stage_name": stage.replace("_", " ").capitalize(),
                "status": stage if stage in ("won", "lost") else "open",
                "entered_stage_at": entered,
                "last_held_interaction_at": met,
                "expected_close_date": (
                    date(2026, 3, 1) + timedelta(days=pick.randrange(0, 180))
                    if pick.random() < 0.8
                    else None
                ),
                "amount": Decimal(1000 + pick.randrange(0, 400) * 250),
                "currency": "EUR",
                "account_name": f"Account {i % 900}",
                "owner_email": owners[i % len(owners)],
                "owner_name": f"Rep {i % len(owners)}",
                "crm_url": f"https://crm.example.com/deals/OPP-{i:06d}",
            }
        )
    return rows


def baseline(rows: list[dict[str, Any]]) -> tuple[float, int]:
    started = time.perf_counter()
    days = 0
    for row in rows:
        deal = DealState(**row)
        days += (NOW - deal.entered_stage_at).days
    return time.perf_counter() - started, days


def replan(rows: list[dict[str, Any]], calendars: dict[str, WorkingCalendar]) -> tuple[float, int]:
    started = time.perf_counter()
    planned = 0
    for row in rows:
        deal = DealState(**row)
        reminders = plan_reminders(deal, RULES[deal.stage_key], calendars[deal.owner_email], NOW)
        planned += len(reminders)
    return time.perf_counter() - started, planned


def main() -> dict[str, float]:
    calendars = rep_calendars()
    rows = raw_deals(list(calendars))
    base_seconds, _days = baseline(rows)
    plan_seconds, planned = replan(rows, calendars)
    figures = {
        "replan_deals_per_s": DEALS / plan_seconds,
        "baseline_deals_per_s": DEALS / base_seconds,
        "reminders_planned": float(planned),
        "ratio": plan_seconds / base_seconds,
    }
    for label, seconds in [
        ("re-plan (classic5)", plan_seconds),
        ("baseline: DealState only", base_seconds),
    ]:
        print(
            f"   {label:<25}: {DEALS:,} deals in {seconds:.2f} s = {DEALS / seconds:,.0f} deals/s"
        )
    print(f"   reminders planned: {planned:,} ({planned / DEALS:.1f} per deal)")
    print(f"   ratio re-plan / baseline time: {plan_seconds / base_seconds:.1f}x")
    return figures


if __name__ == "__main__":
    main()
