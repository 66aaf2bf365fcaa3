"""Walks built cards: their actions, inputs and texts, and long-input variants of every view."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

from cards import samples
from cards.models import (
    CardView,
    ConsentMissing,
    DealCandidate,
    DealLine,
    DigestReminder,
    HelpView,
    IdleDeal,
    MailboxSyncFailure,
    Money,
    OutcomeRecorded,
    ReminderDone,
    ReminderLine,
    SecretExpiring,
    Stage,
    StageDeals,
)

LONG = "Northwind Traders International Holdings " * 120  # ~5,000 characters


def walk(node: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object in a card, depth first."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def actions_of(card: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """Every action of a type (fallbacks included), wherever it is in the card."""
    return [o for o in walk(card) if o.get("type") == kind]


def buttons(card: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """Each Action.Execute (refresh excluded) with the input values a rep could send with it."""
    found: list[tuple[dict[str, Any], dict[str, str]]] = []

    def visit(container: dict[str, Any]) -> None:
        inputs = {
            o["id"]: (o["choices"][0]["value"] if o["type"] == "Input.ChoiceSet" else "Called him.")
            for o in walk(container.get("body", []))
            if str(o.get("type", "")).startswith("Input.")
        }
        for action in walk(container.get("body", [])):
            if action.get("type") == "Action.Execute":
                found.append((action, inputs))
        for action in container.get("actions", []):
            if action["type"] == "Action.Execute":
                found.append((action, inputs))
            elif action["type"] == "Action.ShowCard":
                visit(action["card"])

    visit(card)
    return found


def texts(card: dict[str, Any]) -> list[str]:
    """Every text a rep reads on the card."""
    out: list[str] = []
    for o in walk(card):
        if o.get("type") == "TextBlock":
            out.append(o["text"])
        if "title" in o and isinstance(o["title"], str):
            out.append(o["title"])
        if "value" in o and "title" in o and isinstance(o["value"], str):
            out.append(o["value"])
    return out


def long_views() -> dict[str, CardView]:
    """Every card with oversized texts and lists: the worst a CRM could send."""
    many_stages = [Stage(id=f"s{n}", name=f"{LONG[:300]} {n}") for n in range(60)]
    due = samples.NOW + timedelta(hours=2)
    url = "https://crm.example.com/deals/" + "x" * 200
    reminder_lines = [
        DigestReminder(
            reminder_id=f"rem-{n}",
            deal_title=LONG,
            account=LONG,
            rule_title=LONG,
            due_at=due,
            crm_url=url,
        )
        for n in range(300)
    ]
    return {
        "reminder-long": samples.reminder(
            deal_title=LONG,
            account=LONG,
            rule_title=LONG,
            rule_message=LONG + "\n\n" + LONG,
            stage=many_stages[0],
            pipeline=many_stages,
            amount=Money(amount=Decimal("123456789012.34"), currency="XAU"),
            viewer_ids=[f"29:{n:060d}" for n in range(500)],
            crm_url=url,
        ),
        "reminder-done-long": samples.reminder(
            state=ReminderDone(by=LONG, at=samples.NOW), deal_title=LONG
        ),
        "meeting-logged-long": samples.meeting_logged(
            meeting_subject=LONG, deal_title=LONG, account=LONG, crm_url=url
        ),
        "pick-deal-long": samples.pick_deal(
            meeting_subject=LONG,
            candidates=[
                DealCandidate(
                    deal_id=f"D-{n}", title=LONG, account=LONG, stage_name=LONG, reason=LONG
                )
                for n in range(250)
            ],
        ),
        "after-meeting-long": samples.after_meeting(
            meeting_subject=LONG, deal_title=LONG, stage=many_stages[0], pipeline=many_stages
        ),
        "after-meeting-recorded-long": samples.after_meeting(
            state=OutcomeRecorded(
                outcome="stalled", note=LONG, stage_name=LONG, by=LONG, at=samples.NOW
            )
        ),
        "digest-long": samples.digest(
            rep_name=LONG,
            due_today=reminder_lines,
            overdue=reminder_lines,
            idle_longest=[
                IdleDeal(
                    deal_id=f"D-{n}",
                    title=LONG,
                    account=LONG,
                    stage_name=LONG,
                    idle_days=400,
                    crm_url=url,
                )
                for n in range(300)
            ],
        ),
        "health-long": samples.health(
            failing_mailboxes=[
                MailboxSyncFailure(mailbox=LONG, since=samples.NOW, error=LONG) for _ in range(80)
            ],
            missing_consent=[ConsentMissing(permission=LONG, consent_url=url) for _ in range(80)],
            expiring_secrets=[SecretExpiring(name=LONG, expires_at=samples.NOW) for _ in range(80)],
        ),
        "help-long": HelpView(unknown_text=LONG),
        "my-reminders-long": samples.my_reminders(
            reminders=[
                ReminderLine(
                    reminder_id=f"rem-{n}",
                    deal_id=f"D-{n}",
                    deal_title=LONG,
                    account=LONG,
                    rule_title=LONG,
                    due_at=due,
                    overdue=n % 2 == 0,
                    crm_url=url,
                )
                for n in range(300)
            ]
        ),
        "my-deals-long": samples.my_deals(
            stages=[
                StageDeals(
                    stage_name=LONG,
                    deals=[
                        DealLine(
                            deal_id=f"D-{s}-{n}",
                            title=LONG,
                            account=LONG,
                            amount=Money(amount=Decimal("99999999"), currency="JPY"),
                            days_in_stage=n,
                            crm_url=url,
                        )
                        for n in range(50)
                    ],
                )
                for s in range(30)
            ]
        ),
    }


def every_view() -> dict[str, CardView]:
    """The samples (every card in every state) and the long-input variants."""
    return {**samples.sample_views(), **long_views()}
