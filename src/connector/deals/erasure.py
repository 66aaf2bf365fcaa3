"""Erasing a person: a customer contact who asks to be forgotten.

Plan, then apply. DealBridge keeps a contact's address (and the name shown beside it) in:
interactions' details (a meeting's organizer, attendees, the candidate deals' matched address,
the explanation), an interaction's ``matched_address``, a deal's contacts (``deal_contacts``),
and queued or delivered deliveries' payloads (webhooks naming the address). Erasing removes
the attendee entries and the deal contacts, and replaces the address wherever else it is
written with ``[erased]``. Interactions stay (the meeting happened; the rep's record of it is
the company's), the CRM is not told (it is where the request came from, and keeps its own).
A meeting read again from a rep's calendar would bring the address back: erase after the
event is gone from the window, or exclude the domain (``DEALBRIDGE_EXCLUDED_DOMAINS``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import String, cast, func, or_, select
from sqlalchemy.orm import Session

from connector.store.models import DealContact, Interaction, OutboxItem
from connector.store.types import MeetingDetails

ERASED = "[erased]"


@dataclass
class ErasurePlan:
    """What erasing one address changes."""

    email: str
    interactions: list[int] = field(default_factory=list)
    contacts: list[int] = field(default_factory=list)
    deliveries: list[int] = field(default_factory=list)

    def summary(self) -> str:
        def n(count: int, what: str) -> str:
            return f"{count} {what}{'' if count == 1 else 's'}"

        return ", ".join(
            (
                n(len(self.interactions), "interaction"),
                n(len(self.contacts), "deal contact"),
                n(len(self.deliveries), "delivery"),
            )
        ).replace("deliverys", "deliveries")


def _mentions(column: Any, email: str) -> Any:
    return func.lower(cast(column, String)).contains(email)


def plan_erasure(session: Session, email: str) -> ErasurePlan:
    """Every row that names the address (case-insensitive)."""
    email = email.strip().lower()
    plan = ErasurePlan(email)
    plan.interactions = list(
        session.scalars(
            select(Interaction.id)
            .where(
                or_(
                    func.lower(Interaction.matched_address) == email,
                    _mentions(Interaction.details, email),
                )
            )
            .order_by(Interaction.id)
        )
    )
    plan.contacts = list(
        session.scalars(select(DealContact.id).where(func.lower(DealContact.email) == email))
    )
    plan.deliveries = list(
        session.scalars(
            select(OutboxItem.id)
            .where(_mentions(OutboxItem.payload, email))
            .order_by(OutboxItem.id)
        )
    )
    return plan


def apply_erasure(session: Session, plan: ErasurePlan) -> None:
    """Apply the plan in the caller's transaction."""
    for interaction in session.scalars(
        select(Interaction).where(Interaction.id.in_(plan.interactions))
    ):
        if (interaction.matched_address or "").lower() == plan.email:
            interaction.matched_address = None
        if interaction.details is not None:  # a meeting's; one logged by hand has none
            scrubbed = _scrub(
                interaction.details.model_dump(mode="json", exclude_unset=True), plan.email
            )
            interaction.details = MeetingDetails.model_validate(scrubbed)
    for contact in session.scalars(select(DealContact).where(DealContact.id.in_(plan.contacts))):
        session.delete(contact)
    for item in session.scalars(select(OutboxItem).where(OutboxItem.id.in_(plan.deliveries))):
        item.payload = _scrub(dict(item.payload or {}), plan.email)


def _scrub(value: Any, email: str) -> Any:
    """The value without the person: attendee-like entries (an object whose `email` is the
    address) dropped from lists, the address replaced in every string."""
    if isinstance(value, dict):
        return {k: _scrub(v, email) for k, v in value.items()}
    if isinstance(value, list):
        return [
            _scrub(v, email)
            for v in value
            if not (isinstance(v, dict) and str(v.get("email") or "").lower() == email)
        ]
    if isinstance(value, str) and email in value.lower():
        return _replace(value, email)
    return value


def _replace(text: str, email: str) -> str:
    lowered, out, start = text.lower(), [], 0
    while (found := lowered.find(email, start)) != -1:
        out.append(text[start:found] + ERASED)
        start = found + len(email)
    return "".join(out) + text[start:]
