from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from pydantic import ValidationError

from reminders.planner import DealState, PlannedReminder, plan_reminders
from reminders.worktime import is_working_time
from tests.reminders.samples import BERLIN, LOS_ANGELES, NOW, berlin, calendar, deal, rule


def plan(
    the_deal: DealState | None = None,
    *rules: object,
    now: datetime = NOW,
    zone: str = "Europe/Berlin",
) -> list[PlannedReminder]:
    return plan_reminders(the_deal or deal(), list(rules), calendar(zone), now)  # type: ignore[arg-type]


def test_on_enter_is_due_a_business_day_after_entering() -> None:
    (reminder,) = plan(deal(), rule("on_enter", after="1 business day"))

    assert reminder.due_at == berlin(2026, 3, 24, 10, 0)
    assert reminder.kind == "on_enter"
    assert reminder.key == "D-1001:negotiation:20260323T090000Z:on-enter:1"


def test_on_enter_outside_working_hours_moves_to_the_next_morning() -> None:
    (reminder,) = plan(deal(), rule("on_enter", after="10h"))

    assert reminder.due_at == berlin(2026, 3, 24, 9, 0)  # 20:00 is after hours


def test_idle_counts_from_entering_the_stage_without_interactions() -> None:
    (reminder,) = plan(deal(), rule("idle", after="3 business days", message="Quiet {days_idle}d"))

    assert reminder.due_at == berlin(2026, 3, 26, 10, 0)
    assert reminder.occurrence == "since-20260323T090000Z"
    assert reminder.message == "Quiet 3d"


def test_a_logged_meeting_resets_idle() -> None:
    idle = rule("idle", after="3 business days")
    before = plan(deal(), idle)
    meeting = berlin(2026, 3, 25, 14, 0)

    after = plan(deal(last_held_interaction_at=meeting), idle, now=meeting + timedelta(hours=1))

    assert [r.due_at for r in after] == [berlin(2026, 3, 30, 14, 0)]
    assert after[0].key != before[0].key
    assert after[0].occurrence == "since-20260325T130000Z"


def test_an_interaction_before_the_stage_does_not_reset_idle() -> None:
    earlier = berlin(2026, 3, 20, 11, 0)

    (reminder,) = plan(
        deal(last_held_interaction_at=earlier), rule("idle", after="2 business days")
    )

    assert reminder.due_at == berlin(2026, 3, 25, 10, 0)


def test_an_interaction_recorded_after_now_is_not_held_yet() -> None:
    future = NOW + timedelta(days=2)

    (reminder,) = plan(deal(last_held_interaction_at=future), rule("idle", after="2 business days"))

    assert reminder.occurrence == "since-20260323T090000Z"


def test_sla_warns_at_a_fraction_and_is_overdue_at_the_limit() -> None:
    sla = rule("sla", within="4 business days", warn_at=0.5)

    warn, overdue = plan(deal(), sla)

    assert (warn.occurrence, warn.due_at, warn.stage_deadline) == (
        "warn",
        berlin(2026, 3, 25, 10, 0),
        False,
    )
    assert (overdue.occurrence, overdue.due_at, overdue.stage_deadline) == (
        "overdue",
        berlin(2026, 3, 27, 10, 0),
        True,
    )
    assert overdue.title.startswith("Overdue in Negotiation")


def test_sla_warning_in_calendar_time_is_placed_in_working_hours() -> None:
    # 75 % of 2 days after Monday 10:00 is Tuesday 22:00: placed at Wednesday 09:00.
    warn, overdue = plan(deal(), rule("sla", within="2d", title="Move {deal.title}"))

    assert warn.due_at == berlin(2026, 3, 25, 9, 0)
    assert overdue.due_at == berlin(2026, 3, 25, 10, 0)
    assert overdue.title == "Overdue: Move ACME renewal"


def test_sla_without_a_warning_has_only_the_overdue_reminder() -> None:
    reminders = plan(deal(), rule("sla", within="5 business days", warn_at=None))

    assert [(r.occurrence, r.stage_deadline) for r in reminders] == [("overdue", True)]


def test_sla_warning_landing_with_the_limit_is_dropped() -> None:
    friday_evening = deal(entered_stage_at=berlin(2026, 3, 27, 16, 30))

    reminders = plan(friday_evening, rule("sla", within="2h"))

    assert [(r.occurrence, r.due_at) for r in reminders] == [("overdue", berlin(2026, 3, 30, 9, 0))]


def test_before_close_counts_business_days_back_from_the_close_date() -> None:
    closing = deal(expected_close_date=date(2026, 4, 13))  # a Monday

    (reminder,) = plan(
        closing, rule("before_close", before="2 business days", message="{days_to_close} days")
    )

    assert reminder.due_at == berlin(2026, 4, 9, 9, 0)
    assert reminder.occurrence == "close-2026-04-13"
    assert reminder.message == "4 days"


def test_before_close_landing_on_a_weekend_moves_to_monday() -> None:
    closing = deal(expected_close_date=date(2026, 4, 14))

    (reminder,) = plan(closing, rule("before_close", before="3d"))

    assert reminder.due_at == berlin(2026, 4, 13, 9, 0)  # Saturday 11 April → Monday


