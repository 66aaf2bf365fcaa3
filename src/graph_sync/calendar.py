"""Reminder events on a rep's Outlook calendar: create, update, delete in `$batch` calls,
idempotent across retries (transactionId) and crashes (found again by an extended property)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from graph_sync.client import BatchItem, BatchResult, GraphClient
from graph_sync.errors import GraphError
from graph_sync.models import GraphBody
from graph_sync.timezones import zone

log = logging.getLogger(__name__)

CALENDARS_WRITE = "Calendars.ReadWrite"
CATEGORY = "DealBridge"
# Our property set: the GUID is fixed forever, so events written by any version are found.
PROPERTY_SET = "7f3c2a9e-5b1d-4c8e-9a6f-2d4b8e1c0a57"
REMINDER_PROPERTY = f"String {{{PROPERTY_SET}}} Name DealBridgeReminder"
_TRANSACTION_NAMESPACE = uuid.UUID("3b8f1d2c-6a4e-5f70-8c9d-1e2f3a4b5c6d")


class ReminderEvent(BaseModel):
    """A reminder as an Outlook event: free time, no attendees, tagged with its key."""

    model_config = ConfigDict(frozen=True)

    key: str
    """The reminder's stable key (deal, rule, occurrence)."""
    subject: str
    """Event subject."""
    body_html: str
    """Event body (HTML)."""
    start: datetime
    """When it is due (aware)."""
    duration_minutes: int = Field(default=15, ge=1, le=24 * 60)
    """Length on the calendar."""
    time_zone: str = "UTC"
    """Zone the event is written in, for display (Windows or IANA name)."""
    reminder_minutes_before_start: int = Field(default=0, ge=0)
    """Outlook's pop-up reminder, minutes before start."""
    generation: int = Field(default=0, ge=0)
    """Bump when re-creating a reminder whose event was deleted: a new transactionId."""

    @field_validator("start")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("start must be an aware datetime")
        return value

    @property
    def transaction_id(self) -> str:
        """Deterministic per key and generation: a repeated POST makes no second event."""
        return str(uuid.uuid5(_TRANSACTION_NAMESPACE, f"{self.key}#{self.generation}"))

    def _when(self, moment: datetime) -> When:
        local = moment.astimezone(zone(self.time_zone))
        return When(date_time=local.strftime("%Y-%m-%dT%H:%M:%S"), time_zone=self.time_zone)

    def graph_body(self, *, create: bool) -> dict[str, Any]:
        """The event as Graph takes it (POST when `create`, else PATCH)."""
        return EventBody(
            subject=self.subject,
            body=ItemBody(content_type="html", content=self.body_html),
            start=self._when(self.start),
            end=self._when(self.start + timedelta(minutes=self.duration_minutes)),
            reminder_minutes_before_start=self.reminder_minutes_before_start,
            transaction_id=self.transaction_id if create else None,
            single_value_extended_properties=(
                [ExtendedProperty(id=REMINDER_PROPERTY, value=self.key)] if create else None
            ),
        ).wire()


class When(GraphBody):
    """Graph's `dateTimeTimeZone`, as we write it."""

    date_time: str
    """Local time without offset."""
    time_zone: str
    """The zone it is in (Windows or IANA name)."""


class ItemBody(GraphBody):
    """Graph's `itemBody`."""

    content_type: Literal["html", "text"]
    """How `content` is written."""
    content: str
    """The text."""


class ExtendedProperty(GraphBody):
    """A single-value extended property: how we find our reminder events again."""

    id: str
    """The property's id (`String {guid} Name ...`)."""
    value: str
    """Its value: the reminder's key."""


class EventBody(GraphBody):
    """A reminder event as Graph takes it (event-post-events.md; PATCH takes the same)."""

    subject: str
    """Event subject."""
    body: ItemBody
    """Event body."""
    start: When
    """Start, in the rep's zone."""
    end: When
    """End, in the rep's zone."""
    is_reminder_on: bool = True
    """Outlook's pop-up reminder."""
    reminder_minutes_before_start: int
    """Minutes before start."""
    show_as: Literal["free"] = "free"
    """Reminders never block time."""
    categories: list[str] = Field(default_factory=lambda: [CATEGORY])
    """Tags our events: the meeting sync never reads them as meetings."""
    attendees: list[Any] = Field(default_factory=list)
    """Never attendees: each would get a mail for every change (M365_NOTES.md)."""
    transaction_id: str | None = None
    """On create: a repeated POST makes no second event."""
    single_value_extended_properties: list[ExtendedProperty] | None = None
    """On create: the reminder's key."""


class CreateReminder(BaseModel):
    """Put a reminder on a calendar."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["create"] = "create"
    mailbox: str
    """User id or UPN."""
    event: ReminderEvent
    """What to write."""
    verify: bool = False
    """A previous attempt may have reached Graph: look the key up first."""


class UpdateReminder(BaseModel):
    """Change a reminder's event."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["update"] = "update"
    mailbox: str
    """User id or UPN."""
    event_id: str
    """The stored event id."""
    event: ReminderEvent
    """Its new content."""


