"""The typed shape of ``Interaction.details`` and the column type that stores it as JSON.

``Interaction.details`` is a :class:`MeetingDetails` for a meeting read from a calendar and None
for a call, email or note logged by hand (they carry nothing beyond their columns).

The models are frozen (their lists are tuples): a change is a new model assigned to the
column (``details.but(chosen_by=...)``), which SQLAlchemy sees; an in-place change, which it
would not see, raises instead of being lost silently.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, model_serializer
from sqlalchemy import JSON, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

# ---- statuses and kinds: the strings the store has always held, as enums ------------------


class DealStatus(StrEnum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"


class InteractionKind(StrEnum):
    MEETING = "meeting"
    CALL = "call"
    EMAIL = "email"
    NOTE = "note"


class InteractionStatus(StrEnum):
    SCHEDULED = "scheduled"
    HELD = "held"
    NEEDS_CHOICE = "needs_choice"
    """A meeting two or more deals could own equally: a rep is asked."""
    UNMATCHED = "unmatched"
    """A meeting no longer on any deal (it was, and still qualifies)."""
    CANCELLED = "cancelled"
    WITHDRAWN = "withdrawn"
    """The rep said "Don't log this meeting" (a ``MeetingExclusion`` keeps it out)."""
    NO_SHOW = "no_show"
    """A Teams meeting nobody from the customer joined (its attendance report says so)."""


class ReminderStatus(StrEnum):
    OPEN = "open"
    SNOOZED = "snoozed"
    DONE = "done"
    CANCELLED = "cancelled"
    """Withdrawn by a re-plan: its rule no longer applies."""


class ReminderKind(StrEnum):
    """The rule kinds of the leaf ``reminders`` (``reminders.rules.RULE_KINDS``)."""

    ON_ENTER = "on_enter"
    IDLE = "idle"
    SLA = "sla"
    BEFORE_CLOSE = "before_close"
    REPEAT = "repeat"
    AFTER_INTERACTION = "after_interaction"


class OutboxStatus(StrEnum):
    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    """Leased by a drain until ``next_attempt_at``."""
    DONE = "done"
    DEAD = "dead"
    """Given up after the last attempt."""


class CardKind(StrEnum):
    """What a card the bot sent shows (``teams_cards.kind``)."""

    REMINDER = "reminder"
    MEETING_LOGGED = "meeting_logged"
    PICK_DEAL = "pick_deal"
    AFTER_MEETING = "after_meeting"
    DIGEST = "digest"
    HEALTH = "health"
    BRIEF = "brief"


E = TypeVar("E", bound=StrEnum)


class StrEnumColumn(TypeDecorator[E]):
    """A StrEnum stored as its string (no database enum, no migration): a value outside the
    enum fails loudly, on write (ValueError) and on load (LookupError naming the column's enum).
    """

    impl = String
    cache_ok = True

    def __init__(self, enum: type[E], length: int) -> None:
        super().__init__(length)
        self.enum = enum

    def process_bind_param(self, value: E | str | None, dialect: Dialect) -> str | None:
        return None if value is None else self.enum(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> E | None:
        if value is None:
            return None
        try:
            return self.enum(value)
        except ValueError:
            known = ", ".join(m.value for m in self.enum)
            raise LookupError(
                f"the store holds {value!r} where a {self.enum.__name__} belongs (one of: "
                f"{known}); written by a newer or a broken version?"
            ) from None


# ---- interaction details ----------------------------------------------------------------


class _Shape(BaseModel):
    # extra="allow": rows written before this model must still load, whatever they carry.
    model_config = ConfigDict(extra="allow", frozen=True)

    @model_serializer(mode="wrap")
    def _as_written(self, handler: SerializerFunctionWrapHandler) -> Any:
        # Only the keys given (and extras): the wire and the column keep today's JSON exactly.
        dumped = handler(self)
        given = self.model_fields_set | set(self.model_extra or {})
        return {k: v for k, v in dumped.items() if k in given}


class Attendee(_Shape):
    email: str | None = None
    name: str | None = None
    response: str | None = None
    type: str | None = None


class Candidate(_Shape):
    deal: str | int | None = None
    """The CRM id of a deal the meeting could belong to."""
    rule: str | None = None
    address: str | None = None


class Outcome(_Shape):
    """What a rep answered on the meeting's card."""

    outcome: str | None = None
    note: str | None = None
    stage_name: str | None = None
    by: str | None = None
    at: str | None = None


class Joined(_Shape):
    """One participant of a Teams meeting, from its attendance report."""

    email: str | None = None
    name: str | None = None
    side: str | None = None
    """``customer`` or ``ours``."""
    joined_at: str | None = None
    minutes: float | None = None


class Attendance(_Shape):
    """What Teams says of who came (``connector.meetings.attendance``)."""

    result: str | None = None
    """``pending``, ``held``, ``no_show`` or ``not_verified``."""
    reason: str | None = None
    """Why it is not verified (or still pending), in words."""
    customer: tuple[Joined, ...] = ()
    ours: tuple[Joined, ...] = ()
    started_at: str | None = None
    ended_at: str | None = None
    minutes: float | None = None
    """The real duration: first join to last leave."""
    checked_at: str | None = None
    decided_by: str | None = None
    """A rep who marked a no-show held anyway, or dropped it."""


class MeetingDetails(_Shape):
    """What an interaction keeps of a meeting (never its body), merged over mailboxes."""

    ical_uid: str | None = None
    series_id: str | None = None
    event_type: str | None = None
    original_start: str | None = None
    organizer: str | None = None
    attendees: tuple[Attendee, ...] = ()
    online: bool | None = None
    location: str | None = None
    mailboxes: tuple[str, ...] = ()
    """The reps whose calendars hold the meeting."""
    internal_participants: tuple[str, ...] = ()
    explanation: str | None = None
    """Why the interaction is on its deal (or needs a choice), in words a rep reads."""
    candidates: tuple[Candidate, ...] = ()
    """The deals a rep picks from when the meeting needs a choice."""
    chosen_by: str | None = None
    chosen_at: str | None = None
    moved_from: str | None = None
    chosen_outside_candidates: bool | None = None
    outcome: Outcome | None = None
    join_url: str | None = None
    """The Teams join link of an online meeting."""
    attendance: Attendance | None = None

    def but(self, **changes: Any) -> MeetingDetails:
        """A copy with ``changes`` (validated: nested values may be given as dicts)."""
        # The given fields as they are (nested models are not validated again), then changes.
        given = {name: getattr(self, name) for name in self.model_fields_set}
        return MeetingDetails.model_validate({**given, **(self.model_extra or {}), **changes})

    def stored(self) -> dict[str, Any]:
        """The JSON the column keeps: only the keys given (and extras), as written before."""
        dumped: dict[str, Any] = self.model_dump(mode="json")
        return dumped


class MeetingDetailsJSON(TypeDecorator[MeetingDetails]):
    """Stores MeetingDetails as the JSON written today; old rows (plain dicts) validate on load."""

    impl = JSON(none_as_null=True)  # None is SQL NULL (a hand-logged interaction), not "null"
    cache_ok = True

    def process_bind_param(
        self, value: MeetingDetails | dict[str, Any] | None, dialect: Dialect
    ) -> dict[str, Any] | None:
        return None if value is None else _model(value).stored()

    def process_result_value(self, value: Any, dialect: Dialect) -> MeetingDetails | None:
        return None if value is None else MeetingDetails.model_validate(value)

    def compare_values(self, x: Any, y: Any) -> bool:
        # What the column would store decides whether a flush writes (equal models may differ
        # in the keys given).
        if x is None or y is None:
            return x is y
        x, y = _model(x), _model(y)
        if x.model_fields_set != y.model_fields_set:
            return False
        return bool(x == y)  # fields, extras: what the column stores


def _model(value: MeetingDetails | dict[str, Any]) -> MeetingDetails:
    return value if isinstance(value, MeetingDetails) else MeetingDetails.model_validate(value)
