"""The deal card (search result, shared card, unfurl, `deal <text>`), the message-extension
answers' shapes, and the help card's commands."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from cards import samples
from cards.actions import CardActionError
from cards.builders import HELP_COMMANDS, build_card, deal_card
from cards.elements import AdaptiveCard, ExecuteAction, TextBlock
from cards.extensions import (
    THUMBNAIL_CONTENT_TYPE,
    Preview,
    attachment,
    parse_link,
    parse_query,
    result_response,
    text_response,
)
from cards.models import HelpView

from .card_walk import actions_of, walk
from .test_cards_schema import NODE, NODE_MODULES, validate


def _texts(card: dict[str, Any]) -> str:
    parts = [str(o.get("text", "")) for o in walk(card)]
    parts += [f"{o['title']}: {o['value']}" for o in walk(card) if "value" in o and "title" in o]
    return "\n".join(parts)


def test_the_deal_card_shows_stage_amount_close_date_next_reminder_last_contact_and_crm() -> None:
    card = deal_card(samples.deal())

    text = _texts(card)
    for expected in (
        "Fleet telematics renewal 2026",
        "Account: Northwind Traders",
        "Contact: Jordan Lee (jlee@northwind.example)",
        "Stage: Proposal sent",
        "Amount: $148,500",
        "Close date: 30 Jan 2026",
        "Next reminder: Follow up on the proposal",
        "Last contact: Meeting: Pricing review with Northwind",
        "CRM id: D-10482",
    ):
        assert expected in text
    [crm] = actions_of(card, "Action.OpenUrl")
    assert (crm["title"], crm["url"]) == ("Open in CRM", "https://crm.example.com/deals/D-10482")
    assert card["version"] == "1.5"


def test_a_shared_card_s_buttons_are_action_execute_on_the_deal_with_a_per_user_refresh() -> None:
    card = deal_card(samples.deal())

    verbs = {a["verb"] for a in actions_of(card, "Action.Execute")}
    assert verbs == {"advance", "note", "refresh"}
    for action in actions_of(card, "Action.Execute"):
        assert action["data"]["view"] == "deal"
        assert action["data"]["dealId"] == "D-10482"
    assert card["refresh"]["userIds"] == [samples.REP_TEAMS_ID]
    assert card["refresh"]["action"]["verb"] == "refresh"


def test_a_viewer_who_may_not_act_sees_the_card_without_buttons() -> None:
    card = deal_card(samples.deal(can_act=False))

    assert {a["verb"] for a in actions_of(card, "Action.Execute")} == {"refresh"}
    assert "Only the deal's owner and reps on this account can act on it." in _texts(card)


def test_a_closed_deal_has_no_buttons_but_open_in_crm() -> None:
    card = deal_card(samples.deal(status="won"))

    assert {a["verb"] for a in actions_of(card, "Action.Execute")} == {"refresh"}
    assert "This deal is closed (won)." in _texts(card)


def test_the_unfurl_card_is_1_3_with_open_in_crm_only() -> None:
    card = deal_card(samples.deal(), unfurl=True)

    assert card["version"] == "1.3"
    assert "refresh" not in card
    assert actions_of(card, "Action.Execute") == []
    assert [a["title"] for a in card["actions"]] == ["Open in CRM"]
    assert "Next reminder: Follow up on the proposal" in _texts(card)


def test_a_1_3_card_refuses_what_1_3_does_not_have() -> None:
    with pytest.raises(ValidationError):
        AdaptiveCard(
            version="1.3",
            body=[TextBlock(text="x")],
            actions=[ExecuteAction(title="Go", verb="go", data={})],
        )
    with pytest.raises(ValidationError):
        AdaptiveCard(version="1.3", body=[TextBlock(text="x", style="heading")])


@pytest.mark.node
@pytest.mark.skipif(NODE is None, reason="node is not installed (make test installs it)")
@pytest.mark.skipif(
    not (NODE_MODULES / "adaptivecards" / "dist" / "adaptivecards.js").exists(),
    reason="tests/node_modules is missing: run `make npm`",
)
def test_every_unfurl_card_parses_at_1_3_and_the_shared_card_does_not() -> None:
    views = {n: v for n, v in samples.sample_views().items() if n.startswith("deal")}
    entries = [
        {"name": name, "card": deal_card(view, unfurl=True), "version": "1.3"}  # type: ignore[arg-type]
        for name, view in views.items()
    ]
    entries.append({"name": "shared at 1.3", "card": deal_card(samples.deal()), "version": "1.3"})

    events = validate(entries)

    assert {n: e for n, e in events.items() if e and n != "shared at 1.3"} == {}
    kinds = {e["event"] for e in events["shared at 1.3"]}
    assert {"UnsupportedProperty", "UnknownActionType"} <= kinds


# --- the message extension's wire shapes -----------------------------------------------------


def test_a_result_is_an_adaptive_card_with_a_thumbnail_preview_in_a_list() -> None:
    card = build_card(samples.deal())
    preview = Preview(title="Fleet", subtitle="Northwind · Jordan", text="D-10482 · Proposal")

    answer = result_response([attachment(card, preview)])

    assert answer == {
        "composeExtension": {
            "type": "result",
            "attachmentLayout": "list",
            "attachments": [
                {
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "content": card,
                    "preview": {
                        "contentType": THUMBNAIL_CONTENT_TYPE,
                        "content": {
                            "title": "Fleet",
                            "subtitle": "Northwind · Jordan",
                            "text": "D-10482 · Proposal",
                        },
                    },
                }
            ],
        }
    }
    assert text_response("Hi") == {"composeExtension": {"type": "message", "text": "Hi"}}


def test_a_query_s_text_paging_and_initial_run_are_read() -> None:
    typed = parse_query(
        {
            "commandId": "searchDeals",
            "parameters": [{"name": "searchText", "value": "  north   wind "}],
            "queryOptions": {"skip": 25, "count": 100},
        }
    )
    assert (typed.text, typed.initial_run, typed.query_options.skip, typed.count) == (
        "north wind",
        False,
        25,
        25,
    )
    first = parse_query(
        {"commandId": "searchDeals", "parameters": [{"name": "initialRun", "value": "true"}]}
    )
    assert (first.text, first.initial_run) == ("", True)
    for broken in (None, "x", {"parameters": []}, {"commandId": "s", "queryOptions": {"skip": -1}}):
        with pytest.raises(CardActionError):
            parse_query(broken)
    assert parse_link({"url": "https://crm.example.com/deals/D-1"}).url.endswith("D-1")
    with pytest.raises(CardActionError):
        parse_link({"link": "x"})


def test_help_lists_every_command_including_digest_deal_and_my_day() -> None:
    card = build_card(HelpView())
    text = _texts(card)

    commands = [command for command, _ in HELP_COMMANDS]
    assert commands == [
        "deal <text>",
        "my day",
        "reminders",
        "deals",
        "digest on|off",
        "settings",
        "help",
    ]
    for command in commands:
        assert f"{command}:" in text