def test_before_close_never_precedes_entering_the_stage() -> None:
    (reminder,) = plan(
        deal(expected_close_date=date(2026, 3, 24)), rule("before_close", before="1w")
    )

    assert reminder.due_at == berlin(2026, 3, 23, 10, 0)


def test_before_close_skips_a_close_date_already_past_or_missing() -> None:
    closing = rule("before_close", before="1 business day")

    assert plan(deal(expected_close_date=date(2026, 3, 1)), closing) == []
    assert plan(deal(expected_close_date=None), closing) == []


def test_a_new_close_date_gives_a_new_reminder() -> None:
    closing = rule("before_close", before="1 business day")

    (first,) = plan(deal(expected_close_date=date(2026, 4, 30)), closing)
    (moved,) = plan(deal(expected_close_date=date(2026, 5, 29)), closing)

    assert first.key != moved.key


def test_repeat_plans_every_occurrence_up_to_the_limit() -> None:
    reminders = plan(deal(), rule("repeat", every="1w", max_times=3, message="#{days_in_stage}"))

    assert [r.occurrence for r in reminders] == ["1", "2", "3"]
    assert [r.due_at for r in reminders] == [
        berlin(2026, 3, 30, 10, 0),
        berlin(2026, 4, 6, 10, 0),
        berlin(2026, 4, 13, 10, 0),
    ]
    assert [r.message for r in reminders] == ["#7", "#14", "#21"]


def test_hourly_repeats_over_a_weekend_collapse_into_one() -> None:
    friday = deal(entered_stage_at=berlin(2026, 3, 27, 15, 30))

    reminders = plan(friday, rule("repeat", every="1h", max_times=6))

    assert [(r.occurrence, r.due_at) for r in reminders] == [
        ("1", berlin(2026, 3, 27, 16, 30)),
        ("2", berlin(2026, 3, 30, 9, 0)),
    ]


def test_a_reply_to_the_proposal_is_a_task_within_24_hours() -> None:
    reply = berlin(2026, 3, 24, 11, 15)
    answer = rule("after_interaction", within="24h", message="Answer {deal.account}")

    (reminder,) = plan(deal(last_held_interaction_at=reply), answer)

    assert reminder.due_at == berlin(2026, 3, 25, 11, 15)
    assert reminder.occurrence == "after-20260324T101500Z"
    assert reminder.message == "Answer ACME GmbH"


def test_no_interaction_in_the_stage_means_no_follow_up_task() -> None:
    follow_up = rule("after_interaction", within="24h")

    assert plan(deal(), follow_up) == []
    assert plan(deal(last_held_interaction_at=berlin(2026, 3, 20, 9, 0)), follow_up) == []


@pytest.mark.parametrize("status", ["won", "lost"])
def test_won_and_lost_deals_have_no_reminders(status: str) -> None:
    assert plan(deal(status=status), rule("on_enter", after="1h"), rule("idle", after="1d")) == []


def test_a_stage_change_gives_entirely_new_keys() -> None:
    rules = [rule("on_enter", after="1 business day"), rule("idle", after="3 business days")]
    in_negotiation = plan(deal(), *rules)

    moved = deal(stage_key="deal_closing", stage_name="Deal closing", entered_stage_at=NOW)
    in_closing = plan(moved, *rules)

    assert not {r.key for r in in_negotiation} & {r.key for r in in_closing}


def test_coming_back_to_the_same_stage_gives_new_keys() -> None:
    rules = [rule("on_enter", after="1 business day")]

    first_visit = plan(deal(), *rules)
    second_visit = plan(deal(entered_stage_at=berlin(2026, 4, 20, 10, 0)), *rules)

    assert first_visit[0].key != second_visit[0].key


def test_replanning_later_changes_nothing() -> None:
    rules = [
        rule("on_enter", after="1 business day", message="{days_in_stage} days in {deal.stage}"),
        rule("sla", within="10 business days"),
        rule("repeat", every="1w", max_times=4),
    ]

    assert plan(deal(), *rules, now=NOW) == plan(deal(), *rules, now=NOW + timedelta(days=30))


def test_reminders_are_sorted_by_due_time_then_key() -> None:
    reminders = plan(
        deal(),
        rule("repeat", id="weekly", every="1w", max_times=2),
        rule("on_enter", after="1 business day"),
        rule("on_enter", id="same-time", after="1 business day"),
    )

    assert [(r.due_at, r.key) for r in reminders] == sorted((r.due_at, r.key) for r in reminders)
    assert [r.rule_id for r in reminders] == ["on-enter", "same-time", "weekly", "weekly"]


def test_rules_with_the_same_id_are_refused() -> None:
    with pytest.raises(ValueError, match="unique"):
        plan(deal(), rule("idle", after="1d"), rule("idle", after="2d"))


