"""Each CRM webhook event type has one model, and docs/api.md lists every type and field of it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from connector.crm.events import (
    EVENTS,
    DealStageChanged,
    InteractionUpdated,
    ReminderCompleted,
    WebhookEvent,
)

API_DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def _webhook_section() -> str:
    text = API_DOC.read_text(encoding="utf-8")
    start = text.index("## Webhooks to the CRM")
    following = re.search(r"^## ", text[start + 3 :], re.MULTILINE)
    return text[start : start + 3 + following.start()] if following else text[start:]


def _documented() -> dict[str, set[str]]:
    """Each ``### `type` `` heading of the webhook section, and the fields its table names."""
    parts = re.split(r"^### `([a-z_.]+)`.*$", _webhook_section(), flags=re.MULTILINE)
    return {
        event_type: set(re.findall(r"^\| `([a-z_]+)` \|", body, re.MULTILINE))
        for event_type, body in zip(parts[1::2], parts[2::2], strict=True)
    }


def _wire_fields(event: type[WebhookEvent]) -> set[str]:
    return {field.alias or name for name, field in event.model_fields.items()}


def test_the_event_types_are_distinct() -> None:
    assert len({event.TYPE for event in EVENTS}) == len(EVENTS)


@pytest.mark.parametrize("event", EVENTS, ids=lambda event: event.TYPE)
def test_the_api_doc_lists_every_field_of_the_event(event: type[WebhookEvent]) -> None:
    documented = _documented()

    assert event.TYPE in documented
    assert documented[event.TYPE] == _wire_fields(event)


def test_the_api_doc_lists_no_type_that_has_no_model() -> None:
    assert set(_documented()) == {event.TYPE for event in EVENTS}


def test_every_field_says_what_it_is() -> None:
    for event in EVENTS:
        for name, field in event.model_fields.items():
            assert field.description, f"{event.__name__}.{name} has no docstring"


def test_an_unknown_field_is_refused() -> None:
    with pytest.raises(ValidationError):
        ReminderCompleted.model_validate({"reminder": 1, "when": "now"})


def test_the_wire_names_the_fields_the_sender_set_and_nothing_more() -> None:
    moved = DealStageChanged(deal="OPP-1", from_="new", to="won")
    chosen = InteractionUpdated(interaction=7, deal=None, by="a@b.c", change="deal_chosen")

    assert moved.data() == {"deal": "OPP-1", "from": "new", "to": "won"}
    assert chosen.data() == {"interaction": 7, "deal": None, "by": "a@b.c", "change": "deal_chosen"}
