"""Inbound activities and card actions: Action.Execute invokes, Action.Submit messages, answers."""

from __future__ import annotations

from typing import Any

import pytest

from cards.actions import (
    Activity,
    Advance,
    CardActionError,
    Done,
    MeetingOutcome,
    Note,
    PickDeal,
    Refresh,
    Snooze,
    WrongDeal,
    card_response,
    error_response,
    error_response_for,
    is_card_action,
    message_response,
    parse_card_action,
)
from cards.builders import build_card

from .card_walk import buttons, every_view

TEAMS_INVOKE: dict[str, Any] = {
    "type": "invoke",
    "name": "adaptiveCard/action",
    "id": "f:7cf0e9b2-5d62-4a1b-9c07-2f4a3e1d6b55",
    "timestamp": "2025-11-18T09:04:12.345Z",
    "serviceUrl": "https://smba.trafficmanager.net/amer/",
    "channelId": "msteams",
    "from": {
        "id": "29:1GcS4EyB_oSI8A88XmWBN7NJFyMqe3QGnJdgLfFGkJnVelzRGos0bAvkSwwHGRB6V",
        "name": "Priya Raman",
        "aadObjectId": "9b2b0c6e-3f64-4c9a-8c39-5d0f6b2f7e10",
    },
    "conversation": {
        "conversationType": "personal",
        "tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "id": "a:1Ps8ZAqkLqV4cQbhv8eBq3aS0GqG2Y7h",
    },
    "recipient": {"id": "28:6c1e7f52-8f0b-4f8e-9d7e-2a4b9f0c1d11", "name": "DealBridge"},
    "entities": [{"locale": "en-US", "country": "US", "platform": "Web", "type": "clientInfo"}],
    "channelData": {"tenant": {"id": "72f988bf-86f1-41af-91ab-2d7cd011db47"}, "source": None},
    "replyToId": "1731920652000",
    "value": {
        "action": {
            "type": "Action.Execute",
            "verb": "snooze",
            "data": {
                "view": "reminder",
                "card": "D-10482@r14",
                "reminderId": "rem-7f3a91",
                "dealId": "D-10482",
                "snooze": "3d",
            },
        },
        "trigger": "manual",
    },
    "locale": "en-US",
}


def invoke(verb: str, data: dict[str, Any], trigger: str = "manual") -> Activity:
    raw = {
        **TEAMS_INVOKE,
        "value": {
            "action": {"type": "Action.Execute", "verb": verb, "data": data},
            "trigger": trigger,
        },
    }
    return Activity.model_validate(raw)


def submit(value: dict[str, Any]) -> Activity:
    raw = {k: v for k, v in TEAMS_INVOKE.items() if k not in ("name", "value")}
    return Activity.model_validate({**raw, "type": "message", "value": value})


def test_a_teams_invoke_reads_into_an_activity_keeping_unknown_fields() -> None:
    activity = Activity.model_validate(TEAMS_INVOKE)

    assert activity.from_ is not None
    assert activity.from_.aad_object_id == "9b2b0c6e-3f64-4c9a-8c39-5d0f6b2f7e10"
    assert activity.service_url == "https://smba.trafficmanager.net/amer/"
    assert activity.tenant_id == "72f988bf-86f1-41af-91ab-2d7cd011db47"
    assert activity.conversation is not None
    assert activity.conversation.conversation_type == "personal"
    assert activity.model_dump(by_alias=True)["entities"][0]["type"] == "clientInfo"
    assert activity.model_dump(by_alias=True)["from"]["name"] == "Priya Raman"


def test_an_install_activity_lists_the_members_added() -> None:
    activity = Activity.model_validate(
        {
            "type": "conversationUpdate",
            "membersAdded": [{"id": "28:bot"}, {"id": "29:rep", "aadObjectId": "9b2b"}],
            "conversation": {"id": "a:1", "tenantId": "t"},
            "serviceUrl": "https://smba.trafficmanager.net/amer/",
            "channelId": "msteams",
        }
    )
    assert [m.id for m in activity.members_added or []] == ["28:bot", "29:rep"]
    assert activity.tenant_id == "t"
    assert not is_card_action(activity)


def test_a_snooze_invoke_becomes_a_snooze_for_that_reminder() -> None:
    action = parse_card_action(Activity.model_validate(TEAMS_INVOKE))

    assert action == Snooze(
        verb="snooze",
        reminder_id="rem-7f3a91",
        option="3d",
        view="reminder",
        card_stamp="D-10482@r14",
        trigger="manual",
    )