def test_a_colon_in_a_crm_id_cannot_forge_another_deals_key() -> None:
    (odd,) = plan(deal(deal_id="A:negotiation"), rule("on_enter", after="1h"))

    assert odd.key.startswith("A%3Anegotiation:negotiation:")
    assert odd.deal_id == "A:negotiation"


def test_messages_show_deal_fields_as_of_the_due_time_in_the_reps_zone() -> None:
    template = (
        "{deal.title} for {deal.account}, {deal.amount}, {days_in_stage} days in {deal.stage} "
        "since {deal.entered_stage}; last met {deal.last_interaction} "
        "({days_since_interaction} days); closes {deal.close_date}; {rep.first_name} "
        "<{rep.email}>; due {due}; {deal.url}"
    )
    met = berlin(2026, 3, 24, 16, 0)

    (reminder,) = plan(
        deal(last_held_interaction_at=met), rule("on_enter", after="2d", message=template)
    )

    assert reminder.message == (
        "ACME renewal for ACME GmbH, 12,500 EUR, 2 days in Negotiation since 2026-03-23; "
        "last met 2026-03-24 (1 days); closes 2026-04-30; Ann <ann.lee@example.com>; "
        "due Wed 25 Mar 10:00; https://crm.example.com/deals/D-1001"
    )


def test_missing_deal_values_render_as_a_dash() -> None:
    bare = deal(amount=None, account_name="", expected_close_date=None)

    (reminder,) = plan(
        bare, rule("on_enter", after="1h", message="{deal.amount} {deal.account} {days_to_close}")
    )

    assert reminder.message == "— — —"


def test_working_hours_placement_in_los_angeles_across_spring_forward() -> None:
    friday = deal(entered_stage_at=datetime(2026, 3, 6, 16, 0, tzinfo=LOS_ANGELES))
    rules = [rule("on_enter", after="1 business day"), rule("idle", after="24h")]

    idle, on_enter = plan(friday, *rules, zone="America/Los_Angeles")

    # Clocks go forward on Sunday 8 March: Monday 16:00 PDT is 23:00 UTC, not 00:00.
    assert on_enter.due_at == datetime(2026, 3, 9, 23, 0, tzinfo=UTC)
    assert idle.due_at == datetime(2026, 3, 9, 16, 0, tzinfo=UTC)  # Monday 09:00 PDT


def test_due_times_are_utc_and_inside_working_hours() -> None:
    rules = [
        rule("on_enter", after="7h"),
        rule("sla", within="5d"),
        rule("repeat", every="13h", max_times=9),
    ]
    cal = calendar("America/Los_Angeles")

    reminders = plan_reminders(deal(), rules, cal, NOW)

    assert reminders
    assert all(r.due_at.tzinfo is UTC and is_working_time(cal, r.due_at) for r in reminders)


def test_deal_state_refuses_naive_and_absurd_times() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        deal(entered_stage_at=datetime(2026, 3, 23, 10, 0))
    with pytest.raises(ValidationError, match=r"outside 1970\.\.2200"):
        deal(expected_close_date=date(9999, 12, 31))


def test_deal_state_keeps_instants_in_utc() -> None:
    assert deal().entered_stage_at == datetime(2026, 3, 23, 9, 0, tzinfo=UTC)
    assert deal().entered_stage_at.tzinfo is UTC
    assert BERLIN.key == "Europe/Berlin"


def test_a_note_is_not_the_customers_reply() -> None:
    """after_interaction and idle react to meetings, calls and emails unless a rule says more."""
    call, note = berlin(2026, 3, 24, 11, 15), berlin(2026, 3, 24, 16, 0)
    recap = rule("after_interaction", within="24h", message="You spoke on {deal.last_interaction}")
    quiet = rule("idle", id="quiet", after="3 business days")

    only_a_note = plan(deal(last_held={"note": note}), recap, quiet)
    after_both = plan(deal(last_held={"call": call, "note": note}), recap, quiet)

    assert [r.kind for r in only_a_note] == ["idle"]
    assert only_a_note[0].occurrence == "since-20260323T090000Z"  # not reset by the note
    assert [(r.kind, r.occurrence) for r in after_both] == [
        ("after_interaction", "after-20260324T101500Z"),  # the call's, not the note's
        ("idle", "since-20260324T101500Z"),
    ]
    assert after_both[0].message == "You spoke on 2026-03-24"


def test_a_rule_can_name_the_kinds_it_reacts_to() -> None:
    note = berlin(2026, 3, 24, 16, 0)
    on_notes = rule("after_interaction", within="24h", reactsTo=["note"])

    (reminder,) = plan(deal(last_held={"note": note}), on_notes)

    assert reminder.occurrence == "after-20260324T150000Z"
    assert on_notes.model_dump(mode="json")["reacts_to"] == ["note"]
    assert rule("idle", after="1d").reacts_to == ("meeting", "call", "email")  # type: ignore[union-attr]


@pytest.mark.parametrize("kinds", [[], ["visit"], ["call", "call"]])
def test_reacts_to_names_known_kinds_once(kinds: list[str]) -> None:
    with pytest.raises(ValidationError):
        rule("after_interaction", within="24h", reactsTo=kinds)