class DeleteReminder(BaseModel):
    """Take a reminder off a calendar (by id, or by key when no id was stored)."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["delete"] = "delete"
    mailbox: str
    """User id or UPN."""
    event_id: str | None
    """The stored event id, if any."""
    key: str
    """The reminder's key."""


ReminderOp = CreateReminder | UpdateReminder | DeleteReminder
CalendarOp = Annotated[ReminderOp, Field(discriminator="kind")]
"""An op as the outbox may store it: pydantic picks the kind from `kind`."""


class Outcome(StrEnum):
    """What became of one reminder op."""

    DONE = "done"
    FAILED = "failed"
    """Retry later (the result's `error` says why)."""
    GONE = "gone"
    """An update found no event: re-create it."""


class CalendarOpResult(BaseModel):
    """What became of one op."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["create", "update", "delete"]
    """The op's kind."""
    mailbox: str
    """The op's mailbox."""
    key: str
    """The reminder's key."""
    outcome: Outcome
    """done; failed (retry later: `error`); gone (an update found no event: re-create)."""
    event_id: str | None = None
    """The event's id when done (None after a delete)."""
    status: int | None = None
    """Graph's last status for it."""
    error: str | None = None
    """Why it failed."""
    attempts: int = 0
    """Graph attempts made in this call."""


_Where = tuple[str, str]
"""A reminder on a calendar: (mailbox, lower-case; reminder key)."""


class _EventId(BaseModel):
    id: str


class _EventIds(BaseModel):
    value: list[_EventId] = Field(default_factory=list)


def _key_filter_url(mailbox: str, key: str) -> str:
    literal = key.replace("'", "''")
    expression = (
        f"singleValueExtendedProperties/Any(ep: ep/id eq '{REMINDER_PROPERTY}' "
        f"and ep/value eq '{literal}')"
    )
    return f"/users/{mailbox}/events?$filter={quote(expression, safe='')}&$select=id"


def first_event_id(client: GraphClient, mailbox: str) -> str | None:
    """The id of one event of the mailbox's calendar, or None when it has none (a probe that
    needs calendar access: Calendars.Read or Calendars.ReadWrite)."""
    raw = client.get_bytes(
        f"/users/{mailbox}/events",
        params={"$top": "1", "$select": "id"},
        mailbox=mailbox,
        permission=CALENDARS_WRITE,
    )
    found = _EventIds.model_validate_json(raw).value
    return found[0].id if found else None


def delete_event(client: GraphClient, mailbox: str, event_id: str) -> None:
    """Delete one event of the mailbox's calendar (as its organizer: attendees see it cancelled)."""
    client.delete(
        f"/users/{mailbox}/events/{quote(event_id, safe='')}",
        mailbox=mailbox,
        permission=CALENDARS_WRITE,
    )