@pytest.mark.parametrize(
    ("verb", "data", "expected"),
    [
        ("done", {"reminderId": "r1"}, Done(verb="done", reminder_id="r1")),
        (
            "advance",
            {"dealId": "D-1", "stage": "negotiation"},
            Advance(verb="advance", deal_id="D-1", stage="negotiation"),
        ),
        (
            "note",
            {"dealId": "D-1", "note": "  Called Jordan, budget approved.  "},
            Note(verb="note", deal_id="D-1", text="Called Jordan, budget approved."),
        ),
        (
            "pick_deal",
            {"interactionId": "i1", "dealId": "D-2"},
            PickDeal(verb="pick_deal", interaction_id="i1", deal_id="D-2"),
        ),
        ("wrong_deal", {"interactionId": "i1"}, WrongDeal(verb="wrong_deal", interaction_id="i1")),
        (
            "meeting_outcome",
            {"interactionId": "i1", "dealId": "D-1", "outcome": "lost", "note": "", "stage": ""},
            MeetingOutcome(
                verb="meeting_outcome", interaction_id="i1", deal_id="D-1", outcome="lost"
            ),
        ),
        (
            "meeting_outcome",
            {"interactionId": "i1", "dealId": "D-1", "outcome": "progressing", "stage": "won"},
            MeetingOutcome(
                verb="meeting_outcome",
                interaction_id="i1",
                deal_id="D-1",
                outcome="progressing",
                stage="won",
            ),
        ),
        (
            "refresh",
            {"view": "pick_deal", "interactionId": "i1"},
            Refresh(verb="refresh", view="pick_deal", interaction_id="i1"),
        ),
    ],
)
def test_each_verb_parses_into_its_typed_action(
    verb: str, data: dict[str, Any], expected: Any
) -> None:
    action = parse_card_action(invoke(verb, data))
    assert action.model_copy(update={"trigger": None}) == expected


def test_an_automatic_refresh_says_so() -> None:
    action = parse_card_action(invoke("refresh", {"view": "reminder"}, trigger="automatic"))
    assert isinstance(action, Refresh)
    assert action.trigger == "automatic"


def test_an_action_submit_message_parses_like_the_invoke() -> None:
    activity = submit({"verb": "done", "view": "reminder", "card": "s1", "reminderId": "r1"})

    assert is_card_action(activity)
    assert parse_card_action(activity) == Done(
        verb="done", reminder_id="r1", view="reminder", card_stamp="s1", trigger="manual"
    )


def test_a_plain_text_message_is_not_a_card_action() -> None:
    activity = submit({})
    activity = activity.model_copy(update={"value": None, "text": "reminders"})
    assert not is_card_action(activity)
    with pytest.raises(CardActionError):
        parse_card_action(activity)


@pytest.mark.parametrize(
    ("verb", "data", "says"),
    [
        ("explode", {"reminderId": "r1"}, "does not know the action “explode”"),
        ("done", {}, "which reminder"),
        ("snooze", {"reminderId": "r1", "snooze": "forever"}, "1 day, 3 days or next week"),
        ("advance", {"dealId": "D-1", "stage": "  "}, "Choose the stage"),
        ("note", {"dealId": "D-1", "note": ""}, "Write a note"),
        ("note", {"dealId": "D-1", "note": "x" * 1001}, "Write a note of 1 to 1000"),
        ("pick_deal", {"interactionId": "i1"}, "which deal"),
        ("meeting_outcome", {"interactionId": "i1", "dealId": "D-1"}, "how the meeting went"),
        ("", {"reminderId": "r1"}, "no action"),
    ],
)
def test_bad_verbs_or_data_give_an_error_fit_for_the_rep(
    verb: str, data: dict[str, Any], says: str
) -> None:
    with pytest.raises(CardActionError) as caught:
        parse_card_action(invoke(verb, data))
    assert says in caught.value.message
    response = error_response_for(caught.value)
    assert response["statusCode"] == 400
    assert response["type"] == "application/vnd.microsoft.error"
    assert says in response["value"]["message"]


def test_an_invoke_that_is_not_action_execute_is_refused() -> None:
    raw = {**TEAMS_INVOKE, "value": {"action": {"type": "Action.Submit", "data": {}}}}
    with pytest.raises(CardActionError, match=r"not an Action\.Execute"):
        parse_card_action(Activity.model_validate(raw))


def test_invoke_answers_have_the_shapes_teams_expects() -> None:
    card = {"type": "AdaptiveCard", "version": "1.5", "body": []}

    assert card_response(card) == {
        "statusCode": 200,
        "type": "application/vnd.microsoft.card.adaptive",
        "value": card,
    }
    assert message_response("Snoozed.") == {
        "statusCode": 200,
        "type": "application/vnd.microsoft.activity.message",
        "value": "Snoozed.",
    }
    assert error_response(404, "NotFound", "That reminder is gone.")["value"] == {
        "code": "NotFound",
        "message": "That reminder is gone.",
    }


@pytest.mark.parametrize(("name", "view"), list(every_view().items()))
def test_every_button_of_every_card_parses_both_as_execute_and_as_submit(
    name: str, view: Any
) -> None:
    card = build_card(view)
    for action, inputs in buttons(card):
        pressed = parse_card_action(invoke(action["verb"], {**action["data"], **inputs}))
        fallback = action["fallback"]
        assert fallback["type"] == "Action.Submit"
        submitted = parse_card_action(submit({**fallback["data"], **inputs}))

        assert pressed.verb == action["verb"]
        assert submitted == pressed
    if "refresh" in card:
        refresh = card["refresh"]["action"]
        parsed = parse_card_action(invoke("refresh", refresh["data"], trigger="automatic"))
        assert isinstance(parsed, Refresh)
        assert parsed.card_stamp is not None
