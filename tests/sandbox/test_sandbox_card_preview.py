"""The chats page previews cards as a person would read them."""

from __future__ import annotations

from sandbox.teams.preview import card_html


def test_a_card_preview_shows_text_facts_dates_and_buttons() -> None:
    card = {
        "type": "AdaptiveCard",
        "version": "1.5",
        "body": [
            {"type": "TextBlock", "text": "Fabrikam <ERP>", "weight": "Bolder"},
            {
                "type": "FactSet",
                "facts": [{"title": "Due", "value": "{{DATE(2026-11-16T09:42:00Z,SHORT)}}"}],
            },
            {"type": "Input.Text", "id": "note", "placeholder": "Add a note"},
        ],
        "actions": [{"type": "Action.Execute", "title": "Done", "verb": "done"}],
    }
    shown = card_html(card)
    assert "Fabrikam &lt;ERP&gt;" in shown
    assert "Mon, Nov 16, 2026" in shown
    assert "Add a note" in shown
    assert ">Done</span>" in shown
    assert card_html("not a card") == ""