class CalendarWriter:
    """Applies reminder ops to calendars through `$batch`: the ops of many mailboxes share
    calls (<= 20 items a call; Outlook runs up to 4 of one mailbox at a time)."""

    def __init__(self, client: GraphClient) -> None:
        self.client = client

    def find_by_key(self, mailbox: str, keys: list[str]) -> dict[str, list[str]]:
        """Event ids carrying each reminder key (normally 0 or 1 per key)."""
        return self.client.bridge.run(self._find_async(mailbox, keys), None)

    async def _find_async(self, mailbox: str, keys: list[str]) -> dict[str, list[str]]:
        found, failures = await self._lookup_async([(mailbox, key) for key in keys])
        for error in failures.values():
            raise error
        return {key: found[(mailbox.lower(), key)] for key in keys}

    async def _lookup_async(
        self, wanted: list[tuple[str, str]]
    ) -> tuple[dict[_Where, list[str]], dict[_Where, GraphError]]:
        """Event ids per (mailbox, key), all mailboxes in shared `$batch` calls; and the
        lookups that failed (after the client's retries)."""
        unique = list(dict.fromkeys((mailbox.lower(), key) for mailbox, key in wanted))
        named = {mailbox.lower(): mailbox for mailbox, _ in wanted}
        items = [
            BatchItem(id=str(n), method="GET", url=_key_filter_url(named[mailbox], key))
            for n, (mailbox, key) in enumerate(unique)
        ]
        results = await self.client.batch_async(items)
        found: dict[_Where, list[str]] = {}
        failures: dict[_Where, GraphError] = {}
        for where, result in zip(unique, results, strict=True):
            if result.ok:
                found[where] = [e.id for e in _EventIds.model_validate(result.body).value]
            else:
                mailbox, key = where
                failures[where] = result.error or GraphError(
                    result.status, "LookupFailed", key, named[mailbox]
                )
        return found, failures

    def apply(
        self,
        ops: Sequence[ReminderOp],
        *,
        verify_creates: bool = False,
    ) -> list[CalendarOpResult]:
        """Apply ops (results in the same order). `verify_creates`: every create first looks
        its key up and becomes an update when the event exists (after a crash or lost answer)."""
        return self.client.bridge.run(self.apply_async(ops, verify_creates=verify_creates), None)

    async def apply_async(
        self,
        ops: Sequence[ReminderOp],
        *,
        verify_creates: bool = False,
    ) -> list[CalendarOpResult]:
        """`apply`, on the client's loop: one round of lookups for every mailbox, then one
        round of writes for every mailbox (each round as few `$batch` calls as the limits
        allow, retried items only)."""
        needs_lookup = [
            (isinstance(op, CreateReminder) and (op.verify or verify_creates))
            or (isinstance(op, DeleteReminder) and op.event_id is None)
            for op in ops
        ]
        wanted = [
            (op.mailbox, _key_of(op))
            for op, needed in zip(ops, needs_lookup, strict=True)
            if needed
        ]
        existing, failures = await self._lookup_async(wanted) if wanted else ({}, {})
        for (mailbox, _), error in failures.items():
            # Without the lookup a create could duplicate: those ops fail, the rest go on.
            log.warning("reminder lookup failed for %s: %s", mailbox, error.code)
        items: list[BatchItem] = []
        plan: list[tuple[str, list[str]] | GraphError] = []  # per op: kind as sent, its items
        for n, (op, needed) in enumerate(zip(ops, needs_lookup, strict=True)):
            where = (op.mailbox.lower(), _key_of(op))
            if needed and where in failures:
                plan.append(failures[where])
                continue
            kind, op_items = self._items_for(n, op, existing.get(where, []))
            plan.append((kind, [item.id for item in op_items]))
            items.extend(op_items)
        results = {r.id: r for r in await self.client.batch_async(items)} if items else {}
        out: list[CalendarOpResult] = []
        for op, planned in zip(ops, plan, strict=True):
            if isinstance(planned, GraphError):
                out.append(
                    CalendarOpResult(
                        kind=op.kind,
                        mailbox=op.mailbox,
                        key=_key_of(op),
                        outcome=Outcome.FAILED,
                        status=planned.status,
                        error=f"lookup by key failed: {planned}",
                    )
                )
                continue
            kind, ids = planned
            out.append(self._outcome(op, kind, [results[i] for i in ids]))
        return out

    def _items_for(
        self,
        n: int,
        op: CreateReminder | UpdateReminder | DeleteReminder,
        found: list[str],
    ) -> tuple[str, list[BatchItem]]:
        base = f"/users/{op.mailbox}/events"
        if isinstance(op, CreateReminder):
            if found:
                # It exists already: update the first, remove any duplicate.
                items = [
                    BatchItem(
                        id=f"{n}",
                        method="PATCH",
                        url=f"{base}/{found[0]}",
                        body=op.event.graph_body(create=False),
                    )
                ]
                items += [
                    BatchItem(id=f"{n}.{k}", method="DELETE", url=f"{base}/{extra}")
                    for k, extra in enumerate(found[1:], start=1)
                ]
                return "update", items
            return "create", [
                BatchItem(id=f"{n}", method="POST", url=base, body=op.event.graph_body(create=True))
            ]
        if isinstance(op, UpdateReminder):
            return "update", [
                BatchItem(
                    id=f"{n}",
                    method="PATCH",
                    url=f"{base}/{op.event_id}",
                    body=op.event.graph_body(create=False),
                )
            ]
        targets = [op.event_id] if op.event_id else found
        return "delete", [
            BatchItem(id=f"{n}.{k}", method="DELETE", url=f"{base}/{target}")
            for k, target in enumerate(targets)
        ]

    def _outcome(
        self,
        op: CreateReminder | UpdateReminder | DeleteReminder,
        kind: str,
        results: list[BatchResult],
    ) -> CalendarOpResult:
        key = _key_of(op)
        attempts = max((r.attempts for r in results), default=0)
        common: dict[str, Any] = {"kind": op.kind, "mailbox": op.mailbox, "key": key}
        if isinstance(op, DeleteReminder):
            failed = [r for r in results if not r.ok and r.status != 404]
            if failed:
                return _failure(common, failed[0], attempts)
            return CalendarOpResult(
                **common,
                outcome=Outcome.DONE,
                status=results[0].status if results else None,
                attempts=attempts,
            )
        main = results[0]
        if main.status == 404 and kind == "update":
            return CalendarOpResult(**common, outcome=Outcome.GONE, status=404, attempts=attempts)
        if not main.ok:
            return _failure(common, main, attempts)
        event_id = op.event_id if isinstance(op, UpdateReminder) else None
        try:
            event_id = _EventId.model_validate(main.body).id
        except ValidationError:
            if event_id is None:
                event_id = main.headers.get("Location", "").rsplit("/", 1)[-1] or None
        return CalendarOpResult(
            **common, outcome=Outcome.DONE, event_id=event_id, status=main.status, attempts=attempts
        )


def _failure(common: dict[str, Any], result: BatchResult, attempts: int) -> CalendarOpResult:
    return CalendarOpResult(
        **common,
        outcome=Outcome.FAILED,
        status=result.status,
        error=str(result.error) if result.error else f"status {result.status}",
        attempts=attempts,
    )


def _key_of(op: CreateReminder | UpdateReminder | DeleteReminder) -> str:
    return op.key if isinstance(op, DeleteReminder) else op.event.key
