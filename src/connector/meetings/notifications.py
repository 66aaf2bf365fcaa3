"""Graph change notifications and lifecycle events, and the subscriptions behind them.

``POST /api/graph/notifications``: answer the validation handshake; otherwise check every
notification's ``clientState`` against the hash we keep, mark the mailbox for a delta round,
and answer 202 at once (Graph wants an answer within 3 s). The round runs in a one-off job:
at once for a notification that finds the mailbox quiet (the leading edge); what comes
during or soon after a round is one trailing round, never put off past the ceiling
(``sync.next_round_at``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal, Protocol, TypeVar

from flask import Blueprint, Flask, Response, current_app, json, request
from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from connector.errors import BadRequest, Forbidden
from connector.jobs import run_task, schedule
from connector.meetings import sync
from connector.meetings.sync import mailbox_for, new_client_state
from connector.microsoft365 import Failure, NotConfigured, graph_client
from connector.outbox import Delivered, Delivery, Outcome, RetryLater, enqueue, register_handler
from connector.settings import SETTINGS_EXTENSION, Settings
from connector.signals import rep_changed
from connector.store.db import get_store, write_lock
from connector.store.models import Mailbox, MailboxEvent, Rep, utcnow
from graph_sync.errors import GraphSyncError
from graph_sync.errors import NotFound as GraphNotFound
from graph_sync.meetings import (
    ChangeNotificationCollection,
    LifecycleNotificationCollection,
    create_subscription,
    delete_subscription,
    list_subscriptions,
    renew_subscription,
)

log = logging.getLogger(__name__)


class _Notification(Protocol):
    @property
    def subscription_id(self) -> str: ...

    @property
    def client_state(self) -> str | None: ...


N = TypeVar("N", bound=_Notification)
graph_hooks = Blueprint("graph_hooks", __name__, url_prefix="/api/graph")
RENEW_BEFORE = dt.timedelta(hours=24)
SUBSCRIPTION_MINUTES = 4230  # the most Outlook events allow (M365_NOTES.md)


def _validation_answer() -> Response | None:
    token = request.args.get("validationToken")
    if token is None:
        return None
    # Graph sends the token URL-encoded; Flask has decoded it. Echo it as plain text.
    return Response(token, status=200, mimetype="text/plain")


def _state_ok(mailbox: Mailbox | None, received: str | None) -> bool:
    if mailbox is None or mailbox.client_state_hash is None or not received:
        return False
    digest = hashlib.sha256(received.encode()).hexdigest()
    return hmac.compare_digest(digest, mailbox.client_state_hash)


def _verified(session: Session, notes: Sequence[N]) -> Iterator[tuple[N, Mailbox | None]]:
    """Each notification with its mailbox, or None when its clientState is not ours. The
    mailbox is read to be written back (``needs_sync``, ``notified_at``): locked (SQLite: the
    write lock), so notifications arriving together see each other; unlocked, two of a burst
    both found the mailbox quiet and both asked for a round at once."""
    write_lock(session)
    for note in notes:
        mailbox = session.scalar(
            select(Mailbox).where(Mailbox.subscription_id == note.subscription_id).with_for_update()
        )
        yield note, mailbox if _state_ok(mailbox, note.client_state) else None


def _body() -> dict[str, Any]:
    try:
        data = json.loads(request.get_data() or b"null")
    except ValueError as exc:
        raise BadRequest("the body is not JSON") from exc
    if not isinstance(data, dict):
        raise BadRequest("expected a JSON object with a value list")
    return data


@graph_hooks.post("/notifications")
def notifications() -> Response:
    """Validation handshake, or change notifications (clientState verified) → 202."""
    answer = _validation_answer()
    if answer is not None:
        return answer
    try:
        batch = ChangeNotificationCollection.model_validate(_body())
    except ValidationError as exc:
        raise BadRequest("not a Graph change-notification payload") from exc
    now = utcnow()
    settings: Settings = current_app.extensions[SETTINGS_EXTENSION]
    accepted: dict[str, dt.datetime] = {}  # each mailbox once a batch, with when to read it
    refused = 0
    with get_store().session() as session:
        for _note, mailbox in _verified(session, batch.value):
            if mailbox is None:
                refused += 1
            elif mailbox.rep_email not in accepted:
                accepted[mailbox.rep_email] = sync.notified(mailbox, settings, now)
    if refused and not accepted:
        log.warning("refused %d change notifications with a wrong clientState", refused)
        raise Forbidden("clientState does not match a subscription of ours")
    for email, when in accepted.items():
        schedule_sync(current_app._get_current_object(), email, when)  # type: ignore[attr-defined]
    return Response(status=202)


@graph_hooks.post("/lifecycle")
def lifecycle() -> Response:
    """reauthorizationRequired → renew; subscriptionRemoved → recreate; missed → resync."""
    answer = _validation_answer()
    if answer is not None:
        return answer
    try:
        batch = LifecycleNotificationCollection.model_validate(_body())
    except ValidationError as exc:
        raise BadRequest("not a Graph lifecycle-notification payload") from exc
    now = utcnow()
    refused = 0
    with get_store().session() as session:
        for note, mailbox in _verified(session, batch.value):
            if mailbox is None:
                refused += 1
                continue
            event = note.lifecycle_event
            if event == "reauthorizationRequired":
                mailbox.subscription_expires_at = now  # the subscription job renews it now
            elif event == "subscriptionRemoved":
                mailbox.subscription_id = None
                mailbox.client_state_hash = None
                mailbox.needs_sync = True
            elif event == "missed":
                mailbox.needs_sync = True
            mailbox.notified_at = now
    if refused and refused == len(batch.value):
        raise Forbidden("clientState does not match a subscription of ours")
    return Response(status=202)


MAILBOX_ROUND = "mailbox_round"  # the one-off task meetings.init_app registers


def schedule_sync(
    app: Flask,
    email: str,
    when: dt.datetime | None = None,
    *,
    not_before: dt.datetime | None = None,
) -> None:
    """The mailbox's next round as a one-off task at ``when`` (default: when
    :func:`sync.next_round_at` says, if it waits for one), not before ``not_before``. One
    task a mailbox: a later call moves it, and the rule's ceiling keeps a busy mailbox from
    being put off for long.

    On a shared database (PostgreSQL) the task is a ``job_runs`` row any worker takes
    (``jobs.schedule``), so a web process that only serves still has its notifications read,
    and never reads a mailbox itself; embedded (SQLite) it is the one process's APScheduler
    job."""
    shared = get_store(app).engine.dialect.name != "sqlite"
    scheduler = app.extensions.get("dealbridge.scheduler")
    if scheduler is None and not shared:
        return
    now = utcnow()
    if when is None:
        settings: Settings = app.extensions[SETTINGS_EXTENSION]
        with get_store(app).session() as session:
            mailbox = session.scalar(select(Mailbox).where(Mailbox.rep_email == email))
            if mailbox is not None and not mailbox.needs_sync:
                return  # nothing came during the round: the poll is the periodic job's
            when = now if mailbox is None else sync.next_round_at(mailbox, settings, now)
    if not_before is not None:
        when = max(when, not_before)
    if shared:
        schedule(app, MAILBOX_ROUND, email, max(when, now))
        return
    assert scheduler is not None
    scheduler.add_job(
        run_task,
        "date",
        run_date=max(when, now),
        args=[app.name, MAILBOX_ROUND, email],
        id=f"sync:{email}",
        replace_existing=True,
        misfire_grace_time=600,
        max_instances=2,  # rescheduled from inside the running one; sync_mailbox never overlaps
    )


def ensure_subscriptions(
    app: Flask, now: dt.datetime | None = None, *, only: str | None = None
) -> dict[str, str]:
    """One live subscription per active rep's mailbox (or only this rep's); renewed a day
    before it ends.

    Whatever runs it (the periodic job the leader dispatches, a rep's outbox item, the demo;
    in any number of processes), a mailbox's subscription is created or renewed under that
    mailbox's lock (``_subscription_lock``) and read again under it, so one is made; a
    duplicate of ours found on Graph (``GET /subscriptions``: same notification URL, same
    mailbox, not the one we keep) is deleted."""
    settings: Settings = app.extensions[SETTINGS_EXTENSION]
    now = now or utcnow()
    outcome: dict[str, str] = {}
    if not settings.public_url:
        return outcome
    notify_url = f"{settings.public_url}/api/graph/notifications"
    lifecycle_url = f"{settings.public_url}/api/graph/lifecycle"
    client = graph_client(app)
    store = get_store(app)
    with store.session() as session:
        reps = [
            (r.email, r.entra_id or r.email)
            for r in session.scalars(select(Rep).where(Rep.active.is_(True)))
            if only is None or r.email == only
        ]
    listed = _ours_on_graph(client, notify_url) if reps else {}
    for email, user in reps:
        with _subscription_lock(app, email):
            outcome[email] = _ensure_one(app, client, email, user, notify_url, lifecycle_url, now)
            _delete_duplicates(app, client, email, listed.get(email.lower(), []))
            if user.lower() != email.lower():
                _delete_duplicates(app, client, email, listed.get(user.lower(), []))
    return outcome


def _ensure_one(
    app: Flask,
    client: Any,
    email: str,
    user: str,
    notify_url: str,
    lifecycle_url: str,
    now: dt.datetime,
) -> str:
    """One mailbox (under its lock): alive, renewed, created, or why it failed."""
    store = get_store(app)
    with store.session() as session:
        mailbox = mailbox_for(session, email)
        current, expires = mailbox.subscription_id, mailbox.subscription_expires_at
    try:
        if current and expires and expires - now > RENEW_BEFORE:
            return "alive"
        if current:
            try:
                sub = renew_subscription(client, current, SUBSCRIPTION_MINUTES)
                _store_subscription(app, email, sub.id, sub.expiration_date_time, None)
                return "renewed"
            except GraphNotFound:
                pass  # gone on Graph's side: create a new one
        state, digest = new_client_state()
        sub = create_subscription(
            client, user, notify_url, lifecycle_url, state, SUBSCRIPTION_MINUTES
        )
        _store_subscription(app, email, sub.id, sub.expiration_date_time, digest)
        return "created"
    except GraphSyncError as exc:
        with store.session() as session:
            mailbox = mailbox_for(session, email)
            mailbox.last_error = f"subscription: {exc}"[:2000]
            failure = Failure.of(exc)
            mailbox.last_error_code = failure.code
            mailbox.missing_permission = failure.missing_permission
        log.warning("subscription for %s failed: %s", email, exc)
        return f"failed: {exc}"


def _ours_on_graph(client: Any, notify_url: str) -> dict[str, list[str]]:
    """Our subscriptions on Graph (those posting to our notification URL), by the mailbox
    (user id or UPN, lower case) of their ``/users/{mailbox}/events`` resource; empty when
    Graph cannot list them now (the next run looks again)."""
    try:
        subscriptions = list_subscriptions(client)
    except GraphSyncError as exc:
        log.warning("could not list the subscriptions on Graph: %s", exc)
        return {}
    found: dict[str, list[str]] = {}
    for sub in subscriptions:
        parts = sub.resource.strip("/").split("/")
        if sub.notification_url != notify_url or len(parts) != 3:
            continue  # another deployment's (or another kind): not ours to touch
        if parts[0].lower() == "users" and parts[2].lower() == "events":
            found.setdefault(parts[1].lower(), []).append(sub.id)
    return found


def _delete_duplicates(app: Flask, client: Any, email: str, listed: list[str]) -> None:
    """Delete what Graph holds for this mailbox besides the subscription we keep (under the
    mailbox's lock, so none is one another process has just made and not yet stored)."""
    with get_store(app).sessions() as session:
        mailbox = session.scalar(select(Mailbox).where(Mailbox.rep_email == email))
        kept = None if mailbox is None else mailbox.subscription_id
    for sub_id in listed:
        if kept is None or sub_id.lower() == kept.lower():
            continue
        try:
            delete_subscription(client, sub_id)
        except GraphSyncError as exc:
            log.warning("duplicate subscription %s of %s not deleted: %s", sub_id, email, exc)
            continue
        log.warning(
            "deleted a duplicate subscription of %s on Graph (%s; kept %s)", email, sub_id, kept
        )


_LOCAL_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_LOCAL_LOCKS_GUARD = threading.Lock()


@contextmanager
def _subscription_lock(app: Flask, email: str) -> Iterator[None]:
    """One holder at a time makes or renews this mailbox's subscription. PostgreSQL: a
    transaction advisory lock (across every process; released when the transaction ends,
    or when its connection dies); SQLite: a lock of this process (one process owns the
    file)."""
    store = get_store(app)
    if store.engine.dialect.name != "postgresql":
        with _LOCAL_LOCKS_GUARD:
            lock = _LOCAL_LOCKS.setdefault((str(store.engine.url), email), threading.Lock())
        with lock:
            yield
        return
    digest = hashlib.sha256(f"dealbridge.subscription:{email}".encode()).digest()
    key = int.from_bytes(digest[:8], "big", signed=True)
    with store.engine.connect() as connection, connection.begin():
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
        yield


def _store_subscription(
    app: Flask, email: str, sub_id: str, expires: dt.datetime, digest: str | None
) -> None:
    with get_store(app).session() as session:
        mailbox = mailbox_for(session, email)
        mailbox.subscription_id = sub_id
        mailbox.subscription_expires_at = expires
        if digest is not None:
            mailbox.client_state_hash = digest


# --- a rep who leaves, or comes back ---------------------------------------------------------

SUBSCRIPTION_KIND = "subscription"
"""Outbox kind: delete a rep's subscription, or subscribe her mailbox again."""


class SubscriptionChange(BaseModel):
    """The ``subscription`` outbox payload."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["subscribe", "delete"]
    rep: str
    at: str
    subscription_id: str | None = None


def on_rep_changed(
    session: Session, *, rep: Rep, active: bool, deleted: bool, now: dt.datetime
) -> None:
    """``rep_changed``: an inactive rep's mailbox is no longer read. Her subscription is
    deleted through the outbox (retried until Graph agrees) and her mailbox's delta state
    forgotten now, so no round and no notification reads it; back, she is subscribed again
    and her calendar read from the start of the window."""
    key = f"{SUBSCRIPTION_KIND}:{rep.email}"
    at = now.isoformat()
    if active:
        enqueue(
            session,
            SUBSCRIPTION_KIND,
            key,
            SubscriptionChange(action="subscribe", rep=rep.email, at=at),
            replace=True,
        )
        return
    mailbox = session.scalar(select(Mailbox).where(Mailbox.rep_email == rep.email))
    if mailbox is None:
        return
    if mailbox.subscription_id:
        payload = SubscriptionChange(
            action="delete", rep=rep.email, subscription_id=mailbox.subscription_id, at=at
        )
        enqueue(session, SUBSCRIPTION_KIND, key, payload, replace=True)
    for event in session.scalars(select(MailboxEvent).where(MailboxEvent.mailbox_id == mailbox.id)):
        session.delete(event)
    # The events' DELETE first: no relationship orders it, and the mailbox's ON DELETE CASCADE
    # would take them, leaving SQLAlchemy's DELETE 0 rows (an SAWarning; a 500 in the tests).
    session.flush()
    session.delete(mailbox)


def deliver_subscription_changes(
    app: Flask, items: Sequence[Delivery[SubscriptionChange]]
) -> Iterator[tuple[int, Outcome]]:
    """Outbox handler for ``subscription`` (deleting or creating one is idempotent)."""
    for item in items:
        change = item.payload
        try:
            if change.action == "delete" and change.subscription_id:
                gone = delete_subscription(graph_client(app), change.subscription_id)
                yield item.id, Delivered({"deleted": gone})
                continue
            result = ensure_subscriptions(app, only=change.rep).get(change.rep, "not an active rep")
        except (GraphSyncError, NotConfigured) as e:
            yield item.id, RetryLater(f"subscription of {change.rep}: {e}")
            continue
        if result.startswith("failed"):
            yield item.id, RetryLater(result)
        else:
            yield item.id, Delivered({"subscription": result})


def init_app(app: Flask) -> None:
    """The outbox handler for subscription changes, and the rep signal that queues them."""
    register_handler(
        app, SUBSCRIPTION_KIND, deliver_subscription_changes, payload=SubscriptionChange
    )
    rep_changed.connect(on_rep_changed)  # once per process: connect is idempotent
