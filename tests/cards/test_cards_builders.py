"""What each card shows and offers, in each state."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from cards import samples
from cards.builders import (
    after_meeting_card,
    build_card,
    card_kind,
    card_summary,
    digest_card,
    health_card,
    help_card,
    meeting_logged_card,
    my_deals_card,
    my_reminders_card,
    pick_deal_card,
    reminder_card,
)
from cards.models import CardView, HelpView, ReminderSnoozed

from .card_walk import actions_of, buttons, every_view, texts, walk

CARD_LIMIT = 40 * 1024


def titles(actions: list[dict[str, Any]]) -> list[str]:
    return [a["title"] for a in actions]


def body_text(card: dict[str, Any]) -> str:
    return "\n".join(texts(card))


def size(card: dict[str, Any]) -> int:
    return len(json.dumps(card, ensure_ascii=False, separators=(",", ":")).encode())


@pytest.mark.parametrize(("name", "view"), list(every_view().items()))
def test_every_card_is_an_adaptive_card_1_5_under_40_kb(name: str, view: CardView) -> None:
    card = build_card(view)

    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    assert card["type"] == "AdaptiveCard"
    assert card["version"] == "1.5"
    assert card["fallbackText"] == card_summary(view)
    assert size(card) < CARD_LIMIT


@pytest.mark.parametrize(("name", "view"), list(samples.sample_views().items()))
def test_sample_cards_stay_under_10_kb(name: str, view: CardView) -> None:
    assert size(build_card(view)) < 10 * 1024


@pytest.mark.parametrize(("name", "view"), list(every_view().items()))
def test_every_button_is_action_execute_with_a_submit_fallback_carrying_the_verb(
    name: str, view: CardView
) -> None:
    card = build_card(view)
    assert actions_of(card, "Action.Submit") == [a["fallback"] for a, _ in buttons(card)]
    for action, _ in buttons(card):
        assert action["fallback"]["title"] == action["title"]
        assert action["fallback"]["data"] == {**action["data"], "verb": action["verb"]}
        assert action["data"]["view"] == card_kind(view)
        if hasattr(view, "stamp"):
            assert action["data"]["card"] == view.stamp


@pytest.mark.parametrize(("name", "view"), list(every_view().items()))
def test_long_texts_are_clipped(name: str, view: CardView) -> None:
    longest = max(len(t) for t in texts(build_card(view)))
    assert longest <= 600


def test_an_open_reminder_offers_done_snooze_move_note_and_the_crm() -> None:
    card = reminder_card(samples.reminder())

    assert titles(card["actions"]) == ["Done", "Snooze", "Move stage", "Add note", "Open in CRM"]
    done, snooze, move, note, crm = card["actions"]
    assert done["verb"] == "done"
    assert done["data"]["reminderId"] == "rem-7f3a91"
    assert [(b["title"], b["data"]["snooze"]) for b in snooze["card"]["actions"]] == [
        ("1 day", "1d"),
        ("3 days", "3d"),
        ("Next week", "next_week"),
    ]
    stage_input = move["card"]["body"][0]
    assert stage_input["type"] == "Input.ChoiceSet"
    assert [c["value"] for c in stage_input["choices"]] == ["negotiation", "won", "lost"]
    assert move["card"]["actions"][0]["verb"] == "advance"
    note_input = note["card"]["body"][0]
    assert note_input["isMultiline"] is True
    assert note_input["maxLength"] == 1000
    assert note["card"]["actions"][0]["verb"] == "note"
    assert crm == {
        "type": "Action.OpenUrl",
        "title": "Open in CRM",
        "url": "https://crm.example.com/deals/D-10482",
    }


def test_a_reminder_shows_the_deal_at_a_glance() -> None:
    text = body_text(reminder_card(samples.reminder()))

    for expected in [
        "Fleet telematics renewal 2026",
        "Northwind Traders",
        "Proposal sent · 16 days",
        "$148,500",
        "Meeting: Pricing review with Jordan Lee",
        "Proposal sent, no reply for 14 days",
        "Call Jordan Lee before their budget review",
    ]:
        assert expected in text


def test_a_reminder_refreshes_for_its_viewers_with_its_ids_and_stamp() -> None:
    card = reminder_card(samples.reminder())

    assert card["refresh"] == {
        "action": {
            "type": "Action.Execute",
            "verb": "refresh",
            "data": {
                "view": "reminder",
                "card": "D-10482@r14",
                "reminderId": "rem-7f3a91",
                "dealId": "D-10482",
            },
        },
        "userIds": [samples.REP_TEAMS_ID],
    }


def test_refresh_lists_at_most_60_users() -> None:
    viewers = [f"29:user-{n}" for n in range(75)]
    card = reminder_card(samples.reminder(viewer_ids=viewers))
    assert card["refresh"]["userIds"] == viewers[:60]


def test_a_done_reminder_says_who_and_when_and_offers_only_the_crm() -> None:
    card = build_card(samples.sample_views()["reminder-done"])

    assert "✔ Done by Priya Raman · {{DATE(2025-11-18T09:04:00Z,SHORT)}}" in body_text(card)
    assert titles(card["actions"]) == ["Open in CRM"]
    assert buttons(card) == []


def test_a_superseded_reminder_shows_what_happened_and_offers_no_buttons() -> None:
    card = build_card(samples.sample_views()["reminder-superseded"])

    assert "No longer needed: Moved to Negotiation by Priya Raman" in body_text(card)
    assert buttons(card) == []


def test_a_snoozed_reminder_says_until_when_and_can_still_be_acted_on() -> None:
    until = datetime(2025, 11, 21, 9, 0, tzinfo=timezone(timedelta(hours=1)))
    card = reminder_card(samples.reminder(state=ReminderSnoozed(until=until, by="Priya Raman")))

    assert "Snoozed by Priya Raman until {{DATE(2025-11-21T08:00:00Z,SHORT)}}" in body_text(card)
    assert titles(card["actions"])[:2] == ["Done", "Snooze"]


def test_a_deal_in_the_last_stage_offers_no_move() -> None:
    card = build_card(samples.sample_views()["reminder-last-stage"])
    assert "Move stage" not in titles(card["actions"])
    assert "Last contact" in body_text(card)
    assert "None logged" in body_text(card)


def test_a_logged_meeting_says_which_deal_and_why_and_offers_wrong_deal() -> None:
    card = meeting_logged_card(samples.meeting_logged())
    text = body_text(card)

    assert "Fleet telematics renewal 2026" in text
    assert "An attendee is a contact on this deal (jordan.lee@northwind.example)" in text
    assert [(a["title"], a["verb"]) for a, _ in buttons(card)] == [
        ("Wrong deal?", "wrong_deal"),
        ("Don't log this meeting", "withdraw_meeting"),
    ]
    assert buttons(card)[0][0]["data"]["interactionId"] == "int-55c2e0"
    assert buttons(card)[1][0]["data"]["interactionId"] == "int-55c2e0"


def test_a_withdrawn_meeting_offers_undo_while_its_day_lasts_and_nothing_after() -> None:
    views = samples.sample_views()
    fresh = build_card(views["meeting-logged-withdrawn"])
    final = build_card(views["meeting-logged-withdrawn-final"])

    assert "keeps this meeting (and its repeats) out" in body_text(fresh)
    assert [(a["title"], a["verb"]) for a, _ in buttons(fresh)] == [("Undo", "undo_withdraw")]
    assert "actions" not in final


def test_a_cancelled_meeting_card_has_no_buttons() -> None:
    card = build_card(samples.sample_views()["meeting-logged-cancelled"])
    assert "cancelled, so nothing is logged" in body_text(card)
    assert "actions" not in card


def test_pick_a_deal_offers_one_tap_per_candidate() -> None:
    card = pick_deal_card(samples.pick_deal())
    picks = [a for a, _ in buttons(card)]

    assert [(a["verb"], a["data"]["dealId"]) for a in picks] == [
        ("pick_deal", "D-10482"),
        ("pick_deal", "D-10517"),
        ("pick_deal", "D-10533"),
    ]
    assert all(a["data"]["interactionId"] == "int-61d0aa" for a in picks)
    assert "Jordan Lee (jordan.lee@northwind.example) is a contact" in body_text(card)


def test_a_settled_pick_shows_the_choice_and_no_buttons() -> None:
    card = build_card(samples.sample_views()["pick-deal-settled"])
    assert "Logged on Cold-chain sensors pilot by Priya Raman" in body_text(card)
    assert buttons(card) == []


def test_long_lists_are_capped_and_counted() -> None:
    views = every_view()
    pick = build_card(views["pick-deal-long"])
    assert len(buttons(pick)) == 10
    assert "and 240 more deals" in body_text(pick)

    digest = build_card(views["digest-long"])
    assert "and 290 more overdue" in body_text(digest)
    assert "and 290 more due today" in body_text(digest)
    assert "and 290 more idle deals" in body_text(digest)

    mine = build_card(views["my-reminders-long"])
    assert len(buttons(mine)) == 10
    assert "and 290 more reminders" in body_text(mine)

    deals = build_card(views["my-deals-long"])
    deal_lines = [o for o in walk(deals) if o.get("type") == "Container" and "selectAction" in o]
    assert len(deal_lines) == 40
    assert "and 40 more deals" in body_text(deals)
    assert "and 1300 more deals in 26 more stages" in body_text(deals)


def test_after_the_meeting_asks_outcome_note_and_next_stage() -> None:
    card = after_meeting_card(samples.after_meeting())
    inputs = {o["id"]: o for o in walk(card["body"]) if str(o.get("type")).startswith("Input.")}

    assert inputs["outcome"]["isRequired"] is True
    assert [c["value"] for c in inputs["outcome"]["choices"]] == [
        "progressing",
        "follow_up",
        "stalled",
        "lost",
    ]
    assert "isRequired" not in inputs["note"]
    assert inputs["stage"]["placeholder"] == "Keep it in Proposal sent"
    assert [c["value"] for c in inputs["stage"]["choices"]] == ["negotiation", "won", "lost"]
    assert [a["verb"] for a, _ in buttons(card)] == ["meeting_outcome"]


def test_a_recorded_outcome_shows_the_answer_without_inputs() -> None:
    card = build_card(samples.sample_views()["after-meeting-recorded"])
    text = body_text(card)

    assert "Moving forward" in text
    assert "Finance picked option B" in text
    assert "Negotiation" in text
    assert not [o for o in walk(card) if str(o.get("type")).startswith("Input.")]
    assert buttons(card) == []


def test_the_digest_lists_overdue_due_today_and_idle_deals() -> None:
    text = body_text(digest_card(samples.digest()))

    assert "Good morning, Priya" in text
    assert "Overdue (1)" in text
    assert "Due today (2)" in text
    assert "Data platform migration · Woodgrove Bank" in text
    assert "Negotiation · idle 23 days" in text


def test_an_empty_digest_says_there_is_nothing_to_do() -> None:
    card = build_card(samples.sample_views()["digest-empty"])
    assert "Nothing due today" in body_text(card)


def test_health_lists_failing_sync_missing_consent_and_expiring_secrets() -> None:
    card = health_card(samples.health())
    text = body_text(card)

    assert "Mail sync failing (1)" in text
    assert "marco.bianchi@contoso.example" in text
    assert "TeamsAppInstallation.ReadWriteSelfForUser.All" in text
    assert "DealBridge client secret" in text
    grant = [a for a in actions_of(card, "Action.OpenUrl") if a["title"] == "Grant consent"]
    assert grant[0]["url"].startswith("https://login.microsoftonline.com/contoso.example/")


def test_healthy_means_one_all_good_line() -> None:
    card = build_card(samples.sample_views()["health-all-good"])
    assert "All good" in body_text(card)
    assert "failing" not in body_text(card)


def test_help_repeats_what_it_did_not_understand() -> None:
    text = body_text(help_card(HelpView(unknown_text="what's up with northwind")))
    assert "I did not understand “what's up with northwind”" in text
    assert "reminders" in text
    assert "deals" in text


def test_my_reminders_marks_overdue_ones_and_offers_done_on_each() -> None:
    card = my_reminders_card(samples.my_reminders())

    assert "overdue since {{DATE(2025-11-15T09:00:00Z,SHORT)}}" in body_text(card)
    assert [(a["verb"], a["data"]["reminderId"]) for a, _ in buttons(card)] == [
        ("done", "rem-6e22d9"),
        ("done", "rem-7f3a91"),
    ]


def test_my_deals_groups_by_stage_with_amounts() -> None:
    text = body_text(my_deals_card(samples.my_deals()))

    assert "Your open deals (4)" in text
    assert "Negotiation (1)" in text
    assert "Woodgrove Bank · 487,250.50 CHF · 23 days" in text
    assert "Litware Inc. · €56,400 · 17 days" in text
