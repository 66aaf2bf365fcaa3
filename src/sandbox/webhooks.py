"""Change-notification subscriptions on mailboxes' events, and their delivery over HTTP.

Shapes and rules from the Graph docs: subscription-post-subscriptions.md,
change-notifications-delivery-webhooks.md (validation handshake, 10 s; delivery, 3 s),
change-notifications-lifecycle-events.md. Deliveries happen on a background thread,
never while the tenant's lock is held.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import requests
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from sandbox import timezones
from sandbox.calendars import Change
from sandbox.directory import Directory
from sandbox.errors import GraphError

log = logging.getLogger(__name__)

MAX_MINUTES = 4230  # Outlook resources (subscription.md, "Subscription lifetime")
CHANGE_TYPES = ("created", "updated", "deleted")
LifecycleEvent = Literal["reauthorizationRequired", "subscriptionRemoved", "missed"]
_EVENTS_RESOURCE = re.compile(
    r"^/?users(?:/|\(')(?P<user>[^/')]+)(?:'\))?/(?:calendar/)?events/?$", re.IGNORECASE
)


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class SubscriptionInput(_Wire):
    """`POST /subscriptions`: the properties a client may set."""

    change_type: str
    notification_url: str
    resource: str
    expiration_date_time: datetime
    client_state: str | None = None
    lifecycle_notification_url: str | None = None
    latest_supported_tls_version: str | None = None
    include_resource_data: bool | None = None
    encryption_certificate: str | None = None
    encryption_certificate_id: str | None = None
    notification_query_options: str | None = None
    notification_url_app_id: str | None = None


class SubscriptionPatch(_Wire):
    """`PATCH /subscriptions/{id}`: renew (and possibly move the endpoint)."""

    expiration_date_time: datetime | None = None
    notification_url: str | None = None


@dataclass
class Subscription:
    """A subscription to one mailbox's events."""

    id: str
    resource: str
    mailbox_id: str
    change_types: tuple[str, ...]
    notification_url: str
    lifecycle_url: str | None
    client_state: str | None
    expiration: datetime
    latest_tls: str
    application_id: str
    creator_id: str

    def to_graph(self) -> dict[str, Any]:
        """The subscription as Graph returns it."""
        return {
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.application_id,
            "changeType": ",".join(self.change_types),
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "notificationQueryOptions": None,
            "lifecycleNotificationUrl": self.lifecycle_url,
            "expirationDateTime": timezones.format_timestamp(self.expiration),
            "creatorId": self.creator_id,
            "includeResourceData": None,
            "latestSupportedTlsVersion": self.latest_tls,
            "encryptionCertificate": None,
            "encryptionCertificateId": None,
            "notificationUrlAppId": None,
        }


@dataclass(frozen=True)
class Delivery:
    """One POST to a subscriber's endpoint."""

    kind: Literal["change", "lifecycle"]
    url: str
    payload: dict[str, Any]


def _extension_error(status: int, reason: str) -> GraphError:
    return GraphError(
        status,
        "ExtensionError",
        f"Operation: Create; Exception: [Status Code: {status}; Reason: {reason}]",
    )


def check_expiration(expiration: datetime, now: datetime) -> datetime:
    """An expiration Graph accepts for an Outlook resource: in the future, at most 4,230 minutes."""
    if expiration.tzinfo is None:
        raise GraphError(400, "InvalidRequest", "expirationDateTime must carry a UTC offset.")
    if expiration <= now:
        raise GraphError(
            400, "InvalidRequest", "Subscription expiration can only be in the future."
        )
    if expiration > now + timedelta(minutes=MAX_MINUTES):
        raise GraphError(
            400,
            "ExtensionError",
            f"Subscription expiration can only be {MAX_MINUTES} minutes in the future.",
        )
    return expiration


def validation_token() -> str:
    """A validation token like Graph's (a sentence, so endpoints must URL-decode it)."""
    return (
        "Validation: Testing client application reachability for subscription "
        f"Request-Id: {uuid.uuid4()}"
    )


def validate_endpoint(url: str, timeout: float) -> str | None:
    """The handshake: POST ?validationToken=...; None when the endpoint echoed it in time."""
    token = validation_token()
    try:
        answer = requests.post(
            url,
            params={"validationToken": token},
            headers={"Content-Type": "text/plain; charset=utf-8"},
            data=b"",
            timeout=timeout,
        )
    except requests.RequestException:
        return (
            "Subscription validation request failed. Notification endpoint must respond "
            "with 200 OK to validation request."
        )
    if answer.status_code != 200:
        return (
            "Subscription validation request failed. Notification endpoint must respond "
            "with 200 OK to validation request."
        )
    if answer.text != token:
        return (
            "Subscription validation request failed. Response must exactly match "
            "validationToken query parameter."
        )
    return None


