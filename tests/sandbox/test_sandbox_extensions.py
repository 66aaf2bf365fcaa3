"""The sandbox's check of message-extension answers: what Teams shows, and what it refuses."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.teams.channel import BotAnswer
from sandbox.teams.extensions import BadAnswer, check_answer

CARD = "application/vnd.microsoft.card.adaptive"
THUMBNAIL = {"contentType": "application/vnd.microsoft.card.thumbnail", "content": {"title": "x"}}


def _result(*attachments: dict[str, Any]) -> BotAnswer:
    body = {"composeExtension": {"type": "result", "attachmentLayout": "list"}}
    body["composeExtension"]["attachments"] = list(attachments)  # type: ignore[assignment]
    return BotAnswer(200, body)


def _card(version: str) -> dict[str, Any]:
    return {
        "contentType": CARD,
        "content": {"type": "AdaptiveCard", "version": version, "body": []},
        "preview": THUMBNAIL,
    }


def test_results_and_a_message_are_what_teams_shows() -> None:
    assert check_answer(_result(_card("1.5"), _card("1.2")), unfurl=False) == [
        _card("1.5"),
        _card("1.2"),
    ]
    assert check_answer(_result(_card("1.3"), _card("1.2")), unfurl=True) == [_card("1.3")]
    assert check_answer(_result(), unfurl=True) == []
    text = BotAnswer(200, {"composeExtension": {"type": "message", "text": "Hi"}})
    assert check_answer(text, unfurl=False) == []


@pytest.mark.parametrize(
    ("answer", "unfurl", "problem"),
    [
        (BotAnswer(500, None), False, "answered 500"),
        (BotAnswer(200, {}), False, "no composeExtension"),
        (BotAnswer(200, {"composeExtension": {"type": "auth"}}), False, "not result or message"),
        (_result({**_card("1.5"), "preview": None}), False, "needs a preview"),
        (_result(_card("1.6")), False, "not rendered in message extensions"),
        (_result(_card("1.5")), True, "not rendered in link unfurling"),
        (_result({"contentType": "text/plain"}), False, "no supported contentType"),
    ],
)
def test_what_teams_refuses_is_a_502_naming_it(
    answer: BotAnswer, unfurl: bool, problem: str
) -> None:
    with pytest.raises(BadAnswer, match=problem):
        check_answer(answer, unfurl=unfurl)
