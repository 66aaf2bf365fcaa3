"""Reading meetings: calendarView delta rounds per mailbox, and change-notification subscriptions.

Delta pages are parsed from raw bytes with our own models: msgraph-sdk's typed parse costs
~7 ms per event (ARCHITECTURE.md, msgraph-sdk-python #584).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import msgspec
from pydantic import BaseModel, ConfigDict, Field, model_validator

from graph_sync.client import GraphClient
from graph_sync.errors import GraphError, NotFound, SyncStateExpired, UnreadablePage
from graph_sync.models import (
    GraphBody,
    GraphEvent,
    GraphModel,
    Meeting,
    decode_event,
    decode_page,
)
from graph_sync.timezones import graph_date_time

log = logging.getLogger(__name__)

CALENDARS_READ = "Calendars.Read"
MAX_SUBSCRIPTION_MINUTES = 4230  # Outlook event subscriptions (subscription resource docs)
_MAILBOX_OF_RESOURCE = re.compile(r"^/?users/([^/]+)/", re.IGNORECASE)


class CalendarWindow(BaseModel):
    """The date range a delta round covers; a new window is a new round (its own deltaLink)."""

    model_config = ConfigDict(frozen=True)

    start: datetime
    """Inclusive start (aware)."""
    end: datetime
    """Exclusive end (aware)."""

    @model_validator(mode="after")
    def _aware_and_ordered(self) -> CalendarWindow:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("window bounds must be aware datetimes")
        if self.end <= self.start:
            raise ValueError("window end must be after its start")
        return self

    @classmethod
    def around(cls, now: datetime, *, days_back: int = 30, days_ahead: int = 90) -> CalendarWindow:
        """The rolling window: `days_back` before `now` to `days_ahead` after, whole UTC days."""
        today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return cls(
            start=today - timedelta(days=days_back), end=today + timedelta(days=days_ahead + 1)
        )

    def query(self) -> dict[str, str]:
        """`startDateTime`/`endDateTime` in UTC, as calendarView wants them."""
        return {
            "startDateTime": self.start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "endDateTime": self.end.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }

    def overlaps(self, meeting: Meeting) -> bool:
        """Whether the meeting falls (at least partly) inside the window."""
        return meeting.end > self.start and meeting.start < self.end


@dataclass(frozen=True, slots=True, kw_only=True)
class DeltaRound:
    """What one delta round found for one mailbox (an internal value, like its `Meeting`s:
    its pages were validated as they came)."""

    mailbox: str
    """The mailbox read."""
    meetings: list[Meeting]
    """Created or changed meetings inside the window (one per event id, last state)."""
    removed: list[str]
    """Event ids deleted, or moved out of the window."""
    removed_reasons: dict[str, str] = field(default_factory=dict)
    """Why each id was removed: `deleted`, `changed` (Graph's reason) or `outside_window`."""
    delta_link: str
    """Store it; the next round starts from it."""
    pages: int
    """Pages (Graph requests) read."""
    restarted: bool = False
    """The stored deltaLink had expired and the round started again from the initial query:
    the connector should reconcile (everything in the window came back)."""


DELTA_PAGE_SIZE = 200
"""Events a delta page asks for (``Prefer: odata.maxpagesize``; a preference: Exchange may send
fewer, and the round follows the nextLinks whatever it sends). 200 rather than 50 halves the
requests of a busy mailbox's first round (6.1 -> 3.1 for 200 meetings), and their CPU with
them: each costs about 2 ms through kiota and httpx, so reading the pages fell from 100 to
54-62 us an event (``docs/performance.md``)."""


def _delta_headers(page_size: int) -> dict[str, str]:
    return {"Prefer": f'odata.maxpagesize={page_size}, outlook.timezone="UTC"'}


async def read_delta_async(
    client: GraphClient,
    mailbox: str,
    window: CalendarWindow,
    delta_link: str | None,
    *,
    page_size: int = DELTA_PAGE_SIZE,
) -> DeltaRound:
    """`read_delta`, on the client's loop (to read many mailboxes at once)."""
    try:
        return await _round(client, mailbox, window, delta_link, page_size, restarted=False)
    except SyncStateExpired:
        if delta_link is None:
            raise
        log.info("delta state expired for %s: restarting the round", mailbox)
        return await _round(client, mailbox, window, None, page_size, restarted=True)


def read_delta(
    client: GraphClient,
    mailbox: str,
    window: CalendarWindow,
    delta_link: str | None,
    *,
    page_size: int = DELTA_PAGE_SIZE,
) -> DeltaRound:
    """One calendarView delta round for `mailbox`: the initial one when `delta_link` is None,
    else the changes since it. Follows nextLinks (even past empty pages) to the deltaLink; on
    an expired token restarts once from the initial query (`restarted=True`)."""
    return client.bridge.run(
        read_delta_async(client, mailbox, window, delta_link, page_size=page_size), None
    )


async def _round(
    client: GraphClient,
    mailbox: str,
    window: CalendarWindow,
    delta_link: str | None,
    page_size: int,
    *,
    restarted: bool,
) -> DeltaRound:
    url = delta_link or f"/users/{mailbox}/calendarView/delta"
    params = None if delta_link else window.query()
    headers = _delta_headers(page_size)
    meetings: dict[str, Meeting] = {}
    removed: dict[str, str] = {}
    masters: dict[str, GraphEvent] = {}
    bare: dict[str, GraphEvent] = {}
    pages = 0
    while True:
        answer = await client.send_ok(
            "GET",
            url,
            headers=headers,
            params=params,
            mailbox=mailbox,
            permission=CALENDARS_READ,
        )
        pages += 1
        try:
            page = decode_page(answer.content)
        except msgspec.DecodeError as e:
            raise UnreadablePage(mailbox, str(e)) from e
        for event in page.value:
            if event.removed is not None:
                meetings.pop(event.id, None)
                bare.pop(event.id, None)
                removed[event.id] = event.removed.reason or "deleted"
                continue
            if event.type == "seriesMaster":
                masters[event.id] = event
                continue
            if event.start is None or event.end is None:
                continue
            if event.type == "occurrence" and event.series_master_id and not event.subject:
                # Delta sends occurrences bare (id, type, seriesMasterId, start, end): their
                # details are the master's (microsoft-graph-docs-contrib#34). Filled in below.
                bare[event.id] = event
                removed.pop(event.id, None)
                continue
            _keep(mailbox, event, masters, window, meetings, removed)
        if page.next_link:
            url, params = page.next_link, None
            continue
        if page.delta_link:
            for event in bare.values():
                master = masters.get(event.series_master_id or "")
                if master is None:
                    master = await _master(client, mailbox, event.series_master_id or "")
                    if master is None:
                        continue  # the series is gone; its removal comes in a later round
                    masters[master.id] = master
                _keep(mailbox, _from_master(event, master), masters, window, meetings, removed)
            return DeltaRound(
                mailbox=mailbox,
                meetings=list(meetings.values()),
                removed=list(removed),
                removed_reasons=removed,
                delta_link=page.delta_link,
                pages=pages,
                restarted=restarted,
            )
        raise GraphError(502, "NoDeltaLink", "a delta page had neither nextLink nor deltaLink")


def _keep(
    mailbox: str,
    event: GraphEvent,
    masters: dict[str, GraphEvent],
    window: CalendarWindow,
    meetings: dict[str, Meeting],
    removed: dict[str, str],
) -> None:
    master = masters.get(event.series_master_id or "")
    meeting = Meeting.from_event(mailbox, event, master.i_cal_u_id if master else None)
    if not window.overlaps(meeting):
        meetings.pop(event.id, None)
        removed[event.id] = "outside_window"
        return
    removed.pop(event.id, None)
    meetings[event.id] = meeting


_OWN_FIELDS = {"id", "type", "start", "end", "series_master_id", "original_start", "removed"}


def _from_master(occurrence: GraphEvent, master: GraphEvent) -> GraphEvent:
    """A bare occurrence completed with its series master's details."""
    inherited = {
        name: getattr(master, name)
        for name in GraphEvent.__struct_fields__
        if name not in _OWN_FIELDS and name != "i_cal_u_id"
    }
    return msgspec.structs.replace(occurrence, **inherited)


async def _master(client: GraphClient, mailbox: str, master_id: str) -> GraphEvent | None:
    """A series master not seen in this round (a later round sends only what changed)."""
    if not master_id:
        return None
    try:
        answer = await client.send_ok(
            "GET",
            f"/users/{mailbox}/events/{master_id}",
            mailbox=mailbox,
            permission=CALENDARS_READ,
        )
    except NotFound:
        return None
    try:
        return decode_event(answer.content)
    except msgspec.DecodeError as e:
        raise UnreadablePage(mailbox, f"a series master: {e}") from e


# --- subscriptions ---------------------------------------------------------------------------


class Subscription(GraphModel):
    """A Graph change-notification subscription."""

    id: str
    """Subscription id."""
    resource: str
    """What it watches, e.g. `/users/{id}/events`."""
    change_type: str
    """`created,updated,deleted`."""
    notification_url: str
    """Where Graph posts change notifications."""
    lifecycle_notification_url: str | None = None
    """Where Graph posts lifecycle notifications."""
    expiration_date_time: datetime
    """When it expires (renew before)."""
    client_state: str | None = None
    """Secret echoed in each notification."""


def _expiry(minutes: int) -> str:
    minutes = max(1, min(minutes, MAX_SUBSCRIPTION_MINUTES))
    return graph_date_time(datetime.now(UTC) + timedelta(minutes=minutes)) + "Z"


class SubscriptionRequest(GraphBody):
    """`POST /subscriptions` (subscription-post-subscriptions.md)."""

    change_type: str
    """Comma-separated: `created,updated,deleted`."""
    notification_url: str
    """Where Graph posts changes (validated first with a handshake)."""
    lifecycle_notification_url: str
    """Where Graph posts `reauthorizationRequired`, `missed` and `subscriptionRemoved`."""
    resource: str
    """`/users/{id}/events`."""
    expiration_date_time: str
    """At most 4,230 minutes ahead for Outlook events."""
    client_state: str
    """Echoed in every notification; we keep only its hash."""


class SubscriptionRenewal(GraphBody):
    """`PATCH /subscriptions/{id}`: a new expiry."""

    expiration_date_time: str
    """At most 4,230 minutes ahead for Outlook events."""


def create_subscription(
    client: GraphClient,
    mailbox: str,
    notification_url: str,
    lifecycle_url: str,
    client_state: str,
    minutes: int = MAX_SUBSCRIPTION_MINUTES,
) -> Subscription:
    """Subscribe to a mailbox's events (created, updated, deleted); Graph first validates
    `notification_url` with a handshake the connector answers."""
    body = SubscriptionRequest(
        change_type="created,updated,deleted",
        notification_url=notification_url,
        lifecycle_notification_url=lifecycle_url,
        resource=f"/users/{mailbox}/events",
        expiration_date_time=_expiry(minutes),
        client_state=client_state,
    )
    raw = client.post_json("/subscriptions", body, permission=CALENDARS_READ)
    return Subscription.model_validate(raw)


def renew_subscription(
    client: GraphClient, subscription_id: str, minutes: int = MAX_SUBSCRIPTION_MINUTES
) -> Subscription:
    """Push the expiry `minutes` ahead (at most 4,230 for Outlook events)."""
    raw = client.patch_json(
        f"/subscriptions/{subscription_id}",
        SubscriptionRenewal(expiration_date_time=_expiry(minutes)),
        permission=CALENDARS_READ,
    )
    return Subscription.model_validate(raw)


def list_subscriptions(client: GraphClient) -> list[Subscription]:
    """The app's subscriptions (`GET /subscriptions`, every page)."""
    found: list[Subscription] = []
    url: str | None = "/subscriptions"
    while url:
        raw = client.get_json(url, permission=CALENDARS_READ)
        found += [Subscription.model_validate(item) for item in raw.get("value", [])]
        url = raw.get("@odata.nextLink")
    return found


def delete_subscription(client: GraphClient, subscription_id: str) -> bool:
    """Delete a subscription; False when it was already gone."""
    try:
        client.delete(f"/subscriptions/{subscription_id}")
    except NotFound:
        return False
    return True


class ResourceData(GraphModel):
    """What changed: the event's id and OData annotations."""

    id: str | None = None
    """Event id."""
    odata_type: str | None = Field(default=None, alias="@odata.type")
    """`#Microsoft.Graph.Event`."""
    odata_id: str | None = Field(default=None, alias="@odata.id")
    """`Users/{id}/Events/{id}`."""
    odata_etag: str | None = Field(default=None, alias="@odata.etag")
    """The event's etag."""


class ChangeNotification(GraphModel):
    """One change Graph tells us about."""

    subscription_id: str
    """Which subscription."""
    client_state: str | None = None
    """Must match the one we set (the connector compares it with the hash it keeps)."""
    change_type: str
    """created, updated or deleted."""
    resource: str
    """`Users/{id}/Events/{id}`."""
    subscription_expiration_date_time: datetime | None = None
    """The subscription's expiry."""
    tenant_id: str | None = None
    """The tenant."""
    resource_data: ResourceData | None = None
    """The event's id."""

    @property
    def mailbox(self) -> str | None:
        """The user id (or UPN) whose mailbox changed, from the resource path."""
        found = _MAILBOX_OF_RESOURCE.match(self.resource)
        return found.group(1) if found else None


class ChangeNotificationCollection(GraphModel):
    """The body Graph POSTs to the notification URL."""

    value: list[ChangeNotification]
    """The notifications."""


class LifecycleNotification(GraphModel):
    """reauthorizationRequired, subscriptionRemoved or missed."""

    subscription_id: str
    """Which subscription."""
    lifecycle_event: str
    """reauthorizationRequired, subscriptionRemoved or missed."""
    client_state: str | None = None
    """Must equal the one we set."""
    subscription_expiration_date_time: datetime | None = None
    """The subscription's expiry."""
    tenant_id: str | None = None
    """The tenant."""
    resource: str | None = None
    """What it watches (when given)."""


class LifecycleNotificationCollection(GraphModel):
    """The body Graph POSTs to the lifecycle URL."""

    value: list[LifecycleNotification]
    """The notifications."""
