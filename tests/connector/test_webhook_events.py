"""Each CRM webhook event type has one model, and docs/api.md lists every type and field of it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests
from pydantic import ValidationError
from sqlalchemy import select

from connector.crm.events import (
    EVENTS,
    DealStageChanged,
    InteractionUpdated,
    ReminderCompleted,
    WebhookEvent,
)
from connector.store.db import get_store
from connector.store.models import Interaction, OutboxItem, Reminder
from tests.connector.conftest import Tenant, meeting
from tests.connector.test_calendar_delivery import deliver_all
from tests.connector.test_meeting_sync import PAST, _graph_token, add_deal, sync

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


def test_a_logged_and_a_cancelled_meeting_tell_the_crm_every_field(m365: Tenant) -> None:
    m365.app.extensions["dealbridge.settings"].webhook_url = "http://crm.invalid/hooks"
    ann = m365.add_rep("ann", "Ann Lee")
    add_deal(m365, "OPP-1", ann, contacts=["dana@fabrikam.com"])
    event = m365.add_event(ann, meeting("Pricing review", PAST, ["dana@fabrikam.com"]))
    sync(m365, ann)
    requests.delete(
        f"{m365.sandbox.base_url}/v1.0/users/{ann}/events/{event['id']}",
        headers={"Authorization": f"Bearer {_graph_token(m365)}"},
        timeout=10,
    ).raise_for_status()
    sync(m365, ann)

    with get_store(m365.app).session() as session:
        [interaction] = session.scalars(select(Interaction).where(Interaction.kind == "meeting"))
        hooks = session.scalars(
            select(OutboxItem).where(OutboxItem.kind == "webhook").order_by(OutboxItem.id)
        )
        sent = [(hook.payload["type"], hook.payload["data"]) for hook in hooks]
    meeting_fields = {
        "interaction": interaction.id,
        "deal": "OPP-1",
        "kind": "meeting",
        "subject": "Pricing review",
        "start": interaction.started_at.isoformat(),
        "end": interaction.ended_at.isoformat() if interaction.ended_at else None,
        "rule": "contact",
        "address": "dana@fabrikam.com",
    }
    assert sent == [
        ("interaction.logged", meeting_fields | {"status": "held"}),
        ("interaction.updated", meeting_fields | {"status": "cancelled"}),
    ]


def test_a_reminder_deleted_in_outlook_tells_the_crm_what_it_knows(m365: Tenant) -> None:
    ann = m365.add_rep("ann", "Ann Lee")
    add_deal(m365, "OPP-1", ann, contacts=["dana@fabrikam.com"])
    deliver_all(m365)
    sync(m365, ann)
    with get_store(m365.app).session() as session:
        reminder = session.scalars(select(Reminder).where(Reminder.status == "open")).first()
        assert reminder is not None
        event_id, reminder_id = reminder.calendar_event_id, reminder.id
    requests.delete(
        f"{m365.sandbox.base_url}/v1.0/users/{ann}/events/{event_id}",
        headers={"Authorization": f"Bearer {_graph_token(m365)}"},
        timeout=10,
    ).raise_for_status()
    m365.app.extensions["dealbridge.settings"].webhook_url = "http://crm.invalid/hooks"
    sync(m365, ann)

    with get_store(m365.app).session() as session:
        hooks = session.scalars(select(OutboxItem).where(OutboxItem.kind == "webhook"))
        sent = [(hook.payload["type"], hook.payload["data"]) for hook in hooks]
    assert sent == [
        ("reminder.completed", {"reminder": reminder_id, "deal": "OPP-1", "by": f"outlook:{ann}"})
    ]
