"""One pydantic model per CRM webhook event type: the ``data`` of its body.

Where senders know different things, the model carries the union of their fields; a field a
sender does not know stays unset and is left out of the body (a field it knows to be empty is
sent as null). The class decides the event type (``TYPE``), so no call site names it by hand.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field


class WebhookEvent(BaseModel):
    """The ``data`` of one webhook; subclasses name their type in ``TYPE``."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, use_attribute_docstrings=True
    )
    TYPE: ClassVar[str]

    def data(self) -> dict[str, Any]:
        """The wire ``data``: the fields the sender set, under their wire names."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class DealStageChanged(WebhookEvent):
    """A rep moved a deal to another stage from a Teams card."""

    TYPE: ClassVar[str] = "deal.stage_changed"
    deal: str
    """The deal's CRM id."""
    from_: str = Field(alias="from")
    """The stage key the deal left."""
    to: str
    """The stage key the deal moved to."""
    by: str | None = None
    """Who moved it: the rep's email, or their Teams name when they are not a known rep."""
    at: str | None = None
    """When it moved (ISO 8601, UTC)."""
    source: str | None = None
    """Where the change was made (``teams``)."""


class _MeetingFields(WebhookEvent):
    """The fields a meeting's round knows about the interaction it logged."""

    interaction: int
    """DealBridge's interaction id."""
    deal: str | None = None
    """The deal's CRM id (null while no deal is chosen)."""
    kind: Literal["meeting"] | None = None
    """Always ``meeting`` for interactions the calendar logged."""
    status: str | None = None
    """The interaction's status, as the meetings API shows it."""
    subject: str | None = None
    """The meeting's subject, as stored (privacy rules applied)."""
    start: str | None = None
    """The meeting's start (ISO 8601)."""
    end: str | None = None
    """The meeting's end (ISO 8601), null when not known."""
    rule: str | None = None
    """How the deal was matched (the match rule; ``chosen`` when a rep chose)."""
    address: str | None = None
    """The attendee address the match was made on."""


class InteractionLogged(_MeetingFields):
    """A meeting was logged on a deal (new, or moved to another deal)."""

    TYPE: ClassVar[str] = "interaction.logged"


class InteractionUpdated(_MeetingFields):
    """A logged meeting changed: its status, the deal a rep chose, or the outcome recorded."""

    TYPE: ClassVar[str] = "interaction.updated"
    by: str | None = None
    """Who made the change: a rep's email or Teams name, or the API key's name."""
    change: Literal["deal_chosen", "outcome", "attendance"] | None = None
    """What changed: a rep's choice or outcome, or Teams' attendance (absent for a status
    change from the calendar)."""
    attendance: dict[str, Any] | None = None
    """Teams' attendance (``change`` ``attendance``, or a rep deciding a no-show): ``result``
    (``held``, ``no_show``, ``not_verified``), ``reason``, ``customer`` and ``ours`` (who
    joined: ``email``, ``name``, ``joined_at``, ``minutes``), ``minutes`` (first join to last
    leave), ``started_at``, ``ended_at``."""
    outcome: str | None = None
    """The outcome a rep recorded on the after-meeting card."""
    source: str | None = None
    """Where the change was made (``teams``), absent for the API and the calendar."""


class _ReminderFields(WebhookEvent):
    """The fields of a reminder that a rep or the calendar acted on."""

    reminder: int
    """DealBridge's reminder id."""
    deal: str | None = None
    """The deal's CRM id (null if the deal is gone)."""
    by: str | None = None
    """Who acted: the rep's email or Teams name; ``outlook:<email>`` for a deleted event."""
    rule: str | None = None
    """The reminder rule's id."""
    stage: str | None = None
    """The stage key the reminder belongs to."""
    source: str | None = None
    """Where it was done (``teams``); absent when it was done in Outlook."""


class ReminderCompleted(_ReminderFields):
    """A reminder was marked done on a card, or its Outlook event was deleted."""

    TYPE: ClassVar[str] = "reminder.completed"


class ReminderSnoozed(_ReminderFields):
    """A reminder was snoozed from a Teams card."""

    TYPE: ClassVar[str] = "reminder.snoozed"
    until: str
    """When the reminder is due again (ISO 8601, UTC)."""


class NoteLogged(WebhookEvent):
    """A rep logged a note on a deal from a Teams card."""

    TYPE: ClassVar[str] = "note.logged"
    deal: str
    """The deal's CRM id."""
    interaction: int
    """DealBridge's id of the note's interaction."""
    text: str
    """The note's text."""
    by: str | None = None
    """Who wrote it: the rep's email, or their Teams name when they are not a known rep."""
    source: str | None = None
    """Where it was written (``teams``)."""


class RepDeactivated(WebhookEvent):
    """A rep was deactivated or deleted in DealBridge: her open deals need a new owner."""

    TYPE: ClassVar[str] = "rep.deactivated"
    rep: str
    """The rep's email."""
    deals: list[str]
    """The CRM ids of her open deals: nothing is reminded on them until the CRM gives each a
    new owner (``PUT /api/v1/deals/{id}`` with ``owner``)."""
    deleted: bool
    """True when the rep was deleted (``DELETE /api/v1/reps/{email}``), not only deactivated."""
    at: str
    """When (ISO 8601, UTC)."""


class InteractionWithdrawn(WebhookEvent):
    """A rep said "Don't log this meeting": remove the interaction; it stays out on later
    rounds (every occurrence of a recurring meeting too) unless she undoes it within a day."""

    TYPE: ClassVar[str] = "interaction.withdrawn"
    interaction: int
    """DealBridge's interaction id."""
    deal: str | None = None
    """The deal's CRM id it was logged on (null when it was on none)."""
    by: str
    """The rep who withdrew it (her email)."""
    source: str
    """Where she did it: ``teams`` (a card) or ``tab`` (the "My deals" tab)."""
    undo_until: str
    """Until when she can bring it back (ISO 8601, UTC); then ``interaction.restored``."""


class InteractionRestored(WebhookEvent):
    """A rep undid "Don't log this meeting" within a day: the interaction is back."""

    TYPE: ClassVar[str] = "interaction.restored"
    interaction: int
    """DealBridge's interaction id."""
    deal: str | None = None
    """The deal's CRM id it is on again (null when it is on none)."""
    status: str
    """Its status again (``held``, ``scheduled``, ``needs_choice``...)."""
    by: str
    """The rep who brought it back."""
    source: str
    """Where: ``teams`` or ``tab``."""


EVENTS: tuple[type[WebhookEvent], ...] = (
    DealStageChanged,
    InteractionLogged,
    InteractionUpdated,
    InteractionWithdrawn,
    InteractionRestored,
    ReminderCompleted,
    ReminderSnoozed,
    NoteLogged,
    RepDeactivated,
)
