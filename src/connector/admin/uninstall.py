"""Taking DealBridge out of a tenant, and erasing a person: the admin commands behind
``dealbridge uninstall [--dry-run]`` and ``dealbridge erase-person EMAIL [--dry-run]``.

Uninstall is plan-then-apply: the plan lists every reminder event DealBridge wrote to a rep's
calendar (the event ids it stored) and every Graph subscription it holds; applying deletes
them through Graph, one by one, and clears what the store remembers of each, so a second run
only does what the first could not (an event already gone counts as removed). Stop
``dealbridge serve`` first: a running service would subscribe again and write new events.
Removing the Teams app and revoking the admin consent are done in the Teams admin center and
in Entra (docs/admin-guide.md, "Offboarding, erasure and uninstall").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import click
from flask import Flask
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import select
from sqlalchemy.engine import make_url

from connector.api.schemas import Email
from connector.deals.erasure import apply_erasure, plan_erasure
from connector.microsoft365 import graph_client
from connector.settings import SETTINGS_EXTENSION, Settings
from connector.store.db import get_store
from connector.store.models import Mailbox, Reminder
from graph_sync.calendar import delete_event
from graph_sync.errors import GraphSyncError
from graph_sync.errors import NotFound as GraphNotFound
from graph_sync.meetings import delete_subscription


@dataclass(frozen=True)
class CalendarEvent:
    reminder_id: int
    mailbox: str
    event_id: str


@dataclass(frozen=True)
class HeldSubscription:
    rep: str
    subscription_id: str


@dataclass
class UninstallPlan:
    events: list[CalendarEvent] = field(default_factory=list)
    subscriptions: list[HeldSubscription] = field(default_factory=list)


def plan_uninstall(app: Flask) -> UninstallPlan:
    """What DealBridge holds in Microsoft 365, as the store remembers it."""
    plan = UninstallPlan()
    with get_store(app).session() as session:
        for reminder in session.scalars(
            select(Reminder).where(Reminder.calendar_event_id.is_not(None)).order_by(Reminder.id)
        ):
            where = reminder.calendar_mailbox or reminder.rep_email or ""
            plan.events.append(CalendarEvent(reminder.id, where, reminder.calendar_event_id or ""))
        for mailbox in session.scalars(
            select(Mailbox).where(Mailbox.subscription_id.is_not(None)).order_by(Mailbox.rep_email)
        ):
            plan.subscriptions.append(
                HeldSubscription(mailbox.rep_email, mailbox.subscription_id or "")
            )
    return plan


def apply_uninstall(app: Flask, plan: UninstallPlan) -> list[str]:
    """Delete each event and subscription; the problems, one line each (empty: all gone)."""
    client = graph_client(app)
    store = get_store(app)
    problems: list[str] = []
    for event in plan.events:
        try:
            delete_event(client, event.mailbox, event.event_id)
        except GraphNotFound:
            pass  # already gone: removed all the same
        except GraphSyncError as e:
            problems.append(f"event of reminder {event.reminder_id} in {event.mailbox}: {e}")
            continue
        with store.session() as session:
            reminder = session.get(Reminder, event.reminder_id)
            if reminder is not None and reminder.calendar_event_id == event.event_id:
                reminder.calendar_event_id = None
    for sub in plan.subscriptions:
        try:
            delete_subscription(client, sub.subscription_id)
        except GraphSyncError as e:
            problems.append(f"subscription of {sub.rep}: {e}")
            continue
        with store.session() as session:
            mailbox = session.scalar(select(Mailbox).where(Mailbox.rep_email == sub.rep))
            if mailbox is not None and mailbox.subscription_id == sub.subscription_id:
                mailbox.subscription_id = None
                mailbox.subscription_expires_at = None
                mailbox.client_state_hash = None
    return problems


def uninstall(app: Flask, *, dry_run: bool) -> None:
    """`dealbridge uninstall`: print the plan; unless a dry run, apply it."""
    settings: Settings = app.extensions[SETTINGS_EXTENSION]
    _say_database(settings)
    plan = plan_uninstall(app)
    for event in plan.events:
        click.echo(f"  event   {event.mailbox}: reminder {event.reminder_id}")
    for sub in plan.subscriptions:
        click.echo(f"  subscription   {sub.rep}: {sub.subscription_id}")
    summary = f"{len(plan.events)} reminder events, {len(plan.subscriptions)} subscriptions"
    if dry_run:
        click.echo(f"dry run: would remove {summary}; nothing changed")
        return
    problems = apply_uninstall(app, plan)
    for line in problems:
        click.echo(f"✗ {line}")
    if problems:
        raise click.ClickException(f"{len(problems)} could not be removed; run it again")
    click.echo(f"removed {summary}")
    click.echo(
        "next: remove the Teams app and revoke consent (docs/admin-guide.md, "
        "'Offboarding, erasure and uninstall')"
    )


def _say_database(settings: Settings) -> None:
    url = make_url(settings.effective_database_url).render_as_string(hide_password=True)
    click.echo(f"database: {url}")


_EMAIL: TypeAdapter[str] = TypeAdapter(Email)


def erase(app: Flask, email: str, *, dry_run: bool) -> None:
    """`dealbridge erase-person`: print what names the address; unless a dry run, erase it."""
    try:
        address = str(_EMAIL.validate_python(email)).lower()
    except ValidationError as exc:
        raise click.UsageError(f"EMAIL: {email!r} is not an email address") from exc
    settings: Settings = app.extensions[SETTINGS_EXTENSION]
    _say_database(settings)
    with get_store(app).session() as session:
        plan = plan_erasure(session, address)
        if dry_run:
            click.echo(f"dry run: would erase {address} from {plan.summary()}; nothing changed")
            session.rollback()
            return
        apply_erasure(session, plan)
    click.echo(f"erased {address} from {plan.summary()}")
