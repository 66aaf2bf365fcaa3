"""The typed shape of ``Interaction.details`` and the column type that stores it as JSON.

Not yet wired to the column: readers still index the dict (issue 10, details part, unfinished).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, model_serializer
from sqlalchemy import JSON
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class _Shape(BaseModel):
    # extra="allow": rows written before this model must still load, whatever they carry.
    model_config = ConfigDict(extra="allow")

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


class MeetingDetails(_Shape):
    """What an interaction keeps of a meeting (never its body), merged over mailboxes."""

    ical_uid: str | None = None
    series_id: str | None = None
    event_type: str | None = None
    original_start: str | None = None
    organizer: str | None = None
    attendees: list[Attendee] = []
    online: bool | None = None
    location: str | None = None
    mailboxes: list[str] = []
    internal_participants: list[str] = []
    explanation: str | None = None
    candidates: list[Candidate] = []
    chosen_by: str | None = None
    chosen_at: str | None = None
    moved_from: str | None = None
    chosen_outside_candidates: bool | None = None
    outcome: Outcome | None = None


class MeetingDetailsJSON(TypeDecorator[MeetingDetails]):
    """Stores MeetingDetails as the JSON written today; old rows (plain dicts) validate on load."""

    impl = JSON
    cache_ok = True

    def process_bind_param(
        self, value: MeetingDetails | dict[str, Any] | None, dialect: Dialect
    ) -> dict[str, Any] | None:
        if value is None:
            return None
        model = value if isinstance(value, MeetingDetails) else MeetingDetails.model_validate(value)
        return model.model_dump(mode="json", exclude_unset=True)

    def process_result_value(self, value: Any, dialect: Dialect) -> MeetingDetails | None:
        return None if value is None else MeetingDetails.model_validate(value)
