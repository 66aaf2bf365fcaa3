from __future__ import annotations

import json
from datetime import date

import pytest

from reminders.planner import plan_reminders
from reminders.presets import PRESET_RULES, preset_rules
from reminders.rules import AfterInteractionRule, parse_stage_rules
from tests.reminders.samples import NOW, berlin, calendar, deal

PRESET_STAGES = {
    "classic5": [
        "lead_generation",
        "first_interaction",
        "solution_presentation",
        "negotiation",
        "deal_closing",
    ],
    "journey7": [
        "identification",
        "qualification",
        "initial_contact",
        "solution",
        "negotiation",
        "closing",
        "after_sales",
    ],
    "b2b6": [
        "need_identification",
        "solution_search",
        "evaluation_of_options",
        "agreement",
        "deal",
        "post_sale_support",
    ],
    "aida4": ["attention", "interest", "desire", "action"],
    "measure5": ["lead", "qualified_lead", "presentation", "commercial_proposal", "deal"],
}
ALL_STAGES = [(p, s) for p, stages in PRESET_STAGES.items() for s in stages]


def test_every_preset_covers_exactly_its_stages_plus_won_and_lost() -> None:
    assert {p: list(stages) for p, stages in PRESET_RULES.items()} == {
        p: [*stages, "won", "lost"] for p, stages in PRESET_STAGES.items()
    }
    assert all(PRESET_RULES[p]["won"] == [] == PRESET_RULES[p]["lost"] for p in PRESET_STAGES)


@pytest.mark.parametrize(("preset", "stage"), ALL_STAGES)
def test_each_stage_has_a_few_rules_that_survive_storage(preset: str, stage: str) -> None:
    rules = PRESET_RULES[preset][stage]

    stored = json.loads(json.dumps([r.model_dump(mode="json") for r in rules]))

    assert 1 <= len(rules) <= 3
    assert parse_stage_rules(stored) == rules


@pytest.mark.parametrize(("preset", "stage"), ALL_STAGES)
def test_preset_messages_render_every_field_for_a_complete_deal(preset: str, stage: str) -> None:
    full = deal(
        stage_key=stage,
        entered_stage_at=berlin(2026, 3, 2, 10, 0),
        last_held_interaction_at=berlin(2026, 3, 4, 15, 0),
        expected_close_date=date(2026, 4, 30),
    )

    reminders = plan_reminders(full, PRESET_RULES[preset][stage], calendar(), NOW)

    assert reminders
    for reminder in reminders:
        assert "—" not in reminder.message + reminder.title
        assert "{" not in reminder.message + reminder.title


def test_a_reply_to_a_commercial_proposal_is_a_task_within_24_hours() -> None:
    answer = next(
        r for r in PRESET_RULES["measure5"]["commercial_proposal"] if r.id == "answer-client"
    )

    assert isinstance(answer, AfterInteractionRule)
    assert str(answer.within) == "24h"


def test_preset_rules_hands_out_a_copy() -> None:
    rules = preset_rules("classic5", "negotiation")
    rules.clear()

    assert PRESET_RULES["classic5"]["negotiation"]
