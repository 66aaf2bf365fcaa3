from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from reminders.rules import (
    Duration,
    OnEnterRule,
    SlaRule,
    dump_stage_rules,
    parse_duration,
    parse_rule,
    parse_stage_rules,
    render_template,
    validate_template,
)


@pytest.mark.parametrize(
    ("text", "amount", "unit", "canonical"),
    [
        ("24h", 24, "hours", "24h"),
        ("90m", 90, "minutes", "90m"),
        ("3d", 3, "days", "3d"),
        ("1w", 1, "weeks", "1w"),
        ("2 business days", 2, "business_days", "2 business days"),
        ("1 business day", 1, "business_days", "1 business day"),
        ("4 business hours", 4, "business_hours", "4 business hours"),
        ("  24 H ", 24, "hours", "24h"),
        ("3 days", 3, "days", "3d"),
        ("2 Business  Days", 2, "business_days", "2 business days"),
    ],
)
def test_duration_reads_the_written_forms(
    text: str, amount: int, unit: str, canonical: str
) -> None:
    duration = parse_duration(text)

    assert (duration.amount, duration.unit) == (amount, unit)
    assert str(duration) == canonical
    assert parse_duration(str(duration)) == duration


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("3", "write a whole number and a unit"),
        ("-1d", "write a whole number and a unit"),
        ("0h", "at least 1"),
        ("3 fortnights", "write a whole number and a unit"),
        ("1.5d", "36h, not 1.5d"),
        ("400d", "at most 365 days"),
        ("", "write a whole number and a unit"),
        ("24hours later", "write a whole number and a unit"),
    ],
)
def test_bad_duration_is_refused_naming_the_text(text: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=r"not a duration|too long") as caught:
        parse_duration(text)

    assert repr(text) in str(caught.value)
    assert complaint in str(caught.value)


def test_bad_duration_in_a_rule_points_at_its_field() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_rule({"kind": "on_enter", "after": "3 fortnights", "message": "Call them"})

    (error,) = caught.value.errors()
    assert error["loc"] == ("on_enter", "after")
    assert "'3 fortnights'" in error["msg"]


def test_duration_field_reads_and_writes_text() -> None:
    rule = parse_rule({"kind": "on_enter", "after": "2 business days", "message": "Call them"})

    assert isinstance(rule, OnEnterRule)
    assert rule.after == Duration(amount=2, unit="business_days")
    assert rule.model_dump(mode="json")["after"] == "2 business days"


def test_rules_of_every_kind_survive_a_json_round_trip() -> None:
    data: list[dict[str, Any]] = [
        {"kind": "on_enter", "after": "1 business day", "message": "Call {deal.account}"},
        {"kind": "idle", "after": "5 business days", "message": "Quiet for {days_idle} days"},
        {"kind": "sla", "within": "10 business days", "warnAt": 0.5, "message": "Move it"},
        {"kind": "before_close", "before": "3d", "message": "Closes {deal.close_date}"},
        {"kind": "repeat", "every": "1w", "maxTimes": 4, "message": "Check in"},
        {"kind": "after_interaction", "within": "24h", "message": "Answer", "title": "Reply"},
    ]

    rules = parse_stage_rules(data)
    stored = json.loads(json.dumps(dump_stage_rules(rules)))

    assert parse_stage_rules(stored) == rules
    assert [r.id for r in rules] == [
        "on-enter",
        "idle",
        "sla",
        "before-close",
        "repeat",
        "after-interaction",
    ]
    assert isinstance(rules[2], SlaRule)
    assert rules[2].warn_at == 0.5


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValidationError, match="does not match any of the expected tags"):
        parse_rule({"kind": "someday", "after": "1d", "message": "x"})


def test_unknown_field_in_a_rule_is_refused() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        parse_rule({"kind": "idle", "after": "1d", "message": "x", "afterr": "2d"})


def test_two_rules_with_one_id_in_a_stage_are_refused() -> None:
    with pytest.raises(ValidationError, match="repeated: gone-quiet"):
        parse_stage_rules(
            [
                {"kind": "idle", "id": "gone-quiet", "after": "1d", "message": "x"},
                {"kind": "idle", "id": "gone-quiet", "after": "2d", "message": "y"},
            ]
        )


def test_rule_id_must_be_a_slug() -> None:
    with pytest.raises(ValidationError, match="should match pattern"):
        parse_rule({"kind": "idle", "id": "Gone Quiet!", "after": "1d", "message": "x"})


def test_before_close_takes_whole_days_only() -> None:
    with pytest.raises(ValidationError, match="use days, weeks or business days"):
        parse_rule({"kind": "before_close", "before": "4h", "message": "x"})


def test_sla_warning_is_a_fraction_between_zero_and_one() -> None:
    with pytest.raises(ValidationError, match="less than 1"):
        parse_rule({"kind": "sla", "within": "3d", "warn_at": 1.0, "message": "x"})


def test_repeat_is_capped() -> None:
    with pytest.raises(ValidationError, match="less than or equal to 52"):
        parse_rule({"kind": "repeat", "every": "1d", "max_times": 53, "message": "x"})


def test_known_template_fields_pass_validation() -> None:
    validate_template(
        "{deal.title} ({deal.amount}) for {deal.account}: {days_in_stage} days in "
        "{deal.stage}, {rep.name}. {{literal braces}}"
    )


@pytest.mark.parametrize(
    ("template", "complaint"),
    [
        ("Hello {deal.titel} and {deal.foo}", "unknown template field(s) {deal.titel}, {deal.foo}"),
        ("Hello {deal.title", "template syntax error"),
        ("Hello } there", "template syntax error"),
        ("Amount {deal.amount:,.2f}", "{deal.amount:,.2f} has a format"),
        ("Title {deal.title!r}", "{deal.title!r} has a format"),
        ("Positional {}", "unknown template field(s) {}"),
        ("Indexed {0}", "unknown template field(s) {0}"),
    ],
)
def test_bad_template_is_refused_naming_the_problem(template: str, complaint: str) -> None:
    with pytest.raises(ValueError) as caught:
        validate_template(template)

    assert complaint in str(caught.value)


def test_bad_template_in_a_rule_points_at_the_message() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_rule({"kind": "idle", "after": "1d", "message": "Hi {deal.owner}"})

    (error,) = caught.value.errors()
    assert error["loc"] == ("idle", "message")
    assert "{deal.owner}" in error["msg"]


def test_rendering_shows_a_dash_for_missing_values_and_never_raises() -> None:
    values = {"deal.title": "ACME renewal", "deal.amount": ""}

    assert render_template("{deal.title}: {deal.amount}", values) == "ACME renewal: —"
    assert render_template("{{x}} {deal.title}", values) == "{x} ACME renewal"
    assert render_template("broken {deal.title", values) == "broken {deal.title"


def test_a_very_long_bad_duration_is_shortened_in_the_message() -> None:
    with pytest.raises(ValueError, match="not a duration") as caught:
        parse_duration("x" * 5000)

    assert len(str(caught.value)) < 200