class Subscriptions:
    """The tenant's subscriptions, indexed by mailbox for matching changes."""

    def __init__(self) -> None:
        self.by_id: dict[str, Subscription] = {}

    def mailbox_of(self, resource: str, directory: Directory) -> str:
        """The mailbox a resource path names; Graph's errors for what it cannot subscribe to."""
        path = resource.split("?")[0]
        if path.strip("/").lower().startswith("me/"):
            raise _extension_error(
                400, "/me request is only valid with delegated authentication flow."
            )
        match = _EVENTS_RESOURCE.match(path)
        if match is None:
            raise GraphError(
                400,
                "InvalidRequest",
                f"The resource '{resource}' is not supported by the sandbox tenant: "
                "subscribe to /users/{id}/events.",
            )
        user = directory.find(match["user"])
        if user is None:
            raise _extension_error(404, f"The requested user '{match['user']}' is invalid.")
        return user.id

    def deliveries(self, changes: list[Change], tenant_id: str, now: datetime) -> list[Delivery]:
        """The notifications a set of changes causes, one POST per subscription."""
        grouped: dict[str, list[dict[str, Any]]] = {}
        for change in changes:
            for sub in self.by_id.values():
                if sub.mailbox_id != change.mailbox_id or sub.expiration <= now:
                    continue
                if change.change_type not in sub.change_types:
                    continue
                path = f"Users/{change.mailbox_id}/Events/{change.event_id}"
                item: dict[str, Any] = {
                    "subscriptionId": sub.id,
                    "subscriptionExpirationDateTime": timezones.format_timestamp(sub.expiration),
                    "changeType": change.change_type,
                    "resource": path,
                    "resourceData": {
                        "@odata.type": "#Microsoft.Graph.Event",
                        "@odata.id": path,
                        "@odata.etag": f'W/"{change.change_key}"',
                        "id": change.event_id,
                    },
                    "tenantId": tenant_id,
                }
                if sub.client_state is not None:
                    item["clientState"] = sub.client_state
                grouped.setdefault(sub.id, []).append(item)
        return [
            Delivery("change", self.by_id[sub_id].notification_url, {"value": items})
            for sub_id, items in grouped.items()
        ]

    def lifecycle(self, sub: Subscription, event: LifecycleEvent, tenant_id: str) -> Delivery:
        """A lifecycle notification (change-notifications-lifecycle-events.md)."""
        assert sub.lifecycle_url is not None
        item: dict[str, Any] = {
            "subscriptionId": sub.id,
            "subscriptionExpirationDateTime": timezones.format_timestamp(sub.expiration),
            "tenantId": tenant_id,
            "clientState": sub.client_state,
            "lifecycleEvent": event,
        }
        return Delivery("lifecycle", sub.lifecycle_url, {"value": [item]})


class Notifier:
    """Posts deliveries from one background thread, and remembers how each went."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._queue: queue.Queue[Delivery | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._outcomes: deque[dict[str, Any]] = deque(maxlen=500)
        self._session = requests.Session()

    def send(self, deliveries: list[Delivery]) -> None:
        """Queue deliveries; they go out in order, after the caller's lock is released."""
        if not deliveries:
            return
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="sandbox-notifier", daemon=True
                )
                self._thread.start()
        for delivery in deliveries:
            self._queue.put(delivery)

    def outcomes(self) -> list[dict[str, Any]]:
        """What was delivered lately and how the endpoints answered."""
        return list(self._outcomes)

    def clear(self) -> None:
        """Forget past outcomes."""
        self._outcomes.clear()

    def stop(self) -> None:
        """End the delivery thread after what is queued."""
        with self._start_lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout=5)
        self._session.close()

    def _run(self) -> None:
        while True:
            delivery = self._queue.get()
            if delivery is None:
                return
            outcome: dict[str, Any] = {
                "kind": delivery.kind,
                "url": delivery.url,
                "payload": delivery.payload,
            }
            try:
                answer = self._session.post(
                    delivery.url, json=delivery.payload, timeout=self.timeout
                )
                outcome["status"] = answer.status_code
            except requests.RequestException as e:
                # Graph retries failed deliveries for hours; the sandbox records and drops them.
                outcome["status"] = None
                outcome["error"] = type(e).__name__
                log.info("notification to %s failed: %s", delivery.url, type(e).__name__)
            self._outcomes.append(outcome)
