"""Signed webhooks to the CRM, delivered through the outbox.

Body: ``{"id", "type", "occurred_at", "data"}``. Headers: ``X-DealBridge-Event`` (the type),
``X-DealBridge-Delivery`` (the id; the same on every retry, so the CRM can drop repeats) and
``X-DealBridge-Signature: sha256=<hex>``, the HMAC-SHA256 of the raw body with the shared
secret. Changes the CRM made itself through the API are not echoed back.

The outbox payload is :class:`WebhookDelivery`, the body as sent. Delivery is at least once:
an answer lost after the CRM may have received the body (a timeout, a reset, a 502/504) is
retried with the same delivery id and counted on the outbox item (``result.lost_answers``);
the CRM drops the repeat by that id.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import requests
from flask import Flask
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.crm.events import EVENTS, InteractionUpdated, RepDeactivated, WebhookEvent
from connector.outbox import (
    Delivered,
    Delivery,
    Failed,
    Outcome,
    RetryLater,
    Uncertain,
    enqueue,
    register_handler,
    stored,
)
from connector.settings import SETTINGS_EXTENSION, Settings
from connector.signals import meeting_deal_chosen, rep_changed, settings_of
from connector.store.models import Deal, Interaction, OutboxItem, Rep

log = logging.getLogger(__name__)
KIND = "webhook"
EVENT_TYPES = tuple(event.TYPE for event in EVENTS)
LOST_ANSWER = {502, 504}
"""A proxy's answers that may come after the CRM received the body."""


class WebhookDelivery(BaseModel):
    """The outbox payload of kind ``webhook``: the body, exactly as it is signed and sent."""

    id: str
    """The delivery id, the same on every retry (``X-DealBridge-Delivery``)."""
    type: str
    occurred_at: str
    data: dict[str, Any]


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str) -> bool:
    """What a CRM does on receipt (documented; used by the tests)."""
    return hmac.compare_digest(sign(secret, body), signature)


def notify(
    session: Session,
    settings: Settings,
    event: WebhookEvent,
    *,
    key: str,
    now: dt.datetime,
) -> OutboxItem | None:
    """Queue one webhook (once per key); its type is the event's. Nothing without a URL."""
    if not settings.webhook_url:
        return None
    delivery_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"dealbridge:{key}"))
    payload = WebhookDelivery(
        id=delivery_id,
        type=event.TYPE,
        occurred_at=now.isoformat().replace("+00:00", "Z"),
        data=event.data(),
    )
    return enqueue(session, KIND, f"webhook:{key}", payload)


def deliver(
    app: Flask, items: Sequence[Delivery[WebhookDelivery]]
) -> Iterator[tuple[int, Outcome]]:
    """Outbox handler for ``webhook``: one signed POST per item."""
    settings: Settings = app.extensions[SETTINGS_EXTENSION]
    if not settings.webhook_url or settings.webhook_secret is None:
        for item in items:
            yield item.id, RetryLater("DEALBRIDGE_WEBHOOK_URL or _SECRET is not set")
        return
    secret = settings.webhook_secret.get_secret_value()
    with requests.Session() as http:
        for item in items:
            body = json.dumps(stored(item.payload), separators=(",", ":"), sort_keys=True).encode()
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "DealBridge-Webhooks/1",
                "X-DealBridge-Event": item.payload.type,
                "X-DealBridge-Delivery": item.payload.id,
                "X-DealBridge-Signature": sign(secret, body),
            }
            yield item.id, _post(http, settings.webhook_url, body, headers)


def _post(http: requests.Session, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
    try:
        answer = http.post(url, data=body, headers=headers, timeout=10)
    except requests.ConnectionError as exc:
        if isinstance(exc, requests.ConnectTimeout) or "NewConnectionError" in str(exc):
            return RetryLater(f"{type(exc).__name__}: could not reach the CRM")
        return Uncertain(f"{type(exc).__name__}: the CRM's answer was lost")
    except requests.RequestException as exc:  # a read timeout: the CRM may have it
        return Uncertain(f"{type(exc).__name__}: the CRM's answer was lost")
    if 200 <= answer.status_code < 300:
        return Delivered({"status": answer.status_code})
    if answer.status_code in LOST_ANSWER:
        return Uncertain(f"CRM answered {answer.status_code}", _retry_after(answer))
    if answer.status_code in {408, 425, 429} or answer.status_code >= 500:
        return RetryLater(f"CRM answered {answer.status_code}", _retry_after(answer))
    return Failed(f"CRM answered {answer.status_code}: {answer.text[:300]}")


def _retry_after(answer: requests.Response) -> dt.timedelta | None:
    value = answer.headers.get("Retry-After")
    try:
        return dt.timedelta(seconds=float(value)) if value else None
    except ValueError:
        return None


def on_meeting_deal_chosen(
    session: Session, *, interaction: Interaction, deal: str, by: str, now: dt.datetime
) -> None:
    """``interaction.updated`` for a deal chosen in the API or on a Teams card (one shape)."""
    event = InteractionUpdated(
        interaction=interaction.id,
        deal=deal,
        status=interaction.status,
        by=by,
        change="deal_chosen",
    )
    key = f"interaction.chosen:{interaction.id}:{deal}:{now.isoformat()}"
    notify(session, settings_of(session), event, key=key, now=now)


def on_rep_changed(
    session: Session, *, rep: Rep, active: bool, deleted: bool, now: dt.datetime
) -> None:
    """``rep.deactivated``: the CRM reassigns her open deals (DealBridge does not guess who)."""
    if active:
        return
    owned = select(Deal.crm_id).where(Deal.owner_email == rep.email, Deal.status == "open")
    at = now.isoformat().replace("+00:00", "Z")
    event = RepDeactivated(
        rep=rep.email, deals=sorted(session.scalars(owned)), deleted=deleted, at=at
    )
    notify(session, settings_of(session), event, key=f"rep.deactivated:{rep.email}:{at}", now=now)


def init_app(app: Flask) -> None:
    """The webhook outbox handler, and the domain signals that become webhooks."""
    register_handler(app, KIND, deliver, payload=WebhookDelivery)
    meeting_deal_chosen.connect(on_meeting_deal_chosen)  # once per process: connect is idempotent
    rep_changed.connect(on_rep_changed)
