"""Exchange's calendar store: events per mailbox, meeting copies for attendees, recurring series.

This is where Exchange's semantics live (not Graph's wire format): an organizer's meeting is
copied into each in-tenant attendee's calendar with the same iCalUId; the organizer's updates
reach the copies; a cancelled meeting stays on attendees' calendars marked `isCancelled`;
a series expands into occurrences, some of them moved or cancelled (exceptions).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote

from sandbox import exchange_ids, timezones
from sandbox.directory import Directory, User
from sandbox.errors import GraphError, item_not_found, malformed_id
from sandbox.event_fields import EventInput, check_zone, location_graph
from sandbox.recurrence import PatternedRecurrence, occurrence_starts

ChangeType = Literal["created", "updated", "deleted"]
ResponseKind = Literal["accepted", "tentativelyAccepted", "declined"]

NEVER = "0001-01-01T00:00:00Z"
# Properties an organizer's change carries to attendees' copies; the rest are each person's own.
_SHARED = (
    "subject",
    "body",
    "location",
    "locations",
    "attendees",
    "sensitivity",
    "importance",
    "isAllDay",
    "isOnlineMeeting",
    "onlineMeetingProvider",
    "responseRequested",
    "allowNewTimeProposals",
    "hideAttendees",
)
_CANCELLED_PREFIX = "Canceled: "


def default_fields() -> dict[str, Any]:
    """A new event's properties before the client's are applied (Outlook's defaults)."""
    return {
        "subject": "",
        "body": {"contentType": "html", "content": ""},
        "categories": [],
        "sensitivity": "normal",
        "showAs": "busy",
        "importance": "normal",
        "isAllDay": False,
        "isReminderOn": True,
        "reminderMinutesBeforeStart": 15,
        "isOnlineMeeting": False,
        "onlineMeetingProvider": "unknown",
        "responseRequested": True,
        "allowNewTimeProposals": True,
        "hideAttendees": False,
        "isDraft": False,
        "location": location_graph(None),
        "locations": [],
        "attendees": [],
    }


@dataclass
class StoredEvent:
    """An item in a mailbox's calendar: a single event, a series master or an exception."""

    id: str
    mailbox_id: str
    type: Literal["singleInstance", "seriesMaster", "exception"]
    ical_uid: str
    start: datetime
    end: datetime
    start_zone: str
    end_zone: str
    fields: dict[str, Any]
    created: datetime
    last_modified: datetime
    change_key: str
    seq: int
    is_organizer: bool
    organizer: dict[str, Any]
    response_status: dict[str, str]
    transaction_id: str | None = None
    recurrence: PatternedRecurrence | None = None
    is_cancelled: bool = False
    extended: dict[str, dict[str, str]] = field(default_factory=dict)
    series_master_id: str | None = None
    original_start: datetime | None = None
    cancelled_starts: set[datetime] = field(default_factory=set)
    exception_ids: dict[datetime, str] = field(default_factory=dict)
    online_meeting: dict[str, Any] | None = None


@dataclass(frozen=True)
class Instance:
    """What a calendar view shows: an event, or one occurrence computed from its series."""

    id: str
    type: Literal["singleInstance", "seriesMaster", "occurrence", "exception"]
    start: datetime
    end: datetime
    event: StoredEvent
    original_start: datetime | None = None

    @property
    def change_key(self) -> str:
        """Occurrences change whenever their master does."""
        return self.event.change_key


@dataclass(frozen=True)
class Change:
    """One change to one item, for change notifications."""

    mailbox_id: str
    event_id: str
    change_type: ChangeType
    change_key: str


class MailboxCalendar:
    """The primary calendar of one mailbox."""

    def __init__(self, mailbox_id: str) -> None:
        self.mailbox_id = mailbox_id
        self.events: dict[str, StoredEvent] = {}
        self.by_transaction: dict[str, str] = {}
        self.by_ical: dict[str, str] = {}
        self.last_seq = 0

    def stored(self) -> list[StoredEvent]:
        """Every stored item (singles, masters, exceptions), oldest first."""
        return list(self.events.values())

    def top_level(self) -> Iterator[StoredEvent]:
        """What `GET /events` lists: single instances and series masters."""
        return (e for e in self.events.values() if e.type != "exception")

    def resolve(self, item_id: str) -> Instance:
        """The item or occurrence an id names; Graph's 400/404 when it names nothing here."""
        event = self.events.get(item_id)
        if event is not None:
            return Instance(
                event.id, event.type, event.start, event.end, event, event.original_start
            )
        split = exchange_ids.split_occurrence_id(item_id)
        if split is None:
            if exchange_ids.is_well_formed(item_id):
                raise item_not_found()
            raise malformed_id()
        master_id, original_start = split
        master = self.events.get(master_id)
        if master is None or master.recurrence is None or original_start in master.cancelled_starts:
            raise item_not_found()
        if not any(s == original_start for s in _series_starts(master, original_start, 1)):
            raise item_not_found()
        duration = master.end - master.start
        return Instance(
            item_id, "occurrence", original_start, original_start + duration, master, original_start
        )

    def view(self, start: datetime, end: datetime) -> list[Instance]:
        """calendarView: singles, occurrences and exceptions overlapping [start, end), by start."""
        found: list[Instance] = []
        for event in self.events.values():
            if event.type == "seriesMaster":
                found.extend(series_instances(event, start, end))
            elif event.type == "singleInstance" and event.start < end and event.end > start:
                found.append(Instance(event.id, event.type, event.start, event.end, event))
        found.extend(
            Instance(e.id, "exception", e.start, e.end, e, e.original_start)
            for e in self.events.values()
            if e.type == "exception" and e.start < end and e.end > start
        )
        found.sort(key=lambda i: (i.start, i.id))
        return found


def _series_starts(master: StoredEvent, since: datetime, slack_days: int) -> Iterator[datetime]:
    assert master.recurrence is not None
    return occurrence_starts(
        master.recurrence,
        master.start,
        master.start_zone,
        until=since + timedelta(days=slack_days),
        since=since - timedelta(days=slack_days),
    )


def series_instances(master: StoredEvent, start: datetime, end: datetime) -> list[Instance]:
    """The occurrences of a series overlapping [start, end) that are neither cancelled nor moved."""
    assert master.recurrence is not None
    duration = master.end - master.start
    found = []
    for original in occurrence_starts(
        master.recurrence, master.start, master.start_zone, until=end, since=start - duration
    ):
        if original + duration <= start or original in master.cancelled_starts:
            continue
        if original in master.exception_ids:
            continue
        occurrence = exchange_ids.occurrence_id(master.id, original)
        found.append(
            Instance(occurrence, "occurrence", original, original + duration, master, original)
        )
    return found


def address_of(user: User) -> dict[str, Any]:
    """A `recipient` for a tenant user."""
    return {"emailAddress": {"name": user.display_name, "address": user.mail}}


class CalendarStore:
    """Every mailbox's calendar, and the operations whose effects cross mailboxes."""

    def __init__(self, directory: Directory, now: Callable[[], datetime]) -> None:
        self.directory = directory
        self.now = now
        self.calendars: dict[str, MailboxCalendar] = {}
        self.seq = 0
        self.changes: list[Change] = []

    def calendar(self, mailbox_id: str) -> MailboxCalendar:
        """The calendar of a mailbox, created with the mailbox."""
        found = self.calendars.get(mailbox_id)
        if found is None:
            found = self.calendars[mailbox_id] = MailboxCalendar(mailbox_id)
        return found

    # --- recording -------------------------------------------------------------------------

    def _touch(self, event: StoredEvent, change: ChangeType, moment: datetime) -> None:
        self.seq += 1
        event.seq = self.seq
        event.change_key = exchange_ids.new_change_key()
        event.last_modified = moment
        self.calendar(event.mailbox_id).last_seq = self.seq
        self.changes.append(Change(event.mailbox_id, event.id, change, event.change_key))

    def _forget(self, event: StoredEvent) -> None:
        calendar = self.calendar(event.mailbox_id)
        calendar.events.pop(event.id, None)
        if calendar.by_ical.get(event.ical_uid) == event.id:
            del calendar.by_ical[event.ical_uid]
        if event.transaction_id and calendar.by_transaction.get(event.transaction_id) == event.id:
            del calendar.by_transaction[event.transaction_id]
        self.seq += 1
        calendar.last_seq = self.seq
        self.changes.append(Change(event.mailbox_id, event.id, "deleted", event.change_key))

    # --- create ----------------------------------------------------------------------------

    def create(self, organizer: User, given: EventInput) -> StoredEvent:
        """POST /users/{id}/events: the organizer's item, then a copy for each tenant attendee."""
        calendar = self.calendar(organizer.id)
        if given.transaction_id and given.transaction_id in calendar.by_transaction:
            existing = calendar.events.get(calendar.by_transaction[given.transaction_id])
            if existing is not None:
                return existing
        if given.start is None or given.end is None:
            raise GraphError(
                400,
                "ErrorInvalidRequest",
                "Your request can't be completed. "
                "The Start and End properties are required to create an event.",
            )
        moment = self.now()
        event = StoredEvent(
            id=exchange_ids.new_item_id(organizer.id),
            mailbox_id=organizer.id,
            type="singleInstance",
            ical_uid=exchange_ids.new_ical_uid(moment),
            start=moment,
            end=moment,
            start_zone="UTC",
            end_zone="UTC",
            fields=default_fields(),
            created=moment,
            last_modified=moment,
            change_key="",
            seq=0,
            is_organizer=True,
            organizer=address_of(organizer),
            response_status={"response": "organizer", "time": NEVER},
            transaction_id=given.transaction_id,
        )
        _apply(event, given)
        calendar.events[event.id] = event
        calendar.by_ical[event.ical_uid] = event.id
        if given.transaction_id:
            calendar.by_transaction[given.transaction_id] = event.id
        self._touch(event, "created", moment)
        self._reach_attendees(event, moment)
        return event

    # --- update ----------------------------------------------------------------------------

    def update(self, user: User, item_id: str, given: EventInput) -> StoredEvent:
        """PATCH an event, an occurrence (which becomes an exception) or an exception."""
        calendar = self.calendar(user.id)
        instance = calendar.resolve(item_id)
        if given.recurrence is not None and instance.type in ("occurrence", "exception"):
            raise GraphError(
                400, "ErrorInvalidRequest", "An occurrence of a series cannot have a recurrence."
            )
        # Apply to a copy first: a refused PATCH must leave the item as it was.
        trial = copy.deepcopy(instance.event)
        trial.start, trial.end = instance.start, instance.end
        _apply(trial, given)
        moment = self.now()
        if instance.type == "occurrence":
            event = self._make_exception(instance, moment)
        else:
            event = instance.event
        timing_before = (event.start, event.end, event.recurrence)
        _apply(event, given)
        if event.type == "seriesMaster" and timing_before != (
            event.start,
            event.end,
            event.recurrence,
        ):
            # Exchange drops a series' exceptions when its time or pattern changes.
            self._drop_exceptions(event)
        self._touch(event, "updated", moment)
        if event.is_organizer:
            self._reach_attendees(event, moment)
        return event

    def _make_exception(self, occurrence: Instance, moment: datetime) -> StoredEvent:
        master = occurrence.event
        assert occurrence.original_start is not None
        exception = copy.deepcopy(master)
        exception.id = occurrence.id
        exception.type = "exception"
        exception.ical_uid = exchange_ids.occurrence_ical_uid(
            master.ical_uid, occurrence.original_start.astimezone(timezones.zone(master.start_zone))
        )
        exception.start, exception.end = occurrence.start, occurrence.end
        exception.recurrence = None
        exception.series_master_id = master.id
        exception.original_start = occurrence.original_start
        exception.cancelled_starts = set()
        exception.exception_ids = {}
        exception.transaction_id = None
        exception.created = moment
        master.exception_ids[occurrence.original_start] = exception.id
        self.calendar(master.mailbox_id).events[exception.id] = exception
        return exception

    def _drop_exceptions(self, master: StoredEvent) -> None:
        calendar = self.calendar(master.mailbox_id)
        for exception_id in master.exception_ids.values():
            exception = calendar.events.get(exception_id)
            if exception is not None:
                self._forget(exception)
        master.exception_ids.clear()
        master.cancelled_starts.clear()

    # --- delete, cancel --------------------------------------------------------------------

    def delete(self, user: User, item_id: str) -> None:
        """DELETE: an organizer's meeting stays on attendees' calendars, cancelled."""
        calendar = self.calendar(user.id)
        instance = calendar.resolve(item_id)
        moment = self.now()
        if instance.type in ("occurrence", "exception"):
            self._cancel_occurrence(instance, moment)
            return
        event = instance.event
        if event.is_organizer:
            self._cancel_copies(event, moment)
        for exception_id in list(event.exception_ids.values()):
            exception = calendar.events.get(exception_id)
            if exception is not None:
                self._forget(exception)
        self._forget(event)

    def cancel(self, user: User, item_id: str) -> None:
        """POST .../cancel: only the organizer may cancel; then it is a delete."""
        instance = self.calendar(user.id).resolve(item_id)
        if not instance.event.is_organizer:
            raise GraphError(
                400,
                "ErrorAccessDenied",
                "Your request can't be completed. You need to be an organizer to cancel a meeting.",
            )
        self.delete(user, item_id)

    def _cancel_occurrence(self, instance: Instance, moment: datetime) -> None:
        calendar = self.calendar(instance.event.mailbox_id)
        assert instance.original_start is not None
        if instance.type == "exception":
            exception = instance.event
            master = calendar.events.get(exception.series_master_id or "")
            self._forget(exception)
        else:
            master = instance.event
        if master is None:
            return
        master.exception_ids.pop(instance.original_start, None)
        master.cancelled_starts.add(instance.original_start)
        self._touch(master, "updated", moment)
        if master.is_organizer:
            for copy_master in self._copies_of(master):
                self._cancel_copy_occurrence(copy_master, instance.original_start, moment)

    def _cancel_copy_occurrence(
        self, master: StoredEvent, original: datetime, moment: datetime
    ) -> None:
        calendar = self.calendar(master.mailbox_id)
        occurrence_id = master.exception_ids.get(original) or exchange_ids.occurrence_id(
            master.id, original
        )
        try:
            instance = calendar.resolve(occurrence_id)
        except GraphError:
            return
        exception = (
            instance.event
            if instance.type == "exception"
            else self._make_exception(instance, moment)
        )
        _mark_cancelled(exception)
        self._touch(exception, "updated", moment)

    def _cancel_copies(self, event: StoredEvent, moment: datetime) -> None:
        for copy_event in self._copies_of(event):
            self._cancel_copy(copy_event, moment)

    def _cancel_copy(self, copy_event: StoredEvent, moment: datetime) -> None:
        calendar = self.calendar(copy_event.mailbox_id)
        _mark_cancelled(copy_event)
        self._touch(copy_event, "updated", moment)
        for exception_id in copy_event.exception_ids.values():
            exception = calendar.events.get(exception_id)
            if exception is not None and not exception.is_cancelled:
                _mark_cancelled(exception)
                self._touch(exception, "updated", moment)

    # --- responses -------------------------------------------------------------------------

    def respond(self, user: User, item_id: str, kind: ResponseKind) -> None:
        """accept / tentativelyAccept / decline by an attendee; the organizer's item records it."""
        calendar = self.calendar(user.id)
        instance = calendar.resolve(item_id)
        event = instance.event
        if instance.type in ("occurrence", "exception") and event.series_master_id:
            event = calendar.events.get(event.series_master_id, event)
        if event.is_organizer:
            raise GraphError(
                400,
                "ErrorInvalidRequest",
                "Your request can't be completed. You can't respond to a meeting you organized.",
            )
        moment = self.now()
        stamp = timezones.format_utc_seconds(moment) + "Z"
        event.response_status = {"response": kind, "time": stamp}
        organizer_item = self._organizer_item(event)
        if organizer_item is not None:
            for attendee in organizer_item.fields["attendees"]:
                if attendee["emailAddress"].get("address", "").lower() in user.addresses:
                    attendee["status"] = {"response": kind, "time": stamp}
            self._touch(organizer_item, "updated", moment)
        if kind == "declined":
            # Declining removes the meeting from the attendee's calendar (it goes to Deleted Items).
            for exception_id in list(event.exception_ids.values()):
                exception = calendar.events.get(exception_id)
                if exception is not None:
                    self._forget(exception)
            self._forget(event)
            return
        event.fields["showAs"] = (
            organizer_item.fields["showAs"]
            if organizer_item and kind == "accepted"
            else "tentative"
        )
        self._touch(event, "updated", moment)

    # --- attendee copies -------------------------------------------------------------------

    def _organizer_item(self, copy_event: StoredEvent) -> StoredEvent | None:
        organizer = self.directory.by_address(
            copy_event.organizer["emailAddress"].get("address", "")
        )
        if organizer is None:
            return None
        calendar = self.calendar(organizer.id)
        found = calendar.events.get(calendar.by_ical.get(copy_event.ical_uid, ""))
        return found if found is not None and found.is_organizer else None

    def _attendee_users(self, event: StoredEvent) -> list[User]:
        users: dict[str, User] = {}
        for attendee in event.fields["attendees"]:
            user = self.directory.by_address(attendee["emailAddress"].get("address") or "")
            if user is not None and user.id != event.mailbox_id:
                users[user.id] = user
        return list(users.values())

    def _copies_of(self, event: StoredEvent) -> list[StoredEvent]:
        """Attendees' copies of an organizer's single event or series master (or exception)."""
        if event.type == "exception":
            return [c for c in self._exception_copies(event) if c is not None]
        found = []
        for mailbox_id, calendar in self.calendars.items():
            if mailbox_id == event.mailbox_id:
                continue
            copy_id = calendar.by_ical.get(event.ical_uid)
            if copy_id is not None:
                found.append(calendar.events[copy_id])
        return found

    def _exception_copies(self, exception: StoredEvent) -> list[StoredEvent | None]:
        organizer_calendar = self.calendar(exception.mailbox_id)
        master = organizer_calendar.events.get(exception.series_master_id or "")
        if master is None or exception.original_start is None:
            return []
        copies: list[StoredEvent | None] = []
        for copy_master in self._copies_of(master):
            calendar = self.calendar(copy_master.mailbox_id)
            copy_id = copy_master.exception_ids.get(exception.original_start)
            if copy_id is None:
                try:
                    occurrence = calendar.resolve(
                        exchange_ids.occurrence_id(copy_master.id, exception.original_start)
                    )
                except GraphError:
                    continue
                copies.append(self._make_exception(occurrence, self.now()))
            else:
                copies.append(calendar.events.get(copy_id))
        return copies

    def _reach_attendees(self, event: StoredEvent, moment: datetime) -> None:
        """Send the organizer's item to attendees: create, update, or cancel their copies."""
        if event.type == "exception":
            for copy_event in self._exception_copies(event):
                if copy_event is not None and not copy_event.is_cancelled:
                    _share(event, copy_event)
                    self._touch(copy_event, "updated", moment)
            return
        wanted = {user.id: user for user in self._attendee_users(event)}
        for copy_event in self._copies_of(event):
            if copy_event.mailbox_id in wanted:
                del wanted[copy_event.mailbox_id]
                if not copy_event.is_cancelled:
                    _share(event, copy_event)
                    self._touch(copy_event, "updated", moment)
            elif not copy_event.is_cancelled:
                self._cancel_copy(copy_event, moment)  # removed from the meeting
        for user in wanted.values():
            self._new_copy(event, user, moment)

    def _new_copy(self, event: StoredEvent, attendee: User, moment: datetime) -> None:
        calendar = self.calendar(attendee.id)
        copy_event = StoredEvent(
            id=exchange_ids.new_item_id(attendee.id),
            mailbox_id=attendee.id,
            type=event.type,
            ical_uid=event.ical_uid,
            start=event.start,
            end=event.end,
            start_zone=event.start_zone,
            end_zone=event.end_zone,
            fields=default_fields(),
            created=moment,
            last_modified=moment,
            change_key="",
            seq=0,
            is_organizer=False,
            organizer=copy.deepcopy(event.organizer),
            response_status={"response": "notResponded", "time": NEVER},
        )
        _share(event, copy_event)
        calendar.events[copy_event.id] = copy_event
        calendar.by_ical[copy_event.ical_uid] = copy_event.id
        self._touch(copy_event, "created", moment)
        if event.type == "seriesMaster":
            organizer_calendar = self.calendar(event.mailbox_id)
            copy_event.cancelled_starts = set(event.cancelled_starts)
            for original, exception_id in event.exception_ids.items():
                exception = organizer_calendar.events.get(exception_id)
                if exception is None:
                    continue
                occurrence = Instance(
                    exchange_ids.occurrence_id(copy_event.id, original),
                    "occurrence",
                    original,
                    original + (copy_event.end - copy_event.start),
                    copy_event,
                    original,
                )
                copy_exception = self._make_exception(occurrence, moment)
                _share(exception, copy_exception)
                self._touch(copy_exception, "created", moment)


def _share(source: StoredEvent, target: StoredEvent) -> None:
    """Copy what an organizer decides onto an attendee's copy; keep the attendee's own settings."""
    for name in _SHARED:
        target.fields[name] = copy.deepcopy(source.fields[name])
    target.start, target.end = source.start, source.end
    target.start_zone, target.end_zone = source.start_zone, source.end_zone
    target.recurrence = source.recurrence
    target.online_meeting = copy.deepcopy(source.online_meeting)
    accepted = target.response_status["response"] == "accepted"
    target.fields["showAs"] = source.fields["showAs"] if accepted else "tentative"


def _mark_cancelled(event: StoredEvent) -> None:
    event.is_cancelled = True
    subject = event.fields["subject"]
    if not subject.startswith(_CANCELLED_PREFIX):
        event.fields["subject"] = _CANCELLED_PREFIX + subject


def _apply(event: StoredEvent, given: EventInput) -> None:
    """Apply a POST/PATCH body's properties to a stored item."""
    sent = given.model_fields_set
    fields = event.fields
    simple = {
        "subject": "subject",
        "categories": "categories",
        "sensitivity": "sensitivity",
        "show_as": "showAs",
        "importance": "importance",
        "is_all_day": "isAllDay",
        "is_reminder_on": "isReminderOn",
        "reminder_minutes_before_start": "reminderMinutesBeforeStart",
        "is_online_meeting": "isOnlineMeeting",
        "online_meeting_provider": "onlineMeetingProvider",
        "response_requested": "responseRequested",
        "allow_new_time_proposals": "allowNewTimeProposals",
        "hide_attendees": "hideAttendees",
        "is_draft": "isDraft",
    }
    for attr, name in simple.items():
        value = getattr(given, attr)
        if attr in sent and value is not None:
            fields[name] = list(value) if isinstance(value, list) else value
    if "body" in sent and given.body is not None:
        fields["body"] = {"contentType": given.body.content_type, "content": given.body.content}
    if "location" in sent:
        fields["location"] = location_graph(given.location)
        fields["locations"] = (
            [fields["location"]] if given.location and given.location.display_name else []
        )
    if "locations" in sent and given.locations is not None:
        fields["locations"] = [location_graph(loc) for loc in given.locations]
        if "location" not in sent:
            names = "; ".join(loc.display_name for loc in given.locations)
            fields["location"] = location_graph(
                given.locations[0] if len(given.locations) == 1 else None
            )
            if len(given.locations) > 1:
                fields["location"] = {
                    "displayName": names,
                    "locationType": "default",
                    "uniqueId": names,
                    "uniqueIdType": "private",
                    "address": {},
                    "coordinates": {},
                }
    if "attendees" in sent and given.attendees is not None:
        before = {
            (a["emailAddress"].get("address") or "").lower(): a["status"]
            for a in fields["attendees"]
        }
        fields["attendees"] = [
            {
                "type": a.type,
                "status": before.get(
                    (a.email_address.address or "").lower(), {"response": "none", "time": NEVER}
                ),
                "emailAddress": {
                    "name": a.email_address.name or a.email_address.address or "",
                    "address": a.email_address.address or "",
                },
            }
            for a in given.attendees
        ]
    if "start" in sent and given.start is not None:
        event.start_zone = check_zone(given.start.time_zone)
        event.start = timezones.parse_local(given.start.date_time, event.start_zone)
    if "end" in sent and given.end is not None:
        event.end_zone = check_zone(given.end.time_zone)
        event.end = timezones.parse_local(given.end.date_time, event.end_zone)
    if event.end < event.start:
        raise GraphError(
            400,
            "ErrorInvalidRequest",
            "Your request can't be completed. The end time can't be earlier than the start time.",
        )
    if fields["isAllDay"] and not _is_midnight(event):
        raise GraphError(
            400,
            "ErrorPropertyValidationFailure",
            "At least one property failed validation. All-day events must start and end at "
            "midnight in their time zone.",
        )
    if "recurrence" in sent:
        event.recurrence = given.recurrence
        if event.type in ("singleInstance", "seriesMaster"):
            event.type = "seriesMaster" if given.recurrence is not None else "singleInstance"
    if "single_value_extended_properties" in sent and given.single_value_extended_properties:
        for prop in given.single_value_extended_properties:
            event.extended[prop.id.lower()] = {"id": prop.id, "value": prop.value}
    if fields["isOnlineMeeting"] and event.online_meeting is None:
        if fields["onlineMeetingProvider"] == "unknown":
            fields["onlineMeetingProvider"] = "teamsForBusiness"
        event.online_meeting = {
            "joinUrl": "https://teams.microsoft.com/l/meetup-join/19%3ameeting_"
            + quote(event.ical_uid[-32:].lower())
            + "%40thread.v2/0"
        }
    if not fields["isOnlineMeeting"]:
        event.online_meeting = None


def _is_midnight(event: StoredEvent) -> bool:
    start = event.start.astimezone(timezones.zone(event.start_zone))
    end = event.end.astimezone(timezones.zone(event.end_zone))
    return start.time() == end.time() == datetime.min.time() and end > start


def web_link(item_id: str) -> str:
    """`webLink` as Outlook on the web builds it."""
    item = quote(item_id, safe="")
    return f"https://outlook.office365.com/owa/?itemid={item}&exvsurl=1&path=/calendar/item"
